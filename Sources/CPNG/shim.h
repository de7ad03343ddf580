#ifndef DMSURGERY_CPNG_SHIM_H
#define DMSURGERY_CPNG_SHIM_H
/* libpng's simplified API (png_image_*), used to encode sample grids. */
#include <png.h>
#endif
