// A standalone C++ program that uses an installed diffevo through CMake:
//   find_package(diffevo CONFIG REQUIRED)  ->  diffevo::diffevo (and diffevo::cuda)
// It runs the host x0 estimate (SPEC.md section 3) on a tiny population, in the three
// settings a C++ user meets first, and prints the numbers; when built with CUDA
// (main.cu, diffevo::cuda) and a device is present, the CUDA x0 estimate as well.
// tests/test_cmake_package.py builds this against the installed package and compares
// every printed number with diffevo's NumPy backend.
#include <cstdio>
#include <vector>

#include <diffevo/host.hpp>

#ifdef DIFFEVO_EXAMPLE_WITH_CUDA
// main.cu: returns 0 on success, 1 when no device is present (prints why).
int run_cuda_example(const double* x, const double* g, int n, int dim, double alpha, double bandwidth);
#endif

namespace {

constexpr int kN = 6;
constexpr int kDim = 2;
constexpr double kAlpha = 0.5;
constexpr double kBandwidth = 0.5;

// two small clusters, a member with zero fitness and a far straggler: the eps floors of
// the reference decide the straggler's estimate (exact mode keeps it at 30, 25; the
// reference pulls it to about 1.08, 0.86), so a wrong floor cannot pass the test
const double kX[kN * kDim] = {-1.0, -1.1, -0.9, -1.0, 1.0, 0.9, 1.1, 1.05, 0.2, -0.3, 30.0, 25.0};
const double kG[kN] = {0.8, 0.5, 1.0, 0.9, 0.0, 0.1};

void print_rows(const char* label, const std::vector<double>& v) {
  for (int i = 0; i < kN; ++i) {
    std::printf("%s %d:", label, i);
    for (int c = 0; c < kDim; ++c) std::printf(" %.17g", v[static_cast<std::size_t>(i * kDim + c)]);
    std::printf("\n");
  }
}

}  // namespace

int main() {
  std::printf("diffevo example: N=%d D=%d alpha=%.17g bandwidth=%.17g\n", kN, kDim, kAlpha, kBandwidth);
  for (int i = 0; i < kN; ++i) std::printf("x %d: %.17g %.17g\n", i, kX[2 * i], kX[2 * i + 1]);
  std::printf("g:");
  for (double gj : kG) std::printf(" %.17g", gj);
  std::printf("\n");

  std::vector<double> x0(kN * kDim);
  try {
    diffevo::host::x0_estimate<double>(kX, kG, kN, kDim, kAlpha, x0.data());
    print_rows("x0 host reference uniform", x0);
    diffevo::host::x0_estimate<double>(kX, kG, kN, kDim, kAlpha, x0.data(), nullptr, 0,
                                       diffevo::density::kde, kBandwidth);
    print_rows("x0 host reference kde", x0);
    diffevo::host::x0_estimate<double>(kX, kG, kN, kDim, kAlpha, x0.data(), nullptr, 0,
                                       diffevo::density::uniform, kBandwidth, diffevo::mode::exact);
    print_rows("x0 host exact uniform", x0);
  } catch (const std::exception& err) {  // DIFFEVO_EXPECTS: "file:line: message"
    std::fprintf(stderr, "diffevo error: %s\n", err.what());
    return 2;
  }

#ifdef DIFFEVO_EXAMPLE_WITH_CUDA
  const int rc = run_cuda_example(kX, kG, kN, kDim, kAlpha, kBandwidth);
  if (rc > 1) return rc;
#else
  std::printf("cuda: not built into this example\n");
#endif
  return 0;
}
