// tools/mu-plot: the PNG it writes, the summary table it prints, and its errors. The metrics
// files are written here (or read from tests/plot/), and every expected number is computed
// from that data in this file, never taken from the script.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/util_compare.h"

using namespace mu::test;
namespace fs = std::filesystem;

namespace {

const std::string kPlot = std::string(MU_SOURCE_DIR) + "/tools/mu-plot";
const std::string kExamples = std::string(MU_SOURCE_DIR) + "/tests/plot";

std::string quoted(const std::string& s) { return "'" + s + "'"; }

// Checks the file is a PNG of a plausible size for a two-run loss plot.
void expect_png(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  ASSERT_TRUE(f.good()) << path << " was not written";
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const std::string signature("\x89PNG\r\n\x1a\n", 8);  // PNG spec, section 5.2
  ASSERT_GE(bytes.size(), signature.size());
  EXPECT_EQ(bytes.substr(0, 8), signature) << path << " is not a PNG";
  // An empty 1000x600 axes frame compresses to a few kB; curves, ticks and a legend add more.
  EXPECT_GT(bytes.size(), 10000u) << path << " is suspiciously small";
}

// The summary table: column name -> cell, per run label. The header row starts with "run".
std::map<std::string, std::map<std::string, std::string>> parse_summary(const std::string& out) {
  std::istringstream in(out);
  std::string line;
  std::vector<std::string> header;
  std::map<std::string, std::map<std::string, std::string>> rows;
  while (std::getline(in, line)) {
    std::istringstream cells(line);
    std::vector<std::string> c;
    for (std::string w; cells >> w;) c.push_back(w);
    if (header.empty()) {
      if (!c.empty() && c[0] == "run") header = c;
      continue;
    }
    if (c.size() != header.size()) continue;  // the footnote, stderr lines
    for (size_t i = 1; i < c.size(); i++) rows[c[0]][header[i]] = c[i];
  }
  return rows;
}

double cell(const std::map<std::string, std::map<std::string, std::string>>& rows, const std::string& run,
            const std::string& col) {
  auto r = rows.find(run);
  if (r == rows.end() || !r->second.count(col)) {
    ADD_FAILURE() << "summary has no " << col << " for " << run;
    return NAN;
  }
  return std::stod(r->second.at(col));
}

// TensorBoard-style debiased EMA, written from the formula in the --smooth help.
double debiased_ema_last(const std::vector<double>& x, double beta) {
  double m = 0;
  for (double v : x) m = beta * m + (1 - beta) * v;
  return m / (1 - std::pow(beta, static_cast<double>(x.size())));
}

class PlotTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = make_temp_dir("plot"); }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);  // kept on failure, to look at the PNG
  }
  std::string dir_;
};

// Summary cells are printed with 4 decimals: half a unit in the last place.
constexpr double kPrinted = 5.1e-5;

TEST_F(PlotTest, TwoRunsGivePngAndSummary) {
  // Run 1: <dir>/adamw/metrics.jsonl, so its label is the directory name. 40 steps, val every
  // 10 with the best value at step 30 (not the last, not the first), plus keys to ignore.
  fs::create_directories(dir_ + "/adamw");
  std::string a;
  std::vector<double> a_loss, a_rate;
  const std::map<int, double> a_val = {{10, 3.6}, {20, 3.15}, {30, 2.875}, {40, 2.95}};
  for (int step = 1; step <= 40; step++) {
    const double loss = 4.0 - 0.05 * step + 0.01 * (step % 3);
    const double rate = 1000.0 + 10.0 * step;
    a_loss.push_back(loss);
    a_rate.push_back(rate);
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "{\"step\":%d,\"loss\":%.6f,\"lr\":0.0003,\"grad_norm\":0.8,\"ms\":120.5,"
                  "\"tokens_per_s\":%.1f,\"tokens\":%d,\"future_key\":[1,2]}\n",
                  step, loss, rate, step * 256);
    a += buf;
    if (a_val.count(step)) {
      std::snprintf(buf, sizeof buf, "{\"step\":%d,\"val_loss\":%.6f,\"tokens\":%d}\n", step, a_val.at(step),
                    step * 256);
      a += buf;
    }
  }
  write_text(dir_ + "/adamw/metrics.jsonl", a);

  // Run 2: muon_crash.jsonl, 30 steps, no val, a torn last line as a crash leaves it.
  std::string b;
  std::vector<double> b_loss;
  for (int step = 1; step <= 30; step++) {
    const double loss = 3.9 - 0.06 * step;
    b_loss.push_back(loss);
    char buf[200];
    std::snprintf(buf, sizeof buf, "{\"step\":%d,\"loss\":%.6f,\"tokens_per_s\":900,\"tokens\":%d}\n", step, loss,
                  step * 256);
    b += buf;
  }
  b += "{\"step\":31,\"loss\":2.";
  write_text(dir_ + "/muon_crash.jsonl", b);

  const std::string png = dir_ + "/loss.png";
  RunResult r = run_cmd(kPlot + " " + quoted(dir_ + "/adamw/metrics.jsonl") + " " +
                        quoted(dir_ + "/muon_crash.jsonl") + " --out " + quoted(png));
  ASSERT_FALSE(r.signaled) << r.output;
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_png(png);
  EXPECT_EQ(r.output.find("Traceback"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("muon_crash.jsonl: skipped 1 unparsable line"), std::string::npos) << r.output;

  auto rows = parse_summary(r.output);
  ASSERT_TRUE(rows.count("adamw")) << r.output;
  ASSERT_TRUE(rows.count("muon_crash")) << r.output;
  EXPECT_EQ(cell(rows, "adamw", "steps"), 40);
  EXPECT_NEAR(cell(rows, "adamw", "best_val"), 2.875, kPrinted) << r.output;
  EXPECT_NEAR(cell(rows, "adamw", "final_val"), 2.95, kPrinted) << r.output;
  EXPECT_NEAR(cell(rows, "adamw", "train_loss"), debiased_ema_last(a_loss, 0.9), kPrinted) << r.output;
  double mean_rate = 0;
  for (double v : a_rate) mean_rate += v / a_rate.size();
  EXPECT_NEAR(cell(rows, "adamw", "tokens/s"), mean_rate, 0.51) << r.output;  // printed as an integer
  EXPECT_EQ(cell(rows, "muon_crash", "steps"), 30);  // the torn step 31 is not counted
  EXPECT_NEAR(cell(rows, "muon_crash", "train_loss"), debiased_ema_last(b_loss, 0.9), kPrinted) << r.output;
  EXPECT_EQ(rows["muon_crash"]["best_val"], "-") << r.output;
}

