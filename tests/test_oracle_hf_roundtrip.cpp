// HF -> engine -> HF round trips on the oracle's HF directories (tools/reference/oracle.py):
// the exported tensors are bitwise the source tensors at the same dtype, the config parses
// to the same LlamaConfig (a v5-spelled source comes back in the v4 spelling, which both
// transformers 4 and 5 read), forced sharding gives an index that import_hf_dir and the
// Python oracle's own reader accept, and the oracle's float64 model gets the fixture's loss
// from every export.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/fileio.h"
#include "model/hf_export.h"
#include "model/hf_import.h"
#include "tests/util_compare.h"

using namespace mu;
using namespace mu::test;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const char* kPython = "/usr/bin/python3";  // Debian python3-torch: the oracle's interpreter

const char* kCases[] = {"mha_tied",   "gqa2_untied",  "gqa3_llama3",       "awkward",
                        "v5_headdim", "bf16_sharded", "f16_tied_with_head"};

struct StoredTensor {
  DType dtype;
  Shape shape;
  std::string bytes;
  std::string file;
};

// Every tensor of a HF directory with its raw bytes, read without the engine's import code.
std::map<std::string, StoredTensor> read_hf_tensors(const std::string& dir) {
  std::vector<std::string> files;
  if (file_exists(dir + "/model.safetensors.index.json")) {
    json idx = json::parse(read_text_file(dir + "/model.safetensors.index.json"));
    std::map<std::string, bool> seen;
    for (auto& [name, f] : idx["weight_map"].items()) seen[f.get<std::string>()] = true;
    for (auto& [f, _] : seen) files.push_back(f);
  } else {
    files.push_back("model.safetensors");
  }
  std::map<std::string, StoredTensor> out;
  for (const std::string& f : files) {
    SafetensorsFile sf(dir + "/" + f);
    EXPECT_EQ(sf.metadata().count("format") ? sf.metadata().at("format") : "", "pt") << dir << "/" << f;
    for (const StTensorInfo& t : sf.tensors()) {
      EXPECT_EQ(out.count(t.name), 0u) << t.name << " appears twice in " << dir;
      out[t.name] = {t.dtype, t.shape, std::string(static_cast<const char*>(t.data), t.nbytes), f};
    }
  }
  return out;
}

DType stored_dtype(const std::map<std::string, StoredTensor>& ts) {
  DType d = ts.begin()->second.dtype;
  for (const auto& [n, t] : ts) EXPECT_EQ(t.dtype, d) << n;
  return d;
}

// The exported directory holds exactly the source's tensors, bit for bit; a tied source that
// also stored lm_head.weight (f16_tied_with_head) loses it, as transformers' save_pretrained does.
void expect_same_tensors(const std::string& src, const std::string& out, const LlamaConfig& cfg) {
  auto a = read_hf_tensors(src), b = read_hf_tensors(out);
  if (cfg.tie_word_embeddings) {
    EXPECT_EQ(b.count("lm_head.weight"), 0u) << out << ": tied export must not store lm_head.weight";
    a.erase("lm_head.weight");
  }
  ASSERT_EQ(a.size(), b.size()) << src << " vs " << out;
  for (const auto& [name, t] : a) {
    auto it = b.find(name);
    ASSERT_NE(it, b.end()) << name << " missing from " << out;
    EXPECT_EQ(it->second.dtype, t.dtype) << name;
    EXPECT_EQ(it->second.shape, t.shape) << name;
    EXPECT_TRUE(it->second.bytes == t.bytes) << name << ": bytes differ";
  }
}

class RoundTrip : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    src_ = fixture_dir() + "/" + GetParam() + "/hf";
    tmp_ = make_temp_dir(std::string("hfrt-") + GetParam());
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(tmp_);
  }
  std::string src_, tmp_;
};

TEST_P(RoundTrip, ExportIsBitwiseTheSourceWithAnEquivalentConfig) {
  HostModel m = import_hf_dir(src_);
  const DType dtype = stored_dtype(read_hf_tensors(src_));
  HfExportOptions o;
  o.dtype = dtype;
  HfExportResult r = export_hf_dir(tmp_ + "/out", m.cfg, m.w, o);
  EXPECT_EQ(r.shards, 1);  // 5 GB default: these models fit one file
  expect_same_tensors(src_, tmp_ + "/out", m.cfg);

  // Same struct after parsing both config.json files (torch_dtype included).
  EXPECT_EQ(load_config_file(tmp_ + "/out/config.json"), load_config_file(src_ + "/config.json"));
  // Written in the v4 spelling whatever the source used.
  json j = json::parse(read_text_file(tmp_ + "/out/config.json"));
  EXPECT_EQ(j["architectures"], json::array({"LlamaForCausalLM"}));
  EXPECT_EQ(j["model_type"], "llama");
  EXPECT_TRUE(j.contains("rope_theta") && j.contains("torch_dtype"));
  EXPECT_FALSE(j.contains("rope_parameters") || j.contains("dtype"));
  EXPECT_EQ(j["torch_dtype"], torch_dtype_name(dtype));
  EXPECT_FALSE(fs::exists(tmp_ + "/out.tmp-" + std::to_string(::getpid())));
}

