// Llama config: HF config.json (transformers v4 and v5 spellings) <-> LlamaConfig, with
// validation that names the source and the field, and the preset lookup.
#include "model/config.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <set>

#include "core/error.h"
#include "core/fileio.h"

namespace mu {

using nlohmann::json;

namespace {

// A JSON value shortened for error messages.
std::string show(const json& v) {
  std::string s = v.dump();
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

const char* kind_of(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    case json::value_t::number_float: return "a float";
    default: return "an integer";
  }
}

// Typed access to the keys of one JSON object. `prefix` ("rope_scaling.") makes nested
// fields read as the user wrote them. Absent keys leave the output untouched; a JSON null
// counts as absent only where HF allows None (the `nullable` reads).
class Reader {
 public:
  Reader(const json& obj, const std::string& source, const std::string& prefix)
      : obj_(obj), source_(source), prefix_(prefix) {}

  // The value under `key`, or nullptr when the key is absent or null.
  const json* get(const char* key) const {
    auto it = obj_.find(key);
    if (it == obj_.end() || it->is_null()) return nullptr;
    return &*it;
  }
  bool has_key(const char* key) const { return obj_.contains(key); }

  // Returns false when absent (or null and nullable); fails on null otherwise.
  bool read_int(const char* key, int* out, bool nullable = false) const {
    const json* v = present(key, nullable);
    if (!v) return false;
    *out = as_int(key, *v);
    return true;
  }
  bool read_double(const char* key, double* out) const {
    const json* v = present(key, false);
    if (!v) return false;
    if (!v->is_number()) fail_type(key, "a number", *v);
    *out = v->get<double>();
    return true;
  }
  bool read_bool(const char* key, bool* out) const {
    const json* v = present(key, false);
    if (!v) return false;
    if (!v->is_boolean()) fail_type(key, "true or false", *v);
    *out = v->get<bool>();
    return true;
  }
  bool read_string(const char* key, std::string* out, bool nullable = false) const {
    const json* v = present(key, nullable);
    if (!v) return false;
    if (!v->is_string()) fail_type(key, "a string", *v);
    *out = v->get<std::string>();
    return true;
  }

  int as_int(const char* key, const json& v) const {
    // Integral floats (8192.0) are accepted: some exporters write every number as a float.
    if (v.is_number_float()) {
      double d = v.get<double>();
      if (d != std::floor(d) || !std::isfinite(d)) fail_type(key, "an integer", v);
    } else if (!v.is_number()) {
      fail_type(key, "an integer", v);
    }
    double d = v.get<double>();
    if (d < std::numeric_limits<int>::min() || d > std::numeric_limits<int>::max())
      MU_FAIL("%s: field \"%s\" = %s is out of range", source_.c_str(), field(key).c_str(), show(v).c_str());
    return v.is_number_float() ? static_cast<int>(d) : v.get<int>();
  }

  [[noreturn]] void fail_type(const char* key, const char* want, const json& v) const {
    MU_FAIL("%s: field \"%s\" must be %s, got %s %s", source_.c_str(), field(key).c_str(), want,
            kind_of(v), show(v).c_str());
  }
  std::string field(const char* key) const { return prefix_ + key; }

