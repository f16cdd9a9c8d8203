/* kernel.h - the kernel IR: loops over buffers, written so a C programmer can read it.
 *
 * Each graph node is lowered (compiler/ops/<family>.c, fm_lower_<Op>) to one KFn: a
 * statement tree over buffers. Every backend is a printer of this tree (C now; LLVM,
 * OpenCL, CUDA later), the interpreter (kinterp.c) runs it for constant folding and
 * as a reference, and the cost model counts its multiplications and additions
 * (trip counts x ops), so the number reported is the number the emitted code does.
 *
 * Worked example - Relu over a tensor of n elements (n may involve the batch N):
 *
 *   void fm_lower_Relu(KB *b, Node *n) {
 *     KBuf *x = kb_in(b, 0), *y = kb_out(b, 0);
 *     KVar *i = kb_for(b, "i", k_i(0), kb_numel(b, n->out[0]), KL_PARALLEL);
 *       kb_store(b, y, k_var(i), k_max(k_load(x, k_var(i)), k_f32(0)));
 *     kb_end(b);
 *   }
 *
 * prints as
 *   for (int64_t i = 0; i < N*4096; i++) t3[i] = fmaxf(t2[i], 0.0f);
 *
 * Types: every expression has a dtype (FmDType). Index expressions are FM_I64.
 * Arithmetic operands must have the same dtype (insert k_cast); comparisons give
 * FM_BOOL; k_f32/k_i constants take their dtype. Booleans are stored as uint8.
 */
#ifndef FM_KERNEL_H
#define FM_KERNEL_H
#include "ir/ir.h"
#include "cpu/fm_cpu.h"

typedef struct KVar { int id; const char *name; FmDType t; } KVar;

typedef enum {
  KBUF_TENSOR,  /* a graph tensor: input, output, constant weight or intermediate */
  KBUF_CONST,   /* constant data made by the lowering (transformed weights, tables) */
  KBUF_SCRATCH, /* kernel-private scratch in the workspace (size may involve N) */
} KBufKind;

typedef struct KBuf {
  int id;
  KBufKind kind;
  const char *name;
  FmDType t;
  Tensor *tensor;     /* KBUF_TENSOR */
  int64_t nelem;      /* KBUF_CONST / KBUF_SCRATCH; dim encoding of ir.h (may be symbolic) */
  void *data;         /* KBUF_CONST */
} KBuf;

typedef enum {
  KE_CONST,   /* f (float types) or i (integer types) */
  KE_VAR,     /* loop variable or scalar local */
  KE_BATCH,   /* the batch size N (FM_I64) */
  KE_LOAD,    /* buf[a] */
  KE_ADDR,    /* &buf[a]: only as an argument of KS_CALL */
  KE_UN,      /* op a */
  KE_BIN,     /* a op b */
  KE_FMA,     /* a*b + c */
  KE_SELECT,  /* a ? b : c */
  KE_CAST,    /* (t) a */
} KExprKind;

/* Operators: one table (kops.def) gives the enums, names, C spelling and cost class. */
typedef enum {
#define KUN(id, dump, name, cd, cf, cost) KU_##id,
#define KBIN(id, dump, infix, name, cop, cd, cf, prec, cost)
#include "kernel/kops.def"
#undef KUN
#undef KBIN
  KU_COUNT
} KUnOp;

typedef enum {
#define KUN(id, dump, name, cd, cf, cost)
#define KBIN(id, dump, infix, name, cop, cd, cf, prec, cost) KB_##id,
#include "kernel/kops.def"
#undef KUN
#undef KBIN
  KB_COUNT
} KBinOp;

/* Cost classes of operators on data (kcost.c): which KCost field one evaluation adds to. */
typedef enum { KC_ADD, KC_MUL, KC_SHIFT, KC_OTHER } KCostClass;

typedef struct KUnInfo { const char *dump, *name, *c_double, *c_float; KCostClass cost; } KUnInfo;
typedef struct KBinInfo {
  const char *dump; int infix; const char *name, *c_op, *c_double, *c_float; int c_prec;
  KCostClass cost;
} KBinInfo;
extern const KUnInfo fm_kun[KU_COUNT];   /* kops.c */
extern const KBinInfo fm_kbin[KB_COUNT];
/* A new operator is added in kops.def, and then the interpreter (kinterp.c unop/binop),
   the C printer's special cases and the verifier's typing rule (kverify.c) are checked:
   the counts below are the ones those files were written for. */
