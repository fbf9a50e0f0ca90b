#ifndef CJPEG_SHIM_H
#define CJPEG_SHIM_H
// libjpeg-turbo (libjpeg62-turbo-dev). jpeglib.h needs stdio.h and stddef.h first.
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <jpeglib.h>
#include <jerror.h>

// libjpeg reports fatal errors through error_exit, which must not return (the default calls
// exit()). Swift cannot setjmp, so decoding and encoding run in these C helpers: the error
// manager formats the message and longjmps back to the helper, which cleans up and returns -1.
// Warnings: "Premature end of JPEG file" (the data ran out: libjpeg would fill the rest with
// grey) is an error, as PIL raises "image file is truncated" for it. Every other warning
// (extraneous bytes before a marker, an unknown JFIF revision, ...) is ignored, as PIL does.

struct umjpeg_error_mgr {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char *message;
    size_t message_size;
};

static void umjpeg_error_exit(j_common_ptr cinfo) {
    struct umjpeg_error_mgr *err = (struct umjpeg_error_mgr *)cinfo->err;
    char buffer[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, buffer);
    if (err->message && err->message_size > 0) {
        strncpy(err->message, buffer, err->message_size - 1);
        err->message[err->message_size - 1] = 0;
    }
    longjmp(err->jump, 1);
}

static void umjpeg_emit_message(j_common_ptr cinfo, int msg_level) {
    if (msg_level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
        // Truncated file: fail rather than return an image padded with grey.
        umjpeg_error_exit(cinfo);
    }
    // Other warnings and trace messages (msg_level >= 0) are ignored.
}

/// Decodes a baseline or progressive JPEG held in memory. Output: *pixels (malloc'd, free with
/// free()) holds height x width x channels bytes, interleaved (HWC); channels is 1 for a
/// grayscale JPEG and 3 otherwise (YCbCr/RGB converted to RGB by libjpeg, ISLOW IDCT, fancy
/// upsampling: the libjpeg defaults PIL uses). CMYK and YCCK JPEGs are decoded to CMYK by
/// libjpeg and converted to RGB as PIL does: the stored values are taken as inverted (Adobe
/// convention, PIL's "CMYK;I"), then R = (255 - K) - (C * (255 - K)) / 255 per channel with
/// PIL's rounded division by 255 (Pillow's cmyk2rgb).
/// Images of more than max_pixels pixels (width x height from the header) are refused before
/// any pixel buffer is allocated or decoded: a few hundred bytes can declare 65000 x 65000.
/// Returns 0 on success, -1 with a message on failure, -2 (width and height set) when the image
/// is larger than max_pixels.
static inline int umjpeg_decode(const unsigned char *data, unsigned long size,
                                unsigned char **pixels, int *width, int *height, int *channels,
                                unsigned long long max_pixels,
                                char *message, size_t message_size) {
    struct jpeg_decompress_struct cinfo;
    struct umjpeg_error_mgr jerr;
    unsigned char *volatile out = NULL;
    *pixels = NULL;
    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = umjpeg_error_exit;
    jerr.pub.emit_message = umjpeg_emit_message;
    jerr.message = message;
    jerr.message_size = message_size;
    if (setjmp(jerr.jump)) {
        jpeg_destroy_decompress(&cinfo);
        free(out);
        return -1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, size);
    jpeg_read_header(&cinfo, TRUE);
    if ((unsigned long long)cinfo.image_width * (unsigned long long)cinfo.image_height > max_pixels) {
        *width = (int)cinfo.image_width;
        *height = (int)cinfo.image_height;
        jpeg_destroy_decompress(&cinfo);
        return -2;
    }
    int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    cinfo.out_color_space = cmyk ? JCS_CMYK : (cinfo.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB);
    jpeg_start_decompress(&cinfo);
    int c = cmyk ? 3 : cinfo.output_components;
    size_t stride = (size_t)cinfo.output_width * (size_t)c;
    // CMYK rows are read into the tail of a 4-byte-per-pixel row and converted in place.
    out = (unsigned char *)malloc(stride * cinfo.output_height + (cmyk ? (size_t)cinfo.output_width * 4 : 0));
    if (!out) {
        if (message && message_size > 0) {
            strncpy(message, "out of memory", message_size - 1);
            message[message_size - 1] = 0;
        }
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        size_t y = cinfo.output_scanline;
        if (!cmyk) {
            JSAMPROW row = out + y * stride;
            jpeg_read_scanlines(&cinfo, &row, 1);
            continue;
        }
        unsigned char *scratch = out + stride * cinfo.output_height;
        JSAMPROW row = scratch;
        jpeg_read_scanlines(&cinfo, &row, 1);
        unsigned char *dst = out + y * stride;
        for (JDIMENSION x = 0; x < cinfo.output_width; x++) {
            const unsigned char *p = scratch + 4 * (size_t)x;
            int nk = p[3];  // 255 - K with K = 255 - stored value (inverted CMYK)
            for (int k = 0; k < 3; k++) {
                int ink = 255 - p[k];
                int t = ink * nk + 128;
                int v = nk - (((t >> 8) + t) >> 8);
                dst[3 * (size_t)x + k] = (unsigned char)(v < 0 ? 0 : (v > 255 ? 255 : v));
            }
        }
    }
    jpeg_finish_decompress(&cinfo);
    *width = (int)cinfo.output_width;
    *height = (int)cinfo.output_height;
    *channels = c;
    jpeg_destroy_decompress(&cinfo);
    *pixels = out;
    return 0;
}

/// Encodes height x width x channels interleaved bytes (channels 1 or 3) as a baseline JPEG
/// with the given quality (1...100). *output is malloc'd (free with free()).
/// Returns 0 on success, -1 with a message on failure.
static inline int umjpeg_encode(const unsigned char *pixels, int width, int height, int channels,
                                int quality, unsigned char **output, unsigned long *output_size,
                                char *message, size_t message_size) {
    struct jpeg_compress_struct cinfo;
    struct umjpeg_error_mgr jerr;
    unsigned char *buffer = NULL;
    unsigned long buffer_size = 0;
    *output = NULL;
    *output_size = 0;
    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = umjpeg_error_exit;
    jerr.pub.emit_message = umjpeg_emit_message;
    jerr.message = message;
    jerr.message_size = message_size;
    if (setjmp(jerr.jump)) {
        jpeg_destroy_compress(&cinfo);
        free(buffer);
        return -1;
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, &buffer, &buffer_size);
    cinfo.image_width = (JDIMENSION)width;
    cinfo.image_height = (JDIMENSION)height;
    cinfo.input_components = channels;
    cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    size_t stride = (size_t)width * (size_t)channels;
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)cinfo.next_scanline * stride);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    *output = buffer;
    *output_size = buffer_size;
    return 0;
}
#endif
