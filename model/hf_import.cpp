#include "model/hf_import.h"

#include <nlohmann/json.hpp>
#include <cstdio>
#include <map>
#include <set>

#include "core/fileio.h"
#include "core/safetensors.h"

namespace mu {

HostModel make_host_model(const LlamaConfig& cfg) {
  HostModel m;
  m.cfg = cfg;
  ArenaPlan plan;
  plan_params(plan, cfg, Region::Weights, DType::F32, "param.");
  m.arena = std::make_unique<Arena>(plan, Device::CPU, host_available_bytes(),
                                    "the model's float32 weights must fit in host memory");
  m.w = bind_weights(*m.arena, cfg, "param.");
  return m;
}

namespace {

// Which shard holds each tensor: from the index's weight_map, or the single file.
std::map<std::string, std::string> weight_files(const std::string& dir) {
  std::map<std::string, std::string> where;
  const std::string index = dir + "/model.safetensors.index.json";
  const std::string single = dir + "/model.safetensors";
  // transformers loads model.safetensors when both are present, so the same weights load here.
  if (file_exists(index) && !file_exists(single)) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_text_file(index));
    } catch (const nlohmann::json::exception& e) {
      MU_FAIL("%s: not valid JSON: %s", index.c_str(), e.what());
    }
    MU_CHECK(j.is_object() && j.contains("weight_map") && j["weight_map"].is_object(),
             "%s: field 'weight_map' is missing or not an object", index.c_str());
    for (auto& [name, file] : j["weight_map"].items()) {
      MU_CHECK(file.is_string(), "%s: weight_map entry '%s' is not a file name", index.c_str(), name.c_str());
      const std::string f = file.get<std::string>();
      MU_CHECK(f.find('/') == std::string::npos, "%s: weight_map entry '%s' points outside the directory (%s)",
               index.c_str(), name.c_str(), f.c_str());
      where[name] = dir + "/" + f;
    }
    return where;
  }
  if (file_exists(single)) {
    SafetensorsFile sf(single);
    for (const auto& t : sf.tensors()) where[t.name] = single;
    return where;
  }
  const bool has_bin = file_exists(dir + "/pytorch_model.bin") || file_exists(dir + "/pytorch_model.bin.index.json");
  MU_FAIL("%s: no model.safetensors or model.safetensors.index.json%s", dir.c_str(),
          has_bin ? " (found pytorch_model.bin: re-save it with save_pretrained(..., safe_serialization=True))" : "");
}

bool ignorable(const std::string& name) {
  // transformers < 4.31 saved each layer's RoPE frequencies as a buffer
  // (model.layers.N.self_attn.rotary_emb.inv_freq) and ignores it on load; they are recomputed
  // from config.json here too.
  static const std::string kInvFreq = ".rotary_emb.inv_freq";
  return name.size() > kInvFreq.size() && name.compare(name.size() - kInvFreq.size(), kInvFreq.size(), kInvFreq) == 0;
}

}  // namespace

HostModel import_hf_dir(const std::string& dir) {
  const std::string cfg_path = dir + "/config.json";
  MU_CHECK(file_exists(cfg_path), "%s: no config.json (is this a Hugging Face model directory?)", dir.c_str());
  HostModel m = make_host_model(load_config_file(cfg_path));
  std::map<std::string, std::string> where = weight_files(dir);
  std::map<std::string, std::unique_ptr<SafetensorsFile>> open;
  auto file_of = [&](const std::string& path) -> SafetensorsFile& {
    auto& f = open[path];
    if (!f) f = std::make_unique<SafetensorsFile>(path);
    return *f;
  };
  std::set<std::string> used;
  for (const HfView& v : hf_views(m.w, m.cfg)) {
    auto it = where.find(v.hf_name);
    MU_CHECK(it != where.end(), "%s: tensor '%s' is missing", dir.c_str(), v.hf_name.c_str());
    SafetensorsFile& f = file_of(it->second);
    MU_CHECK(f.has(v.hf_name), "%s: tensor '%s' is listed in the index but not in the file", it->second.c_str(),
             v.hf_name.c_str());
    const StTensorInfo& info = f.get(v.hf_name);
    MU_CHECK(info.shape == v.view.shape, "%s: tensor '%s' has shape %s, config.json implies %s", it->second.c_str(),
             v.hf_name.c_str(), info.shape.str().c_str(), v.view.shape.str().c_str());
    f.read_f32(v.hf_name, v.view);
    used.insert(v.hf_name);
  }
  for (const auto& [name, path] : where) {
    if (used.count(name) || ignorable(name)) continue;
    if (name == "lm_head.weight" && m.cfg.tie_word_embeddings) {
      // Tied checkpoints may still carry the head; the tie means it is the embedding.
      SafetensorsFile& f = file_of(path);
      MU_CHECK(f.get(name).shape == m.w.embed.shape, "%s: tensor 'lm_head.weight' has shape %s, expected %s",
               path.c_str(), f.get(name).shape.str().c_str(), m.w.embed.shape.str().c_str());
      continue;
    }
    MU_FAIL("%s: tensor '%s' is not part of a Llama with this config.json (unsupported feature or wrong config?)",
            path.c_str(), name.c_str());
  }
  return m;
}

}  // namespace mu
