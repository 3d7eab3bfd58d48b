#include "train/metrics.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/fileio.h"

namespace mu {

MetricsLog::MetricsLog(const std::string& path, int64_t keep_up_to) : path_(path) {
  if (path.empty()) return;
  std::string kept;
  if (keep_up_to >= 0 && file_exists(path)) {
    std::istringstream in(read_text_file(path));
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.is_object() || !j.contains("step")) continue;  // a torn last line
      if (j["step"].get<int64_t>() <= keep_up_to) kept += line + "\n";
    }
  }
  write_file_atomic(path, kept.data(), kept.size());
  f_ = std::fopen(path.c_str(), "a");
  MU_CHECK(f_, "cannot open metrics file %s: %s", path.c_str(), std::strerror(errno));
}

MetricsLog::~MetricsLog() {
  if (f_) std::fclose(f_);
}

MetricsLog::MetricsLog(MetricsLog&& o) noexcept : f_(o.f_), path_(std::move(o.path_)) { o.f_ = nullptr; }

MetricsLog& MetricsLog::operator=(MetricsLog&& o) noexcept {
  if (this != &o) {
    if (f_) std::fclose(f_);
    f_ = o.f_;
    path_ = std::move(o.path_);
    o.f_ = nullptr;
  }
  return *this;
}

void MetricsLog::write(const nlohmann::json& record) {
  if (!f_) return;
  std::string s = record.dump() + "\n";
  MU_CHECK(std::fwrite(s.data(), 1, s.size(), f_) == s.size() && std::fflush(f_) == 0,
           "cannot write metrics file %s: %s", path_.c_str(), std::strerror(errno));
}

}  // namespace mu
