// Host (CPU) entry points: the pairwise sums behind the x0 estimate, the full x0
// estimate of SPEC.md section 3, the KDE density and the DDIM step (section 4).
//
// The pairwise sums run the SAME block body as the CUDA kernel's SIMT path
// (detail/simt_block.hpp) through a one-thread host execution context with host-sized
// tiles, spread over std::threads. For every batch r and query row i:
//   e_ij = logc_j - ||q_i - s k_j||^2 * inv2sigma2
//   M_i  = max_j e_ij            (online_max) or 0 (reference mode)
//   A_i  = sum_j exp(e_ij - M_i) v_j
//   B_i  = sum_j exp(e_ij - M_i)
// The true sums are exp(M_i) * (A_i, B_i).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <thread>
#include <vector>

#include "diffevo/detail/elementwise.hpp"
#include "diffevo/detail/exec_host.hpp"
#include "diffevo/detail/math.hpp"
#include "diffevo/detail/params.hpp"
#include "diffevo/detail/simt_block.hpp"
#include "diffevo/errors.hpp"
#include "diffevo/types.hpp"

namespace diffevo {

namespace detail {

inline int host_workers(int requested, double work) {
  if (requested > 0) return requested;
  if (work < 4e6) return 1;  // below a few ms of work, starting threads costs more
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace detail

// Batched pairwise sums on the host. Rows of batch r see only the keys of batch r.
// `threads`: std::threads to use (0: one per hardware thread for large problems).
template <class T>
void pairwise_sums_host(const T* q,     // [batch, nq, d]
                        const T* k,     // [batch, nk, d]
                        const T* v,     // [batch, nk, dv]
                        const T* logc,  // [batch, nk]
                        std::int64_t batch, std::int64_t nq, std::int64_t nk, std::int64_t d,
                        std::int64_t dv, double s, double inv2sigma2, bool online_max,
                        T* a,  // [batch, nq, dv]
                        T* b,  // [batch, nq]
                        T* m,  // [batch, nq]
                        int threads = 0) {
  using cfg = detail::simt_host_config;
  detail::check_pairwise_extents(batch, nq, nk, d, dv);
  const auto p = detail::make_params(q, k, v, logc, batch, nq, nk, d, dv, s, inv2sigma2, a, b, m);
  const detail::grid3 grid = detail::simt_grid<cfg>(batch, nq, dv);
  const double work = static_cast<double>(batch) * nq * nk * (d + dv + 8) *
                      static_cast<double>(grid.y);
  const int workers = detail::host_workers(threads, work);
  if (online_max)
    detail::run_grid_fast(grid, workers, [&p](detail::host_fast_ctx& ctx) {
      detail::simt_block<cfg, T, true>(ctx, p);
    });
  else
    detail::run_grid_fast(grid, workers, [&p](detail::host_fast_ctx& ctx) {
      detail::simt_block<cfg, T, false>(ctx, p);
    });
}

// Unbatched form (batch = 1).
template <class T>
void pairwise_sums_host(const T* q,     // [nq, d]
                        const T* k,     // [nk, d]
                        const T* v,     // [nk, dv]
                        const T* logc,  // [nk]
                        std::int64_t nq, std::int64_t nk, std::int64_t d, std::int64_t dv, T s,
                        T inv2sigma2, bool online_max,
                        T* a,  // [nq, dv]
                        T* b,  // [nq]
                        T* m)  // [nq]
{
  pairwise_sums_host<T>(q, k, v, logc, 1, nq, nk, d, dv, static_cast<double>(s),
                        static_cast<double>(inv2sigma2), online_max, a, b, m, 0);
}

// Normalised Gaussian kernel density of every member among the population:
// p_i = n K_i / sum_k K_k with K_i = sum_k exp(-||z_i - z_k||^2 / (2 h^2)).
template <class T>
void kde_density_host(const T* z,  // [n, d]
                      std::int64_t n, std::int64_t d, double bandwidth,
                      T* p,  // [n] out, mean 1
                      int threads = 0) {
  DIFFEVO_EXPECTS(n >= 0 && d >= 0, "kde_density: extents must be non-negative");
  DIFFEVO_EXPECTS(bandwidth > 0 && std::isfinite(bandwidth), "kde_density: bandwidth must be > 0");
  std::vector<T> zeros(static_cast<std::size_t>(n), T(0)), shift(static_cast<std::size_t>(n));
  pairwise_sums_host<T>(z, z, nullptr, zeros.data(), 1, n, n, d, 0, 1.0,
                        1.0 / (2.0 * bandwidth * bandwidth), false, nullptr, p, shift.data(), threads);
  T total = T(0);
  for (std::int64_t i = 0; i < n; ++i) {
    p[i] = detail::kde_unnormalised(p[i], shift[static_cast<std::size_t>(i)]);
    total += p[i];
  }
  for (std::int64_t i = 0; i < n; ++i) p[i] = detail::kde_normalised(p[i], static_cast<T>(n), total);
}

// The x0 estimate (SPEC.md section 3), as diffevo.x0_estimate computes it:
//   reference mode: x0_i = (A_i + eps S) / (B_i + eps Z + eps (p_i + eps)), c = g + eps,
//   exact mode:     x0_i = A_i / B_i in log space (eps = 0; all-zero fitness = uniform).
// Distances use `latent` (n x dl) when given, else x; the average is over x.
template <class T>
void x0_estimate_host(const T* x,  // [n, D] population
                      const T* g,  // [n] non-negative mapped fitness
                      std::int64_t n, std::int64_t D, double alpha,
                      T* x0,                      // [n, D] out
                      const T* latent = nullptr,  // [n, dl] or nullptr
                      std::int64_t dl = 0, density dens = density::uniform,
                      double bandwidth = 0.1, mode md = mode::reference, int threads = 0) {
  DIFFEVO_EXPECTS(n >= 1 && D >= 0 && dl >= 0, "x0_estimate: need n >= 1 and D, dl >= 0");
  DIFFEVO_EXPECTS(alpha > 0 && alpha < 1, "x0_estimate: alpha must lie in (0, 1)");
  DIFFEVO_EXPECTS(bandwidth > 0 && std::isfinite(bandwidth), "x0_estimate: bandwidth must be > 0");
  for (std::int64_t j = 0; j < n; ++j)
    DIFFEVO_EXPECTS(g[j] >= 0, "x0_estimate: fitness must be non-negative (and not NaN)");
  const T* z = latent ? latent : x;
  const std::int64_t dz = latent ? dl : D;
  const double s = std::sqrt(alpha), inv2sigma2 = 1.0 / (2.0 * (1.0 - alpha));
  const auto nn = static_cast<std::size_t>(n);
  std::vector<T> logc(nn), bsum(nn), shift(nn);
  if (md == mode::exact) {
    bool any = false;
    for (std::int64_t j = 0; j < n; ++j) any = any || g[j] > 0;
    for (std::int64_t j = 0; j < n; ++j) logc[static_cast<std::size_t>(j)] = detail::logc_exact(g[j], any);
    pairwise_sums_host<T>(z, z, x, logc.data(), 1, n, n, dz, D, s, inv2sigma2, true, x0, bsum.data(),
                          shift.data(), threads);
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t c = 0; c < D; ++c) x0[i * D + c] = detail::x0_exact(x0[i * D + c], bsum[static_cast<std::size_t>(i)]);
    return;
  }
  std::vector<T> cj(nn), p(nn), ssum(static_cast<std::size_t>(D), T(0));
  T zsum = T(0);
  for (std::int64_t j = 0; j < n; ++j) {
    cj[static_cast<std::size_t>(j)] = detail::coefficient_reference(g[j]);
    logc[static_cast<std::size_t>(j)] = detail::log_of(cj[static_cast<std::size_t>(j)]);
    zsum += cj[static_cast<std::size_t>(j)];
    for (std::int64_t c = 0; c < D; ++c) ssum[static_cast<std::size_t>(c)] += cj[static_cast<std::size_t>(j)] * x[j * D + c];
  }
  pairwise_sums_host<T>(z, z, x, logc.data(), 1, n, n, dz, D, s, inv2sigma2, false, x0, bsum.data(),
                        shift.data(), threads);
  if (dens == density::kde)
    kde_density_host<T>(z, n, dz, bandwidth, p.data(), threads);
  else
    std::fill(p.begin(), p.end(), static_cast<T>(1.0 / static_cast<double>(n)));
  for (std::int64_t i = 0; i < n; ++i) {
    const auto ii = static_cast<std::size_t>(i);
    const T denom = detail::x0_denominator(bsum[ii], shift[ii], zsum, p[ii]);
    for (std::int64_t c = 0; c < D; ++c)
      x0[i * D + c] = detail::x0_reference(x0[i * D + c], shift[ii], ssum[static_cast<std::size_t>(c)], denom);
  }
}

// One DDIM step (SPEC.md section 4), elementwise over `count` values:
//   sigma  = noise * sqrt((1 - ap)/(1 - at) * (1 - at/ap)),
//   x_prev = sqrt(ap) x0 + sqrt(1 - ap - sigma^2) (x_t - sqrt(at) x0)/sqrt(1 - at) + sigma z.
// `z` (standard normal draws) may be nullptr when sigma is 0.
template <class T>
void ddim_step_host(const T* x_t,  // [count]
                    const T* x0,   // [count]
                    const T* z,    // [count] or nullptr
                    std::int64_t count, double alpha_t, double alpha_prev, double noise,
                    T* x_prev)  // [count] out
{
  DIFFEVO_EXPECTS(count >= 0, "ddim_step: count must be non-negative");
  DIFFEVO_EXPECTS(alpha_t > 0 && alpha_t < 1, "ddim_step: alpha_t must lie in (0, 1)");
  DIFFEVO_EXPECTS(alpha_prev > 0 && alpha_prev <= 1, "ddim_step: alpha_prev must lie in (0, 1]");
  DIFFEVO_EXPECTS(noise >= 0, "ddim_step: noise must be >= 0");
  const detail::ddim_coefficients k = detail::make_ddim_coefficients(alpha_t, alpha_prev, noise);
  DIFFEVO_EXPECTS(k.sigma == 0 || z != nullptr, "ddim_step: z is needed when noise > 0");
  const T sat = static_cast<T>(k.sat), s1at = static_cast<T>(k.s1at), sap = static_cast<T>(k.sap);
  const T dir = static_cast<T>(k.dir), sg = static_cast<T>(k.sigma);
  const bool with_z = k.sigma > 0;
  for (std::int64_t i = 0; i < count; ++i)
    x_prev[i] = detail::ddim_element(x_t[i], x0[i], with_z ? z + i : nullptr, sat, s1at, sap, dir, sg);
}

}  // namespace diffevo
