#ifndef DMSURGERY_CZSTD_SHIM_H
#define DMSURGERY_CZSTD_SHIM_H
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>
/* ZSTD_CONTENTSIZE_* are macros of unsigned long long casts that Swift does not import. */
static inline unsigned long long dms_zstd_contentsize_unknown(void) { return ZSTD_CONTENTSIZE_UNKNOWN; }
static inline unsigned long long dms_zstd_contentsize_error(void) { return ZSTD_CONTENTSIZE_ERROR; }
#endif
