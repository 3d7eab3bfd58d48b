// One error family for the whole engine: every failure becomes a mu::Error carrying a
// message that names what failed and where. Tools catch it in main() and exit 1, so bad
// input never ends in a signal. CUDA/cuBLASLt/NCCL/MPI checks (core/cuda_check.h, later
// core/comm) format through the same mu::Error.
#pragma once
#include <cstdarg>
#include <stdexcept>
#include <string>

namespace mu {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// printf-style formatting into a std::string.
std::string strformat(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string vstrformat(const char* fmt, va_list ap);

[[noreturn]] void fail_at(const char* file, int line, const std::string& msg);

}  // namespace mu

// MU_FAIL("file %s: tensor %s has ...", ...) throws mu::Error with the message.
#define MU_FAIL(...) ::mu::fail_at(__FILE__, __LINE__, ::mu::strformat(__VA_ARGS__))

// MU_CHECK(cond, "message %d", x): throws mu::Error when cond is false.
#define MU_CHECK(cond, ...)                   \
  do {                                        \
    if (!(cond)) MU_FAIL(__VA_ARGS__);        \
  } while (0)