_Static_assert(KU_COUNT == 26, "kops.def: update kinterp.c, emit_c.c, kverify.c for the new unary op");
_Static_assert(KB_COUNT == 23, "kops.def: update kinterp.c, emit_c.c, kverify.c for the new binary op");

typedef struct KExpr {
  KExprKind k;
  FmDType t;
  int op;               /* KUnOp / KBinOp */
  double f; int64_t i;  /* KE_CONST */
  KVar *var;            /* KE_VAR */
  KBuf *buf;            /* KE_LOAD, KE_ADDR */
  struct KExpr *a, *b, *c;
} KExpr;

typedef enum { KL_SERIAL, KL_PARALLEL, KL_VECTOR, KL_UNROLL } KLoop;

typedef enum {
  KS_FOR,    /* for (var = lo; var < hi; var++) body */
  KS_LET,    /* declare scalar var = e (mutable) */
  KS_SET,    /* var = e, or var op= e when accop >= 0 (KB_ADD, KB_MAX, ...) */
  KS_STORE,  /* buf[idx] = e, or buf[idx] op= e when accop >= 0 */
  KS_IF,     /* if (e) body else els */
  KS_CALL,   /* fn(args...): a routine of the CPU kernel library (compiler/cpu/fm_cpu.h) */
  KS_COMMENT,
} KStmtKind;

typedef struct KStmt {
  KStmtKind k;
  KVar *var;
  KExpr *lo, *hi;       /* KS_FOR */
  KLoop loop;
  KExpr *e;             /* value / condition */
  KBuf *buf; KExpr *idx;
  int accop;            /* -1: plain store/assignment */
  struct KStmt *body, *els; /* first statements of child blocks */
  struct KStmt *next;
  const char *fn;       /* KS_CALL; text of KS_COMMENT */
  KExpr **args; int nargs;
  KExpr *muls, *adds;   /* KS_CALL: multiplications and additions it performs (for cost) */
} KStmt;

typedef struct KFn {
  const char *name;     /* C identifier, unique in the model */
  Node *node;           /* the graph node it implements (NULL for helpers) */
  KBuf **bufs; int nbufs, capbufs;
  KVar **vars; int nvars, capvars;
  KStmt *body;
  struct KFn *next;
} KFn;

/* ---- what the lowering is for (target.c) ---- */
typedef struct FmTarget {
  const char *name;     /* "native", "x86-64-v3", "x86-64-v4", "generic" */
  const char *march;    /* -march= for building the generated code */
  int avx2, avx512;     /* ISA the generated code may use (avx2 includes FMA) */
  int gemm_mr, gemm_nr; /* the CPU library's register tile under that ISA */
} FmTarget;
/* 0 and *t filled, or -1 for an unknown name. "native" (or NULL) reads the ISA of
   the machine running fewmul. */
int fm_target_get(const char *name, FmTarget *t);
const char *fm_target_names(void);  /* "native, x86-64-v3, ..." for messages */

typedef enum { FM_LOWER_AUTO, FM_LOWER_DIRECT, FM_LOWER_GEMM } FmLowerChoice;
typedef struct FmLowerOpts {
  FmTarget target;
  FmLowerChoice conv;   /* Conv: auto (im2col + GEMM where it pays), direct loops, or GEMM wherever it applies */
  FmLowerChoice gemm;   /* Gemm/MatMul float32: auto (fm_sgemm) or direct loops */
  int (*can_call)(const char *routine); /* the backend's capability (NULL: every routine) */
} FmLowerOpts;
const FmLowerOpts *fm_lower_opts_default(void); /* native, auto, every routine */

/* ---- builder ---- */
typedef struct KB {
  const FmLowerOpts *opts;    /* never NULL inside a lowering (kb_begin sets the default) */
  Arena *a;
  Graph *g;
  Node *node;
  KFn *fn;
  KStmt **tail;               /* where the next statement goes */
  KStmt **stack[64]; KStmt *open[64]; int depth;
  KBuf **inbufs, **outbufs;   /* per node input/output (NULL for absent optional inputs) */
} KB;

