// The asynchronous instructions of the sm_90a warpgroup path, written once for the
// device (inline PTX, detail/wgmma_ptx.cuh) and emulated for the host simulation from
// the PTX ISA's operand layouts:
//
//  * wgmma.mma_async m64nNk16 (f16 inputs, f32 accumulators), A and B read
//    from shared memory through 64-bit matrix descriptors (PTX ISA "Matrix Descriptor
//    Format": bits 0-13 start address >> 4, 16-29 leading-dimension byte offset >> 4,
//    32-45 stride-dimension byte offset >> 4, 62-63 swizzle = 0 here), both operands
//    K-major, no swizzle. In that canonical layout a "core matrix" is 8 rows x 16 bytes
//    (8 elements of K) stored as 128 contiguous bytes; LBO is the distance between core
//    matrices adjacent in K, SBO between core matrices adjacent in M (or N):
//        byte(r, k) = start + (r / 8) SBO + (k / 8) LBO + (r % 8) 16 + (k % 8) 2.
//    Accumulator fragment (PTX ISA "Register Fragments", m64nNk16, f32 D): thread
//    (warp w of the warpgroup, lane = 4 g + t) holds d[i], i < N / 2, at
//        row 16 w + g + 8 ((i >> 1) & 1),  column 8 (i >> 2) + 2 t + (i & 1).
//  * wgmma.fence / commit_group / wait_group N.
//  * cp.async.cg.shared.global 16 bytes,
//    cp.async.commit_group / wait_group N, and fence.proxy.async (generic-proxy shared
//    writes made visible to the async proxy that wgmma reads through).
//
// The emulation is per thread, so it runs inside the execution contexts' ordinary
// phases (detail/exec_host.hpp): a thread's D elements depend only on shared memory
// (A rows of its warp, B columns of its lane), never on another lane's registers. It is
// faithful to the asynchrony, adversarially:
//  * wgmma: at issue, the accumulator registers are saved and overwritten with NaN (the
//    ISA forbids touching them before the wait), and a checksum of the shared-memory
//    operands this thread's elements read is taken; the product is computed at the
//    wait from shared memory as it is then, and if those operands changed in between
//    (a buffer refilled too early, or filled too late) the results are NaN.
//  * cp.async: at issue the 16 destination bytes are poisoned (NaN); they land at the
//    issuing thread's wait_group. A consumer that reads before the wait (or before the
//    barrier after it, in another warp) reads NaN or the previous tile.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>

#include "diffevo/detail/macros.hpp"
#include "diffevo/detail/math.hpp"

#if defined(__CUDACC__)
#include "diffevo/detail/wgmma_ptx.cuh"
#endif

namespace diffevo {
namespace detail {

// ---- 16-bit operand formats (integer arithmetic: bit-identical on host and device) ----

// The input format of the tensor-core products: IEEE half (the kernels scale their
// operands by powers of two into its range; bfloat16 would need no scaling but keeps only
// 16 bits in a hi + lo pair). An enum so that the emulation names what it decodes.
enum class wg_kind : int { f16 = 0 };

// IEEE half, round to nearest even, subnormals kept (finite inputs below 65520).
DIFFEVO_HD DIFFEVO_INLINE std::uint16_t to_f16(float x) {
  const std::uint32_t u = float_bits(x);
  const std::uint32_t sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
  if (a < 0x38800000u) {  // below 2^-14: a subnormal half, m * 2^-24 with m rounded
    const float m = bits_float(a) * 16777216.0f;  // exact (a power-of-two scale)
    const std::uint32_t mi = static_cast<std::uint32_t>(m);
    const float frac = m - static_cast<float>(mi);
    const std::uint32_t r = mi + ((frac > 0.5f || (frac == 0.5f && (mi & 1u))) ? 1u : 0u);
    return static_cast<std::uint16_t>(sign | r);  // r = 1024 is the smallest normal: right
  }
  std::uint32_t h = ((((a >> 23) - 112u) << 10) | ((a >> 13) & 0x3ffu));  // 112 = 127 - 15
  const std::uint32_t rem = a & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // a carry into the exponent is right
  return static_cast<std::uint16_t>(sign | h);
}
DIFFEVO_HD DIFFEVO_INLINE float f16_value(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0) {
    const float v = static_cast<float>(m) * (1.0f / 16777216.0f);
    return bits_float(float_bits(v) | sign);
  }
  return bits_float(sign | ((e + 112u) << 23) | (m << 13));
}

// The conversions the kernels use: on the device the hardware's (cvt.rn.f16.f32 is IEEE
// round to nearest even, subnormals kept: bit for bit what to_f16 computes), on the host
// the integer forms above.
DIFFEVO_HD DIFFEVO_INLINE std::uint16_t f16_rn(float x) {
#if defined(__CUDA_ARCH__)
  unsigned short h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(x));
  return h;
#else
  return to_f16(x);
#endif
}
DIFFEVO_HD DIFFEVO_INLINE float f16_float(std::uint16_t h) {
#if defined(__CUDA_ARCH__)
  float x;
  asm("cvt.f32.f16 %0, %1;" : "=f"(x) : "h"(static_cast<unsigned short>(h)));
  return x;
#else
  return f16_value(h);
#endif
}

