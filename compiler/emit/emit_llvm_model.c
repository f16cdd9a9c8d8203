/* emit_llvm_model.c - the LLVM module around the kernels: target machine, the
 * model entry (same ABI as model_c.c: <name>_workspace_size, <name>_run over the
 * memory plan, <name>_set_threads, <name>_set_weights, the fm_model_desc struct and
 * fewmul_model()), verification, the default<O3> pipeline, .ll and .o output, and
 * the C glue that binds the fmk_* routine symbols for the .so path.
 */
#include "emit/emit_llvm.h"
#include "emit/emit.h"
#include "cpu/fm_cpu.h"
#include <llvm-c/Analysis.h>
#include <llvm-c/Target.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* ---- context and target ---- */
static void diag(LLVMDiagnosticInfoRef d, void *arg) {
  (void)arg;
  if (LLVMGetDiagInfoSeverity(d) != LLVMDSError) return; /* remarks: loop not vectorised, ... */
  char *m = LLVMGetDiagInfoDescription(d);
  fprintf(stderr, "fewmul: LLVM: %s\n", m);
  LLVMDisposeMessage(m);
}

static const char *const cpus[] = {"native", "generic", "x86-64", "x86-64-v2", "x86-64-v3", "x86-64-v4"};

FmLlvm *fm_llvm_new_ctx(const char *modname, const char *target, LLVMContextRef ctx, int jit) {
  static int init;
  if (!init) {
    if (LLVMInitializeNativeTarget() || LLVMInitializeNativeAsmPrinter())
      fm_fail("LLVM has no code generator for this machine");
    init = 1;
  }
  if (!target) target = "native";
  size_t k = 0;
  while (k < sizeof cpus / sizeof *cpus && strcmp(cpus[k], target)) k++;
  if (k == sizeof cpus / sizeof *cpus)
    fm_fail("unknown target '%s' (native, generic, x86-64-v2, x86-64-v3 or x86-64-v4)", target);
  FmLlvm *L = calloc(1, sizeof *L);
  assert(L);
  L->ctx = ctx ? ctx : LLVMContextCreate();
  L->own_ctx = !ctx;
  LLVMContextSetDiagnosticHandler(L->ctx, diag, NULL);
  L->mod = LLVMModuleCreateWithNameInContext(modname, L->ctx);
  L->b = LLVMCreateBuilderInContext(L->ctx);
  L->triple = LLVMGetDefaultTargetTriple();
  if (!strcmp(target, "native")) {
    L->cpu = LLVMGetHostCPUName();
    L->features = LLVMGetHostCPUFeatures();
  } else {
    L->cpu = LLVMCreateMessage(!strcmp(target, "generic") ? "x86-64" : target);
    L->features = LLVMCreateMessage("");
  }
  LLVMTargetRef T;
  char *err = NULL;
  if (LLVMGetTargetFromTriple(L->triple, &T, &err)) {
    char m[512];
    snprintf(m, sizeof m, "%s", err ? err : "?");
    LLVMDisposeMessage(err);
    fm_fail("LLVM: no target for '%s': %s", L->triple, m);
  }
  L->tm = LLVMCreateTargetMachine(T, L->triple, L->cpu, L->features, LLVMCodeGenLevelAggressive,
                                  jit ? LLVMRelocDefault : LLVMRelocPIC,
                                  jit ? LLVMCodeModelJITDefault : LLVMCodeModelDefault);
  if (!L->tm) fm_fail("LLVM: cannot make a target machine for %s (%s)", L->triple, L->cpu);
  LLVMSetTarget(L->mod, L->triple);
  LLVMTargetDataRef td = LLVMCreateTargetDataLayout(L->tm);
  LLVMSetModuleDataLayout(L->mod, td);
  LLVMDisposeTargetData(td);
  L->t_void = LLVMVoidTypeInContext(L->ctx);
  L->t_i1 = LLVMInt1TypeInContext(L->ctx);
  L->t_i8 = LLVMInt8TypeInContext(L->ctx);
  L->t_i16 = LLVMInt16TypeInContext(L->ctx);
  L->t_i32 = LLVMInt32TypeInContext(L->ctx);
  L->t_i64 = LLVMInt64TypeInContext(L->ctx);
  L->t_f16 = LLVMHalfTypeInContext(L->ctx);
  L->t_f32 = LLVMFloatTypeInContext(L->ctx);
  L->t_f64 = LLVMDoubleTypeInContext(L->ctx);
  L->t_i8p = LLVMPointerType(L->t_i8, 0);
  L->md_loop = LLVMGetMDKindIDInContext(L->ctx, "llvm.loop", 9);
  return L;
}

