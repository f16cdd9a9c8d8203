/* emit_llvm_par.c - parallel loops of the LLVM backend: a KL_PARALLEL loop that
 * fm_kfork (kernel/kanalysis.c) says to fork is outlined into <fn>.parK(i8 *ctx) and
 * run by libgomp's GOMP_parallel (the OpenMP runtime of the C path); each thread
 * takes one contiguous block of the iteration space (collapsed with a perfectly
 * nested inner loop), like `omp parallel for schedule(static)`. Below the fork
 * threshold (KFORK_IF at run time) the outlined body runs on the calling thread.
 */
#include "emit/emit_llvm_fn.h"
#include <stdlib.h>

/* ---- parallel loops (the fork rule and the reduction test are kernel/kanalysis.c's) ---- */
/* Variables a loop reads that are declared outside it (captured by value). */
static void declared(const KStmt *s, uint8_t *in) {
  for (; s; s = s->next) {
    if (s->k == KS_FOR || s->k == KS_LET) in[s->var->id] = 1;
    declared(s->body, in), declared(s->els, in);
  }
}
static void reads_e(const KExpr *e, uint8_t *r) {
  if (!e) return;
  if (e->k == KE_VAR) r[e->var->id] = 1;
  reads_e(e->a, r), reads_e(e->b, r), reads_e(e->c, r);
}
static void reads(const KStmt *s, uint8_t *r) {
  for (; s; s = s->next) {
    reads_e(s->lo, r), reads_e(s->hi, r), reads_e(s->e, r), reads_e(s->idx, r);
    if (s->k == KS_SET) r[s->var->id] = 1;
    for (int i = 0; i < s->nargs; i++) reads_e(s->args[i], r);
    reads(s->body, r), reads(s->els, r);
  }
}

/* The outlined body's context: N, lo, hi, lo2, n2, total, then the buffers, then
   the captured variables. */
enum { C_N, C_LO, C_HI, C_LO2, C_N2, C_FIXED };

typedef struct Par { const KStmt *s, *inner; int *cap; int ncap; LLVMTypeRef ctx_t; } Par;

static LLVMTypeRef ctx_type(Fn *F, Par *P) {
  FmLlvm *L = F->L;
  int n = C_FIXED + F->kf->nbufs + P->ncap;
  LLVMTypeRef *ts = calloc((size_t)n, sizeof *ts);
  for (int i = 0; i < C_FIXED; i++) ts[i] = L->t_i64;
  for (int i = 0; i < F->kf->nbufs; i++) ts[C_FIXED + i] = LLVMPointerType(fl_mt(L, F->kf->bufs[i]->t), 0);
  for (int i = 0; i < P->ncap; i++) ts[C_FIXED + F->kf->nbufs + i] = fl_vt(L, F->kf->vars[P->cap[i]]->t);
  LLVMTypeRef t = LLVMStructTypeInContext(L->ctx, ts, (unsigned)n, 0);
  free(ts);
  return t;
}

static void inner_body(Fn *F, const void *arg) { fl_stmts(F, ((const KStmt *)arg)->body); }

/* The outlined body: the block [t0, t1) of the iteration space total = (hi - lo) * n2,
   walked row by row (one division per row). Its buffers are noalias parameters, so
   the kernel's aliasing facts survive outlining (inlined into the trampoline, they
   become scoped noalias metadata). Parameters: N, t0, t1, lo, lo2, n2, the buffers,
   the captured variables. */
enum { B_N, B_T0, B_T1, B_LO, B_LO2, B_N2, B_FIXED };

