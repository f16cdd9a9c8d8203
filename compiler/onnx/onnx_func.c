/* onnx_func.c - model-local functions (ModelProto.functions) inlined at import, and
 * a schema-aware check of protobuf nesting depth run before protobuf-c (whose
 * recursive parser a hostile file could otherwise drive off the stack). */
#include "onnx/onnx_internal.h"
#include <stdlib.h>
#include <string.h>

/* ---- protobuf nesting ---- */
static int varint(const uint8_t *p, size_t n, size_t *i, uint64_t *v) {
  *v = 0;
  for (int s = 0; s < 64; s += 7) {
    if (*i >= n) return 0;
    uint8_t b = p[(*i)++];
    *v |= (uint64_t)(b & 0x7f) << s;
    if (!(b & 0x80)) return 1;
  }
  return 0;
}

#define PB_MAX_DEPTH 64

static int pb_scan(const uint8_t *p, size_t n, const ProtobufCMessageDescriptor *d, int depth) {
  if (depth > PB_MAX_DEPTH) return 0;
  for (size_t i = 0; i < n;) {
    uint64_t key, v;
    if (!varint(p, n, &i, &key)) return 0;
    switch (key & 7) {
    case 0: if (!varint(p, n, &i, &v)) return 0; break;
    case 1: if (n - i < 8) return 0; i += 8; break;
    case 5: if (n - i < 4) return 0; i += 4; break;
    case 2: {
      if (!varint(p, n, &i, &v) || v > n - i) return 0;
      uint64_t num = key >> 3;
      const ProtobufCFieldDescriptor *f =
          num && num < (1u << 29) ? protobuf_c_message_descriptor_get_field(d, (unsigned)num) : NULL;
      if (f && f->type == PROTOBUF_C_TYPE_MESSAGE && !pb_scan(p + i, (size_t)v, f->descriptor, depth + 1))
        return 0;
      i += (size_t)v;
      break;
    }
    default: return 0; /* groups: not in onnx.proto */
    }
  }
  return 1;
}

int ld_pb_nesting_ok(const uint8_t *p, size_t n) { return pb_scan(p, n, &onnx__model_proto__descriptor, 0); }

/* ---- functions ---- */
static const char *norm(const char *d) { return !d || !strcmp(d, "ai.onnx") ? "" : d; }

/* FunctionProto.attribute_proto (field 11, attributes with defaults) is newer than
   the onnx.proto we compile, so protobuf-c keeps it as an unknown field. */
static void read_defaults(Ld *L, LdFunc *f) {
  const ProtobufCMessage *b = &f->fp->base;
  f->defaults = fm_alloc(&L->g->arena, sizeof(void *) * (b->n_unknown_fields + 1));
  for (unsigned i = 0; i < b->n_unknown_fields; i++) {
    const ProtobufCMessageUnknownField *u = &b->unknown_fields[i];
    if (u->tag != 11 || u->wire_type != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED) continue;
    size_t k = 0;
    uint64_t len;
    /* protobuf-c keeps the length prefix in the unknown field's bytes */
    if (!varint(u->data, u->len, &k, &len) || len != u->len - k ||
        !pb_scan(u->data + k, (size_t)len, &onnx__attribute_proto__descriptor, 4))
      fm_fail("'%s': function '%s' has a malformed attribute default", L->file, S(f->fp->name));
    Onnx__AttributeProto *a = onnx__attribute_proto__unpack(NULL, (size_t)len, u->data + k);
    if (!a) fm_fail("'%s': function '%s' has a malformed attribute default", L->file, S(f->fp->name));
    f->defaults[f->ndefaults++] = a;
  }
}

