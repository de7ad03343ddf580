#ifndef DMSURGERY_CHDF5_SHIM_H
#define DMSURGERY_CHDF5_SHIM_H
#include <hdf5.h>
/* H5T_NATIVE_* and H5P_DEFAULT are macros over globals that Swift cannot import; expose them as functions. */
static inline hid_t dms_h5p_default(void) { return H5P_DEFAULT; }
static inline hid_t dms_h5s_all(void) { return H5S_ALL; }
static inline hid_t dms_h5t_native_float(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t dms_h5t_native_double(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t dms_h5t_native_int8(void) { return H5T_NATIVE_INT8; }
static inline hid_t dms_h5t_native_uint8(void) { return H5T_NATIVE_UINT8; }
static inline hid_t dms_h5t_native_int16(void) { return H5T_NATIVE_INT16; }
static inline hid_t dms_h5t_native_uint16(void) { return H5T_NATIVE_UINT16; }
static inline hid_t dms_h5t_native_int32(void) { return H5T_NATIVE_INT32; }
static inline hid_t dms_h5t_native_uint32(void) { return H5T_NATIVE_UINT32; }
static inline hid_t dms_h5t_native_int64(void) { return H5T_NATIVE_INT64; }
static inline hid_t dms_h5t_native_uint64(void) { return H5T_NATIVE_UINT64; }
static inline hid_t dms_h5t_ieee_f32le(void) { return H5T_IEEE_F32LE; }
static inline hid_t dms_h5t_c_s1(void) { return H5T_C_S1; }
static inline hid_t dms_h5t_std_ref_obj(void) { return H5T_STD_REF_OBJ; }
static inline hid_t dms_h5p_file_access(void) { return H5P_FILE_ACCESS; }
static inline hid_t dms_h5p_dataset_create(void) { return H5P_DATASET_CREATE; }
static inline hid_t dms_h5p_link_access(void) { return H5P_LINK_ACCESS; }
static inline hid_t dms_h5p_object_create(void) { return H5P_OBJECT_CREATE; }
static inline hid_t dms_h5p_group_create(void) { return H5P_GROUP_CREATE; }
static inline hid_t dms_h5p_attribute_create(void) { return H5P_ATTRIBUTE_CREATE; }
#endif
