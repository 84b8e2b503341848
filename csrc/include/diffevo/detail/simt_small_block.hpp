// The SIMT path for a few dimensions (D <= 4, values of D or 0 columns), reference mode
// (no running maximum): the pair loop cut to its irreducible instructions.
//
//   e_ij = log2 c_j - sum_c (r q_ic - r s k_jc)^2,  r = sqrt(inv2)   (direct differences)
//   B_i += 2^e_ij,  A_ic += 2^e_ij v_jc
//
// Pre-scaling both sides by r = sqrt(inv2) folds the multiplication by inv2 into the
// squares: per pair and dimension one FADD (the difference) and one FFMA (e -= diff^2,
// the first one starting from log2 c_j), then one MUFU.EX2, one FADD (B) and one FFMA
// per value column -- at D = 2 with two value columns 8 instructions, where the general
// SIMT body (detail/simt_block.hpp) issues 13. The rest is amortised: each thread keeps
// Rows query rows (their scaled coordinates and sums) in registers and reads every key
// once per Rows pairs, as one 16-byte shared load per 4 floats of the key's record
// [r s k_j (D), log2 c_j, v_j (DV)], all lanes of a warp reading the same key (a
// broadcast); the key loop is uniform across the block, unrolled by 4.
// Accuracy: r q and r s k are rounded once each (2^-24 relative), which is the same
// order as the general body's staging of s k; the differences stay direct (no
// cancellation at alpha near 1).
//
// Block: 128 threads x Rows rows (rows tid, tid + 128, ...), key tiles of 128 (one key
// staged per thread), one batch per grid z. Per tile: stage | barrier | pairs | barrier.
#pragma once

#include <cmath>
#include <cstdint>

#include "diffevo/detail/macros.hpp"
#include "diffevo/detail/math.hpp"
#include "diffevo/detail/params.hpp"

namespace diffevo {
namespace detail {

template <int D, int DV, int Rows>
struct simt_small_config {
  static constexpr int threads = 128;
  static constexpr int rows = Rows;
  static constexpr int bm = 128 * Rows;
  static constexpr int bn = 128;
  static constexpr int d = D;
  static constexpr int dv = DV;
  static constexpr int record = (D + 1 + DV + 3) / 4 * 4;  // floats per staged key, 16-byte aligned
  static_assert(D >= 1 && D <= 4 && (DV == 0 || DV == D), "few dimensions; values are the points or none");
};

template <class Cfg>
DIFFEVO_HD DIFFEVO_INLINE grid3 simt_small_grid(std::int64_t batch, std::int64_t nq) {
  return grid3{(nq + Cfg::bm - 1) / Cfg::bm, 1, batch};
}

template <class Cfg>
struct simt_small_smem {
  alignas(16) float key[Cfg::bn][Cfg::record];
};

template <class Cfg>
struct simt_small_state {
  float q[Cfg::rows][Cfg::d];                      // r q_i
  float acc[Cfg::rows][Cfg::dv > 0 ? Cfg::dv : 1];  // A
  float bsum[Cfg::rows];                           // B
};

// One key against the thread's rows: the 2 + DV + 2 D instructions per pair.
template <class Cfg>
DIFFEVO_HD DIFFEVO_INLINE void simt_small_pairs(simt_small_state<Cfg>& my, const float* rec) {
  float kv[Cfg::record];
  DIFFEVO_UNROLL
  for (int x = 0; x < Cfg::record; ++x) kv[x] = rec[x];  // vector loads on the device
  DIFFEVO_UNROLL
  for (int r = 0; r < Cfg::rows; ++r) {
    float e = kv[Cfg::d];  // log2 c_j
    DIFFEVO_UNROLL
    for (int c = 0; c < Cfg::d; ++c) {
      const float diff = my.q[r][c] - kv[c];
      e = fmaf(-diff, diff, e);
    }
    const float w = fast_exp2(e);
    my.bsum[r] += w;
    DIFFEVO_UNROLL
    for (int c = 0; c < Cfg::dv; ++c) my.acc[r][c] = fmaf(w, kv[Cfg::d + 1 + c], my.acc[r][c]);
  }
}

template <class Cfg, class Ctx>
DIFFEVO_HD void simt_small_block(Ctx& ctx, const pairwise_params<float>& p) {
  using smem_t = simt_small_smem<Cfg>;
  using state_t = simt_small_state<Cfg>;
  const std::int64_t batch = ctx.block_z(), row0 = ctx.block_x() * Cfg::bm;
  const std::int64_t nq = p.nq, nk = p.nk;
  const float* q = p.q + batch * nq * Cfg::d;
  const float* k = p.k + batch * nk * Cfg::d;
  const float* v = p.v + batch * nk * Cfg::dv;
  const float* logc = p.logc + batch * nk;
  // r = sqrt(inv2) in double: one rounding of r and of r s
  const float r = static_cast<float>(std::sqrt(static_cast<double>(p.inv2)));
  const float rs = static_cast<float>(std::sqrt(static_cast<double>(p.inv2)) * static_cast<double>(p.s));

  smem_t& sm = ctx.template shared<smem_t>();
  typename Ctx::template local<state_t> st(ctx);

  ctx.threads([&](int tid) {
    state_t& my = st(tid);
    DIFFEVO_UNROLL
    for (int i = 0; i < Cfg::rows; ++i) {
      std::int64_t row = row0 + i * Cfg::threads + tid;
      row = row < nq ? row : nq - 1;  // rows past the end compute a copy, never stored
      DIFFEVO_UNROLL
      for (int c = 0; c < Cfg::d; ++c) my.q[i][c] = r * q[row * Cfg::d + c];
      DIFFEVO_UNROLL
      for (int c = 0; c < (Cfg::dv > 0 ? Cfg::dv : 1); ++c) my.acc[i][c] = 0.0f;
      my.bsum[i] = 0.0f;
    }
  });

  for (std::int64_t key0 = 0; key0 < nk; key0 += Cfg::bn) {
    ctx.threads([&, key0](int tid) {  // one key per thread: its record
      const std::int64_t j = key0 + tid;
      const bool ok = j < nk;
      float* rec = sm.key[tid];
      DIFFEVO_UNROLL
      for (int c = 0; c < Cfg::d; ++c) rec[c] = ok ? rs * k[j * Cfg::d + c] : 0.0f;
      rec[Cfg::d] = ok ? static_cast<float>(logc[j] * static_cast<float>(kLog2e)) : neg_inf<float>();
      DIFFEVO_UNROLL
      for (int c = 0; c < Cfg::dv; ++c) rec[Cfg::d + 1 + c] = ok ? v[j * Cfg::dv + c] : 0.0f;
      DIFFEVO_UNROLL
      for (int x = Cfg::d + 1 + Cfg::dv; x < Cfg::record; ++x) rec[x] = 0.0f;
    });
    ctx.barrier();
    ctx.threads([&](int tid) {
      state_t& my = st(tid);
#if defined(__CUDA_ARCH__)
#pragma unroll 4
#endif
      for (int j = 0; j < Cfg::bn; ++j) simt_small_pairs<Cfg>(my, sm.key[j]);
    });
    ctx.barrier();  // the next staging overwrites the tile
  }

  ctx.threads([&](int tid) {
    state_t& my = st(tid);
    DIFFEVO_UNROLL
    for (int i = 0; i < Cfg::rows; ++i) {
      const std::int64_t row = row0 + i * Cfg::threads + tid;
      if (row >= nq) continue;
      DIFFEVO_UNROLL
      for (int c = 0; c < Cfg::dv; ++c) p.a[(batch * nq + row) * Cfg::dv + c] = my.acc[i][c];
      p.b[batch * nq + row] = my.bsum[i];
      p.m[batch * nq + row] = 0.0f;
    }
  });
  ctx.end();
}

}  // namespace detail
}  // namespace diffevo

