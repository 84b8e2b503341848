// The per-element math around the pairwise sums (SPEC.md sections 3 and 4), shared by
// the host entry points (host.hpp) and the CUDA kernels (cuda.cuh): the log of the
// per-key coefficient, the final division of the x0 estimate with the reference's
// 1e-9 floors, the KDE normalisation and the DDIM step.
#pragma once

#include <cmath>

#include "diffevo/detail/macros.hpp"
#include "diffevo/types.hpp"

namespace diffevo {
namespace detail {

DIFFEVO_HD DIFFEVO_INLINE float exp_of(float x) {
#if defined(__CUDA_ARCH__)
  return expf(x);
#else
  return std::exp(x);
#endif
}
DIFFEVO_HD DIFFEVO_INLINE double exp_of(double x) { return exp(x); }
DIFFEVO_HD DIFFEVO_INLINE float log_of(float x) {
#if defined(__CUDA_ARCH__)
  return logf(x);
#else
  return std::log(x);
#endif
}
DIFFEVO_HD DIFFEVO_INLINE double log_of(double x) { return log(x); }

// Reference mode: c_j = g_j + eps and its log.
template <class T>
DIFFEVO_HD DIFFEVO_INLINE T coefficient_reference(T g) {
  return g + static_cast<T>(eps);
}
// Exact mode: log g_j (-inf for zero fitness: no weight); all-zero fitness counts as uniform.
template <class T>
DIFFEVO_HD DIFFEVO_INLINE T logc_exact(T g, bool any_positive) {
  return any_positive ? log_of(g) : T(0);
}

// Reference-mode denominator of row i: B_i e^{M_i} + eps Z + eps (p_i + eps).
template <class T>
DIFFEVO_HD DIFFEVO_INLINE T x0_denominator(T b, T shift, T zsum, T p) {
  const T te = static_cast<T>(eps);
  return b * exp_of(shift) + te * zsum + te * (p + te);
}
// Reference-mode x0_ic = (A_ic e^{M_i} + eps S_c) / denominator_i.
template <class T>
DIFFEVO_HD DIFFEVO_INLINE T x0_reference(T a, T shift, T ssum, T denom) {
  return (a * exp_of(shift) + static_cast<T>(eps) * ssum) / denom;
}
// Exact mode: A_ic / B_i (the shifts cancel).
template <class T>
DIFFEVO_HD DIFFEVO_INLINE T x0_exact(T a, T b) {
  return a / b;
}

// KDE: K_i e^{M_i} (pass 1), then n K_i / sum_k K_k (pass 2).
template <class T>
DIFFEVO_HD DIFFEVO_INLINE T kde_unnormalised(T k, T shift) {
  return k * exp_of(shift);
}
template <class T>
DIFFEVO_HD DIFFEVO_INLINE T kde_normalised(T k, T n, T total) {
  return n * k / total;
}

// DDIM step coefficients (computed once, in double) and the per-element update.
struct ddim_coefficients {
  double sat, s1at, sap, dir, sigma;
};
DIFFEVO_HD DIFFEVO_INLINE ddim_coefficients make_ddim_coefficients(double alpha_t, double alpha_prev,
                                                                   double noise) {
  const double r = (1.0 - alpha_prev) / (1.0 - alpha_t) * (1.0 - alpha_t / alpha_prev);
  const double sigma = noise * sqrt(r > 0 ? r : 0.0);
  const double dir2 = 1.0 - alpha_prev - sigma * sigma;
  return ddim_coefficients{sqrt(alpha_t), sqrt(1.0 - alpha_t), sqrt(alpha_prev), sqrt(dir2 > 0 ? dir2 : 0.0),
                           sigma};
}
// x_prev = sqrt(ap) x0 + dir (x_t - sqrt(at) x0) / sqrt(1 - at) [+ sigma z]
template <class T>
DIFFEVO_HD DIFFEVO_INLINE T ddim_element(T x_t, T x0, const T* z, T sat, T s1at, T sap, T dir, T sigma) {
  const T eps_t = (x_t - sat * x0) / s1at;
  T out = sap * x0 + dir * eps_t;
  if (z) out = out + sigma * *z;
  return out;
}

}  // namespace detail
}  // namespace diffevo