void ld_funcs_init(Ld *L) {
  const Onnx__ModelProto *m = L->m;
  L->fns = fm_alloc(&L->g->arena, sizeof(LdFunc) * (m->n_functions + 1));
  for (size_t i = 0; i < m->n_functions; i++) {
    const Onnx__FunctionProto *fp = m->functions[i];
    if (!*S(fp->name)) fm_fail("'%s': model-local function %zu has no name", L->file, i);
    if (ld_find_func(L, norm(fp->domain), fp->name))
      fm_fail("'%s': function '%s.%s' is defined twice", L->file, S(fp->domain), fp->name);
    LdFunc *f = &L->fns[L->nfns++];
    f->fp = fp;
    f->domain = norm(fp->domain);
    read_defaults(L, f);
  }
}

void ld_funcs_free(Ld *L) {
  for (int i = 0; i < L->nfns; i++)
    for (int j = 0; j < L->fns[i].ndefaults; j++) onnx__attribute_proto__free_unpacked(L->fns[i].defaults[j], NULL);
  L->nfns = 0;
}

LdFunc *ld_find_func(Ld *L, const char *domain, const char *op_type) {
  for (int i = 0; i < L->nfns; i++)
    if (!strcmp(L->fns[i].domain, domain) && !strcmp(L->fns[i].fp->name, op_type)) return &L->fns[i];
  return NULL;
}

/* Copies f's body into the graph: formal inputs bound to the caller's tensors (a
   missing optional input reads as absent), formal outputs to the caller's outputs,
   every other tensor renamed "<caller>/<name>". */
void ld_inline(Ld *L, LdFunc *f, const char *callname, const char *op_type, Tensor **ins, int nin,
               Tensor **outs, int nout, const Attr *attrs, int na) {
  const Onnx__FunctionProto *fp = f->fp;
  const char *fname = fp->name;
  if (f->active) fm_fail("node '%s' (%s): function '%s' calls itself", callname, op_type, fname);
  if (L->depth >= LD_MAX_DEPTH)
    fm_fail("node '%s' (%s): functions nested more than %d deep", callname, op_type, LD_MAX_DEPTH);
  if ((size_t)nin > fp->n_input)
    fm_fail("node '%s' (%s): has %d inputs, but function '%s' takes %zu", callname, op_type, nin, fname, fp->n_input);
  if ((size_t)nout > fp->n_output)
    fm_fail("node '%s' (%s): has %d outputs, but function '%s' gives %zu", callname, op_type, nout, fname,
            fp->n_output);
  ld_count_node(L);
  NameMap local = {.a = &L->g->arena};
  for (size_t k = 0; k < fp->n_input; k++) {
    Tensor *t = (int)k < nin && ins[k] ? ins[k] : &ld_absent;
    if (!*fp->input[k]) fm_fail("function '%s': input %zu has no name", fname, k);
    nm_put(&local, fp->input[k], t);
  }
  Scope sc = {.names = &local, .prefix = callname, .cattrs = attrs, .ncattrs = na, .fn = f,
              .fouts = fp->output, .nfout = (int)fp->n_output};
  sc.fout_t = fm_alloc(&L->g->arena, sizeof(Tensor *) * (fp->n_output + 1));
  sc.fout_done = fm_alloc(&L->g->arena, fp->n_output + 1);
  for (size_t k = 0; k < fp->n_output; k++)
    sc.fout_t[k] = (int)k < nout && outs[k] ? outs[k] : ld_fresh(L, callname, fp->output[k]);

  f->active = 1, L->depth++;
  ld_nodes(L, fp->node, fp->n_node, &sc);
  f->active = 0, L->depth--;

  /* an output the body does not compute is one of the inputs passed through */
  for (size_t k = 0; k < fp->n_output; k++) {
    if (sc.fout_done[k]) continue;
    Tensor *src = nm_get(&local, fp->output[k]);
    if (!src || src == &ld_absent)
      fm_fail("node '%s' (%s): function '%s' does not compute its output '%s'", callname, op_type, fname,
              fp->output[k]);
    Node *n = fm_node_new(L->g, OP_Identity, fm_sprintf(&L->g->arena, "%s/%s_pass", callname, fp->output[k]), 1, 1);
    n->opset = L->g->opset;
    n->in[0] = src, n->out[0] = sc.fout_t[k];
    sc.fout_t[k]->producer = n;
  }
}