KFn *kb_begin(KB *b, Graph *g, Node *n, const char *name); /* a KFn for node n */
KBuf *kb_in(KB *b, int i);                 /* buffer of n->in[i] (NULL if absent) */
KBuf *kb_out(KB *b, int i);
KBuf *kb_tensor(KB *b, Tensor *t);         /* buffer of any tensor */
KBuf *kb_const(KB *b, const char *name, FmDType t, int64_t nelem, const void *data); /* copies */
KBuf *kb_scratch(KB *b, const char *name, FmDType t, int64_t nelem);
KExpr *kb_dim(KB *b, int64_t d);           /* a dim as an FM_I64 expression (N*k if symbolic) */
KExpr *kb_numel(KB *b, const Tensor *t);   /* product of dims */

KVar *kb_for(KB *b, const char *name, KExpr *lo, KExpr *hi, KLoop loop); /* opens a block */
void kb_if(KB *b, KExpr *cond);            /* opens a block */
void kb_else(KB *b);                       /* switches the open if to its else block */
void kb_end(KB *b);                        /* closes the innermost for/if */
KVar *kb_let(KB *b, const char *name, FmDType t, KExpr *init);
void kb_set(KB *b, KVar *v, KExpr *e);
void kb_acc(KB *b, KVar *v, KBinOp op, KExpr *e);           /* v op= e */
void kb_store(KB *b, KBuf *buf, KExpr *idx, KExpr *e);
void kb_store_acc(KB *b, KBuf *buf, KExpr *idx, KBinOp op, KExpr *e); /* buf[idx] op= e */
void kb_call(KB *b, const char *fn, KExpr *muls, KExpr *adds, int nargs, ...); /* KExpr* args */
void kb_comment(KB *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- expressions (allocated in the builder's arena, set by kb_begin) ---- */
KExpr *k_f32(double v);
KExpr *k_const(FmDType t, double v);        /* a constant of any numeric dtype */
KExpr *k_i(int64_t v);                       /* FM_I64 */
KExpr *k_var(KVar *v);
KExpr *k_batch(void);
KExpr *k_load(KBuf *buf, KExpr *idx);
KExpr *k_addr(KBuf *buf, KExpr *idx);
KExpr *k_un(KUnOp op, KExpr *a);
KExpr *k_bin(KBinOp op, KExpr *a, KExpr *b);
KExpr *k_add(KExpr *a, KExpr *b);            /* folds constants and x+0 */
KExpr *k_sub(KExpr *a, KExpr *b);
KExpr *k_mul(KExpr *a, KExpr *b);            /* folds constants, x*1, x*0 */
KExpr *k_div(KExpr *a, KExpr *b);
KExpr *k_mod(KExpr *a, KExpr *b);
KExpr *k_min(KExpr *a, KExpr *b);
KExpr *k_max(KExpr *a, KExpr *b);
KExpr *k_fma(KExpr *a, KExpr *b, KExpr *c);
KExpr *k_select(KExpr *c, KExpr *a, KExpr *b);
KExpr *k_cast(FmDType t, KExpr *a);          /* no-op if already t */
KExpr *k_lt(KExpr *a, KExpr *b);
KExpr *k_ge(KExpr *a, KExpr *b);
KExpr *k_and(KExpr *a, KExpr *b);

/* Row-major flat index of tensor t at idx[0..rank-1]; dims may be symbolic. */
KExpr *kb_index(KB *b, const Tensor *t, KExpr **idx);
/* Index into `in` for output position idx[] of `out` under ONNX multidirectional
   broadcasting (in's dims of size 1 are read at 0; missing leading dims ignored). */
KExpr *kb_bcast_index(KB *b, const Tensor *in, const Tensor *out, KExpr **idx);
/* Opens one loop per dim of t (outermost KL_PARALLEL, others serial), filling vars[]. */
void kb_loops(KB *b, const Tensor *t, KVar **vars);
void kb_end_loops(KB *b, const Tensor *t);

/* ---- whole model ---- */
typedef struct KProgram {
  Graph *g;
  KFn *fns, **last;
  int nfns;
} KProgram;

/* Lowers every node of g (shapes inferred, constants folded) to kernel IR; fails
   naming every node whose op has no lowering. opts NULL: fm_lower_opts_default(). */
KProgram *fm_lower_graph(Graph *g);
KProgram *fm_lower_graph_opts(Graph *g, const FmLowerOpts *opts);
/* May the lowering call this CPU library routine (the backend's can_call)? */
int fm_lower_can_call(const KB *b, const char *routine);

/* Interpreter (kinterp.c): runs fn with buffers bound to host memory: ptrs[buf->id]
   for every KBUF_TENSOR / KBUF_SCRATCH buffer (KBUF_CONST use buf->data).
   Returns 0, or -1 with a message in err. */
int fm_kinterp(KFn *fn, int64_t batch, void **ptrs, char *err, size_t errlen);

/* Verifier (kverify.c): operand dtypes, ownership and scopes, loop marks, static
   buffer bounds. Returns 0, or -1 with "kernel K: what" in err. Runs after every
   lowering in builds without NDEBUG (passes/lower.c) and before the interpreter. */
int fm_kverify(const KFn *fn, char *err, size_t errlen);
int fm_kverify_at(const KFn *fn, int64_t batch, char *err, size_t errlen); /* one batch only */

/* ---- CPU library routines callable with kb_call (kinterp.c's table) ----
 * name and argument kinds and the exact operation count (fm_cpu.h's FM_CPU_ROUTINES);
 * call() is the interpreter's: it gets the marshalled arguments and, per pointer,
 * how many elements remain from it to the end of its buffer; it returns NULL or a
 * message (bad extents). */
typedef struct FmRoutine {
  const char *name;
  const char *kinds;
  FmRoutineCount count;
  const char *(*call)(const FmArg *a, const int64_t *avail, char *msg, size_t msglen);
} FmRoutine;
const FmRoutine *fm_routine_find(const char *name); /* NULL if unknown */

/* ---- analyses every printer needs (kanalysis.c) ---- */
/* Whether fn writes buffer b (stores to it or passes it as a written pointer to a
   CPU library routine); a printer makes the parameter of a buffer it never writes
   const (C) or readonly (LLVM). */
int fm_kfn_writes(const KFn *fn, const KBuf *b);
int fm_kexpr_uses_batch(const KExpr *e);
int fm_kstmts_use_batch(const KStmt *s);
int fm_kexpr_refs(const KExpr *e, const KVar *v);
int fm_kconst_n1(const KExpr *e, int64_t *out);  /* integer value at N = 1, if constant */
/* Elements of buffer b at batch N; -1 when unknown or when the count overflows int64. */
int64_t fm_kbuf_nelem(const KBuf *b, int64_t batch);
double fm_kwork(const KStmt *s);                  /* operations, an estimate for forking */
/* A loop body that assigns scalars declared outside it (or calls a routine): a
   reduction, so no simd hint. */
int fm_kloop_reduces(const KFn *fn, const KStmt *body);
/* Forking a KL_PARALLEL loop s: never (too little work), always, or when its trip
   count (times inner's) is at least min_trips at run time. inner is the perfectly
   nested loop to collapse with (only when the loop forks). */
#define FM_FORK_WORK 32768 /* operations below which a fork costs more than it saves */
typedef enum { KFORK_NEVER, KFORK_ALWAYS, KFORK_IF } KForkMode;
typedef struct KFork { KForkMode mode; const KStmt *inner; double min_trips; } KFork;
KFork fm_kfork(const KStmt *s);

/* Cost (cost.c): multiplications and additions the kernel performs at batch N. */
typedef struct KCost { double muls, adds, shifts, other; } KCost;
KCost fm_kcost(KFn *fn, int64_t batch);

void fm_kdump(KFn *fn, FILE *f);

/* An integer value wrapped to dtype t as C stores it (bool -> 0/1). The interpreter and
   the C printer both use it, so constants and arithmetic agree between them. */
static inline int64_t fm_kwrap(FmDType t, int64_t v) {
  switch (t) {
  case FM_I8: return (int8_t)v;
  case FM_U8: return (uint8_t)v;
  case FM_I16: return (int16_t)v;
  case FM_U16: return (uint16_t)v;
  case FM_I32: return (int32_t)v;
  case FM_U32: return (uint32_t)v;
  case FM_BOOL: return v != 0;
  default: return v;
  }
}
 /* readable dump of the tree (debugging, --dump-kernel) */

#endif