// x ~ hi + lo in half precision: about 2 x 11 significant bits; the three products
// hi*hi + hi*lo + lo*hi keep about that accuracy.
template <wg_kind K>
DIFFEVO_HD DIFFEVO_INLINE void split16(float x, std::uint16_t& hi, std::uint16_t& lo) {
  static_assert(K == wg_kind::f16, "half precision");
  hi = f16_rn(x);
  lo = f16_rn(x - f16_float(hi));
}
// Two neighbours (consecutive k) split into half hi and lo words, element x0 in the low
// half: one 32-bit shared store per plane instead of two 16-bit ones.
DIFFEVO_HD DIFFEVO_INLINE void split_f16_pair(float x0, float x1, std::uint32_t& hi, std::uint32_t& lo) {
  std::uint16_t h0, l0, h1, l1;
  split16<wg_kind::f16>(x0, h0, l0);
  split16<wg_kind::f16>(x1, h1, l1);
  hi = static_cast<std::uint32_t>(h0) | (static_cast<std::uint32_t>(h1) << 16);
  lo = static_cast<std::uint32_t>(l0) | (static_cast<std::uint32_t>(l1) << 16);
}

DIFFEVO_HD DIFFEVO_INLINE double value16(wg_kind, std::uint16_t h) { return static_cast<double>(f16_value(h)); }

// max without the NaN handling of a comparison (FMNMX on the device); inputs are never NaN
DIFFEVO_HD DIFFEVO_INLINE float fmax_of(float a, float b) {
#if defined(__CUDA_ARCH__)
  return fmaxf(a, b);
#else
  return std::fmax(a, b);
#endif
}

// A 32-bit shared-memory store at a 4-byte aligned 16-bit element.
DIFFEVO_HD DIFFEVO_INLINE void store_word(std::uint16_t* at, std::uint32_t x) {
#if defined(__CUDA_ARCH__)
  *reinterpret_cast<std::uint32_t*>(at) = x;
#else
  std::memcpy(at, &x, sizeof x);
#endif
}

// ---- the canonical K-major tile and its descriptor ---------------------------------

// Element (r, k) of an R-row, K-column (K % 8 == 0) tile of 16-bit values stored as core
// matrices [k / 8][r / 8][r % 8][k % 8]: LBO = 16 R bytes, SBO = 128 bytes, and the
// 16-wide k-step ks starts 2 ks LBO bytes in.
template <int R>
DIFFEVO_HD DIFFEVO_INLINE int kmajor_index(int r, int k) {
  return (((k >> 3) * (R / 8) + (r >> 3)) << 6) + ((r & 7) << 3) + (k & 7);
}
template <int R>
struct kmajor_layout {
  static constexpr std::uint32_t lbo = 16u * R;
  static constexpr std::uint32_t sbo = 128u;
  static constexpr std::uint32_t kstep_bytes = 2u * lbo;
};

