// Scalar math shared by the host and device forms of the kernels.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "diffevo/detail/macros.hpp"

namespace diffevo {
namespace detail {

// log2(e) and ln(2): the kernels work in base 2 (exp2 is the hardware's exp).
constexpr double kLog2e = 1.4426950408889634073599246810019;
constexpr double kLn2 = 0.69314718055994530941723212145818;

// -inf without std::numeric_limits (not usable in device code without
// --expt-relaxed-constexpr, which consumers of the headers should not need).
template <class T>
DIFFEVO_HD DIFFEVO_INLINE T neg_inf() {
  return -static_cast<T>(HUGE_VAL);
}

template <class T>
DIFFEVO_HD DIFFEVO_INLINE T min_of(T a, T b) {
  return b < a ? b : a;
}
template <class T>
DIFFEVO_HD DIFFEVO_INLINE T max_of(T a, T b) {
  return a < b ? b : a;
}

// 2^x. On the device, float uses the special-function unit (ex2.approx.ftz.f32,
// one MUFU.EX2; relative error about 2^-22, subnormal results flushed to zero);
// double uses the accurate libdevice exp2. The host uses std::exp2.
DIFFEVO_HD DIFFEVO_INLINE float fast_exp2(float x) {
#if defined(__CUDA_ARCH__)
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
#else
  return std::exp2(x);
#endif
}
DIFFEVO_HD DIFFEVO_INLINE double fast_exp2(double x) {
  return exp2(x);
}

// ---- TF32 (the tensor cores' 19-bit float: 8-bit exponent, 10-bit mantissa) ----

DIFFEVO_HD DIFFEVO_INLINE std::uint32_t float_bits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
#endif
}
DIFFEVO_HD DIFFEVO_INLINE float bits_float(std::uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
#endif
}

// Round to the nearest TF32, ties away from zero (what cvt.rna.tf32.f32 does), returned
// as the f32 bit pattern with the low 13 bits clear. Written in integer arithmetic on
// both sides: on sm_80/sm_90 cvt.rna.tf32.f32 is not one SASS instruction but an
// emulation (FSETP for inf/NaN, IADD, SEL, LOP3, ...) of ~5 instructions, and the splits
// sit in the tensor-core inner loops. For finite inputs -- the kernels never feed it inf
// or NaN -- adding half a TF32 ulp to the magnitude bits and truncating is the same
// rounding bit for bit (a carry into the exponent is the correct round-up), so the
// device needs only IADD + LOP3. The host keeps the inf/NaN guard (not on a hot path).
DIFFEVO_HD DIFFEVO_INLINE std::uint32_t to_tf32(float x) {
#if defined(__CUDA_ARCH__)
  return (float_bits(x) + 0x1000u) & 0xffffe000u;
#else
  std::uint32_t u = float_bits(x);
  if ((u & 0x7f800000u) != 0x7f800000u) u += 0x1000u;  // half an ulp of TF32 (magnitude)
  return u & 0xffffe000u;
#endif
}

// 3xTF32 split: x ~ hi + lo with hi = tf32(x), lo = tf32(x - hi); the three products
// hi*hi + hi*lo + lo*hi of two such splits recover about fp32 accuracy.
DIFFEVO_HD DIFFEVO_INLINE void split_tf32(float x, std::uint32_t& hi, std::uint32_t& lo) {
  hi = to_tf32(x);
  lo = to_tf32(x - bits_float(hi));
}

}  // namespace detail
}  // namespace diffevo
