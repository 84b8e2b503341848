// Definitions of the CUDA API declared (and documented) in diffevo/cuda.cuh.
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>

#include "diffevo/detail/checks.hpp"
#include "diffevo/detail/cuda_kernels.cuh"
#include "diffevo/detail/launch.hpp"
#include "diffevo/detail/params.hpp"
#include "diffevo/errors.hpp"

namespace diffevo {
namespace detail {

inline unsigned blocks_for(std::int64_t n, int threads) { return static_cast<unsigned>((n + threads - 1) / threads); }

constexpr std::int64_t kMaxGridYZ = 65535;

inline dim3 to_dim3(grid3 g) {
  return dim3(static_cast<unsigned>(g.x), static_cast<unsigned>(g.y), static_cast<unsigned>(g.z));
}

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

// detail/launch.hpp's Launcher on the GPU: each grid is one kernel launch on `stream`.
struct device_launcher {
  cudaStream_t stream;

  template <class Cfg, class T, bool OnlineMax>
  void simt(grid3 grid, const pairwise_params<T>& p) {
    static_assert(std::is_same<Cfg, simt_device_config<T>>::value, "the kernel's tiles");
    pairwise_simt_kernel<T, OnlineMax><<<to_dim3(grid), Cfg::threads, 0, stream>>>(p);
    DIFFEVO_CUDA_TRY(cudaGetLastError());
  }
  void key_mean(grid3 grid, const pairwise_params<float>& p) {
    key_mean_kernel<float><<<to_dim3(grid), kMeanThreads, 0, stream>>>(p.k, p.nk, p.d, p.mu);
    DIFFEVO_CUDA_TRY(cudaGetLastError());
  }
  void norms(grid3 grid, const pairwise_params<float>& p) {
    norms_kernel<float><<<to_dim3(grid), kNormThreads, 0, stream>>>(p);
    DIFFEVO_CUDA_TRY(cudaGetLastError());
  }
  template <bool OnlineMax>
  void mma(grid3 grid, const pairwise_params<float>& p) {
    pairwise_mma_kernel<OnlineMax><<<to_dim3(grid), mma_config::threads, 0, stream>>>(p);
    DIFFEVO_CUDA_TRY(cudaGetLastError());
  }
};

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

}  // namespace detail

namespace cuda {

inline kernel_path choose_path(bool is_float32, std::int64_t d) {
  return detail::takes_tensor_cores(is_float32, d) ? kernel_path::mma : kernel_path::simt;
}

inline kernel_path parse_path(const std::string& name) {
  if (name == "auto") return kernel_path::automatic;
  if (name == "simt") return kernel_path::simt;
  if (name == "mma") return kernel_path::mma;
  DIFFEVO_EXPECTS(false, "path must be 'auto', 'simt' or 'mma'; got '" + name + "'");
  return kernel_path::automatic;
}

inline int device_count() noexcept {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

template <class T>
void pairwise_sums_async(const T* q, const T* k, const T* v, const T* logc, std::int64_t batch, std::int64_t nq,
                         std::int64_t nk, std::int64_t d, std::int64_t dv, double s, double inv2sigma2,
                         bool online_max, T* a, T* b, T* m, cudaStream_t stream, kernel_path path) {
  static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value, "float or double");
  detail::check_pairwise(q, k, v, logc, a, b, m, batch, nq, nk, d, dv, s, inv2sigma2);
  constexpr bool is_f32 = std::is_same<T, float>::value;
  DIFFEVO_EXPECTS(path == kernel_path::automatic || path == kernel_path::simt || path == kernel_path::mma,
                  "pairwise_sums: path must be automatic, simt or mma");
  if (path == kernel_path::automatic) path = choose_path(is_f32, d);
  DIFFEVO_EXPECTS(is_f32 || path == kernel_path::simt, "pairwise_sums: the tensor-core path 'mma' is float32 only");
  if (batch == 0 || nq == 0) return;
  auto p = detail::make_params(q, k, v, logc, batch, nq, nk, d, dv, s, inv2sigma2, a, b, m);
  if constexpr (is_f32) {  // issue 17's bodies, where they apply (detail/wgmma_kernels.cuh)
    const auto fam = detail::choose_new_family(path == kernel_path::mma, online_max, batch, nq, d, dv,
                                               detail::device_has_wgmma());
    detail::wg_device_launcher wl{stream};
    if (fam == detail::new_family::simt_small) {
      for (std::int64_t first = 0; first < batch; first += detail::kMaxGridYZ) {
        const std::int64_t count = batch - first < detail::kMaxGridYZ ? batch - first : detail::kMaxGridYZ;
        detail::launch_simt_small<32>(wl, detail::batch_slice(p, first, count));
      }
      return;
    }
    if (fam == detail::new_family::wgmma) {
      detail::scratch wws(detail::wg_workspace_bytes(p), stream);
      detail::launch_wgmma(wl, p, static_cast<unsigned char*>(wws.ptr), online_max);
      return;
    }
  }
  const auto grid = path == kernel_path::simt ? detail::simt_grid<detail::simt_device_config<T>>(1, nq, dv)
                                              : detail::mma_grid(1, nq, dv);
  DIFFEVO_EXPECTS(grid.y <= detail::kMaxGridYZ && grid.x < (std::int64_t(1) << 31),
                  "pairwise_sums: too many rows or value columns for one launch");
  detail::device_launcher launcher{stream};
  detail::scratch ws(path == kernel_path::mma
                         ? sizeof(float) * static_cast<std::size_t>(detail::mma_workspace_floats(batch, nq, nk, d))
                         : 0,
                     stream);
  if constexpr (is_f32) {
    if (path == kernel_path::mma) detail::set_mma_workspace(p, static_cast<float*>(ws.ptr));
  }
  for (std::int64_t first = 0; first < batch; first += detail::kMaxGridYZ) {
    const std::int64_t count = batch - first < detail::kMaxGridYZ ? batch - first : detail::kMaxGridYZ;
    const auto sub = detail::batch_slice(p, first, count);
    if constexpr (is_f32) {
      if (path == kernel_path::mma) {
        detail::launch_mma(launcher, sub, online_max);
        continue;
      }
    }
    detail::launch_simt<T>(launcher, sub, online_max);
  }
}

template <class T>
void pairwise_sums(const T* q, const T* k, const T* v, const T* logc, std::int64_t batch, std::int64_t nq,
                   std::int64_t nk, std::int64_t d, std::int64_t dv, double s, double inv2sigma2, bool online_max,
                   T* a, T* b, T* m, cudaStream_t stream, kernel_path path) {
  pairwise_sums_async<T>(q, k, v, logc, batch, nq, nk, d, dv, s, inv2sigma2, online_max, a, b, m, stream, path);
  DIFFEVO_CUDA_TRY(cudaStreamSynchronize(stream));
}

template <class T>
void kde_density_async(const T* z, std::int64_t n, std::int64_t d, double bandwidth, T* p, cudaStream_t stream,
                       kernel_path path) {
  detail::check_kde(z, p, n, d, bandwidth);
  if (n == 0) return;
  const std::size_t nb = detail::align_up(sizeof(T) * static_cast<std::size_t>(n));
  detail::scratch ws(2 * nb + sizeof(double), stream);
  auto* base = static_cast<unsigned char*>(ws.ptr);
  T* zeros = reinterpret_cast<T*>(base);
  T* shift = reinterpret_cast<T*>(base + nb);
  auto* total = reinterpret_cast<double*>(base + 2 * nb);
  const unsigned blocks = detail::blocks_for(n, 256);
  detail::fill_kernel<T><<<blocks, 256, 0, stream>>>(zeros, n, T(0));
  DIFFEVO_CUDA_TRY(cudaGetLastError());
  pairwise_sums_async<T>(z, z, zeros, zeros, 1, n, n, d, 0, 1.0, 1.0 / (2.0 * bandwidth * bandwidth), false, zeros,
                         p, shift, stream, path);
  detail::kde_scale_kernel<T><<<blocks, 256, 0, stream>>>(p, shift, n, 0, total);
  DIFFEVO_CUDA_TRY(cudaMemsetAsync(total, 0, sizeof(double), stream));
  detail::weighted_colsum_kernel<T><<<dim3(1, detail::blocks_for(n, 1024)), 128, 0, stream>>>(p, nullptr, n, 1, total);
  detail::kde_scale_kernel<T><<<blocks, 256, 0, stream>>>(p, shift, n, 1, total);
  DIFFEVO_CUDA_TRY(cudaGetLastError());
}

template <class T>
void kde_density(const T* z, std::int64_t n, std::int64_t d, double bandwidth, T* p, cudaStream_t stream,
                 kernel_path path) {
  kde_density_async<T>(z, n, d, bandwidth, p, stream, path);
  DIFFEVO_CUDA_TRY(cudaStreamSynchronize(stream));
}

template <class T>
void x0_estimate_async(const T* x, const T* g, std::int64_t n, std::int64_t D, double alpha, T* x0, const T* latent,
                       std::int64_t dl, density dens, double bandwidth, mode md, cudaStream_t stream,
                       kernel_path path) {
  detail::check_x0(x, g, x0, latent, n, D, dl, alpha, dens, bandwidth, md);
  const T* z = latent ? latent : x;
  const std::int64_t dz = latent ? dl : D;
  const double s = std::sqrt(alpha), inv2sigma2 = 1.0 / (2.0 * (1.0 - alpha));
  const bool exact = md == mode::exact;
  const std::size_t nb = detail::align_up(sizeof(T) * static_cast<std::size_t>(n));
  const std::size_t db = detail::align_up(sizeof(double) * static_cast<std::size_t>(D + 2));
  detail::scratch ws(5 * nb + db, stream);
  auto* base = static_cast<unsigned char*>(ws.ptr);
  T* c = reinterpret_cast<T*>(base);  // reference mode: c, then the weights c / cmax
  T* logc = reinterpret_cast<T*>(base + nb);
  T* bsum = reinterpret_cast<T*>(base + 2 * nb);
  T* shift = reinterpret_cast<T*>(base + 3 * nb);
  T* p = reinterpret_cast<T*>(base + 4 * nb);
  auto* sums = reinterpret_cast<double*>(base + 5 * nb);  // [0, D): S'; D: Z' (exact: sum g); D+1: cmax
  const unsigned blocks = detail::blocks_for(n, 256);
  const dim3 one_column(1, detail::blocks_for(n, 1024));
  DIFFEVO_CUDA_TRY(cudaMemsetAsync(sums, 0, sizeof(double) * static_cast<std::size_t>(D + 2), stream));
  if (exact) {
    detail::weighted_colsum_kernel<T><<<one_column, 128, 0, stream>>>(g, nullptr, n, 1, sums + D);
    detail::exact_logc_kernel<T><<<blocks, 256, 0, stream>>>(g, n, sums + D, logc);
    DIFFEVO_CUDA_TRY(cudaGetLastError());
    pairwise_sums_async<T>(z, z, x, logc, 1, n, n, dz, D, s, inv2sigma2, true, x0, bsum, shift, stream, path);
  } else {
    detail::reference_c_kernel<T><<<blocks, 256, 0, stream>>>(g, n, c, sums + D + 1);
    detail::reference_scale_kernel<T><<<blocks, 256, 0, stream>>>(c, n, sums + D + 1, logc);
    DIFFEVO_CUDA_TRY(cudaGetLastError());
    pairwise_sums_async<T>(z, z, x, logc, 1, n, n, dz, D, s, inv2sigma2, false, x0, bsum, shift, stream, path);
    detail::weighted_colsum_kernel<T>
        <<<dim3(detail::blocks_for(D, 32), detail::blocks_for(n, 1024)), 128, 0, stream>>>(x, c, n, D, sums);
    detail::weighted_colsum_kernel<T><<<one_column, 128, 0, stream>>>(c, nullptr, n, 1, sums + D);
    DIFFEVO_CUDA_TRY(cudaGetLastError());
    if (dens == density::kde)
      kde_density_async<T>(z, n, dz, bandwidth, p, stream, path);
    else
      detail::fill_kernel<T><<<blocks, 256, 0, stream>>>(p, n, static_cast<T>(1.0 / static_cast<double>(n)));
  }
  detail::x0_combine_kernel<T><<<detail::blocks_for(n * D, 256), 256, 0, stream>>>(x0, bsum, shift, p, sums, sums + D,
                                                                                 sums + D + 1, n, D, exact);
  DIFFEVO_CUDA_TRY(cudaGetLastError());
}

template <class T>
void x0_estimate(const T* x, const T* g, std::int64_t n, std::int64_t D, double alpha, T* x0, const T* latent,
                 std::int64_t dl, density dens, double bandwidth, mode md, cudaStream_t stream, kernel_path path) {
  x0_estimate_async<T>(x, g, n, D, alpha, x0, latent, dl, dens, bandwidth, md, stream, path);
  DIFFEVO_CUDA_TRY(cudaStreamSynchronize(stream));
}

template <class T>
void ddim_step_async(const T* x_t, const T* x0, const T* z, std::int64_t count, double alpha_t, double alpha_prev,
                     double noise, T* x_prev, cudaStream_t stream) {
  const auto k = detail::check_ddim(x_t, x0, z, x_prev, count, alpha_t, alpha_prev, noise);
  if (count == 0) return;
  detail::ddim_step_kernel<T><<<detail::blocks_for(count, 256), 256, 0, stream>>>(
      x_t, x0, k.sigma > 0 ? z : nullptr, count, static_cast<T>(k.sat), static_cast<T>(k.s1at), static_cast<T>(k.sap),
      static_cast<T>(k.dir), static_cast<T>(k.sigma), x_prev);
  DIFFEVO_CUDA_TRY(cudaGetLastError());
}

template <class T>
void ddim_step(const T* x_t, const T* x0, const T* z, std::int64_t count, double alpha_t, double alpha_prev,
               double noise, T* x_prev, cudaStream_t stream) {
  ddim_step_async<T>(x_t, x0, z, count, alpha_t, alpha_prev, noise, x_prev, stream);
  DIFFEVO_CUDA_TRY(cudaStreamSynchronize(stream));
}

}  // namespace cuda
}  // namespace diffevo
