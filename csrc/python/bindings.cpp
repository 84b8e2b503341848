// pybind11 module diffevo._core: thin wrappers over the header-only kernels.
// Arrays arrive C-contiguous and of one dtype (the Python layer guarantees it); the
// checks here are a second line of defence, never a silent cast: a wrong dtype, layout
// or shape is a ValueError naming the argument.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "diffevo/detail/mma_block.hpp"
#include "diffevo/detail/params.hpp"
#include "diffevo/detail/simt_block.hpp"
#include "diffevo/detail/simulate.hpp"
#include "diffevo/detail/wgmma_simulate.hpp"
#include "diffevo/host.hpp"

namespace py = pybind11;

namespace {

template <class T>
using carray = py::array_t<T, py::array::c_style>;

[[noreturn]] void fail(const std::string& msg) { throw std::invalid_argument(msg); }

bool is_dtype(const py::array& a, const py::dtype& dt) { return a.dtype().equal(dt); }

// The element type shared by every array (float32 or float64), else ValueError.
char common_kind(const char* fn, std::initializer_list<std::pair<const char*, const py::array*>> arrays) {
  const py::dtype f32 = py::dtype::of<float>(), f64 = py::dtype::of<double>();
  char kind = 0;
  for (const auto& [name, arr] : arrays) {
    if (!arr) continue;
    char k = is_dtype(*arr, f32) ? 'f' : is_dtype(*arr, f64) ? 'd' : 0;
    if (!k)
      fail(std::string(fn) + ": " + name + " must be float32 or float64; got " +
           std::string(py::str(arr->dtype())));
    if (kind && k != kind) fail(std::string(fn) + ": all arrays must share one dtype (" + name + " differs)");
    kind = k;
  }
  return kind;
}

void check_contiguous(const char* fn, const char* name, const py::array& a) {
  if (!(a.flags() & py::array::c_style))
    fail(std::string(fn) + ": " + name + " must be C-contiguous");
}

struct pairwise_shape {
  bool batched;
  std::int64_t batch, nq, nk, d, dv;
};

pairwise_shape check_pairwise(const char* fn, const py::array& q, const py::array& k, const py::array& v,
                              const py::array& logc) {
  const auto nd = q.ndim();
  if (nd != 2 && nd != 3) fail(std::string(fn) + ": q must be 2-D (Nq, d) or 3-D (R, Nq, d)");
  if (k.ndim() != nd || v.ndim() != nd || logc.ndim() != nd - 1)
    fail(std::string(fn) + ": q, k, v must all be " + std::to_string(nd) + "-D and logc " +
         std::to_string(nd - 1) + "-D");
  for (auto [name, arr] : {std::pair<const char*, const py::array*>{"q", &q}, {"k", &k}, {"v", &v}, {"logc", &logc}})
    check_contiguous(fn, name, *arr);
  const int o = nd == 3 ? 1 : 0;
  pairwise_shape sh{nd == 3, nd == 3 ? q.shape(0) : 1, q.shape(o), k.shape(o), q.shape(o + 1), v.shape(o + 1)};
  if (sh.batched && (k.shape(0) != sh.batch || v.shape(0) != sh.batch || logc.shape(0) != sh.batch))
    fail(std::string(fn) + ": q, k, v and logc must share the batch axis R=" + std::to_string(sh.batch));
  if (k.shape(o + 1) != sh.d) fail(std::string(fn) + ": k must have q's " + std::to_string(sh.d) + " columns");
  if (v.shape(o) != sh.nk) fail(std::string(fn) + ": v must have k's " + std::to_string(sh.nk) + " rows");
  if (logc.shape(o) != sh.nk) fail(std::string(fn) + ": logc must have k's " + std::to_string(sh.nk) + " rows");
  return sh;
}

template <class T>
py::tuple make_outputs(const pairwise_shape& sh, carray<T>& a, carray<T>& b, carray<T>& m) {
  if (sh.batched) {
    a = carray<T>({sh.batch, sh.nq, sh.dv});
    b = carray<T>({sh.batch, sh.nq});
    m = carray<T>({sh.batch, sh.nq});
  } else {
    a = carray<T>({sh.nq, sh.dv});
    b = carray<T>(sh.nq);
    m = carray<T>(sh.nq);
  }
  return py::make_tuple(a, b, m);
}

template <class T>
py::tuple pairwise_sums(py::array q, py::array k, py::array v, py::array logc, double s, double inv2sigma2,
                        bool online_max) {
  const char* fn = std::is_same<T, float>::value ? "pairwise_sums_f32" : "pairwise_sums_f64";
  const char kind = common_kind(fn, {{"q", &q}, {"k", &k}, {"v", &v}, {"logc", &logc}});
  if (kind != (std::is_same<T, float>::value ? 'f' : 'd'))
    fail(std::string(fn) + ": arrays must be " + (std::is_same<T, float>::value ? "float32" : "float64"));
  const pairwise_shape sh = check_pairwise(fn, q, k, v, logc);
  carray<T> a, b, m;
  py::tuple out = make_outputs<T>(sh, a, b, m);
  const T *qp = static_cast<const T*>(q.data()), *kp = static_cast<const T*>(k.data()),
          *vp = static_cast<const T*>(v.data()), *lp = static_cast<const T*>(logc.data());
  T *ap = a.mutable_data(), *bp = b.mutable_data(), *mp = m.mutable_data();
  {
    py::gil_scoped_release release;
    diffevo::host::pairwise_sums<T>(qp, kp, vp, lp, sh.batch, sh.nq, sh.nk, sh.d, sh.dv, s, inv2sigma2, online_max,
                                    ap, bp, mp);
  }
  return out;
}

template <class T>
void simulate_typed(diffevo::detail::sim_path which, const pairwise_shape& sh, const py::array& q,
                    const py::array& k, const py::array& v, const py::array& logc, double s,
                    double inv2sigma2, bool online_max, bool reverse, carray<T>& a, carray<T>& b,
                    carray<T>& m) {
  const T *qp = static_cast<const T*>(q.data()), *kp = static_cast<const T*>(k.data()),
          *vp = static_cast<const T*>(v.data()), *lp = static_cast<const T*>(logc.data());
  T *ap = a.mutable_data(), *bp = b.mutable_data(), *mp = m.mutable_data();
  py::gil_scoped_release release;
  diffevo::detail::simulate_pairwise_sums<T>(which, qp, kp, vp, lp, sh.batch, sh.nq, sh.nk, sh.d, sh.dv, s,
                                             inv2sigma2, online_max, ap, bp, mp, reverse);
}

py::tuple simulate_block_kernel(const std::string& path, py::array q, py::array k, py::array v,
                                py::array logc, double s, double inv2sigma2, bool online_max,
                                bool reverse_threads) {
  const char* fn = "simulate_block_kernel";
  const auto which = diffevo::detail::parse_sim_path(path);
  const char kind = common_kind(fn, {{"q", &q}, {"k", &k}, {"v", &v}, {"logc", &logc}});
  const pairwise_shape sh = check_pairwise(fn, q, k, v, logc);
  if (kind == 'd' && which == diffevo::detail::sim_path::mma)
    fail("simulate_block_kernel: the tensor-core path 'mma' is float32 only");
  if (kind == 'f') {
    carray<float> a, b, m;
    py::tuple out = make_outputs<float>(sh, a, b, m);
    simulate_typed<float>(which, sh, q, k, v, logc, s, inv2sigma2, online_max, reverse_threads, a, b, m);
    return out;
  }
  carray<double> a, b, m;
  py::tuple out = make_outputs<double>(sh, a, b, m);
  simulate_typed<double>(which, sh, q, k, v, logc, s, inv2sigma2, online_max, reverse_threads, a, b, m);
  return out;
}

// Issue 17's bodies on the host: 'wgmma' (the sm_90a warpgroup path, wgmma and cp.async
// emulated from the PTX ISA) or 'simt_small' (the small-D SIMT body); float32 only.
py::tuple simulate_new_kernel(const std::string& path, py::array q, py::array k, py::array v, py::array logc,
                              double s, double inv2sigma2, bool online_max, bool reverse_threads) {
  const char* fn = "simulate_new_kernel";
  if (path != "wgmma" && path != "simt_small") fail("path must be 'wgmma' or 'simt_small'; got '" + path + "'");
  if (common_kind(fn, {{"q", &q}, {"k", &k}, {"v", &v}, {"logc", &logc}}) != 'f')
    fail("simulate_new_kernel: the new bodies are float32 only");
  const pairwise_shape sh = check_pairwise(fn, q, k, v, logc);
  carray<float> a, b, m;
  py::tuple out = make_outputs<float>(sh, a, b, m);
  const auto* qp = static_cast<const float*>(q.data());
  const auto* kp = static_cast<const float*>(k.data());
  const auto* vp = static_cast<const float*>(v.data());
  const auto* lp = static_cast<const float*>(logc.data());
  const auto run = path == "wgmma" ? diffevo::detail::simulate_wgmma_pairwise_sums
                                   : diffevo::detail::simulate_simt_small_pairwise_sums;
  py::gil_scoped_release release;
  run(qp, kp, vp, lp, sh.batch, sh.nq, sh.nk, sh.d, sh.dv, s, inv2sigma2, online_max, a.mutable_data(),
      b.mutable_data(), m.mutable_data(), reverse_threads);
  return out;
}

diffevo::density parse_density(const std::string& s) {
  if (s == "uniform") return diffevo::density::uniform;
  if (s == "kde") return diffevo::density::kde;
  fail("density must be 'uniform' or 'kde'; got '" + s + "'");
}
diffevo::mode parse_mode(const std::string& s) {
  if (s == "reference") return diffevo::mode::reference;
  if (s == "exact") return diffevo::mode::exact;
  fail("mode must be 'reference' or 'exact'; got '" + s + "'");
}

template <class T>
py::array x0_typed(const py::array& x, const py::array& g, const py::array* lat, double alpha,
                   diffevo::density dens, double h, diffevo::mode md) {
  const auto n = x.shape(0), D = x.shape(1);
  carray<T> out({n, D});
  const T* lp = lat ? static_cast<const T*>(lat->data()) : nullptr;
  const std::int64_t dl = lat ? lat->shape(1) : 0;
  T* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    diffevo::host::x0_estimate<T>(static_cast<const T*>(x.data()), static_cast<const T*>(g.data()), n, D, alpha, dst,
                                  lp, dl, dens, h, md);
  }
  return out;
}

