/* The operations of the tiny network f and their backward passes, over a batch of B states.
 * Products go through the library's GEMM. Weights act as y = x W^T with W [out, in]:
 *   dx = dy W        (the weight as a right operand, read as it is stored)
 *   dW += dy^T x     (dy read transposed, x as it is)
 * The weights do not change within a supervision step, so each is packed once per step for the
 * kernel (trm_tr_packs: W^T for the forward products, W for the backward ones, the SwiGLU
 * gate_up interleaved for the fused product of the no-gradient cycles); activations are packed
 * on the fly by the GEMM, or here when they are read transposed. The channel and token MLP steps
 * give each worker whole rows or states and run all their products and passes on it (one pool
 * job per step); the rest splits each product or pass over the pool. Weight gradients are formed
 * in a scratch matrix and then added, and every output is computed whole by one worker in an
 * order that does not depend on the split: results are bitwise the same for every thread count. */
#include "train.h"

#include <math.h>
#include <string.h>

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }
static size_t div_up(size_t a, size_t b) { return (a + b - 1) / b; }

/* ---- compute context ---- */

trm_status trm_tr_ctx_init(trm_tr_ctx *ctx, size_t threads) {
  memset(ctx, 0, sizeof *ctx);
  ctx->kernel = trm_kernel_select();
  ctx->workers = threads ? threads : trm_cpu_count();
  if (ctx->workers > 1) {
    trm_status st = trm_pool_create(ctx->workers, &ctx->pool);
    if (st != TRM_OK) return st;
  }
  ctx->gemm_bufs = trm_alloc_zero(ctx->workers, trm_gemm_buffer_floats(ctx->kernel) * sizeof(float));
  if (!ctx->gemm_bufs) {
    trm_tr_ctx_free(ctx);
    return trm_fail(TRM_E_NOMEM, "out of memory for GEMM buffers");
  }
  return TRM_OK;
}

void trm_tr_ctx_free(trm_tr_ctx *ctx) {
  if (!ctx) return;
  if (ctx->pool) trm_pool_free(ctx->pool);
  trm_release(ctx->gemm_bufs);
  memset(ctx, 0, sizeof *ctx);
}

void trm_tr_gemm(const trm_tr_ctx *ctx, size_t M, size_t N, size_t K, trm_operand A, trm_operand B, float *C,
                 size_t ldc) {
  if (ctx->pool)
    trm_gemm_threaded(ctx->kernel, ctx->pool, ctx->gemm_bufs, M, N, K, A, B, C, ldc);
  else
    trm_gemm_single(ctx->kernel, ctx->gemm_bufs, M, N, K, A, B, C, ldc);
}

/* ---- loops over the pool: [0, n) cut into one contiguous range per worker ---- */

typedef struct range_job {
  trm_tr_range_fn fn;
  void *arg;
  size_t n;
} range_job;

static void range_worker(void *ctx, size_t worker, size_t n_workers) {
  const range_job *j = ctx;
  size_t lo = j->n * worker / n_workers, hi = j->n * (worker + 1) / n_workers;
  if (hi > lo) j->fn(j->arg, lo, hi);
}

void trm_tr_parallel(const trm_tr_ctx *ctx, size_t n, trm_tr_range_fn fn, void *arg) {
  if (n == 0) return;
  if (!ctx->pool || n == 1) {
    fn(arg, 0, n);
    return;
  }
  range_job job = {fn, arg, n};
  trm_pool_run(ctx->pool, range_worker, &job);
}

static void run_workers(const trm_tr_ctx *ctx, trm_pool_fn fn, void *job) {
  if (ctx->pool)
    trm_pool_run(ctx->pool, fn, job);
  else
    fn(job, 0, 1);
}

/* ---- operands ---- */

static trm_operand plain(const float *data, size_t ld) { return (trm_operand){.data = data, .ld = ld}; }
static trm_operand transposed(const float *data, size_t ld) {
  return (trm_operand){.data = data, .ld = ld, .trans = true};
}
/* The packed weight when there is one, else the row-major fallback. */
static trm_operand weight(const trm_packed *pk, trm_operand raw) {
  return pk && pk->data ? (trm_operand){.packed = pk} : raw;
}

/* ---- elementwise passes (each a range function over independent rows or columns) ---- */

typedef struct add_job {
  float *dst;
  const float *a, *b, *c; /* dst = a + (b + c), dst += b, ... as each function says */
  size_t chunk;           /* floats per item */
} add_job;

static void add_range(void *arg, size_t lo, size_t hi) {
  const add_job *j = arg;
  for (size_t i = lo * j->chunk; i < hi * j->chunk; i++) j->dst[i] += j->b[i];
}

/* dst [rows, cols] += src (rows src_ld apart), items rows. */
typedef struct add_rows_job {
  float *dst;
  const float *src;
  size_t cols, src_ld;
} add_rows_job;

static void add_rows_range(void *arg, size_t lo, size_t hi) {
  const add_rows_job *j = arg;
  for (size_t i = lo; i < hi; i++)
    for (size_t c = 0; c < j->cols; c++) j->dst[i * j->cols + c] += j->src[i * j->src_ld + c];
}

/* dst [n] += src, over the pool in items of 4096 floats. */
void trm_tr_add(const trm_tr_ctx *ctx, float *dst, const float *src, size_t n) {
  enum { ITEM = 4096 };
  size_t whole = n / ITEM;
  add_job j = {.dst = dst, .b = src, .chunk = ITEM};
  trm_tr_parallel(ctx, whole, add_range, &j);
  for (size_t i = whole * ITEM; i < n; i++) dst[i] += src[i];
}

/* ---- left operands packed here ---- */

/* Panels [p_lo, p_hi) of A [M, K] (an operand, maybe read transposed) packed as a left operand:
 * panels of MR rows, each K columns of MR floats (the layout of trm_pack_left), rows past M
 * zero. A transposed operand (a row-major [K, M]) is read in runs of MR contiguous floats. */
static void pack_left_panels(const trm_kernel *k, const trm_operand *A, size_t M, size_t K, size_t p_lo, size_t p_hi,
                             float *dst) {
  size_t mr = k->mr;
  for (size_t p = p_lo; p < p_hi; p++) {
    size_t p0 = p * mr, rows = min_sz(mr, M - p0);
    float *panel = dst + p0 * K;
    for (size_t kk = 0; kk < K; kk++) {
      float *out = panel + kk * mr;
      if (A->trans)
        memcpy(out, A->data + kk * A->ld + p0, rows * sizeof *out);
      else
        for (size_t i = 0; i < rows; i++) out[i] = A->data[(p0 + i) * A->ld + kk];
      for (size_t i = rows; i < mr; i++) out[i] = 0.0f;
    }
  }
}

static void pack_left_into(const trm_kernel *k, trm_operand A, size_t M, size_t K, float *dst) {
  pack_left_panels(k, &A, M, K, 0, div_up(M, k->mr), dst);
}

typedef struct pack_left_job {
  const trm_kernel *k;
  trm_operand A;
  size_t M, K;
  float *dst;
} pack_left_job;

static void pack_left_range(void *arg, size_t lo, size_t hi) {
  const pack_left_job *j = arg;
  pack_left_panels(j->k, &j->A, j->M, j->K, lo, hi, j->dst);
}

/* An activation A [M, K] packed over the pool as a left operand into dst (div_up(M, MR) MR K
 * floats), so that a product reads it packed: the GEMM would otherwise pack a transposed A
 * element by element, for each slice of the other operand. */
