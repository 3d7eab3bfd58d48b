#include "model/hf_export.h"

#include <unistd.h>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <system_error>

#include "core/fileio.h"
#include "core/safetensors.h"
#include "core/transfer.h"

namespace mu {

namespace fs = std::filesystem;

const std::vector<std::string>& hf_tokenizer_files() {
  static const std::vector<std::string> files = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                                 "tokenizer.model", "generation_config.json"};
  return files;
}

const char* torch_dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "float32";
    case DType::BF16: return "bfloat16";
    case DType::F16: return "float16";
    default: MU_FAIL("HF export stores float32, bfloat16 or float16, not %s", dtype_name(t));
  }
}

bool dtype_from_torch_name(const std::string& s, DType* out) {
  if (s == "float32") *out = DType::F32;
  else if (s == "bfloat16") *out = DType::BF16;
  else if (s == "float16") *out = DType::F16;
  else return false;
  return true;
}

int64_t parse_byte_size(const std::string& s, const std::string& what) {
  const char* w = what.c_str();
  size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) i++;
  std::string num = s.substr(0, i), unit = s.substr(i);
  for (char& ch : unit) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  // transformers (utils/hub.py convert_file_size_to_int): decimal units for GB/MB/KB,
  // binary for GiB/MiB/KiB.
  static const std::map<std::string, double> units = {{"", 1},        {"B", 1},         {"KB", 1e3},
                                                      {"MB", 1e6},    {"GB", 1e9},      {"TB", 1e12},
                                                      {"KIB", 1024.0}, {"MIB", 1048576.0}, {"GIB", 1073741824.0}};
  auto it = units.find(unit);
  char* end = nullptr;
  double v = num.empty() ? -1 : std::strtod(num.c_str(), &end);
  MU_CHECK(it != units.end() && !num.empty() && end && *end == '\0' && std::isfinite(v),
           "%s: cannot read '%s' as a size (examples: 5GB, 500MB, 2GiB, 1000000)", w, s.c_str());
  const double bytes = std::floor(v * it->second);
  MU_CHECK(bytes >= 1 && bytes < 9e18, "%s: '%s' is not a usable size (must be at least 1 byte)", w, s.c_str());
  return static_cast<int64_t>(bytes);
}

namespace {

std::string shard_name(int k, int n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05d-of-%05d.safetensors", k, n);
  return buf;
}

std::string strip_slashes(std::string d) {
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  return d;
}

// Removes the temporary directory unless the export got to the final rename.
struct TempDirGuard {
  std::string path;
  bool keep = false;
  ~TempDirGuard() {
    if (keep) return;
    std::error_code ec;
    fs::remove_all(path, ec);  // best effort: we are already failing
  }
};

// The weights must have the shapes the config implies, or the HF views would be garbage.
void check_weights(const LlamaConfig& c, const LlamaWeights& w) {
  std::map<std::string, Shape> want;
  for (const ParamInfo& p : llama_param_infos(c)) want[p.name] = p.shape;
  for (const auto& [name, t] : w.named(c)) {
    MU_CHECK(!t.empty(), "HF export: tensor '%s' is not allocated", name.c_str());
    MU_CHECK(t.shape == want.at(name), "HF export: tensor '%s' has shape %s, the config (%s) needs %s", name.c_str(),
             t.shape.str().c_str(), c.summary().c_str(), want.at(name).str().c_str());
  }
}

void write_text(const std::string& path, const std::string& text) { write_file_atomic(path, text.data(), text.size()); }

}  // namespace

std::vector<std::string> hf_export_precheck(const std::string& dir_in, const HfExportOptions& o) {
  const std::string dir = strip_slashes(dir_in);
  const char* d = dir.c_str();
  MU_CHECK(!dir.empty(), "HF export: empty output directory");
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    MU_CHECK(fs::is_directory(dir, ec), "HF export: %s exists and is not a directory", d);
    MU_CHECK(o.force || fs::is_empty(dir, ec), "HF export: %s exists and is not empty; pass --force to replace it", d);
  }
  // The directories it will create: the nearest existing ancestor must be a writable directory
  // (the export writes a temporary sibling of `dir`, then renames it).
  fs::path up = fs::absolute(fs::path(dir), ec).parent_path();
  while (!up.empty() && !fs::exists(up, ec) && up != up.parent_path()) up = up.parent_path();
  MU_CHECK(fs::is_directory(up, ec), "HF export: cannot create %s: %s is not a directory", d, up.c_str());
  MU_CHECK(::access(up.c_str(), W_OK | X_OK) == 0, "HF export: cannot create %s: %s is not writable", d, up.c_str());
  std::vector<std::string> tok_files;
  if (!o.tokenizer_from.empty()) {
    const char* t = o.tokenizer_from.c_str();
    MU_CHECK(fs::is_directory(o.tokenizer_from, ec), "--tokenizer-from %s: not a directory", t);
    for (const std::string& f : hf_tokenizer_files())
      if (fs::is_regular_file(fs::path(o.tokenizer_from) / f, ec)) tok_files.push_back(f);
    MU_CHECK(!tok_files.empty(), "--tokenizer-from %s: holds none of tokenizer.json, tokenizer_config.json, "
             "special_tokens_map.json, tokenizer.model", t);
  }
  return tok_files;
}

