// diffevo's host (CPU) API: the pairwise sums behind the x0 estimate, the x0 estimate of
// SPEC.md section 3, the KDE density and the DDIM step of section 4, on raw C-contiguous
// host arrays of float or double. Header-only; link Threads::Threads (std::thread).
//
// This header declares and documents; the definitions are in detail/host_impl.hpp.
// diffevo/cuda.cuh declares the same four functions in namespace diffevo::cuda for
// device arrays, with the same arguments plus a stream.
//
// Errors: every argument is checked. A bad one throws std::invalid_argument whose
// message is "file:line: function: what", naming the argument: null arrays that cover
// elements, extents (D = 0), alpha, bandwidth, noise, and on the host also the data
// (NaN or inf in x, z, x_t or x0; fitness that is negative, NaN or inf). A result that
// would not be finite (x so large that its sums overflow the dtype) throws too: no call
// returns NaN silently.
//
//   #include <diffevo/host.hpp>
//   std::vector<double> x0(n * D);
//   diffevo::host::x0_estimate<double>(x, g, n, D, /*alpha=*/0.5, x0.data());
#pragma once

#include <cstdint>

#include "diffevo/errors.hpp"
#include "diffevo/types.hpp"

namespace diffevo {
namespace host {

/// Batched pairwise sums (the backend contract of diffevo.backends). For every batch r
/// and query row i, over the keys j of the same batch:
///   e_ij = logc_j - ||q_i - s k_j||^2 * inv2sigma2
///   M_i  = max_j e_ij  (online_max)  or 0 (reference mode)
///   A_i  = sum_j exp(e_ij - M_i) v_j,   B_i = sum_j exp(e_ij - M_i)
/// so the true sums are exp(M_i) (A_i, B_i). Runs the CUDA kernel's SIMT block body
/// (detail/simt_block.hpp) with host-sized tiles over `threads` std::threads (0: one
/// per hardware thread once the work is worth it).
///
/// @param q     [batch, nq, d]  queries
/// @param k     [batch, nk, d]  keys
/// @param v     [batch, nk, dv] values (may be null when dv = 0)
/// @param logc  [batch, nk]     natural log of the per-key coefficient (-inf: no weight)
/// @param a     [batch, nq, dv] out: A (may be null when dv = 0)
/// @param b     [batch, nq]     out: B
/// @param m     [batch, nq]     out: M (natural log units)
template <class T>
void pairwise_sums(const T* q, const T* k, const T* v, const T* logc, std::int64_t batch, std::int64_t nq,
                   std::int64_t nk, std::int64_t d, std::int64_t dv, double s, double inv2sigma2, bool online_max,
                   T* a, T* b, T* m, int threads = 0);

/// Normalised Gaussian kernel density of every member among the population,
/// p_i = n K_i / sum_k K_k with K_i = sum_k exp(-||z_i - z_k||^2 / (2 h^2)).
///
/// @param z          [n, d] the members (d >= 1)
/// @param bandwidth  h > 0, with 1 / (2 h^2) finite
/// @param p          [n] out, mean 1
template <class T>
void kde_density(const T* z, std::int64_t n, std::int64_t d, double bandwidth, T* p, int threads = 0);

/// The x0 estimate (SPEC.md section 3), as diffevo.x0_estimate computes it:
///   reference mode: x0_i = (A_i + eps S) / (B_i + eps Z + eps (p_i + eps)), c = g + eps,
///                   evaluated scaled by max_j c_j (any finite fitness, no overflow);
///   exact mode:     x0_i = A_i / B_i in log space (eps = 0; all-zero fitness = uniform).
/// Distances use `latent` (n x dl) when given, else x; the average is over x.
///
/// @param x          [n, D] population (n >= 1, D >= 1, finite)
/// @param g          [n]    mapped fitness (finite, >= 0)
/// @param alpha      the step's alpha in (0, 1)
/// @param x0         [n, D] out
/// @param latent     [n, dl] or nullptr (then dl = 0)
/// @param dens       p_i: density::uniform (1/n) or density::kde (bandwidth)
/// @param md         mode::reference (the published floors) or mode::exact
template <class T>
void x0_estimate(const T* x, const T* g, std::int64_t n, std::int64_t D, double alpha, T* x0,
                 const T* latent = nullptr, std::int64_t dl = 0, density dens = density::uniform,
                 double bandwidth = 0.1, mode md = mode::reference, int threads = 0);

/// One DDIM step (SPEC.md section 4), elementwise over `count` values:
///   sigma  = noise * sqrt((1 - ap)/(1 - at) * (1 - at/ap)),
///   x_prev = sqrt(ap) x0 + sqrt(1 - ap - sigma^2) (x_t - sqrt(at) x0)/sqrt(1 - at) + sigma z.
/// The rules of diffevo.ddim_step: alpha_t in (0, 1), alpha_prev in (0, 1], noise in
/// [0, 1], and with noise alpha_prev >= alpha_t.
///
/// @param x_t, x0  [count] finite
/// @param z        [count] standard normal draws (finite), or nullptr when noise = 0
/// @param x_prev   [count] out (may alias x_t or x0)
template <class T>
void ddim_step(const T* x_t, const T* x0, const T* z, std::int64_t count, double alpha_t, double alpha_prev,
               double noise, T* x_prev);

}  // namespace host
}  // namespace diffevo

#include "diffevo/detail/host_impl.hpp"