py::array x0_estimate(py::array x, py::array fitness, double alpha, py::object latent, const std::string& density,
                      double bandwidth, const std::string& mode) {
  const char* fn = "x0_estimate";
  py::array lat;
  const bool has_lat = !latent.is_none();
  if (has_lat) lat = latent.cast<py::array>();
  const char kind = common_kind(fn, {{"x", &x}, {"fitness", &fitness}, {"latent", has_lat ? &lat : nullptr}});
  if (x.ndim() != 2) fail("x0_estimate: x must be 2-D (N, D)");
  if (fitness.ndim() != 1 || fitness.shape(0) != x.shape(0)) fail("x0_estimate: fitness must have shape (N,)");
  if (has_lat && (lat.ndim() != 2 || lat.shape(0) != x.shape(0))) fail("x0_estimate: latent must be (N, d)");
  check_contiguous(fn, "x", x);
  check_contiguous(fn, "fitness", fitness);
  if (has_lat) check_contiguous(fn, "latent", lat);
  const auto dens = parse_density(density);
  const auto md = parse_mode(mode);
  if (kind == 'f') return x0_typed<float>(x, fitness, has_lat ? &lat : nullptr, alpha, dens, bandwidth, md);
  return x0_typed<double>(x, fitness, has_lat ? &lat : nullptr, alpha, dens, bandwidth, md);
}

