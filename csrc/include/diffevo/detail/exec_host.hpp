// Host execution contexts: a kernel's block body (a template over the context) runs
// here on the CPU from the very same source that the GPU runs.
//
//  * host_sim_ctx  -- the CUDA block, faithfully: `threads` simulated threads, their
//    phases run one thread after another between barriers, in a per-block "shared
//    memory" buffer; warp collectives (mma.sync) are emulated from the PTX fragment
//    layout. Used by the tests (diffevo._core.simulate_block_kernel).
//  * host_fast_ctx -- one thread per block, phases run at once: the fast host path
//    (backend 'cpp') runs the same block body with a host-sized tile configuration.
//
// What the simulation catches. Phases passed to threads() and warp collectives (mma)
// are queued; a barrier runs the queue warp by warp -- warp 0 runs everything queued
// up to the barrier, then warp 1, ... -- and, inside a warp, lane by lane between its
// collectives: lane 0 runs its phases up to the next mma, then lane 1, ... With every
// barrier in place that is a legal CUDA schedule, so correct code gives the right
// numbers. A missing barrier lets the first warp (and the first lane) run ahead into
// the next phase and read shared memory that the others have not written yet -- which
// the simulation poisons with NaN bytes at every block start, or which still holds the
// previous tile -- so a missing barrier shows up as wrong numbers. Per-thread state
// is poisoned the same way, so a value read before it is written is NaN too.
// `reverse_threads` runs warps and lanes in the opposite order.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <vector>

#include "diffevo/detail/math.hpp"
#include "diffevo/detail/params.hpp"

namespace diffevo {
namespace detail {

// TF32 as the tensor core reads it: the low 13 mantissa bits are ignored.
inline double tf32_operand(std::uint32_t u) {
  return static_cast<double>(bits_float(u & 0xffffe000u));
}

// One warp's m16n8k8 TF32 MMA, D = A B + C, from the 32 lanes' fragments, following the
// PTX ISA fragment layout (groupID = lane >> 2, threadID_in_group = lane % 4):
//   A (16x8, row): a0 (g, t), a1 (g+8, t), a2 (g, t+4), a3 (g+8, t+4)
//   B (8x8, col):  b0 (k=t, n=g), b1 (k=t+4, n=g)
//   C/D (16x8):    c0 (g, 2t), c1 (g, 2t+1), c2 (g+8, 2t), c3 (g+8, 2t+1)
// Products of TF32 values are exact in double; the sum is rounded once to f32.
inline void emulate_mma_m16n8k8_tf32(const mma_operands* lanes) {
  double A[16][8], B[8][8], C[16][8];
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane >> 2, t = lane & 3;
    const mma_operands& o = lanes[lane];
    A[g][t] = tf32_operand(o.a[0]);
    A[g + 8][t] = tf32_operand(o.a[1]);
    A[g][t + 4] = tf32_operand(o.a[2]);
    A[g + 8][t + 4] = tf32_operand(o.a[3]);
    B[t][g] = tf32_operand(o.b[0]);
    B[t + 4][g] = tf32_operand(o.b[1]);
    C[g][2 * t] = o.c[0];
    C[g][2 * t + 1] = o.c[1];
    C[g + 8][2 * t] = o.c[2];
    C[g + 8][2 * t + 1] = o.c[3];
  }
  float D[16][8];
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 8; ++j) {
      double acc = C[i][j];
      for (int kk = 0; kk < 8; ++kk) acc += A[i][kk] * B[kk][j];
      D[i][j] = static_cast<float>(acc);
    }
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane >> 2, t = lane & 3;
    float* c = lanes[lane].c;
    c[0] = D[g][2 * t];
    c[1] = D[g][2 * t + 1];
    c[2] = D[g + 8][2 * t];
    c[3] = D[g + 8][2 * t + 1];
  }
}

