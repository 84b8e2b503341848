// The launches of one pairwise-sums call, written once for the two places that run the
// GPU kernels' block bodies: the CUDA entry points (detail/cuda_impl.cuh, kernels on a
// stream) and the host simulation (detail/simulate.hpp, every block through
// host_sim_ctx). A Launcher runs one grid of one body:
//   L.template simt<Cfg, T, OnlineMax>(grid, p)    the SIMT path (detail/simt_block.hpp)
//   L.key_mean(grid, p), L.norms(grid, p)           the tensor-core path's prologue
//   L.template mma<OnlineMax>(grid, p)              the tensor-core path (detail/mma_block.hpp)
// The same tile configuration and the same grids run in both places, so the host tests
// exercise the launches the GPU sees.
#pragma once

#include <cstdint>

#include "diffevo/detail/mma_block.hpp"
#include "diffevo/detail/params.hpp"
#include "diffevo/detail/simt_block.hpp"

namespace diffevo {
namespace detail {

template <class T, class Launcher>
void launch_simt(Launcher& launcher, const pairwise_params<T>& p, bool online_max) {
  using cfg = simt_device_config<T>;
  const grid3 grid = simt_grid<cfg>(p.batch, p.nq, p.dv);
  if (online_max)
    launcher.template simt<cfg, T, true>(grid, p);
  else
    launcher.template simt<cfg, T, false>(grid, p);
}

// floats of the tensor-core path's workspace: mu [batch, d], qn [batch, nq], kn [batch, nk]
inline std::int64_t mma_workspace_floats(std::int64_t batch, std::int64_t nq, std::int64_t nk, std::int64_t d) {
  return batch * (d + nq + nk);
}

// Points p.mu, p.qn, p.kn into `ws` (mma_workspace_floats of them).
inline void set_mma_workspace(pairwise_params<float>& p, float* ws) {
  p.mu = ws;
  p.qn = ws + p.batch * p.d;
  p.kn = ws + p.batch * (p.d + p.nq);
}

// p's workspace must be set (set_mma_workspace).
template <class Launcher>
void launch_mma(Launcher& launcher, const pairwise_params<float>& p, bool online_max) {
  if (p.d > 0) launcher.key_mean(mean_grid(p.batch, p.d), p);
  if (p.nq + p.nk > 0) launcher.norms(norms_grid(p.batch, p.nq, p.nk), p);
  const grid3 grid = mma_grid(p.batch, p.nq, p.dv);
  if (online_max)
    launcher.template mma<true>(grid, p);
  else
    launcher.template mma<false>(grid, p);
}

}  // namespace detail
}  // namespace diffevo
