/* fewmul_addconv.c - the ternary Conv by shared partial sums (the CPU library's
 * fm_addconv, compiler/cpu/cpu_addonly.c), chosen by fm_tap_conv over the tap-list rows.
 *
 * Output channels go in tiles of 4 (inside one conv group). Per tile, every tap r
 * (input channel and kernel position) has a weight pattern over the 4 channels, e.g.
 * (+1, 0, -1, +1); taps with the same pattern, or its negation, are summed once (one add
 * per tap) and the sum is added to or subtracted from each channel of the pattern (one
 * add per nonzero channel). For ternary weights at 55% density over K taps this is about
 * K + 40*2.2 adds per tile and output position instead of 4*0.55*K: about half, and each
 * input load is shared by the tile's 4 channels where the tap list loads it per channel.
 *
 *   packed planes P (fm_tap_conv) -> fm_addconv per (image, tile) into acc [N, M, Q]
 *   -> y = Alpha[m] * acc (none when Alpha is all 1) + B[m], activation, the Wph - OW
 *      extra columns of each row dropped
 *
 * fm_addconv_rows returns 0 (and emits nothing) where the tap list is cheaper: pow2
 * weights, a backend that cannot call the library, or more adds than the tap list.
 */
#include "ops/fewmul_internal.h"
#include <stdlib.h>
#include <string.h>

#define TILE 4

typedef struct TapP { uint32_t key; int neg; int32_t off; } TapP;

static int tapp_cmp(const void *a, const void *b) {
  const TapP *x = a, *y = b;
  if (x->key != y->key) return x->key < y->key ? -1 : 1;
  if (x->neg != y->neg) return x->neg - y->neg;
  return x->off < y->off ? -1 : x->off > y->off;
}

static KExpr *ld(KBuf *t, KExpr *i) { return k_cast(FM_I64, k_load(t, i)); }

