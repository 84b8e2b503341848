// The tensor-core path of the pairwise sums (float only): the exponent in dot-product
// form on centred data,
//   e_ij = [log2 c_j - inv2 s^2 |k'_j|^2] + [-inv2 |q'_i|^2] + 2 s inv2 (q'_i . k'_j),
//   q' = q - s mu, k' = k - mu (mu = mean of the keys), so q - s k = q' - s k',
// with Q'K'^T from mma.sync m16n8k8 TF32 in the 3xTF32 split (hi*hi + hi*lo + lo*hi,
// about fp32 accuracy), the online softmax through shared memory, and W.V again as
// 3xTF32 mma. A prologue (two small kernels, also written over the execution
// context) computes mu and the two bracketed terms in double.
//
// Block: 4 warps x 16 query rows (BM = 64), key tiles of BN = 64, dimensions staged
// in chunks of DK = 16, value columns in chunks of DVC = 64 (grid y).
// Per key tile:
//   for each dimension chunk:  stage q', k' split into TF32 hi/lo (and the key terms)
//                              | barrier |
//                              per k-step: load A/B fragments (no arithmetic), 3 x 8 mma
//                              into S  | barrier |
//   S -> exponents into shared memory (and stage value half 0 over k', split)  | barrier |
//   [online_max: partial row maxima | barrier |]
//   row owners (2 threads per row): maximum, rescale factor, 2^(e - M), B  | barrier |
//   rescale A; per k-step over keys 0..31: fragments of W (split here) and V, 3 x 8
//   mma into A  | barrier | stage value half 1 | barrier | the same over keys 32..63
//   | barrier (the next staging overwrites the value half) |
// Precision: the exponent's absolute error is about 2^-22 * inv2 * (|q'|^2 + s^2|k'|^2);
// at alpha near 1 on a spread population the SIMT path (direct differences) is the
// accurate one.
#pragma once

#include <cstdint>

#include "diffevo/detail/macros.hpp"
#include "diffevo/detail/math.hpp"
#include "diffevo/detail/params.hpp"

