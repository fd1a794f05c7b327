/* ==========================================================================
 * IMMUTABLE: the scalar yardstick for posting_intersect ("speedup vs scalar").
 * A plain C port of reference.py, compiled without vectorization.
 * ========================================================================== */
#include <stdint.h>

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

/* The merge folded over the lists, starting from the shortest (out holds as
 * many values as the shortest list, and every partial result fits in it). */
long intersect(const uint32_t *const *lists, const long *lens, int k, uint32_t *out)
{
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
