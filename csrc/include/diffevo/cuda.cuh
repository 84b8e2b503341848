// CUDA entry points (compile with nvcc, link CUDA::cudart; CMake target diffevo::cuda).
//
// Every entry point takes raw device pointers (C-contiguous, batch-major) and a
// cudaStream_t; the *_async forms only enqueue work on the stream, the plain forms
// also wait for it. Errors: std::invalid_argument for bad arguments (DIFFEVO_EXPECTS),
// diffevo::cuda_error for a failed CUDA call (DIFFEVO_CUDA_TRY), both with file:line.
//
// The kernels' block bodies live in detail/simt_block.hpp and detail/mma_block.hpp as
// templates over an execution context; the kernels below run them with device_ctx,
// and diffevo/simulate.hpp runs the very same bodies on the host for the tests.
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>

#include "diffevo/detail/elementwise.hpp"
#include "diffevo/detail/exec_device.cuh"
#include "diffevo/detail/math.hpp"
#include "diffevo/detail/mma_block.hpp"
#include "diffevo/detail/params.hpp"
#include "diffevo/detail/simt_block.hpp"
#include "diffevo/errors.hpp"
#include "diffevo/types.hpp"

namespace diffevo {
namespace detail {

// ---- kernels ------------------------------------------------------------------------

template <class T, bool OnlineMax>
__global__ void __launch_bounds__(simt_device_config<T>::threads)
    pairwise_simt_kernel(pairwise_params<T> p) {
  device_ctx ctx;
  simt_block<simt_device_config<T>, T, OnlineMax>(ctx, p);
}

template <bool OnlineMax>
__global__ void __launch_bounds__(mma_config::threads) pairwise_mma_kernel(pairwise_params<float> p) {
  device_ctx ctx;
  mma_block<OnlineMax>(ctx, p);
}

template <class T>
__global__ void __launch_bounds__(kMeanThreads) key_mean_kernel(const T* k, std::int64_t nk, std::int64_t d,
                                                                 T* mu) {
  device_ctx ctx;
  key_mean_block<T>(ctx, k, nk, d, mu);
}

template <class T>
__global__ void __launch_bounds__(kNormThreads) norms_kernel(pairwise_params<T> p) {
  device_ctx ctx;
  norms_block<T>(ctx, p);
}

// Column sums out[c] += sum_i w_i x[i, c] (w = nullptr: weights 1) in double, by atomics.
// grid (ceil(cols / 32), ceil(n / 1024)), 128 threads.
template <class T>
__global__ void __launch_bounds__(128) weighted_colsum_kernel(const T* x, const T* w, std::int64_t n,
                                                              std::int64_t cols, double* out) {
  __shared__ double part[4][32];
  const int col = threadIdx.x & 31, grp = threadIdx.x >> 5;
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * 32 + col;
  const std::int64_t i0 = static_cast<std::int64_t>(blockIdx.y) * 1024;
  const std::int64_t i1 = i0 + 1024 < n ? i0 + 1024 : n;
  double acc = 0;
  if (c < cols)
    for (std::int64_t i = i0 + grp; i < i1; i += 4)
      acc += static_cast<double>(x[i * cols + c]) * (w ? static_cast<double>(w[i]) : 1.0);
  part[grp][col] = acc;
  __syncthreads();
  if (grp == 0 && c < cols) atomicAdd(out + c, part[0][col] + part[1][col] + part[2][col] + part[3][col]);
}

// reference: c = g + eps, logc = log(c); exact: logc = log(g) (-inf for 0), or 0 for
// every member when no fitness is positive (gsum = sum of g).
template <class T>
__global__ void logc_kernel(const T* g, std::int64_t n, bool exact, const double* gsum, T* c, T* logc) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  if (exact) {
    logc[i] = logc_exact(g[i], *gsum > 0);
  } else {
    const T ci = coefficient_reference(g[i]);
    c[i] = ci;
    logc[i] = log_of(ci);
  }
}

// p_i = n K_i exp(M_i) / sum_k K_k exp(M_k), with the sum precomputed in ktotal.
template <class T>
__global__ void kde_scale_kernel(T* k, const T* shift, std::int64_t n, int pass, double* ktotal) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  if (pass == 0)
    k[i] = kde_unnormalised(k[i], shift[i]);
  else
    k[i] = kde_normalised(k[i], static_cast<T>(n), static_cast<T>(*ktotal));
}

