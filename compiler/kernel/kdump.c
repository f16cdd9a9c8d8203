/* kdump.c - a readable dump of a kernel (debugging, `fewmul compile --dump-kernel`).
 *
 *   kernel relu_0 (node 'r' Relu)
 *     buf 0 x: tensor float32 [Nx4]
 *     buf 1 y: tensor float32 [Nx4]
 *     for i = 0 .. N*4 parallel
 *       y[i] = max(x[i], 0f)
 */
#include "kernel/kernel.h"
#include <inttypes.h>

static const char *const loopname[] = {"", " parallel", " vector", " unroll"};


static void dexpr(FILE *f, const KExpr *e, int top) {
  switch (e->k) {
  case KE_CONST:
    if (e->t == FM_F32 || e->t == FM_F64 || e->t == FM_F16)
      fprintf(f, "%.9g%s", e->f, e->t == FM_F32 ? "f" : e->t == FM_F16 ? "h" : "");
    else fprintf(f, "%" PRId64 "%s", e->i, e->t == FM_I64 ? "" : fm_dtype_name(e->t));
    return;
  case KE_VAR: fputs(e->var->name, f); return;
  case KE_BATCH: fputc('N', f); return;
  case KE_LOAD: case KE_ADDR:
    fprintf(f, "%s%s[", e->k == KE_ADDR ? "&" : "", e->buf->name);
    dexpr(f, e->a, 1);
    fputc(']', f);
    return;
  case KE_UN:
    fprintf(f, "%s(", fm_kun[e->op].dump);
    dexpr(f, e->a, 1);
    fputc(')', f);
    return;
  case KE_BIN:
    if (fm_kbin[e->op].infix) {
      if (!top) fputc('(', f);
      dexpr(f, e->a, 0);
      fprintf(f, " %s ", fm_kbin[e->op].dump);
      dexpr(f, e->b, 0);
      if (!top) fputc(')', f);
    } else {
      fprintf(f, "%s(", fm_kbin[e->op].dump);
      dexpr(f, e->a, 1);
      fputs(", ", f);
      dexpr(f, e->b, 1);
      fputc(')', f);
    }
    return;
  case KE_FMA:
    fputs("fma(", f);
    dexpr(f, e->a, 1), fputs(", ", f), dexpr(f, e->b, 1), fputs(", ", f), dexpr(f, e->c, 1);
    fputc(')', f);
    return;
  case KE_SELECT:
    if (!top) fputc('(', f);
    dexpr(f, e->a, 0), fputs(" ? ", f), dexpr(f, e->b, 0), fputs(" : ", f), dexpr(f, e->c, 0);
    if (!top) fputc(')', f);
    return;
  case KE_CAST:
    fprintf(f, "(%s)", fm_dtype_name(e->t));
    dexpr(f, e->a, 0);
    return;
  }
}

static void dstmts(FILE *f, const KStmt *s, int ind) {
  for (; s; s = s->next) {
    fprintf(f, "%*s", 2 * ind, "");
    switch (s->k) {
    case KS_FOR:
      fprintf(f, "for %s = ", s->var->name);
      dexpr(f, s->lo, 1), fputs(" .. ", f), dexpr(f, s->hi, 1);
      fprintf(f, "%s\n", loopname[s->loop]);
      dstmts(f, s->body, ind + 1);
      break;
    case KS_LET:
      fprintf(f, "let %s: %s = ", s->var->name, fm_dtype_name(s->var->t));
      dexpr(f, s->e, 1), fputc('\n', f);
      break;
    case KS_SET:
      fprintf(f, "%s %s= ", s->var->name, s->accop >= 0 ? fm_kbin[s->accop].dump : "");
      dexpr(f, s->e, 1), fputc('\n', f);
      break;
    case KS_STORE:
      fprintf(f, "%s[", s->buf->name);
      dexpr(f, s->idx, 1);
      fprintf(f, "] %s= ", s->accop >= 0 ? fm_kbin[s->accop].dump : "");
      dexpr(f, s->e, 1), fputc('\n', f);
      break;
    case KS_IF:
      fputs("if ", f), dexpr(f, s->e, 1), fputc('\n', f);
      dstmts(f, s->body, ind + 1);
      if (s->els) {
        fprintf(f, "%*selse\n", 2 * ind, "");
        dstmts(f, s->els, ind + 1);
      }
      break;
    case KS_CALL:
      fprintf(f, "call %s(", s->fn);
      for (int i = 0; i < s->nargs; i++) {
        if (i) fputs(", ", f);
        dexpr(f, s->args[i], 1);
      }
      fputs(")", f);
      if (s->muls) fputs("  muls=", f), dexpr(f, s->muls, 1);
      if (s->adds) fputs(" adds=", f), dexpr(f, s->adds, 1);
      fputc('\n', f);
      break;
    case KS_COMMENT: fprintf(f, "// %s\n", s->fn); break;
    }
  }
}

static void dsize(FILE *f, int64_t n) {
  if (n == FM_DIM_UNKNOWN) fputc('?', f);
  else if (n < 0) fprintf(f, "%" PRId64 "N", -n);
  else fprintf(f, "%" PRId64, n);
}

void fm_kdump(KFn *fn, FILE *f) {
  fprintf(f, "kernel %s", fn->name);
  if (fn->node) fprintf(f, " (node '%s' %s)", fn->node->name, fn->node->op_type);
  fputc('\n', f);
  for (int i = 0; i < fn->nbufs; i++) {
    const KBuf *b = fn->bufs[i];
    static const char *kind[] = {"tensor", "const", "scratch"};
    fprintf(f, "  buf %d %s: %s %s [", b->id, b->name, kind[b->kind], fm_dtype_name(b->t));
    if (b->kind == KBUF_TENSOR && b->tensor && b->tensor->rank >= 0) {
      for (int d = 0; d < b->tensor->rank; d++) {
        if (d) fputc('x', f);
        dsize(f, b->tensor->dims[d]);
      }
    } else dsize(f, b->nelem);
    fputs("]\n", f);
  }
  dstmts(f, fn->body, 1);
}
