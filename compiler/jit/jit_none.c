/* jit_none.c - the LLVM entry points of a fewmul built without LLVM: one clear error. */
#include "jit/jit.h"
#include "emit/emit.h"

#define NO_LLVM "this fewmul was built without LLVM: --emit llvm and --jit need it " \
                "(install llvm-dev, see scripts/install-deps.sh, and rebuild)"

int fm_llvm_available(void) { return 0; }

fm_model *fm_jit_model(KProgram *p, const char *name) {
  (void)p, (void)name;
  fm_fail(NO_LLVM);
}

static void no_llvm(FmModule *m) {
  (void)m;
  fm_fail(NO_LLVM);
}
static int no_call(const char *routine) {
  (void)routine;
  return 0;
}

const FmBackend fm_backend_llvm = {.name = "llvm", .file_ext = ".ll", .can_call = no_call, .begin_module = no_llvm};
