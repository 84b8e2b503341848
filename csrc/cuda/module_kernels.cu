// The CUDA module's instantiations of the header-only kernels (diffevo/cuda.cuh):
// float and double x SIMT path x {reference, online max}, plus the float tensor-core
// path x {reference, online max}, and issue 17's float bodies (the sm_90a warpgroup path
// and the small-D SIMT body), for the architectures named in CMake (80; 90a).
#include <cuda_runtime.h>

#include "diffevo/cuda.cuh"
#include "module_api.hpp"

namespace diffevo {
namespace cuda_module {

namespace {
template <class T>
T* ptr(std::uintptr_t p) {
  return reinterpret_cast<T*>(p);
}
cudaStream_t stream_of(std::uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }
}  // namespace

int device_count() noexcept { return diffevo::cuda::device_count(); }

std::string choose_path(bool is_double, std::int64_t d) {
  return diffevo::cuda::choose_path(!is_double, d) == diffevo::cuda::kernel_path::mma ? "mma" : "simt";
}

void pairwise_sums(std::uintptr_t q, std::uintptr_t k, std::uintptr_t v, std::uintptr_t logc, std::uintptr_t a,
                   std::uintptr_t b, std::uintptr_t m, std::int64_t batch, std::int64_t nq, std::int64_t nk,
                   std::int64_t d, std::int64_t dv, double s, double inv2sigma2, bool online_max, bool is_double,
                   std::uintptr_t stream, const std::string& path) {
  const auto which = diffevo::cuda::parse_path(path);
  if (is_double)
    diffevo::cuda::pairwise_sums_async<double>(ptr<const double>(q), ptr<const double>(k), ptr<const double>(v),
                                               ptr<const double>(logc), batch, nq, nk, d, dv, s, inv2sigma2,
                                               online_max, ptr<double>(a), ptr<double>(b), ptr<double>(m),
                                               stream_of(stream), which);
  else
    diffevo::cuda::pairwise_sums_async<float>(ptr<const float>(q), ptr<const float>(k), ptr<const float>(v),
                                              ptr<const float>(logc), batch, nq, nk, d, dv, s, inv2sigma2,
                                              online_max, ptr<float>(a), ptr<float>(b), ptr<float>(m),
                                              stream_of(stream), which);
}

void x0_estimate(std::uintptr_t x, std::uintptr_t g, std::uintptr_t latent, std::uintptr_t x0, std::int64_t n,
                 std::int64_t D, std::int64_t dl, double alpha, bool kde, double bandwidth, bool exact,
                 bool is_double, std::uintptr_t stream, const std::string& path) {
  const auto which = diffevo::cuda::parse_path(path);
  const auto dens = kde ? diffevo::density::kde : diffevo::density::uniform;
  const auto md = exact ? diffevo::mode::exact : diffevo::mode::reference;
  if (is_double)
    diffevo::cuda::x0_estimate_async<double>(ptr<const double>(x), ptr<const double>(g), n, D, alpha, ptr<double>(x0),
                                             ptr<const double>(latent), dl, dens, bandwidth, md, stream_of(stream),
                                             which);
  else
    diffevo::cuda::x0_estimate_async<float>(ptr<const float>(x), ptr<const float>(g), n, D, alpha, ptr<float>(x0),
                                            ptr<const float>(latent), dl, dens, bandwidth, md, stream_of(stream),
                                            which);
}

void kde_density(std::uintptr_t z, std::uintptr_t p, std::int64_t n, std::int64_t d, double bandwidth,
                 bool is_double, std::uintptr_t stream, const std::string& path) {
  const auto which = diffevo::cuda::parse_path(path);
  if (is_double)
    diffevo::cuda::kde_density_async<double>(ptr<const double>(z), n, d, bandwidth, ptr<double>(p),
                                             stream_of(stream), which);
  else
    diffevo::cuda::kde_density_async<float>(ptr<const float>(z), n, d, bandwidth, ptr<float>(p), stream_of(stream),
                                            which);
}

void ddim_step(std::uintptr_t x_t, std::uintptr_t x0, std::uintptr_t z, std::uintptr_t x_prev, std::int64_t count,
               double alpha_t, double alpha_prev, double noise, bool is_double, std::uintptr_t stream) {
  if (is_double)
    diffevo::cuda::ddim_step_async<double>(ptr<const double>(x_t), ptr<const double>(x0), ptr<const double>(z), count,
                                           alpha_t, alpha_prev, noise, ptr<double>(x_prev), stream_of(stream));
  else
    diffevo::cuda::ddim_step_async<float>(ptr<const float>(x_t), ptr<const float>(x0), ptr<const float>(z), count,
                                          alpha_t, alpha_prev, noise, ptr<float>(x_prev), stream_of(stream));
}

std::vector<kernel_info> kernels() {
  // Itanium-mangled names of the pairwise kernels, as cuobjdump prints them
  // (checked against the built module by tests/packaging/test_cpp_cuda_build.py).
  return {
      {"_ZN7diffevo6detail20pairwise_simt_kernelIfLb0EEEvNS0_15pairwise_paramsIT_EE", "simt", "float32", false},
      {"_ZN7diffevo6detail20pairwise_simt_kernelIfLb1EEEvNS0_15pairwise_paramsIT_EE", "simt", "float32", true},
      {"_ZN7diffevo6detail20pairwise_simt_kernelIdLb0EEEvNS0_15pairwise_paramsIT_EE", "simt", "float64", false},
      {"_ZN7diffevo6detail20pairwise_simt_kernelIdLb1EEEvNS0_15pairwise_paramsIT_EE", "simt", "float64", true},
      {"_ZN7diffevo6detail19pairwise_mma_kernelILb0EEEvNS0_15pairwise_paramsIfEE", "mma", "float32", false},
      {"_ZN7diffevo6detail19pairwise_mma_kernelILb1EEEvNS0_15pairwise_paramsIfEE", "mma", "float32", true},
      // issue 17's bodies (chosen inside diffevo::cuda by arch and shape, never named by a
      // path): the warpgroup path <latent dims (0: distances), value columns, online max>,
      // sm_90a only, and the small-D SIMT body <D, value columns, rows per thread (32, from D = 3 16)>
      {"_ZN7diffevo6detail21pairwise_wgmma_kernelILi0ELi64ELb0EEEvNS0_15pairwise_paramsIfEENS0_7wg_workE", "wgmma", "float32", false},
      {"_ZN7diffevo6detail21pairwise_wgmma_kernelILi0ELi64ELb1EEEvNS0_15pairwise_paramsIfEENS0_7wg_workE", "wgmma", "float32", true},
      {"_ZN7diffevo6detail21pairwise_wgmma_kernelILi0ELi256ELb0EEEvNS0_15pairwise_paramsIfEENS0_7wg_workE", "wgmma", "float32", false},
      {"_ZN7diffevo6detail21pairwise_wgmma_kernelILi0ELi256ELb1EEEvNS0_15pairwise_paramsIfEENS0_7wg_workE", "wgmma", "float32", true},
      {"_ZN7diffevo6detail21pairwise_wgmma_kernelILi2ELi64ELb0EEEvNS0_15pairwise_paramsIfEENS0_7wg_workE", "wgmma", "float32", false},
      {"_ZN7diffevo6detail21pairwise_wgmma_kernelILi2ELi64ELb1EEEvNS0_15pairwise_paramsIfEENS0_7wg_workE", "wgmma", "float32", true},
      {"_ZN7diffevo6detail21pairwise_wgmma_kernelILi2ELi256ELb0EEEvNS0_15pairwise_paramsIfEENS0_7wg_workE", "wgmma", "float32", false},
      {"_ZN7diffevo6detail21pairwise_wgmma_kernelILi2ELi256ELb1EEEvNS0_15pairwise_paramsIfEENS0_7wg_workE", "wgmma", "float32", true},
      {"_ZN7diffevo6detail21pairwise_wgmma_kernelILi8ELi64ELb0EEEvNS0_15pairwise_paramsIfEENS0_7wg_workE", "wgmma", "float32", false},
      {"_ZN7diffevo6detail21pairwise_wgmma_kernelILi8ELi64ELb1EEEvNS0_15pairwise_paramsIfEENS0_7wg_workE", "wgmma", "float32", true},
      {"_ZN7diffevo6detail21pairwise_wgmma_kernelILi8ELi256ELb0EEEvNS0_15pairwise_paramsIfEENS0_7wg_workE", "wgmma", "float32", false},
      {"_ZN7diffevo6detail21pairwise_wgmma_kernelILi8ELi256ELb1EEEvNS0_15pairwise_paramsIfEENS0_7wg_workE", "wgmma", "float32", true},
      {"_ZN7diffevo6detail26pairwise_simt_small_kernelINS0_17simt_small_configILi1ELi0ELi32EEEEEvNS0_15pairwise_paramsIfEE", "simt_small", "float32", false},
      {"_ZN7diffevo6detail26pairwise_simt_small_kernelINS0_17simt_small_configILi1ELi1ELi32EEEEEvNS0_15pairwise_paramsIfEE", "simt_small", "float32", false},
      {"_ZN7diffevo6detail26pairwise_simt_small_kernelINS0_17simt_small_configILi2ELi0ELi32EEEEEvNS0_15pairwise_paramsIfEE", "simt_small", "float32", false},
      {"_ZN7diffevo6detail26pairwise_simt_small_kernelINS0_17simt_small_configILi2ELi2ELi32EEEEEvNS0_15pairwise_paramsIfEE", "simt_small", "float32", false},
      {"_ZN7diffevo6detail26pairwise_simt_small_kernelINS0_17simt_small_configILi3ELi0ELi16EEEEEvNS0_15pairwise_paramsIfEE", "simt_small", "float32", false},
      {"_ZN7diffevo6detail26pairwise_simt_small_kernelINS0_17simt_small_configILi3ELi3ELi16EEEEEvNS0_15pairwise_paramsIfEE", "simt_small", "float32", false},
      {"_ZN7diffevo6detail26pairwise_simt_small_kernelINS0_17simt_small_configILi4ELi0ELi16EEEEEvNS0_15pairwise_paramsIfEE", "simt_small", "float32", false},
      {"_ZN7diffevo6detail26pairwise_simt_small_kernelINS0_17simt_small_configILi4ELi4ELi16EEEEEvNS0_15pairwise_paramsIfEE", "simt_small", "float32", false},
  };
}

}  // namespace cuda_module
}  // namespace diffevo