DIFFEVO_HD DIFFEVO_INLINE std::uint64_t wg_descriptor(std::uint32_t smem_addr, std::uint32_t lbo, std::uint32_t sbo) {
  return (static_cast<std::uint64_t>((smem_addr >> 4) & 0x3fffu)) |
         (static_cast<std::uint64_t>((lbo >> 4) & 0x3fffu) << 16) |
         (static_cast<std::uint64_t>((sbo >> 4) & 0x3fffu) << 32);  // base offset 0, no swizzle
}

// Row and column of accumulator element i of thread tid (the fragment of the file comment).
DIFFEVO_HD DIFFEVO_INLINE int wg_row(int tid, int i) { return 16 * ((tid >> 5) & 3) + ((tid & 31) >> 2) + 8 * ((i >> 1) & 1); }
DIFFEVO_HD DIFFEVO_INLINE int wg_col(int tid, int i) { return 8 * (i >> 2) + 2 * (tid & 3) + (i & 1); }

// ---- per-thread async state: empty on the device, the emulation's queues on the host ----

#if defined(__CUDA_ARCH__)
struct async_state {
  DIFFEVO_DEVICE DIFFEVO_INLINE void reset(const void*) {}
  DIFFEVO_DEVICE DIFFEVO_INLINE std::uint32_t smem_addr(const void* p) const {
    return static_cast<std::uint32_t>(__cvta_generic_to_shared(p));
  }
};
#else
struct async_state {
  static constexpr int kMaxWg = 64, kMaxSnap = 4, kMaxCp = 192, kMaxN = 256;
  struct wg_op {
    std::uint64_t da, db, sum;
    float* acc;
    int n, group;
    wg_kind kind;
  };
  struct snap {
    float* acc;
    int n;
    float v[kMaxN / 2];
  };
  struct cp_op {
    unsigned char* dst;
    const unsigned char* src;
    int group;
  };
  const unsigned char* base;  // the block's shared memory: descriptor address 0
  int n_wg, wg_commits, n_snap, n_cp, cp_commits;
  wg_op wg[kMaxWg];
  snap sn[kMaxSnap];
  cp_op cp[kMaxCp];

  void reset(const void* smem_base) {
    base = static_cast<const unsigned char*>(smem_base);
    n_wg = wg_commits = n_snap = n_cp = cp_commits = 0;
  }
  std::uint32_t smem_addr(const void* p) const {
    return static_cast<std::uint32_t>(static_cast<const unsigned char*>(p) - base);
  }
};
#endif

