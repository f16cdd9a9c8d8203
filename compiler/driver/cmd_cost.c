/* cmd_cost.c - `fewmul cost MODEL.onnx`: per-layer work of the compiled code.
 * Multiplications and additions are counted on the lowered kernels (fm_kcost), after
 * the same passes as `compile`, so they are what the generated code performs; the
 * dense MAC column is what a plain implementation of the same layer would do. */
#include "driver.h"
#include "emit/codegen.h"
#include "passes/passes.h"
#include <stdlib.h>
#include <string.h>

static const char help[] =
  "usage: fewmul cost MODEL.onnx [--batch N] [--shape NAME=DIMS]... [--no-fuse] [--json]\n"
  "\n"
  "Per kernel: node, op, output shape, dense MACs, multiplications and additions the\n"
  "lowered code performs, weight bytes and activation bytes, then totals. The\n"
  "lowering flags of `fewmul compile` apply (--target, --conv, --gemm, --specialize).\n"
  "--json prints {\"layers\":[{\"name\",\"op\",\"kind\",\"mul\",\"add\",\"shift\",\"dense_mul\"},...],\n"
  "\"total\":{\"mul\",\"add\",\"shift\",\"dense_mul\"}} instead (kind: dense, ternary, pow2, sp,\n"
  "shift or other).\n";

static int64_t dim_at(int64_t d, int64_t batch) { return d < 0 ? -d * batch : d; }

static double numel_at(const Tensor *t, int64_t batch) {
  if (!t || t->rank < 0) return 0;
  double n = 1;
  for (int i = 0; i < t->rank; i++) n *= (double)dim_at(t->dims[i], batch);
  return n;
}

/* Multiply-accumulates of a dense implementation of n (0 for ops that are not
   convolutions or matrix products). */
static double dense_macs(Node *n, int64_t batch) {
  Tensor *y = n->nout ? n->out[0] : NULL, *x = n->nin ? n->in[0] : NULL;
  Tensor *w = n->nin > 1 ? n->in[1] : NULL;
  if (!y || !x || y->rank < 0 || x->rank < 1) return 0;
  double out = numel_at(y, batch), per = 1;
  switch (n->op) {
  case OP_Conv: case OP_TernaryConv: case OP_Pow2Conv:
  case OP_WinogradConv:   // the direct 3x3 conv it replaces: W [K, C, 3, 3]
    if (!w || w->rank < 2) return 0;
    for (int i = 1; i < w->rank; i++) per *= (double)dim_at(w->dims[i], batch);
    return out * per;
  case OP_ConvTranspose:
    if (!w || w->rank < 2) return 0;
    for (int i = 1; i < w->rank; i++) per *= (double)dim_at(w->dims[i], batch);
    return numel_at(x, batch) * per;
  case OP_Gemm: case OP_TernaryGemm: case OP_Pow2Gemm: { /* the ai.fewmul ones: X may be [..., K] */
    int64_t ta = fm_attr_i(n, "transA", 0);
    if (x->rank < 2 || (ta && x->rank != 2)) return 0;
    return out * (double)dim_at(x->dims[ta ? 0 : x->rank - 1], batch);
  }
  case OP_MatMul:
    return out * (double)dim_at(x->dims[x->rank - 1], batch);
  case OP_SPGemm:   // the replaced Gemm: x [N, K]
    return x->rank == 2 ? out * (double)dim_at(x->dims[1], batch) : 0;
  case OP_SPConv: {   // the replaced conv, whose kernel_shape the exporter keeps
    Attr *k = fm_attr(n, "kernel_shape");
    if (!k || x->rank < 2) return 0;
    per = (double)dim_at(x->dims[1], batch) / (double)fm_attr_i(n, "group", 1);
    for (int i = 0; i < k->n; i++) per *= (double)k->ints[i];
    return out * per;
  }
  default:
    return 0;
  }
}

