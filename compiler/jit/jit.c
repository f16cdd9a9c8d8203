/* jit.c - in-process compilation with ORC LLJIT (LLVM-C, llvm-c/LLJIT.h).
 *
 * The module's external symbols resolve against fewmul's own process: libm and
 * libgomp through a process search generator, and the CPU library routines
 * (fmk_<routine>, emit_llvm.h) as absolute symbols bound to the CPU kernel library
 * (compiler/cpu/, libfm_cpu.a) linked into fewmul. No C compiler, linker or temporary file is involved.
 */
#include "jit/jit.h"
#include "jit/jit_llvm.h"
#include "emit/emit.h"
#include "cpu/fm_cpu.h"
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* libgomp's entry for `omp parallel` (what GCC emits), which outlined loops call */
void GOMP_parallel(void (*fn)(void *), void *data, unsigned nthreads, unsigned flags);

struct FmJit { LLVMOrcLLJITRef jit; };

int fm_llvm_available(void) { return 1; }

/* The routines kernels may call, by the name kb_call uses. */
#define X_ADDR(name, kinds, count) {#name, (void (*)(void))name},
static const struct { const char *name; void (*fn)(void); } routines[] = {FM_CPU_ROUTINES(X_ADDR)};
#undef X_ADDR
/* Threading: bound explicitly, so the JIT does not depend on the process exporting them. */
static const struct { const char *name; void (*fn)(void); } threading[] = {
  {"GOMP_parallel", (void (*)(void))GOMP_parallel},
  {"omp_get_num_threads", (void (*)(void))omp_get_num_threads},
  {"omp_get_thread_num", (void (*)(void))omp_get_thread_num},
  {"omp_set_num_threads", (void (*)(void))omp_set_num_threads},
};

static _Noreturn void fail_err(const char *what, LLVMErrorRef e) {
  char *m = LLVMGetErrorMessage(e), line[512];
  snprintf(line, sizeof line, "%s", m);
  LLVMDisposeErrorMessage(m);
  line[strcspn(line, "\n")] = 0;
  fm_fail("JIT: %s: %s", what, line);
}


FmLlvm *fm_jit_llvm(const char *modname) {
  LLVMOrcThreadSafeContextRef tsc = LLVMOrcCreateNewThreadSafeContext();
  FmLlvm *L = fm_llvm_new_ctx(modname, "native", LLVMOrcThreadSafeContextGetContext(tsc), 1);
  L->jit_tsc = tsc;
  return L;
}

FmJit *fm_jit_add(FmLlvm *L) {
  LLVMErrorRef e;
  LLVMOrcLLJITBuilderRef jb = LLVMOrcCreateLLJITBuilder();
  LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(jb, LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(L->tm));
  L->tm = NULL; /* owned by the JIT now */
  FmJit *J = calloc(1, sizeof *J);
  if ((e = LLVMOrcCreateLLJIT(&J->jit, jb))) fail_err("cannot create the JIT", e);
  LLVMOrcJITDylibRef jd = LLVMOrcLLJITGetMainJITDylib(J->jit);
  LLVMOrcDefinitionGeneratorRef gen;
  if ((e = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&gen, LLVMOrcLLJITGetGlobalPrefix(J->jit), NULL, NULL)))
    fail_err("cannot search the process's symbols", e);
  LLVMOrcJITDylibAddGenerator(jd, gen);
  enum { NR = sizeof routines / sizeof *routines, NT = sizeof threading / sizeof *threading };
  LLVMJITCSymbolMapPair syms[NR + NT];
  for (int i = 0; i < NR + NT; i++) {
    char nm[128];
    if (i < NR) snprintf(nm, sizeof nm, "fmk_%s", routines[i].name);
    else snprintf(nm, sizeof nm, "%s", threading[i - NR].name);
    syms[i].Name = LLVMOrcLLJITMangleAndIntern(J->jit, nm);
    syms[i].Sym.Address = (LLVMOrcExecutorAddress)(uintptr_t)(i < NR ? routines[i].fn : threading[i - NR].fn);
    syms[i].Sym.Flags.GenericFlags = LLVMJITSymbolGenericFlagsExported | LLVMJITSymbolGenericFlagsCallable;
    syms[i].Sym.Flags.TargetFlags = 0;
  }
  if ((e = LLVMOrcJITDylibDefine(jd, LLVMOrcAbsoluteSymbols(syms, NR + NT)))) fail_err("cannot define the routines", e);
  LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(L->mod, L->jit_tsc);
  L->mod = NULL;
  if ((e = LLVMOrcLLJITAddLLVMIRModule(J->jit, jd, tsm))) fail_err("cannot add the module", e);
  LLVMOrcDisposeThreadSafeContext(L->jit_tsc); /* the module keeps the context alive */
  L->jit_tsc = NULL;
  L->ctx = NULL;
  fm_llvm_free(L);
  return J;
}

