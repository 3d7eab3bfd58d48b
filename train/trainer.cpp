#include "train/trainer.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>

#include "core/arena.h"
#include "core/cli.h"
#include "core/comm.h"
#include "core/cuda_check.h"
#include "core/fileio.h"
#include "core/safetensors.h"
#include "model/checkpoint.h"
#include "model/hf_export.h"
#include "kernels/matmul.h"
#include "kernels/scratch.h"
#include "model/llama.h"
#include "optim/muon.h"
#include "optim/schedule.h"
#include "train/dataloader.h"
#include "train/metrics.h"
#include "train/optim_setup.h"
#include "train/run_dir.h"
#include "train/shards.h"
#include "train/train_state.h"

namespace mu {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string fmt_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  long t = std::lround(s);
  if (t >= 3600) return strformat("%ldh%02ldm", t / 3600, (t / 60) % 60);
  if (t >= 60) return strformat("%ldm%02lds", t / 60, t % 60);
  return strformat("%lds", t);
}

std::string fmt_rate(double tok_s) {
  if (tok_s >= 1e6) return strformat("%.2fM", tok_s / 1e6);
  if (tok_s >= 1e3) return strformat("%.1fk", tok_s / 1e3);
  return strformat("%.0f", tok_s);
}

Device pick_device(const std::string& d) {
  const int gpus = cuda_device_count();
  if (d == "cpu") return Device::CPU;
  if (d == "cuda") {
    MU_CHECK(gpus > 0, "--device cuda: no CUDA device is usable here (no GPU or no driver); use --device cpu");
    return Device::CUDA;
  }
  MU_CHECK(d == "auto", "--device must be auto, cpu or cuda (got '%s')", d.c_str());
  return gpus > 0 ? Device::CUDA : Device::CPU;
}

// The options that define the trajectory; a resume must not change them. Muon's switches
// (not its continuous hyperparameters, which may change like --lr) count only under Muon.
// `world` and `sharded` (the data-parallel path) shape the optimizer state each rank saves.
nlohmann::json trajectory_options(const TrainOptions& o, int world, bool sharded) {
  nlohmann::json j = {{"batch_size", o.batch_size}, {"seq_len", o.seq_len},     {"grad_accum", o.grad_accum},
                      {"shuffle", o.shuffle},       {"seed", o.seed},           {"optimizer", o.optimizer},
                      {"data", o.data},             {"world", world},           {"sharded", sharded}};
  if (o.optimizer == "muon") {
    j["muon_momentum_kind"] = o.muon_momentum_kind;
    j["nesterov"] = o.nesterov;
    j["muon_ortho"] = o.muon_ortho;
    j["muon_ns_steps"] = o.muon_ns_steps;
    j["normuon"] = o.normuon;
    j["muon_lr_scale"] = o.muon_lr_scale;
    j["muon_wd_kind"] = o.muon_wd_kind;
    j["muon_split_heads"] = o.muon_split_heads;
  }
  return j;
}

void check_resume_options(const nlohmann::json& saved, const nlohmann::json& now, const std::string& path) {
  // First what explains the rest: a changed optimizer its state, a changed world size the
  // sharding.
  std::vector<std::string> keys = {"optimizer", "world"};
  for (auto& [key, value] : now.items())
    if (key != "optimizer" && key != "world") keys.push_back(key);
  for (const std::string& key : keys) {
    const nlohmann::json& value = now.at(key);
    // Checkpoints from before data parallelism were one rank, unsharded.
    const nlohmann::json old = key == "world" ? nlohmann::json(1) : key == "sharded" ? nlohmann::json(false) : nlohmann::json();
    if (!saved.contains(key) && !old.is_null()) {
      MU_CHECK(old == value, "--resume: option %s is %s now but %s in the checkpoint %s; resume with the same value",
               key.c_str(), value.dump().c_str(), old.dump().c_str(), path.c_str());
      continue;
    }
    MU_CHECK(saved.contains(key) && saved[key] == value,
             "--resume: option %s is %s now but %s in the checkpoint %s; resume with the same value",
             key.c_str(), value.dump().c_str(), saved.contains(key) ? saved[key].dump().c_str() : "missing",
             path.c_str());
  }
}

