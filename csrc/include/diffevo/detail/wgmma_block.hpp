// The warpgroup path of the pairwise sums (sm_90a, float32): wgmma tensor cores for the
// distances (D >= 32) and for W.V, a cp.async double-buffered pipeline, and each weight
// tile applied to up to 256 value columns at once -- wide values (D = 1024) cost 4
// weight passes instead of 16, and the latent case (distances in d <= 8 dimensions,
// values of any width) computes its cheap weights directly and spends its time in the
// W.V GEMM at tensor-core speed.
//
// Math (SPEC section 3, base 2, as detail/mma_block.hpp):
//   e_ij = kn_j + qn_i + 2 s inv2 (q'_i . k'_j),  q' = q - s mu, k' = k - mu
//   latent:  e_ij = log2 c_j - inv2 ||q_i - s k_j||^2    (direct differences, float32)
//   A_i = sum_j 2^(e_ij - M_i) (v_j - vmu) + vmu B_i     (vmu = mean of the values)
// Accuracy-preserving splits, prepared once per call by the prologue bodies below:
//  * q', k' rows scaled by a power of two (max |x| in [2^13, 2^14): exact, undone by
//    fq_i fk_j) and split into IEEE half hi + lo: 22 significant bits, as 3xTF32, at the
//    16-bit tensor rate (twice TF32's); products hi*hi + hi*lo + lo*hi, f32 accumulate.
//  * values centred on their column means, each column scaled by a power of two into
//    [2^13, 2^14) and split into half hi + lo the same way; the weights are taken
//    relative to the running row maximum in BOTH modes (so they lie in [0, 1]), scaled
//    by 2^15 and split likewise. bfloat16 would keep float32's range without scaling
//    but holds only 16 bits in hi + lo, an error of 2^-18 max|v - mean| per x0 element
//    (over 1e-5 std(v) for values 3-4 std from their mean); halves with exact scales
//    hold 22 bits (2^-23 relative; a weight below 2^-29 of the row maximum keeps an
//    absolute error under 2^-40) at the same tensor rate. Reference mode (no running
//    maximum in the contract) multiplies A and B by 2^M at the end.
//
// Block: one warpgroup (128 threads), 64 query rows, key tiles of 64, dimensions in
// chunks of 64 (4 k-steps of 16), DVC value columns (grid y). Pipeline items are
// (key tile, dimension chunk) pairs; item i + 1's q' and k' chunk planes are copied by
// cp.async into the other stage while item i computes, and tile t + 1's values and key
// terms while tile t's weights and W.V are computed:
//   wait (cp.async 0) + fence.proxy.async | barrier |
//   prefetch item i + 1, commit; S += Q'K'^T (12 wgmma m64n64k16 f16), wait
//   on a tile's last chunk:
//     prefetch tile t + 1's values and key terms, commit; exponents, row maxima | barrier |
//     2^(e - M), B, the split of 2^15 W into shared memory, rescale A | barrier |
//     A += W V (12 wgmma m64nDVCk16 f16), wait
// The next item's first barrier orders every reuse: a stage is refilled only after all
// threads have waited for the wgmma that read it (one item earlier).
#pragma once

#include <cmath>
#include <cstdint>

#include "diffevo/detail/macros.hpp"
#include "diffevo/detail/math.hpp"
#include "diffevo/detail/params.hpp"
#include "diffevo/detail/wgmma.hpp"

