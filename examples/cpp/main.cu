// The CUDA half of the example (built when CMake finds a CUDA compiler and the
// installed diffevo has diffevo::cuda): the same x0 estimates on the device, through
// the stream-ordered entry points of <diffevo/cuda.cuh>. float64 here, so the numbers
// match the host's to ~1e-12; float32 is the fast path (and the only one with tensor
// cores, taken automatically from D >= 32).
#include <cuda_runtime.h>

#include <cstdio>
#include <stdexcept>
#include <vector>

#include <diffevo/cuda.cuh>

namespace {

// A device buffer that frees itself.
template <class T>
struct device_buffer {
  T* ptr = nullptr;
  explicit device_buffer(std::size_t count) {
    DIFFEVO_CUDA_TRY(cudaMalloc(reinterpret_cast<void**>(&ptr), count * sizeof(T)));
  }
  ~device_buffer() { cudaFree(ptr); }
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;
};

void print_rows(const char* label, const std::vector<double>& v, int n, int dim) {
  for (int i = 0; i < n; ++i) {
    std::printf("%s %d:", label, i);
    for (int c = 0; c < dim; ++c) std::printf(" %.17g", v[static_cast<std::size_t>(i * dim + c)]);
    std::printf("\n");
  }
}

}  // namespace

// 0: printed the CUDA results; 1: no device (says so); 2: an error (printed).
int run_cuda_example(const double* x, const double* g, int n, int dim, double alpha, double bandwidth) {
  const int devices = diffevo::cuda::device_count();
  if (devices == 0) {
    std::printf("cuda: no device present\n");
    return 1;
  }
  std::printf("cuda: %d device(s)\n", devices);
  try {
    const std::size_t count = static_cast<std::size_t>(n) * dim;
    device_buffer<double> dx(count), dg(n), dx0(count);
    cudaStream_t stream;
    DIFFEVO_CUDA_TRY(cudaStreamCreate(&stream));
    DIFFEVO_CUDA_TRY(cudaMemcpyAsync(dx.ptr, x, count * sizeof(double), cudaMemcpyHostToDevice, stream));
    DIFFEVO_CUDA_TRY(cudaMemcpyAsync(dg.ptr, g, n * sizeof(double), cudaMemcpyHostToDevice, stream));
    std::vector<double> out(count);
    struct setting {
      const char* label;
      diffevo::density dens;
      diffevo::mode md;
    };
    const setting settings[] = {
        {"x0 cuda reference uniform", diffevo::density::uniform, diffevo::mode::reference},
        {"x0 cuda reference kde", diffevo::density::kde, diffevo::mode::reference},
        {"x0 cuda exact uniform", diffevo::density::uniform, diffevo::mode::exact},
    };
    for (const auto& st : settings) {
      // enqueue on the stream; the blocking form would be diffevo::cuda::x0_estimate
      diffevo::cuda::x0_estimate_async<double>(dx.ptr, dg.ptr, n, dim, alpha, dx0.ptr, nullptr, 0, st.dens,
                                               bandwidth, st.md, stream);
      DIFFEVO_CUDA_TRY(cudaMemcpyAsync(out.data(), dx0.ptr, count * sizeof(double), cudaMemcpyDeviceToHost, stream));
      DIFFEVO_CUDA_TRY(cudaStreamSynchronize(stream));
      print_rows(st.label, out, n, dim);
    }
    DIFFEVO_CUDA_TRY(cudaStreamDestroy(stream));
  } catch (const std::exception& err) {
    std::fprintf(stderr, "diffevo cuda error: %s\n", err.what());
    return 2;
  }
  return 0;
}
