#ifndef DMSURGERY_CHDF5_SHIM_H
#define DMSURGERY_CHDF5_SHIM_H
/* Debian and Ubuntu keep the serial build's headers under hdf5/serial; other systems in the include root. */
#if __has_include(<hdf5.h>)
#include <hdf5.h>
#else
#include <hdf5/serial/hdf5.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
/* H5T_NATIVE_* and H5P_DEFAULT are macros over globals that Swift cannot import; expose them as functions.
   The globals are read from the library once it is loaded (hdf5.c: libhdf5 is loaded on first use, so its
   data cannot be linked against); `name` is the global's symbol. */
hid_t dms_h5_global(const char *name);
static inline hid_t dms_h5p_default(void) { return H5P_DEFAULT; }
static inline hid_t dms_h5s_all(void) { return H5S_ALL; }
static inline hid_t dms_h5t_native_float(void) { return dms_h5_global("H5T_NATIVE_FLOAT_g"); } /* H5T_NATIVE_FLOAT */
static inline hid_t dms_h5t_native_double(void) { return dms_h5_global("H5T_NATIVE_DOUBLE_g"); } /* H5T_NATIVE_DOUBLE */
static inline hid_t dms_h5t_native_int8(void) { return dms_h5_global("H5T_NATIVE_INT8_g"); } /* H5T_NATIVE_INT8 */
static inline hid_t dms_h5t_native_uint8(void) { return dms_h5_global("H5T_NATIVE_UINT8_g"); } /* H5T_NATIVE_UINT8 */
static inline hid_t dms_h5t_native_int16(void) { return dms_h5_global("H5T_NATIVE_INT16_g"); } /* H5T_NATIVE_INT16 */
static inline hid_t dms_h5t_native_uint16(void) { return dms_h5_global("H5T_NATIVE_UINT16_g"); } /* H5T_NATIVE_UINT16 */
static inline hid_t dms_h5t_native_int32(void) { return dms_h5_global("H5T_NATIVE_INT32_g"); } /* H5T_NATIVE_INT32 */
static inline hid_t dms_h5t_native_uint32(void) { return dms_h5_global("H5T_NATIVE_UINT32_g"); } /* H5T_NATIVE_UINT32 */
static inline hid_t dms_h5t_native_int64(void) { return dms_h5_global("H5T_NATIVE_INT64_g"); } /* H5T_NATIVE_INT64 */
static inline hid_t dms_h5t_native_uint64(void) { return dms_h5_global("H5T_NATIVE_UINT64_g"); } /* H5T_NATIVE_UINT64 */
static inline hid_t dms_h5t_ieee_f32le(void) { return dms_h5_global("H5T_IEEE_F32LE_g"); } /* H5T_IEEE_F32LE */
static inline hid_t dms_h5t_c_s1(void) { return dms_h5_global("H5T_C_S1_g"); } /* H5T_C_S1 */
static inline hid_t dms_h5t_std_ref_obj(void) { return dms_h5_global("H5T_STD_REF_OBJ_g"); } /* H5T_STD_REF_OBJ */
static inline hid_t dms_h5p_file_access(void) { return dms_h5_global("H5P_CLS_FILE_ACCESS_ID_g"); } /* H5P_FILE_ACCESS */
static inline hid_t dms_h5p_dataset_create(void) { return dms_h5_global("H5P_CLS_DATASET_CREATE_ID_g"); } /* H5P_DATASET_CREATE */
static inline hid_t dms_h5p_link_access(void) { return dms_h5_global("H5P_CLS_LINK_ACCESS_ID_g"); } /* H5P_LINK_ACCESS */
static inline hid_t dms_h5p_object_create(void) { return dms_h5_global("H5P_CLS_OBJECT_CREATE_ID_g"); } /* H5P_OBJECT_CREATE */
static inline hid_t dms_h5p_group_create(void) { return dms_h5_global("H5P_CLS_GROUP_CREATE_ID_g"); } /* H5P_GROUP_CREATE */
static inline hid_t dms_h5p_attribute_create(void) { return dms_h5_global("H5P_CLS_ATTRIBUTE_CREATE_ID_g"); } /* H5P_ATTRIBUTE_CREATE */

