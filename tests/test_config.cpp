// The Llama config: presets, both transformers spellings, defaults, validation errors,
// JSON round trip, preset lookup. Expected numbers come from the published HF configs and
// parameter counts, transformers' documented defaults, or arithmetic written out here.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "model/config.h"

using namespace mu;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// The message of the mu::Error that parsing throws, or "" when it parses.
std::string parse_error(const json& j, const std::string& source) {
  try {
    config_from_json(j, source);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// A small valid config, written independently of the presets.
json base_config() {
  return json::parse(R"({
    "model_type": "llama", "vocab_size": 256, "hidden_size": 64, "intermediate_size": 176,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
    "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
    "hidden_act": "silu", "tie_word_embeddings": true })");
}

// Llama-3.2-1B's config.json as transformers 4 writes it (values from the HF hub).
json llama32_v4() {
  return json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
    "bos_token_id": 128000, "eos_token_id": 128001, "head_dim": 64, "hidden_act": "silu",
    "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 8192,
    "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama",
    "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
    "pretraining_tp": 1, "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
    "transformers_version": "4.45.0.dev0", "use_cache": true, "vocab_size": 128256 })");
}

// The same model as transformers 5 writes it: rope_parameters carries theta; "dtype".
json llama32_v5() {
  json j = llama32_v4();
  j.erase("rope_theta");
  j.erase("rope_scaling");
  j.erase("torch_dtype");
  j["dtype"] = "bfloat16";
  j["rope_parameters"] = json::parse(R"({"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0,
      "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})");
  return j;
}

// A fresh empty directory under the system temp dir, removed by the destructor.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag) {
    path = fs::temp_directory_path() / ("mu_test_config_" + tag + "_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string write(const std::string& name, const std::string& text) const {
    fs::path p = path / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }
};

}  // namespace

// ---- presets ---------------------------------------------------------------------------------

TEST(Config, EveryPresetLoadsAndRoundTrips) {
  std::vector<std::string> names = list_presets();
  for (const char* want : {"tiny", "demo", "smollm2-135m", "llama-3.2-1b", "llama-300m"})
    EXPECT_NE(std::find(names.begin(), names.end(), want), names.end()) << "missing preset " << want;
  for (const std::string& n : names) {
    SCOPED_TRACE(n);
    LlamaConfig c = load_config(n);
    EXPECT_GT(c.num_params(), 0);
    EXPECT_EQ(config_from_json(config_to_json(c), "roundtrip:" + n), c);
  }
}