namespace diffevo {
namespace detail {

constexpr int kLatentMaxD = 8;  // the latent form stages keys as float32 coordinates

// Latent dimensions as compiled (zero-padded): 2 or 8; 0 is the distance form.
inline int wg_latent_dims(std::int64_t d) { return d <= 2 ? 2 : (d <= kLatentMaxD ? kLatentMaxD : 0); }

template <bool Latent, int DVC>
struct wg_config {
  static constexpr int threads = 128;
  static constexpr int bm = 64;      // query rows per block (wgmma M)
  static constexpr int bn = 64;      // keys per tile (N of S, K of W.V)
  static constexpr int dk = 64;      // dimensions per chunk (4 k-steps)
  static constexpr int dvc = DVC;    // value columns per block (N of W.V)
  static constexpr int tile = 64 * 64;        // 16-bit elements of a q'/k' chunk plane
  static constexpr int vtile = DVC * 64;      // of a value tile plane
  static constexpr bool latent = Latent;
  static_assert(DVC == 64 || DVC == 256, "the wgmma shapes built");
};

// The prologue's output: the split planes, tile by tile in the canonical K-major layout
// (detail/wgmma.hpp), so that a stage is one contiguous copy.
struct wg_work {
  std::uint16_t* qs;  // [batch][qtiles][chunks][hi, lo][64 x 64]  rows x dims
  std::uint16_t* ks;  // [batch][ktiles][chunks][hi, lo][64 x 64]  keys x dims
  std::uint16_t* vs;  // [batch][ktiles][vchunks][hi, lo][DVC x 64] columns x keys
  float* fq;          // [batch][nq] 2^-scale of row i
  float* fk;          // [batch][nk]
  float* vmu;         // [batch][dv] mean of the value columns
  float* vsc;         // [batch][dv] power-of-two scale of the centred value columns
};

// The weights' fixed scale in W.V (W in [0, 1]: 2^15 W stays below 65504).
constexpr float kWeightScale = 32768.0f;

struct wg_shape {
  std::int64_t qtiles, ktiles, chunks, vchunks;
};

template <class Cfg>
DIFFEVO_HD DIFFEVO_INLINE wg_shape wg_shape_of(const pairwise_params<float>& p) {
  const std::int64_t cols = p.dv > 0 ? p.dv : 1;
  return wg_shape{(p.nq + 63) / 64, (p.nk + 63) / 64, p.d > 0 ? (p.d + Cfg::dk - 1) / Cfg::dk : 1,
                  (cols + Cfg::dvc - 1) / Cfg::dvc};
}

template <class Cfg>
DIFFEVO_HD DIFFEVO_INLINE grid3 wg_grid(const pairwise_params<float>& p) {
  const wg_shape sh = wg_shape_of<Cfg>(p);
  return grid3{sh.qtiles, sh.vchunks, p.batch};
}

template <bool Latent, int DVC>
struct wg_smem {
  using C = wg_config<Latent, DVC>;
  alignas(128) std::uint16_t v[2][2][C::vtile];              // [stage][hi, lo] value tile
  alignas(128) std::uint16_t w[2][C::tile];                  // [hi, lo] weights (rows x keys)
  alignas(128) std::uint16_t qk[Latent ? 1 : 2][2][2][C::tile];  // [stage][q', k'][hi, lo]
  float kl[Latent ? 2 : 1][64][Latent ? kLatentMaxD : 1];   // [stage] latent: r s k_j
  float bias[2][64];  // [stage] kn_j (latent: log2 c_j); -inf past the last key
  float fk[Latent ? 1 : 2][64];  // [stage] key scales
  float part[64][4];  // per (row, quad lane): partial maxima, at the end partial B
};

template <int LD, int DVC>
struct wg_state {
  float s[32];              // S = Q'K'^T (then exponents): m64n64 fragment
  float acc[DVC / 2];       // 2^15 A: m64nDVC fragment
  float q[2][LD > 0 ? LD : 1];  // latent: this thread's two query rows, times r = sqrt(inv2)
  float cq[2], rowt[2];     // distance form: 2 s inv2 fq_i and qn_i of the two rows
  float bsum[2], mrun[2];   // 2^15 B and the running maximum (base 2), per row (g, g + 8)
  std::uint64_t desc[8];    // wg_desc: stage 0 of every operand
  async_state as;
};

// log2 of kWeightScale: added to the exponent, so 2^15 w costs no multiply
constexpr float kWeightScaleLog2 = 15.0f;

// ---- prologue bodies ------------------------------------------------------------------

// The power of two 2^(14 - E) that puts amax = m 2^E (m in [0.5, 1)) into [2^13, 2^14):
// an exact scaling; 1 for (near) zero.
DIFFEVO_HD DIFFEVO_INLINE float wg_pow2_scale(float amax) {
  const int e = static_cast<int>((float_bits(amax) >> 23) & 0xffu) - 126;
  return amax >= 1e-30f ? bits_float(static_cast<std::uint32_t>(127 + 14 - e) << 23) : 1.0f;
}


// q' (Which = 0) or k' (Which = 1) rows, scaled and split. grid (tiles, 1, batch), 64
// threads used of 128: one row each.
template <int Which, class Cfg, class Ctx>
DIFFEVO_HD void wg_prep_rows_block(Ctx& ctx, const pairwise_params<float>& p, const wg_work& w) {
  const std::int64_t batch = ctx.block_z(), tile = ctx.block_x();
  const wg_shape sh = wg_shape_of<Cfg>(p);
  const std::int64_t n = Which == 0 ? p.nq : p.nk, tiles = Which == 0 ? sh.qtiles : sh.ktiles, d = p.d;
  const float* x = (Which == 0 ? p.q : p.k) + batch * n * d;
  const float* mu = p.mu + batch * d;
  const float smu = Which == 0 ? p.s : 1.0f;
  std::uint16_t* out = (Which == 0 ? w.qs : w.ks) + (batch * tiles + tile) * sh.chunks * 2 * Cfg::tile;
  float* f = (Which == 0 ? w.fq : w.fk) + batch * n;
  ctx.threads([&](int tid) {
    if (tid >= 64) return;
    const std::int64_t row = tile * 64 + tid;
    const bool ok = row < n;
    const float* xr = x + (ok ? row : 0) * d;
    float amax = 0.0f;
    for (std::int64_t c = 0; ok && c < d; ++c) amax = max_of(amax, std::fabs(xr[c] - smu * mu[c]));
    const float scale = wg_pow2_scale(amax);
    if (ok) f[row] = 1.0f / scale;  // exact: a power of two
    for (std::int64_t c = 0; c < sh.chunks * Cfg::dk; ++c) {
      const float xv = ok && c < d ? (xr[c] - smu * mu[c]) * scale : 0.0f;
      std::uint16_t* plane = out + (c / Cfg::dk) * 2 * Cfg::tile;
      const int at = kmajor_index<64>(tid, static_cast<int>(c % Cfg::dk));
      split16<wg_kind::f16>(xv, plane[at], plane[Cfg::tile + at]);
    }
  });
  ctx.end();
}

// vsc_c = wg_pow2_scale(max_j |v_jc - vmu_c|). grid (ceil(dv / 128), 1, batch), a column per thread.
template <class Ctx>
DIFFEVO_HD void wg_value_scale_block(Ctx& ctx, const pairwise_params<float>& p, const wg_work& w) {
  const std::int64_t batch = ctx.block_z(), c0 = ctx.block_x() * 128;
  ctx.threads([&](int tid) {
    const std::int64_t c = c0 + tid;
    if (c >= p.dv) return;
    const float* v = p.v + batch * p.nk * p.dv + c;
    const float mu = w.vmu[batch * p.dv + c];
    float amax = 0.0f;
    for (std::int64_t j = 0; j < p.nk; ++j) amax = max_of(amax, std::fabs(v[j * p.dv] - mu));
    w.vsc[batch * p.dv + c] = wg_pow2_scale(amax);
  });
  ctx.end();
}

// Centred, scaled values, split. grid (ktiles, vchunks, batch).
template <class Cfg, class Ctx>
DIFFEVO_HD void wg_prep_values_block(Ctx& ctx, const pairwise_params<float>& p, const wg_work& w) {
  const std::int64_t batch = ctx.block_z(), tile = ctx.block_x(), vc = ctx.block_y();
  const wg_shape sh = wg_shape_of<Cfg>(p);
  const float* v = p.v + batch * p.nk * p.dv;
  const float* vmu = w.vmu + batch * p.dv;
  const float* vsc = w.vsc + batch * p.dv;
  std::uint16_t* out = w.vs + ((batch * sh.ktiles + tile) * sh.vchunks + vc) * 2 * Cfg::vtile;
  ctx.threads([&](int tid) {
    for (int idx = tid; idx < Cfg::vtile; idx += Cfg::threads) {
      const int key = idx / Cfg::dvc, col = idx % Cfg::dvc;
      const std::int64_t j = tile * 64 + key, c = vc * Cfg::dvc + col;
      const float x = j < p.nk && c < p.dv ? (v[j * p.dv + c] - vmu[c]) * vsc[c] : 0.0f;
      const int at = kmajor_index<Cfg::dvc>(col, key);
      split16<wg_kind::f16>(x, out[at], out[Cfg::vtile + at]);
    }
  });
  ctx.end();
}

// ---- the block body ---------------------------------------------------------------------

// The three products of a split pair (small terms first), one 16-wide k-step.
// Descriptors are built once per block (wg_desc below); moving one along by a byte
// offset adds offset / 16 to its address field (the tiles never cross 256 KB).
template <int N, wg_kind K>
DIFFEVO_HD DIFFEVO_INLINE void wg_mma_split(async_state& as, int tid, float (&acc)[N / 2], std::uint64_t a_hi,
                                            std::uint64_t a_lo, std::uint64_t b_hi, std::uint64_t b_lo,
                                            std::uint32_t a_off, std::uint32_t b_off) {
  const std::uint64_t da = a_off >> 4, db = b_off >> 4;
  wg_mma<N, K>(as, tid, acc, a_lo + da, b_hi + db);
  wg_mma<N, K>(as, tid, acc, a_hi + da, b_lo + db);
  wg_mma<N, K>(as, tid, acc, a_hi + da, b_hi + db);
}

// The block's base descriptors, in wg_state::desc.
enum wg_desc : int { kDescQHi, kDescQLo, kDescKHi, kDescKLo, kDescWHi, kDescWLo, kDescVHi, kDescVLo, kDescCount };

// LD: latent dimensions as compiled (wg_latent_dims), 0 for the distance form.
template <int LD, int DVC, bool OnlineMax, class Ctx>
DIFFEVO_HD void wgmma_block(Ctx& ctx, const pairwise_params<float>& p, const wg_work& w) {
  constexpr bool Latent = LD > 0;
  using C = wg_config<Latent, DVC>;
  using smem_t = wg_smem<Latent, DVC>;
  using state_t = wg_state<LD, DVC>;
  const std::int64_t batch = ctx.block_z(), qtile = ctx.block_x(), vc = ctx.block_y();
  const std::int64_t row0 = qtile * C::bm, col0 = vc * C::dvc;
  const std::int64_t nq = p.nq, nk = p.nk, d = p.d, dv = p.dv;
  const wg_shape sh = wg_shape_of<C>(p);
  const int dvc = static_cast<int>(dv - col0 < C::dvc ? (dv - col0 > 0 ? dv - col0 : 0) : C::dvc);
  const bool values = dv > 0;
  const std::int64_t items = sh.ktiles * sh.chunks;
  const float* kbase = p.k + batch * nk * d;
  const float* logc = p.logc + batch * nk;
  const float* kn = Latent ? nullptr : p.kn + batch * nk;
  const float* fk = Latent ? nullptr : w.fk + batch * nk;
  const float coef = 2.0f * p.s * p.inv2;
  // latent: both sides times r = sqrt(inv2), so e = log2 c - sum (r q - r s k)^2 (as simt_small_block)
  const float r = static_cast<float>(std::sqrt(static_cast<double>(p.inv2)));
  const float rs = static_cast<float>(std::sqrt(static_cast<double>(p.inv2)) * static_cast<double>(p.s));

  smem_t& sm = ctx.template shared<smem_t>();
  typename Ctx::template local<state_t> st(ctx);

  // Issue item it's copies (q' and k' chunk planes) into its stage.
  auto prefetch_item = [&](int tid, std::int64_t it) {
    state_t& my = st(tid);
    const std::int64_t t = it / sh.chunks, c = it % sh.chunks;
    const int stage = static_cast<int>(it & 1);
    if (!Latent) {
      const bool load_q = sh.chunks > 1 || it < 2;  // one chunk: q' stays in both stages
      const std::uint16_t* qsrc = w.qs + ((batch * sh.qtiles + qtile) * sh.chunks + c) * 2 * C::tile;
      const std::uint16_t* ksrc = w.ks + ((batch * sh.ktiles + t) * sh.chunks + c) * 2 * C::tile;
      // 16 bytes = 8 halves per copy; thread tid copies 16-byte pieces tid, tid + 128, ...
      // (one base address each, the rest immediate offsets)
      const std::uint16_t* qs = qsrc + 8 * tid;
      const std::uint16_t* ks = ksrc + 8 * tid;
      DIFFEVO_UNROLL
      for (int n = 0; n < 2 * C::tile / 8 / C::threads; ++n) {
        if (load_q) cp_async16(my.as, &sm.qk[stage][0][0][8 * (tid + n * C::threads)], qs + 8 * n * C::threads);
        cp_async16(my.as, &sm.qk[stage][1][0][8 * (tid + n * C::threads)], ks + 8 * n * C::threads);
      }
    }
    cp_commit(my.as);
  };
  // Tile t's value tile (cp.async) and key terms (plain stores) into its tile stage.
  auto prefetch_tile = [&](int tid, std::int64_t t) {
    state_t& my = st(tid);
    const int ts = static_cast<int>(t & 1);
    {
      if (values) {
        const std::uint16_t* vsrc = w.vs + ((batch * sh.ktiles + t) * sh.vchunks + vc) * 2 * C::vtile;
        const std::uint16_t* vs = vsrc + 8 * tid;
        DIFFEVO_UNROLL
        for (int n = 0; n < 2 * C::vtile / 8 / C::threads; ++n)
          cp_async16(my.as, &sm.v[ts][0][8 * (tid + n * C::threads)], vs + 8 * n * C::threads);
      }
      if (tid < 64) {
        const std::int64_t key = t * 64 + tid;
        const bool ok = key < nk;
        if (Latent) {
          sm.bias[ts][tid] = ok ? static_cast<float>(logc[key] * static_cast<float>(kLog2e)) : neg_inf<float>();
          DIFFEVO_UNROLL
          for (int cc = 0; cc < (LD > 0 ? LD : 1); ++cc) sm.kl[ts][tid][cc] = ok && cc < d ? rs * kbase[key * d + cc] : 0.0f;
        } else {
          sm.bias[ts][tid] = ok ? kn[key] : neg_inf<float>();
          sm.fk[Latent ? 0 : ts][tid] = ok ? fk[key] : 0.0f;
        }
      }
    }
    cp_commit(my.as);
  };

  ctx.threads([&](int tid) {
    state_t& my = st(tid);
    my.as.reset(&sm);
    constexpr std::uint32_t sbo = 128, l64 = kmajor_layout<64>::lbo, lv = kmajor_layout<DVC>::lbo;
    my.desc[kDescQHi] = wg_descriptor(my.as.smem_addr(sm.qk[0][0][0]), l64, sbo);
    my.desc[kDescQLo] = wg_descriptor(my.as.smem_addr(sm.qk[0][0][1]), l64, sbo);
    my.desc[kDescKHi] = wg_descriptor(my.as.smem_addr(sm.qk[0][Latent ? 0 : 1][0]), l64, sbo);
    my.desc[kDescKLo] = wg_descriptor(my.as.smem_addr(sm.qk[0][Latent ? 0 : 1][1]), l64, sbo);
    my.desc[kDescWHi] = wg_descriptor(my.as.smem_addr(sm.w[0]), l64, sbo);
    my.desc[kDescWLo] = wg_descriptor(my.as.smem_addr(sm.w[1]), l64, sbo);
    my.desc[kDescVHi] = wg_descriptor(my.as.smem_addr(sm.v[0][0]), lv, sbo);
    my.desc[kDescVLo] = wg_descriptor(my.as.smem_addr(sm.v[0][1]), lv, sbo);
    DIFFEVO_UNROLL
    for (int i = 0; i < DVC / 2; ++i) my.acc[i] = 0.0f;
    DIFFEVO_UNROLL
    for (int h = 0; h < 2; ++h) {
      my.bsum[h] = 0.0f;
      my.mrun[h] = neg_inf<float>();  // both modes keep the running maximum (see the file comment)
      const std::int64_t row = row0 + wg_row(tid, 2 * h);
      const std::int64_t rr = row < nq ? row : nq - 1;  // rows past the end: a copy, never stored
      DIFFEVO_UNROLL
      for (int cc = 0; cc < (LD > 0 ? LD : 1); ++cc) my.q[h][cc] = Latent && cc < d ? r * p.q[(batch * nq + rr) * d + cc] : 0.0f;
      my.cq[h] = Latent ? 0.0f : coef * w.fq[batch * nq + rr];
      my.rowt[h] = Latent ? 0.0f : p.qn[batch * nq + rr];
    }
    prefetch_item(tid, 0);
    prefetch_tile(tid, 0);
  });

  for (std::int64_t it = 0; it < items; ++it) {
    const std::int64_t t = it / sh.chunks, c = it % sh.chunks;
    const int stage = static_cast<int>(it & 1), ts = static_cast<int>(t & 1);
    ctx.threads([&](int tid) {
      cp_wait<0>(st(tid).as);
      fence_async_smem();
    });
    ctx.barrier();
    ctx.threads([&, it, c, stage](int tid) {
      state_t& my = st(tid);
      if (it + 1 < items) prefetch_item(tid, it + 1);
      if (Latent) return;
      if (c == 0) {
        DIFFEVO_UNROLL
        for (int i = 0; i < 32; ++i) my.s[i] = 0.0f;
      }
      wg_fence();
      constexpr std::uint32_t step = kmajor_layout<64>::kstep_bytes;
      const std::uint32_t at = static_cast<std::uint32_t>(stage * sizeof(sm.qk[0]));
      DIFFEVO_UNROLL
      for (int ks = 0; ks < C::dk / 16; ++ks)
        wg_mma_split<64, wg_kind::f16>(my.as, tid, my.s, my.desc[kDescQHi], my.desc[kDescQLo], my.desc[kDescKHi],
                                       my.desc[kDescKLo], at + ks * step, at + ks * step);
      wg_commit(my.as);
      wg_wait<0>(my.as, tid);
    });
    if (c != sh.chunks - 1) continue;
    // ---- the tile's exponents e' = e - qn_i (the row term joins the shift), row maxima;
    // the next tile's values and key terms start to load (their stage was last read by the
    // previous tile, whose W.V every thread has waited for before this item's barrier)
    ctx.threads([&, t, ts](int tid) {
      state_t& my = st(tid);
      if (t + 1 < sh.ktiles) prefetch_tile(tid, t + 1);
      float tmax[2] = {neg_inf<float>(), neg_inf<float>()};
      DIFFEVO_UNROLL
      for (int i = 0; i < 32; ++i) {
        const int j = wg_col(tid, i), h = (i >> 1) & 1;
        float e;
        if (Latent) {
          e = sm.bias[ts][j];
          DIFFEVO_UNROLL
          for (int cc = 0; cc < (LD > 0 ? LD : 1); ++cc) {
            const float diff = my.q[h][cc] - sm.kl[ts][j][cc];
            e = fmaf(-diff, diff, e);
          }
        } else {
          e = fmaf(my.s[i], my.cq[h] * sm.fk[Latent ? 0 : ts][j], sm.bias[ts][j]);
        }
        my.s[i] = e;
        tmax[h] = fmax_of(tmax[h], e);
      }
      DIFFEVO_UNROLL
      for (int h = 0; h < 2; ++h) sm.part[wg_row(tid, 2 * h)][tid & 3] = tmax[h] + my.rowt[h];
    });
    ctx.barrier();
    // ---- 2^15 weights (the scale in the exponent), B, the split of W, the rescale of A
    ctx.threads([&](int tid) {
      state_t& my = st(tid);
      float add[2], scale[2];
      DIFFEVO_UNROLL
      for (int h = 0; h < 2; ++h) {
        const float* pr = sm.part[wg_row(tid, 2 * h)];
        const float mnew = fmax_of(my.mrun[h], fmax_of(fmax_of(pr[0], pr[1]), fmax_of(pr[2], pr[3])));
        const float shift = mnew == neg_inf<float>() ? 0.0f : mnew;
        scale[h] = fast_exp2(my.mrun[h] - shift);  // 0 when mrun = -inf
        add[h] = my.rowt[h] - shift + kWeightScaleLog2;
        my.bsum[h] *= scale[h];
        my.mrun[h] = mnew;
      }
      DIFFEVO_UNROLL
      for (int i = 0; i < 32; i += 2) {  // elements i, i + 1: one row, neighbouring keys
        const int h = (i >> 1) & 1;
        const float w0 = fast_exp2(my.s[i] + add[h]), w1 = fast_exp2(my.s[i + 1] + add[h]);
        my.bsum[h] += w0 + w1;
        std::uint32_t hi, lo;
        split_f16_pair(w0, w1, hi, lo);
        const int at = kmajor_index<64>(wg_row(tid, i), wg_col(tid, i));  // even: 4-byte aligned
        store_word(&sm.w[0][at], hi);
        store_word(&sm.w[1][at], lo);
      }
      // the maximum rarely moves once the near keys are seen: skip multiplying by 1
      if (scale[0] != 1.0f || scale[1] != 1.0f) {
        DIFFEVO_UNROLL
        for (int i = 0; i < DVC / 2; ++i) my.acc[i] *= scale[(i >> 1) & 1];
      }
      fence_async_smem();
    });
    ctx.barrier();
    if (!values) continue;
    // ---- A += W V
    ctx.threads([&, ts](int tid) {
      state_t& my = st(tid);
      wg_fence();
      constexpr std::uint32_t wstep = kmajor_layout<64>::kstep_bytes, vstep = kmajor_layout<DVC>::kstep_bytes;
      const std::uint32_t at = static_cast<std::uint32_t>(ts * sizeof(sm.v[0]));
      DIFFEVO_UNROLL
      for (int ks = 0; ks < C::bn / 16; ++ks)
        wg_mma_split<DVC, wg_kind::f16>(my.as, tid, my.acc, my.desc[kDescWHi], my.desc[kDescWLo], my.desc[kDescVHi],
                                         my.desc[kDescVLo], ks * wstep, at + ks * vstep);
      wg_commit(my.as);
      wg_wait<0>(my.as, tid);
    });
  }

  // ---- results: B from the quad's partials; A = sum w (v - vmu) / (2^15 vsc) + vmu B;
  // reference mode: both times 2^M (0 when no key carries weight)
  ctx.threads([&](int tid) {
    state_t& my = st(tid);
    DIFFEVO_UNROLL
    for (int h = 0; h < 2; ++h) sm.part[wg_row(tid, 2 * h)][tid & 3] = my.bsum[h];
  });
  ctx.barrier();
  ctx.threads([&](int tid) {
    state_t& my = st(tid);
    const float* vmu = w.vmu + batch * dv + col0;
    const float* vsc = w.vsc + batch * dv + col0;
    float out_scale[2];
    DIFFEVO_UNROLL
    for (int h = 0; h < 2; ++h)
      out_scale[h] = OnlineMax ? 1.0f : (my.mrun[h] == neg_inf<float>() ? 0.0f : fast_exp2(my.mrun[h]));
    DIFFEVO_UNROLL
    for (int i = 0; i < DVC / 2; ++i) {
      const int r = wg_row(tid, i), cidx = wg_col(tid, i);
      const std::int64_t row = row0 + r;
      if (row >= nq || cidx >= dvc) continue;
      const float* pr = sm.part[r];
      const float b = ((pr[0] + pr[1]) + (pr[2] + pr[3])) * (1.0f / kWeightScale);
      const float a = my.acc[i] * (1.0f / (kWeightScale * vsc[cidx])) + vmu[cidx] * b;
      p.a[(batch * nq + row) * dv + col0 + cidx] = a * out_scale[(i >> 1) & 1];
    }
    if ((tid & 3) != 0 || col0 != 0) return;
    DIFFEVO_UNROLL
    for (int h = 0; h < 2; ++h) {
      const int r = wg_row(tid, 2 * h);
      const std::int64_t row = row0 + r;
      if (row >= nq) continue;
      const float* pr = sm.part[r];
      p.b[batch * nq + row] = ((pr[0] + pr[1]) + (pr[2] + pr[3])) * (1.0f / kWeightScale) * out_scale[h];
      p.m[batch * nq + row] = OnlineMax && my.mrun[h] != neg_inf<float>() ? my.mrun[h] * static_cast<float>(kLn2) : 0.0f;
    }
  });
  ctx.end();
}

}  // namespace detail
}  // namespace diffevo