/* ---- error stack, object info, filters ---- */
/* Little-endian file types: what dmsurgery writes, whatever the host. */
static inline hid_t dms_h5t_std_i8le(void) { return dms_h5_global("H5T_STD_I8LE_g"); } /* H5T_STD_I8LE */
static inline hid_t dms_h5t_std_u8le(void) { return dms_h5_global("H5T_STD_U8LE_g"); } /* H5T_STD_U8LE */
static inline hid_t dms_h5t_std_i16le(void) { return dms_h5_global("H5T_STD_I16LE_g"); } /* H5T_STD_I16LE */
static inline hid_t dms_h5t_std_u16le(void) { return dms_h5_global("H5T_STD_U16LE_g"); } /* H5T_STD_U16LE */
static inline hid_t dms_h5t_std_i32le(void) { return dms_h5_global("H5T_STD_I32LE_g"); } /* H5T_STD_I32LE */
static inline hid_t dms_h5t_std_u32le(void) { return dms_h5_global("H5T_STD_U32LE_g"); } /* H5T_STD_U32LE */
static inline hid_t dms_h5t_std_i64le(void) { return dms_h5_global("H5T_STD_I64LE_g"); } /* H5T_STD_I64LE */
static inline hid_t dms_h5t_std_u64le(void) { return dms_h5_global("H5T_STD_U64LE_g"); } /* H5T_STD_U64LE */
static inline hid_t dms_h5t_ieee_f64le(void) { return dms_h5_global("H5T_IEEE_F64LE_g"); } /* H5T_IEEE_F64LE */
static inline hid_t dms_h5p_file_create(void) { return dms_h5_global("H5P_CLS_FILE_CREATE_ID_g"); } /* H5P_FILE_CREATE */
static inline hid_t dms_h5p_dataset_access(void) { return dms_h5_global("H5P_CLS_DATASET_ACCESS_ID_g"); } /* H5P_DATASET_ACCESS */
static inline hsize_t dms_h5s_unlimited(void) { return H5S_UNLIMITED; }
static inline size_t dms_h5t_variable(void) { return H5T_VARIABLE; }
static inline unsigned dms_h5f_acc_rdonly(void) { return H5F_ACC_RDONLY; }
static inline unsigned dms_h5f_acc_trunc(void) { return H5F_ACC_TRUNC; }

/* Automatic error printing off: failures are reported through dms_h5e_message, as one line. */
static inline void dms_h5e_silence(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

typedef struct {
    char outer[160];
    char inner[160];
    unsigned count;
} dms_h5e_walk_state;

static herr_t dms_h5e_walk_cb(unsigned n, const H5E_error2_t *err, void *data) {
    dms_h5e_walk_state *state = (dms_h5e_walk_state *)data;
    const char *desc = (err && err->desc && err->desc[0]) ? err->desc : (err && err->func_name ? err->func_name : "");
    if (state->count == 0) snprintf(state->outer, sizeof state->outer, "%s", desc);
    snprintf(state->inner, sizeof state->inner, "%s", desc);
    state->count = n + 1;
    return 0;
}

/* Writes the current error stack as one line (outermost description, then the innermost cause) into
   buf, clears the stack and returns the number of records. The outermost record says what failed
   (H5Fopen's "unable to open file"), the innermost why ("file signature not found"). */
static inline unsigned dms_h5e_message(char *buf, size_t cap) {
    dms_h5e_walk_state state;
    memset(&state, 0, sizeof state);
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, dms_h5e_walk_cb, &state);
    if (cap > 0) {
        if (state.count == 0) snprintf(buf, cap, "HDF5 call failed");
        else if (state.count == 1 || strcmp(state.outer, state.inner) == 0) snprintf(buf, cap, "%s", state.outer);
        else snprintf(buf, cap, "%s: %s", state.outer, state.inner);
    }
    H5Eclear2(H5E_DEFAULT);
    return state.count;
}

