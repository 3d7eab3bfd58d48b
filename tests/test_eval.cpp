// mu-eval --data and --sample on a model trained here (tiny preset, synthetic text).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/fileio.h"
#include "core/safetensors.h"
#include "model/checkpoint.h"
#include "model/hf_import.h"
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

// --out naming an input (directly, through another spelling or a symlink) would replace the
// checkpoint or the token file with the logits: refused before anything runs, input unchanged.
TEST(Eval, OutThatIsAnInputIsRefused) {
  const Trained& t = trained();
  namespace fs = std::filesystem;
  const std::string d = make_temp_dir("evalout");
  const std::string victim = d + "/victim.st", tok = d + "/tok.st";
  fs::copy_file(t.model, victim);
  HostTensor ids(DType::I32, {2, 9});
  for (int64_t i = 0; i < ids.numel(); i++) static_cast<int32_t*>(ids.t().data)[i] = static_cast<int32_t>(97 + i);
  SafetensorsWriter w;
  w.add("tokens", ids);
  w.write(tok);
  fs::create_symlink(victim, d + "/link.st");
  const std::string model_bytes = read_text_file(victim), tok_bytes = read_text_file(tok);
  const std::string cmd = tool("mu-eval") + " --model " + victim + " --tokens " + tok + " --out ";
  for (const std::string& out : {victim, d + "/./victim.st", d + "/link.st"}) {
    RunResult r = run_cmd(cmd + out);
    EXPECT_EQ(r.exit_code, 1) << out << ": " << r.output;
    EXPECT_NE(r.output.find("--out"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("--model"), std::string::npos) << r.output;
  }
  RunResult r = run_cmd(cmd + tok);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("--tokens"), std::string::npos) << r.output;
  EXPECT_TRUE(read_text_file(victim) == model_bytes) << "--model " << victim << " was overwritten";
  EXPECT_TRUE(read_text_file(tok) == tok_bytes) << "--tokens " << tok << " was overwritten";
  r = run_cmd(cmd + d + "/logits.st");  // a new file is fine
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(SafetensorsFile(d + "/logits.st").has("logits"));
}

// A failed --sample run prints nothing to stdout: options and the model are checked before the
// prompt is echoed.
TEST(Eval, FailedSampleWritesNothingToStdout) {
  const Trained& t = trained();
  const std::string cmd = tool("mu-eval") + " --sample --prompt 'the cat ' ";
  for (const std::string& args : {"--model " + t.model + " --temperature -1", "--model " + t.model + " --top-k -2",
                                  "--model " + t.model + " --context -1", "--model " + t.model + " --max-new-tokens 0",
                                  "--model " + t.model + " --temperature inf", "--model " + t.model + " --temperature nan",
                                  std::string("--model /nonexistent/m.safetensors")}) {
    RunResult r = run_cmd("(" + cmd + args + " 2>/dev/null)");  // stdout only (run_cmd adds 2>&1)
    EXPECT_EQ(r.exit_code, 1) << args;
    EXPECT_EQ(r.output, "") << args;
  }
}

// --sample feeds the prompt's bytes as token ids: only right for the byte vocabulary (256).
// Any other model is refused, saying what to do instead, before anything is printed.
TEST(Eval, SampleNeedsTheByteVocabulary) {
  const std::string d = make_temp_dir("evalvocab");
  LlamaConfig c = load_config("tiny");
  c.vocab_size = 300;
  HostModel m = make_host_model(c);
  save_checkpoint(d + "/v300.safetensors", c, m.w);
  const std::string cmd = tool("mu-eval") + " --model " + d + "/v300.safetensors --sample --prompt 'the ' --max-new-tokens 4";
  RunResult r = run_cmd(cmd);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  for (const char* w : {"v300.safetensors", "vocab_size", "300", "mu-convert --to-hf", "transformers"})
    EXPECT_NE(r.output.find(w), std::string::npos) << "no '" << w << "' in: " << r.output;
  r = run_cmd("(" + cmd + " 2>/dev/null)");
  EXPECT_EQ(r.output, "");
  std::filesystem::remove_all(d);
}

// A sequence or context longer than max_position_embeddings (256 for tiny) runs, with the
// warning mu-train prints for --seq-len.
TEST(Eval, LongerThanMaxPositionEmbeddingsWarns) {
  const Trained& t = trained();
  RunResult r = run_cmd(tool("mu-eval") + " --model " + t.model + " --data " + t.val +
                        " --batch-size 1 --seq-len 1000 --max-batches 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("mu-eval: warning: --seq-len 1000 exceeds max_position_embeddings 256"), std::string::npos)
      << r.output;
  r = run_cmd(tool("mu-eval") + " --model " + t.model + " --sample --prompt 'the ' --max-new-tokens 2 --context 5000");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("mu-eval: warning: --context 5000 exceeds max_position_embeddings 256"), std::string::npos)
      << r.output;
  r = run_cmd(tool("mu-eval") + " --model " + t.model + " --data " + t.val +
              " --batch-size 1 --seq-len 256 --max-batches 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find("warning"), std::string::npos) << r.output;
}

// Counts below their documented range (0 means "all" / "the default") name the flag.
TEST(Eval, NegativeCountsNameTheFlag) {
  const Trained& t = trained();
  RunResult r = run_cmd(tool("mu-eval") + " --model " + t.model + " --data " + t.val +
                        " --batch-size 4 --seq-len 32 --max-batches -5");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("--max-batches"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("loss "), std::string::npos) << r.output;
  r = run_cmd(tool("mu-eval") + " --model " + t.model + " --sample --context -1 --max-new-tokens 4");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("--context"), std::string::npos) << r.output;
}

}  // namespace
