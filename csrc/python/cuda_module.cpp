// pybind11 module diffevo._cuda: the CUDA kernels on raw device pointers (Python ints).
// Built only with CUDA (DIFFEVO_WITH_CUDA); cudart is linked statically, so the module
// imports on a machine without a driver, where device_count() is 0. Importing diffevo
// never imports this module: the cuda backend loads it when a device array arrives.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "../cuda/module_api.hpp"

namespace py = pybind11;
namespace cm = diffevo::cuda_module;

PYBIND11_MODULE(_cuda, mod) {
  mod.doc() = "diffevo CUDA kernels on device pointers (launches are asynchronous on the given stream)";
  mod.attr("__version__") = DIFFEVO_VERSION;
  mod.def("device_count", &cm::device_count, "Number of CUDA devices; 0 without a device or driver.");
  mod.def(
      "pairwise_sums",
      [](std::uintptr_t q, std::uintptr_t k, std::uintptr_t v, std::uintptr_t logc, std::uintptr_t a, std::uintptr_t b,
         std::uintptr_t m, std::int64_t batch, std::int64_t nq, std::int64_t nk, std::int64_t d, std::int64_t dv,
         double s, double inv2sigma2, bool online_max, bool is_double, std::uintptr_t stream_ptr,
         const std::string& path) {
        py::gil_scoped_release release;
        cm::pairwise_sums(q, k, v, logc, a, b, m, batch, nq, nk, d, dv, s, inv2sigma2, online_max, is_double,
                          stream_ptr, path);
      },
      py::arg("q_ptr"), py::arg("k_ptr"), py::arg("v_ptr"), py::arg("logc_ptr"), py::arg("a_ptr"), py::arg("b_ptr"),
      py::arg("m_ptr"), py::arg("batch"), py::arg("nq"), py::arg("nk"), py::arg("d"), py::arg("dv"), py::arg("s"),
      py::arg("inv2sigma2"), py::arg("online_max"), py::arg("is_double"), py::arg("stream_ptr"),
      py::arg("path") = "auto",
      "Enqueue the pairwise sums (A, B, M) on stream `stream_ptr` (0: the default stream) and return "
      "without synchronising. Pointers: C-contiguous, batch-major device arrays q [batch, nq, d], "
      "k [batch, nk, d], v [batch, nk, dv], logc [batch, nk], a [batch, nq, dv], b and m [batch, nq]. "
      "path: 'auto' (mma for float32 with d >= 32, else simt), 'simt' or 'mma' (float32 only).");
  mod.def("choose_path", &cm::choose_path, py::arg("is_double"), py::arg("d"),
          "The path ('simt' or 'mma') that path='auto' runs.");
  mod.def(
      "x0_estimate",
      [](std::uintptr_t x, std::uintptr_t g, std::uintptr_t latent, std::uintptr_t x0, std::int64_t n, std::int64_t D,
         std::int64_t dl, double alpha, bool kde, double bandwidth, bool exact, bool is_double,
         std::uintptr_t stream_ptr, const std::string& path) {
        py::gil_scoped_release release;
        cm::x0_estimate(x, g, latent, x0, n, D, dl, alpha, kde, bandwidth, exact, is_double, stream_ptr, path);
      },
      py::arg("x_ptr"), py::arg("g_ptr"), py::arg("latent_ptr"), py::arg("x0_ptr"), py::arg("n"), py::arg("D"),
      py::arg("dl"), py::arg("alpha"), py::arg("kde"), py::arg("bandwidth"), py::arg("exact"), py::arg("is_double"),
      py::arg("stream_ptr"), py::arg("path") = "auto",
      "Enqueue the full x0 estimate of the C++ API (latent_ptr 0: distances on x).");
  mod.def(
      "kde_density",
      [](std::uintptr_t z, std::uintptr_t p, std::int64_t n, std::int64_t d, double bandwidth, bool is_double,
         std::uintptr_t stream_ptr, const std::string& path) {
        py::gil_scoped_release release;
        cm::kde_density(z, p, n, d, bandwidth, is_double, stream_ptr, path);
      },
      py::arg("z_ptr"), py::arg("p_ptr"), py::arg("n"), py::arg("d"), py::arg("bandwidth"), py::arg("is_double"),
      py::arg("stream_ptr"), py::arg("path") = "auto", "Enqueue the KDE density of the C++ API.");
  mod.def(
      "ddim_step",
      [](std::uintptr_t x_t, std::uintptr_t x0, std::uintptr_t z, std::uintptr_t x_prev, std::int64_t count,
         double alpha_t, double alpha_prev, double noise, bool is_double, std::uintptr_t stream_ptr) {
        py::gil_scoped_release release;
        cm::ddim_step(x_t, x0, z, x_prev, count, alpha_t, alpha_prev, noise, is_double, stream_ptr);
      },
      py::arg("x_t_ptr"), py::arg("x0_ptr"), py::arg("z_ptr"), py::arg("x_prev_ptr"), py::arg("count"),
      py::arg("alpha_t"), py::arg("alpha_prev"), py::arg("noise"), py::arg("is_double"), py::arg("stream_ptr"),
      "Enqueue one DDIM step of the C++ API (z_ptr 0 allowed when noise is 0).");
  mod.def(
      "kernel_names",
      []() {
        std::vector<std::string> names;
        for (const auto& k : cm::kernels()) names.push_back(k.name);
        return names;
      },
      "Mangled names of the pairwise kernels in the module's machine code (for SASS checks).");
  mod.def(
      "kernels",
      []() {
        py::list out;
        for (const auto& k : cm::kernels()) {
          py::dict d;
          d["name"] = k.name;
          d["path"] = k.path;
          d["dtype"] = k.dtype;
          d["online_max"] = k.online_max;
          out.append(d);
        }
        return out;
      },
      "The pairwise kernels: mangled name, path ('simt'/'mma'), dtype, online_max.");
}
