#ifndef DMSURGERY_CLAZY_H
#define DMSURGERY_CLAZY_H
/* Libraries loaded on first use instead of at start-up.
 *
 * Why: a binary linked against libhdf5, libzstd, libpng and OpenBLAS makes the dynamic loader map and
 * relocate them and their ~45 dependencies (curl, krb5, gnutls, gfortran...) before main runs, and
 * OpenBLAS starts its thread pool from a constructor. That was almost all of the 20-40 ms that
 * `dmsurgery --version` or `inspect` of a safetensors file took, for libraries those commands never
 * call. Instead each C shim (CHDF5, CZstd, CPNG, CBLAS) defines the library functions dmsurgery calls
 * as small trampolines: the first call dlopens the library (its soname, or DMSURGERY_LIB<NAME> when
 * set), looks the function up once, and every later call jumps straight to it. The executable has no
 * DT_NEEDED entry on these libraries, so `ldd` lists only what start-up needs.
 *
 * A library that cannot be loaded (or lacks a function) ends the process with one line naming it,
 * exit status 2, after removing the temporary files of unfinished outputs (the cleanup hook). */
#include <stddef.h>

typedef struct dms_lazy_library {
    /* The library and what needs it, for the error line: "libhdf5 1.10, needed for HDF5 files". */
    const char *purpose;
    /* Where to get it, for the error line: "install libhdf5-103". */
    const char *hint;
    /* Environment variable naming a file to load instead of the candidates: "DMSURGERY_LIBHDF5". */
    const char *override_variable;
    /* Sonames tried in order, NULL-terminated. */
    const char *const *candidates;
    /* Runs (under the loader's lock) just before dlopen; may be NULL. */
    void (*before_open)(void);
    /* Checks the opened library (its handle), writing why it is unusable into `why`; 0 = usable. May be NULL. */
    int (*check)(void *handle, char *why, size_t cap);
    /* Loader state: written only under the loader's lock. */
    void *handle;
    int failed;
    char name[256];
    char reason[512];
} dms_lazy_library;

/* The library's handle, loading it on the first call; NULL when it cannot be loaded (`why` then says
   why, naming the file). Never exits. */
void *dms_lazy_open(dms_lazy_library *lib, char *why, size_t cap);

/* `symbol` of the library, loading it first; on failure prints one error line and exits 2. */
void *dms_lazy_symbol(dms_lazy_library *lib, const char *symbol);

/* `symbol` of the library when it has it, else NULL (the library itself must load; else exits 2). */
void *dms_lazy_symbol_optional(dms_lazy_library *lib, const char *symbol);

/* True when the library is already loaded (no load is attempted). */
int dms_lazy_is_loaded(dms_lazy_library *lib);

/* Run before a failed load exits: removes the temporary files of outputs not yet committed. */
void dms_lazy_set_cleanup(void (*cleanup)(void));

/* Defines `ret name params` as a trampoline into `lib`: `DMS_LAZY_FN(lib, int, f, (int a), (a))`. The
   pointer is resolved once and published atomically, so concurrent first calls are safe. */
#define DMS_LAZY_FN(lib, ret, name, params, args)                                                     \
    ret name params {                                                                                   \
        static ret(*resolved) params;                                                                   \
        ret(*fn) params = __atomic_load_n(&resolved, __ATOMIC_ACQUIRE);                                 \
        if (!fn) {                                                                                      \
            fn = (ret(*) params)dms_lazy_symbol(&lib, #name);                                           \
            __atomic_store_n(&resolved, fn, __ATOMIC_RELEASE);                                          \
        }                                                                                               \
        return fn args;                                                                                 \
    }

/* The same for functions returning void. */
#define DMS_LAZY_VOID_FN(lib, name, params, args)                                                     \
    void name params {                                                                                  \
        static void(*resolved) params;                                                                  \
        void(*fn) params = __atomic_load_n(&resolved, __ATOMIC_ACQUIRE);                                \
        if (!fn) {                                                                                      \
            fn = (void(*) params)dms_lazy_symbol(&lib, #name);                                          \
            __atomic_store_n(&resolved, fn, __ATOMIC_RELEASE);                                          \
        }                                                                                               \
        fn args;                                                                                        \
    }
#endif
