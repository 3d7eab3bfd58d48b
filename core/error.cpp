#include "core/error.h"

#include <cstdio>
#include <cstdlib>
#include <vector>

namespace mu {

std::string vstrformat(const char* fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = std::vsnprintf(nullptr, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0) return fmt;
  std::vector<char> buf(static_cast<size_t>(n) + 1);
  std::vsnprintf(buf.data(), buf.size(), fmt, ap);
  return std::string(buf.data(), static_cast<size_t>(n));
}

std::string strformat(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::string s = vstrformat(fmt, ap);
  va_end(ap);
  return s;
}

// The source location is kept out of the user-facing message (users need the file and
// field they gave us, not ours); MU_DEBUG_ERRORS=1 appends it for developers.
void fail_at(const char* file, int line, const std::string& msg) {
  static const bool debug = std::getenv("MU_DEBUG_ERRORS") != nullptr;
  if (debug) throw Error(msg + strformat(" [%s:%d]", file, line));
  throw Error(msg);
}

}  // namespace mu