// x0 from the sums: exact A / B; reference (A e^M + eps S) / (B e^M + eps Z + eps (p + eps)).
template <class T>
__global__ void x0_combine_kernel(T* x0, const T* bsum, const T* shift, const T* p, const double* ssum,
                                  const double* zsum, std::int64_t n, std::int64_t D, bool exact) {
  const std::int64_t idx = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= n * D) return;
  const std::int64_t i = idx / D, c = idx - i * D;
  if (exact) {
    x0[idx] = x0_exact(x0[idx], bsum[i]);
    return;
  }
  const T denom = x0_denominator(bsum[i], shift[i], static_cast<T>(*zsum), p[i]);
  x0[idx] = x0_reference(x0[idx], shift[i], static_cast<T>(ssum[c]), denom);
}

template <class T>
__global__ void fill_kernel(T* x, std::int64_t n, T value) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) x[i] = value;
}

template <class T>
__global__ void ddim_step_kernel(const T* x_t, const T* x0, const T* z, std::int64_t count, T sat, T s1at,
                                 T sap, T dir, T sigma, T* x_prev) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  x_prev[i] = ddim_element(x_t[i], x0[i], z ? z + i : nullptr, sat, s1at, sap, dir, sigma);
}

inline unsigned blocks_for(std::int64_t n, int threads) {
  return static_cast<unsigned>((n + threads - 1) / threads);
}

constexpr std::int64_t kMaxGridYZ = 65535;

// Offsets a launch's pointers to batch `first` (grid z covers at most 65535 batches).
template <class T>
pairwise_params<T> batch_slice(pairwise_params<T> p, std::int64_t first, std::int64_t count) {
  p.q += first * p.nq * p.d;
  p.k += first * p.nk * p.d;
  p.v += first * p.nk * p.dv;
  p.logc += first * p.nk;
  p.a += first * p.nq * p.dv;
  p.b += first * p.nq;
  p.m += first * p.nq;
  if (p.mu) p.mu += first * p.d;
  if (p.qn) p.qn += first * p.nq;
  if (p.kn) p.kn += first * p.nk;
  p.batch = count;
  return p;
}

inline dim3 to_dim3(grid3 g) {
  return dim3(static_cast<unsigned>(g.x), static_cast<unsigned>(g.y), static_cast<unsigned>(g.z));
}

}  // namespace detail

