// mu-train --optimizer muon end to end on the tiny preset (the real binary, synthetic text):
// it learns, logs its diagnostics, resumes bitwise, refuses a changed switch on resume, and
// rejects bad Muon options with a message. (Each mu-train start costs ~1 s here, mostly loading
// the CUDA libraries; the cases are few on purpose. test_muon.cpp covers every name parser.)
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/fileio.h"
#include "core/safetensors.h"
#include "tests/util_compare.h"
#include "train/shards.h"

using namespace mu;
using namespace mu::test;

namespace {

const std::string& train_data() {
  static const std::string path = [] {
    const std::string dir = make_temp_dir("muon-data");
    write_shard(dir + "/syn_train_000000.bin", synthetic_text_tokens(60000, 1), 256);
    return dir + "/syn_train_000000.bin";
  }();
  return path;
}

std::string muon_cmd(const std::string& extra) {
  return tool("mu-train") + " --config tiny --data " + train_data() +
         " --seq-len 32 --lr 1e-2 --warmup 2 --schedule cosine --log-every 100 --optimizer muon " + extra;
}

std::vector<nlohmann::json> records(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::istringstream in(read_text_file(path));
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

// step -> loss as written (exact text, so equality is bitwise)
std::map<int64_t, std::string> losses(const std::string& path) {
  std::map<int64_t, std::string> m;
  for (const auto& j : records(path))
    if (j.contains("loss")) m[j["step"].get<int64_t>()] = j["loss"].dump();
  return m;
}

// The default Muon (Moonlight's recipe at AdamW's LR) and the modded-nanogpt combination both
// learn the synthetic text: ln(256) = 5.55 at init; AdamW reaches ~1.9 in these 40 steps and a
// broken update does not get below 3. Diagnostics appear every 10 steps and only then.
TEST(MuonTrain, LossDecreasesAndDiagnosticsAreLogged) {
  for (const std::string variant : {"", "--muon-momentum-kind ema --muon-ortho polar_express --normuon "
                                        "--muon-lr-scale original --muon-lr 0.05 --muon-wd-kind cautious"}) {
    const std::string d = make_temp_dir("muon-learn");
    RunResult r = run_cmd(muon_cmd("--steps 40 --batch-size 8 --log-every-muon 10 --log " + d + "/m.jsonl " + variant));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("muon ("), std::string::npos) << "the routing summary is printed";
    auto l = losses(d + "/m.jsonl");
    EXPECT_GT(std::stod(l[1]), 5.0) << variant;
    EXPECT_LT(std::stod(l[40]), 2.5) << variant;
    for (const auto& j : records(d + "/m.jsonl")) {
      const int64_t step = j["step"].get<int64_t>();
      const bool want = step % 10 == 0;
      for (const char* g : {"q", "k", "v", "o", "gate", "up", "down"})
        for (const char* k : {"lr_eff", "update_rms", "ortho_err"}) {
          const std::string key = std::string("muon.") + g + "." + k;
          ASSERT_EQ(j.contains(key), want) << key << " at step " << step;
          if (want) {
            EXPECT_TRUE(j[key].get<double>() > 0 && std::isfinite(j[key].get<double>())) << key;
          }
        }
      EXPECT_EQ(j.contains("muon.lr"), want);
    }
  }
}

// 10 steps straight == 5 steps, stop, resume 5: identical losses and weights, with NorMuon
// state and per-head splitting in the checkpoint.
TEST(MuonTrain, ResumeIsBitwiseExact) {
  const std::string a = make_temp_dir("muon-res"), b = make_temp_dir("muon-res");
  const std::string common = "--steps 10 --batch-size 4 --normuon --muon-split-heads --muon-ortho polar_express ";
  RunResult s = run_cmd(muon_cmd(common + "--out " + a + " --log " + a + "/m.jsonl"));
  ASSERT_EQ(s.exit_code, 0) << s.output;
  RunResult p1 = run_cmd(muon_cmd(common + "--stop-after 5 --out " + b + " --log " + b + "/m.jsonl"));
  ASSERT_EQ(p1.exit_code, 0) << p1.output;
  SafetensorsFile st(b + "/ckpt_00000005/state.safetensors");
  for (const char* n : {"muon.momentum.layers.wqkv", "muon.normuon_v.layers.wqkv", "muon.momentum.layers.w_down",
                        "adamw.m.embed", "adamw.v.final_norm"})
    EXPECT_TRUE(st.has(n)) << n;
  EXPECT_FALSE(st.has("adamw.m.layers.wqkv"));
  RunResult p2 = run_cmd(muon_cmd(common + "--resume --out " + b + " --log " + b + "/m.jsonl"));
  ASSERT_EQ(p2.exit_code, 0) << p2.output;
  EXPECT_NE(p2.output.find("resumed from"), std::string::npos) << p2.output;
  EXPECT_EQ(losses(a + "/m.jsonl").size(), 10u);
  EXPECT_EQ(losses(a + "/m.jsonl"), losses(b + "/m.jsonl"));
  EXPECT_EQ(weights_of(a + "/model.safetensors"), weights_of(b + "/model.safetensors"));
}

TEST(MuonTrain, ResumeRefusesAChangedSwitch) {
  const std::string d = make_temp_dir("muon-chg");
  ASSERT_EQ(run_cmd(muon_cmd("--steps 4 --batch-size 4 --stop-after 2 --out " + d)).exit_code, 0);
  struct Case {
    std::string args, expect;
  } cases[] = {{"--muon-ortho polar_express", "option muon_ortho"},
               {"--no-nesterov", "option nesterov"},
               {"--optimizer adamw", "option optimizer"}};
  for (const auto& c : cases) {
    RunResult r = run_cmd(muon_cmd("--steps 4 --batch-size 4 --resume --out " + d + " " + c.args));
    EXPECT_EQ(r.exit_code, 1) << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find(c.expect), std::string::npos) << c.args << "\n" << r.output;
  }
}

