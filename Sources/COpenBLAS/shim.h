#ifndef COPENBLAS_SHIM_H
#define COPENBLAS_SHIM_H
// OpenBLAS's CBLAS interface plus its control functions
// (openblas_get_corename, openblas_set_num_threads, openblas_get_config).
#include <cblas.h>
#endif
