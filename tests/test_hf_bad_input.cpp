// Bad input to mu-convert in both directions: each failure exits 1 with a message naming the
// field, tensor, file or option, and leaves nothing half-written on disk.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/fileio.h"
#include "model/checkpoint.h"
#include "model/hf_export.h"
#include "model/hf_import.h"
#include "tests/util_compare.h"

using namespace mu;
using namespace mu::test;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json tiny_config() {
  return {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"vocab_size", 16},
          {"hidden_size", 8},  {"intermediate_size", 12}, {"num_hidden_layers", 1},
          {"num_attention_heads", 2}, {"num_key_value_heads", 1}, {"max_position_embeddings", 32},
          {"rms_norm_eps", 1e-5}, {"rope_theta", 10000.0}, {"tie_word_embeddings", false},
          {"torch_dtype", "float32"}};
}

// Writes a HF directory by hand (not through the exporter under test): every tensor of the
// config, F32, filled with its index so mix-ups would show. `edit` may change the tensor list.
struct HfTensor {
  std::string name;
  Shape shape;
};
void write_hf(const std::string& dir, const json& cfg_json, std::vector<HfTensor> tensors) {
  fs::create_directories(dir);
  write_text(dir + "/config.json", cfg_json.dump(2));
  std::vector<HostTensor> hosts;
  hosts.reserve(tensors.size());
  SafetensorsWriter w;
  for (const HfTensor& t : tensors) {
    hosts.push_back(HostTensor::f32(t.shape));
    for (int64_t i = 0; i < t.shape.numel(); i++) hosts.back().f32()[i] = 0.01f * static_cast<float>(i % 97);
    w.add(t.name, hosts.back());
  }
  w.set_metadata("format", "pt");
  w.write(dir + "/model.safetensors");
}
std::vector<HfTensor> tensors_of(const json& cfg_json) {
  LlamaConfig c = config_from_json(cfg_json, "test");
  HostModel m = make_host_model(c);
  std::vector<HfTensor> out;
  for (const HfView& v : hf_views(m.w, c)) out.push_back({v.hf_name, v.view.shape});
  return out;
}

class HfBadInput : public ::testing::Test {
 protected:
  void SetUp() override { tmp_ = make_temp_dir("hfbad"); }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(tmp_);
  }
  // mu-convert --from-hf must fail naming every string in `want` and write no checkpoint.
  void expect_import_fails(const std::string& dir, const std::vector<std::string>& want) {
    const std::string out = tmp_ + "/out.safetensors";
    RunResult r = run_cmd(tool("mu-convert") + " --from-hf " + dir + " --out " + out);
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_FALSE(r.signaled);
    for (const std::string& s : want) EXPECT_NE(r.output.find(s), std::string::npos) << "no '" << s << "' in: " << r.output;
    EXPECT_FALSE(file_exists(out));
    expect_no_temp_files();
  }
  void expect_no_temp_files() {
    for (const auto& e : fs::recursive_directory_iterator(tmp_)) {
      const std::string f = e.path().filename().string();
      EXPECT_EQ(f.find(".tmp"), std::string::npos) << "left behind: " << e.path();
      EXPECT_EQ(f.find(".old-"), std::string::npos) << "left behind: " << e.path();
    }
  }
  std::string tmp_;
};

TEST_F(HfBadInput, UnsupportedConfigFeaturesNameTheField) {
  const std::vector<std::pair<json, std::string>> cases = {
      {{{"attention_bias", true}}, "attention_bias"},
      {{{"mlp_bias", true}}, "mlp_bias"},
      {{{"sliding_window", 4096}}, "sliding_window"},
      {{{"rope_scaling", {{"rope_type", "yarn"}, {"factor", 4.0}}}}, "rope_scaling.rope_type"},
      {{{"rope_parameters", {{"rope_type", "dynamic"}, {"rope_theta", 10000.0}}}}, "rope_parameters.rope_type"},
      {{{"hidden_act", "gelu"}}, "hidden_act"},
      {{{"model_type", "mistral"}}, "model_type"},
  };
  int k = 0;
  for (const auto& [patch, field] : cases) {
    json cfg = tiny_config();
    cfg.update(patch);
    const std::string dir = tmp_ + "/cfg" + std::to_string(k++);
    write_hf(dir, cfg, tensors_of(tiny_config()));
    expect_import_fails(dir, {dir + "/config.json", field});
  }
}

