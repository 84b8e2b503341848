// diffevo's CUDA API: the functions of diffevo/host.hpp, in namespace diffevo::cuda, on
// device arrays. Compile with nvcc and link CUDA::cudart (CMake target diffevo::cuda).
//
// This header declares and documents; the definitions are in detail/cuda_impl.cuh, the
// kernels in detail/cuda_kernels.cuh, their block bodies in detail/simt_block.hpp and
// detail/mma_block.hpp (templates over an execution context, which the tests also run
// on the host: detail/simulate.hpp).
//
// Every entry point takes raw device pointers (C-contiguous, batch-major) and a
// cudaStream_t; the *_async forms only enqueue work on the stream, the plain forms also
// wait for it. Errors: std::invalid_argument for a bad argument (DIFFEVO_EXPECTS, naming
// it: null arrays that cover elements, extents, alpha, bandwidth, noise, the path), and
// diffevo::cuda_error for a failed CUDA call (DIFFEVO_CUDA_TRY), both "file:line: ...".
// The values in device arrays are not read by the checks (that would need a kernel and
// a synchronisation in an asynchronous call): NaN, inf or negative fitness there is the
// caller's to rule out, as diffevo's Python layer does before every launch.
//
//   diffevo::cuda::x0_estimate_async<float>(x, g, n, D, 0.5f, x0, nullptr, 0,
//       diffevo::density::uniform, 0.1, diffevo::mode::reference, stream);
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "diffevo/detail/params.hpp"
#include "diffevo/errors.hpp"
#include "diffevo/types.hpp"

namespace diffevo {
namespace cuda {

/// Which kernel computes the pairwise sums: the SIMT path (direct differences, any
/// dtype) or the tensor-core path (float32, dot-product form on centred data).
enum class kernel_path { automatic, simt, mma };

/// kernel_path::automatic takes the tensor cores for float32 from this many dimensions
/// (the rule's one definition is detail::tensor_core_min_d).
constexpr std::int64_t tensor_core_min_d = detail::tensor_core_min_d;

/// What kernel_path::automatic runs for this dtype and distance dimension.
inline kernel_path choose_path(bool is_float32, std::int64_t d);

/// "auto", "simt" or "mma"; anything else is std::invalid_argument.
inline kernel_path parse_path(const std::string& name);

/// Number of CUDA devices; 0 (never an error) without a device or a driver.
inline int device_count() noexcept;

/// The pairwise sums of diffevo::host::pairwise_sums (same arguments and math) on device
/// arrays, enqueued on `stream`. The tensor-core path allocates a small workspace with
/// cudaMallocAsync on that stream; it is float32 only.
template <class T>
void pairwise_sums_async(const T* q, const T* k, const T* v, const T* logc, std::int64_t batch, std::int64_t nq,
                         std::int64_t nk, std::int64_t d, std::int64_t dv, double s, double inv2sigma2,
                         bool online_max, T* a, T* b, T* m, cudaStream_t stream = 0,
                         kernel_path path = kernel_path::automatic);
template <class T>
void pairwise_sums(const T* q, const T* k, const T* v, const T* logc, std::int64_t batch, std::int64_t nq,
                   std::int64_t nk, std::int64_t d, std::int64_t dv, double s, double inv2sigma2, bool online_max,
                   T* a, T* b, T* m, cudaStream_t stream = 0, kernel_path path = kernel_path::automatic);

/// diffevo::host::kde_density on device arrays: z [n, d] -> p [n].
template <class T>
void kde_density_async(const T* z, std::int64_t n, std::int64_t d, double bandwidth, T* p, cudaStream_t stream = 0,
                       kernel_path path = kernel_path::automatic);
template <class T>
void kde_density(const T* z, std::int64_t n, std::int64_t d, double bandwidth, T* p, cudaStream_t stream = 0,
                 kernel_path path = kernel_path::automatic);

/// diffevo::host::x0_estimate on device arrays: x [n, D], g [n], latent [n, dl] or
/// nullptr -> x0 [n, D] (reference mode scaled by max c, as on the host).
template <class T>
void x0_estimate_async(const T* x, const T* g, std::int64_t n, std::int64_t D, double alpha, T* x0,
                       const T* latent = nullptr, std::int64_t dl = 0, density dens = density::uniform,
                       double bandwidth = 0.1, mode md = mode::reference, cudaStream_t stream = 0,
                       kernel_path path = kernel_path::automatic);
template <class T>
void x0_estimate(const T* x, const T* g, std::int64_t n, std::int64_t D, double alpha, T* x0,
                 const T* latent = nullptr, std::int64_t dl = 0, density dens = density::uniform,
                 double bandwidth = 0.1, mode md = mode::reference, cudaStream_t stream = 0,
                 kernel_path path = kernel_path::automatic);

/// diffevo::host::ddim_step on device arrays (same rules; z may be nullptr when noise = 0).
template <class T>
void ddim_step_async(const T* x_t, const T* x0, const T* z, std::int64_t count, double alpha_t, double alpha_prev,
                     double noise, T* x_prev, cudaStream_t stream = 0);
template <class T>
void ddim_step(const T* x_t, const T* x0, const T* z, std::int64_t count, double alpha_t, double alpha_prev,
               double noise, T* x_prev, cudaStream_t stream = 0);

}  // namespace cuda
}  // namespace diffevo

#include "diffevo/detail/cuda_impl.cuh"
