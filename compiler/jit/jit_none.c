/* jit_none.c - the LLVM entry points of a fewmul built without LLVM: one clear error. */
#include "jit/jit.h"

int fm_llvm_available(void) { return 0; }

fm_model *fm_jit_model(KProgram *p, const char *name) {
  (void)p, (void)name;
  fm_fail("this fewmul was built without LLVM: --jit and --emit llvm need it "
          "(install llvm-dev, see scripts/install-deps.sh, and rebuild)");
}