static trm_packed pack_left_activation(const trm_tr_ctx *ctx, trm_operand A, size_t M, size_t K, float *dst) {
  pack_left_job j = {ctx->kernel, A, M, K, dst};
  trm_tr_parallel(ctx, div_up(M, ctx->kernel->mr), pack_left_range, &j);
  return (trm_packed){.data = dst};
}

/* gW [rows, cols] += src^T ([cols, rows]). */
typedef struct add_t_job {
  float *gW;
  const float *src;
  size_t rows, cols;
} add_t_job;

/* Items are blocks of 32 rows of gW, walked in 32 x 32 tiles so that src is read in cache lines. */
enum { T_BLOCK = 32 };

static void add_transposed_range(void *arg, size_t lo, size_t hi) {
  const add_t_job *j = arg;
  size_t rows = j->rows, cols = j->cols;
  float *restrict gW = j->gW;
  const float *restrict src = j->src;
  for (size_t i0 = lo * T_BLOCK; i0 < min_sz(hi * T_BLOCK, rows); i0 += T_BLOCK) {
    size_t i1 = min_sz(i0 + T_BLOCK, rows);
    for (size_t c0 = 0; c0 < cols; c0 += T_BLOCK) {
      size_t c1 = min_sz(c0 + T_BLOCK, cols);
      for (size_t i = i0; i < i1; i++)
        for (size_t c = c0; c < c1; c++) gW[i * cols + c] += src[c * rows + i];
    }
  }
}

static void add_transposed(const trm_tr_ctx *ctx, float *gW, const float *src, size_t rows, size_t cols) {
  add_t_job j = {gW, src, rows, cols};
  trm_tr_parallel(ctx, div_up(rows, T_BLOCK), add_transposed_range, &j);
}

/* gW [N, K] += dy^T x for dy [M, N], x [M, K] (M the batch's rows); scratch holds N*K floats,
 * apack the narrower of dy, x packed (MR-padded) for M. The narrower operand goes left, packed
 * here (read transposed, MR contiguous floats at a time; the GEMM would gather it element by
 * element): the wider one then streams through the GEMM's cheap row-major packing. */
static void linear_dw(const trm_tr_ctx *ctx, const float *dy, const float *x, size_t M, size_t N, size_t K,
                      float *gW, float *scratch, float *apack) {
  if (N <= K) {
    trm_packed a = pack_left_activation(ctx, transposed(dy, N), N, M, apack);
    trm_tr_gemm(ctx, N, K, M, (trm_operand){.packed = &a}, plain(x, K), scratch, K);
    trm_tr_add(ctx, gW, scratch, N * K);
  } else { /* gW^T [K, N] = x^T dy */
    trm_packed a = pack_left_activation(ctx, transposed(x, K), K, M, apack);
    trm_tr_gemm(ctx, K, N, M, (trm_operand){.packed = &a}, plain(dy, N), scratch, N);
    add_transposed(ctx, gW, scratch, N, K);
  }
}

/* h = rmsnorm(src + add) on each row (src NULL: h itself); inv (may be NULL) receives 1/rms. */
typedef struct norm_job {
  float *h;
  const float *src; /* the input when it is not h itself */
  size_t add_ld;    /* columns: floats between rows of add (0: ld) */
  const float *add, *y, *inv_in;
  float *d, *inv;
  size_t rows, cols, ld; /* ld: floats between rows (column passes) */
  float eps;
} norm_job;

static void residual_norm_rows_range(void *arg, size_t lo, size_t hi) {
  const norm_job *j = arg;
  for (size_t i = lo; i < hi; i++) {
    float *r = j->h + i * j->cols;
    const float *in = j->src ? j->src + i * j->cols : r;
    float sum = 0.0f;
    if (j->add) {
      const float *a = j->add + i * j->cols;
      for (size_t c = 0; c < j->cols; c++) {
        r[c] = in[c] + a[c];
        sum += r[c] * r[c];
      }
    } else {
      if (in != r) memcpy(r, in, j->cols * sizeof *r);
      for (size_t c = 0; c < j->cols; c++) sum += r[c] * r[c];
    }
    float s = 1.0f / sqrtf(sum / (float)j->cols + j->eps);
    for (size_t c = 0; c < j->cols; c++) r[c] *= s;
    if (j->inv) j->inv[i] = s;
  }
}

static void residual_norm_rows(const trm_tr_ctx *ctx, const float *src, float *h, const float *add, float *inv,
                               size_t rows, size_t cols, float eps) {
  norm_job j = {.h = h, .src = src, .add = add, .inv = inv, .cols = cols, .eps = eps};
  trm_tr_parallel(ctx, rows, residual_norm_rows_range, &j);
}

/* y = u s with s = (mean(u^2) + eps)^-1/2: du_j = s dy_j - u_j s^3 sum(dy u) / n
 *                                             = s (dy_j - y_j mean(dy y)). */
static void norm_rows_backward_range(void *arg, size_t lo, size_t hi) {
  const norm_job *j = arg;
  for (size_t i = lo; i < hi; i++) {
    const float *yr = j->y + i * j->cols;
    float *dr = j->d + i * j->cols;
    float dot = 0.0f;
    for (size_t c = 0; c < j->cols; c++) dot += dr[c] * yr[c];
    float mean = dot / (float)j->cols;
    for (size_t c = 0; c < j->cols; c++) dr[c] = j->inv_in[i] * (dr[c] - yr[c] * mean);
  }
}

static void norm_rows_backward(const trm_tr_ctx *ctx, const float *y, const float *inv, float *d, size_t rows,
                               size_t cols) {
  norm_job j = {.y = y, .inv_in = inv, .d = d, .cols = cols};
  trm_tr_parallel(ctx, rows, norm_rows_backward_range, &j);
}

/* Columns normalise in blocks of COL_BLOCK, walking the rows in memory order. */
enum { COL_BLOCK = 64 };

/* h [rows, ld]: h = rmsnorm over each column of (src + add) (src NULL: h itself), for the column
 * blocks [lo, hi). */
static void residual_norm_cols_range(void *arg, size_t lo, size_t hi) {
  const norm_job *j = arg;
  for (size_t blk = lo; blk < hi; blk++) {
    size_t c0 = blk * COL_BLOCK, width = min_sz(COL_BLOCK, j->cols - c0);
    float sums[COL_BLOCK] = {0};
    for (size_t i = 0; i < j->rows; i++) {
      float *v = j->h + i * j->ld + c0;
      const float *in = j->src ? j->src + i * j->ld + c0 : v;
      if (j->add) {
        const float *a = j->add + i * (j->add_ld ? j->add_ld : j->ld) + c0;
        for (size_t c = 0; c < width; c++) v[c] = in[c] + a[c];
      } else if (in != v) {
        memcpy(v, in, width * sizeof *v);
      }
      for (size_t c = 0; c < width; c++) sums[c] += v[c] * v[c];
    }
    for (size_t c = 0; c < width; c++) sums[c] = 1.0f / sqrtf(sums[c] / (float)j->rows + j->eps);
    for (size_t i = 0; i < j->rows; i++) {
      float *v = j->h + i * j->ld + c0;
      for (size_t c = 0; c < width; c++) v[c] *= sums[c];
    }
    if (j->inv) memcpy(j->inv + c0, sums, width * sizeof *sums);
  }
}