TEST(Config, PresetShapes) {
  LlamaConfig t = load_config("tiny");
  EXPECT_EQ(t.vocab_size, 256);
  EXPECT_EQ(t.hidden_size, 64);
  EXPECT_EQ(t.intermediate_size, 176);
  EXPECT_EQ(t.num_hidden_layers, 2);
  EXPECT_EQ(t.num_attention_heads, 4);
  EXPECT_EQ(t.num_key_value_heads, 2);
  EXPECT_EQ(t.head_dim, 16);
  EXPECT_EQ(t.max_position_embeddings, 256);
  EXPECT_TRUE(t.tie_word_embeddings);
  EXPECT_EQ(t.rope_theta, 10000.0);
  EXPECT_EQ(t.rms_norm_eps, 1e-5);
  EXPECT_EQ(t.rope_scaling.type, "");
  EXPECT_EQ(t.bos_token_id, -1);  // byte vocabulary: no special tokens
  EXPECT_EQ(t.eos_token_id, -1);
  EXPECT_TRUE(t.eos_token_ids.empty());
  // 256*64 embedding + 2 layers * (64*64 q + 2*64*32 k,v + 64*64 o + 3*64*176 mlp + 2*64 norms) + 64
  EXPECT_EQ(t.num_params(), 16384 + 2 * (4096 + 4096 + 4096 + 33792 + 128) + 64);

  LlamaConfig d = load_config("demo");
  EXPECT_EQ(d.vocab_size, 256);
  EXPECT_EQ(d.hidden_size, 256);
  EXPECT_EQ(d.intermediate_size, 704);
  EXPECT_EQ(d.num_hidden_layers, 4);
  EXPECT_EQ(d.num_attention_heads, 4);
  EXPECT_EQ(d.num_key_value_heads, 4);
  EXPECT_EQ(d.head_dim, 64);
  EXPECT_EQ(d.max_position_embeddings, 1024);
  EXPECT_TRUE(d.tie_word_embeddings);
  // 256*256 embedding + 4 * (4*256*256 attention + 3*256*704 mlp + 512 norms) + 256 = 3,279,104
  EXPECT_EQ(d.num_params(), 65536 + 4 * (262144 + 540672 + 512) + 256);

  LlamaConfig s = load_config("smollm2-135m");
  EXPECT_EQ(s.vocab_size, 49152);
  EXPECT_EQ(s.hidden_size, 576);
  EXPECT_EQ(s.intermediate_size, 1536);
  EXPECT_EQ(s.num_hidden_layers, 30);
  EXPECT_EQ(s.num_attention_heads, 9);
  EXPECT_EQ(s.num_key_value_heads, 3);
  EXPECT_EQ(s.head_dim, 64);
  EXPECT_EQ(s.max_position_embeddings, 8192);
  EXPECT_EQ(s.rope_theta, 100000.0);
  EXPECT_TRUE(s.tie_word_embeddings);

  LlamaConfig m = load_config("llama-300m");
  EXPECT_EQ(m.vocab_size, 32000);
  EXPECT_EQ(m.hidden_size, 1024);
  EXPECT_EQ(m.num_hidden_layers, 20);
  EXPECT_EQ(m.q_dim(), 1024);
  EXPECT_EQ(m.kv_dim(), 512);
  EXPECT_FALSE(m.tie_word_embeddings);
  // 2 * 32000*1024 (embedding + head) + 20 * (2*1024*1024 q,o + 2*1024*512 k,v + 3*1024*2816 + 2048) + 1024
  EXPECT_EQ(m.num_params(), 2 * 32768000LL + 20 * (2097152 + 1048576 + 8650752 + 2048) + 1024);
}

