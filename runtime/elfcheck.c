/* elfcheck.c - is a file a whole shared object of this machine's ELF class, before
 * dlopen maps it? dlopen maps segments by the program headers, so a truncated .so
 * raises SIGBUS in the host when the loader touches a page past the end of the file.
 * This reads the headers with pread and checks that every table and every segment
 * and section with file contents lies inside the file, so the linker never reaches
 * past its end. (A file changed between this check and dlopen is not covered.)
 */
#include "fewmul.h"
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

fm_status fm_rt_fail(fm_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
fm_status fm_rt_check_elf(const char *path);

#if __SIZEOF_POINTER__ == 8
#define FM_ELFCLASS ELFCLASS64
#else
#define FM_ELFCLASS ELFCLASS32
#endif
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define FM_ELFDATA ELFDATA2LSB
#else
#define FM_ELFDATA ELFDATA2MSB
#endif

/* off + n * each <= size, without overflow */
static int inside(uint64_t off, uint64_t n, uint64_t each, uint64_t size) {
  uint64_t len;
  if (__builtin_mul_overflow(n, each, &len)) return 0;
  return off <= size && len <= size - off;
}

static int read_at(int fd, void *buf, size_t n, uint64_t off) {
  return pread(fd, buf, n, (off_t)off) == (ssize_t)n;
}

static fm_status bad(const char *path, const char *why) {
  return fm_rt_fail(FM_ERR_FORMAT, "cannot load '%s': %s", path, why);
}

static fm_status check_fd(int fd, const char *path) {
  struct stat st;
  if (fstat(fd, &st) != 0) return fm_rt_fail(FM_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
  if (!S_ISREG(st.st_mode)) return bad(path, "not a regular file");
  uint64_t size = (uint64_t)st.st_size;
  ElfW(Ehdr) eh;
  if (size < sizeof eh || !read_at(fd, &eh, sizeof eh, 0)) return bad(path, "file too short for an ELF header");
  if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) return bad(path, "not an ELF file");
  if (eh.e_ident[EI_CLASS] != FM_ELFCLASS || eh.e_ident[EI_DATA] != FM_ELFDATA)
    return bad(path, "ELF class or byte order of another machine");
  if (eh.e_type != ET_DYN) return bad(path, "not a shared object");
  if (eh.e_phentsize != sizeof(ElfW(Phdr)) || eh.e_phnum == 0 || !inside(eh.e_phoff, eh.e_phnum, eh.e_phentsize, size))
    return bad(path, "truncated or corrupt (program headers outside the file)");
  if (eh.e_shoff != 0 &&
      (eh.e_shentsize != sizeof(ElfW(Shdr)) || !inside(eh.e_shoff, eh.e_shnum, eh.e_shentsize, size)))
    return bad(path, "truncated or corrupt (section headers outside the file)");
  ElfW(Phdr) *ph = malloc(sizeof *ph * eh.e_phnum);
  if (!ph) return fm_rt_fail(FM_ERR_NOMEM, "out of memory");
  fm_status s = FM_OK;
  if (!read_at(fd, ph, sizeof *ph * eh.e_phnum, eh.e_phoff)) s = bad(path, "cannot read the program headers");
  for (int i = 0; s == FM_OK && i < eh.e_phnum; i++)
    if (!inside(ph[i].p_offset, ph[i].p_filesz, 1, size) || (ph[i].p_type == PT_LOAD && ph[i].p_filesz > ph[i].p_memsz))
      s = bad(path, "truncated or corrupt (a segment reaches past the end of the file)");
  free(ph);
  if (s != FM_OK || eh.e_shoff == 0) return s;
  ElfW(Shdr) *sh = malloc(sizeof *sh * (eh.e_shnum ? eh.e_shnum : 1));
  if (!sh) return fm_rt_fail(FM_ERR_NOMEM, "out of memory");
  if (!read_at(fd, sh, sizeof *sh * eh.e_shnum, eh.e_shoff)) s = bad(path, "cannot read the section headers");
  for (int i = 0; s == FM_OK && i < eh.e_shnum; i++)
    if (sh[i].sh_type != SHT_NOBITS && sh[i].sh_type != SHT_NULL && !inside(sh[i].sh_offset, sh[i].sh_size, 1, size))
      s = bad(path, "truncated or corrupt (a section reaches past the end of the file)");
  free(sh);
  return s;
}

/* FM_OK if path is a whole ELF shared object of this machine's class; else a status
   and fm_last_error() naming the file and what is wrong. */
fm_status fm_rt_check_elf(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fm_rt_fail(FM_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
  fm_status s = check_fd(fd, path);
  close(fd);
  return s;
}
