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