TEST(Config, NumParamsMatchesPublishedCounts) {
  // The parameter counts HF reports for these tied-embedding models (model.num_parameters()).
  EXPECT_EQ(load_config("smollm2-135m").num_params(), 134515008);
  LlamaConfig l = load_config("llama-3.2-1b");
  EXPECT_EQ(l.num_params(), 1235814400);
  EXPECT_EQ(l.q_dim(), 2048);
  EXPECT_EQ(l.kv_dim(), 512);
  EXPECT_EQ(l.rope_scaling.type, "llama3");
  EXPECT_EQ(l.rope_scaling.factor, 32.0);
  EXPECT_EQ(l.rope_scaling.low_freq_factor, 1.0);
  EXPECT_EQ(l.rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(l.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_EQ(l.rope_theta, 500000.0);
  EXPECT_EQ(l.bos_token_id, 128000);
  EXPECT_EQ(l.eos_token_id, 128001);
  EXPECT_EQ(l.max_position_embeddings, 131072);
  // The preset is the hub config: parsing that config gives the same struct.
  EXPECT_EQ(l, config_from_json(llama32_v4(), "hub-config"));
  // Untying adds a separate (V, C) head.
  l.tie_word_embeddings = false;
  EXPECT_EQ(l.num_params(), 1235814400LL + 128256LL * 2048);
}

TEST(Config, Summary) {
  std::string s = load_config("smollm2-135m").summary();
  EXPECT_TRUE(contains(s, "L=30 C=576 F=1536 H=9/3 D=64 V=49152 params=134.5M tied rope=theta=100000")) << s;
  s = load_config("llama-300m").summary();
  EXPECT_TRUE(contains(s, "params=301.5M untied")) << s;
  s = load_config("llama-3.2-1b").summary();
  EXPECT_TRUE(contains(s, "llama3")) << s;
  EXPECT_TRUE(contains(s, "factor=32")) << s;
}

// ---- spellings and defaults ------------------------------------------------------------------

TEST(Config, V4AndV5SpellingsGiveEqualStructs) {
  LlamaConfig a = config_from_json(llama32_v4(), "v4");
  LlamaConfig b = config_from_json(llama32_v5(), "v5");
  EXPECT_EQ(a, b);
  EXPECT_EQ(b.rope_scaling.type, "llama3");
  EXPECT_EQ(b.rope_theta, 500000.0);
  EXPECT_EQ(b.torch_dtype, "bfloat16");

  // Legacy "type" inside rope_scaling (transformers < 4.43).
  json legacy = llama32_v4();
  legacy["rope_scaling"].erase("rope_type");
  legacy["rope_scaling"]["type"] = "llama3";
  EXPECT_EQ(config_from_json(legacy, "legacy"), a);

  // Unscaled RoPE: v4 rope_scaling null vs {"rope_type": "default"} vs v5 rope_parameters.
  json plain4 = base_config();
  plain4["rope_theta"] = 250000.0;
  plain4["rope_scaling"] = nullptr;
  json plain4b = plain4;
  plain4b["rope_scaling"] = {{"rope_type", "default"}};
  json plain5 = base_config();
  plain5.erase("rope_theta");
  plain5["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 250000}};
  LlamaConfig p = config_from_json(plain4, "p4");
  EXPECT_EQ(p.rope_theta, 250000.0);
  EXPECT_EQ(p.rope_scaling, RopeScaling{});
  EXPECT_EQ(config_from_json(plain4b, "p4b"), p);
  EXPECT_EQ(config_from_json(plain5, "p5"), p);

  // Both spellings present and agreeing is fine.
  json both = llama32_v4();
  both["rope_parameters"] = llama32_v5()["rope_parameters"];
  both["dtype"] = "bfloat16";
  EXPECT_EQ(config_from_json(both, "both"), a);
}

TEST(Config, DefaultsForMissingKeys) {
  // The five sizes must be given: transformers would default them to Llama-2-7B's.
  for (const char* key : {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"}) {
    json j = base_config();
    j.erase(key);
    try {
      config_from_json(j, "sizes.json");
      ADD_FAILURE() << "no error without " << key;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("sizes.json: field \"") + key + "\" is missing"),
                std::string::npos) << e.what();
    }
  }
  // The rest take transformers' LlamaConfig defaults: KV heads = heads, head_dim = C/heads,
  // 2048 positions, eps 1e-6, theta 1e4, bos 1, eos 2, untied.
  const json sizes = {{"vocab_size", 32000}, {"hidden_size", 4096}, {"intermediate_size", 11008},
                      {"num_hidden_layers", 32}, {"num_attention_heads", 32}};
  LlamaConfig c = config_from_json(sizes, "sizes only");
  EXPECT_EQ(c.num_key_value_heads, 32);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.max_position_embeddings, 2048);
  EXPECT_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.rope_scaling.type, "");
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_id, 2);
  EXPECT_EQ(c.eos_token_ids, std::vector<int>{2});
  // Llama-2-7B's published parameter count: these sizes with those defaults are its shape.
  EXPECT_EQ(c.num_params(), 6738415616);

  json j = base_config();
  j.erase("num_key_value_heads");
  j["num_attention_heads"] = 8;  // head_dim absent: 64 / 8
  c = config_from_json(j, "defaults");
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.head_dim, 8);
  j["num_key_value_heads"] = nullptr;  // HF writes None as null: same as absent
  j["head_dim"] = nullptr;
  EXPECT_EQ(config_from_json(j, "nulls"), c);

  // An explicit head_dim that is not hidden_size / heads (q_dim != hidden_size is allowed).
  j = base_config();
  j["head_dim"] = 32;
  c = config_from_json(j, "wide-heads");
  EXPECT_EQ(c.q_dim(), 128);
  EXPECT_EQ(c.kv_dim(), 64);

  // Integral floats, as some exporters write them, read as integers.
  j = base_config();
  j["hidden_size"] = 64.0;
  EXPECT_EQ(config_from_json(j, "floats").hidden_size, 64);

  // Unknown keys are ignored; sliding_window off in the Qwen2 spelling is fine.
  j = base_config();
  j["rope_interleaved"] = false;
  j["some_future_key"] = {{"a", 1}};
  j["sliding_window"] = 4096;
  j["use_sliding_window"] = false;
  j["pretraining_tp"] = 1;
  EXPECT_EQ(config_from_json(j, "extras"), config_from_json(base_config(), "base"));
}

