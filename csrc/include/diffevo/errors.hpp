// Error reporting that carries file:line, turned into Python exceptions by the
// binding layer (std::invalid_argument -> ValueError, std::runtime_error -> RuntimeError).
#pragma once

#include <stdexcept>
#include <string>

#define DIFFEVO_STRINGIFY_DETAIL(x) #x
#define DIFFEVO_STRINGIFY(x) DIFFEVO_STRINGIFY_DETAIL(x)

// Precondition check: throws std::invalid_argument("file:line: msg").
#define DIFFEVO_EXPECTS(cond, msg)                                                    \
  do {                                                                                \
    if (!(cond))                                                                      \
      throw std::invalid_argument(std::string(__FILE__ ":" DIFFEVO_STRINGIFY(__LINE__) \
                                              ": ") + (msg));                         \
  } while (0)

namespace diffevo {
// A failed CUDA runtime call (the message names the call, the error and file:line).
struct cuda_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
}  // namespace diffevo

// CUDA runtime call check (expand only where <cuda_runtime_api.h> is included):
// throws diffevo::cuda_error("file:line: call: cudaErrorName: description").
#define DIFFEVO_CUDA_TRY(call)                                                              \
  do {                                                                                      \
    const cudaError_t diffevo_status_ = (call);                                             \
    if (diffevo_status_ != cudaSuccess) {                                                   \
      (void)cudaGetLastError(); /* reset the (non-sticky) last-error state */           \
      throw ::diffevo::cuda_error(std::string(__FILE__ ":" DIFFEVO_STRINGIFY(__LINE__) ": ") + \
                                  #call ": " + cudaGetErrorName(diffevo_status_) + ": " +  \
                                  cudaGetErrorString(diffevo_status_));                    \
    }                                                                                       \
  } while (0)
