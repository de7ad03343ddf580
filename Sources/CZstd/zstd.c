/* libzstd, loaded on first use (see CLazy/include/dms_lazy.h for why). Each function dmsurgery calls
 * is a trampoline with the header's own signature; add one DMS_LAZY_FN line per new function. */
#include "shim.h"
#include "dms_lazy.h"

static const char *const dms_zstd_candidates[] = { "libzstd.so.1", "libzstd.so", "libzstd.1.dylib", "libzstd.dylib", NULL };

dms_lazy_library dms_zstd = {
    .purpose = "libzstd, needed for zstd compression",
    .hint = "install libzstd (Debian/Ubuntu: libzstd1) or set DMSURGERY_LIBZSTD",
    .override_variable = "DMSURGERY_LIBZSTD",
    .candidates = dms_zstd_candidates,
};


DMS_LAZY_FN(dms_zstd, size_t, ZSTD_CCtx_setParameter, (ZSTD_CCtx* cctx, ZSTD_cParameter param, int value), (cctx, param, value))
DMS_LAZY_FN(dms_zstd, size_t, ZSTD_CStreamOutSize, (void), ())
DMS_LAZY_FN(dms_zstd, size_t, ZSTD_DCtx_setParameter, (ZSTD_DCtx* dctx, ZSTD_dParameter param, int value), (dctx, param, value))
DMS_LAZY_FN(dms_zstd, size_t, ZSTD_DStreamInSize, (void), ())
DMS_LAZY_FN(dms_zstd, size_t, ZSTD_compress, (void* dst, size_t dstCapacity, const void* src, size_t srcSize, int compressionLevel), (dst, dstCapacity, src, srcSize, compressionLevel))
DMS_LAZY_FN(dms_zstd, size_t, ZSTD_compressBound, (size_t srcSize), (srcSize))
DMS_LAZY_FN(dms_zstd, size_t, ZSTD_compressStream2, (ZSTD_CCtx* cctx, ZSTD_outBuffer* output, ZSTD_inBuffer* input, ZSTD_EndDirective endOp), (cctx, output, input, endOp))
DMS_LAZY_FN(dms_zstd, ZSTD_CCtx*, ZSTD_createCCtx, (void), ())
DMS_LAZY_FN(dms_zstd, ZSTD_DCtx*, ZSTD_createDCtx, (void), ())
DMS_LAZY_FN(dms_zstd, ZSTD_DStream*, ZSTD_createDStream, (void), ())
DMS_LAZY_FN(dms_zstd, size_t, ZSTD_decompress, (void* dst, size_t dstCapacity, const void* src, size_t compressedSize), (dst, dstCapacity, src, compressedSize))
DMS_LAZY_FN(dms_zstd, size_t, ZSTD_decompressStream, (ZSTD_DStream* zds, ZSTD_outBuffer* output, ZSTD_inBuffer* input), (zds, output, input))
DMS_LAZY_FN(dms_zstd, size_t, ZSTD_freeCCtx, (ZSTD_CCtx* cctx), (cctx))
DMS_LAZY_FN(dms_zstd, size_t, ZSTD_freeDCtx, (ZSTD_DCtx* dctx), (dctx))
DMS_LAZY_FN(dms_zstd, size_t, ZSTD_freeDStream, (ZSTD_DStream* zds), (zds))
DMS_LAZY_FN(dms_zstd, const char*, ZSTD_getErrorName, (size_t code), (code))
DMS_LAZY_FN(dms_zstd, unsigned long long, ZSTD_getFrameContentSize, (const void *src, size_t srcSize), (src, srcSize))
DMS_LAZY_FN(dms_zstd, unsigned, ZSTD_isError, (size_t code), (code))
DMS_LAZY_FN(dms_zstd, int, ZSTD_maxCLevel, (void), ())