// A 64-byte aligned byte buffer (shared memory, per-thread state).
class aligned_buffer {
 public:
  void reserve(std::size_t bytes) {
    if (bytes <= size_) return;
    const std::size_t rounded = (bytes + 63) / 64 * 64;
    mem_.reset(static_cast<unsigned char*>(std::aligned_alloc(64, rounded)));
    if (!mem_) throw std::bad_alloc();
    size_ = rounded;
  }
  unsigned char* data() const { return mem_.get(); }
  std::size_t size() const { return size_; }

 private:
  struct freer {
    void operator()(unsigned char* p) const { std::free(p); }
  };
  std::unique_ptr<unsigned char, freer> mem_;
  std::size_t size_ = 0;
};

constexpr unsigned char kPoisonByte = 0xff;  // 0xffffffff / 0xffff...ff: a NaN in float and double

class host_sim_ctx {
 public:
  static constexpr bool is_host = true;

  host_sim_ctx(int threads, bool reverse_threads) : threads_(threads), reverse_(reverse_threads) {
    if (threads <= 0) throw std::invalid_argument("host_sim_ctx: threads must be positive");
  }

  void begin_block(std::int64_t bx, std::int64_t by, std::int64_t bz) {
    bx_ = bx;
    by_ = by;
    bz_ = bz;
    if (smem_.size()) std::memset(smem_.data(), kPoisonByte, smem_.size());
    shared_used_ = 0;
  }
  void end_block() {
    if (!pending_.empty())
      throw std::logic_error("host_sim_ctx: the block body returned with phases not run (end with ctx.end())");
  }

  std::int64_t block_x() const { return bx_; }
  std::int64_t block_y() const { return by_; }
  std::int64_t block_z() const { return bz_; }
  int nthreads() const { return threads_; }

  // One phase of every thread: queued until the next barrier (see the file comment).
  template <class F>
  void threads(F&& f) {
    pending_.push_back(item{std::function<void(int)>(std::forward<F>(f)), nullptr});
  }
  void barrier() { flush(); }
  void end() { flush(); }

  // The block's shared memory: one object of type S per call, laid out one after
  // another in a poisoned buffer (call each once per block, in the same order).
  template <class S>
  S& shared() {
    static_assert(std::is_trivially_copyable<S>::value, "shared memory holds plain data");
    const std::size_t offset = (shared_used_ + 63) / 64 * 64;
    const std::size_t need = offset + sizeof(S);
    if (need > smem_.size()) {
      if (shared_used_ != 0)
        throw std::logic_error("host_sim_ctx: shared memory grew within a block");
      smem_.reserve(need);
      std::memset(smem_.data(), kPoisonByte, smem_.size());
    }
    shared_used_ = need;
    return *reinterpret_cast<S*>(smem_.data() + offset);
  }

  // Per-thread state (a thread's registers): one S per simulated thread, poisoned.
  template <class S>
  class local {
    static_assert(std::is_trivially_copyable<S>::value, "thread state holds plain data");

   public:
    explicit local(host_sim_ctx& ctx) : n_(ctx.nthreads()) {
      buf_.reserve(sizeof(S) * static_cast<std::size_t>(n_));
      std::memset(buf_.data(), kPoisonByte, buf_.size());
    }
    S& operator()(int tid) { return reinterpret_cast<S*>(buf_.data())[tid]; }

   private:
    int n_;
    aligned_buffer buf_;
  };

  // Warp-collective mma.sync m16n8k8 TF32: f(tid) gives each thread's operands when the
  // warp reaches it (queued like a phase; see the file comment).
  template <class F>
  void mma(F&& f) {
    if (threads_ % 32 != 0) throw std::logic_error("host_sim_ctx: mma needs whole warps");
    pending_.push_back(item{nullptr, std::function<mma_operands(int)>(std::forward<F>(f))});
  }

 private:
  struct item {
    std::function<void(int)> phase;
    std::function<mma_operands(int)> collective;
  };

