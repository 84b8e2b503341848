// A test harness, not part of the installed API: the CUDA kernels' block bodies run on
// the host, every block of the launch grid in turn through host_sim_ctx (simulated
// threads between barriers, poisoned shared memory, emulated mma.sync). The launches
// are detail/launch.hpp's, the very sequence the CUDA entry points run, with the same
// tile configuration and grids, so host tests exercise the code the GPU runs. Slow (a
// simulation); for the tests (diffevo._core.testing.simulate_block_kernel) and for
// debugging.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "diffevo/detail/checks.hpp"
#include "diffevo/detail/exec_host.hpp"
#include "diffevo/detail/launch.hpp"
#include "diffevo/detail/mma_block.hpp"
#include "diffevo/detail/params.hpp"
#include "diffevo/detail/simt_block.hpp"
#include "diffevo/errors.hpp"

namespace diffevo {
namespace detail {

enum class sim_path { simt, mma };

inline sim_path parse_sim_path(const std::string& name) {
  if (name == "simt") return sim_path::simt;
  if (name == "mma") return sim_path::mma;
  DIFFEVO_EXPECTS(false, "path must be 'simt' or 'mma'; got '" + name + "'");
  return sim_path::simt;
}

// detail/launch.hpp's Launcher on the host: every block through host_sim_ctx.
struct sim_launcher {
  bool reverse_threads;

  template <class Cfg, class T, bool OnlineMax>
  void simt(grid3 grid, const pairwise_params<T>& p) {
    run_grid_simulated(grid, Cfg::threads, reverse_threads,
                       [&p](host_sim_ctx& ctx) { simt_block<Cfg, T, OnlineMax>(ctx, p); });
  }
  void key_mean(grid3 grid, const pairwise_params<float>& p) {
    run_grid_simulated(grid, kMeanThreads, reverse_threads,
                       [&p](host_sim_ctx& ctx) { key_mean_block<float>(ctx, p.k, p.nk, p.d, p.mu); });
  }
  void norms(grid3 grid, const pairwise_params<float>& p) {
    run_grid_simulated(grid, kNormThreads, reverse_threads,
                       [&p](host_sim_ctx& ctx) { norms_block<float>(ctx, p); });
  }
  template <bool OnlineMax>
  void mma(grid3 grid, const pairwise_params<float>& p) {
    run_grid_simulated(grid, mma_config::threads, reverse_threads,
                       [&p](host_sim_ctx& ctx) { mma_block<OnlineMax>(ctx, p); });
  }
};

// The pairwise sums (see diffevo/host.hpp for the math) through the GPU kernels' block
// bodies; `reverse_threads` runs warps and lanes in the opposite order.
template <class T>
void simulate_pairwise_sums(sim_path which, const T* q, const T* k, const T* v, const T* logc, std::int64_t batch,
                            std::int64_t nq, std::int64_t nk, std::int64_t d, std::int64_t dv, double s,
                            double inv2sigma2, bool online_max, T* a, T* b, T* m, bool reverse_threads = false) {
  check_pairwise(q, k, v, logc, a, b, m, batch, nq, nk, d, dv, s, inv2sigma2);
  auto p = make_params(q, k, v, logc, batch, nq, nk, d, dv, s, inv2sigma2, a, b, m);
  sim_launcher launcher{reverse_threads};
  if (which == sim_path::simt) {
    launch_simt<T>(launcher, p, online_max);
    return;
  }
  if constexpr (!std::is_same<T, float>::value) {
    DIFFEVO_EXPECTS(false, "the tensor-core (mma) path is float32 only");
  } else {
    std::vector<float> ws(static_cast<std::size_t>(mma_workspace_floats(batch, nq, nk, d)));
    set_mma_workspace(p, ws.data());
    launch_mma(launcher, p, online_max);
  }
}

}  // namespace detail
}  // namespace diffevo
