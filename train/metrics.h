// The metrics file: one JSON object per line (JSONL), flushed as written so a crashed run
// keeps its curve. On --resume, records past the checkpoint's step are dropped first, so a
// resumed run's file reads exactly like an uninterrupted one.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

namespace mu {

class MetricsLog {
 public:
  MetricsLog() = default;
  // Opens `path` for appending ("" disables). keep_up_to >= 0 rewrites the file first,
  // keeping only records whose "step" <= keep_up_to; < 0 truncates the file.
  MetricsLog(const std::string& path, int64_t keep_up_to);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;
  MetricsLog(MetricsLog&& o) noexcept;
  MetricsLog& operator=(MetricsLog&& o) noexcept;
  void write(const nlohmann::json& record);

 private:
  std::FILE* f_ = nullptr;
  std::string path_;
};

}  // namespace mu