// The checked-in example runs (tests/plot/make_examples.py), every option at once.
TEST_F(PlotTest, ExampleRunsWithOptions) {
  const std::string adamw = kExamples + "/adamw/metrics.jsonl", muon = kExamples + "/muon/metrics.jsonl";
  // Best val of each file and its unparsable lines, read here with nlohmann::json.
  auto scan = [](const std::string& path, double* best_val, int* torn) {
    std::ifstream f(path);
    ASSERT_TRUE(f.good()) << path;
    *best_val = INFINITY;
    *torn = 0;
    for (std::string line; std::getline(f, line);) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded()) {
        (*torn)++;
      } else if (j.contains("val_loss")) {
        *best_val = std::min(*best_val, j["val_loss"].get<double>());
      }
    }
  };
  double adamw_best, muon_best;
  int adamw_torn, muon_torn;
  scan(adamw, &adamw_best, &adamw_torn);
  scan(muon, &muon_best, &muon_torn);
  ASSERT_EQ(adamw_torn, 0);
  ASSERT_EQ(muon_torn, 1);  // the example crashed mid-line

  const std::string png = dir_ + "/steps.png";
  // "AdamW," : the empty second name keeps muon's default label (its directory's name).
  RunResult r = run_cmd(kPlot + " " + quoted(adamw) + " " + quoted(muon) + " --out " + quoted(png) +
                        " --labels AdamW, --x step --smooth 0.95 --log-x --ymax 6 --title 'AdamW vs Muon'");
  ASSERT_FALSE(r.signaled) << r.output;
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_png(png);
  auto rows = parse_summary(r.output);
  EXPECT_NEAR(cell(rows, "AdamW", "best_val"), adamw_best, kPrinted) << r.output;
  EXPECT_NEAR(cell(rows, "muon", "best_val"), muon_best, kPrinted) << r.output;
  EXPECT_NE(r.output.find("EMA-smoothed (0.95)"), std::string::npos) << r.output;
}

// --out without an extension: matplotlib writes NAME.png, and the closing line must name that
// file, not the name given.
TEST_F(PlotTest, OutWithoutExtensionReportsThePathWritten) {
  const std::string run = dir_ + "/run.jsonl";
  write_text(run, "{\"step\":1,\"loss\":3.0,\"tokens\":64}\n{\"step\":2,\"loss\":2.5,\"tokens\":128}\n");
  for (const std::string& name : {std::string("data"), std::string("dotted.")}) {
    const std::string out = dir_ + "/" + name, want = dir_ + "/" + (name == "data" ? "data.png" : "dotted.png");
    RunResult r = run_cmd(kPlot + " " + quoted(run) + " --out " + quoted(out));
    ASSERT_FALSE(r.signaled) << r.output;
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("mu-plot: wrote " + want + "\n"), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(out)) << out;
    std::ifstream f(want, std::ios::binary);
    std::string head(8, '\0');
    f.read(&head[0], 8);
    EXPECT_EQ(head, std::string("\x89PNG\r\n\x1a\n", 8)) << want << " is not a PNG";
  }
}

void expect_clean_error(const RunResult& r, const std::string& must_mention) {
  EXPECT_FALSE(r.signaled) << r.output;
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(must_mention), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("Traceback"), std::string::npos) << r.output;
}

TEST_F(PlotTest, BadInputGivesOneLineErrors) {
  const std::string missing = dir_ + "/no_such_run.jsonl";
  expect_clean_error(run_cmd(kPlot + " " + quoted(missing) + " --out " + quoted(dir_ + "/x.png")), missing);

  // Only junk: not a run. The message names the file.
  const std::string junk = dir_ + "/junk.jsonl";
  write_text(junk, "not json\n{\"other\":1}\n");
  expect_clean_error(run_cmd(kPlot + " " + quoted(junk) + " --out " + quoted(dir_ + "/x.png")), junk);

  const std::string ok = dir_ + "/ok.jsonl";
  write_text(ok, "{\"step\":1,\"loss\":3.0,\"tokens\":64}\n");
  expect_clean_error(run_cmd(kPlot + " " + quoted(ok) + " --labels a,b --out " + quoted(dir_ + "/x.png")),
                     "--labels");
  expect_clean_error(run_cmd(kPlot + " " + quoted(ok) + " --smooth 1 --out " + quoted(dir_ + "/x.png")),
                     "--smooth");
  EXPECT_FALSE(fs::exists(dir_ + "/x.png"));  // nothing is drawn when the input is bad
}

TEST(Plot, HelpDescribesEveryOption) {
  RunResult r = run_cmd(kPlot + " --help");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* opt : {"--out", "--labels", "--x", "--smooth", "--title", "--ymax", "--log-x"})
    EXPECT_NE(r.output.find(opt), std::string::npos) << "--help does not mention " << opt;
}

}  // namespace
