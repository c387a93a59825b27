/* The GEMM driver, C = A B, in the manner of BLIS: operands cut into panels that the
 * microkernel reads contiguously, loops blocked so that the MC x KC block of A stays in L2 while
 * the panels of B stream past it, and the tiles of C dealt to threads whole.
 *
 *   for each NC columns of C                 (the worker's share of N)
 *     for each KC slice of K                 B~ = that slice of B, packed unless it was at load
 *       for each MC rows of C                A~ = that block of A, packed unless it was at load
 *         for each NR panel, each MR panel:  microkernel: C tile (+)= A~ panel . B~ panel
 *
 * Weights are packed once at model load (trm_pack_right / trm_pack_left); activations are packed
 * here, into the caller's per-worker buffer. Every element of C is the sum over the K slices in
 * order, each slice summed in order in a register, whatever the split: results do not depend on
 * the number of threads. When B is packed weights the column loop takes the whole range at once
 * (B needs no buffer), so each block of A is packed once. */
#include "kernels.h"

#include <string.h>

/* K slices: packed weights are read straight from their panels, so a slice can be long (an A
 * block of 128 x 768 floats, 384 KiB, sits in L2 beside the weight panels streaming past; the
 * 1536-long K of a SwiGLU down product takes two slices); a B packed here is sliced shorter to
 * keep its buffer small. The packing buffers are most of a session's work memory. */
enum { KC_PACKED = 768, KC_RAW = 512, MC_ROWS = 128, NC_COLS = 256 };

static size_t div_up(size_t a, size_t b) { return (a + b - 1) / b; }
static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

static size_t mc_panels(const trm_kernel *k) { return div_up(MC_ROWS, k->mr); }
static size_t nc_panels(const trm_kernel *k) { return div_up(NC_COLS, k->nr); }

size_t trm_gemm_buffer_floats(const trm_kernel *k) {
  return mc_panels(k) * k->mr * KC_PACKED + nc_panels(k) * k->nr * KC_RAW;
}

/* ---- packing weights at load ---- */

void trm_packed_free(trm_packed *p) {
  if (!p) return;
  trm_release(p->data);
  memset(p, 0, sizeof *p);
}

/* Packs rows x cols rows read through row_fn into panels of `panel` along the rows (a left
 * operand: panels of MR rows) or along the columns of the transpose (a right operand W^T: panel
 * q holds W's rows q*NR .. q*NR+NR-1); either way row r's values go to panel r / panel, lane
 * r % panel, one lane per position k. */
static trm_status pack_rows(size_t panel, size_t rows, size_t cols, trm_row_fn row_fn, void *ctx, float *row_buf,
                            size_t interleave, float **out) {
  size_t floats;
  if (!trm_mul_ok(div_up(rows, panel) * panel, cols, &floats)) return trm_fail(TRM_E_NOMEM, "weight too large to pack");
  float *data = trm_alloc_zero(floats, sizeof(float));
  if (!data) return trm_fail(TRM_E_NOMEM, "out of memory packing a %zu x %zu weight", rows, cols);
  for (size_t r = 0; r < rows; r++) {
    trm_status st = row_fn(ctx, r, row_buf);
    if (st != TRM_OK) {
      trm_release(data);
      return st;
    }
    size_t at = r; /* the row's place in packed order */
    if (interleave) { /* gate rows fill the first half of each panel, the matching up rows the second */
      size_t half = panel / 2, gate = r < interleave, i = gate ? r : r - interleave;
      at = i / half * panel + (gate ? 0 : half) + i % half;
    }
    float *dst = data + (at / panel) * panel * cols + at % panel;
    for (size_t kk = 0; kk < cols; kk++) dst[kk * panel] = row_buf[kk];
  }
  *out = data;
  return TRM_OK;
}

trm_status trm_pack_right_rows(const trm_kernel *k, size_t out_features, size_t in_features, trm_row_fn row_fn,
                               void *ctx, float *row_buf, trm_packed *p) {
  float *data;
  trm_status st = pack_rows(k->nr, out_features, in_features, row_fn, ctx, row_buf, 0, &data);
  if (st == TRM_OK)
    *p = (trm_packed){.data = data};
  return st;
}