static LLVMValueRef outline_body(Fn *F, Par *P, const char *name) {
  FmLlvm *L = F->L;
  KFn *kf = F->kf;
  int np = B_FIXED + kf->nbufs + P->ncap;
  LLVMTypeRef *ps = calloc((size_t)np, sizeof *ps);
  for (int i = 0; i < B_FIXED; i++) ps[i] = L->t_i64;
  for (int i = 0; i < kf->nbufs; i++) ps[B_FIXED + i] = LLVMPointerType(fl_mt(L, kf->bufs[i]->t), 0);
  for (int i = 0; i < P->ncap; i++) ps[B_FIXED + kf->nbufs + i] = fl_vt(L, kf->vars[P->cap[i]]->t);
  LLVMValueRef fn = LLVMAddFunction(L->mod, name, LLVMFunctionType(L->t_void, ps, (unsigned)np, 0));
  free(ps);
  LLVMSetLinkage(fn, LLVMInternalLinkage);
  fm_llvm_fn_attrs(L, fn);
  unsigned noalias = LLVMGetEnumAttributeKindForName("noalias", 7);
  for (int i = 0; i < kf->nbufs; i++)
    if (kf->bufs[i]->kind != KBUF_CONST)
      LLVMAddAttributeAtIndex(fn, (unsigned)(B_FIXED + i + 1), LLVMCreateEnumAttribute(L->ctx, noalias, 0));
  Fn G = {.L = L, .kf = kf, .f = fn, .in_parallel = 1};
  G.b = LLVMCreateBuilderInContext(L->ctx);
  G.buf = calloc((size_t)kf->nbufs + 1, sizeof *G.buf);
  G.slot = calloc((size_t)kf->nvars + 1, sizeof *G.slot);
  G.allocas = LLVMAppendBasicBlockInContext(L->ctx, fn, "allocas");
  LLVMBasicBlockRef start = LLVMAppendBasicBlockInContext(L->ctx, fn, "start");
  LLVMPositionBuilderAtEnd(G.b, G.allocas);
  LLVMBuildBr(G.b, start);
  LLVMPositionBuilderAtEnd(G.b, start);
  G.N = LLVMGetParam(fn, B_N);
  LLVMValueRef t0 = LLVMGetParam(fn, B_T0), t1 = LLVMGetParam(fn, B_T1), lo = LLVMGetParam(fn, B_LO);
  LLVMValueRef lo2 = LLVMGetParam(fn, B_LO2), n2 = LLVMGetParam(fn, B_N2);
  for (int i = 0; i < kf->nbufs; i++) G.buf[i] = LLVMGetParam(fn, (unsigned)(B_FIXED + i));
  for (int i = 0; i < P->ncap; i++)
    LLVMBuildStore(G.b, LLVMGetParam(fn, (unsigned)(B_FIXED + kf->nbufs + i)), fl_slot(&G, kf->vars[P->cap[i]]));
  if (!P->inner) {
    LLVMValueRef a = LLVMBuildAdd(G.b, lo, t0, ""), z = LLVMBuildAdd(G.b, lo, t1, "");
    fl_loop(&G, fl_slot(&G, P->s->var), a, z, KL_SERIAL, fl_body_stmts, P->s);
  } else {
    /* while (t < t1) { i = lo + t / n2; j0 = t % n2; j1 = min(n2, j0 + t1 - t);
                        for (j = lo2 + j0; j < lo2 + j1; j++) body; t += j1 - j0; } */
    LLVMValueRef tv = fl_slot(&G, &(KVar){.id = kf->nvars, .name = "t", .t = FM_I64});
    LLVMBuildStore(G.b, t0, tv);
    LLVMBasicBlockRef cond = LLVMAppendBasicBlockInContext(L->ctx, fn, "row.cond");
    LLVMBasicBlockRef row = LLVMAppendBasicBlockInContext(L->ctx, fn, "row");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(L->ctx, fn, "row.end");
    LLVMBuildBr(G.b, cond);
    LLVMPositionBuilderAtEnd(G.b, cond);
    LLVMValueRef t = LLVMBuildLoad2(G.b, L->t_i64, tv, "");
    LLVMBuildCondBr(G.b, LLVMBuildICmp(G.b, LLVMIntSLT, t, t1, ""), row, done);
    LLVMPositionBuilderAtEnd(G.b, row);
    LLVMValueRef i = LLVMBuildAdd(G.b, lo, LLVMBuildSDiv(G.b, t, n2, ""), "");
    LLVMValueRef j0 = LLVMBuildSRem(G.b, t, n2, "");
    LLVMValueRef j1 = LLVMBuildAdd(G.b, j0, LLVMBuildSub(G.b, t1, t, ""), "");
    j1 = LLVMBuildSelect(G.b, LLVMBuildICmp(G.b, LLVMIntSLT, j1, n2, ""), j1, n2, "");
    LLVMBuildStore(G.b, i, fl_slot(&G, P->s->var));
    fl_loop(&G, fl_slot(&G, P->inner->var), LLVMBuildAdd(G.b, lo2, j0, ""), LLVMBuildAdd(G.b, lo2, j1, ""),
            KL_SERIAL, inner_body, P->inner);
    LLVMBuildStore(G.b, LLVMBuildAdd(G.b, t, LLVMBuildSub(G.b, j1, j0, ""), ""), tv);
    LLVMBuildBr(G.b, cond);
    LLVMPositionBuilderAtEnd(G.b, done);
  }
  LLVMBuildRetVoid(G.b);
  LLVMDisposeBuilder(G.b);
  free(G.buf), free(G.slot);
  return fn;
}

/* The function GOMP_parallel runs on every thread: <fn>.parK(i8 *ctx) computes this
   thread's block and calls the body. */