FmLlvm *fm_llvm_new(const char *modname, const char *target) { return fm_llvm_new_ctx(modname, target, NULL, 0); }

void fm_llvm_free(FmLlvm *L) {
  if (!L) return;
  LLVMDisposeBuilder(L->b);
  if (L->mod) LLVMDisposeModule(L->mod);
  if (L->tm) LLVMDisposeTargetMachine(L->tm);
  if (L->own_ctx) LLVMContextDispose(L->ctx);
  LLVMDisposeMessage(L->cpu), LLVMDisposeMessage(L->features), LLVMDisposeMessage(L->triple);
  free(L);
}

void fm_llvm_optimize(FmLlvm *L) {
  char *msg = NULL;
  if (LLVMVerifyModule(L->mod, LLVMReturnStatusAction, &msg)) {
    char line[512];
    snprintf(line, sizeof line, "%s", msg ? msg : "?");
    line[strcspn(line, "\n")] = 0;
    LLVMDisposeMessage(msg);
    fm_fail("internal error: the LLVM module does not verify: %s", line);
  }
  LLVMDisposeMessage(msg);
  LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
  LLVMPassBuilderOptionsSetLoopVectorization(po, 1);
  LLVMPassBuilderOptionsSetSLPVectorization(po, 1);
  LLVMPassBuilderOptionsSetLoopUnrolling(po, 1);
  LLVMPassBuilderOptionsSetLoopInterleaving(po, 1);
  LLVMErrorRef e = LLVMRunPasses(L->mod, "default<O3>", L->tm, po);
  LLVMDisposePassBuilderOptions(po);
  if (e) {
    char *m = LLVMGetErrorMessage(e);
    char s[512];
    snprintf(s, sizeof s, "%s", m);
    LLVMDisposeErrorMessage(m);
    fm_fail("LLVM optimisation failed: %s", s);
  }
}

void fm_llvm_write_ir(FmLlvm *L, const char *path) {
  char *err = NULL;
  if (LLVMPrintModuleToFile(L->mod, path, &err)) {
    char s[512];
    snprintf(s, sizeof s, "%s", err ? err : "?");
    LLVMDisposeMessage(err);
    fm_fail("cannot write '%s': %s", path, s);
  }
}

void fm_llvm_write_object(FmLlvm *L, const char *path) {
  char *err = NULL;
  if (LLVMTargetMachineEmitToFile(L->tm, L->mod, (char *)path, LLVMObjectFile, &err)) {
    char s[512];
    snprintf(s, sizeof s, "%s", err ? err : "?");
    LLVMDisposeMessage(err);
    fm_fail("LLVM cannot write '%s': %s", path, s);
  }
}

/* ---- the entry ---- */
typedef struct En {
  FmLlvm *L;
  const FmLlvmEntry *e;
  LLVMBuilderRef b;
  LLVMValueRef *wglob;  /* by const index: i8* of the embedded tensor */
  LLVMValueRef blob;    /* file weights: global i8* */
} En;

static LLVMValueRef c64(FmLlvm *L, int64_t v) { return LLVMConstInt(L->t_i64, (unsigned long long)v, 1); }
static LLVMValueRef c32(FmLlvm *L, int64_t v) { return LLVMConstInt(L->t_i32, (unsigned long long)v, 1); }

static LLVMValueRef lin(En *E, FmLin l, LLVMValueRef N) {
  LLVMValueRef v = c64(E->L, l.a);
  if (l.b) v = LLVMBuildAdd(E->b, v, LLVMBuildMul(E->b, c64(E->L, l.b), N, ""), "");
  return v;
}

static int index_in(Tensor **list, int n, const Tensor *t) {
  for (int i = 0; i < n; i++)
    if (list[i] == t) return i;
  return -1;
}

static LLVMValueRef add_fn(FmLlvm *L, const char *name, LLVMTypeRef ret, LLVMTypeRef *ps, int n, int exported) {
  LLVMValueRef fn = LLVMAddFunction(L->mod, name, LLVMFunctionType(ret, ps, (unsigned)n, 0));
  if (!exported) LLVMSetLinkage(fn, LLVMInternalLinkage);
  fm_llvm_fn_attrs(L, fn);
  return fn;
}

