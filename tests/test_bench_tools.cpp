// The PyTorch side of the speed comparison (tools/bench_torch.py) runs end to end on the cpu at
// tiny shapes (the real run is on a GPU node), and tools/bench_compare.py turns two JSON files
// into the ratio table with the targets of issue 8 and refuses mismatched shapes.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/fileio.h"
#include "tests/util_compare.h"

using namespace mu;
using namespace mu::test;

namespace {

const std::string kTorch = std::string(MU_PYTHON) + " " + MU_SOURCE_DIR + "/tools/bench_torch.py";
const std::string kCompare = std::string(MU_PYTHON) + " " + MU_SOURCE_DIR + "/tools/bench_compare.py";

TEST(BenchTorch, RunsOnTheCpuAtTinyShapes) {
  const std::string d = make_temp_dir("btorch");
  RunResult r = run_cmd(kTorch + " --device cpu --config tiny --batch-size 2 --seq-len 16 --runs 2 --warmup 1 " +
                        "--json " + d + "/t.json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = nlohmann::json::parse(read_text_file(d + "/t.json"));
  EXPECT_EQ(j["config"], "tiny");
  EXPECT_GT(j["step"]["tokens_per_s"].get<double>(), 0.0);
  EXPECT_GT(j["muon"]["batched_polar_express_ms"].get<double>(), 0.0);
  // 2 layers x 7 matrices of the tiny preset (C 64, 4 heads / 2 KV heads of 16, F 176) in 3 wide
  // shapes: 64x64 (q, o), 32x64 (k, v), 64x176 (gate, up, down); 5 steps of 4 m^2 n + 2 m^3
  const double f = 2 * 5 * (2 * (4.0 * 64 * 64 * 64 + 2.0 * 64 * 64 * 64) + 2 * (4.0 * 32 * 32 * 64 + 2.0 * 32 * 32 * 32) +
                            3 * (4.0 * 64 * 64 * 176 + 2.0 * 64 * 64 * 64));
  EXPECT_EQ(j["muon"]["ortho_flops"].get<double>(), f);
  RunResult bad = run_cmd(kTorch + " --device cpu --config no-such-preset");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("no preset or config.json 'no-such-preset'"), std::string::npos) << bad.output;
}

// The compact model bench_torch.py falls back to (without transformers) computes the same loss
// as the oracle's float64 Llama, tied and untied, with GQA and llama3 RoPE scaling.
TEST(BenchTorch, CompactModelIsTheOraclesLlama) {
  const std::string d = make_temp_dir("bself");
  write_text(d + "/config.json", R"({"vocab_size": 97, "hidden_size": 48, "intermediate_size": 80,
    "num_hidden_layers": 2, "num_attention_heads": 6, "num_key_value_heads": 2, "head_dim": 8,
    "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "tie_word_embeddings": true,
    "rope_scaling": {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8}})");
  RunResult r = run_cmd(kTorch + " --selfcheck --config " + d + "/config.json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("selfcheck (tied)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("selfcheck (untied)"), std::string::npos) << r.output;
}

TEST(BenchCompare, RatiosAndVerdicts) {
  const std::string d = make_temp_dir("bcmp");
  const nlohmann::json mu = {
      {"device", "GPU X"}, {"config", "tiny"}, {"batch_size", 2}, {"seq_len", 16}, {"copy_gbs", 3000.0},
      {"gemm_tflops", 700.0},
      {"kernels",
       {{{"name", "attention fwd d=16"}, {"ms", 1.0}, {"rate", 1.0}, {"fraction_of_ceiling", 0.5}},
        {{"name", "attention bwd d=16"}, {"ms", 1.5}, {"rate", 1.0}, {"fraction_of_ceiling", 0.5}},
        {{"name", "rmsnorm fwd"}, {"ms", 0.1}, {"rate", 2700.0}, {"fraction_of_ceiling", 0.9}},
        {{"name", "swiglu bwd"}, {"ms", 0.1}, {"rate", 2400.0}, {"fraction_of_ceiling", 0.8}}}},
      {"step", {{"ms", 10.0}, {"tokens_per_s", 1200.0}, {"memory_bytes", 2.0 * (1 << 30)}}},
      {"muon", {{"muon_step_ms", 1.0}, {"ortho_batched_ms", 0.5}}}};
  nlohmann::json pt = {{"device", "GPU X"}, {"torch", "2.11"}, {"config", "tiny"}, {"batch_size", 2}, {"seq_len", 16},
                       {"step", {{"ms", 12.0}, {"tokens_per_s", 1000.0}, {"memory_bytes", 3.0 * (1 << 30)},
                                 {"impl", "hf"}, {"precision", "autocast"}, {"compiled", true}}},
                       {"attention", {{{"name", "attention d=16"}, {"fwd_ms", 0.8}, {"fwd_bwd_ms", 2.0}}}},
                       {"muon", {{"torch_optim_muon_ms", 1.5}, {"batched_polar_express_ms", 0.6}}}};
  write_text(d + "/mu.json", mu.dump());
  write_text(d + "/pt.json", pt.dump());
  RunResult r = run_cmd(kCompare + " " + d + "/mu.json " + d + "/pt.json --commit abc123 --out " + d + "/r.md");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // 1200 / 1000; memory 3 / 2 GiB; attention 2.0 / (1.0 + 1.5); Muon 1.5 / 1.0; ortho 0.6 / 0.5
  for (const char* row : {"| training step tokens/s | 1200 | 1000 | 1.20 | >= 1.2 | met |",
                          "| 2.00 | 3.00 | 1.50 | >= 1.0 | met |",
                          "| attention fwd+bwd d=16 (ms) | 2.500 | 2.000 | 0.80 | >= 0.8 | met |",
                          "| Muon step (ms) | 1.000 | 1.500 | 1.50 | >= 2.0 | NOT met |",
                          "| batched orthogonalization (ms) | 0.500 | 0.600 | 1.20 | >= 1.0 | met |",
                          "| rmsnorm fwd: fraction of copy bandwidth | 2700 GB/s | - | 0.90 | >= 0.85 | met |",
                          "| swiglu bwd: fraction of copy bandwidth | 2400 GB/s | - | 0.80 | >= 0.85 | NOT met |",
                          "commit abc123"})
    EXPECT_NE(r.output.find(row), std::string::npos) << row << "\n" << r.output;
  EXPECT_EQ(read_text_file(d + "/r.md").find("# llm.mu vs PyTorch: tiny"), 0u);
  pt["seq_len"] = 32;
  write_text(d + "/pt.json", pt.dump());
  RunResult bad = run_cmd(kCompare + " " + d + "/mu.json " + d + "/pt.json");
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
  EXPECT_NE(bad.output.find("seq_len differs: mu-bench 16 vs bench_torch 32"), std::string::npos) << bad.output;
}