bool trm_swiglu_fusable(const trm_kernel *k, size_t inter, size_t in_features) {
  return inter % (k->nr / 2) == 0 && in_features <= KC_PACKED;
}

trm_status trm_pack_swiglu_rows(const trm_kernel *k, size_t inter, size_t in_features, trm_row_fn row_fn, void *ctx,
                                float *row_buf, trm_packed *p) {
  if (!trm_swiglu_fusable(k, inter, in_features))
    return trm_fail(TRM_E_INVALID, "trm_pack_swiglu_rows: inner width %zu cannot be fused", inter);
  float *data;
  trm_status st = pack_rows(k->nr, 2 * inter, in_features, row_fn, ctx, row_buf, inter, &data);
  if (st == TRM_OK)
    *p = (trm_packed){.swiglu = true, .data = data};
  return st;
}

trm_status trm_pack_left_rows(const trm_kernel *k, size_t rows, size_t cols, trm_row_fn row_fn, void *ctx,
                              float *row_buf, trm_packed *p) {
  float *data;
  trm_status st = pack_rows(k->mr, rows, cols, row_fn, ctx, row_buf, 0, &data);
  if (st == TRM_OK) *p = (trm_packed){.data = data};
  return st;
}

typedef struct array_rows {
  const float *w;
  size_t cols;
} array_rows;

static trm_status copy_row(void *ctx, size_t row, float *out) {
  const array_rows *a = ctx;
  memcpy(out, a->w + row * a->cols, a->cols * sizeof *out);
  return TRM_OK;
}

static trm_status pack_array(const trm_kernel *k, bool left, const float *w, size_t rows, size_t cols,
                             trm_packed *p) {
  float *row_buf = trm_alloc_zero(cols, sizeof(float));
  if (!row_buf) return trm_fail(TRM_E_NOMEM, "out of memory packing a weight");
  array_rows a = {w, cols};
  trm_status st = left ? trm_pack_left_rows(k, rows, cols, copy_row, &a, row_buf, p)
                       : trm_pack_right_rows(k, rows, cols, copy_row, &a, row_buf, p);
  trm_release(row_buf);
  return st;
}

trm_status trm_pack_right(const trm_kernel *k, const float *w, size_t out_features, size_t in_features,
                          trm_packed *p) {
  return pack_array(k, false, w, out_features, in_features, p);
}

trm_status trm_pack_left(const trm_kernel *k, const float *w, size_t rows, size_t cols, trm_packed *p) {
  return pack_array(k, true, w, rows, cols, p);
}

/* ---- packing activations on the fly ---- */

/* Rows [i0, i0+mc) x columns [k0, k0+kc) of A into MR-row panels (rows past M are zero). */
static void pack_a(const trm_kernel *k, const trm_operand *A, size_t M, size_t i0, size_t mc, size_t k0, size_t kc,
                   float *dst) {
  size_t mr = k->mr, rows = min_sz(mc, M - i0);
  for (size_t p = 0; p < div_up(mc, mr); p++) {
    float *panel = dst + p * mr * kc;
    size_t r0 = p * mr, valid = r0 < rows ? min_sz(mr, rows - r0) : 0;
    if (A->trans) { /* A[row][kk] = data[kk][row]: each k's MR values lie side by side */
      for (size_t kk = 0; kk < kc; kk++) {
        float *out = panel + kk * mr;
        if (valid) memcpy(out, A->data + (k0 + kk) * A->ld + i0 + r0, valid * sizeof *out);
        for (size_t i = valid; i < mr; i++) out[i] = 0.0f;
      }
    } else if (k->transpose && mr <= 16) { /* the panel is A's block transposed, 16 k at a time */
      const float *src = valid ? A->data + (i0 + r0) * A->ld + k0 : A->data;
      for (size_t kk0 = 0; kk0 < kc; kk0 += 16)
        k->transpose(src + (valid ? kk0 : 0), A->ld, valid, min_sz(16, kc - kk0), panel + kk0 * mr, mr, mr);
    } else {
      for (size_t i = 0; i < mr; i++) {
        if (i >= valid) {
          for (size_t kk = 0; kk < kc; kk++) panel[kk * mr + i] = 0.0f;
        } else {
          const float *src = A->data + (i0 + r0 + i) * A->ld + k0;
          for (size_t kk = 0; kk < kc; kk++) panel[kk * mr + i] = src[kk];
        }
      }
    }
  }
}

