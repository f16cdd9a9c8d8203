/* check.h - tiny assertion helpers for unit tests (one executable per test file).
 *
 *   CHECK(cond);                      // fails the test, prints file:line and the expression
 *   CHECK_NEAR(expected, got, tol);   // absolute tolerance
 *   return check_done("name");        // prints "name: N passed, M failed", returns exit code
 */
#ifndef FM_CHECK_H
#define FM_CHECK_H
#include <stdio.h>
#include <math.h>

static int check_pass_, check_fail_;
#define CHECK(c) do { if (c) check_pass_++; else { check_fail_++; \
  fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c); } } while (0)
#define CHECK_NEAR(e, g, tol) do { double e_ = (e), g_ = (g); \
  if (fabs(e_ - g_) <= (tol)) check_pass_++; else { check_fail_++; \
  fprintf(stderr, "%s:%d: CHECK_NEAR failed: %s = %g, %s = %g (tol %g)\n", \
          __FILE__, __LINE__, #e, e_, #g, g_, (double)(tol)); } } while (0)
static inline int check_done(const char *name) {
  printf("%s: %d passed, %d failed\n", name, check_pass_, check_fail_);
  return check_fail_ ? 1 : (check_pass_ ? 0 : 1);
}
#endif
