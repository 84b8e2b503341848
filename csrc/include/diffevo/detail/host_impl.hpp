// Definitions of the host API declared (and documented) in diffevo/host.hpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <thread>
#include <vector>

#include "diffevo/detail/checks.hpp"
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

template <class T>
void host_pairwise_sums(const pairwise_params<T>& p, bool online_max, int threads) {
  using cfg = simt_host_config;
  const grid3 grid = simt_grid<cfg>(p.batch, p.nq, p.dv);
  const double work = static_cast<double>(p.batch) * p.nq * p.nk * (p.d + p.dv + 8) * static_cast<double>(grid.y);
  const int workers = host_workers(threads, work);
  if (online_max)
    run_grid_fast(grid, workers, [&p](host_fast_ctx& ctx) { simt_block<cfg, T, true>(ctx, p); });
  else
    run_grid_fast(grid, workers, [&p](host_fast_ctx& ctx) { simt_block<cfg, T, false>(ctx, p); });
}

// p_i from the sums of the KDE kernel (B_i e^{M_i}), normalised to mean 1.
template <class T>
void host_kde(const T* z, std::int64_t n, std::int64_t d, double bandwidth, T* p, int threads) {
  const auto nn = static_cast<std::size_t>(n);
  std::vector<T> zeros(nn, T(0)), shift(nn);
  const auto prm = make_params<T>(z, z, nullptr, zeros.data(), 1, n, n, d, 0, 1.0,
                                  1.0 / (2.0 * bandwidth * bandwidth), nullptr, p, shift.data());
  host_pairwise_sums<T>(prm, false, threads);
  T total = T(0);
  for (std::size_t i = 0; i < nn; ++i) {
    p[i] = kde_unnormalised(p[i], shift[i]);
    total += p[i];
  }
  for (std::size_t i = 0; i < nn; ++i) p[i] = kde_normalised(p[i], static_cast<T>(n), total);
}

}  // namespace detail

