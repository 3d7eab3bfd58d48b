#include "tools/lib_cost.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "optim/muon_shard.h"
#include "train/optim_setup.h"

namespace mu {

double optimizer_bytes_per_param(const std::string& optimizer) {
  MU_CHECK(optimizer == "muon" || optimizer == "adamw", "--optimizer must be muon or adamw (got '%s')",
           optimizer.c_str());
  return optimizer == "muon" ? 20.0 : 28.0;
}

double train_flops_per_token(const LlamaConfig& c, int seq) {
  // An untied embedding table is a lookup, no product: its V x C parameters do no FLOPs.
  // (Tied, the one matrix is the LM head's and counts once.)
  const double lookup = c.tie_word_embeddings ? 0.0 : static_cast<double>(c.vocab_size) * c.hidden_size;
  return 6.0 * (static_cast<double>(c.num_params()) - lookup) +
         6.0 * c.num_hidden_layers * c.num_attention_heads * c.head_dim * static_cast<double>(seq);
}

std::string cost_inputs_from_bench(const nlohmann::json& bench, CostInputs* in) {
  std::string took;
  auto num = [&](const nlohmann::json& j, const char* key) {
    const double x = j.contains(key) && j[key].is_number() ? j[key].get<double>() : 0.0;
    return std::isfinite(x) ? x : 0.0;
  };
  if (bench.contains("muon") && num(bench["muon"], "ortho_tflops") > 0) {
    in->ortho_tflops = num(bench["muon"], "ortho_tflops");
    took += strformat("orthogonalization %.0f TFLOP/s (measured)", in->ortho_tflops);
  } else if (num(bench, "gemm_tflops") > 0) {
    in->ortho_tflops = 0.6 * num(bench, "gemm_tflops");
    took += strformat("orthogonalization %.0f TFLOP/s (60%% of the measured GEMM)", in->ortho_tflops);
  }
  if (num(bench, "copy_gbs") > 0) {
    in->hbm_gbs = num(bench, "copy_gbs");
    took += strformat("%selement-wise %.0f GB/s (measured copy)", took.empty() ? "" : ", ", in->hbm_gbs);
  }
  if (bench.contains("step") && num(bench["step"], "ms") > 0 && num(bench, "batch_size") == in->batch &&
      num(bench, "seq_len") == in->seq) {
    in->step_ms = num(bench["step"], "ms");
    took += strformat("%sstep %.1f ms (measured)", took.empty() ? "" : ", ", in->step_ms);
  }
  MU_CHECK(!took.empty(), "cost model: the bench JSON has none of gemm_tflops, copy_gbs, muon.ortho_tflops, step.ms");
  return took;
}

namespace {

// Each input, by the mu-bench flag it comes from: a zero batch or rate would print nan and inf.
void check_cost_inputs(const CostInputs& in) {
  auto positive = [](double x) { return std::isfinite(x) && x > 0; };
  MU_CHECK(in.batch >= 1, "--batch-size %d: must be at least 1", in.batch);
  MU_CHECK(in.seq >= 1, "--seq-len %d: must be at least 1", in.seq);
  MU_CHECK(positive(in.mfu) && in.mfu <= 1, "--mfu %g: must be a fraction in (0, 1] (0.4: 40%% of the peak)", in.mfu);
  MU_CHECK(positive(in.peak_tflops), "--peak-tflops %g: must be positive", in.peak_tflops);
  MU_CHECK(positive(in.link_gbs), "--link-gbs %g: must be positive", in.link_gbs);
  MU_CHECK(positive(in.ortho_tflops), "--ortho-tflops %g: must be positive", in.ortho_tflops);
  MU_CHECK(positive(in.hbm_gbs), "--hbm-gbs %g: must be positive", in.hbm_gbs);
  MU_CHECK(in.ns_steps >= 1, "cost model: ns_steps %d must be at least 1", in.ns_steps);
  MU_CHECK(std::isfinite(in.step_ms) && in.step_ms >= 0, "cost model: step time %g ms", in.step_ms);
}

}  // namespace

CostRow cost_row(const LlamaConfig& c, const CostInputs& in, int world) {
  MU_CHECK(world >= 1, "--worlds: world size %d must be at least 1", world);
  check_cost_inputs(in);
  const double P = static_cast<double>(c.num_params());
  CostRow r;
  r.world = world;
  r.step_ms = in.step_ms > 0 ? in.step_ms
                             : 1e3 * train_flops_per_token(c, in.seq) * in.batch * in.seq /
                                   (in.mfu * in.peak_tflops * 1e12);
  // Ring collectives: each GPU sends and receives (W-1)/W of the buffer (NCCL's busbw convention).
  const double share = static_cast<double>(world - 1) / world;
  r.reduce_scatter_ms = 1e3 * share * 2.0 * P / (in.link_gbs * 1e9);
  r.all_gather_ms = r.reduce_scatter_ms;
  if (in.optimizer == "muon") {
    const MuonShardPlan plan = muon_shard_plan(llama_muon_matrices(c, false), world, in.ns_steps);
    r.balance = plan.max_over_mean();
    r.ortho_ms = 1e3 * *std::max_element(plan.rank_flops.begin(), plan.rank_flops.end()) / (in.ortho_tflops * 1e12);
  }
  r.elementwise_ms = 1e3 * optimizer_bytes_per_param(in.optimizer) * P / world / (in.hbm_gbs * 1e9);
  r.optimizer_ms = r.ortho_ms + r.elementwise_ms + (world > 1 ? r.all_gather_ms : 0.0);
  r.comm_fraction = (r.reduce_scatter_ms + r.all_gather_ms) / r.step_ms;
  return r;
}

std::string cost_table(const LlamaConfig& c, const std::string& preset, const CostInputs& in,
                       const std::vector<int>& worlds, nlohmann::json* json) {
  const std::string step =
      in.step_ms > 0 ? strformat("step %.1f ms measured", in.step_ms)
                     : strformat("peak %.0f TFLOP/s at %.0f%% MFU", in.peak_tflops, 100 * in.mfu);
  std::string s = strformat(
      "cost model: %s (%.1f M params), %s, %d x %d tokens per GPU; link %.0f GB/s per GPU (bus bandwidth), "
      "%s, Newton-Schulz at %.0f TFLOP/s, element-wise at %.0f GB/s\n",
      preset.c_str(), c.num_params() / 1e6, in.optimizer.c_str(), in.batch, in.seq, in.link_gbs, step.c_str(),
      in.ortho_tflops, in.hbm_gbs);
  s += strformat("%6s %10s %10s %10s %9s %9s %9s %10s %8s %9s\n", "ranks", "fwd+bwd", "grad RS", "weight AG",
                 "ortho", "elemwise", "balance", "optimizer", "vs 1 GPU", "comm/step");
  const CostRow one = cost_row(c, in, 1);
  nlohmann::json rows = nlohmann::json::array();
  for (int w : worlds) {
    const CostRow r = cost_row(c, in, w);
    s += strformat("%6d %8.1fms %8.2fms %8.2fms %7.2fms %7.2fms %9.3f %8.2fms %7.3fx %8.1f%%\n", w, r.step_ms,
                   r.reduce_scatter_ms, r.all_gather_ms, r.ortho_ms, r.elementwise_ms, r.balance, r.optimizer_ms,
                   r.optimizer_ms / one.optimizer_ms, 100 * r.comm_fraction);
    rows.push_back({{"world", w},
                    {"step_ms", r.step_ms},
                    {"reduce_scatter_ms", r.reduce_scatter_ms},
                    {"all_gather_ms", r.all_gather_ms},
                    {"ortho_ms", r.ortho_ms},
                    {"elementwise_ms", r.elementwise_ms},
                    {"optimizer_ms", r.optimizer_ms},
                    {"optimizer_vs_one_gpu", r.optimizer_ms / one.optimizer_ms},
                    {"balance", r.balance},
                    {"comm_fraction", r.comm_fraction}});
  }
  s += "(vs 1 GPU: this optimizer step over one GPU's, which has no all-gather; comm/step: reduce-scatter + "
       "all-gather against the forward+backward, before the per-layer overlap of the reduce-scatter with the "
       "backward hides part of it)\n";
  if (json)
    *json = {{"preset", preset},
             {"optimizer", in.optimizer},
             {"batch", in.batch},
             {"seq", in.seq},
             {"link_gbs", in.link_gbs},
             {"peak_tflops", in.peak_tflops},
             {"mfu", in.mfu},
             {"ortho_tflops", in.ortho_tflops},
             {"hbm_gbs", in.hbm_gbs},
             {"rows", rows}};
  return s;
}

double known_peak_bf16_tflops(const std::string& name) {
  // Dense figures: NVIDIA's datasheets give bf16 "with sparsity", twice these. Most specific
  // names first (an H100 PCIe is also an "H100"). Sources: H100 and H200 datasheets (SXM 1979,
  // PCIe 1513, NVL 1671 sparse), A100 datasheet (312 dense), L4 (242 sparse), L40S (362
  // dense), the Ada whitepaper for the RTX 4090 (165.2 with fp32 accumulation), B200 (4.5
  // PFLOP/s sparse in the HGX B200 sheet; GB200: 360 PFLOP/s sparse over 72 GPUs in the
  // GB200 NVL72 sheet). Variants not listed (e.g. an "RTX 4090 D") take their family's figure.
  static const std::pair<const char*, double> kTable[] = {
      {"H100 PCIe", 756.0}, {"H100 NVL", 835.0}, {"H200 NVL", 835.0}, {"GH200", 989.0}, {"H100", 989.0},
      {"H200", 989.0},      {"GB200", 2500.0},   {"B200", 2250.0},    {"A100", 312.0},     {"L40S", 362.0}, {"RTX 4090", 165.2},
  };
  for (const auto& [key, tflops] : kTable)
    if (name.find(key) != std::string::npos) return tflops;
  // "NVIDIA L4" alone: a substring test would also match L40 / L40S.
  if (name == "NVIDIA L4") return 121.0;
  return 0.0;
}

}  // namespace mu