TEST_F(HfBadInput, MissingTensorIsNamed) {
  auto ts = tensors_of(tiny_config());
  ts.erase(ts.begin() + 5);  // model.layers.0.self_attn.o_proj.weight
  ASSERT_EQ(tensors_of(tiny_config())[5].name, "model.layers.0.self_attn.o_proj.weight");
  write_hf(tmp_ + "/hf", tiny_config(), ts);
  expect_import_fails(tmp_ + "/hf", {"model.layers.0.self_attn.o_proj.weight", "missing"});
}

TEST_F(HfBadInput, ShapeMismatchNamesTensorAndShapes) {
  auto ts = tensors_of(tiny_config());
  for (auto& t : ts)
    if (t.name == "model.layers.0.mlp.up_proj.weight") t.shape = Shape{13, 8};  // config: (12, 8)
  write_hf(tmp_ + "/hf", tiny_config(), ts);
  expect_import_fails(tmp_ + "/hf", {"model.layers.0.mlp.up_proj.weight", "(13, 8)", "(12, 8)"});
}

TEST_F(HfBadInput, UnexpectedTensorIsNamed) {
  auto ts = tensors_of(tiny_config());
  ts.push_back({"model.layers.0.self_attn.q_proj.bias", Shape{8}});
  write_hf(tmp_ + "/hf", tiny_config(), ts);
  expect_import_fails(tmp_ + "/hf", {"model.layers.0.self_attn.q_proj.bias"});
}

// transformers < 4.31 saved each layer's RoPE frequencies as a buffer; transformers ignores it on
// load, and so does the importer (single file and sharded index), with the same result as
// without it. A name that only resembles it is still an unknown tensor.
TEST_F(HfBadInput, RotaryInvFreqBuffersAreSkipped) {
  const std::string inv_freq = "model.layers.0.self_attn.rotary_emb.inv_freq";  // head_dim 4: (2,)
  write_hf(tmp_ + "/plain", tiny_config(), tensors_of(tiny_config()));
  auto ts = tensors_of(tiny_config());
  ts.push_back({inv_freq, Shape{2}});
  write_hf(tmp_ + "/single", tiny_config(), ts);
  // Sharded: the buffer in a shard of its own, listed in the index.
  write_hf(tmp_ + "/sharded", tiny_config(), tensors_of(tiny_config()));
  fs::rename(tmp_ + "/sharded/model.safetensors", tmp_ + "/sharded/model-00001-of-00002.safetensors");
  write_hf(tmp_ + "/buf", tiny_config(), {{inv_freq, Shape{2}}});
  fs::rename(tmp_ + "/buf/model.safetensors", tmp_ + "/sharded/model-00002-of-00002.safetensors");
  json wm;
  for (const auto& t : tensors_of(tiny_config())) wm[t.name] = "model-00001-of-00002.safetensors";
  wm[inv_freq] = "model-00002-of-00002.safetensors";
  write_text(tmp_ + "/sharded/model.safetensors.index.json", json{{"metadata", json::object()}, {"weight_map", wm}}.dump());
  std::vector<float> want;
  for (const std::string name : {"plain", "single", "sharded"}) {
    const std::string out = tmp_ + "/" + name + ".safetensors";
    RunResult r = run_cmd(tool("mu-convert") + " --from-hf " + tmp_ + "/" + name + " --out " + out);
    ASSERT_EQ(r.exit_code, 0) << name << ": " << r.output;
    if (want.empty()) want = weights_of(out);
    else EXPECT_EQ(weights_of(out), want) << name;
  }
  ts.back().name = "model.layers.0.self_attn.not_rotary_emb.inv_freq";
  write_hf(tmp_ + "/near", tiny_config(), ts);
  expect_import_fails(tmp_ + "/near", {"model.layers.0.self_attn.not_rotary_emb.inv_freq"});
}

TEST_F(HfBadInput, IndexNamingAMissingShard) {
  write_hf(tmp_ + "/hf", tiny_config(), tensors_of(tiny_config()));
  json wm;
  for (const auto& t : tensors_of(tiny_config())) wm[t.name] = "model-00001-of-00002.safetensors";
  wm["lm_head.weight"] = "model-00002-of-00002.safetensors";
  write_text(tmp_ + "/hf/model.safetensors.index.json", json{{"metadata", json::object()}, {"weight_map", wm}}.dump());
  // transformers loads model.safetensors when it is there, and never reads the index: so here.
  RunResult r = run_cmd(tool("mu-convert") + " --from-hf " + tmp_ + "/hf --out " + tmp_ + "/m.safetensors");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  fs::rename(tmp_ + "/hf/model.safetensors", tmp_ + "/hf/model-00001-of-00002.safetensors");
  expect_import_fails(tmp_ + "/hf", {"model-00002-of-00002.safetensors"});
}

// ---- export (--to-hf) ------------------------------------------------------------------------

