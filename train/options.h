// Every mu-train option in one struct; register_options() puts them in the Cli table that
// both parses the command line and prints --help.
#pragma once
#include <cstdint>
#include <string>

#include "core/cli.h"

namespace mu {

struct TrainOptions {
  // model
  std::string config;  // preset name or config.json (fresh init)
  std::string model;   // engine checkpoint to start from (fine-tuning)
  int64_t seed = 1337;
  // data
  std::string data, val_data;
  int batch_size = 8, seq_len = 256, grad_accum = 1;
  bool shuffle = true;
  // steps and optimizer
  int64_t steps = 1000;
  std::string optimizer = "adamw";
  double lr = 3e-4, weight_decay = 0.1, adam_beta1 = 0.9, adam_beta2 = 0.95, adam_eps = 1e-8;
  std::string schedule = "cosine";
  int64_t warmup = 0;
  double min_lr_ratio = 0.1, wsd_decay_frac = 0.2;
  double grad_clip = 1.0;
  // Muon (--optimizer muon; optim/muon.h). -1 for muon_lr / muon_wd: the AdamW value.
  double muon_lr = -1, muon_momentum = 0.95, normuon_beta2 = 0.95, muon_wd = -1;
  std::string muon_momentum_kind = "sgd", muon_ortho = "ns5", muon_lr_scale = "match_rms_adamw";
  std::string muon_wd_kind = "decoupled";
  bool nesterov = true, normuon = false, muon_split_heads = false;
  int muon_ns_steps = 5;
  std::string muon_ortho_dtype = "auto";  // auto|bf16|f32: the orthogonalizer's iteration (bf16: cuda only)
  int64_t log_every_muon = 0;  // Muon diagnostics in the metrics file every N steps (0: never)
  // evaluation, checkpoints, logging
  int64_t eval_every = 0, eval_steps = 20, save_every = 0;
  int keep_checkpoints = 2;
  std::string out, log;
  std::string export_hf, export_dtype = "bf16", tokenizer_from;  // HF directory written at the end
  bool resume = false;
  int64_t log_every = 1;
  int64_t stop_after = 0;  // leave after this many steps of this invocation (checkpointed)
  std::string device = "auto";
  double memory_limit_gib = 0;  // cap on the arena (0: the device's free memory)
  // data parallel (train/data_parallel.h): rank and world come from the launcher
  std::string comm = "auto";  // auto|single|mpi|nccl
};

void register_options(Cli& cli, TrainOptions& o);
// Cross-field checks with messages naming the flags.
void validate_options(const TrainOptions& o);

}  // namespace mu
