// The Llama model config: the fields of a Hugging Face LlamaConfig (config.json) that the
// engine's math depends on, read from either transformers spelling (v4: rope_theta /
// rope_scaling / torch_dtype; v5: rope_parameters / dtype), validated once here so the
// model, kernels and tools can trust it, and written back in the v4 spelling (which both
// transformers 4 and 5 load). Presets live in model/configs/<name>.json in the same format.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mu {

// RoPE frequency scaling. Only Llama 3's piecewise scheme is supported besides plain RoPE
// (transformers modeling_rope_utils._compute_llama3_parameters).
struct RopeScaling {
  std::string type;  // "" = none (HF "default"), "llama3"
  double factor = 1.0, low_freq_factor = 1.0, high_freq_factor = 4.0;
  int original_max_position_embeddings = 8192;
};
bool operator==(const RopeScaling& a, const RopeScaling& b);
inline bool operator!=(const RopeScaling& a, const RopeScaling& b) { return !(a == b); }

struct LlamaConfig {
  // Defaults are transformers' LlamaConfig defaults, used for keys config.json leaves out;
  // config_from_json requires the five sizes (vocab, hidden, intermediate, layers, heads).
  int vocab_size = 32000, hidden_size = 4096, intermediate_size = 11008, num_hidden_layers = 32,
      num_attention_heads = 32,
      num_key_value_heads = 32,   // defaults to num_attention_heads when absent
      head_dim = 0,               // resolved to hidden_size / num_attention_heads when absent
      max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6, rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  std::string torch_dtype = "float32";  // the dtype the HF checkpoint says it holds (informational)
  // -1 means "none" (config.json null). HF allows a list of EOS ids (Llama 3 instruct):
  // eos_token_id is the first, eos_token_ids holds them all ({eos_token_id} for a scalar).
  int bos_token_id = 1, eos_token_id = 2;
  std::vector<int> eos_token_ids;

  // derived (valid once head_dim is resolved: config_from_json / config_finalize)
  int q_dim() const;           // num_attention_heads * head_dim
  int kv_dim() const;          // num_key_value_heads * head_dim
  int64_t num_params() const;  // exact count of the engine layout: embedding, per layer
                               // q,k,v,o,gate,up,down + 2 norms, final norm, head if untied
  std::string summary() const; // "L=30 C=576 F=1536 H=9/3 D=64 V=49152 params=134.5M tied rope=..."
};
bool operator==(const LlamaConfig& a, const LlamaConfig& b);
inline bool operator!=(const LlamaConfig& a, const LlamaConfig& b) { return !(a == b); }

// Parses a HF config.json object. `source` (a file path or preset name) is named in every
// error, with the offending field. Unknown keys are ignored; unsupported architecture
// features (biases, sliding window, non-SiLU activations, other RoPE types, ...) are errors.
LlamaConfig config_from_json(const nlohmann::json& j, const std::string& source);

// Resolves head_dim (0 -> hidden_size / num_attention_heads) and eos_token_ids (empty ->
// {eos_token_id}), then checks every structural constraint, naming `source` and the field.
// config_from_json calls it; code that builds a LlamaConfig by hand should call it too.
void config_finalize(LlamaConfig& c, const std::string& source);

// transformers v4 field names (rope_theta, rope_scaling, torch_dtype) plus
// "architectures": ["LlamaForCausalLM"] and "model_type": "llama"; floats stay floats.
nlohmann::json config_to_json(const LlamaConfig& c);

// Reads and parses a config.json file (errors name the path).
LlamaConfig load_config_file(const std::string& path);

// `name_or_path`: an existing file, a directory holding config.json (a HF model directory),
// or else a preset name looked up as <dir>/<name>.json in, in order: each directory of
// $MU_CONFIG_DIR (':'-separated), "configs" next to the running executable, then the
// source tree's model/configs (compile-time MU_CONFIG_DIR). Unknown names list the presets.
LlamaConfig load_config(const std::string& name_or_path);

// Preset names (file names without .json) found in those directories, sorted, unique.
std::vector<std::string> list_presets();

}  // namespace mu
