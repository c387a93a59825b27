/* Picks the microkernel at run time: the best ISA this CPU has, or a lower one named by the
 * environment variable TRM_ISA (so tests can run every path on one machine). */
#include "kernels.h"

#include <stdlib.h>
#include <string.h>

const trm_kernel *trm_kernel_for(trm_isa isa) {
  switch (isa) {
  case TRM_ISA_SCALAR: return &trm_kernel_scalar;
#if defined(__x86_64__) || defined(__i386__)
  case TRM_ISA_AVX2:
    /* __builtin_cpu_supports also checks that the OS saves the wider registers */
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? &trm_kernel_avx2 : NULL;
  case TRM_ISA_AVX512:
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma") ? &trm_kernel_avx512 : NULL;
#endif
#if defined(__aarch64__)
  case TRM_ISA_NEON: return &trm_kernel_neon; /* every arm64 CPU has NEON */
#endif
  default: return NULL;
  }
}

const trm_kernel *trm_kernel_select(void) {
  static const struct {
    const char *name;
    trm_isa isa;
  } names[] = {{"scalar", TRM_ISA_SCALAR}, {"avx2", TRM_ISA_AVX2}, {"avx512", TRM_ISA_AVX512}, {"neon", TRM_ISA_NEON}};
  const char *forced = getenv("TRM_ISA");
  if (forced)
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
      if (strcmp(forced, names[i].name) == 0 && trm_kernel_for(names[i].isa)) return trm_kernel_for(names[i].isa);
  static const trm_isa best_first[] = {TRM_ISA_AVX512, TRM_ISA_NEON, TRM_ISA_AVX2, TRM_ISA_SCALAR};
  for (size_t i = 0; i < sizeof best_first / sizeof best_first[0]; i++)
    if (trm_kernel_for(best_first[i])) return trm_kernel_for(best_first[i]);
  return &trm_kernel_scalar;
}