namespace host {

template <class T>
void pairwise_sums(const T* q, const T* k, const T* v, const T* logc, std::int64_t batch, std::int64_t nq,
                   std::int64_t nk, std::int64_t d, std::int64_t dv, double s, double inv2sigma2, bool online_max,
                   T* a, T* b, T* m, int threads) {
  detail::check_pairwise(q, k, v, logc, a, b, m, batch, nq, nk, d, dv, s, inv2sigma2);
  detail::host_pairwise_sums<T>(detail::make_params(q, k, v, logc, batch, nq, nk, d, dv, s, inv2sigma2, a, b, m),
                                online_max, threads);
}

template <class T>
void kde_density(const T* z, std::int64_t n, std::int64_t d, double bandwidth, T* p, int threads) {
  detail::check_kde(z, p, n, d, bandwidth);
  detail::expect_finite("kde_density", "z", z, n * d);
  detail::host_kde<T>(z, n, d, bandwidth, p, threads);
}

template <class T>
void x0_estimate(const T* x, const T* g, std::int64_t n, std::int64_t D, double alpha, T* x0, const T* latent,
                 std::int64_t dl, density dens, double bandwidth, mode md, int threads) {
  detail::check_x0(x, g, x0, latent, n, D, dl, alpha, dens, bandwidth, md);
  detail::expect_finite("x0_estimate", "x", x, n * D);
  detail::expect_fitness("x0_estimate", g, n);
  if (latent) detail::expect_finite("x0_estimate", "latent", latent, n * dl);
  const T* z = latent ? latent : x;
  const std::int64_t dz = latent ? dl : D;
  const double s = std::sqrt(alpha), inv2sigma2 = 1.0 / (2.0 * (1.0 - alpha));
  const auto nn = static_cast<std::size_t>(n);
  std::vector<T> logc(nn), bsum(nn), shift(nn);
  const auto prm = detail::make_params<T>(z, z, x, logc.data(), 1, n, n, dz, D, s, inv2sigma2, x0, bsum.data(),
                                          shift.data());
  auto at = [D](std::int64_t i, std::int64_t c) { return static_cast<std::size_t>(i * D + c); };
  if (md == mode::exact) {
    const bool any = std::any_of(g, g + n, [](T gj) { return gj > 0; });
    for (std::size_t j = 0; j < nn; ++j) logc[j] = detail::logc_exact(g[j], any);
    detail::host_pairwise_sums<T>(prm, true, threads);
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t c = 0; c < D; ++c) x0[at(i, c)] = detail::x0_exact(x0[at(i, c)], bsum[static_cast<std::size_t>(i)]);
  } else {
    // scaled by cmax = max_j c_j (detail/elementwise.hpp): weights c_j / cmax <= 1
    std::vector<T> cj(nn), p(nn), ssum(static_cast<std::size_t>(D), T(0));
    for (std::size_t j = 0; j < nn; ++j) cj[j] = detail::coefficient_reference(g[j]);
    const T cmax_t = *std::max_element(cj.begin(), cj.end());
    const double cmax = static_cast<double>(cmax_t);
    const T logm = detail::log_of(cmax_t);
    T zsum = T(0);
    for (std::int64_t j = 0; j < n; ++j) {
      const auto jj = static_cast<std::size_t>(j);
      logc[jj] = detail::logc_scaled(cj[jj], logm);
      const T w = detail::weight_scaled(cj[jj], cmax);
      zsum += w;
      for (std::int64_t c = 0; c < D; ++c) ssum[static_cast<std::size_t>(c)] += w * x[at(j, c)];
    }
    detail::host_pairwise_sums<T>(prm, false, threads);
    if (dens == density::kde)
      detail::host_kde<T>(z, n, dz, bandwidth, p.data(), threads);
    else
      std::fill(p.begin(), p.end(), static_cast<T>(1.0 / static_cast<double>(n)));
    for (std::int64_t i = 0; i < n; ++i) {
      const auto ii = static_cast<std::size_t>(i);
      const T denom = detail::x0_denominator(bsum[ii], shift[ii], zsum, detail::density_floor(p[ii], cmax));
      for (std::int64_t c = 0; c < D; ++c)
        x0[at(i, c)] = detail::x0_reference(x0[at(i, c)], shift[ii], ssum[static_cast<std::size_t>(c)], denom);
    }
  }
  DIFFEVO_EXPECTS(detail::all_finite(x0, n * D),
                  "x0_estimate: the estimate is not finite: x is too large in magnitude for this dtype "
                  "(its squared distances or weighted sums overflow)");
}

template <class T>
void ddim_step(const T* x_t, const T* x0, const T* z, std::int64_t count, double alpha_t, double alpha_prev,
               double noise, T* x_prev) {
  const detail::ddim_coefficients k = detail::check_ddim(x_t, x0, z, x_prev, count, alpha_t, alpha_prev, noise);
  const bool with_z = k.sigma > 0;
  detail::expect_finite("ddim_step", "x_t", x_t, count);
  detail::expect_finite("ddim_step", "x0", x0, count);
  if (with_z) detail::expect_finite("ddim_step", "z", z, count);
  const T sat = static_cast<T>(k.sat), s1at = static_cast<T>(k.s1at), sap = static_cast<T>(k.sap);
  const T dir = static_cast<T>(k.dir), sg = static_cast<T>(k.sigma);
  for (std::int64_t i = 0; i < count; ++i)
    x_prev[i] = detail::ddim_element(x_t[i], x0[i], with_z ? z + i : nullptr, sat, s1at, sap, dir, sg);
  DIFFEVO_EXPECTS(detail::all_finite(x_prev, count),
                  "ddim_step: the step is not finite: x_t, x0 or z is too large in magnitude for this dtype");
}

}  // namespace host
}  // namespace diffevo