py::array kde_density(py::array z, double bandwidth) {
  const char kind = common_kind("kde_density", {{"z", &z}});
  if (z.ndim() != 2) fail("kde_density: z must be 2-D (N, d)");
  check_contiguous("kde_density", "z", z);
  auto run = [&](auto tag) -> py::array {
    using T = decltype(tag);
    carray<T> out(z.shape(0));
    T* dst = out.mutable_data();
    {
      py::gil_scoped_release release;
      diffevo::host::kde_density<T>(static_cast<const T*>(z.data()), z.shape(0), z.shape(1), bandwidth, dst);
    }
    return out;
  };
  return kind == 'f' ? run(float{}) : run(double{});
}

py::array ddim_step(py::array x_t, py::array x0, double alpha_t, double alpha_prev, double noise, py::object z) {
  py::array za;
  const bool has_z = !z.is_none();
  if (has_z) za = z.cast<py::array>();
  const char kind = common_kind("ddim_step", {{"x_t", &x_t}, {"x0", &x0}, {"z", has_z ? &za : nullptr}});
  if (x0.size() != x_t.size() || (has_z && za.size() != x_t.size()))
    fail("ddim_step: x_t, x0 (and z) must have the same size");
  check_contiguous("ddim_step", "x_t", x_t);
  check_contiguous("ddim_step", "x0", x0);
  if (has_z) check_contiguous("ddim_step", "z", za);
  std::vector<py::ssize_t> shape(x_t.shape(), x_t.shape() + x_t.ndim());
  auto run = [&](auto tag) -> py::array {
    using T = decltype(tag);
    carray<T> out(shape);
    T* dst = out.mutable_data();
    {
      py::gil_scoped_release release;
      diffevo::host::ddim_step<T>(static_cast<const T*>(x_t.data()), static_cast<const T*>(x0.data()),
                                 has_z ? static_cast<const T*>(za.data()) : nullptr, x_t.size(), alpha_t, alpha_prev,
                                 noise, dst);
    }
    return out;
  };
  return kind == 'f' ? run(float{}) : run(double{});
}