// The model a resume continues is the checkpoint's; --config / --model must name the same.
// torch_dtype is informational (the checkpoint records what it holds), so it may differ.
void check_resume_config(const LlamaConfig& saved, const LlamaConfig& given, const std::string& flag,
                         const std::string& path) {
  nlohmann::json a = config_to_json(saved), b = config_to_json(given);
  a.erase("torch_dtype");
  b.erase("torch_dtype");
  std::string diff;
  for (auto& [key, value] : a.items())
    if (!b.contains(key) || b[key] != value)
      diff += strformat("%s%s %s (checkpoint: %s)", diff.empty() ? "" : ", ", key.c_str(),
                        b.contains(key) ? b[key].dump().c_str() : "missing", value.dump().c_str());
  MU_CHECK(diff.empty(), "--resume: %s describes another model than the checkpoint %s: %s; resume with the run's own "
           "--config or --model", flag.c_str(), path.c_str(), diff.c_str());
}

// Data parallelism runs one trajectory: a rank given other options than the rest would hang
// in a collective, or train something else without a word. One all-reduce compares every
// option's value: per option, 16-bit pieces h of a 64-bit FNV-1a hash of its text, summed with
// their squares; the pieces agree on every rank exactly when world * sum(h^2) == sum(h)^2
// (Cauchy-Schwarz), and the sums are exact in doubles up to 2^21 ranks. Every rank sees the
// same sums, so all of them stop, each naming the option and its own value.
void check_same_options(const TrainOptions& o, Comm& comm) {
  TrainOptions copy = o;
  Cli cli("mu-train", "");
  register_options(cli, copy);
  std::vector<std::pair<std::string, std::string>> opts;
  for (auto& kv : cli.values())
    if (kv.first != "log") opts.push_back(kv);  // only rank 0 writes the metrics
  constexpr int kPieces = 4;
  std::vector<double> sums;
  for (const auto& [name, value] : opts) {
    uint64_t h = 1469598103934665603ull;
    for (unsigned char ch : value) h = (h ^ ch) * 1099511628211ull;
    for (int k = 0; k < kPieces; k++) {
      const double piece = static_cast<double>((h >> (16 * k)) & 0xffff);
      sums.push_back(piece);
      sums.push_back(piece * piece);
    }
  }
  comm.all_reduce_sum(sums.data(), static_cast<int64_t>(sums.size()));
  const auto world = static_cast<unsigned __int128>(comm.world());
  for (size_t i = 0; i < opts.size(); i++)
    for (int k = 0; k < kPieces; k++) {
      const auto sum = static_cast<unsigned __int128>(sums[2 * (i * kPieces + k)]);
      const auto sum_sq = static_cast<unsigned __int128>(sums[2 * (i * kPieces + k) + 1]);
      MU_CHECK(world * sum_sq == sum * sum,
               "--%s is '%s' on rank %d but not on every rank: launch every rank with the same options",
               opts[i].first.c_str(), opts[i].second.c_str(), comm.rank());
    }
}

}  // namespace