/* Rows [k0, k0+kc) x columns [j0, j0+nc) of B into NR-column panels (columns past N are zero). */
static void pack_b(const trm_kernel *k, const trm_operand *B, size_t N, size_t j0, size_t nc, size_t k0, size_t kc,
                   float *dst) {
  size_t nr = k->nr;
  for (size_t q = 0; q < div_up(nc, nr); q++) {
    float *panel = dst + q * nr * kc;
    size_t col0 = j0 + q * nr;
    size_t valid = col0 < N ? min_sz(nr, min_sz(N - col0, nc - q * nr)) : 0;
    if (!B->trans) {
      for (size_t kk = 0; kk < kc; kk++) {
        const float *src = B->data + (k0 + kk) * B->ld + col0;
        float *row = panel + kk * nr;
        memcpy(row, src, valid * sizeof *row);
        for (size_t j = valid; j < nr; j++) row[j] = 0.0f;
      }
    } else if (k->transpose && nr % 16 == 0) { /* B[kk][col] = data[col][kk]: 16 columns at a time */
      for (size_t h = 0; h < nr; h += 16) {
        size_t n_cols = valid > h ? min_sz(16, valid - h) : 0;
        const float *src = n_cols ? B->data + (col0 + h) * B->ld + k0 : B->data;
        for (size_t kk0 = 0; kk0 < kc; kk0 += 16)
          k->transpose(src + (n_cols ? kk0 : 0), B->ld, n_cols, min_sz(16, kc - kk0), panel + kk0 * nr + h, nr, 16);
      }
    } else { /* B[kk][col] = data[col][kk]: a transpose, in blocks of 16 k so the panel rows
              * being written stay in L1 while each column's run is read in order */
      for (size_t kk0 = 0; kk0 < kc; kk0 += 16) {
        size_t len = min_sz(16, kc - kk0);
        for (size_t j = 0; j < nr; j++) {
          float *dst = panel + kk0 * nr + j;
          if (j < valid) {
            const float *src = B->data + (col0 + j) * B->ld + k0 + kk0;
            for (size_t kk = 0; kk < len; kk++) dst[kk * nr] = src[kk];
          } else {
            for (size_t kk = 0; kk < len; kk++) dst[kk * nr] = 0.0f;
          }
        }
      }
    }
  }
}

size_t trm_packed_right_floats(const trm_kernel *k, size_t K, size_t N) { return div_up(N, k->nr) * k->nr * K; }

trm_packed trm_pack_right_into(const trm_kernel *k, trm_operand B, size_t K, size_t N, float *dst) {
  /* the layout of trm_pack_right: panel q holds all K rows of columns q*NR .. q*NR+NR-1 */
  for (size_t q = 0; q < div_up(N, k->nr); q++) pack_b(k, &B, N, q * k->nr, k->nr, 0, K, dst + q * k->nr * K);
  return (trm_packed){.data = dst};
}

/* ---- the loops ---- */

/* One tile: the microkernel straight into C when the tile is whole, else through a local tile. */
static void tile(const trm_kernel *k, size_t kc, const float *a, const float *b, float *c, size_t ldc, size_t rows,
                 size_t cols, bool accumulate) {
  if (rows == k->mr && cols == k->nr) {
    k->micro(kc, a, b, c, ldc, accumulate);
    return;
  }
  _Alignas(64) float local[16 * 64];
  k->micro(kc, a, b, local, k->nr, false);
  for (size_t i = 0; i < rows; i++)
    for (size_t j = 0; j < cols; j++)
      c[i * ldc + j] = accumulate ? c[i * ldc + j] + local[i * k->nr + j] : local[i * k->nr + j];
}