namespace diffevo {
namespace detail {

struct mma_config {
  static constexpr int threads = 128;
  static constexpr int warps = 4;
  static constexpr int bm = 64;   // query rows per block (16 per warp)
  static constexpr int bn = 64;   // keys per tile (8 n-tiles of 8)
  static constexpr int dk = 16;   // dimensions per staged chunk (2 k-steps of 8)
  static constexpr int dvc = 64;  // value columns per block (8 n-tiles of 8)
  static constexpr int ntiles = 8;
};

static_assert(mma_config::bm == mma_config::bn, "staging runs one index over rows and keys");
static_assert(mma_config::threads == 2 * mma_config::bm, "two row owners per row");
static_assert(mma_config::bn <= mma_config::threads, "one thread per key stages the key terms");
static_assert(mma_config::threads % mma_config::dk == 0 && mma_config::threads % mma_config::dvc == 0,
              "staging gives each thread a fixed column");

// Staged tiles split into TF32 hi and lo planes, each in the mma's fragment order, so
// that what one lane feeds an mma operand lies contiguous: the A fragment's four words
// are one 128-bit shared load, a B fragment's two words one 64-bit load, landing in the
// consecutive registers the HMMA reads (hi and lo side by side instead would need
// register moves; splitting in the inner loops instead redid the split for every key
// tile (q') and in every warp (k' and the values, 4x)).
//   a_tile [k/8][row/16][g][t][4]: slot i of lane (g, t) holds a_i = (g + 8 (i & 1),
//          t + 4 (i >> 1)) of the 16 x 8 block (row, k); lanes read 16 consecutive bytes
//          each: conflict-free.
//   b_tile [k/8][n][8]: k % 8 stored in the order 0 4 1 5 2 6 3 7, so b0, b1 (k = t,
//          t + 4) of lane (g, t) are the pair at [n0 + g][2t]; a half-warp reads 16
//          consecutive 8-byte pairs: conflict-free.
template <int KG, int RB>
struct a_tile {
  alignas(16) std::uint32_t hi[KG][RB][8][4][4];
  alignas(16) std::uint32_t lo[KG][RB][8][4][4];
};
template <int KG, int N>
struct b_tile {
  alignas(16) std::uint32_t hi[KG][N][8];
  alignas(16) std::uint32_t lo[KG][N][8];
};
// where k % 8 goes in a b_tile row: t -> 2t, t + 4 -> 2t + 1
DIFFEVO_HD DIFFEVO_INLINE int b_slot(int kk) { return kk < 4 ? 2 * kk : 2 * kk - 7; }

// Split, the whole value tile no longer fits next to the rest in 48 KB of static shared
// memory, so W.V runs in two halves of 32 keys, each staged in turn, and the split k'
// chunk shares its bytes with the value half (never live at once: barriers before the
// first value staging, in between the halves, and at the end of each key tile).
struct mma_smem {
  static constexpr int vkeys = mma_config::bn / 2;              // keys per staged value half
  a_tile<mma_config::dk / 8, mma_config::bm / 16> q;             // q' chunk
  union {
    b_tile<mma_config::dk / 8, mma_config::bn> k;                // k' chunk (keys as n)
    b_tile<vkeys / 8, mma_config::dvc> v;                        // value half (keys as k)
  } kv;
  float w[mma_config::bm][mma_config::bn + 4];   // exponents, then weights; +4: conflict-free A
  float bias[mma_config::bn];                    // kn_j (-inf past the last key)
  float rowt[mma_config::bm];                    // qn_i
  float scale[mma_config::bm];                   // this tile's rescale factor per row
  float part[mma_config::bm][2];                 // partial maxima, at the end partial B
};

struct mma_state {
  float s[mma_config::ntiles][4];    // S = Q'K'^T, the warp's 16 rows x 64 keys (C fragments)
  float acc[mma_config::ntiles][4];  // A, 16 rows x 64 value columns (C fragments)
  std::uint32_t a_hi[4], a_lo[4];    // A fragment (3xTF32 split)
  std::uint32_t b_hi[mma_config::ntiles][2], b_lo[mma_config::ntiles][2];
  float mrun;   // row owner: running maximum of row (tid >> 1)
  float bpart;  // row owner: partial B over half (tid & 1) of each tile
};

DIFFEVO_HD DIFFEVO_INLINE grid3 mma_grid(std::int64_t batch, std::int64_t nq, std::int64_t dv) {
  const std::int64_t cols = dv > 0 ? dv : 1;
  return grid3{(nq + mma_config::bm - 1) / mma_config::bm,
               (cols + mma_config::dvc - 1) / mma_config::dvc, batch};
}

// ---- prologue 1: mu = mean of the keys, per batch ---------------------------------
// grid (ceil(d / 32), 1, batch), 128 threads: 4 row groups x 32 columns, tree of 2.
struct mean_smem {
  double part[4][32];
};
constexpr int kMeanThreads = 128;

DIFFEVO_HD DIFFEVO_INLINE grid3 mean_grid(std::int64_t batch, std::int64_t d) {
  return grid3{(d + 31) / 32, 1, batch};
}

template <class T, class Ctx>
DIFFEVO_HD void key_mean_block(Ctx& ctx, const T* k, std::int64_t nk, std::int64_t d, T* mu) {
  const std::int64_t batch = ctx.block_z();
  const std::int64_t c0 = ctx.block_x() * 32;
  const T* kb = k + batch * nk * d;
  mean_smem& sm = ctx.template shared<mean_smem>();
  ctx.threads([&](int tid) {
    const int col = tid & 31, grp = tid >> 5;
    double acc = 0;
    if (c0 + col < d)
      for (std::int64_t j = grp; j < nk; j += 4) acc += static_cast<double>(kb[j * d + c0 + col]);
    sm.part[grp][col] = acc;
  });
  ctx.barrier();
  ctx.threads([&](int tid) {
    if (tid < 64) sm.part[tid >> 5][tid & 31] += sm.part[(tid >> 5) + 2][tid & 31];
  });
  ctx.barrier();
  ctx.threads([&](int tid) {
    if (tid < 32 && c0 + tid < d) {
      const double total = sm.part[0][tid] + sm.part[1][tid];
      mu[batch * d + c0 + tid] = nk > 0 ? static_cast<T>(total / static_cast<double>(nk)) : T(0);
    }
  });
  ctx.end();
}

// ---- prologue 2: the row and key terms, per batch ---------------------------------
// grid (ceil((nq + nk) / 128), 1, batch), 128 threads, one row or key each.
constexpr int kNormThreads = 128;

DIFFEVO_HD DIFFEVO_INLINE grid3 norms_grid(std::int64_t batch, std::int64_t nq, std::int64_t nk) {
  return grid3{(nq + nk + kNormThreads - 1) / kNormThreads, 1, batch};
}

template <class T, class Ctx>
DIFFEVO_HD void norms_block(Ctx& ctx, const pairwise_params<T>& p) {
  const std::int64_t batch = ctx.block_z();
  const std::int64_t base = ctx.block_x() * kNormThreads;
  ctx.threads([&](int tid) {
    const std::int64_t i = base + tid;
    const std::int64_t d = p.d;
    const T* mu = p.mu + batch * d;
    const double inv2 = static_cast<double>(p.inv2), s = static_cast<double>(p.s);
    if (i < p.nq) {
      const T* qi = p.q + (batch * p.nq + i) * d;
      double n2 = 0;
      for (std::int64_t c = 0; c < d; ++c) {
        const double diff = static_cast<double>(qi[c]) - s * static_cast<double>(mu[c]);
        n2 += diff * diff;
      }
      p.qn[batch * p.nq + i] = static_cast<T>(-inv2 * n2);
    } else if (i < p.nq + p.nk) {
      const std::int64_t j = i - p.nq;
      const T* kj = p.k + (batch * p.nk + j) * d;
      double n2 = 0;
      for (std::int64_t c = 0; c < d; ++c) {
        const double diff = static_cast<double>(kj[c]) - static_cast<double>(mu[c]);
        n2 += diff * diff;
      }
      const double lc = static_cast<double>(p.logc[batch * p.nk + j]);
      p.kn[batch * p.nk + j] = static_cast<T>(lc * kLog2e - inv2 * s * s * n2);
    }
  });
  ctx.end();
}

// ---- the per-tile math (__host__ __device__, one thread's share) -----------------

// A fragment (16x8, rows r0.. of `src`, columns kc..kc+7) of lane (g, t), split 3xTF32.
template <int Stride>
DIFFEVO_HD DIFFEVO_INLINE void load_a_fragment(const float (*src)[Stride], int r0, int kc, int g,
                                               int t, std::uint32_t (&hi)[4], std::uint32_t (&lo)[4]) {
  split_tf32(src[r0 + g][kc + t], hi[0], lo[0]);
  split_tf32(src[r0 + g + 8][kc + t], hi[1], lo[1]);
  split_tf32(src[r0 + g][kc + t + 4], hi[2], lo[2]);
  split_tf32(src[r0 + g + 8][kc + t + 4], hi[3], lo[3]);
}

// N consecutive words (16N-byte aligned) into registers: one vector shared load on
// the device.
DIFFEVO_HD DIFFEVO_INLINE void load_words(const std::uint32_t* p, std::uint32_t (&out)[4]) {
#if defined(__CUDA_ARCH__)
  const uint4 x = *reinterpret_cast<const uint4*>(p);
  out[0] = x.x;
  out[1] = x.y;
  out[2] = x.z;
  out[3] = x.w;
#else
  for (int i = 0; i < 4; ++i) out[i] = p[i];
#endif
}
DIFFEVO_HD DIFFEVO_INLINE void load_words(const std::uint32_t* p, std::uint32_t (&out)[2]) {
#if defined(__CUDA_ARCH__)
  const uint2 x = *reinterpret_cast<const uint2*>(p);
  out[0] = x.x;
  out[1] = x.y;
#else
  out[0] = p[0];
  out[1] = p[1];
#endif
}

// The A fragment of k-group kg, row block rb (16 rows) of lane (g, t), staged split.
template <int KG, int RB>
DIFFEVO_HD DIFFEVO_INLINE void load_a_fragment_split(const a_tile<KG, RB>& src, int kg, int rb, int g, int t,
                                                     std::uint32_t (&hi)[4], std::uint32_t (&lo)[4]) {
  load_words(src.hi[kg][rb][g][t], hi);
  load_words(src.lo[kg][rb][g][t], lo);
}

// The B fragment of k-group kg, columns n0.. of lane (g, t), staged split.
template <int KG, int N>
DIFFEVO_HD DIFFEVO_INLINE void load_b_fragment_split(const b_tile<KG, N>& src, int kg, int n0, int g, int t,
                                                     std::uint32_t (&hi)[2], std::uint32_t (&lo)[2]) {
  load_words(&src.hi[kg][n0 + g][2 * t], hi);
  load_words(&src.lo[kg][n0 + g][2 * t], lo);
}

// Row and column (within the warp's 16 x 8 tile) of accumulator element i of lane (g, t).
DIFFEVO_HD DIFFEVO_INLINE int c_row(int g, int i) { return g + ((i >> 1) << 3); }
DIFFEVO_HD DIFFEVO_INLINE int c_col(int t, int i) { return 2 * t + (i & 1); }

// The 3xTF32 product of the staged A fragment with the 8 staged B fragments, into the
// S accumulators (ToA = false) or the A accumulators (ToA = true).
template <bool ToA>
DIFFEVO_HD DIFFEVO_INLINE float* mma_target(mma_state& my, int nt) {
  return ToA ? my.acc[nt] : my.s[nt];
}

template <bool ToA, class Ctx, class State>
DIFFEVO_HD DIFFEVO_INLINE void mma_3xtf32_row(Ctx& ctx, State& st) {
  DIFFEVO_UNROLL
  for (int nt = 0; nt < mma_config::ntiles; ++nt) {
    ctx.mma([&, nt](int tid) {
      mma_state& my = st(tid);
      return mma_operands{my.a_lo, my.b_hi[nt], mma_target<ToA>(my, nt)};
    });
    ctx.mma([&, nt](int tid) {
      mma_state& my = st(tid);
      return mma_operands{my.a_hi, my.b_lo[nt], mma_target<ToA>(my, nt)};
    });
    ctx.mma([&, nt](int tid) {
      mma_state& my = st(tid);
      return mma_operands{my.a_hi, my.b_hi[nt], mma_target<ToA>(my, nt)};
    });
  }
}

// ---- the block body ---------------------------------------------------------------

template <bool OnlineMax, class Ctx>
DIFFEVO_HD void mma_block(Ctx& ctx, const pairwise_params<float>& p) {
  using C = mma_config;
  const std::int64_t batch = ctx.block_z();
  const std::int64_t row0 = ctx.block_x() * C::bm;
  const std::int64_t col0 = ctx.block_y() * C::dvc;
  const std::int64_t nq = p.nq, nk = p.nk, d = p.d, dv = p.dv;
  const int dvc = static_cast<int>(dv - col0 < C::dvc ? (dv - col0 > 0 ? dv - col0 : 0) : C::dvc);
  const float* q = p.q + batch * nq * d;
  const float* k = p.k + batch * nk * d;
  const float* v = p.v + batch * nk * dv;
  const float* mu = p.mu + batch * d;
  const float* qn = p.qn + batch * nq;
  const float* kn = p.kn + batch * nk;
  const float s = p.s;
  const float coef = 2.0f * p.s * p.inv2;
  const int nchunks = d > 0 ? static_cast<int>((d + C::dk - 1) / C::dk) : 1;

  mma_smem& sm = ctx.template shared<mma_smem>();
  typename Ctx::template local<mma_state> st(ctx);

  ctx.threads([&](int tid) {
    mma_state& my = st(tid);
    DIFFEVO_UNROLL
    for (int nt = 0; nt < C::ntiles; ++nt)
      DIFFEVO_UNROLL
      for (int i = 0; i < 4; ++i) my.acc[nt][i] = 0.0f;
    my.mrun = OnlineMax ? neg_inf<float>() : 0.0f;
    my.bpart = 0.0f;
    for (int r = tid; r < C::bm; r += C::threads) sm.rowt[r] = row0 + r < nq ? qn[row0 + r] : 0.0f;
  });

  // Stage the value half of keys kb.. (32 of them) split: one column c per thread,
  // keys j, j + 2, ... (as the q', k' staging).
  auto stage_values_half = [&](int tid, std::int64_t kb) {
    constexpr int jstep = C::threads / C::dvc;
    const int c = tid % C::dvc;
    const bool col_ok = c < dvc;
    const int jfirst = tid / C::dvc;
    const std::int64_t keys = nk - kb - jfirst;  // keys left
    std::int64_t off = (kb + jfirst) * dv + col0 + c;
    DIFFEVO_UNROLL
    for (int it = 0; it < mma_smem::vkeys / jstep; ++it, off += jstep * dv) {
      const int j = jfirst + it * jstep;
      split_tf32(col_ok && it * jstep < keys ? v[off] : 0.0f, sm.kv.v.hi[j >> 3][c][b_slot(j & 7)],
                 sm.kv.v.lo[j >> 3][c][b_slot(j & 7)]);
    }
  };

  for (std::int64_t key0 = 0; key0 < nk; key0 += C::bn) {
    // ---- S = Q'K'^T over the dimension chunks (S zeroed and the key terms staged once
    // per tile, here, not under a branch in the chunk loop; the phase shares the first
    // chunk's barrier)
    ctx.threads([&, key0](int tid) {
      mma_state& my = st(tid);
      DIFFEVO_UNROLL
      for (int nt = 0; nt < C::ntiles; ++nt)
        DIFFEVO_UNROLL
        for (int i = 0; i < 4; ++i) my.s[nt][i] = 0.0f;
      // one key per thread (bn <= threads): no loop for a trip count of 0 or 1
      if (tid < C::bn) sm.bias[tid] = key0 + tid < nk ? kn[key0 + tid] : neg_inf<float>();
    });
    for (int ci = 0; ci < nchunks; ++ci) {
      const std::int64_t c0 = static_cast<std::int64_t>(ci) * C::dk;
      const bool stage_q = nchunks > 1 || key0 == 0;  // one chunk: q' stays from tile 0
      ctx.threads([&, key0, c0, stage_q](int tid) {
        // Each thread stages one dimension c of rows r, r + 8, ... (a warp still reads
        // two rows' 16 contiguous floats per load): the dimension's bound and mean are
        // taken once, and the 64-bit addressing is one offset step per element rather
        // than a product per element.
        constexpr int rstep = C::threads / C::dk;
        const int c = tid % C::dk;
        const std::int64_t dim = c0 + c;
        const bool dim_ok = dim < d;
        const float mu_c = dim_ok ? mu[dim] : 0.0f;
        const int rfirst = tid / C::dk;
        const std::int64_t qrows = nq - row0 - rfirst, krows = nk - key0 - rfirst;  // rows left
        std::int64_t qoff = (row0 + rfirst) * d + dim, koff = (key0 + rfirst) * d + dim;
        // a fixed trip count, unrolled: the shared-memory positions become constant offsets
        DIFFEVO_UNROLL
        for (int it = 0; it < C::bm / rstep; ++it, qoff += rstep * d, koff += rstep * d) {
          const int r = rfirst + it * rstep;
          if (stage_q) {  // a_tile position of (r, c): see a_tile
            const int kg = c >> 3, kk = c & 7, rb = r >> 4, rr = r & 15;
            const int slot = (rr >> 3) + 2 * (kk >> 2);
            split_tf32(dim_ok && it * rstep < qrows ? q[qoff] - s * mu_c : 0.0f, sm.q.hi[kg][rb][rr & 7][kk & 3][slot],
                       sm.q.lo[kg][rb][rr & 7][kk & 3][slot]);
          }
          // bn == bm: the same index runs over keys
          split_tf32(dim_ok && it * rstep < krows ? k[koff] - mu_c : 0.0f, sm.kv.k.hi[c >> 3][r][b_slot(c & 7)],
                     sm.kv.k.lo[c >> 3][r][b_slot(c & 7)]);
        }
      });
      ctx.barrier();
      DIFFEVO_UNROLL
      for (int ks = 0; ks < C::dk / 8; ++ks) {
        ctx.threads([&, ks](int tid) {
          mma_state& my = st(tid);
          const int lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
          load_a_fragment_split(sm.q, ks, warp, g, t, my.a_hi, my.a_lo);
          DIFFEVO_UNROLL
          for (int nt = 0; nt < C::ntiles; ++nt)
            load_b_fragment_split(sm.kv.k, ks, nt * 8, g, t, my.b_hi[nt], my.b_lo[nt]);
        });
        mma_3xtf32_row<false>(ctx, st);
      }
      // the next chunk restages q' and k'; after the last chunk the value staging
      // overwrites k' (they share bytes), so the barrier is needed there too
      ctx.barrier();
    }
    // ---- exponents into shared memory; stage the value tile
    ctx.threads([&, key0](int tid) {
      mma_state& my = st(tid);
      const int lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
      DIFFEVO_UNROLL
      for (int nt = 0; nt < C::ntiles; ++nt)
        DIFFEVO_UNROLL
        for (int i = 0; i < 4; ++i) {
          const int r = warp * 16 + c_row(g, i), j = nt * 8 + c_col(t, i);
          sm.w[r][j] = sm.bias[j] + sm.rowt[r] + coef * my.s[nt][i];
        }
      stage_values_half(tid, key0);  // the first half; k' is done with (barrier above)
    });
    ctx.barrier();
    // ---- online softmax: two threads per row, 32 keys each
    if (OnlineMax) {
      ctx.threads([&](int tid) {
        const int r = tid >> 1, h = tid & 1;
        float m = sm.w[r][h * 32];
        for (int j = 1; j < 32; ++j) m = max_of(m, sm.w[r][h * 32 + j]);
        sm.part[r][h] = m;
      });
      ctx.barrier();
    }
    ctx.threads([&](int tid) {
      mma_state& my = st(tid);
      const int r = tid >> 1, h = tid & 1;
      float shift = 0.0f;
      if (OnlineMax) {
        const float mnew = max_of(my.mrun, max_of(sm.part[r][0], sm.part[r][1]));
        shift = mnew == neg_inf<float>() ? 0.0f : mnew;
        const float scale = fast_exp2(my.mrun - shift);
        my.bpart *= scale;
        my.mrun = mnew;
        if (h == 0) sm.scale[r] = scale;
      }
      float bs = 0.0f;
      for (int j = h * 32; j < h * 32 + 32; ++j) {
        const float w = fast_exp2(sm.w[r][j] - shift);
        sm.w[r][j] = w;
        bs += w;
      }
      my.bpart += bs;
    });
    ctx.barrier();
    // ---- A = A * scale + W V
    if (OnlineMax) {
      ctx.threads([&](int tid) {
        mma_state& my = st(tid);
        const int lane = tid & 31, warp = tid >> 5, g = lane >> 2;
        const float lo_row = sm.scale[warp * 16 + g], hi_row = sm.scale[warp * 16 + g + 8];
        DIFFEVO_UNROLL
        for (int nt = 0; nt < C::ntiles; ++nt) {
          my.acc[nt][0] *= lo_row;
          my.acc[nt][1] *= lo_row;
          my.acc[nt][2] *= hi_row;
          my.acc[nt][3] *= hi_row;
        }
      });
    }
    DIFFEVO_UNROLL
    for (int half = 0; half < 2; ++half) {
      if (half == 1) {  // the second value half replaces the first once every warp is done
        ctx.barrier();
        ctx.threads([&, key0](int tid) { stage_values_half(tid, key0 + mma_smem::vkeys); });
        ctx.barrier();
      }
      DIFFEVO_UNROLL
      for (int ks = 0; ks < mma_smem::vkeys / 8; ++ks) {
        ctx.threads([&, ks, half](int tid) {
          mma_state& my = st(tid);
          const int lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
          load_a_fragment(sm.w, warp * 16, half * mma_smem::vkeys + ks * 8, g, t, my.a_hi, my.a_lo);
          DIFFEVO_UNROLL
          for (int nt = 0; nt < C::ntiles; ++nt)
            load_b_fragment_split(sm.kv.v, ks, nt * 8, g, t, my.b_hi[nt], my.b_lo[nt]);
        });
        mma_3xtf32_row<true>(ctx, st);
      }
    }
    // The next tile's staging writes k', which shares its bytes with the value half that
    // W.V reads: every warp must be done with W.V first.
    ctx.barrier();
  }

  // ---- results: A from the fragments; B from the two row owners
  ctx.threads([&](int tid) {
    mma_state& my = st(tid);
    const int lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
    DIFFEVO_UNROLL
    for (int nt = 0; nt < C::ntiles; ++nt)
      DIFFEVO_UNROLL
      for (int i = 0; i < 4; ++i) {
        const std::int64_t row = row0 + warp * 16 + c_row(g, i);
        const int c = nt * 8 + c_col(t, i);
        if (row < nq && c < dvc) p.a[(batch * nq + row) * dv + col0 + c] = my.acc[nt][i];
      }
    sm.part[tid >> 1][tid & 1] = my.bpart;
  });
  ctx.barrier();
  ctx.threads([&](int tid) {
    mma_state& my = st(tid);
    const int r = tid >> 1, h = tid & 1;
    const std::int64_t row = row0 + r;
    if (h == 0 && col0 == 0 && row < nq) {
      p.b[batch * nq + row] = sm.part[r][0] + sm.part[r][1];
      p.m[batch * nq + row] =
          OnlineMax && my.mrun != neg_inf<float>() ? my.mrun * static_cast<float>(kLn2) : 0.0f;
    }
  });
  ctx.end();
}

}  // namespace detail
}  // namespace diffevo
