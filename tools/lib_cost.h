// The data-parallel cost model (issue 6): what the gradient reduce-scatter, the weight
// all-gather and Muon's sharded orthogonalization cost against one GPU's training step, for a
// preset, a world size and an interconnect; multi-GPU hardware is not at hand, so mu-bench
// --cost-model predicts from measured (or stated) single-GPU rates. docs/distributed.md
// explains the formulas; every input is a flag, printed with the table.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/config.h"

namespace mu {

struct CostInputs {
  std::string optimizer = "muon";  // muon|adamw
  int batch = 4, seq = 2048;       // per GPU
  double link_gbs = 400;           // per-GPU bus bandwidth of the collectives (NCCL's busbw), GB/s
  double peak_tflops = 989;        // dense bf16 peak (H100 SXM)
  double mfu = 0.40;               // of the peak, for the forward + backward
  double ortho_tflops = 400;       // achieved rate of the batched Newton-Schulz GEMMs
  double hbm_gbs = 2700;           // achieved HBM bandwidth of the element-wise optimizer kernels
  int ns_steps = 5;
  double step_ms = 0;  // > 0: a measured forward+backward(+AdamW) time replaces the MFU estimate
};

// Takes the rates a `mu-bench --json` run measured on one GPU: the bf16 GEMM rate (or the
// batched orthogonalization's own rate when it was timed), the copy bandwidth, and the training
// step's time when its batch and sequence length match. Returns what it took, for the header.
std::string cost_inputs_from_bench(const nlohmann::json& bench, CostInputs* in);

struct CostRow {
  int world = 1;
  double step_ms = 0;         // forward + backward of B x T tokens on one GPU
  double reduce_scatter_ms = 0;  // bf16 gradients
  double all_gather_ms = 0;      // bf16 weights
  double ortho_ms = 0;           // the busiest rank's Newton-Schulz work
  double elementwise_ms = 0;     // momentum / Adam / update / master writes over this rank's share
  double optimizer_ms = 0;       // ortho + element-wise + all-gather: the step after the backward
  double balance = 1;            // max/mean orthogonalization FLOPs
  double comm_fraction = 0;      // (reduce-scatter + all-gather) / step
};

// Bytes per parameter the optimizer's element-wise kernels move (reads + writes, fp32 state and
// master, bf16 param and grad): Muon 2 (grad) + 8 (momentum) + 8 (master) + 2 (param) = 20;
// AdamW 2 + 16 (m, v) + 8 (master) + 2 = 28.
double optimizer_bytes_per_param(const std::string& optimizer);
// Forward + backward FLOPs per token, mu-bench's MFU formula: 6N + 6 L H D T, N the parameters
// less an untied embedding table (a lookup: no FLOPs), 6 L H D T the causal attention (forward
// 4 H D T / 2 per layer and token, backward twice that).
double train_flops_per_token(const LlamaConfig& c, int seq);

// The dense bf16 tensor-core peak (TFLOP/s, fp32 accumulation) of a GPU known by its CUDA
// device name ("NVIDIA H100 80GB HBM3", "NVIDIA H200", "NVIDIA A100-SXM4-80GB", ...), from
// the vendor's datasheets; 0 for a name not in the table (mu-bench then asks for --peak-tflops).
double known_peak_bf16_tflops(const std::string& device_name);

CostRow cost_row(const LlamaConfig& c, const CostInputs& in, int world);
// The human table (one row per world size) and its inputs, and the same as JSON.
std::string cost_table(const LlamaConfig& c, const std::string& preset, const CostInputs& in,
                       const std::vector<int>& worlds, nlohmann::json* json);

}  // namespace mu
