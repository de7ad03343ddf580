#include "dms_lazy.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One lock for all libraries: loads are rare (once per library per process) and may nest (a check
   hook calling a function of the library it checks does not reload). */
static pthread_mutex_t dms_lazy_lock = PTHREAD_MUTEX_INITIALIZER;
static void (*dms_lazy_cleanup)(void);

void dms_lazy_set_cleanup(void (*cleanup)(void)) {
    __atomic_store_n(&dms_lazy_cleanup, cleanup, __ATOMIC_RELEASE);
}

static void dms_lazy_fail(const char *file, const char *message) {
    void (*cleanup)(void) = __atomic_load_n(&dms_lazy_cleanup, __ATOMIC_ACQUIRE);
    if (cleanup) cleanup();
    fflush(stdout);
    fprintf(stderr, "dmsurgery: error: %s: io-error: %s\n", file, message);
    fflush(stderr);
    _exit(2);
}

static void dms_lazy_load_locked(dms_lazy_library *lib) {
    if (lib->handle || lib->failed) return;
    if (lib->before_open) lib->before_open();
    void *h = NULL;
    const char *chosen = lib->override_variable ? getenv(lib->override_variable) : NULL;
    char tried[400] = "";
    const char *last_error = "not found";
    if (chosen && chosen[0]) {
        h = dlopen(chosen, RTLD_NOW | RTLD_LOCAL);
        snprintf(lib->name, sizeof lib->name, "%s", chosen);
        if (!h) {
            const char *e = dlerror();
            snprintf(lib->reason, sizeof lib->reason, "cannot load %s (%s, from %s)",
                     lib->purpose, e ? e : "unknown", lib->override_variable);
        }
    } else {
        for (const char *const *c = lib->candidates; *c; c++) {
            h = dlopen(*c, RTLD_NOW | RTLD_LOCAL);
            if (h) {
                snprintf(lib->name, sizeof lib->name, "%s", *c);
                break;
            }
            const char *e = dlerror();
            if (c == lib->candidates && e) last_error = e; /* the first candidate's reason is the telling one */
            size_t used = strlen(tried);
            snprintf(tried + used, sizeof tried - used, "%s%s", used ? ", " : "", *c);
        }
        if (!h) {
            snprintf(lib->name, sizeof lib->name, "%s", lib->candidates[0]);
            snprintf(lib->reason, sizeof lib->reason, "cannot load %s (%s; tried %s); %s",
                     lib->purpose, last_error, tried, lib->hint);
        }
    }
    if (h && lib->check) {
        char why[300] = "";
        if (lib->check(h, why, sizeof why) != 0) {
            snprintf(lib->reason, sizeof lib->reason, "cannot use %s: %s; %s", lib->purpose, why, lib->hint);
            dlclose(h);
            h = NULL;
        }
    }
    if (h) __atomic_store_n(&lib->handle, h, __ATOMIC_RELEASE);
    else lib->failed = 1;
}

void *dms_lazy_open(dms_lazy_library *lib, char *why, size_t cap) {
    void *handle = __atomic_load_n(&lib->handle, __ATOMIC_ACQUIRE);
    if (handle) return handle;
    pthread_mutex_lock(&dms_lazy_lock);
    dms_lazy_load_locked(lib);
    handle = lib->handle;
    if (!handle && why && cap) snprintf(why, cap, "%s: %s", lib->name, lib->reason);
    pthread_mutex_unlock(&dms_lazy_lock);
    return handle;
}

int dms_lazy_is_loaded(dms_lazy_library *lib) {
    return __atomic_load_n(&lib->handle, __ATOMIC_ACQUIRE) != NULL;
}

static void *dms_lazy_loaded_or_exit(dms_lazy_library *lib) {
    void *handle = dms_lazy_open(lib, NULL, 0);
    if (!handle) dms_lazy_fail(lib->name, lib->reason);
    return handle;
}

void *dms_lazy_symbol(dms_lazy_library *lib, const char *symbol) {
    void *handle = dms_lazy_loaded_or_exit(lib);
    void *address = dlsym(handle, symbol);
    if (!address) {
        char message[512];
        snprintf(message, sizeof message, "%s has no function %s (an older or different build); %s",
                 lib->purpose, symbol, lib->hint);
        dms_lazy_fail(lib->name, message);
    }
    return address;
}

void *dms_lazy_symbol_optional(dms_lazy_library *lib, const char *symbol) {
    return dlsym(dms_lazy_loaded_or_exit(lib), symbol);
}