int fm_addconv_rows(KB *b, const FmTapConv *tc, const FmAddconvGeo *geo) {
  const FmConv *c = tc->c;
  int64_t R = geo->R, M = c->M, Mg = c->Mg, G = c->G, Q = geo->Q;
  if (tc->shift || !fm_lower_can_call(b, "fm_addconv")) return 0;
  int64_t tpg = (Mg + TILE - 1) / TILE, T = G * tpg;
  /* plan: per tile, groups (code, n, offsets) */
  int64_t cap = T * (4 * R + 3) + 1, np = 0, tapadds = 0;
  int32_t *plan = fm_alloc(b->a, sizeof(int32_t) * (size_t)cap);
  int32_t *ts = fm_alloc(b->a, sizeof(int32_t) * (size_t)(T + 1)), *tm = fm_alloc(b->a, sizeof(int32_t) * (size_t)T);
  int32_t *tn = fm_alloc(b->a, sizeof(int32_t) * (size_t)T), *ta = fm_alloc(b->a, sizeof(int32_t) * (size_t)T);
  TapP *taps = malloc(sizeof(TapP) * (size_t)(R ? R : 1));
  double adds_tiles = 0;
  for (int64_t t = 0; t < T; t++) {
    int64_t m0 = (t / tpg) * Mg + (t % tpg) * TILE, nr = (t % tpg) * TILE + TILE <= Mg ? TILE : Mg - (t % tpg) * TILE;
    ts[t] = (int32_t)np, tm[t] = (int32_t)m0, tn[t] = (int32_t)nr;
    int k = 0;
    for (int64_t r = 0; r < R; r++) {
      uint32_t key = 0;
      int flip = 0, seen = 0;
      for (int64_t j = 0; j < nr; j++) {
        int v = tc->w[(m0 + j) * R + r];
        if (v < -1 || v > 1)
          fm_fail("node '%s' (%s): weight '%s' holds %d; only -1, 0 and 1 are allowed", tc->n->name,
                  tc->n->op_type, c->w->name, v);
        if (!v) continue;
        if (!seen) flip = v < 0, seen = 1;
        tapadds++;
        key |= 1u << (2 * j);
        if ((v < 0) != flip) key |= 2u << (2 * j);
      }
      /* key: the pattern with its first nonzero +1; neg: the tap has the negated pattern */
      if (key) taps[k++] = (TapP){key, flip, (int32_t)geo->off[r]};
    }
    qsort(taps, (size_t)k, sizeof *taps, tapp_cmp);
    int64_t per = 0;
    for (int i = 0; i < k;) {
      int j = i, nn = 0;
      while (j < k && taps[j].key == taps[i].key) nn += taps[j++].neg;
      int np_ = j - i - nn;
      /* the orientation with more + taps: code = the pattern the group sum is added with */
      uint32_t code = taps[i].key;
      if (nn > np_) code ^= (code & 0x55u) << 1;
      int want = nn > np_; /* the taps added first (those whose neg == want) */
      plan[np++] = (int32_t)code, plan[np++] = want ? nn : np_, plan[np++] = want ? np_ : nn;
      for (int pass = 0; pass < 2; pass++)
        for (int q = i; q < j; q++)
          if (taps[q].neg == (pass ? !want : want)) plan[np++] = taps[q].off;
      per += j - i - 1 + __builtin_popcount(code & 0x55u);
      i = j;
    }
    if (per > INT32_MAX) { free(taps); return 0; }
    ta[t] = (int32_t)per, adds_tiles += (double)per;
  }
  ts[T] = (int32_t)np;
  free(taps);
  if (adds_tiles >= (double)tapadds) return 0; /* the tap list does fewer adds */
  Node *n = tc->n;
  kb_comment(b, "%s by shared partial sums: %lld tiles of %d channels, %.0f adds per position "
             "(tap list: %lld)", n->op_type, (long long)T, TILE, adds_tiles, (long long)tapadds);
  KBuf *PLAN = kb_const(b, "plan", FM_I32, np ? np : 1, plan);
  KBuf *TS = kb_const(b, "tile_start", FM_I32, T + 1, ts), *TM = kb_const(b, "tile_m0", FM_I32, T, tm);
  KBuf *TN = kb_const(b, "tile_nr", FM_I32, T, tn), *TA = kb_const(b, "tile_adds", FM_I32, T, ta);
  KExpr *N = kb_dim(b, c->x->dims[0]);
  KBuf *acc = kb_scratch(b, "acc", FM_F32, c->x->dims[0] * M * Q);
  KVar *it = kb_for(b, "it", k_i(0), k_mul(N, k_i(T)), KL_PARALLEL);
  KVar *img = kb_let(b, "img", FM_I64, k_div(k_var(it), k_i(T)));
  KVar *tl = kb_let(b, "tl", FM_I64, k_mod(k_var(it), k_i(T)));
  KVar *m0 = kb_let(b, "m0", FM_I64, ld(TM, k_var(tl)));
  KExpr *ch0 = k_add(k_mul(k_var(img), k_i(c->C)), k_mul(k_div(k_var(m0), k_i(Mg)), k_i(c->Cg)));
  KVar *base = kb_let(b, "base", FM_I64, k_mul(ch0, k_i(geo->plane)));
  kb_call(b, "fm_addconv", k_i(0), k_mul(k_i(Q), ld(TA, k_var(tl))), 9, k_i(0), k_i(Q), k_addr(geo->P, k_var(base)),
          k_addr(PLAN, k_i(0)), ld(TS, k_var(tl)), ld(TS, k_add(k_var(tl), k_i(1))),
          k_addr(acc, k_mul(k_add(k_mul(k_var(img), k_i(M)), k_var(m0)), k_i(Q))), k_i(Q), ld(TN, k_var(tl)));
  kb_end(b);
  /* y = Alpha[m] * acc + B[m], activation, extra columns dropped */
  int64_t OH = geo->OH, OW = geo->OW, Wph = geo->Wph;
  KVar *jt = kb_for(b, "it", k_i(0), k_mul(N, k_i(M)), KL_PARALLEL);
  KVar *m = kb_let(b, "m", FM_I64, k_mod(k_var(jt), k_i(M)));
  KVar *mult = tc->unit_alpha ? NULL : kb_let(b, "alpha", FM_F32, k_load(tc->alpha, k_var(m)));
  KVar *bias = tc->bias ? kb_let(b, "bias", FM_F32, k_load(tc->bias, k_var(m))) : NULL;
  KVar *oh = kb_for(b, "oh", k_i(0), k_i(OH), KL_SERIAL);
  KVar *ow = kb_for(b, "ow", k_i(0), k_i(OW), KL_VECTOR);
  KExpr *v = k_load(acc, k_add(k_add(k_mul(k_var(jt), k_i(Q)), k_mul(k_var(oh), k_i(Wph))), k_var(ow)));
  if (mult) v = k_mul(k_var(mult), v);
  if (bias) v = k_add(v, k_var(bias));
  KExpr *yi = k_add(k_mul(k_var(jt), k_i(OH * OW)), k_add(k_mul(k_var(oh), k_i(OW)), k_var(ow)));
  if (tc->act) fm_dense_store(b, n, tc->y, yi, v);
  else kb_store(b, tc->y, yi, v);
  kb_end(b);
  kb_end(b);
  kb_end(b); /* it */
  return 1;
}