// The user's path: mu-convert both ways through an f32 engine checkpoint, the export's dtype
// defaulting to the checkpoint config's torch_dtype.
TEST_P(RoundTrip, ToolsThroughAnEngineCheckpoint) {
  RunResult a = run_cmd(tool("mu-convert") + " --from-hf " + src_ + " --out " + tmp_ + "/m.safetensors");
  ASSERT_EQ(a.exit_code, 0) << a.output;
  RunResult b = run_cmd(tool("mu-convert") + " --model " + tmp_ + "/m.safetensors --to-hf " + tmp_ + "/out");
  ASSERT_EQ(b.exit_code, 0) << b.output;
  const LlamaConfig cfg = load_config_file(src_ + "/config.json");
  expect_same_tensors(src_, tmp_ + "/out", cfg);
  EXPECT_EQ(load_config_file(tmp_ + "/out/config.json"), cfg);
}

INSTANTIATE_TEST_SUITE_P(Cases, RoundTrip, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<const char*>& i) { return std::string(i.param); });

// A tiny --max-shard-size forces many shards: the index must be complete and consistent, and
// import_hf_dir must read the directory back to the same float32 weights.
TEST(HfExportShards, ForcedShardingGivesAValidIndex) {
  const std::string tmp = make_temp_dir("hfshard");
  const std::string src = fixture_dir() + "/gqa2_untied/hf";
  HostModel m = import_hf_dir(src);
  HfExportOptions o;
  o.max_shard_bytes = 20000;  // 64x64 f32 = 16 KB: two such tensors never share a shard
  HfExportResult r = export_hf_dir(tmp + "/out", m.cfg, m.w, o);
  ASSERT_GT(r.shards, 4);

  json idx = json::parse(read_text_file(tmp + "/out/model.safetensors.index.json"));
  std::map<std::string, std::string> wm = idx.at("weight_map").get<std::map<std::string, std::string>>();
  auto tensors = read_hf_tensors(tmp + "/out");
  EXPECT_EQ(wm.size(), tensors.size());
  int64_t total = 0;
  std::map<std::string, int64_t> per_file;
  for (const auto& [name, t] : tensors) {
    EXPECT_EQ(wm[name], t.file) << name << ": the index names another shard";
    total += static_cast<int64_t>(t.bytes.size());
    per_file[t.file] += static_cast<int64_t>(t.bytes.size());
  }
  EXPECT_EQ(idx.at("metadata").at("total_size").get<int64_t>(), total);
  EXPECT_EQ(static_cast<int>(per_file.size()), r.shards);
  int k = 1;
  for (const auto& [f, bytes] : per_file) {
    char want[64];
    std::snprintf(want, sizeof want, "model-%05d-of-%05d.safetensors", k++, r.shards);
    EXPECT_EQ(f, want);
    // Over the limit only when one tensor alone is (the 128x64 embedding and head).
    if (bytes > o.max_shard_bytes) {
      const std::string& file = f;  // C++17 lambdas cannot capture a structured binding (clang refuses)
      EXPECT_EQ(std::count_if(tensors.begin(), tensors.end(), [&](auto& t) { return t.second.file == file; }), 1) << f;
    }
  }
  EXPECT_FALSE(fs::exists(tmp + "/out/model.safetensors"));

  HostModel back = import_hf_dir(tmp + "/out");
  EXPECT_EQ(back.cfg, m.cfg);
  std::map<std::string, Tensor> got;
  for (const auto& [name, t] : back.w.named(back.cfg)) got[name] = t;
  for (const auto& [name, t] : m.w.named(m.cfg)) {
    ASSERT_EQ(got.count(name), 1u) << name;
    EXPECT_EQ(std::memcmp(t.data, got[name].data, t.nbytes()), 0) << name;
  }
  fs::remove_all(tmp);
}