static LLVMValueRef cstring(FmLlvm *L, const char *s, const char *gname) {
  LLVMValueRef init = LLVMConstStringInContext(L->ctx, s, (unsigned)strlen(s), 0);
  LLVMValueRef g = LLVMAddGlobal(L->mod, LLVMTypeOf(init), gname);
  LLVMSetInitializer(g, init);
  LLVMSetGlobalConstant(g, 1);
  LLVMSetLinkage(g, LLVMPrivateLinkage);
  LLVMSetUnnamedAddress(g, LLVMGlobalUnnamedAddr);
  return LLVMConstBitCast(g, L->t_i8p);
}

/* i8* of tensor t inside run(N, in, out, ws). */
static LLVMValueRef tensor_ptr(En *E, Tensor *t, LLVMValueRef N, LLVMValueRef in, LLVMValueRef out, LLVMValueRef ws) {
  FmLlvm *L = E->L;
  Graph *g = E->e->p->g;
  int i = index_in(g->inputs, g->ninputs, t);
  if (i >= 0) {
    LLVMValueRef idx = c64(L, i);
    return LLVMBuildLoad2(E->b, L->t_i8p, LLVMBuildInBoundsGEP2(E->b, L->t_i8p, in, &idx, 1, ""), "");
  }
  if (t->data) {
    int k = E->e->const_of[t->id];
    assert(k >= 0);
    if (E->e->file_weights) {
      LLVMValueRef base = LLVMBuildLoad2(E->b, L->t_i8p, E->blob, ""), off = c64(L, (int64_t)E->e->blob_off[k]);
      return LLVMBuildInBoundsGEP2(E->b, L->t_i8, base, &off, 1, "");
    }
    return E->wglob[k];
  }
  i = index_in(g->outputs, g->noutputs, t);
  if (i >= 0) {
    LLVMValueRef idx = c64(L, i);
    return LLVMBuildLoad2(E->b, L->t_i8p, LLVMBuildInBoundsGEP2(E->b, L->t_i8p, out, &idx, 1, ""), "");
  }
  FmLin off = E->e->mp->tensor_off[t->id];
  assert(off.a >= 0);
  LLVMValueRef o = lin(E, off, N);
  return LLVMBuildInBoundsGEP2(E->b, L->t_i8, ws, &o, 1, "");
}

/* Constant tensor k as a private 64-byte aligned byte array <name>.w<k>. */
void fm_llvm_const(FmLlvm *L, const char *name, int k, const Tensor *t) {
  size_t nb = fm_nbytes(t);
  char nm[300];
  snprintf(nm, sizeof nm, "%s.w%d", name, k);
  LLVMValueRef init = LLVMConstStringInContext(L->ctx, nb ? t->data : "", (unsigned)(nb ? nb : 1), 1);
  LLVMValueRef g = LLVMAddGlobal(L->mod, LLVMTypeOf(init), nm);
  LLVMSetInitializer(g, init);
  LLVMSetGlobalConstant(g, 1);
  LLVMSetLinkage(g, LLVMPrivateLinkage);
  LLVMSetAlignment(g, 64);
}

/* The constants' globals (fm_llvm_const made them), or the weights blob pointer. */
static void weights(En *E) {
  FmLlvm *L = E->L;
  const FmLlvmEntry *e = E->e;
  E->wglob = calloc((size_t)e->nconsts + 1, sizeof *E->wglob);
  if (e->file_weights) {
    char nm[300];
    snprintf(nm, sizeof nm, "%s.blob", e->name);
    E->blob = LLVMAddGlobal(L->mod, L->t_i8p, nm);
    LLVMSetInitializer(E->blob, LLVMConstNull(L->t_i8p));
    LLVMSetLinkage(E->blob, LLVMInternalLinkage);
    return;
  }
  for (int k = 0; k < e->nconsts; k++) {
    char nm[300];
    snprintf(nm, sizeof nm, "%s.w%d", e->name, k);
    LLVMValueRef g = LLVMGetNamedGlobal(L->mod, nm);
    if (!g) fm_llvm_const(L, e->name, k, e->consts[k]), g = LLVMGetNamedGlobal(L->mod, nm);
    E->wglob[k] = LLVMConstBitCast(g, L->t_i8p);
  }
}

