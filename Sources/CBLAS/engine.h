#ifndef DMSURGERY_CBLAS_ENGINE_H
#define DMSURGERY_CBLAS_ENGINE_H
/* What the engine needs to pick its kernels at run time: the CPU's vector features (cpuid + xgetbv, so
 * a feature the OS does not save on context switches counts as absent) and a way to re-run OpenBLAS's
 * DYNAMIC_ARCH core selection after start-up. Swift has no cpuid or inline assembly, hence C. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

/* An OpenBLAS function that not every build has (NULL when absent), loading OpenBLAS first (blas.c). */
void *dms_blas_symbol(const char *name);

enum {
    DMS_CPU_SSE3 = 1 << 0,
    DMS_CPU_AVX = 1 << 1,
    DMS_CPU_AVX2 = 1 << 2,
    DMS_CPU_FMA = 1 << 3,
    DMS_CPU_AVX512F = 1 << 4,
    DMS_CPU_AVX512BW = 1 << 5,
    DMS_CPU_AVX512VL = 1 << 6,
    DMS_CPU_AVX512DQ = 1 << 7,
    DMS_CPU_AVX512CD = 1 << 8,
    DMS_CPU_AVX512BF16 = 1 << 9,
    DMS_CPU_AMD = 1 << 10,
    DMS_CPU_X86 = 1 << 11,
};

/* The usable vector features as a DMS_CPU_* mask; 0 off x86. */
static inline uint32_t dms_cpu_features(void) {
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    uint32_t f = DMS_CPU_X86;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return f;
    unsigned maxLeaf = a;
    if (b == 0x68747541u) f |= DMS_CPU_AMD; /* "AuthenticAMD" */
    if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
    if (c & (1u << 0)) f |= DMS_CPU_SSE3;
    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1;
    if (!osxsave || !avx) return f;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    (void)hi;
    if ((lo & 0x6u) != 0x6u) return f; /* XMM + YMM state */
    f |= DMS_CPU_AVX;
    if (fma) f |= DMS_CPU_FMA;
    if (maxLeaf < 7) return f;
    __cpuid_count(7, 0, a, b, c, d);
    if (b & (1u << 5)) f |= DMS_CPU_AVX2;
    if ((lo & 0xE0u) == 0xE0u) { /* opmask + ZMM state */
        if (b & (1u << 16)) f |= DMS_CPU_AVX512F;
        if (b & (1u << 17)) f |= DMS_CPU_AVX512DQ;
        if (b & (1u << 28)) f |= DMS_CPU_AVX512CD;
        if (b & (1u << 30)) f |= DMS_CPU_AVX512BW;
        if (b & (1u << 31)) f |= DMS_CPU_AVX512VL;
        unsigned a1, b1, c1, d1;
        __cpuid_count(7, 1, a1, b1, c1, d1);
        (void)b1; (void)c1; (void)d1;
        if (a1 & (1u << 5)) f |= DMS_CPU_AVX512BF16;
    }
    return f;
#else
    return 0;
#endif
}

/* OpenBLAS's active core ("Haswell", "Prescott", ...), or "" when the library has no such call. */
static inline const char *dms_blas_corename(void) {
    char *(*corename)(void) = (char *(*)(void))dms_blas_symbol("openblas_get_corename");
    const char *name = corename ? corename() : NULL;
    return name ? name : "";
}

/* Re-runs OpenBLAS's DYNAMIC_ARCH core selection as if OPENBLAS_CORETYPE=name had been set at load
 * time: gotoblas_dynamic_quit() forgets the core, gotoblas_dynamic_init() reads the variable, picks the
 * kernel table and recomputes its blocking parameters. The variable is restored afterwards so child
 * processes see the user's environment. Only safe while no BLAS call runs. Returns 0 on success, -1 when
 * the library is not a DYNAMIC_ARCH build (the symbols are absent). */
static inline int dms_blas_select_core(const char *name) {
    void (*quit)(void) = (void (*)(void))dms_blas_symbol("gotoblas_dynamic_quit");
    void (*init)(void) = (void (*)(void))dms_blas_symbol("gotoblas_dynamic_init");
    if (!quit || !init) return -1;
    const char *old = getenv("OPENBLAS_CORETYPE");
    char *saved = old ? strdup(old) : NULL;
    setenv("OPENBLAS_CORETYPE", name, 1);
    quit();
    init();
    if (saved) {
        setenv("OPENBLAS_CORETYPE", saved, 1);
        free(saved);
    } else {
        unsetenv("OPENBLAS_CORETYPE");
    }
    return 0;
}
#endif
