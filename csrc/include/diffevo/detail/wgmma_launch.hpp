// The launches of the warpgroup path (detail/wgmma_block.hpp), written once for the
// CUDA entry points and the host simulation, as detail/launch.hpp is for the other two
// paths. A Launcher runs one grid of one body:
//   L.key_mean(grid, p), L.norms(grid, p)                the mma path's prologue bodies
//   L.template wg_prep_rows<Which, Cfg>(grid, p, w)      q' (0) / k' (1), scaled and split
//   L.wg_value_scale(grid, p, w)                         the value columns' scales
//   L.template wg_prep_values<Cfg>(grid, p, w)           centred values, scaled and split
//   L.template wg_main<LD, DVC, OnlineMax>(grid, p, w)     LD: wg_latent_dims (0: distances)
// The form: latent (distances in d <= kLatentMaxD dimensions, float32 direct
// differences) or not (d >= tensor_core_min_d, distances on the tensor cores); DVC =
// 256 value columns per block when the values are wider than 64, else 64.
#pragma once

#include <cstddef>
#include <cstdint>

#include "diffevo/detail/mma_block.hpp"
#include "diffevo/detail/params.hpp"
#include "diffevo/detail/wgmma_block.hpp"

namespace diffevo {
namespace detail {

// Bytes of the workspace (16-byte aligned parts): mu, qn, kn (the mma prologue's), then
// wg_work's planes and scales.
struct wg_workspace_plan {
  std::size_t mu, qn, kn, qs, ks, vs, fq, fk, vmu, vsc, total;  // byte offsets and the total
};

DIFFEVO_HD DIFFEVO_INLINE std::size_t wg_align(std::size_t n) { return (n + 255) / 256 * 256; }

template <class Cfg>
wg_workspace_plan wg_plan(const pairwise_params<float>& p) {
  const wg_shape sh = wg_shape_of<Cfg>(p);
  const auto B = static_cast<std::size_t>(p.batch);
  const bool dist = !Cfg::latent;
  std::size_t at = 0;
  auto take = [&at](std::size_t bytes) {
    const std::size_t here = at;
    at += wg_align(bytes);
    return here;
  };
  wg_workspace_plan w{};
  w.mu = take(4 * B * static_cast<std::size_t>(p.d));
  w.qn = take(4 * B * static_cast<std::size_t>(p.nq));
  w.kn = take(4 * B * static_cast<std::size_t>(p.nk));
  w.qs = take(dist ? 2 * B * static_cast<std::size_t>(sh.qtiles * sh.chunks) * 2 * Cfg::tile : 0);
  w.ks = take(dist ? 2 * B * static_cast<std::size_t>(sh.ktiles * sh.chunks) * 2 * Cfg::tile : 0);
  w.vs = take(2 * B * static_cast<std::size_t>(sh.ktiles * sh.vchunks) * 2 * Cfg::vtile);
  w.fq = take(4 * B * static_cast<std::size_t>(p.nq));
  w.fk = take(4 * B * static_cast<std::size_t>(p.nk));
  w.vmu = take(4 * B * static_cast<std::size_t>(p.dv));
  w.vsc = take(4 * B * static_cast<std::size_t>(p.dv));
  w.total = at;
  return w;
}

// Points p's prologue fields and w into `base` (wg_plan's total bytes).
template <class Cfg>
wg_work wg_bind(pairwise_params<float>& p, unsigned char* base) {
  const wg_workspace_plan plan = wg_plan<Cfg>(p);
  p.mu = reinterpret_cast<float*>(base + plan.mu);
  p.qn = reinterpret_cast<float*>(base + plan.qn);
  p.kn = reinterpret_cast<float*>(base + plan.kn);
  return wg_work{reinterpret_cast<std::uint16_t*>(base + plan.qs), reinterpret_cast<std::uint16_t*>(base + plan.ks),
                 reinterpret_cast<std::uint16_t*>(base + plan.vs), reinterpret_cast<float*>(base + plan.fq),
                 reinterpret_cast<float*>(base + plan.fk), reinterpret_cast<float*>(base + plan.vmu),
                 reinterpret_cast<float*>(base + plan.vsc)};
}

template <int LD, int DVC, class Launcher>
void launch_wg_form(Launcher& L, const pairwise_params<float>& p, const wg_work& w, bool online_max) {
  constexpr bool Latent = LD > 0;
  using cfg = wg_config<Latent, DVC>;
  const wg_shape sh = wg_shape_of<cfg>(p);
  if (!Latent) {
    if (p.d > 0) L.key_mean(mean_grid(p.batch, p.d), p);
    L.norms(norms_grid(p.batch, p.nq, p.nk), p);
    L.template wg_prep_rows<0, cfg>(grid3{sh.qtiles, 1, p.batch}, p, w);
    L.template wg_prep_rows<1, cfg>(grid3{sh.ktiles, 1, p.batch}, p, w);
  }
  if (p.dv > 0) {
    pairwise_params<float> pv = p;  // the value columns' mean: the key-mean body over v
    pv.k = p.v;
    pv.d = p.dv;
    pv.mu = w.vmu;
    L.key_mean(mean_grid(p.batch, p.dv), pv);
    L.wg_value_scale(grid3{(p.dv + 127) / 128, 1, p.batch}, p, w);
    L.template wg_prep_values<cfg>(grid3{sh.ktiles, sh.vchunks, p.batch}, p, w);
  }
  const grid3 grid = wg_grid<cfg>(p);
  if (online_max)
    L.template wg_main<LD, DVC, true>(grid, p, w);
  else
    L.template wg_main<LD, DVC, false>(grid, p, w);
}

// Which form a call takes (the caller has checked float32 and d >= tensor_core_min_d or
// d <= kLatentMaxD).
inline bool wg_is_latent(std::int64_t d) { return wg_latent_dims(d) > 0; }
inline bool wg_is_wide(std::int64_t dv) { return dv > 64; }

inline std::size_t wg_workspace_bytes(const pairwise_params<float>& p) {
  const bool lat = wg_is_latent(p.d), wide = wg_is_wide(p.dv);
  if (lat) return wide ? wg_plan<wg_config<true, 256>>(p).total : wg_plan<wg_config<true, 64>>(p).total;
  return wide ? wg_plan<wg_config<false, 256>>(p).total : wg_plan<wg_config<false, 64>>(p).total;
}

// p's pointers to the inputs and outputs are set; `ws` holds wg_workspace_bytes.
template <class Launcher>
void launch_wgmma(Launcher& L, pairwise_params<float> p, unsigned char* ws, bool online_max) {
  const int ld = wg_latent_dims(p.d);
  const bool wide = wg_is_wide(p.dv);
  if (ld == 2 && wide) launch_wg_form<2, 256>(L, p, wg_bind<wg_config<true, 256>>(p, ws), online_max);
  if (ld == 2 && !wide) launch_wg_form<2, 64>(L, p, wg_bind<wg_config<true, 64>>(p, ws), online_max);
  if (ld == kLatentMaxD && wide) launch_wg_form<kLatentMaxD, 256>(L, p, wg_bind<wg_config<true, 256>>(p, ws), online_max);
  if (ld == kLatentMaxD && !wide) launch_wg_form<kLatentMaxD, 64>(L, p, wg_bind<wg_config<true, 64>>(p, ws), online_max);
  if (ld == 0 && wide) launch_wg_form<0, 256>(L, p, wg_bind<wg_config<false, 256>>(p, ws), online_max);
  if (ld == 0 && !wide) launch_wg_form<0, 64>(L, p, wg_bind<wg_config<false, 64>>(p, ws), online_max);
}

}  // namespace detail
}  // namespace diffevo