// The speed targets of issues 4 and 5 from a mu-bench file at the 1B preset: the best attention
// tiles against SDPA, MFU against the peak, the orthogonalization rows, and the Muon step
// against a training step scaled from 4 x 2048 to 16 x 2048 tokens (marked an estimate).
TEST(BenchCompare, IssueTargets) {
  const std::string d = make_temp_dir("btgt");
  const nlohmann::json mu = {
      {"device", "GPU X"}, {"config", "llama-3.2-1b"}, {"batch_size", 4}, {"seq_len", 2048}, {"copy_gbs", 4000.0},
      {"gemm_tflops", 700.0}, {"peak_tflops", 989.0},
      {"kernels",
       {{{"name", "attention fwd d=128"}, {"ms", 1.0}},
        {{"name", "attention fwd d=128 (128 rows)"}, {"ms", 0.8}},
        {{"name", "attention bwd d=128"}, {"ms", 2.0}},
        {{"name", "rope fwd"}, {"ms", 0.1}, {"rate", 3300.0}, {"fraction_of_ceiling", 0.825}},
        {{"name", "adamw"}, {"ms", 0.1}, {"rate", 3000.0}, {"fraction_of_ceiling", 0.75}}}},
      {"step", {{"ms", 150.0}, {"tokens_per_s", 54613.0}, {"tflops", 420.0}, {"mfu_vs_peak", 0.4247}}},
      {"muon",
       {{"muon_step_ms", 40.0}, {"ortho_batched_ms", 30.0}, {"ortho_one_by_one_ms", 45.0}, {"ortho_tflops", 450.0},
        {"ortho_fraction_of_gemm", 450.0 / 700.0}}}};
  const nlohmann::json pt = {{"device", "GPU X"}, {"torch", "2.11"}, {"config", "llama-3.2-1b"}, {"batch_size", 4},
                             {"seq_len", 2048},
                             {"attention", {{{"name", "attention d=128"}, {"fwd_ms", 0.5}, {"fwd_bwd_ms", 1.5}}}}};
  write_text(d + "/mu.json", mu.dump());
  write_text(d + "/pt.json", pt.dump());
  RunResult r = run_cmd(kCompare + " " + d + "/mu.json " + d + "/pt.json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // SDPA 1.5 ms / our best 0.8 + 2.0; Muon 40 ms against 150 ms * 4 = 600 ms; 45 / 30 = 1.5x.
  for (const char* row :
       {"| 4 | rope fwd: fraction of copy bandwidth | 0.82 (3300 GB/s) | >= 0.80 | met |",
        "| 4 | adamw: fraction of copy bandwidth | 0.75 (3000 GB/s) | >= 0.80 | NOT met |",
        "| 4 | attention fwd+bwd d=128: SDPA time / ours (best tiles) | 0.54 (2.800 vs 1.500 ms) | >= 0.5 | met |",
        "| 4 | training step MFU (6N + attention) at T=2048 | 0.425 of 989 TFLOP/s (420 TFLOP/s) | >= 0.40 | met |",
        "| 5 | orthogonalization: fraction of the bf16 GEMM rate | 0.64 (450 TFLOP/s) | >= 0.60 | met |",
        "| 5 | orthogonalization: one at a time / batched | 1.50x (30.00 vs 45.00 ms) | >= 2 | NOT met |",
        "| 5 | whole Muon step / training step at 16x2048 (estimated: the step at 4x2048 scaled by tokens) | "
        "0.067 (40.0 vs 600.0 ms) | < 0.05 | NOT met (estimate) |"})
    EXPECT_NE(r.output.find(row), std::string::npos) << row << "\n" << r.output;
  // mu-bench alone: the targets table still comes out; the attention row says what is missing.
  RunResult alone = run_cmd(kCompare + " " + d + "/mu.json");
  ASSERT_EQ(alone.exit_code, 0) << alone.output;
  EXPECT_NE(alone.output.find("| - | >= 0.5 | not measured (needs bench_torch's SDPA time) |"), std::string::npos)
      << alone.output;
  EXPECT_EQ(alone.output.find("Against PyTorch"), std::string::npos) << alone.output;
}

}  // namespace