int fm_cmd_cost(int argc, char **argv) {
  const char *cmd = "cost";
  if (fm_wants_help(argc, argv)) return fputs(help, stdout), 0;
  Arena ar = {0};
  const char *model = NULL;
  int64_t batch = 1;
  int nshapes = 0, no_fuse = 0, json = 0;
  FmShapeOverride shapes[16];
  FmBuildFlags bf = {0};
  for (int i = 0; i < argc; i++) {
    const char *v;
    if ((v = fm_opt(cmd, argc, argv, &i, "--batch"))) batch = fm_parse_int(cmd, "--batch", v, 1, INT32_MAX);
    else if ((v = fm_opt(cmd, argc, argv, &i, "--shape"))) fm_driver_add_shape(cmd, &ar, shapes, &nshapes, v);
    else if (fm_flag(argv, i, "--no-fuse")) no_fuse = 1;
    else if (fm_flag(argv, i, "--json")) json = 1;
    else if (fm_driver_build_flag(cmd, argc, argv, &i, &bf)) continue;
    else if (argv[i][0] == '-' && argv[i][1]) fm_usage(cmd, "unknown option '%s'", argv[i]);
    else if (!model) model = argv[i];
    else fm_usage(cmd, "unexpected argument '%s'", argv[i]);
  }
  if (!model) fm_usage(cmd, "missing MODEL.onnx");
  Graph *g = fm_driver_load(model, shapes, nshapes);
  KProgram *p = fm_driver_lower(g, NULL, 0, no_fuse, &bf);

  if (json) printf("{\"layers\":[");
  else printf("%-28s %-18s %-18s %14s %14s %14s %12s %12s\n", "node", "op", "output", "dense_MACs", "muls",
         "adds", "weight_B", "act_B");
  double tmacs = 0, tmuls = 0, tadds = 0, tshifts = 0, tw = 0, tact = 0;
  for (KFn *fn = p->fns; fn; fn = fn->next) {
    Node *n = fn->node;
    KCost c = fm_kcost(fn, batch);
    double macs = n ? dense_macs(n, batch) : 0, wb = 0, act = 0;
    for (int k = 0; k < fn->nbufs; k++) {
      KBuf *b = fn->bufs[k];
      if (b->kind == KBUF_CONST) wb += (double)dim_at(b->nelem, batch) * (double)fm_dtype_size(b->t);
      else if (b->kind == KBUF_TENSOR && b->tensor->data) wb += (double)fm_nbytes(b->tensor);
    }
    char shape[128] = "-";
    if (n) {
      for (int j = 0; j < n->nout; j++)
        if (n->out[j]) act += numel_at(n->out[j], batch) * (double)fm_dtype_size(n->out[j]->dtype);
      if (n->nout && n->out[0] && n->out[0]->rank >= 0) {
        int64_t d[FM_MAXRANK];
        for (int i = 0; i < n->out[0]->rank; i++) d[i] = dim_at(n->out[0]->dims[i], batch);
        fm_dims_str(shape, sizeof shape, n->out[0]->rank, d, "N");
      }
    }
    if (json) {
      printf("%s{\"name\":", fn == p->fns ? "" : ",");
      fm_json_str(stdout, n ? n->name : fn->name);
      printf(",\"op\":");
      fm_json_str(stdout, n ? n->op_type : "-");
      printf(",\"kind\":\"%s\",\"mul\":%.0f,\"add\":%.0f,\"shift\":%.0f,\"dense_mul\":%.0f}", fm_cost_kind(n),
             c.muls, c.adds, c.shifts, macs);
    } else
      printf("%-28.28s %-18.18s %-18.18s %14.0f %14.0f %14.0f %12.0f %12.0f\n", n ? n->name : fn->name,
             n ? n->op_type : "-", shape, macs, c.muls, c.adds, wb, act);
    tmacs += macs, tmuls += c.muls, tadds += c.adds, tshifts += c.shifts, tw += wb, tact += act;
  }
  if (json) {
    printf("],\"total\":{\"mul\":%.0f,\"add\":%.0f,\"shift\":%.0f,\"dense_mul\":%.0f}}\n", tmuls, tadds, tshifts,
           tmacs);
    fm_graph_free(g);
    fm_arena_free(&ar);
    return 0;
  }
  printf("%-28s %-18s %-18s %14.0f %14.0f %14.0f %12.0f %12.0f\n", "total", "", "", tmacs, tmuls, tadds, tw, tact);
  printf("batch: %lld  kernels: %d  multiplications: %.0f", (long long)batch, p->nfns, tmuls);
  if (tmacs > 0) printf(" (%.1f%% of %.0f dense MACs)", 100.0 * tmuls / tmacs, tmacs);
  printf("  additions: %.0f  shifts: %.0f\n", tadds, tshifts);
  FmMemPlan *mp = fm_memplan(p);
  printf("workspace: %zu bytes (%.0f without reuse)\n", fm_memplan_size(mp, batch),
         (double)fm_lin_at(mp->naive, batch));
  fm_graph_free(g);
  fm_arena_free(&ar);
  return 0;
}