/* The fused SwiGLU tile: the product's panel holds NR/2 gate columns and the matching NR/2 up
 * columns (K in one slice), and only silu(gate) * up is written, to C's columns q*NR/2... */
static void swiglu_tile(const trm_kernel *k, size_t kc, const float *a, const float *b, float *c, size_t ldc,
                        size_t rows) {
  _Alignas(64) float local[16 * 64];
  size_t half = k->nr / 2;
  k->micro(kc, a, b, local, k->nr, false);
  for (size_t i = 0; i < rows; i++) k->swiglu(local + i * k->nr, local + i * k->nr + half, c + i * ldc, half);
}

/* The tiles of C rows [i0, i0+mc) x columns [j0, j0+nc) over one K slice of kc, from A's packed
 * block ap (panels a_stride apart) and B's packed slice bp (panels b_stride apart). */
static void tiles(const trm_kernel *k, bool swiglu, size_t kc, const float *ap, size_t a_stride, const float *bp,
                  size_t b_stride, float *C, size_t ldc, size_t i0, size_t mc, size_t j0, size_t nc,
                  bool accumulate) {
  size_t mr = k->mr, nr = k->nr;
  for (size_t q = 0; q < div_up(nc, nr); q++) {
    size_t cols = min_sz(nr, nc - q * nr);
    for (size_t p = 0; p < div_up(mc, mr); p++) {
      size_t rows = min_sz(mr, mc - p * mr);
      if (swiglu)
        swiglu_tile(k, kc, ap + p * a_stride, bp + q * b_stride, C + (i0 + p * mr) * ldc + (j0 + q * nr) / 2, ldc,
                    rows);
      else
        tile(k, kc, ap + p * a_stride, bp + q * b_stride, C + (i0 + p * mr) * ldc + j0 + q * nr, ldc, rows, cols,
             accumulate);
    }
  }
}

/* A's rows [i0, i0+mc) x K slice [k0, k0+kc) as MR-row panels: where it was packed at load, or
 * packed now into abuf. */
static const float *a_block(const trm_kernel *k, const trm_operand *A, size_t M, size_t K, size_t i0, size_t mc,
                            size_t k0, size_t kc, float *abuf, size_t *a_stride) {
  if (A->packed) {
    *a_stride = k->mr * K;
    return A->packed->data + (i0 / k->mr) * k->mr * K + k0 * k->mr;
  }
  pack_a(k, A, M, i0, mc, k0, kc, abuf);
  *a_stride = k->mr * kc;
  return abuf;
}

/* C rows [m_p0*MR, m_p1*MR) x columns [n_p0*NR, n_p1*NR), clipped to M x N. With B packed for
 * SwiGLU, C receives the activations instead: NR/2 columns per panel. Every tile sums its K
 * slices in order, whichever loop order is taken. */
static void gemm_range(const trm_kernel *k, float *buffer, size_t M, size_t N, size_t K, const trm_operand *A,
                       const trm_operand *B, float *C, size_t ldc, size_t m_p0, size_t m_p1, size_t n_p0,
                       size_t n_p1) {
  bool swiglu = B->packed && B->packed->swiglu;
  size_t mr = k->mr, nr = k->nr, mc_max = mc_panels(k) * mr;
  float *abuf = buffer, *bbuf = buffer + mc_panels(k) * mr * KC_PACKED;
  size_t m_end = min_sz(m_p1 * mr, M), n_end = min_sz(n_p1 * nr, N);
  const float *ap, *bp;
  size_t a_stride, b_stride;
  if (B->packed) {
    /* weights: nothing of B to pack, so all the columns go at once (A is packed once), and each
     * block of rows runs through every K slice while its part of C is still in cache */
    size_t j0 = n_p0 * nr, nc = n_end - j0;
    b_stride = nr * K;
    for (size_t i0 = m_p0 * mr; i0 < m_end; i0 += mc_max) {
      size_t mc = min_sz(mc_max, m_end - i0);
      for (size_t k0 = 0; k0 < K; k0 += KC_PACKED) {
        size_t kc = min_sz(KC_PACKED, K - k0);
        ap = a_block(k, A, M, K, i0, mc, k0, kc, abuf, &a_stride);
        bp = B->packed->data + (j0 / nr) * nr * K + k0 * nr;
        tiles(k, swiglu, kc, ap, a_stride, bp, b_stride, C, ldc, i0, mc, j0, nc, k0 > 0);
      }
    }
    return;
  }
  /* an activation on the right: each slice of it is packed once, for every block of rows */
  for (size_t j0 = n_p0 * nr; j0 < n_end; j0 += nc_panels(k) * nr) {
    size_t nc = min_sz(nc_panels(k) * nr, n_end - j0);
    for (size_t k0 = 0; k0 < K; k0 += KC_RAW) {
      size_t kc = min_sz(KC_RAW, K - k0);
      pack_b(k, B, N, j0, nc, k0, kc, bbuf);
      bp = bbuf;
      b_stride = nr * kc;
      for (size_t i0 = m_p0 * mr; i0 < m_end; i0 += mc_max) {
        size_t mc = min_sz(mc_max, m_end - i0);
        ap = a_block(k, A, M, K, i0, mc, k0, kc, abuf, &a_stride);
        tiles(k, swiglu, kc, ap, a_stride, bp, b_stride, C, ldc, i0, mc, j0, nc, k0 > 0);
      }
    }
  }
}

