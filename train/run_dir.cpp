#include "train/run_dir.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "core/error.h"
#include "core/fileio.h"

namespace mu {

static const char* kMarker = "COMPLETE";

std::string checkpoint_dir(const std::string& out, int64_t step) {
  return out + strformat("/ckpt_%08lld", static_cast<long long>(step));
}

void make_dirs(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  MU_CHECK(!ec, "cannot create directory %s: %s", path.c_str(), ec.message().c_str());
}

void mark_complete(const std::string& ckpt_dir, int64_t step) {
  const std::string text = strformat("step %lld\n", static_cast<long long>(step));
  write_file_atomic(ckpt_dir + "/" + kMarker, text.data(), text.size());
}

bool is_complete(const std::string& ckpt_dir) { return file_exists(ckpt_dir + "/" + kMarker); }

namespace {
struct Found {
  int64_t step;
  std::string dir;
  bool complete;
};
std::vector<Found> scan(const std::string& out) {
  std::vector<Found> v;
  DIR* d = opendir(out.c_str());
  if (!d) return v;
  while (dirent* e = readdir(d)) {
    long long step;
    char tail;
    if (std::sscanf(e->d_name, "ckpt_%lld%c", &step, &tail) != 1) continue;
    std::string path = out + "/" + e->d_name;
    v.push_back({step, path, is_complete(path)});
  }
  closedir(d);
  std::sort(v.begin(), v.end(), [](const Found& a, const Found& b) { return a.step < b.step; });
  return v;
}
}  // namespace

int64_t latest_checkpoint(const std::string& out, std::string* dir) {
  std::vector<Found> v = scan(out);
  for (auto it = v.rbegin(); it != v.rend(); ++it)
    if (it->complete) {
      if (dir) *dir = it->dir;
      return it->step;
    }
  return -1;
}

std::string existing_run(const std::string& out) {
  const std::vector<Found> v = scan(out);
  std::string what;
  if (!v.empty())
    what = strformat("checkpoints up to step %lld (%s)", static_cast<long long>(v.back().step),
                     v.back().dir.substr(v.back().dir.rfind('/') + 1).c_str());
  if (file_exists(out + "/model.safetensors")) what += what.empty() ? "model.safetensors" : " and model.safetensors";
  return what;
}

void prune_checkpoints(const std::string& out, int keep) {
  std::vector<Found> v = scan(out);
  int complete_seen = 0;
  int64_t newest_complete = -1;
  for (auto it = v.rbegin(); it != v.rend(); ++it) {
    if (it->complete) {
      if (newest_complete < 0) newest_complete = it->step;
      if (++complete_seen <= keep) continue;
    } else if (newest_complete < 0 || it->step > newest_complete) {
      continue;  // possibly being written: leave it
    }
    std::error_code ec;
    // The marker goes first so a crash mid-removal never leaves a "complete" half checkpoint.
    std::filesystem::remove(it->dir + "/" + kMarker, ec);
    std::filesystem::remove_all(it->dir, ec);
  }
}

}  // namespace mu
