#ifndef CJPEG_SHIM_H
#define CJPEG_SHIM_H
// libjpeg-turbo (libjpeg62-turbo-dev). jpeglib.h needs stdio.h and stddef.h first.
#include <stdio.h>
#include <stddef.h>
#include <jpeglib.h>
#endif