TEST(MuonTrain, BadOptionsFailWithAMessage) {
  struct Case {
    std::string args, expect;
  } cases[] = {{"--optimizer sgd", "--optimizer"},
               {"--optimizer muon --muon-ortho ns6", "ns6"},
               {"--optimizer muon --muon-wd-kind l2", "l2"},
               {"--optimizer muon --muon-ns-steps 0", "--muon-ns-steps"},
               {"--optimizer muon --muon-lr 0.02 --lr 0", "--muon-lr"},
               {"--optimizer adamw --log-every-muon 5", "--log-every-muon"},
               {"--optimizer muon --muon-ortho-dtype fp16", "--muon-ortho-dtype must be auto, bf16 or f32"},
               {"--optimizer muon --muon-ortho-dtype bf16 --device cpu", "--muon-ortho-dtype bf16 needs --device cuda"}};
  for (const auto& c : cases) {
    RunResult r = run_cmd(tool("mu-train") + " --config tiny --data " + train_data() + " --steps 1 " + c.args);
    EXPECT_FALSE(r.signaled) << c.args;
    EXPECT_EQ(r.exit_code, 1) << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find(c.expect), std::string::npos) << c.args << "\n" << r.output;
  }
}

TEST(MuonTrain, HelpListsEveryMuonOption) {
  RunResult r = run_cmd(tool("mu-train") + " --help");
  ASSERT_EQ(r.exit_code, 0);
  for (const char* opt : {"adamw|muon", "--muon-lr", "--muon-momentum", "--muon-momentum-kind", "--nesterov",
                          "--no-nesterov", "--muon-ortho", "--muon-ns-steps", "--normuon", "--normuon-beta2",
                          "--muon-lr-scale", "--muon-wd", "--muon-wd-kind", "--muon-split-heads", "--log-every-muon",
                          "--muon-ortho-dtype",
                          "match_rms_adamw", "polar_express", "cautious"})
    EXPECT_NE(r.output.find(opt), std::string::npos) << opt;
}

}  // namespace
