// The CUDA kernels of issue 17's paths -- the warpgroup path (detail/wgmma_block.hpp)
// and the small-D SIMT body (detail/simt_small_block.hpp) -- and their launcher for
// detail/wgmma_launch.hpp and launch_simt_small. The main body needs up to ~210 KB of shared memory, past
// the 48 KB of static __shared__, so it runs with a context whose shared() hands out
// the dynamic shared memory (opted in per kernel with cudaFuncSetAttribute).
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>

#include "diffevo/detail/exec_device.cuh"
#include "diffevo/detail/mma_block.hpp"
#include "diffevo/detail/params.hpp"
#include "diffevo/detail/simt_small_block.hpp"
#include "diffevo/detail/wgmma_block.hpp"
#include "diffevo/detail/wgmma_launch.hpp"
#include "diffevo/errors.hpp"

namespace diffevo {
namespace detail {

// device_ctx with the block's dynamic shared memory as its one shared object.
class device_dyn_ctx : public device_ctx {
 public:
  template <class S>
  __device__ DIFFEVO_INLINE S& shared() {
    extern __shared__ __align__(128) unsigned char dyn_smem[];
    return *reinterpret_cast<S*>(dyn_smem);
  }
  // local<S> (registers) is device_ctx's
};

template <int LD, int DVC, bool OnlineMax>
__global__ void __launch_bounds__(128, 1) pairwise_wgmma_kernel(pairwise_params<float> p, wg_work w) {
  device_dyn_ctx ctx;
  wgmma_block<LD, DVC, OnlineMax>(ctx, p, w);
}

template <int Which, class Cfg>
__global__ void __launch_bounds__(128) wg_prep_rows_kernel(pairwise_params<float> p, wg_work w) {
  device_ctx ctx;
  wg_prep_rows_block<Which, Cfg>(ctx, p, w);
}

template <class Cfg>
__global__ void __launch_bounds__(128) wg_prep_values_kernel(pairwise_params<float> p, wg_work w) {
  device_ctx ctx;
  wg_prep_values_block<Cfg>(ctx, p, w);
}

template <class Cfg>
__global__ void __launch_bounds__(128) pairwise_simt_small_kernel(pairwise_params<float> p) {
  device_ctx ctx;
  simt_small_block<Cfg>(ctx, p);
}

// 1 where this device runs the sm_90a image (wgmma compiled in), else 0.
__global__ void wg_probe_kernel(int* out) { *out = DIFFEVO_HAS_WGMMA; }

__global__ void __launch_bounds__(128) wg_value_scale_kernel(pairwise_params<float> p, wg_work w) {
  device_ctx ctx;
  wg_value_scale_block(ctx, p, w);
}

template <class T>
__global__ void __launch_bounds__(kMeanThreads) wg_key_mean_kernel(const T* k, std::int64_t nk, std::int64_t d, T* mu) {
  device_ctx ctx;
  key_mean_block<T>(ctx, k, nk, d, mu);
}

__global__ void __launch_bounds__(kNormThreads) wg_norms_kernel(pairwise_params<float> p) {
  device_ctx ctx;
  norms_block<float>(ctx, p);
}

inline dim3 wg_dim3(grid3 g) { return dim3(static_cast<unsigned>(g.x), static_cast<unsigned>(g.y), static_cast<unsigned>(g.z)); }

// detail/wgmma_launch.hpp's Launcher on the GPU.
struct wg_device_launcher {
  cudaStream_t stream;