static LLVMValueRef workspace_size(En *E) {
  FmLlvm *L = E->L;
  char nm[300];
  snprintf(nm, sizeof nm, "%s_workspace_size", E->e->name);
  LLVMValueRef fn = add_fn(L, nm, L->t_i64, &L->t_i64, 1, 1);
  LLVMPositionBuilderAtEnd(E->b, LLVMAppendBasicBlockInContext(L->ctx, fn, "entry"));
  LLVMValueRef N = LLVMGetParam(fn, 0);
  N = LLVMBuildSelect(E->b, LLVMBuildICmp(E->b, LLVMIntSLT, N, c64(L, 1), ""), c64(L, 1), N, "");
  LLVMValueRef s = c64(L, 64);
  for (int i = 0; i < E->e->mp->nends; i++) {
    LLVMValueRef v = lin(E, E->e->mp->ends[i], N);
    s = LLVMBuildSelect(E->b, LLVMBuildICmp(E->b, LLVMIntUGT, v, s, ""), v, s, "");
  }
  LLVMBuildRet(E->b, s);
  return fn;
}

static LLVMValueRef run_fn(En *E) {
  FmLlvm *L = E->L;
  const FmLlvmEntry *e = E->e;
  Graph *g = e->p->g;
  LLVMTypeRef i8pp = LLVMPointerType(L->t_i8p, 0);
  LLVMTypeRef ps[4] = {L->t_i64, i8pp, i8pp, L->t_i8p};
  char nm[300];
  snprintf(nm, sizeof nm, "%s_run", e->name);
  LLVMValueRef fn = add_fn(L, nm, L->t_i32, ps, 4, 1);
  LLVMValueRef N = LLVMGetParam(fn, 0), in = LLVMGetParam(fn, 1), out = LLVMGetParam(fn, 2), ws = LLVMGetParam(fn, 3);
  LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(L->ctx, fn, "entry");
  LLVMBasicBlockRef bad = LLVMAppendBasicBlockInContext(L->ctx, fn, "bad");
  LLVMBasicBlockRef go = LLVMAppendBasicBlockInContext(L->ctx, fn, "run");
  LLVMPositionBuilderAtEnd(E->b, entry);
  /* N <= 0, no or misaligned workspace, missing in/out: 1 */
  LLVMValueRef wi = LLVMBuildPtrToInt(E->b, ws, L->t_i64, "");
  LLVMValueRef badv = LLVMBuildOr(E->b, LLVMBuildICmp(E->b, LLVMIntSLE, N, c64(L, 0), ""),
                                  LLVMBuildICmp(E->b, LLVMIntEQ, wi, c64(L, 0), ""), "");
  badv = LLVMBuildOr(E->b, badv, LLVMBuildICmp(E->b, LLVMIntNE, LLVMBuildAnd(E->b, wi, c64(L, 63), ""), c64(L, 0), ""), "");
  if (g->ninputs) badv = LLVMBuildOr(E->b, badv, LLVMBuildIsNull(E->b, in, ""), "");
  if (g->noutputs) badv = LLVMBuildOr(E->b, badv, LLVMBuildIsNull(E->b, out, ""), "");
  LLVMBuildCondBr(E->b, badv, bad, go);
  LLVMPositionBuilderAtEnd(E->b, bad);
  LLVMBuildRet(E->b, c32(L, 1));
  LLVMPositionBuilderAtEnd(E->b, go);
  if (e->file_weights) {
    LLVMBasicBlockRef now = LLVMAppendBasicBlockInContext(L->ctx, fn, "weights.ok");
    LLVMBasicBlockRef nob = LLVMAppendBasicBlockInContext(L->ctx, fn, "no.weights");
    LLVMBuildCondBr(E->b, LLVMBuildIsNull(E->b, LLVMBuildLoad2(E->b, L->t_i8p, E->blob, ""), ""), nob, now);
    LLVMPositionBuilderAtEnd(E->b, nob);
    LLVMBuildRet(E->b, c32(L, 2));
    LLVMPositionBuilderAtEnd(E->b, now);
  }
  int step = 0;
  for (KFn *kf = e->p->fns; kf; kf = kf->next, step++) {
    LLVMValueRef kfn = LLVMGetNamedFunction(L->mod, kf->name);
    assert(kfn);
    LLVMValueRef args[257];
    int na = 0;
    args[na++] = N;
    for (int k = 0; k < kf->nbufs; k++) {
      KBuf *bf = kf->bufs[k];
      LLVMValueRef p;
      if (bf->kind == KBUF_TENSOR) p = tensor_ptr(E, bf->tensor, N, in, out, ws);
      else if (bf->kind == KBUF_SCRATCH) {
        LLVMValueRef o = lin(E, e->mp->scratch_off[step][k], N);
        p = LLVMBuildInBoundsGEP2(E->b, L->t_i8, ws, &o, 1, "");
      } else continue;
      args[na] = LLVMBuildBitCast(E->b, p, LLVMTypeOf(LLVMGetParam(kfn, (unsigned)na)), "");
      na++;
    }
    LLVMBuildCall2(E->b, LLVMGlobalGetValueType(kfn), kfn, args, (unsigned)na, "");
  }
  /* outputs no kernel writes: graph inputs, constants, repeats of another output */
  for (int i = 0; i < g->noutputs; i++) {
    Tensor *t = g->outputs[i];
    int first = index_in(g->outputs, g->noutputs, t);
    int is_in = index_in(g->inputs, g->ninputs, t) >= 0;
    if (first == i && !is_in && !t->data) continue;
    LLVMValueRef idx = c64(L, i);
    LLVMValueRef dst = LLVMBuildLoad2(E->b, L->t_i8p, LLVMBuildInBoundsGEP2(E->b, L->t_i8p, out, &idx, 1, ""), "");
    LLVMValueRef src;
    if (first < i) {
      idx = c64(L, first);
      src = LLVMBuildLoad2(E->b, L->t_i8p, LLVMBuildInBoundsGEP2(E->b, L->t_i8p, out, &idx, 1, ""), "");
    } else src = tensor_ptr(E, t, N, in, out, ws);
    LLVMBuildMemCpy(E->b, dst, 1, src, 1, lin(E, fm_tensor_lin_bytes(t), N));
  }
  LLVMBuildRet(E->b, c32(L, 0));
  return fn;
}

