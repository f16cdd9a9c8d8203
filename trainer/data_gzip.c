/* data_gzip.c - a small gzip / DEFLATE decoder (RFC 1951, 1952), so .gz data sets
 * load without zlib. Canonical Huffman decoding after Mark Adler's puff.c, with a
 * 9-bit lookup table in front for speed. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "data_internal.h"

#define MAXBITS 15       /* longest code */
#define MAXLCODES 286    /* literal/length codes */
#define MAXDCODES 30     /* distance codes */
#define FIXLCODES 288    /* literal/length codes in the fixed code */
#define FAST_BITS 9
#define FAST_MASK ((1u << FAST_BITS) - 1)

typedef struct Huff {
  short count[MAXBITS + 1];   /* codes of each length */
  short symbol[FIXLCODES];    /* symbols in canonical order */
  uint16_t fast[1 << FAST_BITS]; /* next FAST_BITS input bits -> (len << 9) | sym, 0: slow path */
} Huff;

typedef struct Inflate {
  const uint8_t *in;
  size_t inlen, inpos;
  uint32_t bitbuf;  /* bits not yet used, LSB first */
  int bitcnt;
  uint8_t *out;
  size_t outlen, outcap;
  const char *why;  /* first error, NULL while fine */
} Inflate;

static void refill(Inflate *s) {
  while (s->bitcnt <= 24 && s->inpos < s->inlen) {
    s->bitbuf |= (uint32_t)s->in[s->inpos++] << s->bitcnt;
    s->bitcnt += 8;
  }
}

static int bits(Inflate *s, int need) {
  if (s->bitcnt < need) refill(s);
  if (s->bitcnt < need) {
    if (!s->why) s->why = "truncated gzip data";
    return 0;
  }
  int v = (int)(s->bitbuf & ((1u << need) - 1));
  s->bitbuf = need == 32 ? 0 : s->bitbuf >> need;
  s->bitcnt -= need;
  return v;
}

/* Returns bytes that refill() read ahead of the bit position to the input. */
static void align_to_byte(Inflate *s) {
  s->inpos -= (size_t)(s->bitcnt / 8);
  s->bitbuf = 0;
  s->bitcnt = 0;
}

static int reserve(Inflate *s, size_t more) {
  if (s->outcap - s->outlen >= more) return 0;
  size_t cap = s->outcap ? s->outcap : 1 << 16;
  while (cap - s->outlen < more) cap *= 2;
  uint8_t *p = realloc(s->out, cap);
  if (!p) { s->why = "out of memory"; return -1; }
  s->out = p;
  s->outcap = cap;
  return 0;
}

/* Builds h from code lengths. Returns 0 for a complete code, < 0 when over-
 * subscribed, > 0 when incomplete. */
static int construct(Huff *h, const short *length, int n) {
  memset(h->count, 0, sizeof h->count);
  for (int s = 0; s < n; s++) h->count[length[s]]++;
  if (h->count[0] == n) { memset(h->fast, 0, sizeof h->fast); return 0; }
  int left = 1;
  for (int len = 1; len <= MAXBITS; len++) {
    left <<= 1;
    left -= h->count[len];
    if (left < 0) return left;
  }
  short offs[MAXBITS + 1];
  offs[1] = 0;
  for (int len = 1; len < MAXBITS; len++) offs[len + 1] = offs[len] + h->count[len];
  for (int s = 0; s < n; s++)
    if (length[s]) h->symbol[offs[length[s]]++] = (short)s;

  /* fast table: canonical code of each short symbol, bit-reversed (DEFLATE sends
   * Huffman codes MSB first into an LSB-first stream) */
  memset(h->fast, 0, sizeof h->fast);
  int next[MAXBITS + 2], code = 0;
  for (int len = 1; len <= MAXBITS; len++) {
    code = (code + (len > 1 ? h->count[len - 1] : 0)) << 1;
    next[len] = code;
  }
  for (int s = 0; s < n; s++) {
    int len = length[s];
    if (!len || len > FAST_BITS) continue;
    int c = next[len]++, r = 0;
    for (int b = 0; b < len; b++) r |= ((c >> b) & 1) << (len - 1 - b);
    for (int i = r; i < (1 << FAST_BITS); i += 1 << len) h->fast[i] = (uint16_t)(len << 9 | s);
  }
  return left;
}

