/* libpng, loaded on first use (see CLazy/include/dms_lazy.h for why). Each function dmsurgery calls
 * is a trampoline with the header's own signature; add one DMS_LAZY_FN line per new function. */
#include "shim.h"
#include "dms_lazy.h"

static const char *const dms_png_candidates[] = { "libpng16.so.16", "libpng16.so", "libpng16.16.dylib", "libpng16.dylib", NULL };

dms_lazy_library dms_png = {
    .purpose = "libpng 1.6, needed for PNG images",
    .hint = "install libpng (Debian/Ubuntu: libpng16-16) or set DMSURGERY_LIBPNG",
    .override_variable = "DMSURGERY_LIBPNG",
    .candidates = dms_png_candidates,
};

DMS_LAZY_FN(dms_png, int, png_image_begin_read_from_memory, (png_imagep image, png_const_voidp memory, size_t size), (image, memory, size))
DMS_LAZY_FN(dms_png, int, png_image_finish_read, (png_imagep image, png_const_colorp background, void *buffer, png_int_32 row_stride, void *colormap), (image, background, buffer, row_stride, colormap))
DMS_LAZY_VOID_FN(dms_png, png_image_free, (png_imagep image), (image))
DMS_LAZY_FN(dms_png, int, png_image_write_to_memory, (png_imagep image, void *memory, png_alloc_size_t *PNG_RESTRICT memory_bytes, int convert_to_8_bit, const void *buffer, png_int_32 row_stride, const void *colormap), (image, memory, memory_bytes, convert_to_8_bit, buffer, row_stride, colormap))