  void key_mean(grid3 g, const pairwise_params<float>& p) {
    wg_key_mean_kernel<float><<<wg_dim3(g), kMeanThreads, 0, stream>>>(p.k, p.nk, p.d, p.mu);
    DIFFEVO_CUDA_TRY(cudaGetLastError());
  }
  void norms(grid3 g, const pairwise_params<float>& p) {
    wg_norms_kernel<<<wg_dim3(g), kNormThreads, 0, stream>>>(p);
    DIFFEVO_CUDA_TRY(cudaGetLastError());
  }
  template <int Which, class Cfg>
  void wg_prep_rows(grid3 g, const pairwise_params<float>& p, const wg_work& w) {
    wg_prep_rows_kernel<Which, Cfg><<<wg_dim3(g), 128, 0, stream>>>(p, w);
    DIFFEVO_CUDA_TRY(cudaGetLastError());
  }
  void wg_value_scale(grid3 g, const pairwise_params<float>& p, const wg_work& w) {
    wg_value_scale_kernel<<<wg_dim3(g), 128, 0, stream>>>(p, w);
    DIFFEVO_CUDA_TRY(cudaGetLastError());
  }
  template <class Cfg>
  void wg_prep_values(grid3 g, const pairwise_params<float>& p, const wg_work& w) {
    wg_prep_values_kernel<Cfg><<<wg_dim3(g), 128, 0, stream>>>(p, w);
    DIFFEVO_CUDA_TRY(cudaGetLastError());
  }
  template <class Cfg>
  void simt_small(grid3 g, const pairwise_params<float>& p) {
    pairwise_simt_small_kernel<Cfg><<<wg_dim3(g), Cfg::threads, 0, stream>>>(p);
    DIFFEVO_CUDA_TRY(cudaGetLastError());
  }
  template <int LD, int DVC, bool OnlineMax>
  void wg_main(grid3 g, const pairwise_params<float>& p, const wg_work& w) {
    constexpr int bytes = static_cast<int>(sizeof(wg_smem<(LD > 0), DVC>));
    auto* kernel = &pairwise_wgmma_kernel<LD, DVC, OnlineMax>;
    DIFFEVO_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    kernel<<<wg_dim3(g), 128, bytes, stream>>>(p, w);
    DIFFEVO_CUDA_TRY(cudaGetLastError());
  }
};

// Whether the current device runs the warpgroup path: compute capability 9.0 and a
// module built for sm_90a (a probe kernel says which image the device loaded). Cached
// per device; the first call per device synchronises once.
inline bool device_has_wgmma() {
  static std::atomic<int> cache[64];  // 0 unknown, 1 no, 2 yes
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= 64) {
    (void)cudaGetLastError();
    return false;
  }
  const int known = cache[dev].load();
  if (known) return known == 2;
  int major = 0;
  bool yes = false;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess && major == 9) {
    int* flag = nullptr;
    int host = 0;
    if (cudaMalloc(&flag, sizeof(int)) == cudaSuccess) {
      wg_probe_kernel<<<1, 1>>>(flag);
      yes = cudaMemcpy(&host, flag, sizeof(int), cudaMemcpyDeviceToHost) == cudaSuccess && host == 1;
      (void)cudaFree(flag);
    }
  }
  (void)cudaGetLastError();
  cache[dev].store(yes ? 2 : 1);
  return yes;
}

// Which of issue 17's bodies a float32 call takes (after kernel_path::automatic is
// resolved): the small-D SIMT body (reference mode, d <= 4, values the points or none,
// from kSmallRowsWide rows), the warpgroup path on sm_90a (distances d >= 32 for the
// tensor-core path; a latent d <= 8 with values wider than 64 for the SIMT path -- it too
// takes direct differences), or neither (0).
enum class new_family { none, simt_small, wgmma };

inline new_family choose_new_family(bool tensor_path, bool online_max, std::int64_t batch, std::int64_t nq,
                                    std::int64_t d, std::int64_t dv, bool has_wgmma) {
  if (!tensor_path && takes_simt_small(true, online_max, d, dv) && nq >= kSmallRowsWide) return new_family::simt_small;
  if (!has_wgmma || batch > 65535) return new_family::none;
  if (tensor_path && d >= tensor_core_min_d) return new_family::wgmma;
  if (!tensor_path && wg_is_latent(d) && wg_is_wide(dv)) return new_family::wgmma;
  return new_family::none;
}

}  // namespace detail
}  // namespace diffevo
