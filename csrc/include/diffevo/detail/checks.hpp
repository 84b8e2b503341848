// The argument checks of the public entry points (host.hpp and cuda.cuh), one definition
// each. A failed check throws std::invalid_argument("file:line: fn: what") through
// DIFFEVO_EXPECTS and names the argument. The pointer and scalar checks serve the host
// and the CUDA entry points alike; the data checks (finite values, fitness >= 0) read
// the arrays, so only the host entry points run them (reading device arrays would need
// a kernel and a synchronisation inside an asynchronous call: the caller owns those
// values, and diffevo's Python layer checks them before every launch).
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "diffevo/detail/elementwise.hpp"
#include "diffevo/errors.hpp"
#include "diffevo/types.hpp"

namespace diffevo {
namespace detail {

// `name` may be null only when it covers no element.
inline void expect_data(const char* fn, const char* name, const void* ptr, std::int64_t count) {
  DIFFEVO_EXPECTS(count == 0 || ptr != nullptr, std::string(fn) + ": " + name + " is null but covers " +
                                                    std::to_string(count) + " elements");
}

inline void check_pairwise(const void* q, const void* k, const void* v, const void* logc, const void* a,
                           const void* b, const void* m, std::int64_t batch, std::int64_t nq, std::int64_t nk,
                           std::int64_t d, std::int64_t dv, double s, double inv2sigma2) {
  const char* fn = "pairwise_sums";
  DIFFEVO_EXPECTS(batch >= 0 && nq >= 0 && nk >= 0 && d >= 0 && dv >= 0,
                  "pairwise_sums: extents (batch, nq, nk, d, dv) must be non-negative");
  expect_data(fn, "q", q, batch * nq * d);
  expect_data(fn, "k", k, batch * nk * d);
  expect_data(fn, "v", v, batch * nk * dv);
  expect_data(fn, "logc", logc, batch * nk);
  expect_data(fn, "a", a, batch * nq * dv);
  expect_data(fn, "b", b, batch * nq);
  expect_data(fn, "m", m, batch * nq);
  DIFFEVO_EXPECTS(std::isfinite(s), "pairwise_sums: s must be finite");
  DIFFEVO_EXPECTS(std::isfinite(inv2sigma2) && inv2sigma2 >= 0, "pairwise_sums: inv2sigma2 must be finite and >= 0");
}

// The KDE bandwidth h: positive, and 1 / (2 h^2) finite (h = 1e-160 squares to 0).
inline void check_bandwidth(const char* fn, double bandwidth) {
  DIFFEVO_EXPECTS(std::isfinite(bandwidth) && bandwidth > 0,
                  std::string(fn) + ": bandwidth must be a positive finite number");
  DIFFEVO_EXPECTS(std::isfinite(1.0 / (2.0 * bandwidth * bandwidth)),
                  std::string(fn) + ": bandwidth is too small: 1 / (2 bandwidth^2) overflows");
}

inline void check_x0(const void* x, const void* g, const void* x0, const void* latent, std::int64_t n,
                     std::int64_t D, std::int64_t dl, double alpha, density dens, double bandwidth, mode md) {
  const char* fn = "x0_estimate";
  DIFFEVO_EXPECTS(n >= 1, "x0_estimate: n (the population size) must be >= 1");
  DIFFEVO_EXPECTS(D >= 1, "x0_estimate: D (the dimensions of x) must be >= 1");
  DIFFEVO_EXPECTS(latent ? dl >= 1 : dl == 0, "x0_estimate: dl must be >= 1 with a latent, 0 without one");
  expect_data(fn, "x", x, n * D);
  expect_data(fn, "g", g, n);
  expect_data(fn, "x0", x0, n * D);
  DIFFEVO_EXPECTS(std::isfinite(alpha) && alpha > 0 && alpha < 1, "x0_estimate: alpha must lie in (0, 1)");
  DIFFEVO_EXPECTS(dens == density::uniform || dens == density::kde, "x0_estimate: density must be uniform or kde");
  DIFFEVO_EXPECTS(md == mode::reference || md == mode::exact, "x0_estimate: mode must be reference or exact");
  if (dens == density::kde) check_bandwidth(fn, bandwidth);
}

inline void check_kde(const void* z, const void* p, std::int64_t n, std::int64_t d, double bandwidth) {
  DIFFEVO_EXPECTS(n >= 0, "kde_density: n must be non-negative");
  DIFFEVO_EXPECTS(d >= 1, "kde_density: d (the dimensions of z) must be >= 1");
  expect_data("kde_density", "z", z, n * d);
  expect_data("kde_density", "p", p, n);
  check_bandwidth("kde_density", bandwidth);
}

// The rules of diffevo.ddim_step (src/diffevo/_validation.py): alpha_t in (0, 1),
// alpha_prev in (0, 1], noise in [0, 1], and with noise a step toward the clean end
// (alpha_prev >= alpha_t; the other way sigma^2 would exceed the step's variance).
inline ddim_coefficients check_ddim(const void* x_t, const void* x0, const void* z, const void* x_prev,
                                    std::int64_t count, double alpha_t, double alpha_prev, double noise) {
  const char* fn = "ddim_step";
  DIFFEVO_EXPECTS(count >= 0, "ddim_step: count must be non-negative");
  expect_data(fn, "x_t", x_t, count);
  expect_data(fn, "x0", x0, count);
  expect_data(fn, "x_prev", x_prev, count);
  DIFFEVO_EXPECTS(std::isfinite(alpha_t) && alpha_t > 0 && alpha_t < 1, "ddim_step: alpha_t must lie in (0, 1)");
  DIFFEVO_EXPECTS(std::isfinite(alpha_prev) && alpha_prev > 0 && alpha_prev <= 1,
                  "ddim_step: alpha_prev must lie in (0, 1]");
  DIFFEVO_EXPECTS(std::isfinite(noise) && noise >= 0 && noise <= 1,
                  "ddim_step: noise must lie in [0, 1] (0: deterministic DDIM, 1: DDPM-like)");
  DIFFEVO_EXPECTS(noise == 0 || alpha_prev >= alpha_t, "ddim_step: alpha_prev must not be below alpha_t when noise > 0");
  const ddim_coefficients k = make_ddim_coefficients(alpha_t, alpha_prev, noise);
  DIFFEVO_EXPECTS(k.sigma == 0 || count == 0 || z != nullptr, "ddim_step: z is null but noise > 0 needs it");
  return k;
}

// ---- data checks (host arrays only) -------------------------------------------------

template <class T>
bool all_finite(const T* p, std::int64_t count) {
  for (std::int64_t i = 0; i < count; ++i)
    if (!std::isfinite(p[i])) return false;
  return true;
}

template <class T>
void expect_finite(const char* fn, const char* name, const T* p, std::int64_t count) {
  DIFFEVO_EXPECTS(all_finite(p, count), std::string(fn) + ": " + name + " contains NaN or inf");
}

template <class T>
void expect_fitness(const char* fn, const T* g, std::int64_t n) {
  for (std::int64_t j = 0; j < n; ++j)
    DIFFEVO_EXPECTS(std::isfinite(g[j]) && g[j] >= 0, std::string(fn) + ": g (the mapped fitness) must be finite and "
                                                                        "non-negative; g[" + std::to_string(j) +
                                                          "] is not");
}

}  // namespace detail
}  // namespace diffevo