#if !defined(__CUDA_ARCH__)
// Host emulation details (see the file comment).
namespace wg_emu {

inline const unsigned char* operand_byte(const async_state& st, std::uint64_t desc, int r, int k) {
  const std::uint32_t start = static_cast<std::uint32_t>(desc & 0x3fffu) << 4;
  const std::uint32_t lbo = static_cast<std::uint32_t>((desc >> 16) & 0x3fffu) << 4;
  const std::uint32_t sbo = static_cast<std::uint32_t>((desc >> 32) & 0x3fffu) << 4;
  return st.base + start + (r >> 3) * sbo + (k >> 3) * lbo + (r & 7) * 16 + (k & 7) * 2;
}
// The ISA's accumulator fragment, written out again here rather than shared with the
// kernels' wg_row / wg_col: the emulation is the independent reference they are tested
// against (a wrong index in the kernels' copy must show up as wrong numbers).
inline int isa_row(int tid, int i) { return 16 * ((tid % 128) / 32) + (tid % 32) / 4 + ((i % 4) >= 2 ? 8 : 0); }
inline int isa_col(int tid, int i) { return 8 * (i / 4) + 2 * (tid % 4) + i % 2; }

inline std::uint16_t operand(const async_state& st, std::uint64_t desc, int r, int k) {
  std::uint16_t h;
  std::memcpy(&h, operand_byte(st, desc, r, k), 2);
  return h;
}

// FNV-1a over the operands that thread tid's elements read: its two A rows, its N / 4 B rows.
inline std::uint64_t checksum(const async_state& st, const async_state::wg_op& op, int tid) {
  std::uint64_t h = 1469598103934665603ull;
  auto mix = [&h](std::uint16_t x) { h = (h ^ x) * 1099511628211ull; };
  for (int half = 0; half < 2; ++half)
    for (int k = 0; k < 16; ++k) mix(operand(st, op.da, isa_row(tid, 2 * half), k));
  for (int i = 0; i < op.n / 2; i += 2)
    for (int k = 0; k < 16; ++k) mix(operand(st, op.db, isa_col(tid, i), k)), mix(operand(st, op.db, isa_col(tid, i + 1), k));
  return h;
}

inline async_state::snap* find_snap(async_state& st, float* acc) {
  for (int s = 0; s < st.n_snap; ++s)
    if (st.sn[s].acc == acc) return &st.sn[s];
  return nullptr;
}

inline void issue(async_state& st, int tid, float* acc, int n, wg_kind kind, std::uint64_t da, std::uint64_t db) {
  if (st.n_wg >= async_state::kMaxWg) throw std::logic_error("wgmma emulation: too many operations in flight");
  if (!find_snap(st, acc)) {
    if (st.n_snap >= async_state::kMaxSnap) throw std::logic_error("wgmma emulation: too many accumulators in flight");
    async_state::snap& s = st.sn[st.n_snap++];
    s.acc = acc;
    s.n = n;
    for (int i = 0; i < n / 2; ++i) s.v[i] = acc[i];
    for (int i = 0; i < n / 2; ++i) acc[i] = bits_float(0xffffffffu);  // untouchable until the wait
  }
  async_state::wg_op& op = st.wg[st.n_wg++];
  op = async_state::wg_op{da, db, 0, acc, n, st.wg_commits, kind};
  op.sum = checksum(st, op, tid);
}

inline void complete(async_state& st, int tid, const async_state::wg_op& op) {
  async_state::snap* s = find_snap(st, op.acc);
  const bool same = checksum(st, op, tid) == op.sum;
  for (int i = 0; i < op.n / 2; ++i) {
    double acc = s->v[i];
    const int r = isa_row(tid, i), c = isa_col(tid, i);
    for (int k = 0; k < 16; ++k) acc += value16(op.kind, operand(st, op.da, r, k)) * value16(op.kind, operand(st, op.db, c, k));
    s->v[i] = same ? static_cast<float>(acc) : bits_float(0xffffffffu);
  }
}

inline void wait(async_state& st, int tid, int pending) {
  const int done_below = st.wg_commits - pending;  // groups [0, done_below) complete
  int kept = 0;
  for (int o = 0; o < st.n_wg; ++o) {
    if (st.wg[o].group < done_below)
      complete(st, tid, st.wg[o]);
    else
      st.wg[kept++] = st.wg[o];
  }
  st.n_wg = kept;
  int snaps = 0;
  for (int s = 0; s < st.n_snap; ++s) {
    bool busy = false;
    for (int o = 0; o < st.n_wg; ++o) busy = busy || st.wg[o].acc == st.sn[s].acc;
    if (busy) {
      st.sn[snaps++] = st.sn[s];
    } else {
      for (int i = 0; i < st.sn[s].n / 2; ++i) st.sn[s].acc[i] = st.sn[s].v[i];
    }
  }
  st.n_snap = snaps;
}

inline void cp_issue(async_state& st, void* dst, const void* src) {
  if (st.n_cp >= async_state::kMaxCp) throw std::logic_error("cp.async emulation: too many copies in flight");
  st.cp[st.n_cp++] = async_state::cp_op{static_cast<unsigned char*>(dst), static_cast<const unsigned char*>(src),
                                        st.cp_commits};
  std::memset(dst, 0xff, 16);  // undefined until the wait
}

inline void cp_wait(async_state& st, int pending) {
  const int done_below = st.cp_commits - pending;
  int kept = 0;
  for (int o = 0; o < st.n_cp; ++o) {
    const async_state::cp_op& c = st.cp[o];
    if (c.group < done_below) {
      std::memcpy(c.dst, c.src, 16);
    } else {
      st.cp[kept++] = c;
    }
  }
  st.n_cp = kept;
}

}  // namespace wg_emu
#endif

