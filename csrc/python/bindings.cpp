// pybind11 module diffevo._core: thin wrappers over the header-only kernels.
// Arrays arrive C-contiguous and of one dtype (the Python layer guarantees it);
// the checks here are a second line of defence, never a silent cast.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "diffevo/host.hpp"

namespace py = pybind11;

namespace {

template <class T>
using carray = py::array_t<T, py::array::c_style>;

template <class T>
py::tuple pairwise_sums(carray<T> q, carray<T> k, carray<T> v, carray<T> logc, double s,
                        double inv2sigma2, bool online_max) {
  if (q.ndim() != 2 || k.ndim() != 2 || v.ndim() != 2 || logc.ndim() != 1)
    throw std::invalid_argument("pairwise_sums: q, k, v must be 2-D and logc 1-D");
  const auto nq = q.shape(0), d = q.shape(1), nk = k.shape(0), dv = v.shape(1);
  if (k.shape(1) != d) throw std::invalid_argument("pairwise_sums: k must have q's columns");
  if (v.shape(0) != nk) throw std::invalid_argument("pairwise_sums: v must have k's rows");
  if (logc.shape(0) != nk) throw std::invalid_argument("pairwise_sums: logc must have k's rows");
  carray<T> a({nq, dv}), b(nq), m(nq);
  {
    py::gil_scoped_release release;
    diffevo::pairwise_sums_host<T>(q.data(), k.data(), v.data(), logc.data(), nq, nk, d, dv,
                                   static_cast<T>(s), static_cast<T>(inv2sigma2), online_max,
                                   a.mutable_data(), b.mutable_data(), m.mutable_data());
  }
  return py::make_tuple(a, b, m);
}

}  // namespace

PYBIND11_MODULE(_core, mod) {
  mod.doc() = "diffevo compiled kernels (host C++; CUDA when built with it)";
  mod.attr("__version__") = DIFFEVO_VERSION;
#ifdef DIFFEVO_WITH_CUDA
  mod.attr("cuda_built") = true;
#else
  mod.attr("cuda_built") = false;
#endif
  mod.def("pairwise_sums_f32", &pairwise_sums<float>, py::arg("q"), py::arg("k"), py::arg("v"),
          py::arg("logc"), py::arg("s"), py::arg("inv2sigma2"), py::arg("online_max"));
  mod.def("pairwise_sums_f64", &pairwise_sums<double>, py::arg("q"), py::arg("k"), py::arg("v"),
          py::arg("logc"), py::arg("s"), py::arg("inv2sigma2"), py::arg("online_max"));
}