TEST(Config, EosTokenList) {
  json j = llama32_v4();
  j["eos_token_id"] = {128001, 128008, 128009};  // Llama 3.x instruct
  LlamaConfig c = config_from_json(j, "instruct");
  EXPECT_EQ(c.eos_token_id, 128001);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int>{128001, 128008, 128009}));
  json out = config_to_json(c);
  EXPECT_EQ(out["eos_token_id"], json({128001, 128008, 128009}));
  EXPECT_EQ(config_from_json(out, "instruct-roundtrip"), c);

  j["eos_token_id"] = 7;
  c = config_from_json(j, "scalar");
  EXPECT_EQ(c.eos_token_ids, std::vector<int>{7});
  EXPECT_EQ(config_to_json(c)["eos_token_id"], json(7));
}

TEST(Config, ToJsonUsesV4NamesAndFloats) {
  LlamaConfig c = load_config("llama-3.2-1b");
  json j = config_to_json(c);
  EXPECT_EQ(j["architectures"], json({"LlamaForCausalLM"}));
  EXPECT_EQ(j["model_type"], "llama");
  EXPECT_TRUE(j["rope_theta"].is_number_float());
  EXPECT_TRUE(j["rms_norm_eps"].is_number_float());
  EXPECT_TRUE(j["rope_scaling"]["factor"].is_number_float());
  EXPECT_TRUE(j["hidden_size"].is_number_integer());
  EXPECT_EQ(j["rope_scaling"]["rope_type"], "llama3");
  EXPECT_EQ(j["torch_dtype"], "bfloat16");
  EXPECT_FALSE(j.contains("rope_parameters"));
  EXPECT_TRUE(contains(j.dump(), "\"rope_theta\":500000.0")) << j.dump();
  // The unscaled case writes rope_scaling null, and a byte model's missing tokens as null.
  json t = config_to_json(load_config("tiny"));
  EXPECT_TRUE(t["rope_scaling"].is_null());
  EXPECT_TRUE(t["bos_token_id"].is_null());
  EXPECT_TRUE(contains(t.dump(), "\"rope_theta\":10000.0")) << t.dump();
}

// ---- validation ------------------------------------------------------------------------------