namespace {

// The rank's state file in a checkpoint: rank 0 keeps the one-rank name.
std::string state_file(const std::string& dir, int rank) {
  return dir + (rank == 0 ? "/state.safetensors" : strformat("/state.rank%05d.safetensors", rank));
}

CommBackend comm_backend(const std::string& s) {
  if (s == "single") return CommBackend::Single;
  if (s == "mpi") return CommBackend::Mpi;
  if (s == "nccl") return CommBackend::Nccl;
  return CommBackend::Auto;
}

// Test hook: MU_TEST_RANK_FAIL=<rank>:<step>:exit|throw makes that rank leave at that step
// (std::_Exit(3), or a mu::Error as a failing disk would), so the tests can check the others
// do not hang.
void test_rank_fail(int rank, int64_t step) {
  const char* v = std::getenv("MU_TEST_RANK_FAIL");
  if (!v) return;
  int r = -1;
  long long st = -1;
  char mode[16] = {0};
  if (std::sscanf(v, "%d:%lld:%15s", &r, &st, mode) != 3 || r != rank || st != step) return;
  std::fprintf(stderr, "mu-train: MU_TEST_RANK_FAIL: rank %d leaves at step %lld (%s)\n", rank, st, mode);
  std::fflush(stderr);
  if (std::string(mode) == "exit") std::_Exit(3);
  MU_FAIL("MU_TEST_RANK_FAIL: rank %d fails at step %lld on purpose", rank, st);
}

// The run's plan does not fit in `budget`: fail saying what would, the largest batch size
// (the plan grows with it: activations) found by bisection over the real plan, or else what
// the weights, gradients and optimizer state alone need.
[[noreturn]] void fail_with_what_fits(const ArenaPlan& plan, const std::function<ArenaPlan(int)>& plan_for, int B,
                                      int accum, int world, size_t budget, const char* limit, const char* device) {
  int lo = 0, hi = B;  // plan_for(lo) fits (lo = 0: none found yet), plan_for(hi) does not
  while (hi - lo > 1) {
    const int mid = lo + (hi - lo) / 2;
    (plan_for(mid).total_bytes() <= budget ? lo : hi) = mid;
  }
  std::string fits;
  if (lo > 0) {
    fits = strformat("--batch-size %d fits (with --grad-accum %d for about the same tokens per step)", lo,
                     (B * accum + lo - 1) / lo);
  } else {
    const ArenaPlan one = plan_for(1);
    const size_t state = one.region_bytes(Region::Weights) + one.region_bytes(Region::Grads) +
                         one.region_bytes(Region::Master) + one.region_bytes(Region::OptState);
    fits = strformat("even --batch-size 1 needs %.1f MiB, %.1f MiB of it weights, gradients and optimizer state: "
                     "use a smaller model%s%s",
                     one.total_bytes() / 1048576.0, state / 1048576.0, state < budget ? " or a shorter --seq-len" : "",
                     world > 1 ? ", or more ranks (the optimizer state is divided among them)" : "");
  }
  MU_FAIL("the run needs %.1f MiB%s but %.1f MiB are available on %s (%s):\n%s\n%s", plan.total_bytes() / 1048576.0,
          world > 1 ? " per rank" : "", budget / 1048576.0, device, limit, plan.describe(budget).c_str(),
          fits.c_str());
}

int train(const TrainOptions& o, Device dev, Comm* comm);

}  // namespace

int run_training(const TrainOptions& o) {
  validate_options(o);
  const Device dev = pick_device(o.device);
  const LaunchEnv env = launch_env();
  // One rank trains as it always has unless a communicator is asked for; beyond one rank
  // every rank takes the data-parallel path.
  std::unique_ptr<Comm> comm;
  if (env.world > 1 || (o.comm != "auto" && o.comm != "single")) comm = make_comm(dev, env, comm_backend(o.comm));
  try {
    return train(o, dev, comm.get());
  } catch (const std::exception& e) {
    if (!comm || comm->world() == 1) throw;
    // The others may be waiting in a collective: say who failed, then end the whole job.
    std::fprintf(stderr, "mu-train: error on rank %d of %d: %s\n", comm->rank(), comm->world(), e.what());
    comm->abort_job(1);
    throw;
  }
}

