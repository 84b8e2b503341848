// Small vocabulary shared by the host (host.hpp) and CUDA (cuda.cuh) entry points.
#pragma once

namespace diffevo {

// The floor the reference adds to fitness, Gaussian, density and denominator (SPEC §3).
constexpr double eps = 1e-9;

// Per-query density p_i of the x0 estimate: 1/N, or the normalised Gaussian KDE.
enum class density { uniform, kde };

// reference: the published behaviour with the 1e-9 floors; exact: eps = 0, log space.
enum class mode { reference, exact };

}  // namespace diffevo