/* The backward pass along columns of states [S, D] (y, d) for items (state, column block). */
static void norm_cols_backward_range(void *arg, size_t lo, size_t hi) {
  const norm_job *j = arg;
  size_t blocks = div_up(j->cols, COL_BLOCK), S = j->rows, D = j->cols;
  for (size_t item = lo; item < hi; item++) {
    size_t b = item / blocks, c0 = item % blocks * COL_BLOCK, width = min_sz(COL_BLOCK, D - c0);
    const float *y = j->y + b * S * D + c0, *inv = j->inv_in + b * D + c0;
    float *d = j->d + b * S * D + c0;
    float dots[COL_BLOCK] = {0};
    for (size_t i = 0; i < S; i++)
      for (size_t c = 0; c < width; c++) dots[c] += d[i * D + c] * y[i * D + c];
    for (size_t c = 0; c < width; c++) dots[c] /= (float)S;
    for (size_t i = 0; i < S; i++)
      for (size_t c = 0; c < width; c++) d[i * D + c] = inv[c] * (d[i * D + c] - y[i * D + c] * dots[c]);
  }
}

void trm_tr_rmsnorm_rows(float *v, float *inv, size_t rows, size_t cols, float eps) {
  norm_job j = {.h = v, .inv = inv, .cols = cols, .eps = eps};
  residual_norm_rows_range(&j, 0, rows);
}

void trm_tr_rmsnorm_rows_backward(const float *y, const float *inv, float *d, size_t rows, size_t cols) {
  norm_job j = {.y = y, .inv_in = inv, .d = d, .cols = cols};
  norm_rows_backward_range(&j, 0, rows);
}

void trm_tr_rmsnorm_cols(float *v, float *inv, size_t rows, size_t cols, float eps) {
  norm_job j = {.h = v, .inv = inv, .rows = rows, .cols = cols, .ld = cols, .eps = eps};
  residual_norm_cols_range(&j, 0, div_up(cols, COL_BLOCK));
}

void trm_tr_rmsnorm_cols_backward(const float *y, const float *inv, float *d, size_t rows, size_t cols) {
  norm_job j = {.y = y, .inv_in = inv, .d = d, .rows = rows, .cols = cols};
  norm_cols_backward_range(&j, 0, div_up(cols, COL_BLOCK));
}

/* ---- SwiGLU ---- */

typedef struct swiglu_job {
  const trm_kernel *k;
  const float *gu, *dact;
  float *act, *dgu;
  size_t inter;
} swiglu_job;

static void swiglu_range(void *arg, size_t lo, size_t hi) {
  const swiglu_job *j = arg;
  for (size_t i = lo; i < hi; i++) {
    const float *gate = j->gu + i * 2 * j->inter;
    j->k->swiglu(gate, gate + j->inter, j->act + i * j->inter, j->inter);
  }
}

/* a = silu(g) u with silu(g) = g s, s = sigmoid(g):
 *   da/du = silu(g),  da/dg = u s (1 + g (1 - s)) = u (s + silu(g) (1 - s)).
 * silu(g) comes from the kernel's vectorised SwiGLU (times an up of ones), and s = silu(g) / g
 * (s(0) = 1/2). When act is set, the activations are recomputed on the way: silu(g) * u is bitwise
 * what the kernel's SwiGLU gives. */
enum { SWIGLU_CHUNK = 256, SWIGLU_VEC = 16 };

/* One run of n values; restrict and runs of SWIGLU_VEC let the compiler vectorise it. */
static void swiglu_grad_run(const float *restrict gate, const float *restrict up, const float *restrict da,
                            const float *restrict silu, float *restrict dg, float *restrict du, float *restrict act,
                            size_t n) {
  size_t c0 = 0;
  for (; c0 + SWIGLU_VEC <= n; c0 += SWIGLU_VEC)
    for (size_t c = c0; c < c0 + SWIGLU_VEC; c++) {
      float g = gate[c], sl = silu[c];
      /* s = sl / g, and 1/2 at g = +-0 (where sl = 0): integer arithmetic rather than a float
       * comparison, which the compiler would not turn into vector code */
      uint32_t bits;
      memcpy(&bits, &g, sizeof bits);
      float zero = (float)((bits << 1) == 0);
      float s = sl / (g + zero) + 0.5f * zero;
      du[c] = da[c] * sl;
      dg[c] = da[c] * up[c] * (s + sl * (1.0f - s));
    }
  for (size_t c = c0; c < n; c++) {
    float g = gate[c], sl = silu[c];
    float s = g != 0.0f ? sl / g : 0.5f; /* the same values as above */
    du[c] = da[c] * sl;
    dg[c] = da[c] * up[c] * (s + sl * (1.0f - s));
  }
  if (act) {
    for (c0 = 0; c0 + SWIGLU_VEC <= n; c0 += SWIGLU_VEC)
      for (size_t c = c0; c < c0 + SWIGLU_VEC; c++) act[c] = silu[c] * up[c];
    for (size_t c = c0; c < n; c++) act[c] = silu[c] * up[c];
  }
}

static void swiglu_backward_range(void *arg, size_t lo, size_t hi) {
  const swiglu_job *j = arg;
  float ones[SWIGLU_CHUNK], silu[SWIGLU_CHUNK];
  for (size_t c = 0; c < SWIGLU_CHUNK; c++) ones[c] = 1.0f;
  for (size_t i = lo; i < hi; i++) {
    const float *gate = j->gu + i * 2 * j->inter, *up = gate + j->inter, *da = j->dact + i * j->inter;
    float *dg = j->dgu + i * 2 * j->inter, *du = dg + j->inter;
    float *act = j->act ? j->act + i * j->inter : NULL;
    for (size_t c0 = 0; c0 < j->inter; c0 += SWIGLU_CHUNK) {
      size_t n = min_sz(SWIGLU_CHUNK, j->inter - c0);
      j->k->swiglu(gate + c0, ones, silu, n);
      swiglu_grad_run(gate + c0, up + c0, da + c0, silu, dg + c0, du + c0, act ? act + c0 : NULL, n);
    }
  }
}

void trm_tr_swiglu(const float *gu, float *act, size_t rows, size_t inter) {
  swiglu_job j = {.k = trm_kernel_select(), .gu = gu, .act = act, .inter = inter};
  swiglu_range(&j, 0, rows);
}

void trm_tr_swiglu_backward(const float *gu, const float *dact, float *dgu, size_t rows, size_t inter) {
  swiglu_job j = {.k = trm_kernel_select(), .gu = gu, .dact = dact, .dgu = dgu, .inter = inter};
  swiglu_backward_range(&j, 0, rows);
}

/* ---- RoPE ---- */

typedef struct rope_job {
  const trm_tr_params *p;
  float *qkv;
  bool inverse;
} rope_job;

static void rope_range(void *arg, size_t lo, size_t hi) {
  const rope_job *j = arg;
  const trm_config *c = &j->p->cfg;
  size_t S = (size_t)c->state_len, D = (size_t)c->hidden_size, hd = (size_t)c->head_dim, half = hd / 2;
  for (size_t r = lo; r < hi; r++) {
    const float *cs = j->p->rope_cos + (r % S) * half, *sn = j->p->rope_sin + (r % S) * half;
    for (size_t head = 0; head < 2 * (size_t)c->num_heads; head++) { /* q heads, then k heads */
      float *v = j->qkv + r * 3 * D + head * hd;
      for (size_t i = 0; i < half; i++) {
        float a = v[i], b = v[i + half], sn_i = j->inverse ? -sn[i] : sn[i];
        v[i] = a * cs[i] - b * sn_i;
        v[i + half] = b * cs[i] + a * sn_i;
      }
    }
  }
}

void trm_tr_rope(const trm_tr_params *p, float *qkv, size_t rows, bool inverse) {
  rope_job j = {p, qkv, inverse};
  rope_range(&j, 0, rows);
}

