// The SIMT path of the pairwise sums: direct differences ||q_i - s k_j||^2 (no
// cancellation at alpha near 1), exp2 on the special-function unit, online softmax.
//
// One block = Threads threads x Rows query rows each (rows tid, tid + Threads, ...),
// one value-column chunk of width DVC (grid y), one batch (grid z). Per key tile of BN
// keys, for each chunk of DK dimensions:
//   phase "stage"  all threads copy s*k (transposed: [dim][key]) into shared memory; on
//                  the first chunk also the value chunk ([col][key]) and log2(c) (-inf
//                  past the end of the keys), and zero their squared distances.
//   barrier
//   phase "dist"   each thread adds the chunk's squared differences for its Rows x BN
//                  pairs; on the last chunk it turns them into exponents, updates its
//                  running maxima (online_max), takes 2^(e - M) and accumulates B and A.
//   barrier        (the next stage overwrites the tile)
// The same template runs on the GPU (device_ctx), simulated on the host (host_sim_ctx,
// the tests) and as the fast host path (host_fast_ctx, Threads = 1, bigger tiles).
#pragma once

#include <cstdint>

#include "diffevo/detail/macros.hpp"
#include "diffevo/detail/math.hpp"
#include "diffevo/detail/params.hpp"

namespace diffevo {
namespace detail {

template <int Threads, int Rows, int BN, int DK, int DVC>
struct simt_config {
  static constexpr int threads = Threads;  // threads per block
  static constexpr int rows = Rows;        // query rows per thread
  static constexpr int bm = Threads * Rows;  // query rows per block
  static constexpr int bn = BN;            // keys per tile
  static constexpr int dk = DK;            // dimensions per staged chunk
  static constexpr int dvc = DVC;          // value columns per block (grid y chunks)
};

// GPU tiles: 128 threads x 2 rows; float tiles of 32 keys, double of 16 (registers).
template <class T>
struct simt_device_config;
template <>
struct simt_device_config<float> : simt_config<128, 2, 32, 32, 8> {};
template <>
struct simt_device_config<double> : simt_config<128, 2, 16, 32, 8> {};

// The fast host path: one thread per block, 16 rows, 64-key tiles, 64 value columns.
using simt_host_config = simt_config<1, 16, 64, 64, 64>;

template <class Cfg, class T>
struct simt_smem {
  static constexpr int pad = 16 / sizeof(T);  // keeps rows 16-byte aligned (vector loads)
  T k[Cfg::dk][Cfg::bn + pad];   // s * k, [dim][key]
  T v[Cfg::dvc][Cfg::bn + pad];  // values, [col][key]
  T logc[Cfg::bn];               // log2(c_j), -inf past the last key
};

template <class Cfg, class T>
struct simt_state {
  T e[Cfg::rows][Cfg::bn];     // squared distances -> exponents -> weights
  T acc[Cfg::rows][Cfg::dvc];  // A, this block's column chunk
  T bsum[Cfg::rows];           // B
  T mrun[Cfg::rows];           // running maxima (base 2)
};

template <class Cfg>
DIFFEVO_HD DIFFEVO_INLINE grid3 simt_grid(std::int64_t batch, std::int64_t nq, std::int64_t dv) {
  const std::int64_t cols = dv > 0 ? dv : 1;
  return grid3{(nq + Cfg::bm - 1) / Cfg::bm, (cols + Cfg::dvc - 1) / Cfg::dvc, batch};
}

// ---- the per-tile math (__host__ __device__, one thread's share) -----------------

// d2[r][j] += (q_r[c] - sk[c][j])^2 over the chunk's dimensions c < dc.
template <class Cfg, class T, class SK>
DIFFEVO_HD DIFFEVO_INLINE void simt_add_distances(T (&d2)[Cfg::rows][Cfg::bn],
                                                  const T* const (&qrow)[Cfg::rows], const SK& sk,
                                                  int dc) {
  for (int c = 0; c < dc; ++c) {
    T qv[Cfg::rows];
    DIFFEVO_UNROLL
    for (int r = 0; r < Cfg::rows; ++r) qv[r] = qrow[r][c];
    // rows outer, keys inner: the same sums in the same order either way; this order
    // lets the host compiler vectorise over the contiguous keys (the GPU unrolls both)
    DIFFEVO_UNROLL
    for (int r = 0; r < Cfg::rows; ++r) {
      DIFFEVO_UNROLL
      for (int j = 0; j < Cfg::bn; ++j) {
        const T diff = qv[r] - sk[c][j];
        d2[r][j] += diff * diff;
      }
    }
  }
}

// Squared distances -> weights 2^(e - M) for one tile, with the online-softmax update
// of the running maximum (rescaling the sums so far), then B += w and A += w v.
template <class Cfg, class T, bool OnlineMax, class SM>
DIFFEVO_HD DIFFEVO_INLINE void simt_accumulate_tile(simt_state<Cfg, T>& st, const SM& sm, T inv2,
                                                    int dvc) {
  DIFFEVO_UNROLL
  for (int r = 0; r < Cfg::rows; ++r) {
    DIFFEVO_UNROLL
    for (int j = 0; j < Cfg::bn; ++j) st.e[r][j] = sm.logc[j] - st.e[r][j] * inv2;
    T shift = T(0);
    if (OnlineMax) {
      T tmax = st.e[r][0];
      DIFFEVO_UNROLL
      for (int j = 1; j < Cfg::bn; ++j) tmax = max_of(tmax, st.e[r][j]);
      const T mnew = max_of(st.mrun[r], tmax);
      shift = mnew == neg_inf<T>() ? T(0) : mnew;  // all weights zero so far: no shift
      const T scale = fast_exp2(st.mrun[r] - shift);  // 0 when mrun = -inf
      st.bsum[r] *= scale;
      DIFFEVO_UNROLL
      for (int c = 0; c < Cfg::dvc; ++c) st.acc[r][c] *= scale;
      st.mrun[r] = mnew;
    }
    T bs = T(0);
    DIFFEVO_UNROLL
    for (int j = 0; j < Cfg::bn; ++j) {
      st.e[r][j] = fast_exp2(st.e[r][j] - shift);
      bs += st.e[r][j];
    }
    st.bsum[r] += bs;
  }
  DIFFEVO_UNROLL
  for (int c = 0; c < Cfg::dvc; ++c) {
    if (c < dvc) {
      DIFFEVO_UNROLL
      for (int j = 0; j < Cfg::bn; ++j) {
        const T vj = sm.v[c][j];
        DIFFEVO_UNROLL
        for (int r = 0; r < Cfg::rows; ++r) st.acc[r][c] += st.e[r][j] * vj;
      }
    }
  }
}

// ---- the block body ---------------------------------------------------------------

template <class Cfg, class T, bool OnlineMax, class Ctx>
DIFFEVO_HD void simt_block(Ctx& ctx, const pairwise_params<T>& p) {
  using smem_t = simt_smem<Cfg, T>;
  using state_t = simt_state<Cfg, T>;
  const std::int64_t batch = ctx.block_z();
  const std::int64_t row0 = ctx.block_x() * Cfg::bm;
  const std::int64_t col0 = ctx.block_y() * Cfg::dvc;
  const std::int64_t nq = p.nq, nk = p.nk, d = p.d, dv = p.dv;
  const int dvc = static_cast<int>(dv - col0 < Cfg::dvc ? (dv - col0 > 0 ? dv - col0 : 0) : Cfg::dvc);
  const T* q = p.q + batch * nq * d;
  const T* k = p.k + batch * nk * d;
  const T* v = p.v + batch * nk * dv;
  const T* logc = p.logc + batch * nk;
  const T s = p.s, inv2 = p.inv2;
  const int nchunks = d > 0 ? static_cast<int>((d + Cfg::dk - 1) / Cfg::dk) : 1;

  smem_t& sm = ctx.template shared<smem_t>();
  typename Ctx::template local<state_t> st(ctx);

  ctx.threads([&](int tid) {
    state_t& my = st(tid);
    DIFFEVO_UNROLL
    for (int r = 0; r < Cfg::rows; ++r) {
      my.bsum[r] = T(0);
      my.mrun[r] = OnlineMax ? neg_inf<T>() : T(0);
      DIFFEVO_UNROLL
      for (int c = 0; c < Cfg::dvc; ++c) my.acc[r][c] = T(0);
    }
  });

  for (std::int64_t key0 = 0; key0 < nk; key0 += Cfg::bn) {
    for (int ci = 0; ci < nchunks; ++ci) {
      const std::int64_t c0 = static_cast<std::int64_t>(ci) * Cfg::dk;
      const int dc = static_cast<int>(d - c0 < Cfg::dk ? d - c0 : Cfg::dk);
      // stage: keys (and on the first chunk values, log2 c, zeroed distances)
      ctx.threads([&, key0, c0, dc, ci](int tid) {
        for (int j = tid; j < Cfg::bn; j += Cfg::threads) {
          const std::int64_t key = key0 + j;
          const bool valid = key < nk;
          const T* krow = k + key * d + c0;
          for (int c = 0; c < dc; ++c) sm.k[c][j] = valid ? s * krow[c] : T(0);
          if (ci == 0) {
            const T* vrow = v + key * dv + col0;
            for (int c = 0; c < dvc; ++c) sm.v[c][j] = valid ? vrow[c] : T(0);
            sm.logc[j] = valid ? static_cast<T>(logc[key] * T(kLog2e)) : neg_inf<T>();
          }
        }
        if (ci == 0) {
          state_t& my = st(tid);
          DIFFEVO_UNROLL
          for (int r = 0; r < Cfg::rows; ++r) {
            DIFFEVO_UNROLL
            for (int j = 0; j < Cfg::bn; ++j) my.e[r][j] = T(0);
          }
        }
      });
      ctx.barrier();
      // distances of this chunk; on the last chunk, weights and sums
      ctx.threads([&, c0, dc, ci](int tid) {
        state_t& my = st(tid);
        const T* qrow[Cfg::rows];
        DIFFEVO_UNROLL
        for (int r = 0; r < Cfg::rows; ++r) {
          std::int64_t row = row0 + r * Cfg::threads + tid;
          row = row < nq ? row : nq - 1;  // rows past the end compute a copy, never stored
          qrow[r] = q + row * d + c0;
        }
        simt_add_distances<Cfg, T>(my.e, qrow, sm.k, dc);
        if (ci == nchunks - 1) simt_accumulate_tile<Cfg, T, OnlineMax>(my, sm, inv2, dvc);
      });
      ctx.barrier();
    }
  }

  ctx.threads([&](int tid) {
    state_t& my = st(tid);
    DIFFEVO_UNROLL
    for (int r = 0; r < Cfg::rows; ++r) {
      const std::int64_t row = row0 + r * Cfg::threads + tid;
      if (row >= nq) continue;
      T* arow = p.a + (batch * nq + row) * dv + col0;
      DIFFEVO_UNROLL
      for (int c = 0; c < Cfg::dvc; ++c)
        if (c < dvc) arow[c] = my.acc[r][c];
      if (col0 == 0) {
        p.b[batch * nq + row] = my.bsum[r];
        T mout = T(0);
        if (OnlineMax && my.mrun[r] != neg_inf<T>()) mout = static_cast<T>(my.mrun[r] * T(kLn2));
        p.m[batch * nq + row] = mout;
      }
    }
  });
  ctx.end();
}

}  // namespace detail
}  // namespace diffevo
