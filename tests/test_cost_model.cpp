// mu-bench --cost-model (tools/lib_cost.h): the collective and orthogonalization times
// against hand-computed values for llama-3.2-1b, and the tool running without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/fileio.h"
#include "model/config.h"
#include "tests/util_compare.h"
#include "tools/lib_cost.h"

using namespace mu;
using namespace mu::test;

namespace {

// Llama-3.2-1B's published parameter count and its Muon matrices per layer, written out here
// from the Hugging Face config (hidden 2048, 32 heads, 8 KV heads of 64, MLP 8192, 16 layers).
constexpr double kParams = 1235814400.0;
double ns_flops(double rows, double cols) {  // per iteration, (m, n) = (min, max)
  const double m = std::min(rows, cols), n = std::max(rows, cols);
  return 4 * m * m * n + 2 * m * m * m;
}
const double kLayerFlops = 2 * ns_flops(2048, 2048) + 2 * ns_flops(512, 2048) + 2 * ns_flops(8192, 2048) +
                           ns_flops(2048, 8192);

TEST(CostModel, MatchesHandComputedTimes) {
  const LlamaConfig c = load_config("llama-3.2-1b");
  CostInputs in;
  in.link_gbs = 100;
  in.ortho_tflops = 500;
  const CostRow one = cost_row(c, in, 1), eight = cost_row(c, in, 8);
  EXPECT_EQ(one.reduce_scatter_ms, 0.0);
  EXPECT_EQ(one.all_gather_ms, 0.0);
  // 7/8 of 2-byte gradients over 100 GB/s
  EXPECT_NEAR(eight.reduce_scatter_ms, 1e3 * 7.0 / 8.0 * 2 * kParams / 100e9, 1e-9);
  EXPECT_NEAR(eight.all_gather_ms, eight.reduce_scatter_ms, 1e-12);
  const double total = 5 * 16 * kLayerFlops;
  EXPECT_NEAR(one.ortho_ms, 1e3 * total / 500e12, 1e-6 * one.ortho_ms);
  // 8 ranks: 16 layers x 7 matrices divide evenly by shape, so exactly an eighth each
  EXPECT_NEAR(eight.ortho_ms, one.ortho_ms / 8, 1e-6 * one.ortho_ms);
  EXPECT_NEAR(eight.balance, 1.0, 1e-12);
  EXPECT_NEAR(one.elementwise_ms, 1e3 * 20 * kParams / (in.hbm_gbs * 1e9), 1e-9);
  EXPECT_NEAR(eight.optimizer_ms, eight.ortho_ms + eight.elementwise_ms + eight.all_gather_ms, 1e-9);
  // The step: 6N + 6 L H D T FLOPs per token over B*T tokens at 40% of 989 TFLOP/s.
  const double per_token = 6 * kParams + 6.0 * 16 * 32 * 64 * in.seq;
  EXPECT_NEAR(one.step_ms, 1e3 * per_token * in.batch * in.seq / (0.4 * 989e12), 1e-6 * one.step_ms);
}

// The MFU formula's N: every parameter when the embedding is tied (the one matrix is the LM
// head's), all but the V x C lookup table when untied.
TEST(CostModel, FlopsPerTokenCountsProductsOnly) {
  LlamaConfig c = load_config("llama-3.2-1b");
  ASSERT_TRUE(c.tie_word_embeddings);
  const double attention = 6.0 * 16 * 32 * 64 * 2048;
  EXPECT_EQ(train_flops_per_token(c, 2048), 6.0 * static_cast<double>(c.num_params()) + attention);
  c.tie_word_embeddings = false;  // one more V x C matrix, the head; the table adds no FLOPs
  EXPECT_EQ(train_flops_per_token(c, 2048),
            6.0 * (static_cast<double>(c.num_params()) - 128256.0 * 2048) + attention);
  EXPECT_EQ(c.num_params(), load_config("llama-3.2-1b").num_params() + 128256 * 2048);
}

TEST(CostModel, ToolRunsWithoutAGpu) {
  const std::string d = make_temp_dir("cost");
  RunResult r = run_cmd(tool("mu-bench") + " --cost-model --config smollm2-135m --worlds 1,8,64 --link-gbs 45 --json " +
                        d + "/c.json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("link 45 GB/s"), std::string::npos) << r.output;
  const auto j = nlohmann::json::parse(read_text_file(d + "/c.json"));
  ASSERT_EQ(j["rows"].size(), 3u);
  EXPECT_EQ(j["rows"][2]["world"], 64);
  EXPECT_GT(j["rows"][1]["reduce_scatter_ms"].get<double>(), 0.0);
  // Measured rates from a mu-bench --json of one GPU replace the assumptions.
  write_text(d + "/m.json", R"({"gemm_tflops": 650, "copy_gbs": 3000, "batch_size": 16, "seq_len": 2048,
                                 "step": {"ms": 500}, "muon": {"ortho_tflops": 420}})");
  RunResult m = run_cmd(tool("mu-bench") + " --cost-model --batch-size 16 --seq-len 2048 --worlds 1 --measured " + d +
                        "/m.json --json " + d + "/c2.json");
  ASSERT_EQ(m.exit_code, 0) << m.output;
  const auto j2 = nlohmann::json::parse(read_text_file(d + "/c2.json"));
  EXPECT_EQ(j2["rows"][0]["step_ms"].get<double>(), 500.0);
  EXPECT_NEAR(j2["rows"][0]["ortho_ms"].get<double>(), 1e3 * 5 * 16 * kLayerFlops / 420e12, 1e-6);
  EXPECT_NEAR(j2["rows"][0]["elementwise_ms"].get<double>(), 1e3 * 20 * kParams / 3000e9, 1e-9);
  RunResult junk = run_cmd(tool("mu-bench") + " --cost-model --measured " + d + "/c.json");  // not a bench file
  EXPECT_EQ(junk.exit_code, 1) << junk.output;
  EXPECT_NE(junk.output.find("has none of gemm_tflops"), std::string::npos) << junk.output;
  RunResult bad = run_cmd(tool("mu-bench") + " --cost-model --worlds 8,zero");
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
  EXPECT_NE(bad.output.find("--worlds: '8,zero'"), std::string::npos) << bad.output;
}

// --json is where the results go at the end: naming the --measured input would replace the
// measurement, and an unwritable path must fail at the start (in GPU mode: before minutes of
// measuring; here, without a GPU, before "no CUDA device"), leaving an existing file as it was.
TEST(CostModel, JsonPathIsCheckedFirst) {
  const std::string d = make_temp_dir("costjson");
  const std::string meas = R"({"gemm_tflops": 650, "copy_gbs": 3000, "muon": {"ortho_tflops": 420}})";
  write_text(d + "/meas.json", meas);
  for (const std::string& json : {d + "/meas.json", d + "/./meas.json"}) {
    RunResult r = run_cmd(tool("mu-bench") + " --cost-model --worlds 1,8 --measured " + d + "/meas.json --json " + json);
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_NE(r.output.find("--json"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("--measured"), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("ranks"), std::string::npos) << "printed a table: " << r.output;
    EXPECT_EQ(read_text_file(d + "/meas.json"), meas);
  }
  // GPU mode: an unwritable --json fails before anything is measured (or the GPU is looked for).
  for (const std::string& json : {d + "/no/such/dir/b.json", d}) {
    RunResult r = run_cmd(tool("mu-bench") + " --json " + json);
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_NE(r.output.find("--json " + json), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("device"), std::string::npos) << r.output;
  }
  RunResult r = run_cmd(tool("mu-bench") + " --cost-model --json " + d + "/no/such/dir/c.json");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("--json " + d + "/no/such/dir/c.json"), std::string::npos) << r.output;
  // A writable existing file is checked without being truncated (--batch-size 0 then stops the
  // run before anything is measured, with or without a GPU).
  write_text(d + "/old.json", "keep");
  r = run_cmd(tool("mu-bench") + " --json " + d + "/old.json --batch-size 0");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(read_text_file(d + "/old.json"), "keep");
  EXPECT_FALSE(file_exists(d + "/new.json"));
  r = run_cmd(tool("mu-bench") + " --json " + d + "/new.json --cost-model --worlds 1");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(file_exists(d + "/new.json"));
}

// Inputs the model cannot use are refused, naming the flag, before anything is printed: a zero
// batch used to print -nan% and inf%, an MFU of 5 (500%) and a negative peak were taken as given.
TEST(CostModel, BadInputsNameTheFlag) {
  const std::string base = tool("mu-bench") + " --cost-model --config smollm2-135m --worlds 1,8 ";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--batch-size 0", "--batch-size"}, {"--batch-size -3", "--batch-size"}, {"--seq-len 0", "--seq-len"},
      {"--mfu 5", "--mfu"},               {"--mfu 0", "--mfu"},                {"--mfu -0.4", "--mfu"},
      {"--mfu nan", "--mfu"},             {"--peak-tflops -1", "--peak-tflops"}, {"--peak-tflops inf", "--peak-tflops"},
      {"--link-gbs 0", "--link-gbs"},     {"--link-gbs -45", "--link-gbs"},    {"--ortho-tflops 0", "--ortho-tflops"},
      {"--hbm-gbs -1", "--hbm-gbs"},      {"--worlds 0", "--worlds"},          {"--worlds 8,-1", "--worlds"},
  };
  for (const auto& [args, flag] : cases) {
    RunResult r = run_cmd(base + args);
    EXPECT_EQ(r.exit_code, 1) << args << ": " << r.output;
    EXPECT_NE(r.output.find(flag), std::string::npos) << args << ": " << r.output;
    EXPECT_EQ(r.output.find("nan%"), std::string::npos) << args << ": " << r.output;
    EXPECT_EQ(r.output.find("inf%"), std::string::npos) << args << ": " << r.output;
    EXPECT_EQ(r.output.find("ranks"), std::string::npos) << args << " printed a table: " << r.output;
  }
  // The edges that are allowed: an MFU of exactly 1, and --peak-tflops 0 (the default: 989 here).
  RunResult ok = run_cmd(base + "--mfu 1 --peak-tflops 0 --batch-size 1");
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_NE(ok.output.find("peak 989 TFLOP/s at 100% MFU"), std::string::npos) << ok.output;
}

}  // namespace