class HfExportBad : public HfBadInput {
 protected:
  void SetUp() override {
    HfBadInput::SetUp();
    write_hf(tmp_ + "/src", tiny_config(), tensors_of(tiny_config()));
    ckpt_ = tmp_ + "/m.safetensors";
    RunResult r = run_cmd(tool("mu-convert") + " --from-hf " + tmp_ + "/src --out " + ckpt_);
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  RunResult to_hf(const std::string& args) {
    return run_cmd(tool("mu-convert") + " --model " + ckpt_ + " --to-hf " + tmp_ + "/out " + args);
  }
  void expect_fails(const RunResult& r, const std::vector<std::string>& want) {
    EXPECT_EQ(r.exit_code, 1) << r.output;
    for (const std::string& s : want) EXPECT_NE(r.output.find(s), std::string::npos) << "no '" << s << "' in: " << r.output;
    expect_no_temp_files();
  }
  std::string ckpt_;
};

TEST_F(HfExportBad, BadOptionsFailBeforeWriting) {
  expect_fails(to_hf("--dtype fp8"), {"--dtype", "fp8"});
  expect_fails(to_hf("--max-shard-size 5XB"), {"--max-shard-size", "5XB"});
  expect_fails(to_hf("--max-shard-size 0"), {"--max-shard-size"});
  expect_fails(to_hf("--tokenizer-from " + tmp_ + "/src"), {"--tokenizer-from", "tokenizer.json"});
  expect_fails(to_hf("--tokenizer-from " + tmp_ + "/nowhere"), {"--tokenizer-from", "not a directory"});
  expect_fails(to_hf("--out " + tmp_ + "/x.safetensors"), {"exactly one destination"});
  EXPECT_FALSE(fs::exists(tmp_ + "/out"));
  // A HF file is not an engine checkpoint.
  RunResult r = run_cmd(tool("mu-convert") + " --model " + tmp_ + "/src/model.safetensors --to-hf " + tmp_ + "/out");
  expect_fails(r, {"not an llm.mu checkpoint"});
  EXPECT_FALSE(fs::exists(tmp_ + "/out"));
}

TEST_F(HfExportBad, ExistingDirectoryIsKeptUnlessForced) {
  fs::create_directories(tmp_ + "/out");
  write_text(tmp_ + "/out/model-00001-of-00009.safetensors", "stale");
  expect_fails(to_hf(""), {tmp_ + "/out", "not empty", "--force"});
  EXPECT_EQ(read_text_file(tmp_ + "/out/model-00001-of-00009.safetensors"), "stale");

  RunResult r = to_hf("--force");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(file_exists(tmp_ + "/out/model-00001-of-00009.safetensors"));  // replaced, not merged
  EXPECT_TRUE(file_exists(tmp_ + "/out/model.safetensors"));
  expect_no_temp_files();

  // An existing empty directory is fine without --force.
  fs::create_directories(tmp_ + "/empty");
  r = run_cmd(tool("mu-convert") + " --model " + ckpt_ + " --to-hf " + tmp_ + "/empty/");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(file_exists(tmp_ + "/empty/config.json"));
}

TEST_F(HfExportBad, TokenizerFilesAreCopiedByteForByte) {
  fs::create_directories(tmp_ + "/tok");
  const std::string bin("\x00\x01\xff spm", 7);
  write_text(tmp_ + "/tok/tokenizer.json", "{\"model\": {}}");
  write_text(tmp_ + "/tok/tokenizer.model", bin);
  write_text(tmp_ + "/tok/generation_config.json", "{\"bos_token_id\": 1}");
  write_text(tmp_ + "/tok/README.md", "not a tokenizer file");
  RunResult r = to_hf("--tokenizer-from " + tmp_ + "/tok --dtype bf16");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(read_text_file(tmp_ + "/out/tokenizer.json"), "{\"model\": {}}");
  EXPECT_EQ(read_text_file(tmp_ + "/out/tokenizer.model"), bin);
  EXPECT_EQ(read_text_file(tmp_ + "/out/generation_config.json"), "{\"bos_token_id\": 1}");
  EXPECT_FALSE(file_exists(tmp_ + "/out/README.md"));
  EXPECT_FALSE(file_exists(tmp_ + "/out/tokenizer_config.json"));
  EXPECT_EQ(json::parse(read_text_file(tmp_ + "/out/config.json"))["torch_dtype"], "bfloat16");
}

// A destination that is a source (another spelling, a symlink), or a --to-hf directory that
// holds one and would be replaced, is refused before anything is read or written, naming both
// flags; the sources stay byte for byte.
TEST_F(HfExportBad, DestinationThatIsASourceIsRefused) {
  const std::string src = tmp_ + "/src";
  write_text(src + "/tokenizer.json", "{\"model\": {}}");
  const std::string weights = read_text_file(src + "/model.safetensors"), ckpt = read_text_file(ckpt_);
  fs::create_directories(tmp_ + "/run1");
  fs::copy_file(ckpt_, tmp_ + "/run1/model.safetensors");
  fs::create_symlink(src + "/model.safetensors", tmp_ + "/link.safetensors");
  fs::create_directories(tmp_ + "/tok");
  write_text(tmp_ + "/tok/tokenizer.json", "{\"model\": {}}");
  const std::string conv = tool("mu-convert");
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"--from-hf " + src + " --out " + src + "/model.safetensors", {"--out", "--from-hf", src}},
      {"--from-hf " + src + " --out " + src + "/../src/./config.json", {"--out", "--from-hf"}},
      {"--from-hf " + src + " --out " + tmp_ + "/link.safetensors", {"--out", "--from-hf", "link.safetensors"}},
      {"--from-hf " + src + " --out " + src + "/tokenizer.json", {"--out", "--from-hf"}},
      {"--model " + ckpt_ + " --out " + tmp_ + "/./m.safetensors", {"--out", "--model", ckpt_}},
      {"--model " + tmp_ + "/run1/model.safetensors --to-hf " + tmp_ + "/run1 --force", {"--to-hf", "--model"}},
      {"--model " + tmp_ + "/run1/model.safetensors --to-hf " + tmp_ + "/run1/ --force", {"--to-hf", "--model"}},
      {"--from-hf " + src + " --to-hf " + src + " --force", {"--to-hf", "--from-hf"}},
      {"--from-hf " + src + " --to-hf " + tmp_ + " --force", {"--to-hf", "--from-hf"}},
      {"--model " + ckpt_ + " --to-hf " + tmp_ + "/tok --tokenizer-from " + tmp_ + "/tok --force",
       {"--to-hf", "--tokenizer-from"}},
  };
  for (const auto& [args, want] : cases) {
    RunResult r = run_cmd(conv + " " + args);
    EXPECT_EQ(r.exit_code, 1) << args << "\n" << r.output;
    for (const std::string& w : want) EXPECT_NE(r.output.find(w), std::string::npos) << args << ": no '" << w << "' in: " << r.output;
  }
  EXPECT_TRUE(read_text_file(src + "/model.safetensors") == weights) << "the HF weights were overwritten";
  EXPECT_EQ(read_text_file(src + "/tokenizer.json"), "{\"model\": {}}");
  EXPECT_TRUE(file_exists(src + "/config.json"));
  EXPECT_TRUE(read_text_file(ckpt_) == ckpt);
  EXPECT_TRUE(read_text_file(tmp_ + "/run1/model.safetensors") == ckpt) << "--to-hf deleted the source";
  EXPECT_EQ(read_text_file(tmp_ + "/tok/tokenizer.json"), "{\"model\": {}}");
  expect_no_temp_files();
  // New files next to the sources are fine.
  RunResult r = run_cmd(conv + " --from-hf " + src + " --out " + src + "/engine.safetensors");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = run_cmd(conv + " --from-hf " + src + " --to-hf " + src + "/exported");
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

