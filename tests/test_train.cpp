// mu-train end to end on the tiny preset: gradient accumulation, determinism, exact resume,
// a save killed before its marker, and bad input. Runs the real binary on synthetic bytes.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/fileio.h"
#include "core/rng.h"
#include "core/transfer.h"
#include "model/checkpoint.h"
#include "model/hf_import.h"
#include "model/llama.h"
#include "tests/util_compare.h"
#include "train/shards.h"

using namespace mu;
using namespace mu::test;

namespace {

std::vector<uint32_t> synthetic_bytes(size_t n, uint64_t seed) { return synthetic_text_tokens(n, seed); }

struct Data {
  std::string dir, train, val;
};

const Data& data() {
  static Data d = [] {
    Data x;
    x.dir = make_temp_dir("train");
    x.train = x.dir + "/syn_train_000000.bin";
    x.val = x.dir + "/syn_val_000000.bin";
    write_shard(x.train, synthetic_bytes(60000, 1), 256);
    write_shard(x.val, synthetic_bytes(8000, 2), 256);
    return x;
  }();
  return d;
}

std::string train_cmd(const std::string& extra) {
  return tool("mu-train") + " --config tiny --data " + data().train + " --seq-len 32 --lr 1e-2 --warmup 2 " +
         "--schedule cosine --log-every 100 " + extra;
}

// step -> loss as the exact text written in the metrics file (so equality is bitwise).
std::map<int64_t, std::string> losses(const std::string& path) {
  std::map<int64_t, std::string> m;
  std::istringstream in(read_text_file(path));
  std::string line;
  while (std::getline(in, line)) {
    nlohmann::json j = nlohmann::json::parse(line);
    if (j.contains("loss")) m[j["step"].get<int64_t>()] = j["loss"].dump();
    if (j.contains("val_loss")) m[-j["step"].get<int64_t>()] = j["val_loss"].dump();
  }
  return m;
}

TEST(Train, SameSeedTwiceIsBitwiseIdentical) {
  const std::string a = make_temp_dir("det"), b = make_temp_dir("det");
  for (const std::string& d : {a, b}) {
    RunResult r = run_cmd(train_cmd("--steps 6 --batch-size 4 --out " + d + " --log " + d + "/m.jsonl"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  EXPECT_EQ(losses(a + "/m.jsonl"), losses(b + "/m.jsonl"));
  EXPECT_EQ(losses(a + "/m.jsonl").size(), 6u);
  EXPECT_EQ(weights_of(a + "/model.safetensors"), weights_of(b + "/model.safetensors"));
}

TEST(Train, LossDecreases) {
  const std::string d = make_temp_dir("learn");
  RunResult r = run_cmd(train_cmd("--steps 40 --batch-size 8 --val-data " + data().val + " --eval-every 20 " +
                                  "--eval-steps 4 --log " + d + "/m.jsonl"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto l = losses(d + "/m.jsonl");
  const double first = std::stod(l[1]), last = std::stod(l[40]);
  // ln(256) = 5.55 at init; the synthetic text has ~2 bits of entropy per byte: a working
  // loop gets well below 3 nats in 40 steps, a broken one does not.
  EXPECT_GT(first, 5.0);
  EXPECT_LT(last, 3.0);
  EXPECT_TRUE(l.count(-20) && l.count(-40)) << "validation lines at steps 20 and 40";
}

// Accumulating 4 micro-batches of 2 rows equals one batch of 8 rows: same tokens (no
// shuffle: micro-batch i covers tokens [i*B*T, (i+1)*B*T]), gradients summed in another order.
// --adam-eps 1e-3: Adam divides each coordinate by its own RMS, so a coordinate whose gradient
// is ~1e-9 takes a full +-lr step whose sign is decided by rounding noise; a larger eps keeps
// such coordinates still, so the comparison measures the accumulation, not that noise.
TEST(Train, GradAccumulationMatchesLargerBatch) {
  const std::string a = make_temp_dir("acc"), b = make_temp_dir("acc");
  const std::string common = "--no-shuffle --steps 5 --adam-eps 1e-3 ";
  RunResult r1 = run_cmd(train_cmd(common + "--batch-size 8 --log " + a + "/m.jsonl --out " + a));
  RunResult r2 = run_cmd(train_cmd(common + "--batch-size 2 --grad-accum 4 --log " + b + "/m.jsonl --out " + b));
  ASSERT_EQ(r1.exit_code, 0) << r1.output;
  ASSERT_EQ(r2.exit_code, 0) << r2.output;
  auto la = losses(a + "/m.jsonl"), lb = losses(b + "/m.jsonl");
  ASSERT_EQ(la.size(), 5u);
  for (auto& [step, v] : la) {
    // fp32 sums over 256-token micro-batches in a different grouping: ~1e-7 relative per
    // step, growing slowly through 5 AdamW steps; 1e-5 leaves room and still catches a
    // wrong scale (a missing 1/accum is a factor of 4).
    EXPECT_NEAR(std::stod(v), std::stod(lb[step]), 1e-5 * std::stod(v)) << "step " << step;
  }
  std::vector<float> wa = weights_of(a + "/model.safetensors"), wb = weights_of(b + "/model.safetensors");
  EXPECT_LT(rel_err(std::vector<double>(wa.begin(), wa.end()), std::vector<double>(wb.begin(), wb.end())), 1e-5);
}

// The same check in-process on the gradients themselves (no optimizer in between).
TEST(Train, AccumulatedGradientsEqualBigBatchGradients) {
  LlamaConfig cfg = load_config("tiny");
  const int T = 32;
  std::vector<uint32_t> toks = synthetic_bytes(8 * T + 1, 3);
  auto grads_for = [&](int B, int accum) {
    ArenaPlan plan;
    Llama::plan(plan, cfg, {B, T}, true);
    Arena arena(plan, Device::CPU);
    Llama m(cfg, arena, {B, T}, true);
    m.init_random(7);
    m.zero_grads();
    for (int i = 0; i < accum; i++) {
      std::vector<int32_t> in, tg;
      for (int j = 0; j < B * T; j++) {
        in.push_back(static_cast<int32_t>(toks[i * B * T + j]));
        tg.push_back(static_cast<int32_t>(toks[i * B * T + j + 1]));
      }
      m.set_batch(in.data(), tg.data());
      m.forward_backward(1.0f / static_cast<float>(B * T * accum));
    }
    std::vector<double> all;
    for (const auto& [name, t] : m.grads().named(cfg)) {
      std::vector<float> v = to_host_f32(t);
      all.insert(all.end(), v.begin(), v.end());
    }
    return all;
  };
  // fp32 accumulation in a different grouping: 1e-6 relative is several times the observed error.
  EXPECT_LT(rel_err(grads_for(2, 4), grads_for(8, 1)), 1e-6);
}

// 20 steps straight == 10 steps, stop, resume 10 more: identical metrics and weights.
TEST(Train, ResumeIsBitwiseExact) {
  const std::string a = make_temp_dir("res"), b = make_temp_dir("res");
  const std::string common = "--steps 20 --batch-size 4 --val-data " + data().val + " --eval-every 5 --eval-steps 2 ";
  RunResult s = run_cmd(train_cmd(common + "--out " + a + " --log " + a + "/m.jsonl"));
  ASSERT_EQ(s.exit_code, 0) << s.output;
  RunResult p1 = run_cmd(train_cmd(common + "--save-every 5 --stop-after 10 --out " + b + " --log " + b + "/m.jsonl"));
  ASSERT_EQ(p1.exit_code, 0) << p1.output;
  EXPECT_FALSE(file_exists(b + "/model.safetensors"));  // not finished yet
  RunResult p2 = run_cmd(train_cmd(common + "--save-every 5 --resume --out " + b + " --log " + b + "/m.jsonl"));
  ASSERT_EQ(p2.exit_code, 0) << p2.output;
  EXPECT_NE(p2.output.find("resumed from"), std::string::npos) << p2.output;
  auto la = losses(a + "/m.jsonl"), lb = losses(b + "/m.jsonl");
  EXPECT_EQ(la.size(), 24u);  // 20 train + 4 validation records
  EXPECT_EQ(la, lb);
  EXPECT_EQ(weights_of(a + "/model.safetensors"), weights_of(b + "/model.safetensors"));
}

// A save killed after writing its files but before the marker leaves the previous checkpoint
// in charge: resuming continues from it and still ends bitwise where a straight run ends.
TEST(Train, KilledSaveLeavesPreviousCheckpointUsable) {
  const std::string a = make_temp_dir("kill"), b = make_temp_dir("kill");
  const std::string common = "--steps 15 --batch-size 4 --save-every 5 ";
  RunResult s = run_cmd(train_cmd(common + "--out " + a + " --log " + a + "/m.jsonl"));
  ASSERT_EQ(s.exit_code, 0) << s.output;
  RunResult k = run_cmd("MU_TEST_DIE_BEFORE_MARKER=10 " + train_cmd(common + "--out " + b + " --log " + b + "/m.jsonl"));
  EXPECT_NE(k.exit_code, 0) << k.output;
  EXPECT_TRUE(file_exists(b + "/ckpt_00000010/model.safetensors"));
  EXPECT_FALSE(file_exists(b + "/ckpt_00000010/COMPLETE"));
  RunResult r = run_cmd(train_cmd(common + "--resume --out " + b + " --log " + b + "/m.jsonl"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("ckpt_00000005"), std::string::npos) << r.output;
  EXPECT_EQ(losses(a + "/m.jsonl"), losses(b + "/m.jsonl"));
  EXPECT_EQ(weights_of(a + "/model.safetensors"), weights_of(b + "/model.safetensors"));
}

TEST(Train, ResumeRefusesChangedBatchShape) {
  const std::string d = make_temp_dir("chg");
  ASSERT_EQ(run_cmd(train_cmd("--steps 4 --batch-size 4 --save-every 2 --stop-after 2 --out " + d)).exit_code, 0);
  RunResult r = run_cmd(train_cmd("--steps 4 --batch-size 2 --resume --out " + d));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("batch_size"), std::string::npos) << r.output;
}

// A fresh run leaves an earlier run's files alone; --resume checks the model, the state's
// step and the data before any training.
TEST(Train, RunFilesAreNeverMixedOrLost) {
  const std::string d = make_temp_dir("mix"), other = make_temp_dir("mix");
  ASSERT_EQ(run_cmd(train_cmd("--steps 4 --batch-size 2 --save-every 2 --out " + d + " --log " + d + "/m.jsonl"))
                .exit_code, 0);
  const std::string model = read_text_file(d + "/model.safetensors"), log = read_text_file(d + "/m.jsonl");
  auto refused = [&](const std::string& args, const std::string& expect) {
    RunResult r = run_cmd(train_cmd("--steps 4 --batch-size 2 " + args));
    EXPECT_EQ(r.exit_code, 1) << args << "\n" << r.output;
    EXPECT_NE(r.output.find(expect), std::string::npos) << args << "\n" << r.output;
    EXPECT_EQ(r.output.find("| loss"), std::string::npos) << "trained before refusing: " << args << "\n" << r.output;
  };
  refused("--out " + d, "already holds a run (checkpoints up to step 4 (ckpt_00000004) and model.safetensors)");
  refused("--out " + other + "/a --log " + d + "/m.jsonl", "--log " + d + "/m.jsonl already holds metrics");
  EXPECT_EQ(read_text_file(d + "/model.safetensors"), model);
  EXPECT_EQ(read_text_file(d + "/m.jsonl"), log);
  EXPECT_TRUE(file_exists(d + "/ckpt_00000002/COMPLETE"));

  // --resume with another model than the checkpoint's.
  RunResult r = run_cmd(tool("mu-train") + " --config demo --data " + data().train +
                        " --seq-len 32 --steps 6 --batch-size 2 --save-every 2 --resume --out " + d);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("--config demo describes another model than the checkpoint"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("hidden_size 256 (checkpoint: 64)"), std::string::npos) << r.output;
  // A state whose step is not its directory's (a copied or edited checkpoint).
  std::filesystem::copy(d + "/ckpt_00000002", d + "/ckpt_00000009");
  refused("--steps 12 --save-every 2 --resume --out " + d, "field step is 2, but the checkpoint directory is step 9");
  std::filesystem::remove_all(d + "/ckpt_00000009");

  // --resume where a model lies but no complete checkpoint (here removed): nothing to continue.
  ASSERT_EQ(run_cmd(train_cmd("--steps 2 --batch-size 2 --out " + other + "/done")).exit_code, 0);
  std::filesystem::remove(other + "/done/ckpt_00000002/COMPLETE");
  const std::string done_model = read_text_file(other + "/done/model.safetensors");
  refused("--resume --out " + other + "/done", "holds a model.safetensors but no complete checkpoint");
  EXPECT_EQ(read_text_file(other + "/done/model.safetensors"), done_model);

  // Data too small for one batch, named before training: validation data too.
  write_shard(other + "/small.bin", synthetic_bytes(20, 5), 256);
  refused("--val-data " + other + "/small.bin", "data " + other + "/small.bin: 20 tokens, but one batch needs");
  // Validation data from another tokenizer than the training data.
  write_shard(other + "/v558.bin", synthetic_bytes(5000, 6), 558);
  refused("--val-data " + other + "/v558.bin", "records a tokenizer vocabulary of 558 but --data");
  RunResult warned = run_cmd(tool("mu-train") + " --config tiny --seq-len 32 --steps 1 --batch-size 2 --data " + other +
                             "/v558.bin");
  EXPECT_EQ(warned.exit_code, 0) << warned.output;
  EXPECT_NE(warned.output.find("warning: --data " + other + "/v558.bin records a tokenizer vocabulary of 558, the "
                               "model's is 256"), std::string::npos) << warned.output;
  // An --export-hf target that cannot be created (under a regular file).
  refused("--export-hf " + other + "/small.bin/hf", "small.bin is not a directory");
}

TEST(Train, BadInputFailsWithAMessage) {
  struct Case {
    std::string args, expect;
  } cases[] = {
      {"--config nosuchpreset --data " + data().train, "nosuchpreset"},
      {"--config tiny --data /nonexistent/x_*.bin", "/nonexistent/x_*.bin"},
      {"--config tiny --data " + data().train + " --batch-size 0", "--batch-size"},
      {"--config tiny --data " + data().train + " --schedule cosin", "cosin"},
      {"--config tiny --data " + data().train + " --lr abc", "--lr"},
      {"--config tiny --data " + data().train + " --bogus 1", "--bogus"},
      {"--config tiny --data " + data().train + " --device cuda", "cuda"},
      {"--data " + data().train, "--config"},
      {"--config tiny --data " + data().train + " --eval-every 5", "--eval-every needs --val-data"},
  };
  for (const auto& c : cases) {
    RunResult r = run_cmd(tool("mu-train") + " " + c.args + " --steps 1");
    EXPECT_FALSE(r.signaled) << c.args;
    EXPECT_EQ(r.exit_code, 1) << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find(c.expect), std::string::npos) << c.args << "\n" << r.output;
  }
  // A token id past the vocabulary: a 300-entry shard for a 256-entry model.
  const std::string d = make_temp_dir("vocab");
  std::vector<uint32_t> toks = synthetic_bytes(5000, 4);
  toks[1234] = 300;
  write_shard(d + "/big.bin", toks, 301);
  RunResult r = run_cmd(tool("mu-train") + " --config tiny --data " + d + "/big.bin --steps 1");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("big.bin"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("1234"), std::string::npos) << r.output;
}

TEST(Train, HelpListsEveryOptionItParses) {
  RunResult r = run_cmd(tool("mu-train") + " --help");
  ASSERT_EQ(r.exit_code, 0);
  for (const char* opt : {"--config", "--model", "--seed", "--data", "--val-data", "--steps", "--batch-size", "--seq-len",
                          "--grad-accum", "--optimizer", "--lr", "--weight-decay", "--adam-beta1", "--adam-beta2",
                          "--adam-eps", "--schedule", "--warmup", "--min-lr-ratio", "--grad-clip", "--eval-every",
                          "--eval-steps", "--out", "--save-every", "--resume", "--log", "--device", "--no-shuffle"})
    EXPECT_NE(r.output.find(opt), std::string::npos) << opt;
}

}  // namespace

namespace {
// --export-hf writes an HF directory equal to the final checkpoint (f32: bitwise).
TEST(Train, ExportHfAtTheEndMatchesTheCheckpoint) {
  const std::string d = make_temp_dir("exp");
  RunResult r = run_cmd(train_cmd("--steps 3 --batch-size 2 --out " + d + "/run --export-hf " + d +
                                  "/hf --export-dtype f32"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  HostModel hf = import_hf_dir(d + "/hf");
  LlamaConfig cfg = checkpoint_config(d + "/run/model.safetensors");
  EXPECT_EQ(hf.cfg, cfg);
  HostModel ck = make_host_model(cfg);
  load_checkpoint_weights(d + "/run/model.safetensors", cfg, ck.w);
  for (size_t i = 0; i < hf.w.named(cfg).size(); i++) {
    std::vector<float> a = to_host_f32(hf.w.named(cfg)[i].second), b = to_host_f32(ck.w.named(cfg)[i].second);
    EXPECT_EQ(a, b) << hf.w.named(cfg)[i].first;
  }
  // A non-empty target is refused before any training happens.
  RunResult again = run_cmd(train_cmd("--steps 3 --batch-size 2 --export-hf " + d + "/hf"));
  EXPECT_EQ(again.exit_code, 1) << again.output;
  EXPECT_EQ(again.output.find("step "), std::string::npos) << "trained before refusing:\n" << again.output;
}
// A run that does not fit says which batch size would, and that batch size does fit while
// the next one up does not; with nothing that fits it says what the model state alone needs.
TEST(Train, TooLittleMemorySaysWhatFits) {
  const std::string base = "--steps 1 --seq-len 256 --memory-limit 0.02 ";
  RunResult r = run_cmd(train_cmd(base + "--batch-size 64"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  const size_t at = r.output.find("--batch-size ", r.output.find("MiB are available"));
  ASSERT_NE(at, std::string::npos) << r.output;
  const int fits = std::atoi(r.output.c_str() + at + 13);
  ASSERT_GT(fits, 0) << r.output;
  EXPECT_NE(r.output.find("fits (with --grad-accum"), std::string::npos) << r.output;
  RunResult ok = run_cmd(train_cmd(base + "--batch-size " + std::to_string(fits)));
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  RunResult over = run_cmd(train_cmd(base + "--batch-size " + std::to_string(fits + 1)));
  EXPECT_EQ(over.exit_code, 1) << over.output;
  RunResult none = run_cmd(train_cmd("--steps 1 --seq-len 256 --batch-size 4 --memory-limit 0.0005"));
  EXPECT_EQ(none.exit_code, 1) << none.output;
  EXPECT_NE(none.output.find("even --batch-size 1 needs"), std::string::npos) << none.output;
  EXPECT_NE(none.output.find("of it weights, gradients and optimizer state"), std::string::npos) << none.output;
  RunResult bad = run_cmd(train_cmd("--steps 1 --batch-size 4 --memory-limit -1"));
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
  EXPECT_NE(bad.output.find("--memory-limit must be >= 0"), std::string::npos) << bad.output;
}

}  // namespace
