/* arena.c - bump allocation for the compiler, and its error path. */
#include "ir/ir.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct ArenaBlock { ArenaBlock *next; size_t size, used; _Alignas(16) unsigned char mem[]; };

void *fm_alloc(Arena *a, size_t n) {
  if (n > SIZE_MAX / 2) { /* a size computed from a model that wrapped: never allocate it */
    fprintf(stderr, "fewmul: error: out of memory (%zu bytes)\n", n);
    fm_cleanup_run();
    exit(1);
  }
  n = (n + 15) & ~(size_t)15;
  if (!a->head || a->head->used + n > a->head->size) {
    size_t size = n > (1u << 20) ? n : (1u << 20);
    ArenaBlock *b = malloc(sizeof(ArenaBlock) + size);
    if (!b) {
      fprintf(stderr, "fewmul: error: out of memory (%zu bytes)\n", n);
      fm_cleanup_run();
      exit(1);
    }
    b->size = size, b->used = 0, b->next = a->head;
    a->head = b;
  }
  void *p = a->head->mem + a->head->used;
  a->head->used += n;
  a->total += n;
  memset(p, 0, n);
  return p;
}

char *fm_strdup(Arena *a, const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s) + 1;
  return memcpy(fm_alloc(a, n), s, n);
}

char *fm_sprintf(Arena *a, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *s = fm_alloc(a, (size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

void fm_arena_free(Arena *a) {
  for (ArenaBlock *b = a->head, *next; b; b = next) next = b->next, free(b);
  a->head = NULL, a->total = 0;
}

/* ---- errors ---- */
_Thread_local FmTry *fm_try_top;
static _Thread_local char errbuf[2048];

void fm_try_push(FmTry *t) { t->prev = fm_try_top, fm_try_top = t; }
void fm_try_pop(FmTry *t) { if (fm_try_top == t) fm_try_top = t->prev; }
const char *fm_errmsg(void) { return errbuf; }

_Noreturn void fm_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(errbuf, sizeof errbuf, fmt, ap);
  va_end(ap);
  FmTry *t = fm_try_top;
  if (t) {
    fm_try_top = t->prev;
    longjmp(t->jb, 1);
  }
  fprintf(stderr, "fewmul: error: %s\n", errbuf);
  fm_cleanup_run();
  exit(1);
}

/* Partial outputs to remove if the process fails or is interrupted: cleanup.c. */