static LLVMValueRef outline(Fn *F, Par *P) {
  FmLlvm *L = F->L;
  KFn *kf = F->kf;
  char name[300];
  int k = L->nouter++;
  snprintf(name, sizeof name, "%s.par%d.body", kf->name, k);
  LLVMValueRef body = outline_body(F, P, name);
  snprintf(name, sizeof name, "%s.par%d", kf->name, k);
  LLVMTypeRef vp = L->t_i8p;
  LLVMValueRef fn = LLVMAddFunction(L->mod, name, LLVMFunctionType(L->t_void, &vp, 1, 0));
  LLVMSetLinkage(fn, LLVMInternalLinkage);
  fm_llvm_fn_attrs(L, fn);
  Fn G = {.L = L, .kf = kf, .f = fn, .in_parallel = 1};
  G.b = LLVMCreateBuilderInContext(L->ctx);
  LLVMPositionBuilderAtEnd(G.b, LLVMAppendBasicBlockInContext(L->ctx, fn, "entry"));
  LLVMValueRef ctx = LLVMBuildBitCast(G.b, LLVMGetParam(fn, 0), LLVMPointerType(P->ctx_t, 0), "ctx");
#define FIELD(i) LLVMBuildLoad2(G.b, LLVMStructGetTypeAtIndex(P->ctx_t, (unsigned)(i)), \
                                LLVMBuildStructGEP2(G.b, P->ctx_t, ctx, (unsigned)(i), ""), "")
  int na = B_FIXED + kf->nbufs + P->ncap;
  LLVMValueRef *args = calloc((size_t)na, sizeof *args);
  LLVMValueRef lo = FIELD(C_LO), hi = FIELD(C_HI), n2 = FIELD(C_N2);
  args[B_N] = FIELD(C_N), args[B_LO] = lo, args[B_LO2] = FIELD(C_LO2), args[B_N2] = n2;
  for (int i = 0; i < kf->nbufs + P->ncap; i++) args[B_FIXED + i] = FIELD(C_FIXED + i);
#undef FIELD
  /* block of this thread: the first r threads take q + 1 (libgomp's static schedule) */
  LLVMValueRef nth = LLVMBuildSExt(G.b, fl_call(&G, fl_decl(L, "omp_get_num_threads", L->t_i32, NULL, 0), NULL, 0), L->t_i64, "");
  LLVMValueRef tid = LLVMBuildSExt(G.b, fl_call(&G, fl_decl(L, "omp_get_thread_num", L->t_i32, NULL, 0), NULL, 0), L->t_i64, "");
  LLVMValueRef total = LLVMBuildNSWMul(G.b, LLVMBuildNSWSub(G.b, hi, lo, ""), n2, "");
  LLVMValueRef q = LLVMBuildSDiv(G.b, total, nth, ""), r = LLVMBuildSRem(G.b, total, nth, "");
  LLVMValueRef lt = LLVMBuildICmp(G.b, LLVMIntSLT, tid, r, "");
  LLVMValueRef cnt = LLVMBuildSelect(G.b, lt, LLVMBuildAdd(G.b, q, fl_i64(&G, 1), ""), q, "");
  LLVMValueRef t0 = LLVMBuildAdd(G.b, LLVMBuildMul(G.b, tid, cnt, ""), LLVMBuildSelect(G.b, lt, fl_i64(&G, 0), r, ""), "");
  args[B_T0] = t0, args[B_T1] = LLVMBuildAdd(G.b, t0, cnt, "");
  fl_call(&G, body, args, na);
  LLVMBuildRetVoid(G.b);
  LLVMDisposeBuilder(G.b);
  free(args);
  return fn;
}

