// The arguments of one pairwise-sums launch, shared by the host and device forms.
#pragma once

#include <cstdint>

#include "diffevo/detail/macros.hpp"
#include "diffevo/detail/math.hpp"

namespace diffevo {
namespace detail {

// For every batch r and query row i (SPEC.md section 3, in base-2 log space):
//   e_ij = log2(c_j) - ||q_i - s k_j||^2 * inv2     (inv2 = log2(e) / (2 sigma^2))
//   M_i  = max_j e_ij (online_max) or 0
//   A_i  = sum_j 2^(e_ij - M_i) v_j,  B_i = sum_j 2^(e_ij - M_i)
// and M is handed back in natural-log units (M_i * ln 2).
template <class T>
struct pairwise_params {
  const T* q;     // [batch, nq, d]  queries
  const T* k;     // [batch, nk, d]  keys
  const T* v;     // [batch, nk, dv] values
  const T* logc;  // [batch, nk]     natural log of the per-key coefficient (may be -inf)
  T* a;           // [batch, nq, dv] out
  T* b;           // [batch, nq]     out
  T* m;           // [batch, nq]     out
  std::int64_t batch, nq, nk, d, dv;
  T s;     // key scale (sqrt(alpha))
  T inv2;  // inv2sigma2 * log2(e)
  // tensor-core path only, filled by its prologue:
  T* mu;  // [batch, d]  mean of the keys (the centre)
  T* qn;  // [batch, nq] -inv2 * ||q_i - s mu||^2
  T* kn;  // [batch, nk] log2(c_j) - inv2 * s^2 ||k_j - mu||^2
};

// The operands one thread contributes to mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32:
// a[4] (TF32 bit patterns), b[2] (TF32), c[4] (f32 accumulators, updated in place).
struct mma_operands {
  const std::uint32_t* a;
  const std::uint32_t* b;
  float* c;
};

// Grid of a launch: x over query-row blocks, y over value-column chunks, z over batches.
struct grid3 {
  std::int64_t x, y, z;
};

// The kernel-path rule, defined once: float32 takes the tensor cores (the mma path)
// from this many dimensions of the distance space; below it, and for float64, the SIMT
// path (direct differences). diffevo::cuda::choose_path applies it, _core.kernel_configs()
// hands it to Python (the cuda backend and bench/gpumodel read it there).
constexpr std::int64_t tensor_core_min_d = 32;

DIFFEVO_HD DIFFEVO_INLINE bool takes_tensor_cores(bool is_float32, std::int64_t d) {
  return is_float32 && d >= tensor_core_min_d;
}

// One definition of the packing, for the host API, the host simulation and the CUDA
// launches alike (the argument checks are in detail/checks.hpp).
template <class T>
pairwise_params<T> make_params(const T* q, const T* k, const T* v, const T* logc, std::int64_t batch,
                               std::int64_t nq, std::int64_t nk, std::int64_t d, std::int64_t dv,
                               double s, double inv2sigma2, T* a, T* b, T* m) {
  // in member order: the arrays, the extents, s, inv2 (base 2), no workspace yet
  return pairwise_params<T>{q, k, v, logc, a, b, m, batch, nq, nk, d, dv, static_cast<T>(s),
                            static_cast<T>(inv2sigma2 * kLog2e), nullptr, nullptr, nullptr};
}

}  // namespace detail
}  // namespace diffevo
