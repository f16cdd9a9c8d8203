/* fewmul.h - the fewmul runtime: load a compiled model and run it.
 *
 * `fewmul compile model.onnx -o out/` writes out/model.c, out/model.h and
 * out/model.so (the same code built as a shared object). This library loads such a
 * model, lists its inputs and outputs, and runs it on caller buffers. It never
 * exits or prints on its own: every call returns a status, and fm_last_error()
 * says what went wrong.
 *
 * Worked example:
 *
 *   #include <fewmul.h>
 *   fm_model *m;
 *   if (fm_load("out", &m) != FM_OK) { fprintf(stderr, "%s\n", fm_last_error()); return 1; }
 *   const fm_io_desc *in = fm_input(m, 0), *out = fm_output(m, 0);
 *   int64_t batch = 8;
 *   float *x = calloc(fm_io_numel(in, batch), sizeof(float));
 *   float *y = calloc(fm_io_numel(out, batch), sizeof(float));
 *   const void *ins[] = {x};
 *   void *outs[] = {y};
 *   if (fm_run(m, batch, ins, outs) != FM_OK) fprintf(stderr, "%s\n", fm_last_error());
 *   fm_free(m);
 *
 * Hostile inputs give a status, never a signal in the host: fm_load checks that the .so
 * is a whole ELF shared object before dlopen maps it (a truncated file is FM_ERR_FORMAT,
 * not SIGBUS); sizes are computed with overflow checks (fm_io_numel is -1, fm_run
 * FM_ERR_ARG / FM_ERR_NOMEM for a batch whose buffers or workspace do not fit); thread
 * counts are clamped (fm_set_threads).
 *
 * Threads: fm_run on one handle from several threads is safe but serialised (each
 * handle has a mutex around its workspace and run); for parallel runs load one handle
 * per thread (fm_load twice: the code and a weights file are shared, workspaces not).
 * fm_free must not race with calls on the same handle.
 *
 * Generated code can also be linked directly: model.h declares model_desc (of type
 * fm_model_desc below) and model_run(); the caller passes a workspace of
 * model_desc.workspace_size(batch) bytes, so the model itself allocates nothing.
 */
#ifndef FEWMUL_H
#define FEWMUL_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the ABI of a compiled model (also written into every generated model.h) ---- */
#ifndef FM_MODEL_DESC_DEFINED
#define FM_MODEL_DESC_DEFINED
#define FM_ABI_VERSION 1
typedef struct fm_io_desc {
  const char *name;
  int dtype;          /* ONNX TensorProto.DataType: 1 float32, 7 int64, 9 bool, ... */
  int rank;
  int64_t dims[8];    /* a dim < 0 means (-dim) * batch */
} fm_io_desc;

typedef struct fm_model_desc {
  int abi_version;                 /* FM_ABI_VERSION */
  const char *name;
  int ninputs, noutputs;
  const fm_io_desc *inputs, *outputs;
  size_t (*workspace_size)(int64_t batch);                  /* bytes, 64-byte aligned use;
                                      convex in batch (a max of a + b*batch), which fm_run
                                      relies on to detect a wrapped size */
  /* Runs the model: inputs/outputs in graph order; returns 0 or a nonzero status. */
  int (*run)(int64_t batch, const void *const *inputs, void *const *outputs, void *workspace);
  size_t weights_size;             /* 0 when weights are embedded in the code */
  int (*set_weights)(const void *blob, size_t size); /* when compiled with --weights=file */
  void (*set_threads)(int n);      /* OpenMP thread count (no-op without OpenMP) */
} fm_model_desc;
#endif

/* ---- runtime API ---- */
typedef enum {
  FM_OK = 0,
  FM_ERR_IO = 1,        /* a file could not be read */
  FM_ERR_FORMAT = 2,    /* not a fewmul model, wrong ABI, bad weights file */
  FM_ERR_ARG = 3,       /* invalid argument (NULL, batch <= 0, index out of range) */
  FM_ERR_NOMEM = 4,
  FM_ERR_RUN = 5,       /* the model reported a failure */
  FM_ERR_NO_DEVICE = 6, /* no such device (no OpenCL platform / CUDA device, bad index) */
  FM_ERR_DEVICE_BUILD = 7,  /* the device program failed to build (its log in the message) */
  FM_ERR_DEVICE_MEMORY = 8, /* out of device memory */
  FM_ERR_DEVICE = 9,    /* another device error, or a device the model was not built for */
} fm_status;

