// tools/mu-sweep end to end on the tiny preset: one mu-train run per (optimizer, lr) with its
// own metrics.jsonl, a plot of all runs, the best final validation loss per optimizer (checked
// against the metrics files themselves), failed runs reported without stopping the sweep, and
// finished runs not repeated.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/fileio.h"
#include "tests/util_compare.h"
#include "train/shards.h"

using namespace mu;
using namespace mu::test;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string sweep_cmd(const std::string& dir, const std::string& own, const std::string& train) {
  return std::string(MU_SOURCE_DIR) + "/tools/mu-sweep " + own + " --out " + dir + "/sweep --mu-train-bin " +
         tool("mu-train") + " --quiet -- " + train;
}

// The validation loss of the record with the highest step: what "final" means in the summary.
double final_val_loss(const std::string& metrics) {
  std::istringstream in(read_text_file(metrics));
  std::string line;
  int64_t best_step = -1;
  double v = NAN;
  while (std::getline(in, line)) {
    json j = json::parse(line);
    if (j.contains("val_loss") && j["step"].get<int64_t>() > best_step) {
      best_step = j["step"].get<int64_t>();
      v = j["val_loss"].get<double>();
    }
  }
  return v;
}

TEST(MuSweep, RunsEveryPairPlotsAndPicksTheBest) {
  const std::string dir = make_temp_dir("sweep");
  write_shard(dir + "/syn_train_000000.bin", synthetic_text_tokens(20000, 1), 256);
  write_shard(dir + "/syn_val_000000.bin", synthetic_text_tokens(4000, 2), 256);
  const std::string train = "--config tiny --data " + dir + "/syn_train_000000.bin --val-data " + dir +
                            "/syn_val_000000.bin --steps 6 --batch-size 4 --seq-len 32 --eval-every 3 --eval-steps 2 "
                            "--device cpu";
  // "bogus" is no optimizer: its runs fail, the adamw runs still happen, the exit status is 1.
  RunResult r = run_cmd(sweep_cmd(dir, "--lrs 1e-3,3e-2 --optimizers adamw,bogus", train));
  EXPECT_EQ(r.exit_code, 1) << r.output;

  std::map<std::string, double> val;
  for (const char* lr : {"1e-3", "3e-2"}) {
    const std::string run = dir + "/sweep/adamw_lr" + lr;
    ASSERT_TRUE(file_exists(run + "/metrics.jsonl")) << r.output;
    EXPECT_TRUE(file_exists(run + "/model.safetensors"));
    val[lr] = final_val_loss(run + "/metrics.jsonl");
    ASSERT_TRUE(std::isfinite(val[lr])) << run;
  }
  EXPECT_FALSE(file_exists(dir + "/sweep/bogus_lr1e-3/metrics.jsonl"));
  const std::string best = val["1e-3"] < val["3e-2"] ? "1e-3" : "3e-2";
  char want[128];
  std::snprintf(want, sizeof want, "best adamw: lr %s, validation loss %.4f", best.c_str(), val[best]);
  EXPECT_NE(r.output.find(want), std::string::npos) << "'" << want << "' not in:\n" << r.output;
  EXPECT_NE(r.output.find("best bogus: no successful run"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--optimizer"), std::string::npos) << "the failing run's error is shown:\n" << r.output;

  const std::string png = read_text_file(dir + "/sweep/sweep.png");
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  json summary = json::parse(read_text_file(dir + "/sweep/sweep.json"));
  EXPECT_EQ(summary["best"]["adamw"], "adamw_lr" + best);
  EXPECT_EQ(summary["runs"].size(), 4u);

  // Again: nothing is rerun (the failed ones stay failed until --rerun).
  RunResult again = run_cmd(sweep_cmd(dir, "--lrs 1e-3,3e-2 --optimizers adamw,bogus", train));
  EXPECT_EQ(again.exit_code, 1) << again.output;
  EXPECT_NE(again.output.find("adamw_lr1e-3: finished before (ok), not rerun"), std::string::npos) << again.output;
  EXPECT_NE(again.output.find(want), std::string::npos) << again.output;
  // --rerun runs a finished run afresh, keeping the earlier one under another name.
  RunResult rerun = run_cmd(sweep_cmd(dir, "--lrs 1e-3 --optimizers adamw --rerun", train));
  EXPECT_EQ(rerun.exit_code, 0) << rerun.output;
  EXPECT_NE(rerun.output.find("adamw_lr1e-3: moved the previous run to " + dir + "/sweep/adamw_lr1e-3."),
            std::string::npos) << rerun.output;
  EXPECT_TRUE(file_exists(dir + "/sweep/adamw_lr1e-3/model.safetensors")) << rerun.output;
  EXPECT_DOUBLE_EQ(final_val_loss(dir + "/sweep/adamw_lr1e-3/metrics.jsonl"), val["1e-3"]);  // same seed
  if (!HasFailure()) fs::remove_all(dir);
}

TEST(MuSweep, UsageErrorsExit2) {
  const std::string dir = make_temp_dir("sweep-usage");
  for (const auto& [own, train, msg] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"--lrs 1e-3", "--config tiny --lr 1", "--lr"},
           {"--lrs 1e-3", "--config tiny --out=x", "--out"},
           {"--lrs abc", "--config tiny", "'abc'"},
           {"--lrs 1e-3,1e-3", "--config tiny", "twice"},
           {"--lrs 1e-3", "", "no mu-train arguments"}}) {
    RunResult r = run_cmd(sweep_cmd(dir, own, train));
    EXPECT_EQ(r.exit_code, 2) << own << " -- " << train << "\n" << r.output;
    EXPECT_NE(r.output.find(msg), std::string::npos) << r.output;
  }
  EXPECT_FALSE(fs::exists(dir + "/sweep"));
  fs::remove_all(dir);
}

