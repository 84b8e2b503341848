// The CUDA kernels' block bodies executed on the host: every block of the launch grid
// in turn through host_sim_ctx (simulated threads between barriers, poisoned shared
// memory, emulated mma.sync). Same source, same tile configuration and same grid as
// on the GPU (cuda.cuh), so host tests exercise the code the GPU runs. Slow (a
// simulation); for tests and for debugging.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "diffevo/detail/exec_host.hpp"
#include "diffevo/detail/mma_block.hpp"
#include "diffevo/detail/params.hpp"
#include "diffevo/detail/simt_block.hpp"
#include "diffevo/errors.hpp"
#include "diffevo/host.hpp"

namespace diffevo {
namespace simulate {

enum class path { simt, mma };

inline path parse_path(const std::string& name) {
  if (name == "simt") return path::simt;
  if (name == "mma") return path::mma;
  DIFFEVO_EXPECTS(false, "path must be 'simt' or 'mma'; got '" + name + "'");
  return path::simt;
}

// The pairwise sums (see host.hpp for the math) through the GPU kernels' block bodies.
template <class T>
void pairwise_sums(path which,
                   const T* q,     // [batch, nq, d]
                   const T* k,     // [batch, nk, d]
                   const T* v,     // [batch, nk, dv]
                   const T* logc,  // [batch, nk]
                   std::int64_t batch, std::int64_t nq, std::int64_t nk, std::int64_t d,
                   std::int64_t dv, double s, double inv2sigma2, bool online_max,
                   T* a,  // [batch, nq, dv]
                   T* b,  // [batch, nq]
                   T* m,  // [batch, nq]
                   bool reverse_threads = false) {
  detail::check_pairwise_extents(batch, nq, nk, d, dv);
  auto p = detail::make_params(q, k, v, logc, batch, nq, nk, d, dv, s, inv2sigma2, a, b, m);
  if (which == path::simt) {
    using cfg = detail::simt_device_config<T>;
    const detail::grid3 grid = detail::simt_grid<cfg>(batch, nq, dv);
    if (online_max)
      detail::run_grid_simulated(grid, cfg::threads, reverse_threads, [&p](detail::host_sim_ctx& ctx) {
        detail::simt_block<cfg, T, true>(ctx, p);
      });
    else
      detail::run_grid_simulated(grid, cfg::threads, reverse_threads, [&p](detail::host_sim_ctx& ctx) {
        detail::simt_block<cfg, T, false>(ctx, p);
      });
    return;
  }
  if constexpr (!std::is_same<T, float>::value) {
    DIFFEVO_EXPECTS(false, "the tensor-core (mma) path is float32 only");
  } else {
    std::vector<float> mu(static_cast<std::size_t>(batch * d)), qn(static_cast<std::size_t>(batch * nq)),
        kn(static_cast<std::size_t>(batch * nk));
    p.mu = mu.data();
    p.qn = qn.data();
    p.kn = kn.data();
    detail::run_grid_simulated(detail::mean_grid(batch, d), detail::kMeanThreads, reverse_threads,
                               [&p](detail::host_sim_ctx& ctx) {
                                 detail::key_mean_block<float>(ctx, p.k, p.nk, p.d, p.mu);
                               });
    detail::run_grid_simulated(detail::norms_grid(batch, nq, nk), detail::kNormThreads, reverse_threads,
                               [&p](detail::host_sim_ctx& ctx) { detail::norms_block<float>(ctx, p); });
    const detail::grid3 grid = detail::mma_grid(batch, nq, dv);
    if (online_max)
      detail::run_grid_simulated(grid, detail::mma_config::threads, reverse_threads,
                                 [&p](detail::host_sim_ctx& ctx) { detail::mma_block<true>(ctx, p); });
    else
      detail::run_grid_simulated(grid, detail::mma_config::threads, reverse_threads,
                                 [&p](detail::host_sim_ctx& ctx) { detail::mma_block<false>(ctx, p); });
  }
}

}  // namespace simulate
}  // namespace diffevo
