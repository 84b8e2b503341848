// The CUDA module's entry points as plain C++ (no CUDA types), so the pybind11 layer
// (csrc/python/cuda_module.cpp) compiles with the host compiler while the kernels
// (csrc/cuda/module_kernels.cu) compile with nvcc. Pointers travel as integers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace diffevo {
namespace cuda_module {

int device_count() noexcept;

// See diffevo::cuda::pairwise_sums_async; path: "auto", "simt" or "mma".
void pairwise_sums(std::uintptr_t q, std::uintptr_t k, std::uintptr_t v, std::uintptr_t logc, std::uintptr_t a,
                   std::uintptr_t b, std::uintptr_t m, std::int64_t batch, std::int64_t nq, std::int64_t nk,
                   std::int64_t d, std::int64_t dv, double s, double inv2sigma2, bool online_max, bool is_double,
                   std::uintptr_t stream, const std::string& path);

// "simt" or "mma": what path="auto" runs for this dtype and dimension.
std::string choose_path(bool is_double, std::int64_t d);

// See diffevo::cuda::x0_estimate_async / kde_density_async / ddim_step_async.
void x0_estimate(std::uintptr_t x, std::uintptr_t g, std::uintptr_t latent, std::uintptr_t x0, std::int64_t n,
                 std::int64_t D, std::int64_t dl, double alpha, bool kde, double bandwidth, bool exact,
                 bool is_double, std::uintptr_t stream, const std::string& path);
void kde_density(std::uintptr_t z, std::uintptr_t p, std::int64_t n, std::int64_t d, double bandwidth,
                 bool is_double, std::uintptr_t stream, const std::string& path);
void ddim_step(std::uintptr_t x_t, std::uintptr_t x0, std::uintptr_t z, std::uintptr_t x_prev, std::int64_t count,
               double alpha_t, double alpha_prev, double noise, bool is_double, std::uintptr_t stream);

// The kernels as they are named in the module's machine code (mangled), with what
// they are: path, dtype, online_max.
struct kernel_info {
  std::string name;
  std::string path;
  std::string dtype;
  bool online_max;
};
std::vector<kernel_info> kernels();

}  // namespace cuda_module
}  // namespace diffevo
