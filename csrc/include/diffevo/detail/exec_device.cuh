// The device execution context: the block body's phases run at once in every thread,
// barriers are __syncthreads(), shared memory is __shared__, mma is the real instruction.
#pragma once

#include <cstdint>

#include "diffevo/detail/macros.hpp"
#include "diffevo/detail/params.hpp"

namespace diffevo {
namespace detail {

// mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32, c += a b (sm_80 and newer).
__device__ DIFFEVO_INLINE void mma_m16n8k8_tf32(float* c, const std::uint32_t* a,
                                                const std::uint32_t* b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
      "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  __trap();  // the tensor-core path is built for sm_80 and newer only
#endif
}

class device_ctx {
 public:
  static constexpr bool is_host = false;

  __device__ DIFFEVO_INLINE std::int64_t block_x() const { return blockIdx.x; }
  __device__ DIFFEVO_INLINE std::int64_t block_y() const { return blockIdx.y; }
  __device__ DIFFEVO_INLINE std::int64_t block_z() const { return blockIdx.z; }
  __device__ DIFFEVO_INLINE int nthreads() const { return blockDim.x; }

  template <class F>
  __device__ DIFFEVO_INLINE void threads(F&& f) {
    f(static_cast<int>(threadIdx.x));
  }
  __device__ DIFFEVO_INLINE void barrier() { __syncthreads(); }
  __device__ DIFFEVO_INLINE void end() {}

  // One static __shared__ object per type S (a body asks for each type once).
  template <class S>
  __device__ DIFFEVO_INLINE S& shared() {
    __shared__ alignas(16) unsigned char storage[sizeof(S)];
    return *reinterpret_cast<S*>(storage);
  }

  template <class S>
  class local {
   public:
    __device__ DIFFEVO_INLINE explicit local(device_ctx&) {}
    __device__ DIFFEVO_INLINE S& operator()(int) { return v_; }

   private:
    S v_;
  };

  template <class F>
  __device__ DIFFEVO_INLINE void mma(F&& f) {
    const auto o = f(static_cast<int>(threadIdx.x));
    mma_m16n8k8_tf32(o.c, o.a, o.b);
  }
};

}  // namespace detail
}  // namespace diffevo
