// Portability macros: the same source compiles as plain C++ (host) and as CUDA (nvcc).
#pragma once

#if defined(__CUDACC__)
#define DIFFEVO_HD __host__ __device__
#define DIFFEVO_DEVICE __device__
#define DIFFEVO_INLINE __forceinline__
#else
#define DIFFEVO_HD
#define DIFFEVO_DEVICE
#define DIFFEVO_INLINE inline
#endif

// #pragma unroll only where nvcc reads it; the host compiler unrolls on its own.
#if defined(__CUDA_ARCH__)
#define DIFFEVO_UNROLL _Pragma("unroll")
#else
#define DIFFEVO_UNROLL
#endif
