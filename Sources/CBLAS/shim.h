#ifndef DMSURGERY_CBLAS_SHIM_H
#define DMSURGERY_CBLAS_SHIM_H
#include <cblas.h>
/* OpenBLAS thread control, declared in its cblas.h; re-exported so Swift sees one stable name. */
static inline void dms_blas_set_threads(int n) { openblas_set_num_threads(n); }
static inline int dms_blas_get_threads(void) { return openblas_get_num_threads(); }
/* LAPACK from OpenBLAS (libopenblas exports it; cblas.h declares none of it). Fortran calling convention:
   every argument by pointer, matrices column-major, and gfortran's hidden length of each character argument
   passed last (declared so the callee never reads a length that was not passed). */
#include <stddef.h>
void dposv_(const char *uplo, const int *n, const int *nrhs, double *a, const int *lda, double *b, const int *ldb,
            int *info, size_t uplo_len);
void dgesdd_(const char *jobz, const int *m, const int *n, double *a, const int *lda, double *s, double *u, const int *ldu,
             double *vt, const int *ldvt, double *work, const int *lwork, int *iwork, int *info, size_t jobz_len);
#endif