namespace diffevo {
namespace detail {

// Which calls take the small-D body: float32, reference mode, 1 <= d <= 4, values the
// points themselves (dv == d) or none (the KDE).
inline bool takes_simt_small(bool is_float32, bool online_max, std::int64_t d, std::int64_t dv) {
  return is_float32 && !online_max && d >= 1 && d <= 4 && (dv == 0 || dv == d);
}

// Rows per thread: 32 amortises the key loads best, but a block then covers 4096 rows;
// below ~2^19 rows that leaves SMs idle (the general SIMT body, 256 rows a block, runs
// there; the host simulation also tests 8 rows, 1024 a block).
constexpr std::int64_t kSmallRowsWide = std::int64_t(1) << 19;

// Rows per thread for D dimensions, at most Rows: 32 rows of (D coordinates, D sums, B)
// exceed 255 registers from D = 3, which take 16.
template <int D, int Rows>
constexpr int simt_small_rows() {
  return D <= 2 || Rows <= 16 ? Rows : 16;
}

template <int D, int Rows, class Launcher>
void launch_simt_small_d(Launcher& L, const pairwise_params<float>& p) {
  using with_values = simt_small_config<D, D, simt_small_rows<D, Rows>()>;
  using no_values = simt_small_config<D, 0, simt_small_rows<D, Rows>()>;
  if (p.dv == 0)
    L.template simt_small<no_values>(simt_small_grid<no_values>(p.batch, p.nq), p);
  else
    L.template simt_small<with_values>(simt_small_grid<with_values>(p.batch, p.nq), p);
}

// The launch of a call that takes_simt_small with Rows rows per thread (the CUDA module
// builds 32 and takes this body from kSmallRowsWide rows; the host simulation tests 8
// too); L.template simt_small<Cfg>(grid, p) runs one grid of simt_small_block<Cfg>.
template <int Rows, class Launcher>
void launch_simt_small(Launcher& L, const pairwise_params<float>& p) {
  switch (p.d) {
    case 1: launch_simt_small_d<1, Rows>(L, p); break;
    case 2: launch_simt_small_d<2, Rows>(L, p); break;
    case 3: launch_simt_small_d<3, Rows>(L, p); break;
    default: launch_simt_small_d<4, Rows>(L, p); break;
  }
}

}  // namespace detail
}  // namespace diffevo