 private:
  const json* present(const char* key, bool nullable) const {
    auto it = obj_.find(key);
    if (it == obj_.end()) return nullptr;
    if (it->is_null()) {
      if (nullable) return nullptr;
      MU_FAIL("%s: field \"%s\" is null; give a value or leave the key out", source_.c_str(),
              field(key).c_str());
    }
    return &*it;
  }
  const json& obj_;
  const std::string& source_;
  std::string prefix_;
};

// Llama 3 scaling values that the frequency formula can use: it divides by
// (high_freq_factor - low_freq_factor) and by the factor.
void check_llama3(const RopeScaling& s, const std::string& src, const std::string& field) {
  const char* f = field.c_str();
  MU_CHECK(s.factor > 0 && std::isfinite(s.factor), "%s: field \"%s.factor\" must be > 0, got %g",
           src.c_str(), f, s.factor);
  MU_CHECK(s.low_freq_factor > 0 && std::isfinite(s.low_freq_factor),
           "%s: field \"%s.low_freq_factor\" must be > 0, got %g", src.c_str(), f, s.low_freq_factor);
  MU_CHECK(s.high_freq_factor > s.low_freq_factor && std::isfinite(s.high_freq_factor),
           "%s: field \"%s.high_freq_factor\" (%g) must be greater than low_freq_factor (%g)",
           src.c_str(), f, s.high_freq_factor, s.low_freq_factor);
  MU_CHECK(s.original_max_position_embeddings > 0,
           "%s: field \"%s.original_max_position_embeddings\" must be positive, got %d", src.c_str(), f,
           s.original_max_position_embeddings);
}

// Parses a rope_scaling (v4) or rope_parameters (v5) object into a RopeScaling; its
// rope_theta, when present, goes to *theta.
RopeScaling parse_rope_object(const json& o, const std::string& src, const std::string& name,
                              bool* has_theta, double* theta) {
  if (!o.is_object())
    MU_FAIL("%s: field \"%s\" must be an object or null, got %s %s", src.c_str(), name.c_str(),
            kind_of(o), show(o).c_str());
  Reader r(o, src, name + ".");
  std::string type, legacy;
  bool has_type = r.read_string("rope_type", &type);
  bool has_legacy = r.read_string("type", &legacy);  // transformers < 4.43 spelling
  if (has_type && has_legacy && type != legacy)
    MU_FAIL("%s: fields \"%s.rope_type\" (\"%s\") and \"%s.type\" (\"%s\") disagree", src.c_str(),
            name.c_str(), type.c_str(), name.c_str(), legacy.c_str());
  if (!has_type) type = legacy;
  *has_theta = r.read_double("rope_theta", theta);

  double partial = 1.0;
  if (r.read_double("partial_rotary_factor", &partial) && partial != 1.0)
    MU_FAIL("%s: field \"%s.partial_rotary_factor\" = %g: only full rotary embeddings (1.0) are "
            "supported", src.c_str(), name.c_str(), partial);

  RopeScaling s;
  if (type.empty()) {
    // HF treats a missing type as "default"; with scaling keys present that would silently
    // drop the scaling, so it is an error here.
    for (const char* k : {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"})
      MU_CHECK(!r.has_key(k), "%s: field \"%s\" has \"%s\" but no \"rope_type\"; add \"rope_type\": \"llama3\"",
               src.c_str(), name.c_str(), k);
    return s;
  }
  if (type == "default") return s;
  if (type != "llama3")
    MU_FAIL("%s: field \"%s.rope_type\" is \"%s\"; supported RoPE types: \"default\", \"llama3\"",
            src.c_str(), name.c_str(), type.c_str());
  s.type = "llama3";
  // transformers requires all four keys for llama3; so do we (guessing them changes the model).
  for (const char* k : {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"})
    MU_CHECK(r.get(k) != nullptr, "%s: field \"%s.%s\" is required for rope_type \"llama3\"", src.c_str(),
             name.c_str(), k);
  r.read_double("factor", &s.factor);
  r.read_double("low_freq_factor", &s.low_freq_factor);
  r.read_double("high_freq_factor", &s.high_freq_factor);
  r.read_int("original_max_position_embeddings", &s.original_max_position_embeddings);
  check_llama3(s, src, name);
  return s;
}

std::string describe(const RopeScaling& s) {
  if (s.type.empty()) return "default";
  return strformat("%s(factor=%g,low_freq_factor=%g,high_freq_factor=%g,original_max_position_embeddings=%d)",
                   s.type.c_str(), s.factor, s.low_freq_factor, s.high_freq_factor,
                   s.original_max_position_embeddings);
}

// RoPE from either spelling. Each source that is present must agree with the others:
// a config carrying both spellings with different values is a user bug, not a preference.
void parse_rope(const json& j, const std::string& src, LlamaConfig* c) {
  Reader r(j, src, "");
  struct ThetaSource {
    std::string field;
    double value;
  };
  std::vector<ThetaSource> thetas;
  double t = 0;
  if (r.read_double("rope_theta", &t)) thetas.push_back({"rope_theta", t});

  bool has_v4 = false, has_v5 = false;
  RopeScaling v4, v5;
  bool has_t = false;
  if (const json* o = r.get("rope_scaling")) {  // null = no scaling (HF default)
    has_v4 = true;
    v4 = parse_rope_object(*o, src, "rope_scaling", &has_t, &t);
    if (has_t) thetas.push_back({"rope_scaling.rope_theta", t});
  }
  if (const json* o = r.get("rope_parameters")) {
    has_v5 = true;
    v5 = parse_rope_object(*o, src, "rope_parameters", &has_t, &t);
    if (has_t) thetas.push_back({"rope_parameters.rope_theta", t});
  }
  for (const ThetaSource& s : thetas)
    MU_CHECK(s.value == thetas[0].value,
             "%s: fields \"%s\" (%g) and \"%s\" (%g) disagree; keep one spelling (v4 rope_theta or v5 "
             "rope_parameters)", src.c_str(), thetas[0].field.c_str(), thetas[0].value, s.field.c_str(), s.value);
  if (!thetas.empty()) c->rope_theta = thetas[0].value;
  if (has_v4 && has_v5 && v4 != v5)
    MU_FAIL("%s: fields \"rope_scaling\" (%s) and \"rope_parameters\" (%s) disagree; keep one spelling",
            src.c_str(), describe(v4).c_str(), describe(v5).c_str());
  c->rope_scaling = has_v5 ? v5 : v4;
}

// The architecture features HF LlamaConfig can switch on that this engine does not implement.
void check_supported(const json& j, const std::string& src) {
  Reader r(j, src, "");
  std::string s;
  if (r.read_string("model_type", &s) && s != "llama")
    MU_FAIL("%s: field \"model_type\" is \"%s\"; only \"llama\" models are supported", src.c_str(), s.c_str());
  if (r.read_string("hidden_act", &s) && s != "silu")
    MU_FAIL("%s: field \"hidden_act\" is \"%s\"; only \"silu\" (SwiGLU MLP) is supported", src.c_str(), s.c_str());
  bool b = false;
  for (const char* k : {"attention_bias", "mlp_bias"})
    if (r.read_bool(k, &b) && b)
      MU_FAIL("%s: field \"%s\" is true; the engine's projections have no bias", src.c_str(), k);
  // Qwen2-style configs carry sliding_window with use_sliding_window=false; that is off.
  bool use_sw = false;
  bool has_use_sw = r.read_bool("use_sliding_window", &use_sw);
  if (has_use_sw && use_sw)
    MU_FAIL("%s: field \"use_sliding_window\" is true; sliding-window attention is not supported", src.c_str());
  if (const json* w = r.get("sliding_window")) {
    if (!w->is_number() && !w->is_boolean()) r.fail_type("sliding_window", "null or an integer", *w);
    bool enabled = w->is_boolean() ? w->get<bool>() : true;
    if (enabled && !has_use_sw)
      MU_FAIL("%s: field \"sliding_window\" is %s; sliding-window attention is not supported (use null)",
              src.c_str(), show(*w).c_str());
  }
  double d = 0;
  if (r.read_double("attention_dropout", &d) && d != 0.0)
    MU_FAIL("%s: field \"attention_dropout\" is %g; attention dropout is not supported (use 0.0)", src.c_str(), d);
  if (r.read_double("partial_rotary_factor", &d) && d != 1.0)
    MU_FAIL("%s: field \"partial_rotary_factor\" = %g: only full rotary embeddings (1.0) are supported",
            src.c_str(), d);
}

// A token id field: an integer, -1 or null for "none".
int read_token_id(const Reader& r, const char* key, int fallback) {
  if (r.has_key(key) && !r.get(key)) return -1;  // explicit null
  int id = fallback;
  r.read_int(key, &id);
  return id;
}

}  // namespace

// ---- struct helpers ------------------------------------------------------------------------

bool operator==(const RopeScaling& a, const RopeScaling& b) {
  return a.type == b.type && a.factor == b.factor && a.low_freq_factor == b.low_freq_factor &&
         a.high_freq_factor == b.high_freq_factor &&
         a.original_max_position_embeddings == b.original_max_position_embeddings;
}

bool operator==(const LlamaConfig& a, const LlamaConfig& b) {
  return a.vocab_size == b.vocab_size && a.hidden_size == b.hidden_size &&
         a.intermediate_size == b.intermediate_size && a.num_hidden_layers == b.num_hidden_layers &&
         a.num_attention_heads == b.num_attention_heads && a.num_key_value_heads == b.num_key_value_heads &&
         a.head_dim == b.head_dim && a.max_position_embeddings == b.max_position_embeddings &&
         a.rms_norm_eps == b.rms_norm_eps && a.rope_theta == b.rope_theta && a.rope_scaling == b.rope_scaling &&
         a.tie_word_embeddings == b.tie_word_embeddings && a.torch_dtype == b.torch_dtype &&
         a.bos_token_id == b.bos_token_id && a.eos_token_id == b.eos_token_id &&
         a.eos_token_ids == b.eos_token_ids;
}

int LlamaConfig::q_dim() const { return num_attention_heads * head_dim; }
int LlamaConfig::kv_dim() const { return num_key_value_heads * head_dim; }

int64_t LlamaConfig::num_params() const {
  const int64_t C = hidden_size, V = vocab_size, F = intermediate_size, q = q_dim(), kv = kv_dim();
  const int64_t per_layer = C * q          // q_proj    (q_dim, C)
                            + 2 * C * kv   // k/v_proj  (kv_dim, C) each
                            + q * C        // o_proj    (C, q_dim)
                            + 3 * C * F    // gate/up   (F, C), down (C, F)
                            + 2 * C;       // input and post-attention RMSNorm gains
  return V * C + num_hidden_layers * per_layer + C + (tie_word_embeddings ? 0 : V * C);
}

std::string LlamaConfig::summary() const {
  double m = static_cast<double>(num_params()) / 1e6;
  std::string rope = strformat("theta=%g", rope_theta);
  if (rope_scaling.type == "llama3")
    rope = strformat("llama3(theta=%g,factor=%g,low=%g,high=%g,orig=%d)", rope_theta, rope_scaling.factor,
                     rope_scaling.low_freq_factor, rope_scaling.high_freq_factor,
                     rope_scaling.original_max_position_embeddings);
  return strformat("L=%d C=%d F=%d H=%d/%d D=%d V=%d params=%.*fM %s rope=%s", num_hidden_layers, hidden_size,
                   intermediate_size, num_attention_heads, num_key_value_heads, head_dim, vocab_size,
                   m < 10 ? 2 : 1, m, tie_word_embeddings ? "tied" : "untied", rope.c_str());
}

// ---- validation ------------------------------------------------------------------------------

void config_finalize(LlamaConfig& c, const std::string& source) {
  const char* src = source.c_str();
  const std::pair<const char*, int> sizes[] = {
      {"vocab_size", c.vocab_size}, {"hidden_size", c.hidden_size},
      {"intermediate_size", c.intermediate_size}, {"num_hidden_layers", c.num_hidden_layers},
      {"num_attention_heads", c.num_attention_heads}, {"num_key_value_heads", c.num_key_value_heads},
      {"max_position_embeddings", c.max_position_embeddings}};
  for (const auto& [name, v] : sizes) MU_CHECK(v > 0, "%s: field \"%s\" must be positive, got %d", src, name, v);
  MU_CHECK(c.head_dim >= 0, "%s: field \"head_dim\" must be positive, got %d", src, c.head_dim);
  if (c.head_dim == 0) {
    MU_CHECK(c.hidden_size % c.num_attention_heads == 0,
             "%s: field \"hidden_size\" (%d) is not divisible by \"num_attention_heads\" (%d); set \"head_dim\" "
             "explicitly or change one of them", src, c.hidden_size, c.num_attention_heads);
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  MU_CHECK(c.head_dim % 2 == 0, "%s: field \"head_dim\" is %d; RoPE rotates pairs of channels, so it must be even",
           src, c.head_dim);
  MU_CHECK(c.num_attention_heads % c.num_key_value_heads == 0,
           "%s: field \"num_attention_heads\" (%d) is not a multiple of \"num_key_value_heads\" (%d); grouped-query "
           "attention shares each KV head among a whole number of query heads",
           src, c.num_attention_heads, c.num_key_value_heads);
  MU_CHECK(static_cast<int64_t>(c.num_attention_heads) * c.head_dim <= std::numeric_limits<int>::max(),
           "%s: fields \"num_attention_heads\" x \"head_dim\" overflow", src);
  MU_CHECK(c.rms_norm_eps > 0 && std::isfinite(c.rms_norm_eps), "%s: field \"rms_norm_eps\" must be > 0, got %g",
           src, c.rms_norm_eps);
  MU_CHECK(c.rope_theta > 0 && std::isfinite(c.rope_theta), "%s: field \"rope_theta\" must be > 0, got %g", src,
           c.rope_theta);
  if (c.rope_scaling.type == "llama3") {
    check_llama3(c.rope_scaling, source, "rope_scaling");
  } else {
    MU_CHECK(c.rope_scaling.type.empty(), "%s: field \"rope_scaling.rope_type\" is \"%s\"; supported RoPE types: "
             "\"default\", \"llama3\"", src, c.rope_scaling.type.c_str());
  }
  // Token ids index the embedding: out-of-range ids would read past it.
  MU_CHECK(c.bos_token_id >= -1 && c.bos_token_id < c.vocab_size,
           "%s: field \"bos_token_id\" (%d) must be in [0, vocab_size=%d) or null", src, c.bos_token_id, c.vocab_size);
  MU_CHECK(c.eos_token_id >= -1 && c.eos_token_id < c.vocab_size,
           "%s: field \"eos_token_id\" (%d) must be in [0, vocab_size=%d) or null", src, c.eos_token_id, c.vocab_size);
  if (c.eos_token_ids.empty() && c.eos_token_id >= 0) c.eos_token_ids = {c.eos_token_id};
  for (int id : c.eos_token_ids)
    MU_CHECK(id >= 0 && id < c.vocab_size, "%s: field \"eos_token_id\" lists %d, outside [0, vocab_size=%d)", src,
             id, c.vocab_size);
}

// ---- JSON ------------------------------------------------------------------------------------

LlamaConfig config_from_json(const json& j, const std::string& source) {
  const char* src = source.c_str();
  MU_CHECK(j.is_object(), "%s: a model config must be a JSON object, got %s", src, kind_of(j));
  check_supported(j, source);
  Reader r(j, source, "");
  // The sizes have no sensible default: transformers would fill in Llama-2-7B's (C=4096,
  // 32 layers, V=32000), which silently trains another model than the file describes.
  for (const char* key : {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"})
    MU_CHECK(j.contains(key), "%s: field \"%s\" is missing (the model's sizes must be given; transformers' "
             "defaults are Llama-2-7B's)", src, key);
  LlamaConfig c;
  r.read_int("vocab_size", &c.vocab_size);
  r.read_int("hidden_size", &c.hidden_size);
  r.read_int("intermediate_size", &c.intermediate_size);
  r.read_int("num_hidden_layers", &c.num_hidden_layers);
  r.read_int("num_attention_heads", &c.num_attention_heads);
  r.read_int("max_position_embeddings", &c.max_position_embeddings);
  // HF: num_key_value_heads None -> num_attention_heads (plain multi-head attention).
  if (!r.read_int("num_key_value_heads", &c.num_key_value_heads, /*nullable=*/true))
    c.num_key_value_heads = c.num_attention_heads;
  c.head_dim = 0;
  if (r.read_int("head_dim", &c.head_dim, /*nullable=*/true))
    MU_CHECK(c.head_dim > 0, "%s: field \"head_dim\" must be positive, got %d", src, c.head_dim);
  r.read_double("rms_norm_eps", &c.rms_norm_eps);
  r.read_bool("tie_word_embeddings", &c.tie_word_embeddings);

  // v4 "torch_dtype", v5 "dtype".
  std::string v4_dtype, v5_dtype;
  bool has_v4_dtype = r.read_string("torch_dtype", &v4_dtype, true);
  bool has_v5_dtype = r.read_string("dtype", &v5_dtype, true);
  if (has_v4_dtype && has_v5_dtype && v4_dtype != v5_dtype)
    MU_FAIL("%s: fields \"torch_dtype\" (\"%s\") and \"dtype\" (\"%s\") disagree", src, v4_dtype.c_str(),
            v5_dtype.c_str());
  if (has_v5_dtype) c.torch_dtype = v5_dtype;
  else if (has_v4_dtype) c.torch_dtype = v4_dtype;

  c.bos_token_id = read_token_id(r, "bos_token_id", c.bos_token_id);
  if (const json* e = r.get("eos_token_id"); e && e->is_array()) {
    MU_CHECK(!e->empty(), "%s: field \"eos_token_id\" is an empty list; use null for no EOS token", src);
    for (const json& id : *e) c.eos_token_ids.push_back(r.as_int("eos_token_id", id));
    c.eos_token_id = c.eos_token_ids[0];
  } else {
    c.eos_token_id = read_token_id(r, "eos_token_id", c.eos_token_id);
  }

  parse_rope(j, source, &c);
  config_finalize(c, source);
  return c;
}

json config_to_json(const LlamaConfig& c) {
  json j;
  j["architectures"] = json::array({"LlamaForCausalLM"});
  j["model_type"] = "llama";
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  if (c.head_dim > 0) j["head_dim"] = c.head_dim;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["hidden_act"] = "silu";
  j["attention_bias"] = false;
  j["mlp_bias"] = false;
  j["rms_norm_eps"] = c.rms_norm_eps;  // doubles dump with a decimal point or exponent
  j["rope_theta"] = c.rope_theta;
  if (c.rope_scaling.type.empty()) {
    j["rope_scaling"] = nullptr;
  } else {
    j["rope_scaling"] = {{"rope_type", c.rope_scaling.type},
                         {"factor", c.rope_scaling.factor},
                         {"low_freq_factor", c.rope_scaling.low_freq_factor},
                         {"high_freq_factor", c.rope_scaling.high_freq_factor},
                         {"original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings}};
  }
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["torch_dtype"] = c.torch_dtype;
  j["bos_token_id"] = c.bos_token_id < 0 ? json(nullptr) : json(c.bos_token_id);
  if (c.eos_token_ids.size() > 1) j["eos_token_id"] = c.eos_token_ids;
  else j["eos_token_id"] = c.eos_token_id < 0 ? json(nullptr) : json(c.eos_token_id);
  return j;
}

// ---- files and presets -----------------------------------------------------------------------

LlamaConfig load_config_file(const std::string& path) {
  std::string text = read_text_file(path);
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    MU_FAIL("%s: not valid JSON: %s", path.c_str(), e.what());
  }
  return config_from_json(j, path);
}

namespace {

namespace fs = std::filesystem;

std::vector<std::string> preset_dirs() {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("MU_CONFIG_DIR")) {
    std::string s = env;
    size_t start = 0;
    while (start <= s.size()) {
      size_t end = s.find(':', start);
      if (end == std::string::npos) end = s.size();
      if (end > start) dirs.push_back(s.substr(start, end - start));
      start = end + 1;
    }
  }
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) dirs.push_back((exe.parent_path() / "configs").string());
#ifdef MU_CONFIG_DIR
  dirs.push_back(MU_CONFIG_DIR);
#endif
  return dirs;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const std::string& x : v) s += (s.empty() ? "" : ", ") + x;
  return s.empty() ? "(none)" : s;
}

}  // namespace

std::vector<std::string> list_presets() {
  std::set<std::string> names;
  for (const std::string& d : preset_dirs()) {
    std::error_code ec;
    for (fs::directory_iterator it(d, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->path().extension() == ".json" && it->is_regular_file(ec)) names.insert(it->path().stem().string());
    }
  }
  return {names.begin(), names.end()};
}

LlamaConfig load_config(const std::string& name_or_path) {
  const char* name = name_or_path.c_str();
  MU_CHECK(!name_or_path.empty(), "empty model config name; give a preset (%s) or a config.json path",
           join(list_presets()).c_str());
  std::error_code ec;
  if (fs::is_regular_file(name_or_path, ec)) return load_config_file(name_or_path);
  if (fs::is_directory(name_or_path, ec)) {  // a HF model directory
    fs::path inner = fs::path(name_or_path) / "config.json";
    MU_CHECK(fs::is_regular_file(inner, ec), "%s: is a directory without a config.json", name);
    return load_config_file(inner.string());
  }
  // Something that looks like a path is not reinterpreted as a preset name.
  bool looks_like_path = name_or_path.find('/') != std::string::npos ||
                         (name_or_path.size() > 5 && name_or_path.substr(name_or_path.size() - 5) == ".json");
  MU_CHECK(!looks_like_path, "%s: no such config file (presets: %s)", name, join(list_presets()).c_str());
  std::vector<std::string> dirs = preset_dirs();
  for (const std::string& d : dirs) {
    fs::path p = fs::path(d) / (name_or_path + ".json");
    if (fs::is_regular_file(p, ec)) return load_config_file(p.string());
  }
  MU_FAIL("unknown model config \"%s\": not a file and not a preset; presets: %s (searched %s)", name,
          join(list_presets()).c_str(), join(dirs).c_str());
}

}  // namespace mu
