/* cleanup.c - no partial outputs: paths to remove and a child process to stop when
 * the process fails (fm_fail, fm_usage) or is interrupted (SIGINT, SIGTERM, SIGHUP).
 *
 * The signal handler may run at any point of the main flow, so what it reads is kept
 * consistent at every instant: a path is in the list before the count covers it, and
 * leaves the list before its string is freed. The handler uses async-signal-safe
 * calls only (kill, waitid, waitpid, nanosleep, unlink, rmdir, open, getdents64
 * through syscall, unlinkat), then dies by the same signal so the exit status tells it.
 */
#define _GNU_SOURCE
#include "ir/ir.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAXCLEAN 256
typedef struct { char *path; int tree; } Entry;
static Entry *volatile list[MAXCLEAN];
static volatile sig_atomic_t nlist;
static volatile pid_t child; /* leads its own process group */

static void add(const char *path, int tree) {
  Entry *e = malloc(sizeof *e);
  char *p = strdup(path);
  if (!e || !p || nlist >= MAXCLEAN) {
    free(e), free(p);
    return;
  }
  e->path = p, e->tree = tree;
  list[nlist] = e;
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  nlist++;
}

void fm_cleanup_add(const char *path) { add(path, 0); }
void fm_cleanup_add_tree(const char *dir) { add(dir, 1); }

/* Drops every entry for path, keeping the others in order (shifted down: at every
   instant each remaining entry is in the list at least once). */
void fm_cleanup_forget(const char *path) {
  for (int i = 0; i < nlist;) {
    Entry *e = list[i];
    if (!e || strcmp(e->path, path)) {
      i++;
      continue;
    }
    for (int j = i; j + 1 < nlist; j++) list[j] = list[j + 1];
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    nlist--;
    list[nlist] = NULL;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    free(e->path), free(e);
  }
}

void fm_cleanup_child(int pid) { child = pid; }

/* Removes everything under the directory fd (depth-limited), async-signal-safely. */
struct linux_dirent64 { uint64_t ino; int64_t off; unsigned short reclen; unsigned char type; char name[]; };
static void clear_dir(int fd, int depth) {
  char buf[4096];
  for (;;) {
    long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
    if (n <= 0) return;
    int removed = 0;
    for (long off = 0; off < n;) {
      struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + off);
      off += d->reclen;
      if (!strcmp(d->name, ".") || !strcmp(d->name, "..")) continue;
      if (unlinkat(fd, d->name, 0) == 0) { removed++; continue; }
      if (errno != EISDIR && d->type != DT_DIR) continue;
      int sub = depth < 16 ? openat(fd, d->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;
      if (sub >= 0) clear_dir(sub, depth + 1), close(sub);
      removed += unlinkat(fd, d->name, AT_REMOVEDIR) == 0;
    }
    if (removed) lseek(fd, 0, SEEK_SET); /* entries moved: read the directory again */
  }
}

/* Stops the child's process group (SIGTERM, then SIGKILL after 2 s) and reaps it,
   so it writes nothing after the removal and no compiler is left running. The leader
   is reaped last (WNOWAIT until then), so its pid cannot name another process group
   when the stragglers (the compiler's own children) get SIGKILL. */
static void stop_child(void) {
  pid_t pid = child;
  if (pid <= 0) return;
  kill(-pid, SIGTERM);
  kill(pid, SIGTERM);
  struct timespec ts = {0, 10 * 1000 * 1000};
  siginfo_t si;
  for (int i = 0; i < 200; i++) {
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0 || si.si_pid == pid) break;
    nanosleep(&ts, NULL);
  }
  kill(-pid, SIGKILL);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  child = 0;
}

/* Removes the listed paths, last registered first (files before their directories). */
static void remove_all(void) {
  for (int i = nlist - 1; i >= 0; i--) {
    Entry *e = list[i];
    if (!e) continue;
    if (e->tree) {
      int fd = open(e->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd >= 0) clear_dir(fd, 0), close(fd);
    }
    if (unlink(e->path) != 0) rmdir(e->path);
  }
}

void fm_cleanup_run(void) {
  stop_child();
  remove_all();
  while (nlist > 0) {
    Entry *e = list[nlist - 1];
    list[nlist - 1] = NULL;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    nlist--;
    if (e) free(e->path), free(e);
  }
}

static void on_signal(int sig) {
  int saved = errno;
  stop_child();
  remove_all();
  signal(sig, SIG_DFL);
  raise(sig); /* delivered when the handler returns: the process dies by sig */
  errno = saved;
}

void fm_cleanup_signals(void) {
  static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) sigaddset(&sa.sa_mask, sigs[i]);
  for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) {
    struct sigaction old;
    /* a signal ignored by whoever started us (nohup, `cmd &` in sh) stays ignored */
    if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN) continue;
    sigaction(sigs[i], &sa, NULL);
  }
}
