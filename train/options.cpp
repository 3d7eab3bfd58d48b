#include "train/options.h"

#include "core/error.h"
#include "optim/muon.h"

namespace mu {

void register_options(Cli& cli, TrainOptions& o) {
  cli.section("model");
  cli.add_string("config", &o.config, "NAME|FILE", "preset (tiny, demo, smollm2-135m, ...) or HF config.json: fresh init");
  cli.add_string("model", &o.model, "FILE", "engine checkpoint to start from (fine-tune); excludes --config");
  cli.add_int64("seed", &o.seed, "seed for initialisation and data shuffling");
  cli.section("data");
  cli.add_string("data", &o.data, "GLOB", "training token shards (llm.c .bin format), e.g. 'data/brown_train_*.bin'");
  cli.add_string("val-data", &o.val_data, "GLOB", "validation shards (optional)");
  cli.add_int("batch-size", &o.batch_size, "sequences per micro-batch (B)");
  cli.add_int("seq-len", &o.seq_len, "tokens per sequence (T)");
  cli.add_int("grad-accum", &o.grad_accum, "micro-batches per optimizer step");
  cli.add_flag("shuffle", &o.shuffle, "visit the data in a seeded random order of B*T-token windows (--no-shuffle: in order, as llm.c)");
  cli.section("optimization");
  cli.add_int64("steps", &o.steps, "total optimizer steps (with --resume, still the total)");
  cli.add_string("optimizer", &o.optimizer, "adamw|muon",
                 "adamw: AdamW for every parameter; muon: Muon for the hidden matrices (q, k, v, o, gate, up, down), "
                 "AdamW (--lr, --weight-decay) for embeddings, LM head and norm gains");
  cli.add_float("lr", &o.lr, "peak learning rate");
  cli.add_float("weight-decay", &o.weight_decay, "AdamW decoupled weight decay (2-D tensors only)");
  cli.add_float("adam-beta1", &o.adam_beta1, "AdamW beta1");
  cli.add_float("adam-beta2", &o.adam_beta2, "AdamW beta2");
  cli.add_float("adam-eps", &o.adam_eps, "AdamW epsilon");
  cli.add_string("schedule", &o.schedule, "KIND", "LR schedule: constant|cosine|linear|wsd");
  cli.add_int64("warmup", &o.warmup, "linear warmup steps");
  cli.add_float("min-lr-ratio", &o.min_lr_ratio, "final LR as a fraction of --lr (cosine, linear, wsd)");
  cli.add_float("wsd-decay-frac", &o.wsd_decay_frac, "wsd: fraction of the steps spent decaying");
  cli.add_float("grad-clip", &o.grad_clip, "clip the global gradient norm to this (0 disables)");
  cli.section("Muon (with --optimizer muon; see docs/muon.md)");
  cli.add_float("muon-lr", &o.muon_lr, "Muon's peak LR, scheduled like --lr (as muon_lr * lr_t / lr); -1: --lr");
  cli.add_float("muon-momentum", &o.muon_momentum, "momentum coefficient mu");
  cli.add_string("muon-momentum-kind", &o.muon_momentum_kind, "sgd|ema",
                 "sgd: buf = mu*buf + G (Moonlight); ema: buf = buf + (1-mu)*(G - buf) (Keller Jordan, torch)");
  cli.add_flag("nesterov", &o.nesterov, "Nesterov: orthogonalize G + mu*buf (sgd) or G + mu*(buf - G) (ema), not buf");
  cli.add_string("muon-ortho", &o.muon_ortho, "ns5|polar_express",
                 "orthogonalizer: Newton-Schulz quintic (3.4445, -4.7750, 2.0315) or Polar Express (per-step coefficients)");
  cli.add_int("muon-ns-steps", &o.muon_ns_steps, "orthogonalizer iterations (Polar Express repeats its 5th tuple past 5)");
  cli.add_string("muon-ortho-dtype", &o.muon_ortho_dtype, "auto|bf16|f32",
                 "precision of the orthogonalizer's iteration: bf16 operands with fp32 accumulation (tensor cores; "
                 "cuda only) or fp32; auto: bf16 on cuda, f32 on cpu");
  cli.add_flag("normuon", &o.normuon, "NorMuon: per-neuron second moment along the longer side, norm-preserving");
  cli.add_float("normuon-beta2", &o.normuon_beta2, "NorMuon second-moment decay");
  cli.add_string("muon-lr-scale", &o.muon_lr_scale, "KIND",
                 "per-matrix LR scale for A x B: match_rms_adamw 0.2*sqrt(max(A,B)) | original sqrt(max(1,A/B)) "
                 "| spectral sqrt(A/B) | sqrt_max sqrt(max(A,B)) | none");
  cli.add_float("muon-wd", &o.muon_wd, "Muon weight decay; -1: --weight-decay");
  cli.add_string("muon-wd-kind", &o.muon_wd_kind, "decoupled|cautious|none",
                 "decoupled: W *= 1 - lr*wd; cautious: decay only where update and weight agree in sign");
  cli.add_flag("muon-split-heads", &o.muon_split_heads, "orthogonalize Q, K, V per attention head");
  cli.section("evaluation, checkpoints, logging");
  cli.add_int64("eval-every", &o.eval_every, "validate every N steps (0: only at the end); needs --val-data");
  cli.add_int64("eval-steps", &o.eval_steps, "validation micro-batches per evaluation");
  cli.add_string("out", &o.out, "DIR", "run directory: checkpoints and the final model DIR/model.safetensors");
  cli.add_int64("save-every", &o.save_every, "write a checkpoint every N steps (0: only at the end)");
  cli.add_int("keep-checkpoints", &o.keep_checkpoints, "how many recent checkpoints to keep in --out");
  cli.add_flag("resume", &o.resume, "continue from the latest complete checkpoint in --out");
  cli.add_int64("stop-after", &o.stop_after,
                "stop after N steps of this invocation and checkpoint (a job time limit); continue with --resume");
  cli.add_string("export-hf", &o.export_hf, "DIR", "at the end, also write a Hugging Face LlamaForCausalLM directory");
  cli.add_string("export-dtype", &o.export_dtype, "bf16|f16|f32", "dtype of the --export-hf weights");
  cli.add_string("tokenizer-from", &o.tokenizer_from, "DIR", "copy tokenizer files into --export-hf from this HF directory");
  cli.add_string("log", &o.log, "FILE", "metrics as JSON lines (one object per step; validation lines carry val_loss)");
  cli.add_int64("log-every", &o.log_every, "print a progress line every N steps");
  cli.add_int64("log-every-muon", &o.log_every_muon,
                "Muon diagnostics every N steps in --log: per group LR, update RMS, orthogonality error (0: off)");
  cli.add_string("device", &o.device, "auto|cpu|cuda", "backend; auto picks cuda when a GPU is present");
  cli.add_float("memory-limit", &o.memory_limit_gib,
                "GiB the run may allocate (per rank); 0: the device's free memory. Too small: the error says which "
                "--batch-size fits");
  cli.section("several GPUs or processes (launch with mpirun, srun or torchrun-style RANK/WORLD_SIZE variables)");
  cli.add_string("comm", &o.comm, "auto|single|mpi|nccl",
                 "communicator: auto is single for one rank, mpi for the cpu backend and nccl for cuda beyond one; "
                 "mpi or nccl at one rank runs the sharded data-parallel path anyway (a check)");
}

void validate_options(const TrainOptions& o) {
  MU_CHECK(o.config.empty() != o.model.empty(), "give exactly one of --config (fresh init) or --model (a checkpoint)");
  MU_CHECK(!o.data.empty(), "--data is required (token shards; make them with mu-data)");
  MU_CHECK(o.batch_size > 0, "--batch-size must be positive (got %d)", o.batch_size);
  MU_CHECK(o.seq_len > 0, "--seq-len must be positive (got %d)", o.seq_len);
  MU_CHECK(o.grad_accum > 0, "--grad-accum must be positive (got %d)", o.grad_accum);
  MU_CHECK(o.steps > 0, "--steps must be positive (got %lld)", static_cast<long long>(o.steps));
  MU_CHECK(o.lr >= 0, "--lr must be >= 0");
  MU_CHECK(o.warmup >= 0, "--warmup must be >= 0");
  MU_CHECK(o.grad_clip >= 0, "--grad-clip must be >= 0 (0 disables)");
  MU_CHECK(o.adam_beta1 >= 0 && o.adam_beta1 < 1, "--adam-beta1 must be in [0, 1)");
  MU_CHECK(o.adam_beta2 >= 0 && o.adam_beta2 < 1, "--adam-beta2 must be in [0, 1)");
  MU_CHECK(o.adam_eps > 0, "--adam-eps must be positive");
  MU_CHECK(o.eval_every >= 0 && o.eval_steps > 0, "--eval-every must be >= 0 and --eval-steps > 0");
  MU_CHECK(o.eval_every == 0 || !o.val_data.empty(), "--eval-every needs --val-data (the data it validates on)");
  MU_CHECK(o.save_every >= 0, "--save-every must be >= 0");
  MU_CHECK(o.keep_checkpoints >= 1, "--keep-checkpoints must be >= 1");
  MU_CHECK(o.log_every >= 1, "--log-every must be >= 1");
  MU_CHECK(o.stop_after >= 0, "--stop-after must be >= 0");
  MU_CHECK(o.stop_after == 0 || !o.out.empty(), "--stop-after needs --out (it writes a checkpoint to resume from)");
  MU_CHECK(!o.resume || !o.out.empty(), "--resume needs --out (the run directory to resume from)");
  MU_CHECK((o.save_every == 0 && !o.resume) || !o.out.empty(), "--save-every needs --out");
  MU_CHECK(o.optimizer == "adamw" || o.optimizer == "muon", "--optimizer must be adamw or muon (got '%s')",
           o.optimizer.c_str());
  // Muon's switches are checked whatever the optimizer, so a typo never hides.
  parse_momentum_kind(o.muon_momentum_kind);
  parse_ortho(o.muon_ortho);
  parse_lr_scale(o.muon_lr_scale);
  parse_wd_kind(o.muon_wd_kind);
  MU_CHECK(o.muon_lr >= 0 || o.muon_lr == -1, "--muon-lr must be >= 0 (or -1 for --lr)");
  MU_CHECK(o.muon_wd >= 0 || o.muon_wd == -1, "--muon-wd must be >= 0 (or -1 for --weight-decay)");
  MU_CHECK(o.muon_lr <= 0 || o.lr > 0,
           "--muon-lr needs --lr > 0: Muon's LR follows the schedule of --lr as muon_lr * lr_t / lr");
  MU_CHECK(o.muon_momentum >= 0 && o.muon_momentum < 1, "--muon-momentum must be in [0, 1)");
  MU_CHECK(o.muon_ns_steps >= 1 && o.muon_ns_steps <= 100, "--muon-ns-steps must be in [1, 100]");
  MU_CHECK(o.normuon_beta2 >= 0 && o.normuon_beta2 < 1, "--normuon-beta2 must be in [0, 1)");
  MU_CHECK(o.log_every_muon >= 0, "--log-every-muon must be >= 0");
  MU_CHECK(o.log_every_muon == 0 || o.optimizer == "muon", "--log-every-muon needs --optimizer muon");
  MU_CHECK(o.memory_limit_gib >= 0, "--memory-limit must be >= 0 GiB (0: no limit beyond free memory)");
  MU_CHECK(o.muon_ortho_dtype == "auto" || o.muon_ortho_dtype == "bf16" || o.muon_ortho_dtype == "f32",
           "--muon-ortho-dtype must be auto, bf16 or f32 (got '%s')", o.muon_ortho_dtype.c_str());
  MU_CHECK(o.comm == "auto" || o.comm == "single" || o.comm == "mpi" || o.comm == "nccl",
           "--comm must be auto, single, mpi or nccl (got '%s')", o.comm.c_str());
}

}  // namespace mu
