#ifndef CPNG_SHIM_H
#define CPNG_SHIM_H
// libpng 1.6 (libpng-dev), simplified API (png_image_*).
#include <png.h>
#endif
