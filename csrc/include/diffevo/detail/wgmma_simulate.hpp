// A test harness, not part of the installed API: the launches of the warpgroup path
// (detail/wgmma_launch.hpp) and of the small-D SIMT body (detail/simt_small_block.hpp)
// with every block through host_sim_ctx -- simulated threads between barriers, poisoned
// shared memory, and wgmma / cp.async emulated from the PTX ISA (detail/wgmma.hpp) --
// as detail/simulate.hpp does for the simt and mma paths.
#pragma once

#include <cstdint>
#include <vector>

#include "diffevo/detail/checks.hpp"
#include "diffevo/detail/exec_host.hpp"
#include "diffevo/detail/mma_block.hpp"
#include "diffevo/detail/params.hpp"
#include "diffevo/detail/simt_small_block.hpp"
#include "diffevo/detail/wgmma_block.hpp"
#include "diffevo/detail/wgmma_launch.hpp"
#include "diffevo/errors.hpp"

namespace diffevo {
namespace detail {

struct wg_sim_launcher {
  bool reverse_threads;

  void key_mean(grid3 grid, const pairwise_params<float>& p) {
    run_grid_simulated(grid, kMeanThreads, reverse_threads,
                       [&p](host_sim_ctx& ctx) { key_mean_block<float>(ctx, p.k, p.nk, p.d, p.mu); });
  }
  void norms(grid3 grid, const pairwise_params<float>& p) {
    run_grid_simulated(grid, kNormThreads, reverse_threads, [&p](host_sim_ctx& ctx) { norms_block<float>(ctx, p); });
  }
  template <int Which, class Cfg>
  void wg_prep_rows(grid3 grid, const pairwise_params<float>& p, const wg_work& w) {
    run_grid_simulated(grid, Cfg::threads, reverse_threads,
                       [&](host_sim_ctx& ctx) { wg_prep_rows_block<Which, Cfg>(ctx, p, w); });
  }
  void wg_value_scale(grid3 grid, const pairwise_params<float>& p, const wg_work& w) {
    run_grid_simulated(grid, 128, reverse_threads, [&](host_sim_ctx& ctx) { wg_value_scale_block(ctx, p, w); });
  }
  template <class Cfg>
  void wg_prep_values(grid3 grid, const pairwise_params<float>& p, const wg_work& w) {
    run_grid_simulated(grid, Cfg::threads, reverse_threads,
                       [&](host_sim_ctx& ctx) { wg_prep_values_block<Cfg>(ctx, p, w); });
  }
  template <class Cfg>
  void simt_small(grid3 grid, const pairwise_params<float>& p) {
    run_grid_simulated(grid, Cfg::threads, reverse_threads, [&](host_sim_ctx& ctx) { simt_small_block<Cfg>(ctx, p); });
  }
  template <int LD, int DVC, bool OnlineMax>
  void wg_main(grid3 grid, const pairwise_params<float>& p, const wg_work& w) {
    run_grid_simulated(grid, wg_config<(LD > 0), DVC>::threads, reverse_threads,
                       [&](host_sim_ctx& ctx) { wgmma_block<LD, DVC, OnlineMax>(ctx, p, w); });
  }
};

// The pairwise sums (diffevo/host.hpp's math) through the warpgroup path's block bodies.
// d must be <= kLatentMaxD (the latent form) or >= tensor_core_min_d.
inline void simulate_wgmma_pairwise_sums(const float* q, const float* k, const float* v, const float* logc,
                                         std::int64_t batch, std::int64_t nq, std::int64_t nk, std::int64_t d,
                                         std::int64_t dv, double s, double inv2sigma2, bool online_max, float* a,
                                         float* b, float* m, bool reverse_threads = false) {
  check_pairwise(q, k, v, logc, a, b, m, batch, nq, nk, d, dv, s, inv2sigma2);
  DIFFEVO_EXPECTS(d <= kLatentMaxD || d >= tensor_core_min_d,
                  "the warpgroup path takes d <= 8 (latent) or d >= 32 dimensions");
  if (batch == 0 || nq == 0) return;
  auto p = make_params(q, k, v, logc, batch, nq, nk, d, dv, s, inv2sigma2, a, b, m);
  std::vector<unsigned char> ws(wg_workspace_bytes(p) + 256);
  unsigned char* base = ws.data() + (256 - reinterpret_cast<std::uintptr_t>(ws.data()) % 256) % 256;
  wg_sim_launcher launcher{reverse_threads};
  launch_wgmma(launcher, p, base, online_max);
}

// The same through the small-D SIMT body (takes_simt_small must hold).
inline void simulate_simt_small_pairwise_sums(const float* q, const float* k, const float* v, const float* logc,
                                              std::int64_t batch, std::int64_t nq, std::int64_t nk, std::int64_t d,
                                              std::int64_t dv, double s, double inv2sigma2, bool online_max, float* a,
                                              float* b, float* m, bool reverse_threads = false) {
  check_pairwise(q, k, v, logc, a, b, m, batch, nq, nk, d, dv, s, inv2sigma2);
  DIFFEVO_EXPECTS(takes_simt_small(true, online_max, d, dv),
                  "the small-D body takes reference mode, 1 <= d <= 4 and dv = d or 0");
  if (batch == 0 || nq == 0) return;
  auto p = make_params(q, k, v, logc, batch, nq, nk, d, dv, s, inv2sigma2, a, b, m);
  wg_sim_launcher launcher{reverse_threads};
  if (nq >= kSmallRowsWide)
    launch_simt_small<32>(launcher, p);
  else
    launch_simt_small<8>(launcher, p);
}

}  // namespace detail
}  // namespace diffevo