template <class Cfg>
py::dict simt_info() {
  py::dict d;
  d["threads"] = Cfg::threads;
  d["rows_per_thread"] = Cfg::rows;
  d["block_rows"] = Cfg::bm;
  d["rows_per_warp"] = Cfg::threads >= 32 ? 32 * Cfg::rows : Cfg::bm;
  d["tile_keys"] = Cfg::bn;
  d["chunk_dims"] = Cfg::dk;
  d["value_cols"] = Cfg::dvc;
  d["stages"] = 1;  // one key tile in flight: stage | barrier | compute | barrier
  return d;
}

// The kernels' tilings and the path rule, for the Python side (cuda backend, docs) and
// the performance model (bench/gpumodel), which read them here instead of the headers.
py::dict kernel_configs() {
  using diffevo::detail::mma_config;
  py::dict out;
  out["tensor_core_min_d"] = diffevo::detail::tensor_core_min_d;
  out["simt_f32"] = simt_info<diffevo::detail::simt_device_config<float>>();
  out["simt_f64"] = simt_info<diffevo::detail::simt_device_config<double>>();
  out["host"] = simt_info<diffevo::detail::simt_host_config>();
  py::dict m;
  m["threads"] = mma_config::threads;
  m["warps"] = mma_config::warps;
  m["block_rows"] = mma_config::bm;
  m["rows_per_warp"] = mma_config::bm / mma_config::warps;
  m["tile_keys"] = mma_config::bn;
  m["chunk_dims"] = mma_config::dk;
  m["value_cols"] = mma_config::dvc;
  m["stages"] = 1;
  m["tf32_splits"] = 3;
  m["shared_bytes"] = sizeof(diffevo::detail::mma_smem);
  out["mma_f32"] = m;
  // issue 17's bodies (chosen inside diffevo::cuda: detail::choose_new_family)
  using diffevo::detail::wg_smem;
  py::dict w;
  w["threads"] = 128;
  w["block_rows"] = 64;
  w["tile_keys"] = 64;
  w["chunk_dims"] = 64;
  w["value_cols"] = py::make_tuple(64, 256);
  w["latent_max_d"] = diffevo::detail::kLatentMaxD;
  w["stages"] = 2;
  w["splits"] = 3;
  py::dict sb;  // dynamic shared memory per block, by form
  sb["distances_64"] = sizeof(wg_smem<false, 64>);
  sb["distances_256"] = sizeof(wg_smem<false, 256>);
  sb["latent_64"] = sizeof(wg_smem<true, 64>);
  sb["latent_256"] = sizeof(wg_smem<true, 256>);
  w["shared_bytes"] = sb;
  out["wgmma_f32"] = w;
  py::dict sm;
  sm["threads"] = 128;
  sm["tile_keys"] = 128;
  sm["max_d"] = 4;
  sm["rows_per_thread"] = py::make_tuple(32, 32, 16, 16);  // by D = 1..4
  sm["min_rows"] = diffevo::detail::kSmallRowsWide;
  out["simt_small_f32"] = sm;
  return out;
}

}  // namespace

