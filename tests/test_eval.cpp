// mu-eval --data and --sample on a model trained here (tiny preset, synthetic text).
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/fileio.h"
#include "tests/util_compare.h"
#include "train/shards.h"

using namespace mu;
using namespace mu::test;

namespace {

struct Trained {
  std::string dir, train, val, model, metrics;
};

// 60 steps of the tiny preset, validated at the end over 4 batches of 4 x 32 (no shuffle).
const Trained& trained() {
  static Trained t = [] {
    Trained x;
    x.dir = make_temp_dir("eval");
    x.train = x.dir + "/syn_train_000000.bin";
    x.val = x.dir + "/syn_val_000000.bin";
    write_shard(x.train, synthetic_text_tokens(40000, 11), 256);
    write_shard(x.val, synthetic_text_tokens(6000, 12), 256);
    x.model = x.dir + "/run/model.safetensors";
    x.metrics = x.dir + "/m.jsonl";
    RunResult r = run_cmd(tool("mu-train") + " --config tiny --data " + x.train + " --val-data " + x.val +
                          " --steps 60 --batch-size 4 --seq-len 32 --lr 1e-2 --warmup 5 --eval-steps 4 --out " +
                          x.dir + "/run --log " + x.metrics);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return x;
  }();
  return t;
}

TEST(Eval, DataLossEqualsTrainersValidationLoss) {
  const Trained& t = trained();
  RunResult r = run_cmd(tool("mu-eval") + " --model " + t.model + " --data " + t.val +
                        " --batch-size 4 --seq-len 32 --max-batches 4");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  double loss = -1, acc = -1;
  long long tokens = 0;
  const char* line = std::strstr(r.output.c_str(), "\nloss ");  // the result line, not the progress line
  ASSERT_NE(line, nullptr) << r.output;
  line++;
  ASSERT_EQ(std::sscanf(line, "loss %lf nats/token | accuracy %lf | %lld tokens", &loss, &acc, &tokens), 3) << r.output;
  EXPECT_EQ(tokens, 4 * 4 * 32);
  // The trainer's final validation ran the same forward on the same 4 in-order batches.
  double val = -1;
  std::istringstream in(read_text_file(t.metrics));
  for (std::string l; std::getline(in, l);) {
    auto j = nlohmann::json::parse(l);
    if (j.contains("val_loss")) val = j["val_loss"].get<double>();
  }
  EXPECT_NEAR(loss, val, 6e-5);  // mu-eval prints 4 decimals
  // The synthetic text is highly predictable after 60 steps; chance is 1/256.
  EXPECT_GT(acc, 0.3);
  EXPECT_LE(acc, 1.0);
}

TEST(Eval, SampleIsDeterministicAndSpeaksTheTrainingAlphabet) {
  const Trained& t = trained();
  const std::string cmd = tool("mu-eval") + " --model " + t.model + " --sample --prompt 'the cat ' --max-new-tokens 80 ";
  RunResult a = run_cmd(cmd + "--seed 5 2>/dev/null"), b = run_cmd(cmd + "--seed 5 2>/dev/null");
  ASSERT_EQ(a.exit_code, 0) << a.output;
  EXPECT_EQ(a.output, b.output);
  ASSERT_EQ(a.output.rfind("the cat ", 0), 0u) << a.output;
  const std::string gen = a.output.substr(8, 80);
  ASSERT_EQ(gen.size(), 80u);
  int in_alphabet = 0;
  for (char c : gen) in_alphabet += std::strchr(synthetic_alphabet(), c) != nullptr;
  // An untrained model picks among 256 bytes (~7% would land in this 17-byte alphabet).
  EXPECT_GE(in_alphabet, 72) << gen;
  RunResult g1 = run_cmd(cmd + "--temperature 0 2>/dev/null"), g2 = run_cmd(cmd + "--temperature 0 --seed 9 2>/dev/null");
  EXPECT_EQ(g1.output, g2.output) << "greedy decoding ignores the seed";
}

TEST(Eval, BadOptionsFailCleanly) {
  const Trained& t = trained();
  RunResult r = run_cmd(tool("mu-eval") + " --model " + t.model + " --sample --data " + t.val);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("exactly one"), std::string::npos) << r.output;
  r = run_cmd(tool("mu-eval") + " --model " + t.model + " --data /nonexistent/v_*.bin");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("/nonexistent/v_*.bin"), std::string::npos) << r.output;
}

}  // namespace