static void rope_rows(const trm_tr_ctx *ctx, const trm_tr_params *p, float *qkv, size_t rows, bool inverse) {
  rope_job j = {p, qkv, inverse};
  trm_tr_parallel(ctx, rows, rope_range, &j);
}

/* ---- packed weights ---- */

/* Packs a SwiGLU gate_up W [2 inter, in] for the fused product: panel q holds the gate rows
 * q*NR/2 .. q*NR/2 + NR/2 - 1 in its first NR/2 lanes and the matching up rows in the others,
 * each panel `in` rows of NR floats (the layout of trm_pack_swiglu_rows). */
static void pack_swiglu_into(const trm_kernel *k, const float *W, size_t inter, size_t in, float *dst) {
  size_t nr = k->nr, half = nr / 2;
  for (size_t q = 0; q < inter / half; q++) {
    float *panel = dst + q * nr * in;
    for (size_t lane = 0; lane < nr; lane++) {
      size_t row = lane < half ? q * half + lane : inter + q * half + lane - half;
      const float *src = W + row * in;
      for (size_t kk = 0; kk < in; kk++) panel[kk * nr + lane] = src[kk];
    }
  }
}

/* The packing of one weight: which layout, from which array, into which trm_packed. */
enum pack_kind { PACK_RIGHT_T, PACK_RIGHT, PACK_LEFT, PACK_LEFT_T, PACK_SWIGLU };

typedef struct pack_task {
  int kind;
  const float *w;  /* W [rows, cols] row-major */
  size_t rows, cols;
  trm_packed *out;
} pack_task;

/* Floats the packed layout needs. */
static size_t pack_floats(const trm_kernel *k, const pack_task *t) {
  switch (t->kind) {
  case PACK_RIGHT_T: return trm_packed_right_floats(k, t->cols, t->rows);    /* W^T [cols, rows] */
  case PACK_RIGHT: return trm_packed_right_floats(k, t->rows, t->cols);      /* W [rows, cols] */
  case PACK_LEFT: return div_up(t->rows, k->mr) * k->mr * t->cols;           /* W as A [rows, cols] */
  case PACK_LEFT_T: return div_up(t->cols, k->mr) * k->mr * t->rows;         /* W^T as A [cols, rows] */
  default: return t->rows * t->cols;                                         /* SwiGLU: whole panels */
  }
}

static void pack_one(const trm_kernel *k, const pack_task *t) {
  float *dst = t->out->data;
  switch (t->kind) {
  case PACK_RIGHT_T: trm_pack_right_into(k, transposed(t->w, t->cols), t->cols, t->rows, dst); break;
  case PACK_RIGHT: trm_pack_right_into(k, plain(t->w, t->cols), t->rows, t->cols, dst); break;
  case PACK_LEFT: pack_left_into(k, plain(t->w, t->cols), t->rows, t->cols, dst); break;
  case PACK_LEFT_T: pack_left_into(k, transposed(t->w, t->cols), t->cols, t->rows, dst); break;
  default: pack_swiglu_into(k, t->w, t->rows / 2, t->cols, dst); break;
  }
}

/* The tasks of one direction (forward or backward) for every layer; n_out receives their count
 * (at most PACKS_PER_LAYER per layer). */
enum { PACKS_PER_LAYER = 8 };

static size_t pack_tasks(const trm_tr_params *p, trm_tr_packs *pk, bool backward, bool fuse, bool fuse_t,
                         pack_task *tasks) {
  const trm_config *c = &p->cfg;
  size_t D = (size_t)c->hidden_size, S = (size_t)c->state_len, I = (size_t)c->inter, It = (size_t)c->inter_t;
  size_t n = 0;
  for (int64_t l = 0; l < c->L_layers; l++) {
    const trm_tr_layer *w = &p->w.layers[l];
    trm_tr_layer_packs *lp = &pk->layers[l];
#define TASK(kind_, w_, rows_, cols_, out_) tasks[n++] = (pack_task){kind_, w_, rows_, cols_, &lp->out_}
    if (!backward) {
      if (c->mlp_t) {
        TASK(PACK_RIGHT_T, w->mlpt_gate_up, 2 * It, S, mlpt_gate_up);
        if (fuse_t) TASK(PACK_SWIGLU, w->mlpt_gate_up, 2 * It, S, mlpt_gate_up_fused);
        TASK(PACK_LEFT, w->mlpt_down, S, It, mlpt_down);
      } else {
        TASK(PACK_RIGHT_T, w->qkv, 3 * D, D, qkv);
        TASK(PACK_RIGHT_T, w->o, D, D, o);
      }
      TASK(PACK_RIGHT_T, w->gate_up, 2 * I, D, gate_up);
      if (fuse) TASK(PACK_SWIGLU, w->gate_up, 2 * I, D, gate_up_fused);
      TASK(PACK_RIGHT_T, w->down, D, I, down);
    } else {
      if (c->mlp_t) {
        TASK(PACK_RIGHT, w->mlpt_down, S, It, mlpt_down_dx);
        TASK(PACK_LEFT_T, w->mlpt_gate_up, 2 * It, S, mlpt_gate_up_dx);
      } else {
        TASK(PACK_RIGHT, w->qkv, 3 * D, D, qkv_dx);
        TASK(PACK_RIGHT, w->o, D, D, o_dx);
      }
      TASK(PACK_RIGHT, w->gate_up, 2 * I, D, gate_up_dx);
      TASK(PACK_RIGHT, w->down, D, I, down_dx);
    }
#undef TASK
  }
  return n;
}

static bool fusable(const trm_kernel *k, size_t inter, size_t in) {
  return inter > 0 && trm_swiglu_fusable(k, inter, in);
}

size_t trm_tr_packs_floats(const trm_tr_ctx *ctx, const trm_tr_params *p) {
  const trm_config *c = &p->cfg;
  trm_tr_layer_packs dummy[1];
  trm_tr_packs pk = {.layers = dummy};
  pack_task tasks[PACKS_PER_LAYER];
  bool fuse = fusable(ctx->kernel, (size_t)c->inter, (size_t)c->hidden_size);
  bool fuse_t = c->mlp_t && fusable(ctx->kernel, (size_t)c->inter_t, (size_t)c->state_len);
  size_t total = 0;
  for (int dir = 0; dir < 2; dir++) {
    /* every layer has the same shapes: count layer 0's and multiply */
    trm_tr_params one = *p;
    one.cfg.L_layers = 1;
    size_t n = pack_tasks(&one, &pk, dir == 1, fuse, fuse_t, tasks);
    for (size_t i = 0; i < n; i++) total += (pack_floats(ctx->kernel, &tasks[i]) + 15) / 16 * 16;
  }
  return total * (size_t)c->L_layers;
}

void trm_tr_packs_assign(const trm_tr_ctx *ctx, const trm_tr_params *p, trm_tr_packs *pk, float *arena) {
  const trm_config *c = &p->cfg;
  pk->kernel = ctx->kernel;
  pk->fuse = fusable(ctx->kernel, (size_t)c->inter, (size_t)c->hidden_size);
  pk->fuse_t = c->mlp_t && fusable(ctx->kernel, (size_t)c->inter_t, (size_t)c->state_len);
  pk->source = NULL;
  pk->forward_ready = pk->backward_ready = false;
  pack_task tasks[PACKS_PER_LAYER * 64];
  size_t used = 0;
  for (int dir = 0; dir < 2; dir++) {
    /* in slices of 64 layers so that the task list stays on the stack */
    for (int64_t l0 = 0; l0 < c->L_layers; l0 += 64) {
      trm_tr_params part = *p;
      trm_tr_packs sub = *pk;
      part.w.layers = p->w.layers + l0;
      sub.layers = pk->layers + l0;
      part.cfg.L_layers = c->L_layers - l0 < 64 ? c->L_layers - l0 : 64;
      size_t n = pack_tasks(&part, &sub, dir == 1, pk->fuse, pk->fuse_t, tasks);
      for (size_t i = 0; i < n; i++) {
        tasks[i].out->data = arena + used;
        tasks[i].out->swiglu = tasks[i].kind == PACK_SWIGLU;
        used += (pack_floats(ctx->kernel, &tasks[i]) + 15) / 16 * 16;
      }
    }
  }
}

