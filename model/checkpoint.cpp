#include "model/checkpoint.h"

#include <nlohmann/json.hpp>
#include <set>

#include "core/safetensors.h"
#include "core/transfer.h"

namespace mu {

void upload_f32(const Tensor& dst, const float* src) {
  if (dst.dtype == DType::F32) {
    copy_from_host(dst, src);
    return;
  }
  std::vector<char> raw(dst.nbytes());
  convert_from_f32(raw.data(), dst.dtype, src, static_cast<size_t>(dst.numel()));
  copy_from_host(dst, raw.data());
}

void save_checkpoint(const std::string& path, const LlamaConfig& c, const LlamaWeights& w, DType stored) {
  MU_CHECK(stored == DType::F32 || stored == DType::BF16, "%s: checkpoints store F32 or BF16, not %s", path.c_str(),
           dtype_name(stored));
  SafetensorsWriter wr;
  std::vector<HostTensor> hosts;  // the writer keeps pointers until write()
  for (const auto& [name, t] : w.named(c)) {
    hosts.emplace_back(DType::F32, t.shape);
    std::vector<float> v = to_host_f32(t);
    std::copy(v.begin(), v.end(), hosts.back().f32());
    wr.add_f32_as(name, hosts.back(), stored);
  }
  wr.set_metadata("format", kCheckpointFormat);
  wr.set_metadata("format_version", std::to_string(kCheckpointVersion));
  wr.set_metadata("config", config_to_json(c).dump());
  wr.write(path);
}

static void check_format(const SafetensorsFile& f) {
  const auto& md = f.metadata();
  auto it = md.find("format");
  MU_CHECK(it != md.end() && it->second == kCheckpointFormat,
           "%s: not an llm.mu checkpoint (metadata 'format' is %s); convert Hugging Face models with "
           "`mu-convert --from-hf <dir> --out <file>`",
           f.path().c_str(), it == md.end() ? "missing" : ("'" + it->second + "'").c_str());
  auto v = md.find("format_version");
  MU_CHECK(v != md.end() && v->second == std::to_string(kCheckpointVersion),
           "%s: checkpoint format_version %s is not supported (this build reads %d)", f.path().c_str(),
           v == md.end() ? "missing" : v->second.c_str(), kCheckpointVersion);
  MU_CHECK(md.count("config"), "%s: checkpoint metadata has no 'config'", f.path().c_str());
}

LlamaConfig checkpoint_config(const std::string& path) {
  SafetensorsFile f(path);
  check_format(f);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f.metadata().at("config"));
  } catch (const nlohmann::json::exception& e) {
    MU_FAIL("%s: metadata 'config' is not valid JSON: %s", path.c_str(), e.what());
  }
  return config_from_json(j, path + " (metadata config)");
}

void load_checkpoint_weights(const std::string& path, const LlamaConfig& c, const LlamaWeights& w) {
  SafetensorsFile f(path);
  check_format(f);
  std::set<std::string> expected;
  for (const auto& [name, t] : w.named(c)) {
    expected.insert(name);
    MU_CHECK(f.has(name), "%s: tensor '%s' is missing", path.c_str(), name.c_str());
    const StTensorInfo& info = f.get(name);
    MU_CHECK(info.shape == t.shape, "%s: tensor '%s' has shape %s, the config needs %s", path.c_str(), name.c_str(),
             info.shape.str().c_str(), t.shape.str().c_str());
    HostTensor h = HostTensor::f32(t.shape);
    f.read_f32(name, h);
    upload_f32(t, h.f32());
  }
  for (const auto& info : f.tensors())
    MU_CHECK(expected.count(info.name), "%s: unexpected tensor '%s' (not part of this config's layout)", path.c_str(),
             info.name.c_str());
}

}  // namespace mu
