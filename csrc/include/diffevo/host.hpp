// Host (CPU) implementation of the pairwise sums behind the x0 estimate.
//
// For every query row i (SPEC.md section 3, written in log space):
//   e_ij = logc_j - ||q_i - s k_j||^2 * inv2sigma2
//   M_i  = max_j e_ij            (online_max) or 0 (reference mode)
//   A_i  = sum_j exp(e_ij - M_i) v_j
//   B_i  = sum_j exp(e_ij - M_i)
// The true sums are exp(M_i) * (A_i, B_i); the Python layer combines them with
// the eps floors (reference mode) or divides them (exact mode).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "diffevo/errors.hpp"

namespace diffevo {

template <class T>
void pairwise_sums_host(const T* q,     // [nq, d]
                        const T* k,     // [nk, d]
                        const T* v,     // [nk, dv]
                        const T* logc,  // [nk]
                        std::int64_t nq, std::int64_t nk, std::int64_t d, std::int64_t dv,
                        T s, T inv2sigma2, bool online_max,
                        T* a,  // [nq, dv]
                        T* b,  // [nq]
                        T* m)  // [nq]
{
  DIFFEVO_EXPECTS(nq >= 0 && nk >= 0 && d >= 0 && dv >= 0, "negative extent");
  const T neg_inf = -std::numeric_limits<T>::infinity();
  for (std::int64_t i = 0; i < nq; ++i) {
    const T* qi = q + i * d;
    auto exponent = [&](std::int64_t j) {
      const T* kj = k + j * d;
      T d2 = 0;
      for (std::int64_t c = 0; c < d; ++c) {
        const T diff = qi[c] - s * kj[c];
        d2 += diff * diff;
      }
      return logc[j] - d2 * inv2sigma2;
    };
    T mi = 0;
    if (online_max) {
      mi = neg_inf;
      for (std::int64_t j = 0; j < nk; ++j) mi = std::max(mi, exponent(j));
      if (!(mi > neg_inf)) mi = 0;  // every weight is zero: keep the sums at 0
    }
    T* ai = a + i * dv;
    std::fill(ai, ai + dv, T(0));
    T bi = 0;
    for (std::int64_t j = 0; j < nk; ++j) {
      const T w = std::exp(exponent(j) - mi);
      bi += w;
      const T* vj = v + j * dv;
      for (std::int64_t c = 0; c < dv; ++c) ai[c] += w * vj[c];
    }
    b[i] = bi;
    m[i] = mi;
  }
}

}  // namespace diffevo