typedef struct pack_job {
  const trm_kernel *k;
  const pack_task *tasks;
} pack_job;

static void pack_range(void *arg, size_t lo, size_t hi) {
  const pack_job *j = arg;
  for (size_t i = lo; i < hi; i++) pack_one(j->k, &j->tasks[i]);
}

/* Packs one direction's weights when they are not ready (or were packed from other weights). */
static void packs_ensure(const trm_tr_ctx *ctx, const trm_tr_params *p, trm_tr_packs *pk, bool backward) {
  if (pk->source != p->w.data) {
    pk->forward_ready = pk->backward_ready = false;
    pk->source = p->w.data;
  }
  if (backward ? pk->backward_ready : pk->forward_ready) return;
  pack_task tasks[PACKS_PER_LAYER * 64];
  for (int64_t l0 = 0; l0 < p->cfg.L_layers; l0 += 64) {
    trm_tr_params part = *p;
    trm_tr_packs sub = *pk;
    part.w.layers = p->w.layers + l0;
    sub.layers = pk->layers + l0;
    part.cfg.L_layers = p->cfg.L_layers - l0 < 64 ? p->cfg.L_layers - l0 : 64;
    size_t n = pack_tasks(&part, &sub, backward, pk->fuse, pk->fuse_t, tasks);
    pack_job j = {ctx->kernel, tasks};
    trm_tr_parallel(ctx, n, pack_range, &j);
  }
  if (backward) {
    pk->backward_ready = true;
  } else {
    pk->forward_ready = true;
    pk->backward_ready = false; /* the weights may have changed since they were packed */
  }
}

/* The packs of layer w (a layer of p), made ready for the direction; NULL when there are none
 * (no packs in the scratch, a layer from elsewhere, or a kernel other than the packs'). */
static const trm_tr_layer_packs *layer_packs(const trm_tr_ctx *ctx, const trm_tr_params *p, const trm_tr_layer *w,
                                             trm_tr_scratch *sc, bool backward) {
  trm_tr_packs *pk = sc->packs;
  if (!pk || pk->kernel != ctx->kernel) return NULL;
  for (int64_t l = 0; l < p->cfg.L_layers; l++)
    if (&p->w.layers[l] == w) {
      packs_ensure(ctx, p, pk, backward);
      return &pk->layers[l];
    }
  return NULL;
}

/* ---- attention core: softmax(q k^T / sqrt(hd)) v per (state, head), split over workers ---- */

typedef struct attn_job {
  const trm_tr_ctx *ctx;
  const trm_tr_params *p;
  size_t B;
  const float *qkv;
  float *probs, *heads;    /* forward outputs */
  const float *dheads;     /* backward input */
  float *dqkv;             /* backward output */
  float *scratch;          /* per worker S*S */
  size_t scratch_workers;  /* workers the scratch has room for */
} attn_job;

static float *worker_gemm_buf(const trm_tr_ctx *ctx, size_t worker) {
  return ctx->gemm_bufs + worker * trm_gemm_buffer_floats(ctx->kernel);
}

static void attn_forward_worker(void *arg, size_t worker, size_t n_workers) {
  const attn_job *j = arg;
  const trm_config *c = &j->p->cfg;
  const trm_kernel *k = j->ctx->kernel;
  size_t S = (size_t)c->state_len, D = (size_t)c->hidden_size, H = (size_t)c->num_heads, hd = (size_t)c->head_dim;
  float *buf = worker_gemm_buf(j->ctx, worker);
  float scale = 1.0f / sqrtf((float)hd);
  for (size_t item = worker; item < j->B * H; item += n_workers) {
    size_t b = item / H, head = item % H;
    const float *base = j->qkv + b * S * 3 * D + head * hd;
    float *P = j->probs + item * S * S;
    trm_gemm_single(k, buf, S, S, hd, plain(base, 3 * D), transposed(base + D, 3 * D), P, S);
    for (size_t i = 0; i < S; i++) k->softmax(P + i * S, S, scale);
    trm_gemm_single(k, buf, S, hd, S, plain(P, S), plain(base + 2 * D, 3 * D), j->heads + b * S * D + head * hd, D);
  }
}

/* O = P V, P = softmax(scale Q K^T):
 *   dV = P^T dO;  dP = dO V^T;  dZ = P (dP - rowsum(dP P));  dQ = scale dZ K;  dK = scale dZ^T Q */
static void attn_backward_worker(void *arg, size_t worker, size_t n_workers) {
  const attn_job *j = arg;
  const trm_config *c = &j->p->cfg;
  const trm_kernel *k = j->ctx->kernel;
  size_t S = (size_t)c->state_len, D = (size_t)c->hidden_size, H = (size_t)c->num_heads, hd = (size_t)c->head_dim;
  /* a pool larger than the one the work memory was made for: the extra workers stay idle */
  size_t stride = min_sz(n_workers, j->scratch_workers);
  if (worker >= stride) return;
  float *buf = worker_gemm_buf(j->ctx, worker);
  float *dP = j->scratch + worker * S * S;
  float scale = 1.0f / sqrtf((float)hd);
  for (size_t item = worker; item < j->B * H; item += stride) {
    size_t b = item / H, head = item % H;
    const float *base = j->qkv + b * S * 3 * D + head * hd;
    const float *P = j->probs + item * S * S;
    const float *dO = j->dheads + b * S * D + head * hd;
    float *dbase = j->dqkv + b * S * 3 * D + head * hd;
    trm_gemm_single(k, buf, S, hd, S, transposed(P, S), plain(dO, D), dbase + 2 * D, 3 * D);
    trm_gemm_single(k, buf, S, S, hd, plain(dO, D), transposed(base + 2 * D, 3 * D), dP, S);
    for (size_t i = 0; i < S; i++) {
      const float *pr = P + i * S;
      float *dr = dP + i * S;
      float dot = 0.0f;
      for (size_t t = 0; t < S; t++) dot += dr[t] * pr[t];
      for (size_t t = 0; t < S; t++) dr[t] = scale * pr[t] * (dr[t] - dot);
    }
    trm_gemm_single(k, buf, S, hd, S, plain(dP, S), plain(base + D, 3 * D), dbase, 3 * D);
    trm_gemm_single(k, buf, S, hd, S, transposed(dP, S), plain(base, 3 * D), dbase + D, 3 * D);
  }
}

/* ---- the mixing step: attention ---- */