// The library refuses weights that do not match the config, before creating anything.
TEST_F(HfExportBad, WeightsNotMatchingTheConfig) {
  LlamaConfig c = config_from_json(tiny_config(), "test");
  HostModel m = make_host_model(c);
  LlamaConfig other = c;
  other.intermediate_size = 16;
  try {
    export_hf_dir(tmp_ + "/lib", other, m.w);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layers.w_gate_up"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(tmp_ + "/lib"));
  expect_no_temp_files();
}

TEST(HfByteSize, ParsesTransformersUnits) {
  EXPECT_EQ(parse_byte_size("5GB", "x"), 5000000000LL);
  EXPECT_EQ(parse_byte_size("500MB", "x"), 500000000LL);
  EXPECT_EQ(parse_byte_size("2GiB", "x"), 2147483648LL);
  EXPECT_EQ(parse_byte_size("1.5GB", "x"), 1500000000LL);
  EXPECT_EQ(parse_byte_size("10kB", "x"), 10000LL);
  EXPECT_EQ(parse_byte_size("123", "x"), 123LL);
  for (const char* bad : {"", "GB", "5 GB", "-1GB", "1.2.3MB", "5XB", "0"}) {
    EXPECT_THROW(parse_byte_size(bad, "--max-shard-size"), Error) << bad;
  }
}

}  // namespace