static LLVMValueRef set_threads(En *E) {
  FmLlvm *L = E->L;
  char nm[300];
  snprintf(nm, sizeof nm, "%s_set_threads", E->e->name);
  LLVMValueRef fn = add_fn(L, nm, L->t_void, &L->t_i32, 1, 1);
  LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(L->ctx, fn, "entry");
  LLVMBasicBlockRef set = LLVMAppendBasicBlockInContext(L->ctx, fn, "set");
  LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(L->ctx, fn, "done");
  LLVMPositionBuilderAtEnd(E->b, entry);
  LLVMValueRef n = LLVMGetParam(fn, 0);
  LLVMBuildCondBr(E->b, LLVMBuildICmp(E->b, LLVMIntSGT, n, c32(L, 0), ""), set, done);
  LLVMPositionBuilderAtEnd(E->b, set);
  LLVMValueRef omp = LLVMGetNamedFunction(L->mod, "omp_set_num_threads");
  if (!omp) omp = LLVMAddFunction(L->mod, "omp_set_num_threads", LLVMFunctionType(L->t_void, &L->t_i32, 1, 0));
  LLVMBuildCall2(E->b, LLVMGlobalGetValueType(omp), omp, &n, 1, "");
  LLVMBuildBr(E->b, done);
  LLVMPositionBuilderAtEnd(E->b, done);
  LLVMBuildRetVoid(E->b);
  return fn;
}