// --out under a regular file (or a file itself): one line naming --out, exit 2, no traceback.
TEST(MuSweep, OutUnderAFileIsAOneLineError) {
  const std::string dir = make_temp_dir("sweep-outfile");
  write_text(dir + "/file.txt", "keep me\n");
  for (const std::string& out : {dir + "/file.txt/sw", dir + "/file.txt"}) {
    RunResult r = run_cmd(std::string(MU_SOURCE_DIR) + "/tools/mu-sweep --lrs 1e-3 --out " + out + " --mu-train-bin " +
                          tool("mu-train") + " --quiet -- --config tiny --data x");
    EXPECT_EQ(r.exit_code, 2) << out << "\n" << r.output;
    EXPECT_NE(r.output.find("mu-sweep: error: --out " + out), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("Traceback"), std::string::npos) << r.output;
  }
  EXPECT_EQ(read_text_file(dir + "/file.txt"), "keep me\n");
  fs::remove_all(dir);
}

// --export-hf would send every run to one directory (the second fails "exists and is not
// empty"): refused up front like --out and --log, in both spellings.
TEST(MuSweep, RefusesExportHf) {
  const std::string dir = make_temp_dir("sweep-export");
  for (const std::string& train : {std::string("--config tiny --export-hf " + dir + "/hf"),
                                   std::string("--config tiny --export-hf=" + dir + "/hf")}) {
    RunResult r = run_cmd(sweep_cmd(dir, "--lrs 1e-3,3e-3", train));
    EXPECT_EQ(r.exit_code, 2) << train << "\n" << r.output;
    EXPECT_NE(r.output.find("--export-hf after --"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("mu-convert"), std::string::npos) << "the message says what to do instead:\n" << r.output;
  }
  EXPECT_FALSE(fs::exists(dir + "/sweep"));
  EXPECT_FALSE(fs::exists(dir + "/hf"));
  fs::remove_all(dir);
}

// Runs that fail leave no validation loss; with --val-data given, the summary must name the
// failed runs' logs and not ask for --val-data. Without it, asking for it is right.
TEST(MuSweep, FailedRunsAreReportedNotBlamedOnValData) {
  const std::string dir = make_temp_dir("sweep-failed");
  const std::string train = "--config tiny --data " + dir + "/none_train.bin --steps 2 --device cpu";
  RunResult r = run_cmd(sweep_cmd(dir, "--lrs 1e-3 --optimizers bogus", train + " --val-data " + dir + "/none_val.bin"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("1 of 1 run(s) failed; their logs: " + dir + "/sweep/bogus_lr1e-3/train.log"),
            std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("give mu-train --val-data"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("best bogus: no successful run"), std::string::npos) << r.output;

  RunResult no_val = run_cmd(sweep_cmd(dir, "--lrs 1e-3 --optimizers bogus --rerun", train));
  EXPECT_EQ(no_val.exit_code, 1) << no_val.output;
  EXPECT_NE(no_val.output.find("give mu-train --val-data"), std::string::npos) << no_val.output;
  if (!HasFailure()) fs::remove_all(dir);
}

}  // namespace