void fl_par_for(Fn *F, const KStmt *s, KFork fk) {
  FmLlvm *L = F->L;
  KFn *kf = F->kf;
  Par P = {.s = s, .inner = fk.inner};
  uint8_t *in = calloc((size_t)kf->nvars + 1, 1), *rd = calloc((size_t)kf->nvars + 1, 1);
  P.cap = calloc((size_t)kf->nvars + 1, sizeof(int));
  in[s->var->id] = 1;
  declared(s->body, in);
  reads(s->body, rd);
  reads_e(s->lo, rd), reads_e(s->hi, rd);
  for (int v = 0; v < kf->nvars; v++)
    if (rd[v] && !in[v]) P.cap[P.ncap++] = v;
  P.ctx_t = ctx_type(F, &P);
  LLVMValueRef fn = outline(F, &P);
  /* fill the context */
  LLVMValueRef lo = fl_conv(F, fl_ex(F, s->lo), s->lo->t, FM_I64), hi = fl_conv(F, fl_ex(F, s->hi), s->hi->t, FM_I64);
  LLVMValueRef lo2 = fl_i64(F, 0), n2 = fl_i64(F, 1);
  if (fk.inner) {
    lo2 = fl_conv(F, fl_ex(F, fk.inner->lo), fk.inner->lo->t, FM_I64);
    LLVMValueRef hi2 = fl_conv(F, fl_ex(F, fk.inner->hi), fk.inner->hi->t, FM_I64);
    n2 = LLVMBuildSub(F->b, hi2, lo2, "");
  }
  /* empty ranges: nothing to do (and no division by a zero row length) */
  LLVMValueRef nonempty = LLVMBuildAnd(F->b, LLVMBuildICmp(F->b, LLVMIntSLT, lo, hi, ""),
                                       LLVMBuildICmp(F->b, LLVMIntSGT, n2, fl_i64(F, 0), ""), "");
  LLVMBasicBlockRef run = LLVMAppendBasicBlockInContext(L->ctx, F->f, "par.run");
  LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(L->ctx, F->f, "par.end");
  LLVMBuildCondBr(F->b, nonempty, run, done);
  LLVMPositionBuilderAtEnd(F->b, run);
  LLVMValueRef ctx;
  {
    LLVMBuilderRef ab = LLVMCreateBuilderInContext(L->ctx);
    LLVMPositionBuilderBefore(ab, LLVMGetBasicBlockTerminator(F->allocas));
    ctx = LLVMBuildAlloca(ab, P.ctx_t, "par.ctx");
    LLVMDisposeBuilder(ab);
  }
  LLVMValueRef vals[C_FIXED] = {F->N, lo, hi, lo2, n2};
  for (int i = 0; i < C_FIXED; i++) LLVMBuildStore(F->b, vals[i], LLVMBuildStructGEP2(F->b, P.ctx_t, ctx, (unsigned)i, ""));
  for (int i = 0; i < kf->nbufs; i++) {
    LLVMValueRef p = F->buf[i] ? F->buf[i] : LLVMConstNull(LLVMPointerType(fl_mt(L, kf->bufs[i]->t), 0));
    LLVMBuildStore(F->b, p, LLVMBuildStructGEP2(F->b, P.ctx_t, ctx, (unsigned)(C_FIXED + i), ""));
  }
  for (int i = 0; i < P.ncap; i++) {
    KVar *v = kf->vars[P.cap[i]];
    LLVMValueRef x = F->slot[v->id] ? LLVMBuildLoad2(F->b, fl_vt(L, v->t), F->slot[v->id], "") : LLVMGetUndef(fl_vt(L, v->t));
    LLVMBuildStore(F->b, x, LLVMBuildStructGEP2(F->b, P.ctx_t, ctx, (unsigned)(C_FIXED + kf->nbufs + i), ""));
  }
  LLVMValueRef arg = LLVMBuildBitCast(F->b, ctx, L->t_i8p, "");
  LLVMTypeRef bodyp = LLVMPointerType(LLVMGlobalGetValueType(fn), 0);
  LLVMTypeRef gps[4] = {bodyp, L->t_i8p, L->t_i32, L->t_i32};
  LLVMValueRef gomp = fl_decl(L, "GOMP_parallel", L->t_void, gps, 4);
  LLVMValueRef gargs[4] = {fn, arg, fl_ci(L->t_i32, 0), fl_ci(L->t_i32, 0)};
  if (fk.mode == KFORK_ALWAYS) {
    fl_call(F, gomp, gargs, 4);
  } else { /* fork only when the trip count pays, else run the body here */
    LLVMValueRef trips = LLVMBuildMul(F->b, LLVMBuildSub(F->b, hi, lo, ""), n2, "");
    LLVMValueRef pays = LLVMBuildICmp(F->b, LLVMIntSGE, trips, fl_i64(F, (int64_t)fk.min_trips), "");
    LLVMBasicBlockRef fork = LLVMAppendBasicBlockInContext(L->ctx, F->f, "par.fork");
    LLVMBasicBlockRef here = LLVMAppendBasicBlockInContext(L->ctx, F->f, "par.serial");
    LLVMBuildCondBr(F->b, pays, fork, here);
    LLVMPositionBuilderAtEnd(F->b, fork);
    fl_call(F, gomp, gargs, 4);
    LLVMBuildBr(F->b, done);
    LLVMPositionBuilderAtEnd(F->b, here);
    fl_call(F, fn, &arg, 1); /* outside a team: thread 0 of 1, the whole range */
  }
  LLVMBuildBr(F->b, done);
  LLVMPositionBuilderAtEnd(F->b, done);
  free(in), free(rd), free(P.cap);
}