/* The forward passes read the step's input from in and write its output to h (in may equal h). */
static void attention_forward(const trm_tr_ctx *ctx, const trm_tr_params *p, const trm_tr_layer *w, size_t B,
                              const float *in, float *h, trm_tr_layer_tape *lt, trm_tr_scratch *sc) {
  const trm_config *c = &p->cfg;
  size_t D = (size_t)c->hidden_size, R = B * (size_t)c->state_len;
  const trm_tr_layer_packs *pk = layer_packs(ctx, p, w, sc, false);
  trm_tr_layer_tape *t = lt ? lt : &sc->spare; /* without gradient: the spare tape's buffers */
  trm_tr_gemm(ctx, R, 3 * D, D, plain(in, D), weight(pk ? &pk->qkv : NULL, transposed(w->qkv, D)), t->qkv, 3 * D);
  if (c->pos_encodings == TRM_POS_ROPE) rope_rows(ctx, p, t->qkv, R, false);
  attn_job job = {.ctx = ctx, .p = p, .B = B, .qkv = t->qkv, .probs = t->probs, .heads = t->heads};
  run_workers(ctx, attn_forward_worker, &job);
  trm_tr_gemm(ctx, R, D, D, plain(t->heads, D), weight(pk ? &pk->o : NULL, transposed(w->o, D)), sc->d1, D);
  residual_norm_rows(ctx, in, h, sc->d1, lt ? lt->inv_mix : NULL, R, D, (float)c->rms_norm_eps);
}

void trm_tr_attention_forward(const trm_tr_ctx *ctx, const trm_tr_params *p, const trm_tr_layer *w, size_t B,
                              float *h, trm_tr_layer_tape *lt, trm_tr_scratch *sc) {
  attention_forward(ctx, p, w, B, h, h, lt, sc);
}

void trm_tr_attention_backward(const trm_tr_ctx *ctx, const trm_tr_params *p, const trm_tr_layer *w,
                               trm_tr_layer *g, size_t B, const float *h_in, const float *h_out,
                               const trm_tr_layer_tape *lt, float *d, trm_tr_scratch *sc) {
  const trm_config *c = &p->cfg;
  size_t D = (size_t)c->hidden_size, R = B * (size_t)c->state_len;
  const trm_tr_layer_packs *pk = layer_packs(ctx, p, w, sc, true);
  norm_rows_backward(ctx, h_out, lt->inv_mix, d, R, D); /* d = du: of h_in (residual) and of out */
  float *dheads = sc->d1, *dqkv = sc->d2;
  trm_tr_gemm(ctx, R, D, D, plain(d, D), weight(pk ? &pk->o_dx : NULL, plain(w->o, D)), dheads, D);
  linear_dw(ctx, d, lt->heads, R, D, D, g->o, sc->wgrad, sc->apack);
  attn_job job = {.ctx = ctx, .p = p, .B = B, .qkv = lt->qkv, .probs = lt->probs, .dheads = dheads, .dqkv = dqkv,
                  .scratch = sc->attn, .scratch_workers = sc->attn_workers};
  run_workers(ctx, attn_backward_worker, &job);
  if (c->pos_encodings == TRM_POS_ROPE) rope_rows(ctx, p, dqkv, R, true);
  linear_dw(ctx, dqkv, h_in, R, 3 * D, D, g->qkv, sc->wgrad, sc->apack);
  trm_tr_gemm(ctx, R, D, 3 * D, plain(dqkv, 3 * D), weight(pk ? &pk->qkv_dx : NULL, plain(w->qkv, D)), dheads, D);
  trm_tr_add(ctx, d, dheads, R * D);
}

/* ---- runs of work on one worker, or over the pool ----
 * The channel and token MLP steps give each worker whole rows (or whole states) and run every
 * product and pass of those on it, one pool job per step instead of one per product. A row's
 * result does not depend on which rows share a worker (the GEMM sums each element the same way
 * whatever the split), so this too is the same for every thread count. With too few rows or
 * states for the workers, the work runs on the caller with the products over the pool instead. */

typedef struct exec {
  const trm_tr_ctx *ctx;
  float *gemm_buf; /* this worker's packing buffer (when not threaded) */
  bool threaded;   /* the products and passes go over the pool */
} exec;

static void ex_gemm(const exec *e, size_t M, size_t N, size_t K, trm_operand A, trm_operand B, float *C, size_t ldc) {
  if (e->threaded)
    trm_tr_gemm(e->ctx, M, N, K, A, B, C, ldc);
  else
    trm_gemm_single(e->ctx->kernel, e->gemm_buf, M, N, K, A, B, C, ldc);
}

static void ex_range(const exec *e, size_t n, trm_tr_range_fn fn, void *arg) {
  if (e->threaded)
    trm_tr_parallel(e->ctx, n, fn, arg);
  else if (n > 0)
    fn(arg, 0, n);
}

typedef void (*part_fn)(const void *job, const exec *e, size_t lo, size_t hi);

typedef struct split_job {
  part_fn fn;
  const void *job;
  const trm_tr_ctx *ctx;
  size_t n, unit;
} split_job;

static void split_worker(void *arg, size_t worker, size_t n_workers) {
  const split_job *j = arg;
  size_t units = div_up(j->n, j->unit);
  size_t lo = min_sz(units * worker / n_workers * j->unit, j->n);
  size_t hi = min_sz(units * (worker + 1) / n_workers * j->unit, j->n);
  exec e = {j->ctx, worker_gemm_buf(j->ctx, worker), false};
  if (hi > lo) j->fn(j->job, &e, lo, hi);
}

/* fn over items [0, n): a contiguous share of whole units (of `unit` items) per worker when
 * there are at least min_units units for each, else all on the caller with its products over
 * the pool. */
static void split(const trm_tr_ctx *ctx, size_t n, size_t unit, size_t min_units, part_fn fn, const void *job) {
  if (ctx->pool && div_up(n, unit) >= ctx->workers * min_units) {
    split_job j = {fn, job, ctx, n, unit};
    trm_pool_run(ctx->pool, split_worker, &j);
  } else {
    exec e = {ctx, ctx->gemm_bufs, ctx->pool != NULL};
    fn(job, &e, 0, n);
  }
}

/* Rows of the channel step one worker takes at a time (about the GEMM's row block, in whole
 * panels of MR rows so that no panel is computed half empty), and the rows of token-MLP
 * products a worker forms at once (whole states: GROUP_ROWS / D of them). */
enum { ROW_BLOCK = 128, GROUP_ROWS = 512 };

static size_t row_block(const trm_kernel *k) { return ROW_BLOCK >= k->mr ? ROW_BLOCK / k->mr * k->mr : k->mr; }

typedef struct mlp_job {
  const trm_tr_params *p;
  const trm_tr_layer *w;
  const trm_tr_layer_packs *pk;
  size_t B;
  const float *in, *h_out;
  float *h, *d;
  trm_tr_layer_tape *lt;       /* forward; NULL without gradient */
  const trm_tr_layer_tape *tape; /* backward */
  trm_tr_scratch *sc;
} mlp_job;

/* ---- the mixing step: token MLP ----
 * Per state h_b [S, D]: gu_b = h_b^T Wgu^T [D, 2It] (h_b read transposed, packed here),
 * act_b = swiglu(gu_b), out_b = Wd act_b^T [S, D], h_b = rmsnorm over S of (h_b + out_b). Each
 * state goes through whole on one worker. The tape keeps gu [B*D, 2It] and 1/rms per (state,
 * channel). */

static size_t state_pack_floats(const trm_tr_ctx *ctx, const trm_config *c) {
  return div_up((size_t)c->hidden_size, ctx->kernel->mr) * ctx->kernel->mr * (size_t)c->state_len;
}

/* The transposes of G states [S, D] side by side, A [G*D, S] with A[(g, d)][s] = x_g[s][d], packed
 * as a left operand (panels of MR rows, a panel may hold channels of two states). */
typedef struct states_pack_job {
  const trm_kernel *k;
  const float *x; /* the first state */
  size_t G, S, D;
  float *dst;
} states_pack_job;

