/* OpenBLAS, loaded on first use (see CLazy/include/dms_lazy.h for why). Each function dmsurgery calls
 * is a trampoline with the header's own signature: a new BLAS or LAPACK routine declared in shim.h
 * needs one DMS_LAZY_FN / DMS_LAZY_VOID_FN line here (LAPACK's Fortran symbols too: `sposv_` etc.;
 * OpenBLAS exports them). */
#include "shim.h"
#include "engine.h"
#include "dms_lazy.h"
#include <stdlib.h>

/* TensorMath keeps OpenBLAS single-threaded and splits sgemms itself (TensorMath/Parallel.swift). A
   library loaded without a thread count starts one pool thread per core in its constructor, only for
   them to be told to stop; so the load runs with OPENBLAS_NUM_THREADS=1 unless the user set a count,
   and the environment is put back as it was right after (child processes see the user's). */
static int dms_openblas_set_count;

static void dms_openblas_before_open(void) {
    dms_openblas_set_count = !getenv("OPENBLAS_NUM_THREADS") && !getenv("GOTO_NUM_THREADS") && !getenv("OMP_NUM_THREADS");
    if (dms_openblas_set_count) setenv("OPENBLAS_NUM_THREADS", "1", 1);
}

static int dms_openblas_after_open(void *handle, char *why, size_t cap) {
    (void)handle; (void)why; (void)cap;
    if (dms_openblas_set_count) unsetenv("OPENBLAS_NUM_THREADS");
    return 0;
}

static const char *const dms_openblas_candidates[] = {
    "libopenblas.so.0", "libopenblas.so", "libopenblas.0.dylib", "libopenblas.dylib", NULL,
};

dms_lazy_library dms_openblas = {
    .purpose = "OpenBLAS, needed for matrix products",
    .hint = "install OpenBLAS (Debian/Ubuntu: libopenblas0-pthread) or set DMSURGERY_LIBOPENBLAS",
    .override_variable = "DMSURGERY_LIBOPENBLAS",
    .candidates = dms_openblas_candidates,
    .before_open = dms_openblas_before_open,
    .check = dms_openblas_after_open,
};

void *dms_blas_symbol(const char *name) { return dms_lazy_symbol_optional(&dms_openblas, name); }

DMS_LAZY_VOID_FN(dms_openblas, cblas_sgemm, (OPENBLAS_CONST enum CBLAS_ORDER Order, OPENBLAS_CONST enum CBLAS_TRANSPOSE TransA, OPENBLAS_CONST enum CBLAS_TRANSPOSE TransB, OPENBLAS_CONST blasint M, OPENBLAS_CONST blasint N, OPENBLAS_CONST blasint K, OPENBLAS_CONST float alpha, OPENBLAS_CONST float *A, OPENBLAS_CONST blasint lda, OPENBLAS_CONST float *B, OPENBLAS_CONST blasint ldb, OPENBLAS_CONST float beta, float *C, OPENBLAS_CONST blasint ldc), (Order, TransA, TransB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc))
DMS_LAZY_VOID_FN(dms_openblas, cblas_saxpy, (OPENBLAS_CONST blasint n, OPENBLAS_CONST float alpha, OPENBLAS_CONST float *x, OPENBLAS_CONST blasint incx, float *y, OPENBLAS_CONST blasint incy), (n, alpha, x, incx, y, incy))
DMS_LAZY_VOID_FN(dms_openblas, cblas_sscal, (OPENBLAS_CONST blasint N, OPENBLAS_CONST float alpha, float *X, OPENBLAS_CONST blasint incX), (N, alpha, X, incX))
DMS_LAZY_FN(dms_openblas, int, openblas_get_num_threads, (void), ())
DMS_LAZY_VOID_FN(dms_openblas, openblas_set_num_threads, (int num_threads), (num_threads))
DMS_LAZY_VOID_FN(dms_openblas, cblas_dgemm, (OPENBLAS_CONST enum CBLAS_ORDER Order, OPENBLAS_CONST enum CBLAS_TRANSPOSE TransA, OPENBLAS_CONST enum CBLAS_TRANSPOSE TransB, OPENBLAS_CONST blasint M, OPENBLAS_CONST blasint N, OPENBLAS_CONST blasint K, OPENBLAS_CONST double alpha, OPENBLAS_CONST double *A, OPENBLAS_CONST blasint lda, OPENBLAS_CONST double *B, OPENBLAS_CONST blasint ldb, OPENBLAS_CONST double beta, double *C, OPENBLAS_CONST blasint ldc), (Order, TransA, TransB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc))
DMS_LAZY_VOID_FN(dms_openblas, dposv_, (const char *uplo, const int *n, const int *nrhs, double *a, const int *lda, double *b, const int *ldb, int *info, size_t uplo_len), (uplo, n, nrhs, a, lda, b, ldb, info, uplo_len))
DMS_LAZY_VOID_FN(dms_openblas, dgesdd_, (const char *jobz, const int *m, const int *n, double *a, const int *lda, double *s, double *u, const int *ldu, double *vt, const int *ldvt, double *work, const int *lwork, int *iwork, int *info, size_t jobz_len), (jobz, m, n, a, lda, s, u, ldu, vt, ldvt, work, lwork, iwork, info, jobz_len))