namespace cuda {

// Which kernel computes the pairwise sums: the SIMT path (direct differences, any
// dtype) or the tensor-core path (float32, dot-product form on centred data).
enum class kernel_path { automatic, simt, mma };

// kernel_path::automatic takes the tensor cores for float32 from this many dimensions.
constexpr std::int64_t mma_min_dim = 32;

inline kernel_path choose_path(bool is_float32, std::int64_t d) {
  return is_float32 && d >= mma_min_dim ? kernel_path::mma : kernel_path::simt;
}

inline kernel_path parse_path(const std::string& name) {
  if (name == "auto") return kernel_path::automatic;
  if (name == "simt") return kernel_path::simt;
  if (name == "mma") return kernel_path::mma;
  DIFFEVO_EXPECTS(false, "path must be 'auto', 'simt' or 'mma'; got '" + name + "'");
  return kernel_path::automatic;
}

// Number of CUDA devices; 0 (never an error) without a device or a driver.
inline int device_count() noexcept {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

// Pairwise sums of the backend contract on device arrays (see diffevo/host.hpp for the
// math): for every batch r and query row i, with e_ij = logc_j - ||q_i - s k_j||^2 inv2sigma2,
// M_i = max_j e_ij (online_max) or 0, A_i = sum_j exp(e_ij - M_i) v_j, B_i = sum_j exp(e_ij - M_i).
// Enqueued on `stream`; the tensor-core path allocates a small workspace with
// cudaMallocAsync on that stream.
template <class T>
void pairwise_sums_async(const T* q,     // [batch, nq, d]
                         const T* k,     // [batch, nk, d]
                         const T* v,     // [batch, nk, dv]
                         const T* logc,  // [batch, nk]
                         std::int64_t batch, std::int64_t nq, std::int64_t nk, std::int64_t d,
                         std::int64_t dv, double s, double inv2sigma2, bool online_max,
                         T* a,  // [batch, nq, dv]
                         T* b,  // [batch, nq]
                         T* m,  // [batch, nq]
                         cudaStream_t stream = 0, kernel_path path = kernel_path::automatic) {
  static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value, "float or double");
  detail::check_pairwise_extents(batch, nq, nk, d, dv);
  constexpr bool is_f32 = std::is_same<T, float>::value;
  if (path == kernel_path::automatic) path = choose_path(is_f32, d);
  DIFFEVO_EXPECTS(is_f32 || path == kernel_path::simt, "pairwise_sums: the tensor-core path 'mma' is float32 only");
  if (batch == 0 || nq == 0) return;
  auto p = detail::make_params(q, k, v, logc, batch, nq, nk, d, dv, s, inv2sigma2, a, b, m);
  if (path == kernel_path::simt) {
    using cfg = detail::simt_device_config<T>;
    const auto grid = detail::simt_grid<cfg>(1, nq, dv);
    DIFFEVO_EXPECTS(grid.y <= detail::kMaxGridYZ && grid.x < (std::int64_t(1) << 31),
                    "pairwise_sums: too many rows or value columns for one launch");
    for (std::int64_t first = 0; first < batch; first += detail::kMaxGridYZ) {
      const std::int64_t count = batch - first < detail::kMaxGridYZ ? batch - first : detail::kMaxGridYZ;
      const auto sub = detail::batch_slice(p, first, count);
      const dim3 g = detail::to_dim3(detail::simt_grid<cfg>(count, nq, dv));
      if (online_max)
        detail::pairwise_simt_kernel<T, true><<<g, cfg::threads, 0, stream>>>(sub);
      else
        detail::pairwise_simt_kernel<T, false><<<g, cfg::threads, 0, stream>>>(sub);
      DIFFEVO_CUDA_TRY(cudaGetLastError());
    }
    return;
  }
  if constexpr (is_f32) {
    const auto grid = detail::mma_grid(1, nq, dv);
    DIFFEVO_EXPECTS(grid.y <= detail::kMaxGridYZ && grid.x < (std::int64_t(1) << 31),
                    "pairwise_sums: too many rows or value columns for one launch");
    const std::size_t floats = static_cast<std::size_t>(batch * (d + nq + nk));
    float* ws = nullptr;
    if (floats) DIFFEVO_CUDA_TRY(cudaMallocAsync(reinterpret_cast<void**>(&ws), floats * sizeof(float), stream));
    p.mu = ws;
    p.qn = ws + batch * d;
    p.kn = ws + batch * (d + nq);
    for (std::int64_t first = 0; first < batch; first += detail::kMaxGridYZ) {
      const std::int64_t count = batch - first < detail::kMaxGridYZ ? batch - first : detail::kMaxGridYZ;
      const auto sub = detail::batch_slice(p, first, count);
      if (d > 0) {
        detail::key_mean_kernel<float><<<detail::to_dim3(detail::mean_grid(count, d)), detail::kMeanThreads, 0,
                                         stream>>>(sub.k, nk, d, sub.mu);
        DIFFEVO_CUDA_TRY(cudaGetLastError());
      }
      if (nq + nk > 0) {
        detail::norms_kernel<float>
            <<<detail::to_dim3(detail::norms_grid(count, nq, nk)), detail::kNormThreads, 0, stream>>>(sub);
        DIFFEVO_CUDA_TRY(cudaGetLastError());
      }
      const dim3 g = detail::to_dim3(detail::mma_grid(count, nq, dv));
      if (online_max)
        detail::pairwise_mma_kernel<true><<<g, detail::mma_config::threads, 0, stream>>>(sub);
      else
        detail::pairwise_mma_kernel<false><<<g, detail::mma_config::threads, 0, stream>>>(sub);
      DIFFEVO_CUDA_TRY(cudaGetLastError());
    }
    if (ws) DIFFEVO_CUDA_TRY(cudaFreeAsync(ws, stream));
  }
}

// Blocking form: enqueue, then wait for the stream.
template <class T>
void pairwise_sums(const T* q, const T* k, const T* v, const T* logc, std::int64_t batch, std::int64_t nq,
                   std::int64_t nk, std::int64_t d, std::int64_t dv, double s, double inv2sigma2, bool online_max,
                   T* a, T* b, T* m, cudaStream_t stream = 0, kernel_path path = kernel_path::automatic) {
  pairwise_sums_async<T>(q, k, v, logc, batch, nq, nk, d, dv, s, inv2sigma2, online_max, a, b, m, stream, path);
  DIFFEVO_CUDA_TRY(cudaStreamSynchronize(stream));
}

namespace detail_ws {
// A stream-ordered scratch allocation freed on the same stream.
struct scratch {
  void* ptr = nullptr;
  cudaStream_t stream = 0;
  scratch(std::size_t bytes, cudaStream_t s) : stream(s) {
    if (bytes) DIFFEVO_CUDA_TRY(cudaMallocAsync(&ptr, bytes, s));
  }
  ~scratch() {
    if (ptr) (void)cudaFreeAsync(ptr, stream);
  }
  scratch(const scratch&) = delete;
  scratch& operator=(const scratch&) = delete;
};
inline std::size_t align_up(std::size_t n) { return (n + 255) / 256 * 256; }
}  // namespace detail_ws

// Normalised Gaussian KDE: p_i = n K_i / sum_k K_k, K_i = sum_k exp(-||z_i - z_k||^2 / (2 h^2)).
template <class T>
void kde_density_async(const T* z,  // [n, d]
                       std::int64_t n, std::int64_t d, double bandwidth,
                       T* p,  // [n] out
                       cudaStream_t stream = 0, kernel_path path = kernel_path::automatic) {
  DIFFEVO_EXPECTS(n >= 0 && d >= 0, "kde_density: extents must be non-negative");
  DIFFEVO_EXPECTS(bandwidth > 0 && std::isfinite(bandwidth), "kde_density: bandwidth must be > 0");
  if (n == 0) return;
  using namespace detail_ws;
  const std::size_t nb = align_up(sizeof(T) * static_cast<std::size_t>(n));
  scratch ws(2 * nb + sizeof(double), stream);
  auto* base = static_cast<unsigned char*>(ws.ptr);
  T* zeros = reinterpret_cast<T*>(base);
  T* shift = reinterpret_cast<T*>(base + nb);
  auto* total = reinterpret_cast<double*>(base + 2 * nb);
  const unsigned blocks = diffevo::detail::blocks_for(n, 256);
  diffevo::detail::fill_kernel<T><<<blocks, 256, 0, stream>>>(zeros, n, T(0));
  DIFFEVO_CUDA_TRY(cudaGetLastError());
  pairwise_sums_async<T>(z, z, zeros, zeros, 1, n, n, d, 0, 1.0, 1.0 / (2.0 * bandwidth * bandwidth), false,
                         zeros, p, shift, stream, path);
  diffevo::detail::kde_scale_kernel<T><<<blocks, 256, 0, stream>>>(p, shift, n, 0, total);
  DIFFEVO_CUDA_TRY(cudaMemsetAsync(total, 0, sizeof(double), stream));
  diffevo::detail::weighted_colsum_kernel<T>
      <<<dim3(1, diffevo::detail::blocks_for(n, 1024)), 128, 0, stream>>>(p, nullptr, n, 1, total);
  diffevo::detail::kde_scale_kernel<T><<<blocks, 256, 0, stream>>>(p, shift, n, 1, total);
  DIFFEVO_CUDA_TRY(cudaGetLastError());
}

// The x0 estimate (SPEC.md section 3) on device arrays, as diffevo::x0_estimate_host.
template <class T>
void x0_estimate_async(const T* x,  // [n, D]
                       const T* g,  // [n] non-negative mapped fitness
                       std::int64_t n, std::int64_t D, double alpha,
                       T* x0,                      // [n, D] out
                       const T* latent = nullptr,  // [n, dl] or nullptr
                       std::int64_t dl = 0, density dens = density::uniform, double bandwidth = 0.1,
                       mode md = mode::reference, cudaStream_t stream = 0,
                       kernel_path path = kernel_path::automatic) {
  DIFFEVO_EXPECTS(n >= 1 && D >= 0 && dl >= 0, "x0_estimate: need n >= 1 and D, dl >= 0");
  DIFFEVO_EXPECTS(alpha > 0 && alpha < 1, "x0_estimate: alpha must lie in (0, 1)");
  DIFFEVO_EXPECTS(bandwidth > 0 && std::isfinite(bandwidth), "x0_estimate: bandwidth must be > 0");
  using namespace detail_ws;
  const T* z = latent ? latent : x;
  const std::int64_t dz = latent ? dl : D;
  const double s = std::sqrt(alpha), inv2sigma2 = 1.0 / (2.0 * (1.0 - alpha));
  const bool exact = md == mode::exact;
  const std::size_t nb = align_up(sizeof(T) * static_cast<std::size_t>(n));
  const std::size_t db = align_up(sizeof(double) * static_cast<std::size_t>(D + 2));
  scratch ws(5 * nb + db, stream);
  auto* base = static_cast<unsigned char*>(ws.ptr);
  T* c = reinterpret_cast<T*>(base);
  T* logc = reinterpret_cast<T*>(base + nb);
  T* bsum = reinterpret_cast<T*>(base + 2 * nb);
  T* shift = reinterpret_cast<T*>(base + 3 * nb);
  T* p = reinterpret_cast<T*>(base + 4 * nb);
  auto* sums = reinterpret_cast<double*>(base + 5 * nb);  // [0, D): S; D: Z (or sum g); D+1: spare
  const unsigned blocks = diffevo::detail::blocks_for(n, 256);
  DIFFEVO_CUDA_TRY(cudaMemsetAsync(sums, 0, sizeof(double) * static_cast<std::size_t>(D + 2), stream));
  if (exact) {
    diffevo::detail::weighted_colsum_kernel<T>
        <<<dim3(1, diffevo::detail::blocks_for(n, 1024)), 128, 0, stream>>>(g, nullptr, n, 1, sums + D);
    diffevo::detail::logc_kernel<T><<<blocks, 256, 0, stream>>>(g, n, true, sums + D, c, logc);
    DIFFEVO_CUDA_TRY(cudaGetLastError());
    pairwise_sums_async<T>(z, z, x, logc, 1, n, n, dz, D, s, inv2sigma2, true, x0, bsum, shift, stream, path);
  } else {
    diffevo::detail::logc_kernel<T><<<blocks, 256, 0, stream>>>(g, n, false, nullptr, c, logc);
    DIFFEVO_CUDA_TRY(cudaGetLastError());
    pairwise_sums_async<T>(z, z, x, logc, 1, n, n, dz, D, s, inv2sigma2, false, x0, bsum, shift, stream, path);
    if (D > 0)
      diffevo::detail::weighted_colsum_kernel<T>
          <<<dim3(diffevo::detail::blocks_for(D, 32), diffevo::detail::blocks_for(n, 1024)), 128, 0, stream>>>(
              x, c, n, D, sums);
    diffevo::detail::weighted_colsum_kernel<T>
        <<<dim3(1, diffevo::detail::blocks_for(n, 1024)), 128, 0, stream>>>(c, nullptr, n, 1, sums + D);
    DIFFEVO_CUDA_TRY(cudaGetLastError());
    if (dens == density::kde)
      kde_density_async<T>(z, n, dz, bandwidth, p, stream, path);
    else
      diffevo::detail::fill_kernel<T><<<blocks, 256, 0, stream>>>(p, n, static_cast<T>(1.0 / static_cast<double>(n)));
  }
  if (D > 0) {
    diffevo::detail::x0_combine_kernel<T><<<diffevo::detail::blocks_for(n * D, 256), 256, 0, stream>>>(
        x0, bsum, shift, p, sums, sums + D, n, D, exact);
  }
  DIFFEVO_CUDA_TRY(cudaGetLastError());
}

// One DDIM step (SPEC.md section 4), elementwise over `count` values; z may be nullptr
// when the step's sigma is 0 (noise = 0).
template <class T>
void ddim_step_async(const T* x_t,  // [count]
                     const T* x0,   // [count]
                     const T* z,    // [count] standard normal draws, or nullptr
                     std::int64_t count, double alpha_t, double alpha_prev, double noise,
                     T* x_prev,  // [count] out
                     cudaStream_t stream = 0) {
  DIFFEVO_EXPECTS(count >= 0, "ddim_step: count must be non-negative");
  DIFFEVO_EXPECTS(alpha_t > 0 && alpha_t < 1, "ddim_step: alpha_t must lie in (0, 1)");
  DIFFEVO_EXPECTS(alpha_prev > 0 && alpha_prev <= 1, "ddim_step: alpha_prev must lie in (0, 1]");
  DIFFEVO_EXPECTS(noise >= 0, "ddim_step: noise must be >= 0");
  const auto k = diffevo::detail::make_ddim_coefficients(alpha_t, alpha_prev, noise);
  DIFFEVO_EXPECTS(k.sigma == 0 || z != nullptr, "ddim_step: z is needed when noise > 0");
  if (count == 0) return;
  diffevo::detail::ddim_step_kernel<T><<<diffevo::detail::blocks_for(count, 256), 256, 0, stream>>>(
      x_t, x0, k.sigma > 0 ? z : nullptr, count, static_cast<T>(k.sat), static_cast<T>(k.s1at),
      static_cast<T>(k.sap), static_cast<T>(k.dir), static_cast<T>(k.sigma), x_prev);
  DIFFEVO_CUDA_TRY(cudaGetLastError());
}

// Blocking forms.
template <class T>
void kde_density(const T* z, std::int64_t n, std::int64_t d, double bandwidth, T* p, cudaStream_t stream = 0,
                 kernel_path path = kernel_path::automatic) {
  kde_density_async<T>(z, n, d, bandwidth, p, stream, path);
  DIFFEVO_CUDA_TRY(cudaStreamSynchronize(stream));
}
template <class T>
void x0_estimate(const T* x, const T* g, std::int64_t n, std::int64_t D, double alpha, T* x0,
                 const T* latent = nullptr, std::int64_t dl = 0, density dens = density::uniform,
                 double bandwidth = 0.1, mode md = mode::reference, cudaStream_t stream = 0,
                 kernel_path path = kernel_path::automatic) {
  x0_estimate_async<T>(x, g, n, D, alpha, x0, latent, dl, dens, bandwidth, md, stream, path);
  DIFFEVO_CUDA_TRY(cudaStreamSynchronize(stream));
}
template <class T>
void ddim_step(const T* x_t, const T* x0, const T* z, std::int64_t count, double alpha_t, double alpha_prev,
               double noise, T* x_prev, cudaStream_t stream = 0) {
  ddim_step_async<T>(x_t, x0, z, count, alpha_t, alpha_prev, noise, x_prev, stream);
  DIFFEVO_CUDA_TRY(cudaStreamSynchronize(stream));
}

}  // namespace cuda
}  // namespace diffevo
