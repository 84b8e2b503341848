// The CUDA kernels behind diffevo/cuda.cuh: thin __global__ wrappers that run the block
// bodies of detail/simt_block.hpp and detail/mma_block.hpp with device_ctx, and the small
// element-wise kernels of the x0 estimate's epilogue (their math: detail/elementwise.hpp).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "diffevo/detail/elementwise.hpp"
#include "diffevo/detail/exec_device.cuh"
#include "diffevo/detail/mma_block.hpp"
#include "diffevo/detail/params.hpp"
#include "diffevo/detail/simt_block.hpp"
#include "diffevo/detail/wgmma_kernels.cuh"

namespace diffevo {
namespace detail {

// ---- the pairwise sums (names are checked against the SASS: csrc/cuda/module_kernels.cu)

template <class T, bool OnlineMax>
__global__ void __launch_bounds__(simt_device_config<T>::threads) pairwise_simt_kernel(pairwise_params<T> p) {
  device_ctx ctx;
  simt_block<simt_device_config<T>, T, OnlineMax>(ctx, p);
}

template <bool OnlineMax>
__global__ void __launch_bounds__(mma_config::threads) pairwise_mma_kernel(pairwise_params<float> p) {
  device_ctx ctx;
  mma_block<OnlineMax>(ctx, p);
}

template <class T>
__global__ void __launch_bounds__(kMeanThreads) key_mean_kernel(const T* k, std::int64_t nk, std::int64_t d, T* mu) {
  device_ctx ctx;
  key_mean_block<T>(ctx, k, nk, d, mu);
}

template <class T>
__global__ void __launch_bounds__(kNormThreads) norms_kernel(pairwise_params<T> p) {
  device_ctx ctx;
  norms_block<T>(ctx, p);
}

// ---- the epilogue ---------------------------------------------------------------------

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

// Exact mode: logc = log(g) (-inf for 0), or 0 for every member when no fitness is
// positive (gsum = sum of g).
template <class T>
__global__ void exact_logc_kernel(const T* g, std::int64_t n, const double* gsum, T* logc) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) logc[i] = logc_exact(g[i], *gsum > 0);
}

// Reference mode, pass 1: c = g + eps and cmax = max c (positive doubles order as their
// bit patterns, so an integer atomicMax finds it; *cmax starts at +0.0).
template <class T>
__global__ void reference_c_kernel(const T* g, std::int64_t n, T* c, double* cmax) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const T ci = coefficient_reference(g[i]);
  c[i] = ci;
  atomicMax(reinterpret_cast<unsigned long long*>(cmax),
            static_cast<unsigned long long>(__double_as_longlong(static_cast<double>(ci))));
}

// Reference mode, pass 2: logc = log(c) - m (m = log cmax) and c -> c / cmax in place.
template <class T>
__global__ void reference_scale_kernel(T* c, std::int64_t n, const double* cmax, T* logc) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const T ci = c[i];
  logc[i] = logc_scaled(ci, log_of(static_cast<T>(*cmax)));
  c[i] = weight_scaled(ci, *cmax);
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

// x0 from the sums: exact A / B; reference (A' e^M + eps S') / (B' e^M + eps Z' + floor).
template <class T>
__global__ void x0_combine_kernel(T* x0, const T* bsum, const T* shift, const T* p, const double* ssum,
                                  const double* zsum, const double* cmax, std::int64_t n, std::int64_t D,
                                  bool exact) {
  const std::int64_t idx = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= n * D) return;
  const std::int64_t i = idx / D, c = idx - i * D;
  if (exact) {
    x0[idx] = x0_exact(x0[idx], bsum[i]);
    return;
  }
  const T denom = x0_denominator(bsum[i], shift[i], static_cast<T>(*zsum), density_floor(p[i], *cmax));
  x0[idx] = x0_reference(x0[idx], shift[i], static_cast<T>(ssum[c]), denom);
}

template <class T>
__global__ void fill_kernel(T* x, std::int64_t n, T value) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) x[i] = value;
}

template <class T>
__global__ void ddim_step_kernel(const T* x_t, const T* x0, const T* z, std::int64_t count, T sat, T s1at, T sap,
                                 T dir, T sigma, T* x_prev) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  x_prev[i] = ddim_element(x_t[i], x0[i], z ? z + i : nullptr, sat, s1at, sap, dir, sigma);
}

}  // namespace detail
}  // namespace diffevo