  void flush() {
    const int nwarps = (threads_ + 31) / 32;
    for (int wi = 0; wi < nwarps; ++wi) {
      const int w = reverse_ ? nwarps - 1 - wi : wi;
      const int lo = w * 32, n = std::min(threads_ - lo, 32);
      std::size_t seg = 0;
      for (std::size_t i = 0; i <= pending_.size(); ++i) {
        if (i < pending_.size() && !pending_[i].collective) continue;
        for (int li = 0; li < n; ++li) {  // the lanes' phases up to this collective
          const int tid = lo + (reverse_ ? n - 1 - li : li);
          for (std::size_t kk = seg; kk < i; ++kk) pending_[kk].phase(tid);
        }
        if (i < pending_.size()) {
          mma_operands lanes[32];
          for (int lane = 0; lane < 32; ++lane) lanes[lane] = pending_[i].collective(lo + lane);
          emulate_mma_m16n8k8_tf32(lanes);
        }
        seg = i + 1;
      }
    }
    pending_.clear();
  }

  int threads_;
  bool reverse_;
  std::int64_t bx_ = 0, by_ = 0, bz_ = 0;
  aligned_buffer smem_;
  std::size_t shared_used_ = 0;
  std::vector<item> pending_;
};

class host_fast_ctx {
 public:
  static constexpr bool is_host = true;

  void begin_block(std::int64_t bx, std::int64_t by, std::int64_t bz) {
    bx_ = bx;
    by_ = by;
    bz_ = bz;
    shared_used_ = 0;
  }
  void end_block() {}
  std::int64_t block_x() const { return bx_; }
  std::int64_t block_y() const { return by_; }
  std::int64_t block_z() const { return bz_; }
  int nthreads() const { return 1; }

  template <class F>
  void threads(F&& f) {
    f(0);
  }
  void barrier() {}
  void end() {}

  template <class S>
  S& shared() {
    const std::size_t offset = (shared_used_ + 63) / 64 * 64;
    const std::size_t need = offset + sizeof(S);
    if (need > smem_.size()) {
      if (shared_used_ != 0) throw std::logic_error("host_fast_ctx: shared memory grew within a block");
      smem_.reserve(need);
    }
    shared_used_ = need;
    return *reinterpret_cast<S*>(smem_.data() + offset);
  }

  template <class S>
  class local {
   public:
    explicit local(host_fast_ctx&) {}
    S& operator()(int) { return v_; }

   private:
    S v_;
  };

 private:
  std::int64_t bx_ = 0, by_ = 0, bz_ = 0;
  aligned_buffer smem_;
  std::size_t shared_used_ = 0;
};

// Every block of a grid through the simulated CUDA block, one block after another.
template <class Body>
void run_grid_simulated(grid3 g, int threads, bool reverse_threads, Body&& body) {
  host_sim_ctx ctx(threads, reverse_threads);
  for (std::int64_t z = 0; z < g.z; ++z)
    for (std::int64_t y = 0; y < g.y; ++y)
      for (std::int64_t x = 0; x < g.x; ++x) {
        ctx.begin_block(x, y, z);
        body(ctx);
        ctx.end_block();
      }
}

// Every block of a grid through host_fast_ctx, spread over `workers` std::threads
// (0: one per hardware thread) that take blocks from a shared counter.
template <class Body>
void run_grid_fast(grid3 g, int workers, Body&& body) {
  const std::int64_t total = g.x * g.y * g.z;
  if (total <= 0) return;
  if (workers <= 0) workers = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  workers = static_cast<int>(std::min<std::int64_t>(workers, total));
  std::atomic<std::int64_t> next{0};
  auto work = [&]() {
    host_fast_ctx ctx;
    for (std::int64_t i = next++; i < total; i = next++) {
      const std::int64_t x = i % g.x, y = (i / g.x) % g.y, z = i / (g.x * g.y);
      ctx.begin_block(x, y, z);
      body(ctx);
      ctx.end_block();
    }
  };
  if (workers == 1) {
    work();
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(static_cast<std::size_t>(workers - 1));
  for (int w = 1; w < workers; ++w) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
}

}  // namespace detail
}  // namespace diffevo