uint64_t fm_jit_lookup(FmJit *J, const char *name) {
  LLVMOrcExecutorAddress a = 0;
  LLVMErrorRef e = LLVMOrcLLJITLookup(J->jit, &a, name);
  if (e) fail_err(name, e);
  if (!a) fm_fail("JIT: '%s' has no address", name);
  return (uint64_t)a;
}

void fm_jit_free(FmJit *J) {
  if (!J) return;
  LLVMOrcDisposeLLJIT(J->jit);
  free(J);
}

/* ---- a whole model ---- */
static void add_const(Tensor **consts, int *n, int *const_of, Tensor *t) {
  if (const_of[t->id] >= 0) return;
  if (!fm_dtype_size(t->dtype) || t->dtype == FM_STRING)
    fm_fail("tensor '%s': constants of type %s cannot be compiled", t->name, fm_dtype_name(t->dtype));
  if (fm_numel(t) < 0) fm_fail("tensor '%s': constant with unknown shape", t->name);
  const_of[t->id] = *n;
  consts[(*n)++] = t;
}

fm_model *fm_jit_model(KProgram *p, const char *name) {
  Graph *g = p->g;
  Arena *a = &g->arena;
  if (!name) name = "model";
  for (int i = 0; i < g->ninputs + g->noutputs; i++) {
    Tensor *t = i < g->ninputs ? g->inputs[i] : g->outputs[i - g->ninputs];
    fm_tensor_lin_bytes(t);
    if (!fm_dtype_size(t->dtype) || t->dtype == FM_STRING)
      fm_fail("%s '%s': type %s is not supported", i < g->ninputs ? "input" : "output", t->name,
              fm_dtype_name(t->dtype));
  }
  FmLlvmEntry e = {.p = p, .mp = fm_memplan(p), .name = name, .shared = 1};
  Tensor **consts = fm_alloc(a, sizeof(Tensor *) * (size_t)(g->ntensors + 1));
  int *const_of = fm_alloc(a, sizeof(int) * (size_t)(g->ntensors + 1)), n = 0;
  for (int i = 0; i < g->ntensors; i++) const_of[i] = -1;
  for (KFn *fn = p->fns; fn; fn = fn->next)
    for (int k = 0; k < fn->nbufs; k++)
      if (fn->bufs[k]->kind == KBUF_TENSOR && fn->bufs[k]->tensor->data) add_const(consts, &n, const_of, fn->bufs[k]->tensor);
  for (int i = 0; i < g->noutputs; i++)
    if (g->outputs[i]->data) add_const(consts, &n, const_of, g->outputs[i]);
  e.consts = consts, e.nconsts = n, e.const_of = const_of;

  FmLlvm *L = fm_jit_llvm(name);
  for (KFn *fn = p->fns; fn; fn = fn->next) fm_llvm_kernel(L, fn, 0);
  fm_llvm_entry(L, &e);
  fm_llvm_optimize(L);
  FmJit *J = fm_jit_add(L); /* kept until exit: the model's code lives in it */
  const fm_model_desc *(*entry)(void);
  *(void **)&entry = (void *)(uintptr_t)fm_jit_lookup(J, "fewmul_model");
  fm_model *m = NULL;
  if (fm_wrap(entry(), &m) != FM_OK) fm_fail("JIT: %s", fm_last_error());
  return m;
}