/* set_weights(blob, size): 0, 1 not a weights file of this size/alignment, 2 another model's */
static LLVMValueRef set_weights(En *E) {
  FmLlvm *L = E->L;
  const FmLlvmEntry *e = E->e;
  char nm[300];
  snprintf(nm, sizeof nm, "%s_set_weights", e->name);
  LLVMTypeRef ps[2] = {L->t_i8p, L->t_i64};
  LLVMValueRef fn = add_fn(L, nm, L->t_i32, ps, 2, 1);
  LLVMValueRef blob = LLVMGetParam(fn, 0), size = LLVMGetParam(fn, 1);
  LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(L->ctx, fn, "entry");
  LLVMBasicBlockRef hdr = LLVMAppendBasicBlockInContext(L->ctx, fn, "header");
  LLVMBasicBlockRef sum = LLVMAppendBasicBlockInContext(L->ctx, fn, "sum");
  LLVMBasicBlockRef ok = LLVMAppendBasicBlockInContext(L->ctx, fn, "ok");
  LLVMBasicBlockRef bad1 = LLVMAppendBasicBlockInContext(L->ctx, fn, "bad1");
  LLVMBasicBlockRef bad2 = LLVMAppendBasicBlockInContext(L->ctx, fn, "bad2");
  LLVMPositionBuilderAtEnd(E->b, entry);
  LLVMValueRef bi = LLVMBuildPtrToInt(E->b, blob, L->t_i64, "");
  LLVMValueRef badv = LLVMBuildOr(E->b, LLVMBuildIsNull(E->b, blob, ""),
                                  LLVMBuildICmp(E->b, LLVMIntNE, size, c64(L, (int64_t)e->blob_total), ""), "");
  badv = LLVMBuildOr(E->b, badv, LLVMBuildICmp(E->b, LLVMIntNE, LLVMBuildAnd(E->b, bi, c64(L, 63), ""), c64(L, 0), ""), "");
  LLVMBuildCondBr(E->b, badv, bad1, hdr);
  LLVMPositionBuilderAtEnd(E->b, hdr);
  LLVMValueRef magic = LLVMBuildLoad2(E->b, L->t_i32, LLVMBuildBitCast(E->b, blob, LLVMPointerType(L->t_i32, 0), ""), "");
  LLVMSetAlignment(magic, 1);
  uint32_t mv;
  memcpy(&mv, FM_WEIGHTS_MAGIC, 4);
  LLVMBuildCondBr(E->b, LLVMBuildICmp(E->b, LLVMIntNE, magic, c32(L, (int32_t)mv), ""), bad1, sum);
  LLVMPositionBuilderAtEnd(E->b, sum);
  LLVMValueRef o16 = c64(L, 16);
  LLVMValueRef sp = LLVMBuildBitCast(E->b, LLVMBuildInBoundsGEP2(E->b, L->t_i8, blob, &o16, 1, ""),
                                     LLVMPointerType(L->t_i64, 0), "");
  LLVMValueRef sv = LLVMBuildLoad2(E->b, L->t_i64, sp, "");
  LLVMSetAlignment(sv, 1);
  LLVMBuildCondBr(E->b, LLVMBuildICmp(E->b, LLVMIntNE, sv, c64(L, (int64_t)e->checksum), ""), bad2, ok);
  LLVMPositionBuilderAtEnd(E->b, ok);
  LLVMBuildStore(E->b, blob, E->blob);
  LLVMBuildRet(E->b, c32(L, 0));
  LLVMPositionBuilderAtEnd(E->b, bad1);
  LLVMBuildRet(E->b, c32(L, 1));
  LLVMPositionBuilderAtEnd(E->b, bad2);
  LLVMBuildRet(E->b, c32(L, 2));
  return fn;
}

/* struct fm_io_desc { const char *name; int dtype; int rank; int64_t dims[8]; } */
static LLVMValueRef io_descs(En *E, LLVMTypeRef io_t, const char *what, Tensor **ts, int n) {
  FmLlvm *L = E->L;
  if (!n) return LLVMConstNull(LLVMPointerType(io_t, 0));
  LLVMValueRef *elems = calloc((size_t)n, sizeof *elems);
  for (int i = 0; i < n; i++) {
    Tensor *t = ts[i];
    char nm[300];
    snprintf(nm, sizeof nm, "%s.%s.name%d", E->e->name, what, i);
    LLVMValueRef dims[8];
    for (int d = 0; d < 8; d++) dims[d] = c64(L, d < t->rank ? t->dims[d] : 0);
    LLVMValueRef f[4] = {cstring(L, t->name, nm), c32(L, (int)t->dtype), c32(L, t->rank), LLVMConstArray(L->t_i64, dims, 8)};
    elems[i] = LLVMConstNamedStruct(io_t, f, 4);
  }
  LLVMValueRef arr = LLVMConstArray(io_t, elems, (unsigned)n);
  free(elems);
  char nm[300];
  snprintf(nm, sizeof nm, "%s_%s", E->e->name, what);
  LLVMValueRef g = LLVMAddGlobal(L->mod, LLVMTypeOf(arr), nm);
  LLVMSetInitializer(g, arr);
  LLVMSetGlobalConstant(g, 1);
  LLVMSetLinkage(g, LLVMPrivateLinkage);
  return LLVMConstBitCast(g, LLVMPointerType(io_t, 0));
}

