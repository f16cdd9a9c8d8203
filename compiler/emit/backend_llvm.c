/* backend_llvm.c - the LLVM backend, module level (FmBackend hooks, emit.h):
 *   begin_module  an LLVM module for the target (--target: native, x86-64-v3, ...)
 *   emit_const    a constant tensor as a private aligned global (embedded weights)
 *   emit_fn       one kernel (emit_llvm.c)
 *   emit_entry    <name>_run over the memory plan, workspace_size, set_threads,
 *                 set_weights, the fm_model_desc and fewmul_model() (emit_llvm_model.c)
 *   finish        LLVMVerifyModule, default<O3>, the optimised IR as <name>.ll
 *   build         <name>.o (LLVMTargetMachineEmitToFile), then <name>.so linked by $CC
 *                 (default gcc) from the object and a small C file that defines the
 *                 fmk_* routine symbols from the CPU kernel library's text
 * The .h and the weights file are codegen.c's, shared with the C backend, so the
 * runtime and `fewmul run/bench` load an LLVM-built model unchanged.
 */
#include "emit/codegen.h"
#include "emit/emit.h"
#include "emit/emit_llvm.h"
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static FmLlvm *st(FmModule *m) { return m->priv; }

static void begin_module(FmModule *m) {
  m->priv = fm_llvm_new(m->name, m->o->march);
}

static void emit_const(FmModule *m, int k) {
  if (!m->file_weights) fm_llvm_const(st(m), m->name, k, m->consts[k]);
}

static void emit_fn(FmModule *m, KFn *fn) { fm_llvm_kernel(st(m), fn, 0); }

static void emit_entry(FmModule *m) {
  FmLlvmEntry e = {.p = m->p, .mp = m->mp, .name = m->name, .consts = m->consts, .nconsts = m->nconsts,
                   .const_of = m->const_of, .file_weights = m->file_weights, .blob_off = m->blob_off,
                   .blob_total = m->blob_total, .checksum = m->checksum, .shared = 1};
  fm_llvm_entry(st(m), &e);
}

static void finish(FmModule *m) {
  fm_llvm_optimize(st(m));
  char *text = LLVMPrintModuleToString(st(m)->mod);
  fputs(text, m->f);
  LLVMDisposeMessage(text);
}

/* Runs argv (no shell), output into log; the exit code (127: not found). */
static int spawn(const char **argv, const char *log) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid;
  int err = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ), st = 0, code = 127;
  posix_spawn_file_actions_destroy(&fa);
  if (err == 0 && waitpid(pid, &st, 0) == pid) code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  else if (err == 0) code = -1;
  return code;
}

static void build(FmModule *m, const char *dir, const char *src_path, const char *so_path) {
  (void)src_path;
  Arena *a = &m->g->arena;
  FmLlvm *L = st(m);
  const char *obj = fm_sprintf(a, "%s/%s.o", dir, m->name), *glue = fm_sprintf(a, "%s/%s_glue.c", dir, m->name);
  const char *log = fm_sprintf(a, "%s/cc.log", dir);
  fm_cleanup_add(obj), fm_cleanup_add(glue), fm_cleanup_add(log), fm_cleanup_add(so_path);
  fm_llvm_write_object(L, obj);
  FILE *f = fopen(glue, "w");
  if (!f) fm_fail("cannot write '%s': %s", glue, strerror(errno));
  fputs(fm_llvm_glue_text(L, a), f);
  if (ferror(f) | (fclose(f) != 0)) fm_fail("cannot write '%s': %s", glue, strerror(errno));

  const char *cc = getenv("CC");
  if (!cc || !*cc) cc = "gcc";
  const char *argv[64];
  int argc = 0;
  char *ccw = fm_strdup(a, cc);
  for (char *t = strtok(ccw, " \t"); t && argc < 40; t = strtok(NULL, " \t")) argv[argc++] = t;
  if (!argc) fm_fail("CC is empty");
  const char *march = m->o->march && *m->o->march ? m->o->march : "native";
  if (!strcmp(march, "generic")) march = "x86-64";
  argv[argc++] = "-O3";
  argv[argc++] = fm_sprintf(a, "-march=%s", march);
  argv[argc++] = "-fopenmp", argv[argc++] = "-shared", argv[argc++] = "-fPIC", argv[argc++] = "-o";
  argv[argc++] = so_path, argv[argc++] = obj, argv[argc++] = glue, argv[argc++] = "-lm", argv[argc] = NULL;
  int code = spawn(argv, log);
  if (code == 127) fm_fail("C compiler '%s' not found: the LLVM .so is linked with it (set CC, or use --jit)", cc);
  if (code != 0) {
    char line[400] = "";
    FILE *lf = fopen(log, "r");
    if (lf) {
      if (!fgets(line, sizeof line, lf)) line[0] = 0;
      fclose(lf);
    }
    line[strcspn(line, "\n")] = 0;
    fm_fail("C compiler '%s' failed linking %s.so (exit %d)%s%s", cc, m->name, code, *line ? ": " : "", line);
  }
  unlink(log), unlink(glue);
  fm_cleanup_forget(log), fm_cleanup_forget(glue);
  /* the object goes next to the .so */
  const char *fin = fm_sprintf(a, "%s/%s.o", m->o->outdir ? m->o->outdir : ".", m->name);
  if (rename(obj, fin) != 0) fm_fail("cannot create '%s': %s", fin, strerror(errno));
  fm_cleanup_forget(obj);
  fm_llvm_free(L);
  m->priv = NULL;
}

static int can_call(const char *routine) { return fm_routine_find(routine) != NULL; }

const FmBackend fm_backend_llvm = {
  .name = "llvm",
  .file_ext = ".ll",
  .caps = {.cpu_routines = 1, .host_threads = 1, .shared_object = 1},
  .can_call = can_call,
  .begin_module = begin_module,
  .emit_const = emit_const,
  .emit_fn = emit_fn,
  .emit_entry = emit_entry,
  .finish = finish,
  .build = build,
};
