/* io.h - dense arrays on disk: NumPy .npy (io_npy.c) and ONNX TensorProto .pb
 * (io_pb.c), for the CLI's inputs and outputs and for tests. Failures are fm_fail
 * naming the file; a file being written is registered for cleanup until complete.
 *
 *   FmArray a;
 *   fm_array_read("x.npy", &a);           // or .pb
 *   ... a.dtype, a.rank, a.dims, a.data ...
 *   fm_npy_write("y.npy", &a);
 *   fm_array_free(&a);
 */
#ifndef FM_IO_H
#define FM_IO_H
#include "ir/ir.h"

typedef struct FmArray {
  int dtype;              /* FmDType / ONNX numbering */
  int rank;
  int64_t dims[FM_MAXRANK];
  void *data;             /* malloc'ed */
  size_t nbytes;
  char *name;             /* .pb only (may be NULL); malloc'ed */
} FmArray;
/* Readers check the shape's byte size (at most FM_MAX_TENSOR_BYTES, ir.h) against the
   data the file holds before allocating it. */
void fm_npy_read(const char *path, FmArray *a);
void fm_npy_read_file(FILE *f, const char *path, FmArray *a); /* closes f */
void fm_npy_write(const char *path, const FmArray *a);
void fm_pb_read(const char *path, FmArray *a);
void fm_pb_read_mem(const void *buf, size_t n, const char *path, FmArray *a);
void fm_pb_write(const char *path, const FmArray *a, const char *name);
void fm_array_read(const char *path, FmArray *a); /* .npy or .pb by extension */
void fm_array_free(FmArray *a);
int64_t fm_array_numel(const FmArray *a);               /* -1 on a negative dim or overflow */
int fm_array_nbytes(const FmArray *a, size_t *nbytes);   /* 0 if over FM_MAX_TENSOR_BYTES */
const char *fm_dims_str(char *buf, size_t n, int rank, const int64_t *dims, const char *batch);

#endif