typedef struct fm_model fm_model;

/* Loads a compiled model from a directory written by `fewmul compile` (model.so and,
   if compiled with --weights=file, the weights file) or from a .so path. */
fm_status fm_load(const char *path, fm_model **out);
/* Wraps a model linked into the program (its model_desc); no dlopen. */
fm_status fm_wrap(const fm_model_desc *desc, fm_model **out);
void fm_free(fm_model *m);

int fm_num_inputs(const fm_model *m);
int fm_num_outputs(const fm_model *m);
const fm_io_desc *fm_input(const fm_model *m, int i);   /* NULL if out of range */
const fm_io_desc *fm_output(const fm_model *m, int i);
int fm_input_index(const fm_model *m, const char *name); /* -1 if none */
/* Elements of an input/output at batch; -1 if the count does not fit in int64_t. */
int64_t fm_io_numel(const fm_io_desc *d, int64_t batch);
size_t fm_dtype_bytes(int dtype);

/* The OpenMP thread count of fm_run on this handle (0: OpenMP's default), applied on
   the calling thread at each fm_run. Counts above fm_max_threads() (4 per online CPU,
   at most FM_MAX_THREADS) are clamped to it, since libgomp exits the process when it
   cannot create threads: the call still returns FM_OK, fm_get_threads() tells the
   count in force and fm_last_error() says it was clamped. With 0, an OpenMP default
   above fm_max_threads() (OMP_NUM_THREADS, omp_set_num_threads) is clamped at fm_run. */
#define FM_MAX_THREADS 1024
fm_status fm_set_threads(fm_model *m, int n);
int fm_get_threads(const fm_model *m);
int fm_max_threads(void);
/* Runs on caller buffers (graph order). The workspace is owned by the model handle
   and grown as needed; calls on one handle are serialised (see Threads above). */
fm_status fm_run(fm_model *m, int64_t batch, const void *const *inputs, void *const *outputs);

/* ---- devices ----
 * A model compiled with --emit opencl or --emit cuda runs on a device; its .so also
 * exports fewmul_device() (fm_device_desc below). fm_run stays the same: host buffers
 * in and out, copied to and from the device, which is initialised (context, program,
 * weights upload) once, on fm_set_device or the first run. A C model runs on "cpu".
 *
 *   if (fm_set_device(m, "opencl:0") != FM_OK) fprintf(stderr, "%s\n", fm_last_error());
 *   printf("%s\n", fm_device(m));   // "opencl:0 (pthread-cpu ...)" or "cpu"
 */
#ifndef FM_DEVICE_DESC_DEFINED
#define FM_DEVICE_DESC_DEFINED
typedef struct fm_device_desc {
  int abi_version;                 /* 1 */
  const char *api;                 /* "opencl", "cuda" */
  int (*select)(int index);        /* the device to use (before the first run) */
  int (*init)(void);               /* context, program, weights: once; 0 or a status */
  const char *(*device_name)(void);
  const char *(*error)(void);      /* message of the last nonzero status */
  void (*set_profiling)(int on);
  double (*kernel_ms)(void);       /* kernel time of the last run (profiling on) */
} fm_device_desc;
#endif
/* Selects and initialises the device: "cpu", "opencl", "opencl:N", "cuda", "cuda:N"
   (N counts the devices of every platform, from 0). A model runs only on the kind
   it was compiled for (FM_ERR_DEVICE otherwise). */
fm_status fm_set_device(fm_model *m, const char *device);
/* "cpu" or "<api>:<index> (<device name>)" once initialised ("<api>:<index>" before). */
const char *fm_device(const fm_model *m);
/* Kernel time from the device's profiling events: fm_set_profiling(m, 1) before the
   runs, then fm_kernel_ms gives the last run's kernel time (FM_ERR_ARG on the CPU). */
fm_status fm_set_profiling(fm_model *m, int on);
fm_status fm_kernel_ms(const fm_model *m, double *ms);

/* The message of the last failure in this thread. */
const char *fm_last_error(void);
const char *fm_status_str(fm_status s);

#ifdef __cplusplus
}
#endif
#endif