HfExportResult export_hf_dir(const std::string& dir_in, const LlamaConfig& c, const LlamaWeights& w,
                             const HfExportOptions& o) {
  const std::string dir = strip_slashes(dir_in);
  const char* d = dir.c_str();
  MU_CHECK(o.dtype == DType::F32 || o.dtype == DType::BF16 || o.dtype == DType::F16,
           "HF export to %s: dtype must be f32, bf16 or f16, not %s", d, dtype_name(o.dtype));
  MU_CHECK(o.max_shard_bytes > 0, "HF export to %s: max shard size must be positive, got %lld", d,
           static_cast<long long>(o.max_shard_bytes));
  check_weights(c, w);

  std::error_code ec;
  const bool exists = fs::exists(dir, ec);
  const std::vector<std::string> tok_files = hf_export_precheck(dir, o);

  const fs::path parent = fs::path(dir).parent_path();
  if (!parent.empty()) {
    fs::create_directories(parent, ec);
    MU_CHECK(!ec, "HF export: cannot create %s: %s", parent.c_str(), ec.message().c_str());
  }
  TempDirGuard tmp{dir + ".tmp-" + std::to_string(static_cast<long>(::getpid()))};
  fs::remove_all(tmp.path, ec);  // a leftover of a crashed process that had our pid
  MU_CHECK(fs::create_directory(tmp.path, ec), "HF export: cannot create %s: %s", tmp.path.c_str(),
           ec ? ec.message().c_str() : "it already exists");

  // Shards: tensors in HF order, a new shard whenever the next tensor would overflow the
  // current one (transformers' greedy rule; a tensor larger than the limit sits alone).
  const std::vector<HfView> views = hf_views(w, c);
  const size_t esize = dtype_size(o.dtype);
  std::vector<std::vector<size_t>> groups;
  int64_t cur = 0, total = 0;
  for (size_t i = 0; i < views.size(); i++) {
    const int64_t bytes = views[i].view.numel() * static_cast<int64_t>(esize);
    if (groups.empty() || (cur > 0 && cur + bytes > o.max_shard_bytes)) {
      groups.emplace_back();
      cur = 0;
    }
    groups.back().push_back(i);
    cur += bytes;
    total += bytes;
  }

  HfExportResult res;
  res.shards = static_cast<int>(groups.size());
  res.total_bytes = total;
  nlohmann::json weight_map = nlohmann::json::object();
  for (size_t k = 0; k < groups.size(); k++) {
    const std::string fname = groups.size() == 1 ? "model.safetensors" : shard_name(int(k) + 1, int(groups.size()));
    SafetensorsWriter wr;
    std::vector<HostTensor> hosts;  // alive until write(): the writer keeps pointers
    hosts.reserve(groups[k].size());
    for (size_t i : groups[k]) {
      const HfView& v = views[i];
      hosts.emplace_back(DType::F32, v.view.shape);
      std::vector<float> vals = to_host_f32(v.view);
      std::copy(vals.begin(), vals.end(), hosts.back().f32());
      wr.add_f32_as(v.hf_name, hosts.back(), o.dtype);
      weight_map[v.hf_name] = fname;
    }
    wr.set_metadata("format", "pt");  // transformers refuses safetensors files without it
    wr.write(tmp.path + "/" + fname);
    res.files.push_back(fname);
  }
  if (groups.size() > 1) {
    nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    write_text(tmp.path + "/model.safetensors.index.json", index.dump(2) + "\n");
    res.files.push_back("model.safetensors.index.json");
  }

  nlohmann::json cfg = config_to_json(c);
  cfg["torch_dtype"] = torch_dtype_name(o.dtype);
  write_text(tmp.path + "/config.json", cfg.dump(2) + "\n");
  res.files.push_back("config.json");

  for (const std::string& f : tok_files) {
    const std::string bytes = read_text_file((fs::path(o.tokenizer_from) / f).string());
    write_text(tmp.path + "/" + f, bytes);
    res.files.push_back(f);
  }
  fsync_dir(tmp.path);

  // Into place. An existing directory (empty, or non-empty with force) is moved aside first
  // and removed only once the new one is there.
  std::string old;
  if (exists) {
    old = dir + ".old-" + std::to_string(static_cast<long>(::getpid()));
    fs::remove_all(old, ec);
    fs::rename(dir, old, ec);
    MU_CHECK(!ec, "HF export: cannot move the existing %s aside: %s", d, ec.message().c_str());
  }
  fs::rename(tmp.path, dir, ec);
  if (ec) {
    const std::string msg = ec.message();
    if (!old.empty()) fs::rename(old, dir, ec);  // put the old one back
    MU_FAIL("HF export: cannot rename %s to %s: %s", tmp.path.c_str(), d, msg.c_str());
  }
  tmp.keep = true;
  fsync_dir(parent.empty() ? "." : parent.string());
  if (!old.empty()) fs::remove_all(old, ec);
  return res;
}

}  // namespace mu
