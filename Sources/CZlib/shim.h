#ifndef DMSURGERY_CZLIB_SHIM_H
#define DMSURGERY_CZLIB_SHIM_H
#include <zlib.h>
/* inflateInit2 is a macro that passes the header's version and stream size; Swift does not import it. */
static inline int dms_inflate_init_gzip(z_stream *stream) { return inflateInit2(stream, 16 + MAX_WBITS); }
#endif
