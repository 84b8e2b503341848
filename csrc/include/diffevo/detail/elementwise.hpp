// The per-element math around the pairwise sums (SPEC.md sections 3 and 4): the C++
// side's ONE definition of the x0 estimate's epilogue, shared by the host entry points
// (detail/host_impl.hpp) and the CUDA kernels (detail/cuda_kernels.cuh): the per-key
// coefficient and its log, the final division with the reference's 1e-9 floors, the
// KDE normalisation and the DDIM step. (Python's own definition is diffevo/core.py,
// which every Python backend uses; docs/DESIGN.md, "C++ side", says which calls which.)
#pragma once

#include <cmath>

#include "diffevo/detail/macros.hpp"
#include "diffevo/types.hpp"

namespace diffevo {
namespace detail {

// exp and log in T's own precision, on the host and the device alike
DIFFEVO_HD DIFFEVO_INLINE float exp_of(float x) { return expf(x); }
DIFFEVO_HD DIFFEVO_INLINE double exp_of(double x) { return exp(x); }
DIFFEVO_HD DIFFEVO_INLINE float log_of(float x) { return logf(x); }
DIFFEVO_HD DIFFEVO_INLINE double log_of(double x) { return log(x); }

// Reference mode: c_j = g_j + eps.
template <class T>
DIFFEVO_HD DIFFEVO_INLINE T coefficient_reference(T g) {
  return g + static_cast<T>(eps);
}
// Exact mode: log g_j (-inf for zero fitness: no weight); all-zero fitness counts as uniform.
template <class T>
DIFFEVO_HD DIFFEVO_INLINE T logc_exact(T g, bool any_positive) {
  return any_positive ? log_of(g) : T(0);
}

// Reference mode, scaled by the population's largest coefficient cmax = e^m so that no
// finite fitness overflows a sum (all c_j / cmax <= 1, and the denominator keeps eps Z'
// >= eps): the kernels get log(c_j) - m, the column sums the weights c_j / cmax, and
//   x0_i = (A'_i e^{M_i} + eps S') / (B'_i e^{M_i} + eps Z' + eps (p_i + eps) e^{-m}),
// equal to SPEC section 3's (A_i + eps S) / (B_i + eps Z + eps (p_i + eps)) in exact
// arithmetic (numerator and denominator both divided by e^m).
template <class T>
DIFFEVO_HD DIFFEVO_INLINE T logc_scaled(T c, T m) {
  return log_of(c) - m;
}
template <class T>
DIFFEVO_HD DIFFEVO_INLINE T weight_scaled(T c, double cmax) {
  return static_cast<T>(static_cast<double>(c) / cmax);
}
// eps (p_i + eps) e^{-m}, in double (for float32 e^{-m} may be subnormal; the term is
// then negligible beside eps Z' >= eps, but it decides the estimate when every c is eps).
template <class T>
DIFFEVO_HD DIFFEVO_INLINE T density_floor(T p, double cmax) {
  return static_cast<T>(eps * (static_cast<double>(p) + eps) / cmax);
}

// Reference-mode denominator of row i: B'_i e^{M_i} + eps Z' + density_floor(p_i).
template <class T>
DIFFEVO_HD DIFFEVO_INLINE T x0_denominator(T b, T shift, T zsum, T floor) {
  return b * exp_of(shift) + static_cast<T>(eps) * zsum + floor;
}
// Reference-mode x0_ic = (A'_ic e^{M_i} + eps S'_c) / denominator_i.
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