// bf16 sharded source, re-sharded by the tool with a decimal-unit size. By hand, with 9kB =
// 9000 bytes and bf16 tensors in HF order (embed 16384 | ln 128 + q 8192 | k 4096 + v 4096 |
// o 8192 + post-ln 128 | gate 12288 | up 12288 | down 12288 per layer | norm 128 | head 16384),
// the greedy rule gives 1 + 6 per layer x 2 + 1 (norm) + 1 (head) = 15 shards.
TEST(HfExportShards, ToolReshardsBf16) {
  const std::string tmp = make_temp_dir("hfshard-tool");
  const std::string src = fixture_dir() + "/bf16_sharded/hf";
  RunResult r = run_cmd(tool("mu-convert") + " --from-hf " + src + " --to-hf " + tmp + "/out --max-shard-size 9kB");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto tensors = read_hf_tensors(tmp + "/out");
  EXPECT_EQ(tensors.at("model.embed_tokens.weight").file, "model-00001-of-00015.safetensors");
  EXPECT_EQ(tensors.at("model.layers.0.input_layernorm.weight").file, "model-00002-of-00015.safetensors");
  EXPECT_EQ(tensors.at("model.layers.0.self_attn.q_proj.weight").file, "model-00002-of-00015.safetensors");
  EXPECT_EQ(tensors.at("model.layers.1.self_attn.v_proj.weight").file, "model-00009-of-00015.safetensors");
  EXPECT_EQ(tensors.at("model.norm.weight").file, "model-00014-of-00015.safetensors");
  EXPECT_EQ(tensors.at("lm_head.weight").file, "model-00015-of-00015.safetensors");
  expect_same_tensors(src, tmp + "/out", load_config_file(src + "/config.json"));
  fs::remove_all(tmp);
}

// The oracle's own reader and float64 model on exports of every case (and a forced-shard
// one): its loss equals the fixture's, which it computed from the source directory.
TEST(HfExportOracle, PythonReaderGetsTheFixtureLoss) {
  const std::string tmp = make_temp_dir("hfpy");
  std::string cmd = std::string(kPython) + " " + MU_SOURCE_DIR + "/tools/reference/check_hf_dir.py";
  std::map<std::string, std::string> dir_case;
  for (const char* c : kCases) {
    const std::string src = fixture_dir() + "/" + c + "/hf";
    HostModel m = import_hf_dir(src);
    HfExportOptions o;
    o.dtype = stored_dtype(read_hf_tensors(src));
    const std::string out = tmp + "/" + c;
    export_hf_dir(out, m.cfg, m.w, o);
    dir_case[out] = c;
    cmd += " --pair " + out + " " + fixture_dir() + "/" + c + "/fixture.safetensors";
    if (std::string(c) == "bf16_sharded") {
      o.max_shard_bytes = 10000;
      export_hf_dir(out + "_shards", m.cfg, m.w, o);
      dir_case[out + "_shards"] = c;
      cmd += " --pair " + out + "_shards " + fixture_dir() + "/" + c + "/fixture.safetensors";
    }
  }
  RunResult r = run_cmd(cmd);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::istringstream lines(r.output);
  std::string line;
  size_t checked = 0;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] != '{') continue;
    json j = json::parse(line);
    const std::string c = dir_case.at(j["dir"].get<std::string>());
    SafetensorsFile fx(fixture_dir() + "/" + c + "/fixture.safetensors");
    const double want = read_f64(fx, "loss")[0], got = j["loss"].get<double>();
    // Same float64 computation on bitwise-identical values; only BLAS summation order (thread
    // count) may differ between the two runs: 1e-12 relative.
    EXPECT_NEAR(got, want, 1e-12 * std::abs(want)) << c << " " << j["dir"];
    checked++;
  }
  EXPECT_EQ(checked, dir_case.size()) << r.output;
  if (!HasFailure()) fs::remove_all(tmp);
}

// Weights held in bf16 (as on the GPU) export through the float32 path bit-exactly.
TEST(HfExportDtypes, Bf16WeightsExportBitExactly) {
  const std::string tmp = make_temp_dir("hfbf16");
  const std::string src = fixture_dir() + "/bf16_sharded/hf";
  HostModel m = import_hf_dir(src);
  ArenaPlan plan;
  plan_params(plan, m.cfg, Region::Weights, DType::BF16, "p.");
  Arena arena(plan, Device::CPU);
  LlamaWeights w = bind_weights(arena, m.cfg, "p.");
  const auto src_named = m.w.named(m.cfg), dst_named = w.named(m.cfg);
  for (size_t i = 0; i < src_named.size(); i++) {
    const Tensor& s = src_named[i].second;
    convert_from_f32(dst_named[i].second.data, DType::BF16, s.f32(), static_cast<size_t>(s.numel()));
  }
  HfExportOptions o;
  o.dtype = DType::BF16;
  export_hf_dir(tmp + "/out", m.cfg, w, o);
  expect_same_tensors(src, tmp + "/out", m.cfg);
  fs::remove_all(tmp);
}

}  // namespace
