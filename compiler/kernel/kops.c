/* kops.c - the kernel IR operator tables, generated from kops.def. */
#include "kernel/kernel.h"

const KUnInfo fm_kun[KU_COUNT] = {
#define KUN(id, dump, name, cd, cf, cost) [KU_##id] = {dump, name, cd, cf, cost},
#define KBIN(id, dump, infix, name, cop, cd, cf, prec, cost)
#include "kernel/kops.def"
#undef KUN
#undef KBIN
};

const KBinInfo fm_kbin[KB_COUNT] = {
#define KUN(id, dump, name, cd, cf, cost)
#define KBIN(id, dump, infix, name, cop, cd, cf, prec, cost) [KB_##id] = {dump, infix, name, cop, cd, cf, prec, cost},
#include "kernel/kops.def"
#undef KUN
#undef KBIN
};
