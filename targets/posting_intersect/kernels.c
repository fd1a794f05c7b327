/* posting_intersect kernel (agent-editable): the sorted intersection of K lists.
 *
 * Entry points take the ISA level the harness allows (enum harness_isa);
 * faster paths go in functions marked HARNESS_TARGET_AVX2 / _AVX512 / _AMX,
 * inside #if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_*, and are chosen at the
 * entry point. Every level must give the reference's values, bit for bit.
 */
#include <stdint.h>

#include "harness_isa.h"

/* Two-finger merge of sorted a[na] and b[nb] into out; returns the count.
 * out may be a itself (the write index never passes the read index). */
static long merge2(const uint32_t *a, long na, const uint32_t *b, long nb, uint32_t *out)
{
    long i = 0, j = 0, n = 0;
    while (i < na && j < nb) {
        if (a[i] < b[j])
            i++;
        else if (a[i] > b[j])
            j++;
        else {
            out[n++] = a[i];
            i++;
            j++;
        }
    }
    return n;
}

/* The merge folded over the lists, starting from the shortest: out holds as
 * many values as the shortest list, so every partial result fits in it. */
long pi_intersect(const uint32_t *const *lists, const long *lens, int k, uint32_t *out, int isa)
{
    (void)isa;   /* every level uses the portable path for now */
    if (k == 0)
        return 0;
    int s = 0;
    for (int i = 1; i < k; i++)
        if (lens[i] < lens[s])
            s = i;
    long n = lens[s];
    for (long i = 0; i < n; i++)
        out[i] = lists[s][i];
    for (int i = 0; i < k && n > 0; i++)
        if (i != s)
            n = merge2(out, n, lists[i], lens[i], out);
    return n;
}
