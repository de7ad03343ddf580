#ifndef DMSURGERY_CBLAS_SHIM_H
#define DMSURGERY_CBLAS_SHIM_H
#include <cblas.h>
/* OpenBLAS thread control, declared in its cblas.h; re-exported so Swift sees one stable name. */
static inline void dms_blas_set_threads(int n) { openblas_set_num_threads(n); }
static inline int dms_blas_get_threads(void) { return openblas_get_num_threads(); }
#endif