void fm_llvm_entry(FmLlvm *L, const FmLlvmEntry *e) {
  En E = {.L = L, .e = e, .b = L->b};
  Graph *g = e->p->g;
  weights(&E);
  LLVMValueRef wsz = workspace_size(&E), run = run_fn(&E), thr = set_threads(&E);
  LLVMValueRef setw = e->file_weights ? set_weights(&E) : NULL;

  LLVMTypeRef dims_t = LLVMArrayType(L->t_i64, 8);
  LLVMTypeRef io_t = LLVMStructCreateNamed(L->ctx, "fm_io_desc");
  LLVMTypeRef io_f[4] = {L->t_i8p, L->t_i32, L->t_i32, dims_t};
  LLVMStructSetBody(io_t, io_f, 4, 0);
  LLVMTypeRef iop = LLVMPointerType(io_t, 0);
  LLVMTypeRef d_f[11] = {L->t_i32, L->t_i8p, L->t_i32, L->t_i32, iop, iop,
                         LLVMPointerType(LLVMGlobalGetValueType(wsz), 0), LLVMPointerType(LLVMGlobalGetValueType(run), 0),
                         L->t_i64, LLVMPointerType(LLVMFunctionType(L->t_i32, (LLVMTypeRef[]){L->t_i8p, L->t_i64}, 2, 0), 0),
                         LLVMPointerType(LLVMGlobalGetValueType(thr), 0)};
  LLVMTypeRef desc_t = LLVMStructCreateNamed(L->ctx, "fm_model_desc");
  LLVMStructSetBody(desc_t, d_f, 11, 0);
  char nm[300];
  snprintf(nm, sizeof nm, "%s.name", e->name);
  LLVMValueRef v[11] = {c32(L, 1), cstring(L, e->name, nm), c32(L, g->ninputs), c32(L, g->noutputs),
                        io_descs(&E, io_t, "inputs", g->inputs, g->ninputs),
                        io_descs(&E, io_t, "outputs", g->outputs, g->noutputs), wsz, run,
                        c64(L, e->file_weights ? (int64_t)e->blob_total : 0),
                        setw ? setw : LLVMConstNull(d_f[9]), thr};
  snprintf(nm, sizeof nm, "%s_desc", e->name);
  LLVMValueRef desc = LLVMAddGlobal(L->mod, desc_t, nm);
  LLVMSetInitializer(desc, LLVMConstNamedStruct(desc_t, v, 11));
  LLVMSetGlobalConstant(desc, 1);
  if (e->shared) {
    LLVMValueRef fm = add_fn(L, "fewmul_model", LLVMPointerType(desc_t, 0), NULL, 0, 1);
    LLVMPositionBuilderAtEnd(E.b, LLVMAppendBasicBlockInContext(L->ctx, fm, "entry"));
    LLVMBuildRet(E.b, desc);
  }
  free(E.wglob);
}

/* ---- the .so path's C glue ---- */
const char *fm_llvm_glue_text(FmLlvm *L, Arena *a) {
  char *text;
  size_t len;
  FILE *f = open_memstream(&text, &len);
  fputs("/* glue: the CPU library routines under the names the LLVM module calls */\n", f);
  fputs(fm_cpu_text, f);
  for (LLVMValueRef fn = LLVMGetFirstFunction(L->mod); fn; fn = LLVMGetNextFunction(fn)) {
    size_t n;
    const char *name = LLVMGetValueName2(fn, &n);
    if (strncmp(name, "fmk_", 4)) continue;
    const FmRoutine *r = fm_routine_find(name + 4);
    assert(r);
    fprintf(f, "__attribute__((visibility(\"hidden\"))) void %s(", name);
    for (int i = 0; r->kinds[i]; i++) {
      char k = r->kinds[i];
      fprintf(f, "%s%s a%d", i ? ", " : "", k == 'p' ? "void *" : k == 'c' ? "const void *" : k == 'f' ? "float" : "int64_t", i);
    }
    fprintf(f, ");\n__attribute__((visibility(\"hidden\"))) void %s(", name);
    for (int i = 0; r->kinds[i]; i++) {
      char k = r->kinds[i];
      fprintf(f, "%s%s a%d", i ? ", " : "", k == 'p' ? "void *" : k == 'c' ? "const void *" : k == 'f' ? "float" : "int64_t", i);
    }
    fprintf(f, ") {\n  %s(", name + 4);
    for (int i = 0; r->kinds[i]; i++) fprintf(f, "%sa%d", i ? ", " : "", i);
    fputs(");\n}\n", f);
  }
  fclose(f);
  const char *res = fm_strdup(a, text);
  free(text);
  return res;
}
