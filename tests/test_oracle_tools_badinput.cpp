// Malformed inputs to mu-convert and mu-eval: each exits 1 with a message naming the file and
// the problem (never a signal), and nothing already on disk is lost.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/fileio.h"
#include "tests/util_compare.h"

using namespace mu;
using namespace mu::test;
namespace fs = std::filesystem;

namespace {

std::string src_case() { return fixture_dir() + "/gqa2_untied/hf"; }

// A copy of a good HF directory to break in one way.
std::string copy_hf(const std::string& tag) {
  std::string d = make_temp_dir(tag);
  fs::copy(src_case(), d + "/hf", fs::copy_options::recursive);
  return d + "/hf";
}

// Rewrites dir/model.safetensors through `edit`, which may drop or replace tensors.
void rewrite_weights(const std::string& dir, const std::function<void(const StTensorInfo&, SafetensorsWriter&)>& edit,
                     std::vector<HostTensor>& keep) {
  std::vector<char> bytes;
  {
    SafetensorsFile f(dir + "/model.safetensors");
    SafetensorsWriter w;
    for (const auto& t : f.tensors()) {
      keep.emplace_back(t.dtype, t.shape);
      std::memcpy(keep.back().t().data, t.data, t.nbytes);
      StTensorInfo copy = t;
      copy.data = keep.back().t().data;
      edit(copy, w);
    }
    w.set_metadata("format", "pt");
    w.write(dir + "/model.safetensors.new");
  }
  fs::rename(dir + "/model.safetensors.new", dir + "/model.safetensors");
}

void expect_clean_failure(const RunResult& r, const std::vector<std::string>& needles, const std::string& what) {
  EXPECT_FALSE(r.signaled) << what << "\n" << r.output;
  EXPECT_EQ(r.exit_code, 1) << what << "\n" << r.output;
  for (const auto& n : needles) EXPECT_NE(r.output.find(n), std::string::npos) << what << ": no '" << n << "' in\n" << r.output;
}

RunResult convert(const std::string& dir, const std::string& out) {
  return run_cmd(tool("mu-convert") + " --from-hf " + dir + " --out " + out);
}

TEST(ToolsBadInput, ConvertRejectsBrokenHfDirectories) {
  const std::string out = make_temp_dir("out") + "/m.safetensors";
  const std::string sentinel = "previous contents";
  write_text(out, sentinel);  // must survive every failed conversion

  expect_clean_failure(convert("/nonexistent/dir", out), {"/nonexistent/dir", "config.json"}, "missing dir");
  {
    std::string d = copy_hf("badjson");
    write_text(d + "/config.json", "{\"hidden_size\": 64,");
    expect_clean_failure(convert(d, out), {d + "/config.json"}, "bad json");
  }
  {
    std::string d = copy_hf("act");
    nlohmann::json j = nlohmann::json::parse(read_text_file(d + "/config.json"));
    j["hidden_act"] = "gelu";
    write_text(d + "/config.json", j.dump());
    expect_clean_failure(convert(d, out), {d + "/config.json", "hidden_act"}, "unsupported activation");
  }
  {
    std::string d = copy_hf("trunc");
    fs::resize_file(d + "/model.safetensors", fs::file_size(d + "/model.safetensors") - 100);
    expect_clean_failure(convert(d, out), {d + "/model.safetensors"}, "truncated weights");
  }
  {
    std::string d = copy_hf("missing");
    std::vector<HostTensor> keep;
    rewrite_weights(d, [](const StTensorInfo& t, SafetensorsWriter& w) {
      if (t.name != "model.layers.1.mlp.up_proj.weight") w.add(t.name, Tensor(const_cast<void*>(t.data), t.dtype, Device::CPU, t.shape));
    }, keep);
    expect_clean_failure(convert(d, out), {"model.layers.1.mlp.up_proj.weight", "missing"}, "missing tensor");
  }
  {
    std::string d = copy_hf("extra");
    std::vector<HostTensor> keep;
    HostTensor bias = HostTensor::f32({64});
    rewrite_weights(d, [&](const StTensorInfo& t, SafetensorsWriter& w) {
      w.add(t.name, Tensor(const_cast<void*>(t.data), t.dtype, Device::CPU, t.shape));
      if (t.name == "model.norm.weight") w.add("model.layers.0.self_attn.q_proj.bias", bias);
    }, keep);
    expect_clean_failure(convert(d, out), {"model.layers.0.self_attn.q_proj.bias"}, "unexpected tensor");
  }
  {
    std::string d = copy_hf("shape");
    nlohmann::json j = nlohmann::json::parse(read_text_file(d + "/config.json"));
    j["intermediate_size"] = j["intermediate_size"].get<int>() + 8;
    write_text(d + "/config.json", j.dump());
    expect_clean_failure(convert(d, out), {"gate_proj.weight", "shape"}, "shape mismatch");
  }
  {
    std::string d = copy_hf("index");
    fs::remove(d + "/model.safetensors");
    write_text(d + "/model.safetensors.index.json",
               "{\"metadata\": {}, \"weight_map\": {\"model.embed_tokens.weight\": \"model-00001-of-00002.safetensors\"}}");
    expect_clean_failure(convert(d, out), {"model-00001-of-00002.safetensors"}, "missing shard");
  }
  expect_clean_failure(run_cmd(tool("mu-convert") + " --from-hf " + src_case() + " --out " + out + " --dtype f8"),
                       {"--dtype", "f8"}, "bad dtype");
  EXPECT_EQ(read_text_file(out), sentinel) << "a failed conversion touched the existing output";
}

TEST(ToolsBadInput, EvalRejectsBadModelsAndTokens) {
  const std::string d = make_temp_dir("evalbad");
  const std::string ckpt = d + "/m.safetensors", out = d + "/out.safetensors";
  ASSERT_EQ(convert(src_case(), ckpt).exit_code, 0);
  auto eval = [&](const std::string& model, const std::string& tokens) {
    return run_cmd(tool("mu-eval") + " --model " + model + " --tokens " + tokens + " --out " + out + " --grads");
  };
  const std::string good_tokens = fixture_dir() + "/gqa2_untied/fixture.safetensors";
  // An HF weights file is not an engine checkpoint.
  expect_clean_failure(eval(src_case() + "/model.safetensors", good_tokens),
                       {src_case() + "/model.safetensors", "not an llm.mu checkpoint", "mu-convert"}, "hf file as model");
  {
    std::string t = d + "/trunc.safetensors";
    fs::copy_file(ckpt, t);
    fs::resize_file(t, 1000);
    expect_clean_failure(eval(t, good_tokens), {t}, "truncated checkpoint");
  }
  auto tokens_file = [&](const std::string& name, DType dt, Shape s, const std::vector<int64_t>& vals) {
    std::string p = d + "/" + name + ".safetensors";
    HostTensor h(dt, s);
    for (size_t i = 0; i < vals.size(); i++) {
      if (dt == DType::I32) static_cast<int32_t*>(h.t().data)[i] = static_cast<int32_t>(vals[i]);
      else if (dt == DType::I64) static_cast<int64_t*>(h.t().data)[i] = vals[i];
      else static_cast<float*>(h.t().data)[i] = static_cast<float>(vals[i]);
    }
    SafetensorsWriter w;
    w.add(name == "noname" ? "ids" : "tokens", h);
    w.write(p);
    return p;
  };
  std::vector<int64_t> ok = {1, 2, 3, 4, 5, 6};
  std::vector<int64_t> big = {1, 2, 3, 4000, 5, 6};
  std::vector<int64_t> neg = {1, 2, -3, 4, 5, 6};
  expect_clean_failure(eval(ckpt, tokens_file("noname", DType::I32, {2, 3}, ok)), {"noname", "tokens"}, "no tokens tensor");
  expect_clean_failure(eval(ckpt, tokens_file("floats", DType::F32, {2, 3}, ok)), {"floats", "F32"}, "float tokens");
  expect_clean_failure(eval(ckpt, tokens_file("flat", DType::I32, {6}, ok)), {"flat", "shape"}, "1-D tokens");
  expect_clean_failure(eval(ckpt, tokens_file("short", DType::I32, {6, 1}, ok)), {"short", "T+1"}, "T = 0");
  expect_clean_failure(eval(ckpt, tokens_file("big", DType::I64, {2, 3}, big)), {"big", "4000", "vocabulary"}, "id >= V");
  expect_clean_failure(eval(ckpt, tokens_file("neg", DType::I32, {2, 3}, neg)), {"neg", "-3"}, "negative id");
  expect_clean_failure(eval(ckpt, d + "/does-not-exist.safetensors"), {"does-not-exist.safetensors"}, "missing tokens");
  EXPECT_FALSE(file_exists(out)) << "no output may be written when the inputs are bad";
  expect_clean_failure(run_cmd(tool("mu-eval") + " --model " + ckpt), {"--tokens"}, "no mode");
}

}  // namespace