static void states_pack_range(void *arg, size_t lo, size_t hi) {
  const states_pack_job *j = arg;
  size_t mr = j->k->mr, M = j->G * j->D;
  for (size_t p = lo; p < hi; p++) {
    size_t m0 = p * mr, rows = min_sz(mr, M - m0);
    float *panel = j->dst + m0 * j->S;
    for (size_t s = 0; s < j->S; s++) {
      float *out = panel + s * mr;
      size_t i = 0;
      while (i < rows) { /* runs of channels within one state are contiguous */
        size_t m = m0 + i, g = m / j->D, d = m % j->D, run = min_sz(rows - i, j->D - d);
        memcpy(out + i, j->x + (g * j->S + s) * j->D + d, run * sizeof *out);
        i += run;
      }
      for (; i < mr; i++) out[i] = 0.0f;
    }
  }
}

static trm_packed ex_pack_states(const exec *e, const float *x, size_t G, size_t S, size_t D, float *dst) {
  states_pack_job j = {e->ctx->kernel, x, G, S, D, dst};
  ex_range(e, div_up(G * D, e->ctx->kernel->mr), states_pack_range, &j);
  return (trm_packed){.data = dst};
}

static size_t token_group(const trm_config *c) {
  size_t D = (size_t)c->hidden_size;
  return D >= GROUP_ROWS ? 1 : GROUP_ROWS / D;
}

/* States [lo, hi), G at a time: gu [G*D, 2It] = A Wgu^T with A the G states transposed,
 * act = swiglu(gu), out [S, G*D] = Wd act^T, then each state's norm over its columns. */
static void token_forward_part(const void *job, const exec *e, size_t lo, size_t hi) {
  const mlp_job *j = job;
  const trm_config *c = &j->p->cfg;
  size_t S = (size_t)c->state_len, D = (size_t)c->hidden_size, It = (size_t)c->inter_t;
  const trm_tr_layer_packs *pk = j->pk;
  trm_tr_scratch *sc = j->sc;
  for (size_t b0 = lo; b0 < hi; b0 += token_group(c)) {
    size_t G = min_sz(token_group(c), hi - b0), M = G * D;
    float *act = sc->act + b0 * D * It, *out = sc->d1 + b0 * S * D;
    trm_packed xt = ex_pack_states(e, j->in + b0 * S * D, G, S, D, sc->apack + b0 * state_pack_floats(e->ctx, c));
    trm_operand A = {.packed = &xt};
    if (!j->lt && pk && pk->mlpt_gate_up_fused.data) {
      ex_gemm(e, M, 2 * It, S, A, weight(&pk->mlpt_gate_up_fused, A), act, It);
    } else {
      float *gu = (j->lt ? j->lt->gu_t : sc->spare.gu_t) + b0 * D * 2 * It;
      ex_gemm(e, M, 2 * It, S, A, weight(pk ? &pk->mlpt_gate_up : NULL, transposed(j->w->mlpt_gate_up, S)), gu,
              2 * It);
      swiglu_job sj = {.k = e->ctx->kernel, .gu = gu, .act = act, .inter = It};
      ex_range(e, M, swiglu_range, &sj);
    }
    ex_gemm(e, S, M, It, weight(pk ? &pk->mlpt_down : NULL, plain(j->w->mlpt_down, It)), transposed(act, It), out, M);
    for (size_t g = 0; g < G; g++) {
      size_t b = b0 + g;
      norm_job nj = {.h = j->h + b * S * D, .src = j->in + b * S * D, .add = out + g * D, .add_ld = M,
                     .inv = j->lt ? j->lt->inv_mix + b * D : NULL, .rows = S, .cols = D, .ld = D,
                     .eps = (float)c->rms_norm_eps};
      ex_range(e, div_up(D, COL_BLOCK), residual_norm_cols_range, &nj);
    }
  }
}

static void token_mlp_forward(const trm_tr_ctx *ctx, const trm_tr_params *p, const trm_tr_layer *w, size_t B,
                              const float *in, float *h, trm_tr_layer_tape *lt, trm_tr_scratch *sc) {
  mlp_job j = {.p = p, .w = w, .pk = layer_packs(ctx, p, w, sc, false), .B = B, .in = in, .h = h, .lt = lt, .sc = sc};
  split(ctx, B, 1, 1, token_forward_part, &j);
}

void trm_tr_token_mlp_forward(const trm_tr_ctx *ctx, const trm_tr_params *p, const trm_tr_layer *w, size_t B,
                              float *h, trm_tr_layer_tape *lt, trm_tr_scratch *sc) {
  token_mlp_forward(ctx, p, w, B, h, h, lt, sc);
}

/* States [lo, hi), G at a time: du (along each state's columns), dact = A Wd with A the du
 * transposed, dgu, and d += (Wgu^T dgu^T) per state; du and the input also go to the
 * [S, B*D] matrices of the weight gradients. */
static void token_backward_part(const void *job, const exec *e, size_t lo, size_t hi) {
  const mlp_job *j = job;
  const trm_config *c = &j->p->cfg;
  size_t S = (size_t)c->state_len, D = (size_t)c->hidden_size, It = (size_t)c->inter_t, N = j->B * D;
  const trm_tr_layer_packs *pk = j->pk;
  trm_tr_scratch *sc = j->sc;
  for (size_t b0 = lo; b0 < hi; b0 += token_group(c)) {
    size_t G = min_sz(token_group(c), hi - b0), M = G * D;
    float *tmp = sc->d1 + b0 * S * D;
    float *act = sc->act + b0 * D * It, *dact = sc->dact + b0 * D * It, *dgu = sc->dgu + b0 * D * 2 * It;
    for (size_t b = b0; b < b0 + G; b++) {
      float *d = j->d + b * S * D;
      norm_job nj = {.y = j->h_out + b * S * D, .inv_in = j->tape->inv_mix + b * D, .d = d, .rows = S, .cols = D};
      ex_range(e, div_up(D, COL_BLOCK), norm_cols_backward_range, &nj);
      for (size_t s = 0; s < S; s++) {
        memcpy(sc->xt + s * N + b * D, d + s * D, D * sizeof *d);
        memcpy(sc->xt2 + s * N + b * D, j->in + (b * S + s) * D, D * sizeof *d);
      }
    }
    trm_packed dt = ex_pack_states(e, j->d + b0 * S * D, G, S, D, sc->apack + b0 * state_pack_floats(e->ctx, c));
    ex_gemm(e, M, It, S, (trm_operand){.packed = &dt},
            weight(pk ? &pk->mlpt_down_dx : NULL, plain(j->w->mlpt_down, It)), dact, It);
    swiglu_job sj = {.k = e->ctx->kernel, .gu = j->tape->gu_t + b0 * D * 2 * It, .dact = dact, .act = act,
                     .dgu = dgu, .inter = It};
    ex_range(e, M, swiglu_backward_range, &sj);
    ex_gemm(e, S, M, 2 * It, weight(pk ? &pk->mlpt_gate_up_dx : NULL, transposed(j->w->mlpt_gate_up, S)),
            transposed(dgu, 2 * It), tmp, M);
    for (size_t g = 0; g < G; g++) {
      add_rows_job aj = {.dst = j->d + (b0 + g) * S * D, .src = tmp + g * D, .cols = D, .src_ld = M};
      ex_range(e, S, add_rows_range, &aj);
    }
  }
}