/* Crash guard. libhdf5 1.10 can still fault on some corrupt files (out-of-bounds reads in object
   header decoding). While dmsurgery is inside libhdf5, SIGSEGV/SIGBUS/SIGFPE/SIGILL print one line
   naming the input and exit with status 2 (invalid input) instead of dumping core; state inside
   libhdf5 cannot be trusted after such a fault, so there is no recovery. The handler only uses
   async-signal-safe calls. The state lives in this header: use it from one Swift file only
   (HDF5Library.swift), since each object file gets its own copy of static data. */
typedef struct {
    char message[600];
    size_t length;
    struct sigaction saved[4];
    stack_t saved_stack;
    int has_saved_stack;
    char stack[65536];
} dms_h5_guard_state_t;

/* Function-local static: header-level statics are not emitted when Swift imports a header. */
static inline dms_h5_guard_state_t *dms_h5_guard_state(void) {
    static dms_h5_guard_state_t state;
    return &state;
}

static const int dms_h5_guard_signals[4] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL };

static void dms_h5_guard_handler(int sig) {
    (void)sig;
    dms_h5_guard_state_t *state = dms_h5_guard_state();
    ssize_t ignored = write(2, state->message, state->length);
    (void)ignored;
    _exit(2);
}

/* The line printed if libhdf5 faults; `file` names the input. */
static inline void dms_h5_guard_set_file(const char *file) {
    dms_h5_guard_state_t *state = dms_h5_guard_state();
    int n = snprintf(state->message, sizeof state->message,
                     "dmsurgery: error: %s: hdf5-unreadable: libhdf5 faulted while decoding the file (corrupt input)\n", file);
    state->length = n < 0 ? 0 : ((size_t)n < sizeof state->message ? (size_t)n : sizeof state->message - 1);
}

static inline void dms_h5_guard_install(void) {
    dms_h5_guard_state_t *state = dms_h5_guard_state();
    stack_t alternate;
    alternate.ss_sp = state->stack;
    alternate.ss_size = sizeof state->stack;
    alternate.ss_flags = 0;
    state->has_saved_stack = sigaltstack(&alternate, &state->saved_stack) == 0;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = dms_h5_guard_handler;
    action.sa_flags = SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    for (int i = 0; i < 4; i++) sigaction(dms_h5_guard_signals[i], &action, &state->saved[i]);
}

static inline void dms_h5_guard_remove(void) {
    dms_h5_guard_state_t *state = dms_h5_guard_state();
    for (int i = 0; i < 4; i++) sigaction(dms_h5_guard_signals[i], &state->saved[i], NULL);
    if (state->has_saved_stack) sigaltstack(&state->saved_stack, NULL);
}

/* zstd as the registered HDF5 filter 32015 (one cd_value: the level), as hdf5plugin and h5py use it.
   The filter function is written in Swift over libzstd; this builds the class struct it needs. */
#define DMS_H5Z_FILTER_ZSTD 32015
static inline herr_t dms_h5z_register_zstd(H5Z_func_t filter) {
    H5Z_class2_t cls;
    memset(&cls, 0, sizeof cls);
    cls.version = H5Z_CLASS_T_VERS;
    cls.id = (H5Z_filter_t)DMS_H5Z_FILTER_ZSTD;
    cls.encoder_present = 1;
    cls.decoder_present = 1;
    cls.name = "zstd (dmsurgery, libzstd)";
    cls.can_apply = NULL;
    cls.set_local = NULL;
    cls.filter = filter;
    return H5Zregister(&cls);
}
#endif
