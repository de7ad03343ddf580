/* libhdf5, loaded on first use (see CLazy/include/dms_lazy.h for why). Each function dmsurgery calls
 * is a trampoline with the header's own signature; add one DMS_LAZY_FN line per new function. */
#include "shim.h"
#include "dms_lazy.h"
#include <dlfcn.h>
#include <stdio.h>

/* The build's headers fix struct layouts and the hid_t width, so the library must be the same
   major.minor release as the headers: HDF5 changes its ABI between minor releases (its soname too). */
static int dms_hdf5_check(void *handle, char *why, size_t cap) {
    /* First of all, before any call that initialises the library (H5get_libversion below does, and
       dms_h5_global's H5open): libhdf5's exit handler closes every id still open, and after a failed
       write (a full disk) it finds half-closed dataset ids and segfaults after the error line
       (HDF5Library.setUp says more). */
    herr_t (*dont_atexit)(void) = (herr_t(*)(void))dlsym(handle, "H5dont_atexit");
    if (dont_atexit) (void)dont_atexit();
    herr_t (*version)(unsigned *, unsigned *, unsigned *) =
        (herr_t(*)(unsigned *, unsigned *, unsigned *))dlsym(handle, "H5get_libversion");
    unsigned major = 0, minor = 0, release = 0;
    if (!version || version(&major, &minor, &release) < 0) {
        snprintf(why, cap, "not libhdf5 (no H5get_libversion)");
        return -1;
    }
    if (major != H5_VERS_MAJOR || minor != H5_VERS_MINOR) {
        snprintf(why, cap, "HDF5 %u.%u.%u, but dmsurgery was built with %d.%d headers", major, minor, release,
                 H5_VERS_MAJOR, H5_VERS_MINOR);
        return -1;
    }
    return 0;
}

#define DMS_STR2(x) #x
#define DMS_STR(x) DMS_STR2(x)
/* Debian/Ubuntu name the serial build libhdf5_serial; other systems libhdf5. 1.10 has soname 103. */
static const char *const dms_hdf5_candidates[] = {
#if H5_VERS_MAJOR == 1 && H5_VERS_MINOR == 10
    "libhdf5_serial.so.103", "libhdf5.so.103",
#endif
    "libhdf5_serial.so", "libhdf5.so", "libhdf5.dylib", NULL,
};

dms_lazy_library dms_hdf5 = {
    .purpose = "libhdf5 " DMS_STR(H5_VERS_MAJOR) "." DMS_STR(H5_VERS_MINOR) ", needed for HDF5 files",
    .hint = "install libhdf5 (Debian/Ubuntu: libhdf5-103-1 or libhdf5-dev) or set DMSURGERY_LIBHDF5",
    .override_variable = "DMSURGERY_LIBHDF5",
    .candidates = dms_hdf5_candidates,
    .check = dms_hdf5_check,
};

hid_t dms_h5_global(const char *name) {
    (void)H5open(); /* the library sets its predefined type and class ids in H5open */
    return *(const hid_t *)dms_lazy_symbol(&dms_hdf5, name);
}