static int decode(Inflate *s, const Huff *h) {
  if (s->bitcnt < FAST_BITS) refill(s);
  if (s->bitcnt >= FAST_BITS) {
    uint16_t e = h->fast[s->bitbuf & FAST_MASK];
    if (e) {
      int len = e >> 9;
      s->bitbuf >>= len;
      s->bitcnt -= len;
      return e & 0x1ff;
    }
  }
  int code = 0, first = 0, index = 0;
  for (int len = 1; len <= MAXBITS; len++) {
    code |= bits(s, 1);
    int count = h->count[len];
    if (code - count < first) return h->symbol[index + (code - first)];
    index += count;
    first += count;
    first <<= 1;
    code <<= 1;
    if (s->why) return -1;
  }
  if (!s->why) s->why = "invalid Huffman code";
  return -1;
}

static const short lbase[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
                                35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const short lext[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
                               3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const short dbase[30] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129,
                                193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097,
                                6145, 8193, 12289, 16385, 24577};
static const short dext[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6,
                               6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

/* Literals and length/distance pairs until end-of-block. */
static int codes(Inflate *s, const Huff *lencode, const Huff *distcode) {
  for (;;) {
    int sym = decode(s, lencode);
    if (s->why) return -1;
    if (sym < 256) {
      if (reserve(s, 1)) return -1;
      s->out[s->outlen++] = (uint8_t)sym;
    } else if (sym == 256) {
      return 0;
    } else {
      sym -= 257;
      if (sym >= 29) { s->why = "invalid length code"; return -1; }
      size_t len = (size_t)(lbase[sym] + bits(s, lext[sym]));
      int dsym = decode(s, distcode);
      if (s->why) return -1;
      if (dsym < 0 || dsym >= 30) { s->why = "invalid distance code"; return -1; }
      size_t dist = (size_t)(dbase[dsym] + bits(s, dext[dsym]));
      if (s->why) return -1;
      if (dist > s->outlen) { s->why = "distance too far back"; return -1; }
      if (reserve(s, len)) return -1;
      uint8_t *o = s->out + s->outlen;
      const uint8_t *from = o - dist;
      for (size_t i = 0; i < len; i++) o[i] = from[i];  /* may overlap forwards */
      s->outlen += len;
    }
  }
}

static int stored(Inflate *s) {
  align_to_byte(s);
  if (s->inlen - s->inpos < 4) { s->why = "truncated gzip data"; return -1; }
  const uint8_t *p = s->in + s->inpos;
  unsigned len = p[0] | p[1] << 8, nlen = p[2] | p[3] << 8;
  if (len != (~nlen & 0xffff)) { s->why = "stored block length check failed"; return -1; }
  s->inpos += 4;
  if (s->inlen - s->inpos < len) { s->why = "truncated gzip data"; return -1; }
  if (reserve(s, len)) return -1;
  memcpy(s->out + s->outlen, s->in + s->inpos, len);
  s->outlen += len;
  s->inpos += len;
  return 0;
}

static int fixed(Inflate *s) {
  short lengths[FIXLCODES];
  Huff lencode, distcode;  /* rebuilt per block: cheap, and no shared state between threads */
  int sym = 0;
  for (; sym < 144; sym++) lengths[sym] = 8;
  for (; sym < 256; sym++) lengths[sym] = 9;
  for (; sym < 280; sym++) lengths[sym] = 7;
  for (; sym < FIXLCODES; sym++) lengths[sym] = 8;
  construct(&lencode, lengths, FIXLCODES);
  for (sym = 0; sym < MAXDCODES; sym++) lengths[sym] = 5;
  construct(&distcode, lengths, MAXDCODES);
  return codes(s, &lencode, &distcode);
}

static int dynamic(Inflate *s) {
  static const short order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
  short lengths[MAXLCODES + MAXDCODES];
  Huff lencode, distcode;
  int nlen = bits(s, 5) + 257, ndist = bits(s, 5) + 1, ncode = bits(s, 4) + 4;
  if (s->why) return -1;
  if (nlen > MAXLCODES || ndist > MAXDCODES) { s->why = "bad dynamic block counts"; return -1; }
  int index = 0;
  for (; index < ncode; index++) lengths[order[index]] = (short)bits(s, 3);
  for (; index < 19; index++) lengths[order[index]] = 0;
  if (s->why) return -1;
  if (construct(&lencode, lengths, 19) != 0) { s->why = "bad code-length code"; return -1; }
  for (index = 0; index < nlen + ndist;) {
    int sym = decode(s, &lencode);
    if (s->why) return -1;
    if (sym < 16) { lengths[index++] = (short)sym; continue; }
    int len = 0, rep;
    if (sym == 16) {
      if (index == 0) { s->why = "repeat with no previous length"; return -1; }
      len = lengths[index - 1];
      rep = 3 + bits(s, 2);
    } else if (sym == 17) {
      rep = 3 + bits(s, 3);
    } else {
      rep = 11 + bits(s, 7);
    }
    if (s->why) return -1;
    if (index + rep > nlen + ndist) { s->why = "too many code lengths"; return -1; }
    while (rep--) lengths[index++] = (short)len;
  }
  if (lengths[256] == 0) { s->why = "no end-of-block code"; return -1; }
  int err = construct(&lencode, lengths, nlen);
  if (err && (err < 0 || nlen != lencode.count[0] + lencode.count[1])) {
    s->why = "bad literal/length code"; return -1;
  }
  err = construct(&distcode, lengths + nlen, ndist);
  if (err && (err < 0 || ndist != distcode.count[0] + distcode.count[1])) {
    s->why = "bad distance code"; return -1;
  }
  return codes(s, &lencode, &distcode);
}

static uint32_t le32(const uint8_t *p) {
  return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* One gzip member starting at s->inpos. */
static int member(Inflate *s) {
  const uint8_t *p = s->in + s->inpos;
  size_t left = s->inlen - s->inpos;
  if (left < 18) { s->why = "truncated gzip header"; return -1; }
  if (p[0] != 0x1f || p[1] != 0x8b) { s->why = "not gzip data"; return -1; }
  if (p[2] != 8) { s->why = "unknown gzip compression method"; return -1; }
  int flg = p[3];
  if (flg & 0xe0) { s->why = "reserved gzip flags set"; return -1; }
  size_t pos = 10;
  if (flg & 4) {  /* FEXTRA */
    if (left < pos + 2) { s->why = "truncated gzip header"; return -1; }
    pos += 2 + (size_t)(p[pos] | p[pos + 1] << 8);
  }
  for (int f = 8; f <= 16; f <<= 1)  /* FNAME, FCOMMENT: zero-terminated */
    if (flg & f) {
      while (pos < left && p[pos]) pos++;
      pos++;
    }
  if (flg & 2) pos += 2;  /* FHCRC */
  if (pos > left) { s->why = "truncated gzip header"; return -1; }
  s->inpos += pos;
  s->bitbuf = 0;
  s->bitcnt = 0;

  size_t start = s->outlen;
  int last;
  do {
    last = bits(s, 1);
    int type = bits(s, 2);
    if (s->why) return -1;
    int rc = type == 0 ? stored(s) : type == 1 ? fixed(s) : type == 2 ? dynamic(s)
           : (s->why = "invalid block type", -1);
    if (rc) return -1;
  } while (!last);
  align_to_byte(s);

  if (s->inlen - s->inpos < 8) { s->why = "truncated gzip data (no trailer)"; return -1; }
  uint32_t crc = le32(s->in + s->inpos), isize = le32(s->in + s->inpos + 4);
  s->inpos += 8;
  if (fm_crc32_(0, s->out + start, s->outlen - start) != crc) { s->why = "gzip CRC mismatch"; return -1; }
  if ((uint32_t)(s->outlen - start) != isize) { s->why = "gzip length mismatch"; return -1; }
  return 0;
}

int fm_gunzip_(const uint8_t *in, size_t inlen, uint8_t **out, size_t *outlen, const char **why) {
  Inflate s = {.in = in, .inlen = inlen};
  /* ISIZE of the last member (the uncompressed size mod 2^32) sizes the buffer,
   * capped by DEFLATE's best ratio (~1032:1) so a corrupt trailer cannot ask for 4 GB */
  if (inlen >= 18) {
    size_t hint = le32(in + inlen - 4);
    if (hint / 1032 > inlen) hint = inlen * 1032;
    if (reserve(&s, hint + 1)) goto fail;
  }
  do {
    if (member(&s)) goto fail;
  } while (s.inpos < s.inlen);
  *out = s.out;
  *outlen = s.outlen;
  return 0;
fail:
  free(s.out);
  *why = s.why ? s.why : "corrupt gzip data";
  return -1;
}

static uint32_t crc_table[256];

static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    crc_table[i] = c;
  }
}

uint32_t fm_crc32_(uint32_t crc, const uint8_t *p, size_t n) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, crc_init);
  crc = ~crc;
  for (size_t i = 0; i < n; i++) crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}