PYBIND11_MODULE(_core, mod) {
  mod.doc() = "diffevo compiled host kernels (the CUDA kernels live in diffevo._cuda when built)";
  mod.attr("__version__") = DIFFEVO_VERSION;
#ifdef DIFFEVO_CUDA_BUILT
  mod.attr("cuda_built") = true;
#else
  mod.attr("cuda_built") = false;
#endif
  mod.def("pairwise_sums_f32", &pairwise_sums<float>, py::arg("q"), py::arg("k"), py::arg("v"),
          py::arg("logc"), py::arg("s"), py::arg("inv2sigma2"), py::arg("online_max"),
          "Pairwise sums (A, B, M) of the backend contract on float32 arrays (2-D, or 3-D batched).");
  mod.def("pairwise_sums_f64", &pairwise_sums<double>, py::arg("q"), py::arg("k"), py::arg("v"),
          py::arg("logc"), py::arg("s"), py::arg("inv2sigma2"), py::arg("online_max"),
          "Pairwise sums (A, B, M) of the backend contract on float64 arrays (2-D, or 3-D batched).");
  mod.def("kernel_configs", &kernel_configs,
          "The kernels' tile configurations ('simt_f32', 'simt_f64', 'mma_f32' on the GPU, 'host') and "
          "'tensor_core_min_d': float32 takes the tensor cores from this many dimensions.");

  // Functions only the tests call: the C++ host API and the host simulation of the
  // CUDA block bodies (diffevo's backends never use them).
  py::module_ testing = mod.def_submodule("testing", "Test hooks: the C++ host API and the kernel simulation");
  testing.def("simulate_block_kernel", &simulate_block_kernel, py::arg("path"), py::arg("q"), py::arg("k"),
              py::arg("v"), py::arg("logc"), py::arg("s"), py::arg("inv2sigma2"), py::arg("online_max"),
              py::arg("reverse_threads") = false,
              "Run the CUDA kernel's block bodies ('simt' or 'mma') on the host, every block of the grid in "
              "turn: simulated threads between barriers, emulated mma.sync. float32 or float64 ('mma': "
              "float32 only). Returns (A, B, M) as pairwise_sums_*.");
  testing.def("simulate_new_kernel", &simulate_new_kernel, py::arg("path"), py::arg("q"), py::arg("k"), py::arg("v"),
              py::arg("logc"), py::arg("s"), py::arg("inv2sigma2"), py::arg("online_max"),
              py::arg("reverse_threads") = false,
              "Issue 17's block bodies on the host: 'wgmma' (the sm_90a warpgroup path; wgmma and cp.async "
              "emulated from the PTX ISA; d <= 8 or >= 32) or 'simt_small' (reference mode, d <= 4, dv = d or 0). "
              "float32. Returns (A, B, M) as pairwise_sums_*.");
  testing.def("x0_estimate", &x0_estimate, py::arg("x"), py::arg("fitness"), py::arg("alpha"),
              py::arg("latent") = py::none(), py::arg("density") = "uniform", py::arg("bandwidth") = 0.1,
              py::arg("mode") = "reference", "The C++ host x0 estimate (diffevo::host::x0_estimate).");
  testing.def("kde_density", &kde_density, py::arg("z"), py::arg("bandwidth") = 0.1,
              "The C++ host KDE density (diffevo::host::kde_density).");
  testing.def("ddim_step", &ddim_step, py::arg("x_t"), py::arg("x0"), py::arg("alpha_t"), py::arg("alpha_prev"),
              py::arg("noise") = 1.0, py::arg("z") = py::none(),
              "The C++ host DDIM step (diffevo::host::ddim_step).");
}