DMS_LAZY_FN(dms_hdf5, herr_t, H5Aclose, (hid_t attr_id), (attr_id))
DMS_LAZY_FN(dms_hdf5, hid_t, H5Acreate2, (hid_t loc_id, const char *attr_name, hid_t type_id, hid_t space_id, hid_t acpl_id, hid_t aapl_id), (loc_id, attr_name, type_id, space_id, acpl_id, aapl_id))
DMS_LAZY_FN(dms_hdf5, htri_t, H5Aexists, (hid_t obj_id, const char *attr_name), (obj_id, attr_name))
DMS_LAZY_FN(dms_hdf5, ssize_t, H5Aget_name_by_idx, (hid_t loc_id, const char *obj_name, H5_index_t idx_type, H5_iter_order_t order, hsize_t n, char *name , size_t size, hid_t lapl_id), (loc_id, obj_name, idx_type, order, n, name, size, lapl_id))
DMS_LAZY_FN(dms_hdf5, hid_t, H5Aget_space, (hid_t attr_id), (attr_id))
DMS_LAZY_FN(dms_hdf5, hid_t, H5Aget_type, (hid_t attr_id), (attr_id))
DMS_LAZY_FN(dms_hdf5, hid_t, H5Aopen, (hid_t obj_id, const char *attr_name, hid_t aapl_id), (obj_id, attr_name, aapl_id))
DMS_LAZY_FN(dms_hdf5, herr_t, H5Aread, (hid_t attr_id, hid_t type_id, void *buf), (attr_id, type_id, buf))
DMS_LAZY_FN(dms_hdf5, herr_t, H5Awrite, (hid_t attr_id, hid_t type_id, const void *buf), (attr_id, type_id, buf))
DMS_LAZY_FN(dms_hdf5, hid_t, H5Dcreate2, (hid_t loc_id, const char *name, hid_t type_id, hid_t space_id, hid_t lcpl_id, hid_t dcpl_id, hid_t dapl_id), (loc_id, name, type_id, space_id, lcpl_id, dcpl_id, dapl_id))
DMS_LAZY_FN(dms_hdf5, hid_t, H5Dget_create_plist, (hid_t dset_id), (dset_id))
DMS_LAZY_FN(dms_hdf5, hid_t, H5Dget_space, (hid_t dset_id), (dset_id))
DMS_LAZY_FN(dms_hdf5, hsize_t, H5Dget_storage_size, (hid_t dset_id), (dset_id))
DMS_LAZY_FN(dms_hdf5, hid_t, H5Dget_type, (hid_t dset_id), (dset_id))
DMS_LAZY_FN(dms_hdf5, hid_t, H5Dopen2, (hid_t loc_id, const char *name, hid_t dapl_id), (loc_id, name, dapl_id))
DMS_LAZY_FN(dms_hdf5, herr_t, H5Dread, (hid_t dset_id, hid_t mem_type_id, hid_t mem_space_id, hid_t file_space_id, hid_t dxpl_id, void *buf), (dset_id, mem_type_id, mem_space_id, file_space_id, dxpl_id, buf))
DMS_LAZY_FN(dms_hdf5, herr_t, H5Dwrite, (hid_t dset_id, hid_t mem_type_id, hid_t mem_space_id, hid_t file_space_id, hid_t dxpl_id, const void *buf), (dset_id, mem_type_id, mem_space_id, file_space_id, dxpl_id, buf))
DMS_LAZY_FN(dms_hdf5, herr_t, H5Eclear2, (hid_t err_stack), (err_stack))
DMS_LAZY_FN(dms_hdf5, herr_t, H5Eset_auto2, (hid_t estack_id, H5E_auto2_t func, void *client_data), (estack_id, func, client_data))
DMS_LAZY_FN(dms_hdf5, herr_t, H5Ewalk2, (hid_t err_stack, H5E_direction_t direction, H5E_walk2_t func, void *client_data), (err_stack, direction, func, client_data))
DMS_LAZY_FN(dms_hdf5, herr_t, H5Fclose, (hid_t file_id), (file_id))
DMS_LAZY_FN(dms_hdf5, hid_t, H5Fcreate, (const char *filename, unsigned flags, hid_t fcpl_id, hid_t fapl_id), (filename, flags, fcpl_id, fapl_id))
DMS_LAZY_FN(dms_hdf5, hid_t, H5Fget_create_plist, (hid_t file_id), (file_id))
DMS_LAZY_FN(dms_hdf5, hid_t, H5Fopen, (const char *filename, unsigned flags, hid_t fapl_id), (filename, flags, fapl_id))
DMS_LAZY_FN(dms_hdf5, herr_t, H5Gclose, (hid_t group_id), (group_id))
DMS_LAZY_FN(dms_hdf5, hid_t, H5Gcreate2, (hid_t loc_id, const char *name, hid_t lcpl_id, hid_t gcpl_id, hid_t gapl_id), (loc_id, name, lcpl_id, gcpl_id, gapl_id))
DMS_LAZY_FN(dms_hdf5, hid_t, H5Gget_create_plist, (hid_t group_id), (group_id))
DMS_LAZY_FN(dms_hdf5, herr_t, H5Gget_info, (hid_t loc_id, H5G_info_t *ginfo), (loc_id, ginfo))
DMS_LAZY_FN(dms_hdf5, hid_t, H5Gopen2, (hid_t loc_id, const char *name, hid_t gapl_id), (loc_id, name, gapl_id))
DMS_LAZY_FN(dms_hdf5, int, H5Idec_ref, (hid_t id), (id))
DMS_LAZY_FN(dms_hdf5, H5I_type_t, H5Iget_type, (hid_t id), (id))
DMS_LAZY_FN(dms_hdf5, htri_t, H5Lexists, (hid_t loc_id, const char *name, hid_t lapl_id), (loc_id, name, lapl_id))
DMS_LAZY_FN(dms_hdf5, herr_t, H5Lget_info, (hid_t loc_id, const char *name, H5L_info_t *linfo, hid_t lapl_id), (loc_id, name, linfo, lapl_id))
DMS_LAZY_FN(dms_hdf5, ssize_t, H5Lget_name_by_idx, (hid_t loc_id, const char *group_name, H5_index_t idx_type, H5_iter_order_t order, hsize_t n, char *name , size_t size, hid_t lapl_id), (loc_id, group_name, idx_type, order, n, name, size, lapl_id))
DMS_LAZY_FN(dms_hdf5, herr_t, H5Oclose, (hid_t object_id), (object_id))
DMS_LAZY_FN(dms_hdf5, htri_t, H5Oexists_by_name, (hid_t loc_id, const char *name, hid_t lapl_id), (loc_id, name, lapl_id))
DMS_LAZY_FN(dms_hdf5, herr_t, H5Oget_info2, (hid_t loc_id, H5O_info_t *oinfo, unsigned fields), (loc_id, oinfo, fields))
DMS_LAZY_FN(dms_hdf5, hid_t, H5Oopen, (hid_t loc_id, const char *name, hid_t lapl_id), (loc_id, name, lapl_id))
DMS_LAZY_FN(dms_hdf5, herr_t, H5Pclose, (hid_t plist_id), (plist_id))
DMS_LAZY_FN(dms_hdf5, hid_t, H5Pcreate, (hid_t cls_id), (cls_id))
DMS_LAZY_FN(dms_hdf5, herr_t, H5Pget_attr_creation_order, (hid_t plist_id, unsigned *crt_order_flags), (plist_id, crt_order_flags))
DMS_LAZY_FN(dms_hdf5, int, H5Pget_chunk, (hid_t plist_id, int max_ndims, hsize_t dim[]), (plist_id, max_ndims, dim))
DMS_LAZY_FN(dms_hdf5, int, H5Pget_external_count, (hid_t plist_id), (plist_id))
DMS_LAZY_FN(dms_hdf5, H5Z_filter_t, H5Pget_filter2, (hid_t plist_id, unsigned idx, unsigned int *flags , size_t *cd_nelmts , unsigned cd_values[] , size_t namelen, char name[], unsigned *filter_config), (plist_id, idx, flags, cd_nelmts, cd_values, namelen, name, filter_config))
DMS_LAZY_FN(dms_hdf5, H5D_layout_t, H5Pget_layout, (hid_t plist_id), (plist_id))
DMS_LAZY_FN(dms_hdf5, herr_t, H5Pget_link_creation_order, (hid_t plist_id, unsigned *crt_order_flags), (plist_id, crt_order_flags))
DMS_LAZY_FN(dms_hdf5, int, H5Pget_nfilters, (hid_t plist_id), (plist_id))
DMS_LAZY_FN(dms_hdf5, herr_t, H5Pset_attr_creation_order, (hid_t plist_id, unsigned crt_order_flags), (plist_id, crt_order_flags))
DMS_LAZY_FN(dms_hdf5, herr_t, H5Pset_chunk, (hid_t plist_id, int ndims, const hsize_t dim[]), (plist_id, ndims, dim))
DMS_LAZY_FN(dms_hdf5, herr_t, H5Pset_deflate, (hid_t plist_id, unsigned level), (plist_id, level))
DMS_LAZY_FN(dms_hdf5, herr_t, H5Pset_fill_time, (hid_t plist_id, H5D_fill_time_t fill_time), (plist_id, fill_time))
DMS_LAZY_FN(dms_hdf5, herr_t, H5Pset_filter, (hid_t plist_id, H5Z_filter_t filter, unsigned int flags, size_t cd_nelmts, const unsigned int c_values[]), (plist_id, filter, flags, cd_nelmts, c_values))
DMS_LAZY_FN(dms_hdf5, herr_t, H5Pset_link_creation_order, (hid_t plist_id, unsigned crt_order_flags), (plist_id, crt_order_flags))
DMS_LAZY_FN(dms_hdf5, herr_t, H5Pset_shuffle, (hid_t plist_id), (plist_id))
DMS_LAZY_FN(dms_hdf5, herr_t, H5Sclose, (hid_t space_id), (space_id))
DMS_LAZY_FN(dms_hdf5, hid_t, H5Screate, (H5S_class_t type), (type))
DMS_LAZY_FN(dms_hdf5, hid_t, H5Screate_simple, (int rank, const hsize_t dims[], const hsize_t maxdims[]), (rank, dims, maxdims))
DMS_LAZY_FN(dms_hdf5, int, H5Sget_simple_extent_dims, (hid_t space_id, hsize_t dims[], hsize_t maxdims[]), (space_id, dims, maxdims))
DMS_LAZY_FN(dms_hdf5, int, H5Sget_simple_extent_ndims, (hid_t space_id), (space_id))
DMS_LAZY_FN(dms_hdf5, hssize_t, H5Sget_simple_extent_npoints, (hid_t space_id), (space_id))
DMS_LAZY_FN(dms_hdf5, H5S_class_t, H5Sget_simple_extent_type, (hid_t space_id), (space_id))
DMS_LAZY_FN(dms_hdf5, herr_t, H5Tclose, (hid_t type_id), (type_id))
DMS_LAZY_FN(dms_hdf5, hid_t, H5Tcopy, (hid_t type_id), (type_id))
DMS_LAZY_FN(dms_hdf5, hid_t, H5Tcreate, (H5T_class_t type, size_t size), (type, size))
DMS_LAZY_FN(dms_hdf5, hid_t, H5Tenum_create, (hid_t base_id), (base_id))
DMS_LAZY_FN(dms_hdf5, herr_t, H5Tenum_insert, (hid_t type, const char *name, const void *value), (type, name, value))
DMS_LAZY_FN(dms_hdf5, H5T_class_t, H5Tget_class, (hid_t type_id), (type_id))
DMS_LAZY_FN(dms_hdf5, H5T_cset_t, H5Tget_cset, (hid_t type_id), (type_id))
DMS_LAZY_FN(dms_hdf5, herr_t, H5Tget_fields, (hid_t type_id, size_t *spos , size_t *epos , size_t *esize , size_t *mpos , size_t *msize), (type_id, spos, epos, esize, mpos, msize))
DMS_LAZY_FN(dms_hdf5, char *, H5Tget_member_name, (hid_t type_id, unsigned membno), (type_id, membno))
DMS_LAZY_FN(dms_hdf5, size_t, H5Tget_member_offset, (hid_t type_id, unsigned membno), (type_id, membno))
DMS_LAZY_FN(dms_hdf5, hid_t, H5Tget_member_type, (hid_t type_id, unsigned membno), (type_id, membno))
DMS_LAZY_FN(dms_hdf5, herr_t, H5Tget_member_value, (hid_t type_id, unsigned membno, void *value), (type_id, membno, value))
DMS_LAZY_FN(dms_hdf5, int, H5Tget_nmembers, (hid_t type_id), (type_id))
DMS_LAZY_FN(dms_hdf5, H5T_order_t, H5Tget_order, (hid_t type_id), (type_id))
DMS_LAZY_FN(dms_hdf5, H5T_sign_t, H5Tget_sign, (hid_t type_id), (type_id))
DMS_LAZY_FN(dms_hdf5, size_t, H5Tget_size, (hid_t type_id), (type_id))
DMS_LAZY_FN(dms_hdf5, H5T_str_t, H5Tget_strpad, (hid_t type_id), (type_id))
DMS_LAZY_FN(dms_hdf5, herr_t, H5Tinsert, (hid_t parent_id, const char *name, size_t offset, hid_t member_id), (parent_id, name, offset, member_id))
DMS_LAZY_FN(dms_hdf5, htri_t, H5Tis_variable_str, (hid_t type_id), (type_id))
DMS_LAZY_FN(dms_hdf5, herr_t, H5Tset_cset, (hid_t type_id, H5T_cset_t cset), (type_id, cset))
DMS_LAZY_FN(dms_hdf5, herr_t, H5Tset_ebias, (hid_t type_id, size_t ebias), (type_id, ebias))
DMS_LAZY_FN(dms_hdf5, herr_t, H5Tset_fields, (hid_t type_id, size_t spos, size_t epos, size_t esize, size_t mpos, size_t msize), (type_id, spos, epos, esize, mpos, msize))
DMS_LAZY_FN(dms_hdf5, herr_t, H5Tset_order, (hid_t type_id, H5T_order_t order), (type_id, order))
DMS_LAZY_FN(dms_hdf5, herr_t, H5Tset_size, (hid_t type_id, size_t size), (type_id, size))
DMS_LAZY_FN(dms_hdf5, herr_t, H5Zregister, (const void *cls), (cls))
DMS_LAZY_FN(dms_hdf5, void *, H5allocate_memory, (size_t size, hbool_t clear), (size, clear))
DMS_LAZY_FN(dms_hdf5, herr_t, H5check_version, (unsigned majnum, unsigned minnum, unsigned relnum), (majnum, minnum, relnum))
DMS_LAZY_FN(dms_hdf5, herr_t, H5dont_atexit, (void), ())
DMS_LAZY_FN(dms_hdf5, herr_t, H5free_memory, (void *mem), (mem))
DMS_LAZY_FN(dms_hdf5, herr_t, H5open, (void), ())
DMS_LAZY_FN(dms_hdf5, void *, H5resize_memory, (void *mem, size_t size), (mem, size))