void trm_tr_token_mlp_backward(const trm_tr_ctx *ctx, const trm_tr_params *p, const trm_tr_layer *w,
                               trm_tr_layer *g, size_t B, const float *h_in, const float *h_out,
                               const trm_tr_layer_tape *lt, float *d, trm_tr_scratch *sc) {
  const trm_config *c = &p->cfg;
  size_t S = (size_t)c->state_len, D = (size_t)c->hidden_size, It = (size_t)c->inter_t, N = B * D;
  mlp_job j = {.p = p, .w = w, .pk = layer_packs(ctx, p, w, sc, true), .B = B, .in = h_in, .h_out = h_out, .d = d,
               .tape = lt, .sc = sc};
  split(ctx, B, 1, 1, token_backward_part, &j);
  /* dWd [S, It] += dU act with dU [S, B*D] the states' du side by side; dWgu [2It, S] += (X dgu)^T */
  trm_tr_gemm(ctx, S, It, N, plain(sc->xt, N), plain(sc->act, It), sc->wgrad, It);
  trm_tr_add(ctx, g->mlpt_down, sc->wgrad, S * It);
  trm_tr_gemm(ctx, S, 2 * It, N, plain(sc->xt2, N), plain(sc->dgu, 2 * It), sc->wgrad, 2 * It);
  add_transposed(ctx, g->mlpt_gate_up, sc->wgrad, 2 * It, S);
}

/* ---- the channel step: h = rmsnorm(h + down(swiglu(h Wgu^T))) ---- */

static void channel_forward_part(const void *job, const exec *e, size_t lo, size_t hi) {
  const mlp_job *j = job;
  const trm_config *c = &j->p->cfg;
  size_t D = (size_t)c->hidden_size, I = (size_t)c->inter;
  const trm_tr_layer_packs *pk = j->pk;
  trm_tr_scratch *sc = j->sc;
  /* on a worker, a block of rows at a time (its activations stay in cache); threaded, all */
  size_t block = e->threaded ? hi - lo : row_block(e->ctx->kernel);
  for (size_t r0 = lo; r0 < hi; r0 += block) {
    size_t n = min_sz(block, hi - r0);
    trm_operand x = plain(j->in + r0 * D, D);
    float *act = sc->act + r0 * I, *out = sc->d1 + r0 * D;
    if (!j->lt && pk && pk->gate_up_fused.data) {
      /* without gradient the product writes silu(gate) * up straight away */
      ex_gemm(e, n, 2 * I, D, x, weight(&pk->gate_up_fused, x), act, I);
    } else {
      float *gu = (j->lt ? j->lt->gu : sc->spare.gu) + r0 * 2 * I;
      ex_gemm(e, n, 2 * I, D, x, weight(pk ? &pk->gate_up : NULL, transposed(j->w->gate_up, D)), gu, 2 * I);
      swiglu_job sj = {.k = e->ctx->kernel, .gu = gu, .act = act, .inter = I};
      ex_range(e, n, swiglu_range, &sj);
    }
    ex_gemm(e, n, D, I, plain(act, I), weight(pk ? &pk->down : NULL, transposed(j->w->down, I)), out, D);
    norm_job nj = {.h = j->h + r0 * D, .src = j->in + r0 * D, .add = out,
                   .inv = j->lt ? j->lt->inv_mlp + r0 : NULL, .cols = D, .eps = (float)c->rms_norm_eps};
    ex_range(e, n, residual_norm_rows_range, &nj);
  }
}

static void channel_forward(const trm_tr_ctx *ctx, const trm_tr_params *p, const trm_tr_layer *w, size_t rows,
                            const float *in, float *h, trm_tr_layer_tape *lt, trm_tr_scratch *sc) {
  mlp_job j = {.p = p, .w = w, .pk = layer_packs(ctx, p, w, sc, false), .in = in, .h = h, .lt = lt, .sc = sc};
  split(ctx, rows, ctx->kernel->mr, 2, channel_forward_part, &j);
}

void trm_tr_channel_forward(const trm_tr_ctx *ctx, const trm_tr_params *p, const trm_tr_layer *w, size_t rows,
                            float *h, trm_tr_layer_tape *lt, trm_tr_scratch *sc) {
  channel_forward(ctx, p, w, rows, h, h, lt, sc);
}

/* One layer of f: its mixing step from in to mid, its channel step from mid to out (in, mid and
 * out may be the same array). */
void trm_tr_layer_forward(const trm_tr_ctx *ctx, const trm_tr_params *p, const trm_tr_layer *w, size_t B,
                          const float *in, float *mid, float *out, trm_tr_layer_tape *lt, trm_tr_scratch *sc) {
  if (p->cfg.mlp_t)
    token_mlp_forward(ctx, p, w, B, in, mid, lt, sc);
  else
    attention_forward(ctx, p, w, B, in, mid, lt, sc);
  channel_forward(ctx, p, w, B * (size_t)p->cfg.state_len, mid, out, lt, sc);
}

/* Per block of rows: du, dact = du Wd, the activations and dgu, and dgu Wgu (into d1). */
static void channel_backward_part(const void *job, const exec *e, size_t lo, size_t hi) {
  const mlp_job *j = job;
  const trm_config *c = &j->p->cfg;
  size_t D = (size_t)c->hidden_size, I = (size_t)c->inter;
  const trm_tr_layer_packs *pk = j->pk;
  trm_tr_scratch *sc = j->sc;
  size_t block = e->threaded ? hi - lo : row_block(e->ctx->kernel);
  for (size_t r0 = lo; r0 < hi; r0 += block) {
    size_t n = min_sz(block, hi - r0);
    float *d = j->d + r0 * D, *dact = sc->dact + r0 * I, *dgu = sc->dgu + r0 * 2 * I;
    norm_job nj = {.y = j->h_out + r0 * D, .inv_in = j->tape->inv_mlp + r0, .d = d, .cols = D};
    ex_range(e, n, norm_rows_backward_range, &nj);
    ex_gemm(e, n, I, D, plain(d, D), weight(pk ? &pk->down_dx : NULL, plain(j->w->down, I)), dact, I);
    /* the activations are recomputed here rather than kept on the tape */
    swiglu_job sj = {.k = e->ctx->kernel, .gu = j->tape->gu + r0 * 2 * I, .dact = dact, .act = sc->act + r0 * I,
                     .dgu = dgu, .inter = I};
    ex_range(e, n, swiglu_backward_range, &sj);
    ex_gemm(e, n, D, 2 * I, plain(dgu, 2 * I), weight(pk ? &pk->gate_up_dx : NULL, plain(j->w->gate_up, D)),
            sc->d1 + r0 * D, D);
  }
}

void trm_tr_channel_backward(const trm_tr_ctx *ctx, const trm_tr_params *p, const trm_tr_layer *w,
                             trm_tr_layer *g, size_t rows, const float *h_in, const float *h_out,
                             const trm_tr_layer_tape *lt, float *d, trm_tr_scratch *sc) {
  const trm_config *c = &p->cfg;
  size_t D = (size_t)c->hidden_size, I = (size_t)c->inter;
  mlp_job j = {.p = p, .w = w, .pk = layer_packs(ctx, p, w, sc, true), .in = h_in, .h_out = h_out, .d = d,
               .tape = lt, .sc = sc};
  split(ctx, rows, ctx->kernel->mr, 2, channel_backward_part, &j);
  linear_dw(ctx, d, sc->act, rows, D, I, g->down, sc->wgrad, sc->apack);
  linear_dw(ctx, sc->dgu, h_in, rows, 2 * I, D, g->gate_up, sc->wgrad, sc->apack);
  trm_tr_add(ctx, d, sc->d1, rows * D);
}