void trm_gemm_single(const trm_kernel *k, float *buffer, size_t M, size_t N, size_t K, trm_operand A, trm_operand B,
                     float *C, size_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    for (size_t i = 0; i < M; i++) memset(C + i * ldc, 0, N * sizeof *C);
    return;
  }
  gemm_range(k, buffer, M, N, K, &A, &B, C, ldc, 0, div_up(M, k->mr), 0, div_up(N, k->nr));
}

typedef struct gemm_job {
  const trm_kernel *k;
  float *buffers;
  size_t M, N, K, ldc;
  const trm_operand *A, *B;
  float *C;
  bool split_n;
} gemm_job;

static void gemm_worker(void *ctx, size_t w, size_t n_workers) {
  const gemm_job *j = ctx;
  size_t pm = div_up(j->M, j->k->mr), pn = div_up(j->N, j->k->nr);
  size_t total = j->split_n ? pn : pm;
  size_t lo = total * w / n_workers, hi = total * (w + 1) / n_workers;
  if (lo == hi) return;
  float *buffer = j->buffers + w * trm_gemm_buffer_floats(j->k);
  if (j->split_n)
    gemm_range(j->k, buffer, j->M, j->N, j->K, j->A, j->B, j->C, j->ldc, 0, pm, lo, hi);
  else
    gemm_range(j->k, buffer, j->M, j->N, j->K, j->A, j->B, j->C, j->ldc, lo, hi, 0, pn);
}

void trm_gemm_threaded(const trm_kernel *k, trm_pool *pool, float *buffers, size_t M, size_t N, size_t K,
                       trm_operand A, trm_operand B, float *C, size_t ldc) {
  size_t workers = trm_pool_size(pool);
  size_t pm = div_up(M, k->mr), pn = div_up(N, k->nr);
  if (workers == 1 || K == 0 || M == 0 || N == 0) {
    trm_gemm_single(k, buffers, M, N, K, A, B, C, ldc);
    return;
  }
  /* Split the way whose busiest worker has the fewest tiles (97 rows are 7 panels: split
   * between two workers, one would take 4 of them). Where both come out even, split so that no
   * worker packs what another packs too: the rows when only A is packed here (each worker then
   * packs just its rows), the columns when only B is. */
  size_t busiest_m = div_up(pm, workers) * pn, busiest_n = pm * div_up(pn, workers);
  bool a_raw = !A.packed, b_raw = !B.packed, split_n;
  if (busiest_m != busiest_n) split_n = busiest_n < busiest_m;
  else if (a_raw && !b_raw) split_n = false;
  else if (b_raw && !a_raw) split_n = true;
  else split_n = pn >= pm;
  gemm_job job = {k, buffers, M, N, K, ldc, &A, &B, C, split_n};
  trm_pool_run(pool, gemm_worker, &job);
}