namespace {

int train(const TrainOptions& o, Device dev, Comm* comm) {
  const int rank = comm ? comm->rank() : 0, world = comm ? comm->world() : 1;
  if (comm && world > 1) check_same_options(o, *comm);
  const bool lead = rank == 0;  // prints, writes the metrics, the model files and the markers
  auto info = [&](const char* fmt, auto... args) {
    if (lead) std::fprintf(stderr, fmt, args...);
  };
  // --export-hf: refuse a bad target before training, not after.
  HfExportOptions hf_export;
  if (!o.export_hf.empty()) {
    MU_CHECK(dtype_from_torch_name(o.export_dtype == "f32"   ? "float32"
                                   : o.export_dtype == "f16" ? "float16"
                                   : o.export_dtype == "bf16" ? "bfloat16"
                                                              : o.export_dtype,
                                   &hf_export.dtype),
             "--export-dtype must be bf16, f16 or f32 (got '%s')", o.export_dtype.c_str());
    hf_export.tokenizer_from = o.tokenizer_from;
    if (lead) hf_export_precheck(o.export_hf, hf_export);
  } else {
    MU_CHECK(o.tokenizer_from.empty(), "--tokenizer-from needs --export-hf");
  }
  // A fresh run never writes over an earlier one: its pruning would delete the new run's
  // checkpoints in favour of the old, higher-numbered ones, and a later --resume would mix them.
  if (lead && !o.resume) {
    if (!o.out.empty()) {
      const std::string old = existing_run(o.out);
      MU_CHECK(old.empty(),
               "--out %s already holds a run (%s): continue it with --resume, or give another --out (delete the "
               "old run to reuse the name)", o.out.c_str(), old.c_str());
    }
    std::error_code ec;
    if (!o.log.empty() && std::filesystem::is_regular_file(o.log, ec))
      MU_CHECK(std::filesystem::file_size(o.log, ec) == 0,
               "--log %s already holds metrics of an earlier run: continue that run with --resume, or give another "
               "--log (delete the old file to reuse the name)", o.log.c_str());
  }
  const int B = o.batch_size, T = o.seq_len;
  if (comm)
    info("mu-train: rank %d of %d (%s communicator): each rank takes %d of the %d rows of a micro-batch\n", rank,
         world, comm->name(), B, world * B);
  const nlohmann::json trajectory = trajectory_options(o, world, comm != nullptr);

  // Resume point, if any.
  std::string resume_dir;
  int64_t resume_step = -1;
  if (o.resume) {
    resume_step = latest_checkpoint(o.out, &resume_dir);
    if (comm) {  // every rank must continue from the same checkpoint: a shared run directory
      double v[2] = {static_cast<double>(resume_step), static_cast<double>(resume_step) * resume_step};
      comm->all_reduce_sum(v, 2);
      MU_CHECK(v[1] * world == v[0] * v[0],
               "--resume: the ranks see different latest checkpoints in %s (this rank: step %lld); put --out on a "
               "filesystem every rank shares", o.out.c_str(), static_cast<long long>(resume_step));
    }
    if (resume_step < 0) {
      // Incomplete checkpoints and a log are this run's own, interrupted before its first
      // complete save: starting again is continuing it. A model there is not (a run's end
      // always leaves a complete checkpoint beside it).
      MU_CHECK(!lead || !file_exists(o.out + "/model.safetensors"),
               "--resume: %s holds a model.safetensors but no complete checkpoint to continue from; give another "
               "--out (delete the old files to reuse the name)", o.out.c_str());
      info("mu-train: --resume: no complete checkpoint in %s, starting from scratch\n", o.out.c_str());
    }
  }

  // Model config: from the checkpoint we resume or start from, else the preset / config.json.
  LlamaConfig cfg;
  auto given_config = [&] { return o.model.empty() ? load_config(o.config) : checkpoint_config(o.model); };
  if (resume_step >= 0) {
    cfg = checkpoint_config(resume_dir + "/model.safetensors");
    check_resume_config(cfg, given_config(), o.model.empty() ? "--config " + o.config : "--model " + o.model,
                        resume_dir);
  } else {
    cfg = given_config();
  }
  info("mu-train: model %s\n", cfg.summary().c_str());
  if (T > cfg.max_position_embeddings)
    info("mu-train: warning: --seq-len %d exceeds max_position_embeddings %d\n", T, cfg.max_position_embeddings);

  // Data: rank r reads rows r*B .. r*B+B-1 of each world*B-row micro-batch (train/dataloader.h).
  // Both loaders are made here, before any training: each checks that one batch fits its data.
  ShardSet train_data(o.data, cfg.vocab_size);
  DataLoader loader(train_data, LoaderConfig{B, T, o.shuffle, static_cast<uint64_t>(o.seed), rank, world});
  // A tokenizer of another size than the model's embedding is most often the wrong one (byte
  // shards for a BPE model); a padded vocabulary is legitimate, so this only warns.
  if (train_data.recorded_vocab() != 0 && train_data.recorded_vocab() != cfg.vocab_size)
    info("mu-train: warning: --data %s records a tokenizer vocabulary of %d, the model's is %d\n", o.data.c_str(),
         train_data.recorded_vocab(), cfg.vocab_size);
  std::unique_ptr<ShardSet> val_data;
  std::unique_ptr<DataLoader> val_loader;  // every evaluation starts over from val_start
  DataLoader::State val_start;
  if (!o.val_data.empty()) {
    val_data = std::make_unique<ShardSet>(o.val_data, cfg.vocab_size);
    val_loader = std::make_unique<DataLoader>(*val_data, LoaderConfig{B, T, false, 0, rank, world});
    val_start = val_loader->state();
    MU_CHECK(val_data->recorded_vocab() == 0 || train_data.recorded_vocab() == 0 ||
                 val_data->recorded_vocab() == train_data.recorded_vocab(),
             "--val-data %s records a tokenizer vocabulary of %d but --data %s one of %d: they come from different "
             "tokenizers", o.val_data.c_str(), val_data->recorded_vocab(), o.data.c_str(), train_data.recorded_vocab());
    if (o.eval_steps > val_loader->batches_per_epoch())
      info("mu-train: warning: --eval-steps %lld but --val-data %s holds %lld batches of %dx%d: batches repeat\n",
           static_cast<long long>(o.eval_steps), o.val_data.c_str(),
           static_cast<long long>(val_loader->batches_per_epoch()), world * B, T);
  }
  info("mu-train: data %s: %lld tokens (%lld micro-batches of %dx%d per epoch)\n", o.data.c_str(),
       static_cast<long long>(train_data.total_tokens()), static_cast<long long>(loader.batches_per_epoch()),
       world * B, T);

  // Memory plan: model (params, grads, activations) + optimizer state, allocated once.
  // The cuda backend keeps bf16 weights, activations and gradients, with fp32 master weights
  // in the optimizer (DESIGN.md §2); the cpu backend is fp32 throughout.
  const DType param_dtype = dev == Device::CUDA ? DType::BF16 : DType::F32;
  TrainOptimizer opt(o, cfg, comm, dev);
  // ParamRefs need tensors; plan with shapes first, bind after allocation
  const std::vector<ParamRef> shapes = llama_param_shapes(cfg, param_dtype, dev);
  auto plan_for = [&](int rows) {
    ArenaPlan p;
    Llama::plan(p, cfg, {rows, T}, true, param_dtype);
    plan_matmul_workspace(p, dev);  // cuBLASLt's workspace, counted with the rest
    opt.plan(p, shapes);
    plan_scratch(p, dev);  // the largest scratch any op above asks for (last: they declare it)
    return p;
  };
  ArenaPlan plan = plan_for(B);
  size_t budget = host_available_bytes();
  if (dev == Device::CUDA) {
    size_t total = 0;
    cuda_mem_info(&budget, &total);
    // Headroom for what allocates later, outside the plan: NCCL's buffers at the first
    // collective, the CUDA runtime.
    budget -= std::min(budget, std::max<size_t>(size_t{1} << 30, budget / 20));
  }
  if (o.memory_limit_gib > 0) budget = std::min(budget, static_cast<size_t>(o.memory_limit_gib * 1073741824.0));
  info("mu-train: %s\n", plan.describe(budget).c_str());
  if (plan.total_bytes() > budget)
    fail_with_what_fits(plan, plan_for, B, o.grad_accum, world, budget,
                        o.memory_limit_gib > 0        ? "--memory-limit"
                        : dev == Device::CUDA ? "free memory less 5% (at least 1 GiB) of headroom"
                                              : "free memory",
                        device_name(dev));
  Arena arena(plan, dev, budget, "lower --batch-size or --seq-len (use --grad-accum to keep the tokens per step)");
  MatmulWorkspaceLoan matmul_workspace(arena);  // these end before the arena frees them
  ScratchLoan scratch(arena);
  // Declared after the arena, so on an error it runs first: collectives in flight are
  // cancelled before the arena's device memory is freed (which would wait for them).
  struct CancelCollectivesOnError {
    Comm* comm;
    ~CancelCollectivesOnError() {
      if (comm && comm->world() > 1 && std::uncaught_exceptions() > 0) comm->abort_collectives();
    }
  } cancel_on_error{comm};
  Llama model(cfg, arena, {B, T}, true);
  {
    std::vector<ParamRef> refs;
    auto params = model.weights().named(cfg), grads = model.grads().named(cfg);
    auto infos = llama_param_infos(cfg);
    for (size_t i = 0; i < infos.size(); i++)
      refs.push_back({infos[i].name, params[i].second, grads[i].second, infos[i].weight_decay, infos[i].hidden_matrix});
    opt.bind(refs, arena);
  }
  info("mu-train: %s\n", opt.describe().c_str());

  // Initial weights and state. Every rank initialises (or loads) the same weights.
  int64_t start_step = 0;
  if (resume_step >= 0) {
    const std::string state_path = state_file(resume_dir, rank);
    {  // the options first: a changed --optimizer explains missing state better than the tensors would
      SafetensorsFile sf(state_path);
      if (sf.metadata().count("options")) {
        const nlohmann::json saved = nlohmann::json::parse(sf.metadata().at("options"), nullptr, false);
        MU_CHECK(saved.is_object(), "%s: metadata field options is not a JSON object", state_path.c_str());
        check_resume_options(saved, trajectory, resume_dir);
      }
    }
    load_checkpoint_weights(resume_dir + "/model.safetensors", cfg, model.weights());
    TrainState st = load_train_state(state_path, opt.state_tensors());
    check_resume_options(st.options, trajectory, resume_dir);
    MU_CHECK(st.step == resume_step, "%s: field step is %lld, but the checkpoint directory is step %lld",
             state_path.c_str(), static_cast<long long>(st.step), static_cast<long long>(resume_step));
    loader.set_state(st.loader);
    opt.set_steps_taken(st.step);
    start_step = st.step;
    info("mu-train: resumed from %s (step %lld)\n", resume_dir.c_str(), static_cast<long long>(st.step));
  } else if (!o.model.empty()) {
    load_checkpoint_weights(o.model, cfg, model.weights());
  } else {
    model.init_random(static_cast<uint64_t>(o.seed));
  }
  if (resume_step < 0) opt.init_masters();  // resume: the masters come from the state
  if (!o.out.empty() && lead) make_dirs(o.out);
  MetricsLog metrics(lead ? o.log : std::string(), resume_step >= 0 ? resume_step : -1);

  ScheduleConfig sched;
  sched.kind = parse_schedule(o.schedule);
  sched.lr = o.lr;
  sched.warmup = o.warmup;
  sched.min_lr_ratio = o.min_lr_ratio;
  sched.wsd_decay_frac = o.wsd_decay_frac;

  std::vector<int32_t> inputs(static_cast<size_t>(B) * T), targets(inputs.size());
  const int64_t tokens_per_step = static_cast<int64_t>(world) * B * T * o.grad_accum;
  // Each rank's gradients carry its tokens' share of the global mean; the reduction sums them.
  const float grad_scale = 1.0f / static_cast<float>(tokens_per_step);
  auto mean_over_ranks = [&](double x) {
    if (!comm) return x;
    comm->all_reduce_sum(&x, 1);
    return x / world;
  };

  auto evaluate = [&](int64_t step) {
    if (!val_loader) return;
    val_loader->set_state(val_start);
    double sum = 0;
    for (int64_t i = 0; i < o.eval_steps; i++) {
      val_loader->next(inputs.data(), targets.data());
      model.set_batch(inputs.data(), targets.data());
      sum += model.forward();
    }
    const double val = mean_over_ranks(sum / static_cast<double>(o.eval_steps));
    info("step %6lld | val loss %.4f\n", static_cast<long long>(step), val);
    metrics.write({{"step", step}, {"val_loss", val}, {"tokens", step * tokens_per_step}});
  };

  auto save = [&](int64_t step) {
    const std::string dir = checkpoint_dir(o.out, step);
    if (lead) make_dirs(dir);
    if (comm) comm->barrier();  // the directory exists for every rank
    if (lead) save_checkpoint(dir + "/model.safetensors", cfg, model.weights());
    save_train_state(state_file(dir, rank), TrainState{step, loader.state(), trajectory}, opt.state_tensors());
    if (comm) comm->barrier();  // every rank's state is on disk before the marker
    if (!lead) return;
    fsync_dir(dir);
    if (const char* kill = std::getenv("MU_TEST_DIE_BEFORE_MARKER"); kill && std::atoll(kill) == step) {
      std::fprintf(stderr, "mu-train: MU_TEST_DIE_BEFORE_MARKER: dying before the marker of step %lld\n",
                   static_cast<long long>(step));
      std::_Exit(9);  // test hook: a save killed after the files, before the marker
    }
    mark_complete(dir, step);
    prune_checkpoints(o.out, o.keep_checkpoints);
  };

  info("mu-train: %lld steps x %lld tokens (B=%d T=%d accum=%d%s) on %s, %d threads%s\n",
       static_cast<long long>(o.steps), static_cast<long long>(tokens_per_step), B, T, o.grad_accum,
       world > 1 ? strformat(" ranks=%d", world).c_str() : "", device_name(dev), omp_get_max_threads(),
       world > 1 ? " per rank" : "");
  Muon* muon = opt.muon();
  const auto run_start = Clock::now();
  double step_time_avg = 0;
  int64_t last_step = o.steps;
  if (o.stop_after > 0) last_step = std::min(o.steps, start_step + o.stop_after);
  for (int64_t step = start_step + 1; step <= last_step; step++) {
    const auto t0 = Clock::now();
    test_rank_fail(rank, step);
    model.zero_grads();
    double loss = 0;
    for (int micro = 0; micro < o.grad_accum; micro++) {
      loader.next(inputs.data(), targets.data());
      model.set_batch(inputs.data(), targets.data());
      // Data parallel: the last micro-batch's backward starts each layer's reduction.
      model.set_layer_grads_hook(micro == o.grad_accum - 1 ? opt.layer_hook() : std::function<void(int)>());
      loss += model.forward_backward(grad_scale) / o.grad_accum;
    }
    model.set_layer_grads_hook({});
    loss = mean_over_ranks(loss);
    ClipResult clip = opt.reduce_and_clip(o.grad_clip);
    MU_CHECK(std::isfinite(loss) && std::isfinite(clip.norm),
             "step %lld: loss %g, gradient norm %g: training diverged (lower --lr, raise --warmup, or --grad-clip); "
             "the last checkpoint in %s is intact",
             static_cast<long long>(step), loss, clip.norm, o.out.empty() ? "(none)" : o.out.c_str());
    const double lr = lr_at(sched, step - 1, o.steps);
    if (muon && o.log_every_muon > 0 && step % o.log_every_muon == 0) muon->request_diagnostics();
    opt.step(lr, clip.scale);
    const double dt = seconds_since(t0);
    // ETA from the mean step time of this invocation: steadier than the last step's time.
    step_time_avg = seconds_since(run_start) / static_cast<double>(step - start_step);
    const double tok_s = tokens_per_step / dt;
    nlohmann::json record = {{"step", step},
                             {"loss", loss},
                             {"lr", lr},
                             {"grad_norm", clip.norm},
                             {"ms", dt * 1e3},
                             {"tokens_per_s", tok_s},
                             {"tokens", step * tokens_per_step}};
    if (muon)
      for (const auto& [key, value] : muon->take_diagnostics()) record[key] = value;
    metrics.write(record);
    if (step % o.log_every == 0 || step == o.steps || step == start_step + 1)
      info("step %6lld/%lld | loss %.4f | lr %.2e | norm %.3f | %.0f ms | %s tok/s | eta %s\n",
           static_cast<long long>(step), static_cast<long long>(o.steps), loss, lr, clip.norm, dt * 1e3,
           fmt_rate(tok_s).c_str(), fmt_duration(step_time_avg * (o.steps - step)).c_str());
    if (o.eval_every > 0 && step % o.eval_every == 0 && step != o.steps) evaluate(step);
    if (o.save_every > 0 && step % o.save_every == 0 && step != o.steps) save(step);
  }
  if (last_step < o.steps) {
    if (o.save_every == 0 || last_step % o.save_every != 0) save(last_step);
    info("mu-train: stopped after step %lld of %lld (--stop-after); continue with --resume\n",
         static_cast<long long>(last_step), static_cast<long long>(o.steps));
    return 0;
  }
  evaluate(o.steps);
  if (!o.out.empty()) {
    if (start_step < o.steps) save(o.steps);
    if (lead) save_checkpoint(o.out + "/model.safetensors", cfg, model.weights());
    info("mu-train: wrote %s/model.safetensors\n", o.out.c_str());
  }
  if (!o.export_hf.empty() && lead) {
    export_hf_dir(o.export_hf, cfg, model.weights(), hf_export);
    info("mu-train: exported Hugging Face model to %s\n", o.export_hf.c_str());
  }
  if (comm) comm->barrier();  // no rank leaves (finalizing MPI) while rank 0 still writes
  info("mu-train: done in %s\n", fmt_duration(seconds_since(run_start)).c_str());
  return 0;
}

}  // namespace

}  // namespace mu
