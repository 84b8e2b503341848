// The sm_90a instructions of the warpgroup path as inline PTX (device only; the host
// emulation of the same operations is in detail/wgmma.hpp). Built only where the
// architecture has them: __CUDA_ARCH_FEAT_SM90_ALL is defined for sm_90a, and the
// wgmma.mma_async forms below exist nowhere else.
//   wgmma_m64n{64,256}k16_f16(d, da, db)   D(64 x N, f32) += A(64 x 16) B(N x 16)^T, A and B
//       K-major half precision in shared memory (descriptors, no swizzle), all scales 1, no
//       transposes: "wgmma.mma_async.sync.aligned.m64nNk16.f32.f16.f16 d, da, db, 1, 1, 1, 0, 0";
//       N / 2 accumulator registers per thread.
#pragma once

#include <cstdint>

#include "diffevo/detail/macros.hpp"

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define DIFFEVO_HAS_WGMMA 1
#else
#define DIFFEVO_HAS_WGMMA 0
#endif

namespace diffevo {
namespace detail {

#if DIFFEVO_HAS_WGMMA
// eight accumulator operands d[i], ..., d[i + 7]
#define DIFFEVO_ACC8(i)                                                                                  \
  "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), \
      "+f"(d[i + 7])
#define DIFFEVO_ACC32(i) DIFFEVO_ACC8(i), DIFFEVO_ACC8(i + 8), DIFFEVO_ACC8(i + 16), DIFFEVO_ACC8(i + 24)

__device__ DIFFEVO_INLINE void wgmma_m64n64k16_f16(float* d, std::uint64_t da, std::uint64_t db) {
  asm volatile("wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {"
               "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31"
               "}, %32, %33, 1, 1, 1, 0, 0;\n"
               : DIFFEVO_ACC32(0)
               : "l"(da), "l"(db)
               : "memory");
}

__device__ DIFFEVO_INLINE void wgmma_m64n256k16_f16(float* d, std::uint64_t da, std::uint64_t db) {
  asm volatile("wgmma.mma_async.sync.aligned.m64n256k16.f32.f16.f16 {"
               "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,"
               "%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63,"
               "%64,%65,%66,%67,%68,%69,%70,%71,%72,%73,%74,%75,%76,%77,%78,%79,%80,%81,%82,%83,%84,%85,%86,%87,%88,%89,%90,%91,%92,%93,%94,%95,"
               "%96,%97,%98,%99,%100,%101,%102,%103,%104,%105,%106,%107,%108,%109,%110,%111,%112,%113,%114,%115,%116,%117,%118,%119,%120,%121,%122,%123,%124,%125,%126,%127"
               "}, %128, %129, 1, 1, 1, 0, 0;\n"
               : DIFFEVO_ACC32(0), DIFFEVO_ACC32(32), DIFFEVO_ACC32(64), DIFFEVO_ACC32(96)
               : "l"(da), "l"(db)
               : "memory");
}

#undef DIFFEVO_ACC32
#undef DIFFEVO_ACC8
#endif  // DIFFEVO_HAS_WGMMA

}  // namespace detail
}  // namespace diffevo