TEST(Config, ValidationErrorsNameSourceAndField) {
  struct Case {
    json patch;         // keys set on base_config() (null sets null; see erase below)
    const char* field;  // must appear in the message
    const char* also;   // a second required fragment ("" for none)
  };
  const std::vector<Case> cases = {
      {{{"hidden_size", "64"}}, "hidden_size", "string"},
      {{{"hidden_size", 64.5}}, "hidden_size", "integer"},
      {{{"hidden_size", nullptr}}, "hidden_size", "null"},
      {{{"num_key_value_heads", "2"}}, "num_key_value_heads", ""},
      {{{"tie_word_embeddings", 1}}, "tie_word_embeddings", ""},
      {{{"rms_norm_eps", "1e-5"}}, "rms_norm_eps", ""},
      {{{"rope_theta", "10000"}}, "rope_theta", ""},
      {{{"vocab_size", 0}}, "vocab_size", "positive"},
      {{{"hidden_size", -64}}, "hidden_size", "positive"},
      {{{"intermediate_size", 0}}, "intermediate_size", "positive"},
      {{{"num_hidden_layers", 0}}, "num_hidden_layers", "positive"},
      {{{"num_attention_heads", 0}}, "num_attention_heads", "positive"},
      {{{"num_key_value_heads", 0}}, "num_key_value_heads", "positive"},
      {{{"max_position_embeddings", 0}}, "max_position_embeddings", "positive"},
      {{{"head_dim", 0}}, "head_dim", "positive"},
      {{{"vocab_size", 3000000000.0}}, "vocab_size", "range"},
      {{{"hidden_size", 60}, {"num_attention_heads", 8}, {"num_key_value_heads", 8}}, "hidden_size", "divisible"},
      {{{"num_attention_heads", 4}, {"num_key_value_heads", 3}}, "num_key_value_heads", "multiple"},
      {{{"head_dim", 15}}, "head_dim", "even"},
      {{{"hidden_size", 60}}, "head_dim", "even"},  // 60 / 4 heads = 15
      {{{"rope_scaling", {{"rope_type", "yarn"}, {"factor", 4.0}}}}, "rope_scaling.rope_type", "llama3"},
      {{{"rope_scaling", {{"type", "linear"}, {"factor", 2.0}}}}, "rope_scaling.rope_type", "default"},
      {{{"rope_parameters", {{"rope_type", "dynamic"}, {"factor", 2.0}}}}, "rope_parameters.rope_type", "llama3"},
      {{{"rope_scaling", {{"rope_type", "llama3"}, {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                          {"original_max_position_embeddings", 8192}}}},
       "rope_scaling.factor", "required"},
      {{{"rope_scaling", {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 4.0},
                          {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}}}},
       "rope_scaling.high_freq_factor", ""},
      {{{"rope_scaling", {{"factor", 8.0}}}}, "rope_scaling", "rope_type"},
      {{{"rope_scaling", "llama3"}}, "rope_scaling", "object"},
      {{{"rope_scaling", {{"rope_type", "llama3"}, {"type", "yarn"}}}}, "rope_scaling.type", "disagree"},
      {{{"rope_parameters", {{"rope_type", "default"}, {"rope_theta", 500000.0}}}}, "rope_parameters.rope_theta",
       "rope_theta"},
      {{{"rope_parameters", {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                             {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}}},
        {"rope_scaling", {{"rope_type", "default"}}}},
       "rope_parameters", "rope_scaling"},
      {{{"rope_parameters", {{"rope_type", "default"}, {"partial_rotary_factor", 0.5}}}},
       "rope_parameters.partial_rotary_factor", ""},
      {{{"hidden_act", "gelu"}}, "hidden_act", "gelu"},
      {{{"attention_bias", true}}, "attention_bias", ""},
      {{{"mlp_bias", true}}, "mlp_bias", ""},
      {{{"sliding_window", 4096}}, "sliding_window", "4096"},
      {{{"use_sliding_window", true}, {"sliding_window", 4096}}, "use_sliding_window", ""},
      {{{"model_type", "mistral"}}, "model_type", "mistral"},
      {{{"rms_norm_eps", 0.0}}, "rms_norm_eps", "> 0"},
      {{{"rms_norm_eps", -1e-5}}, "rms_norm_eps", "> 0"},
      {{{"rope_theta", 0.0}}, "rope_theta", "> 0"},
      {{{"attention_dropout", 0.1}}, "attention_dropout", ""},
      {{{"bos_token_id", 300}}, "bos_token_id", "vocab_size"},
      {{{"eos_token_id", json::array()}}, "eos_token_id", "empty"},
      {{{"eos_token_id", {1, "2"}}}, "eos_token_id", "integer"},
      {{{"eos_token_id", {1, 256}}}, "eos_token_id", "256"},
      {{{"torch_dtype", "bfloat16"}, {"dtype", "float32"}}, "torch_dtype", "dtype"},
  };
  for (size_t i = 0; i < cases.size(); i++) {
    const Case& k = cases[i];
    json j = base_config();
    for (auto it = k.patch.begin(); it != k.patch.end(); ++it) j[it.key()] = it.value();
    std::string src = "case" + std::to_string(i) + ".json";
    std::string msg = parse_error(j, src);
    SCOPED_TRACE(src + " patch " + k.patch.dump());
    ASSERT_NE(msg, "") << "expected an error";
    EXPECT_TRUE(contains(msg, src)) << msg;
    EXPECT_TRUE(contains(msg, std::string("\"") + k.field)) << msg;
    EXPECT_TRUE(contains(msg, k.also)) << msg;
  }
  std::string msg = parse_error(json::array({1, 2}), "array.json");
  EXPECT_TRUE(contains(msg, "array.json") && contains(msg, "object")) << msg;
}