// The peak table against the names the CUDA runtime reports for these boards (as nvidia-smi
// and cudaGetDeviceProperties print them) and the dense bf16 figures of their datasheets.
TEST(CostModel, KnownPeaksByDeviceName) {
  EXPECT_EQ(known_peak_bf16_tflops("NVIDIA H100 80GB HBM3"), 989.0);  // SXM
  EXPECT_EQ(known_peak_bf16_tflops("NVIDIA H100 PCIe"), 756.0);
  EXPECT_EQ(known_peak_bf16_tflops("NVIDIA H100 NVL"), 835.0);
  EXPECT_EQ(known_peak_bf16_tflops("NVIDIA H200"), 989.0);
  EXPECT_EQ(known_peak_bf16_tflops("NVIDIA A100-SXM4-80GB"), 312.0);
  EXPECT_EQ(known_peak_bf16_tflops("NVIDIA A100 80GB PCIe"), 312.0);
  EXPECT_EQ(known_peak_bf16_tflops("NVIDIA L4"), 121.0);
  EXPECT_EQ(known_peak_bf16_tflops("NVIDIA L40S"), 362.0);
  EXPECT_EQ(known_peak_bf16_tflops("NVIDIA L40"), 0.0);  // not in the table; must not read as an L4
  EXPECT_EQ(known_peak_bf16_tflops("NVIDIA GeForce RTX 4090"), 165.2);
  EXPECT_EQ(known_peak_bf16_tflops("NVIDIA B200"), 2250.0);
  EXPECT_EQ(known_peak_bf16_tflops("NVIDIA GB200"), 2500.0);  // not B200's figure
  EXPECT_EQ(known_peak_bf16_tflops("Tesla V100-SXM2-16GB"), 0.0);
  EXPECT_EQ(known_peak_bf16_tflops(""), 0.0);
}