// ---- the operations, one call per thread (inside a phase) ----------------------------

// D(64 x N) += A(64 x 16) B(N x 16)^T, both from shared memory (descriptors).
template <int N, wg_kind K>
DIFFEVO_HD DIFFEVO_INLINE void wg_mma(async_state& st, int tid, float (&acc)[N / 2], std::uint64_t da,
                                      std::uint64_t db) {
  static_assert(N == 64 || N == 256, "the shapes built: m64n64k16 and m64n256k16");
  static_assert(K == wg_kind::f16, "half precision");
#if defined(__CUDA_ARCH__)
  (void)st;
  (void)tid;
#if DIFFEVO_HAS_WGMMA
  if (N == 64) wgmma_m64n64k16_f16(acc, da, db);
  if (N == 256) wgmma_m64n256k16_f16(acc, da, db);
#else
  (void)acc;
  (void)da;
  (void)db;
  __trap();  // the warpgroup path is built for sm_90a only
#endif
#else
  wg_emu::issue(st, tid, acc, N, K, da, db);
#endif
}

// wgmma.fence: orders this thread's register accesses of the accumulators before the
// wgmma operations that follow (no-op in the emulation: accesses are program order).
DIFFEVO_HD DIFFEVO_INLINE void wg_fence() {
#if DIFFEVO_HAS_WGMMA
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}

DIFFEVO_HD DIFFEVO_INLINE void wg_commit(async_state& st) {
#if defined(__CUDA_ARCH__)
  (void)st;
#if DIFFEVO_HAS_WGMMA
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
#else
  ++st.wg_commits;
#endif
}

// Waits until at most Pending committed wgmma groups are in flight.
template <int Pending>
DIFFEVO_HD DIFFEVO_INLINE void wg_wait(async_state& st, int tid) {
#if defined(__CUDA_ARCH__)
  (void)st;
  (void)tid;
#if DIFFEVO_HAS_WGMMA
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(Pending) : "memory");
#endif
#else
  wg_emu::wait(st, tid, Pending);
#endif
}

// 16 bytes global -> shared, asynchronously (the prologue pads every tile: no bounds).
DIFFEVO_HD DIFFEVO_INLINE void cp_async16(async_state& st, void* dst, const void* src) {
#if defined(__CUDA_ARCH__)
#if __CUDA_ARCH__ >= 800
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(st.smem_addr(dst)), "l"(src) : "memory");
#else
  (void)st;
  (void)dst;
  (void)src;
  __trap();
#endif
#else
  wg_emu::cp_issue(st, dst, src);
#endif
}

DIFFEVO_HD DIFFEVO_INLINE void cp_commit(async_state& st) {
#if defined(__CUDA_ARCH__)
  (void)st;
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#else
  ++st.cp_commits;
#endif
}

template <int Pending>
DIFFEVO_HD DIFFEVO_INLINE void cp_wait(async_state& st) {
#if defined(__CUDA_ARCH__)
  (void)st;
  asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending) : "memory");
#else
  wg_emu::cp_wait(st, Pending);
#endif
}

// Shared-memory writes of this thread (st.shared, landed cp.async) made visible to the
// async proxy that wgmma reads through; a barrier must follow before another thread's
// wgmma reads them.
DIFFEVO_HD DIFFEVO_INLINE void fence_async_smem() {
#if DIFFEVO_HAS_WGMMA
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

}  // namespace detail
}  // namespace diffevo