TEST(Config, FinalizeValidatesHandBuiltConfigs) {
  LlamaConfig c;
  c.vocab_size = 100;
  c.hidden_size = 48;
  c.num_attention_heads = 6;
  c.num_key_value_heads = 2;
  c.eos_token_id = 5;
  config_finalize(c, "hand-built");
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.eos_token_ids, std::vector<int>{5});
  c.rope_scaling.type = "yarn";
  try {
    config_finalize(c, "hand-built");
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), "hand-built") && contains(e.what(), "rope_type")) << e.what();
  }
}

// ---- files and preset lookup -----------------------------------------------------------------

TEST(Config, LoadFromFileDirectoryAndEnv) {
  TempDir dir("load");
  std::string text = llama32_v5().dump(2);
  std::string file = dir.write("model/config.json", text);
  LlamaConfig want = config_from_json(llama32_v4(), "want");
  EXPECT_EQ(load_config_file(file), want);
  EXPECT_EQ(load_config(file), want);
  EXPECT_EQ(load_config((dir.path / "model").string()), want);  // a HF model directory

  // $MU_CONFIG_DIR is searched first, so a preset there shadows the built-in ones.
  dir.write("presets/tiny.json", base_config().dump());
  dir.write("presets/my-model.json", text);
  ::setenv("MU_CONFIG_DIR", (dir.path / "presets").c_str(), 1);
  EXPECT_EQ(load_config("my-model"), want);
  EXPECT_EQ(load_config("tiny"), config_from_json(base_config(), "x"));
  std::vector<std::string> names = list_presets();
  EXPECT_NE(std::find(names.begin(), names.end(), "my-model"), names.end());
  ::unsetenv("MU_CONFIG_DIR");
  EXPECT_EQ(load_config("tiny").head_dim, 16);  // the shipped preset again
}

TEST(Config, LoadErrorsNameTheFile) {
  TempDir dir("errors");
  auto error_of = [](const std::string& name) -> std::string {
    try {
      load_config(name);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  std::string msg = error_of("no-such-model");
  EXPECT_TRUE(contains(msg, "no-such-model")) << msg;
  EXPECT_TRUE(contains(msg, "tiny") && contains(msg, "smollm2-135m")) << msg;  // lists the presets

  msg = error_of((dir.path / "missing.json").string());
  EXPECT_TRUE(contains(msg, "missing.json") && contains(msg, "tiny")) << msg;

  std::string bad = dir.write("bad.json", "{\"hidden_size\": 64,");
  msg = error_of(bad);
  EXPECT_TRUE(contains(msg, bad) && contains(msg, "JSON")) << msg;

  json w = base_config();
  w["hidden_size"] = "64";
  std::string wrong = dir.write("wrong.json", w.dump());
  msg = error_of(wrong);
  EXPECT_TRUE(contains(msg, wrong) && contains(msg, "hidden_size")) << msg;

  fs::create_directories(dir.path / "empty-model");
  msg = error_of((dir.path / "empty-model").string());
  EXPECT_TRUE(contains(msg, "empty-model") && contains(msg, "config.json")) << msg;
}
