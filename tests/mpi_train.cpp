// mu-train under `mpirun -n 1..4` (CTest label `mpi`): data parallel on the cpu backend gives
// the losses and final weights of one process with the same global batch, for AdamW (ZeRO-1)
// and for Muon with each orthogonalizer (matrices sharded by rank); a resume with the same
// world size continues bitwise; a different world size is refused; a rank that dies or fails
// ends the job in bounded time with a message naming it.
//
// Tolerance: N ranks sum N partial gradients (each a GEMM over B*T rows) where one process
// sums all W*B*T rows in one GEMM, so gradients differ by fp32 reassociation (~1e-7 relative).
// Adam's division by sqrt(v) and Newton-Schulz's polynomial pass that on without large
// growth over 6 steps: measured <= 1.7e-6 relative L2 on the weights (AdamW, NS5, Polar
// Express + NorMuon at 2..4 ranks; exactly 0 at one rank through the sharded path), losses
// within ~1e-8. Asserted: weights 5e-5 relative L2, losses and gradient norms 2e-6 relative.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/fileio.h"
#include "core/safetensors.h"
#include "model/config.h"
#include "tests/util_compare.h"
#include "train/shards.h"

using namespace mu;
using namespace mu::test;

namespace {

constexpr int kGlobalRows = 12;  // divisible by 1, 2, 3 and 4 ranks

const std::string& data_file() {
  static std::string path = [] {
    const std::string d = make_temp_dir("mpitrain");
    write_shard(d + "/syn_000000.bin", synthetic_text_tokens(40000, 7), 256);
    return d + "/syn_000000.bin";
  }();
  return path;
}

std::string train(const std::string& extra) {
  return tool("mu-train") + " --config tiny --data " + data_file() +
         " --seq-len 16 --lr 1e-2 --warmup 2 --log-every 100 " + extra;
}

// Bounded: a hang fails the test instead of stalling CI.
RunResult mpirun(int np, const std::string& cmd) {
  return run_cmd("timeout 120 " MU_MPIEXEC " -n " + std::to_string(np) + " " + cmd);  // MU_MPIEXEC: env ... mpiexec
}

struct Record {
  double loss = 0, grad_norm = 0;
  std::string exact;  // the line's loss as written, for bitwise comparisons
};
std::map<int64_t, Record> metrics(const std::string& path) {
  std::map<int64_t, Record> m;
  std::istringstream in(read_text_file(path));
  for (std::string l; std::getline(in, l);) {
    auto j = nlohmann::json::parse(l);
    if (!j.contains("loss")) continue;
    m[j["step"].get<int64_t>()] = {j["loss"].get<double>(), j["grad_norm"].get<double>(), j["loss"].dump()};
  }
  return m;
}

double rel(double a, double b) { return std::fabs(a - b) / std::max(std::fabs(b), 1e-30); }

struct Case {
  const char* name;
  const char* options;
};

class DataParallel : public ::testing::TestWithParam<Case> {};

TEST_P(DataParallel, RanksReproduceOneProcessWithTheGlobalBatch) {
  const Case& c = GetParam();
  const std::string opts = std::string(c.options) + " --steps 6 ";
  const std::string ref = make_temp_dir("dpref");
  RunResult r1 = run_cmd(train(opts + "--batch-size " + std::to_string(kGlobalRows) + " --out " + ref + " --log " +
                               ref + "/m.jsonl"));
  ASSERT_EQ(r1.exit_code, 0) << r1.output;
  const auto want = metrics(ref + "/m.jsonl");
  const std::vector<float> want_w = weights_of(ref + "/model.safetensors");
  ASSERT_EQ(want.size(), 6u);
  for (int np : {1, 2, 3, 4}) {
    SCOPED_TRACE("ranks " + std::to_string(np));
    const std::string d = make_temp_dir("dp");
    // One rank through the data-parallel path too (--comm mpi): the sharding code at world 1.
    RunResult r = mpirun(np, train(opts + "--comm mpi --batch-size " + std::to_string(kGlobalRows / np) +
                                   " --out " + d + " --log " + d + "/m.jsonl"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("data parallel over " + std::to_string(np) + " ranks (mpi)"), std::string::npos)
        << r.output;
    EXPECT_NE(r.output.find("in 3 buckets (one per layer"), std::string::npos) << r.output;  // tiny: 2 layers
    const auto got = metrics(d + "/m.jsonl");
    ASSERT_EQ(got.size(), want.size());
    for (const auto& [step, w] : want) {
      EXPECT_LE(rel(got.at(step).loss, w.loss), 2e-6) << "step " << step;
      EXPECT_LE(rel(got.at(step).grad_norm, w.grad_norm), 2e-6) << "step " << step;
    }
    const std::vector<float> got_w = weights_of(d + "/model.safetensors");
    ASSERT_EQ(got_w.size(), want_w.size());
    const double e = rel_err(as_f64(got_w.data(), got_w.size()), as_f64(want_w.data(), want_w.size()));
    EXPECT_LE(e, 5e-5);
    std::printf("[ %s, %d ranks ] weights rel L2 %.2e vs one process\n", c.name, np, e);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Optimizers, DataParallel,
    ::testing::Values(Case{"adamw", "--optimizer adamw --no-shuffle --grad-accum 2"},
                      Case{"muon_ns5", "--optimizer muon --muon-ortho ns5 --log-every-muon 3"},
                      Case{"muon_polar_express", "--optimizer muon --muon-ortho polar_express --normuon "
                                                 "--muon-split-heads --muon-wd-kind cautious"}),
    [](const ::testing::TestParamInfo<Case>& i) { return std::string(i.param.name); });

// Muon's per-group diagnostics are sums over the ranks' matrices: the same numbers as one process.
TEST(DataParallelMuon, DiagnosticsAreSummedOverRanks) {
  const std::string a = make_temp_dir("diag1"), b = make_temp_dir("diag3");
  const std::string o = "--optimizer muon --steps 2 --log-every-muon 1 ";
  RunResult r1 = run_cmd(train(o + "--batch-size 12 --log " + a + "/m.jsonl"));
  RunResult r3 = mpirun(3, train(o + "--batch-size 4 --log " + b + "/m.jsonl"));
  ASSERT_EQ(r1.exit_code, 0) << r1.output;
  ASSERT_EQ(r3.exit_code, 0) << r3.output;
  auto last = [](const std::string& p) {
    std::istringstream in(read_text_file(p));
    std::string l, prev;
    while (std::getline(in, l)) prev = l;
    return nlohmann::json::parse(prev);
  };
  const auto j1 = last(a + "/m.jsonl"), j3 = last(b + "/m.jsonl");
  int seen = 0;
  for (auto& [k, v] : j1.items()) {
    if (k.rfind("muon.", 0) != 0) continue;
    ASSERT_TRUE(j3.contains(k)) << k;
    // step 2 runs on weights that differ by fp32 reassociation (~1e-6, see the header), which
    // Newton-Schulz carries into the update RMS and orthogonality error: 1e-4
    EXPECT_LE(rel(j3[k].get<double>(), v.get<double>()), 1e-4) << k;
    seen++;
  }
  EXPECT_EQ(seen, 1 + 7 * 3);  // muon.lr, then lr_eff, update_rms, ortho_err for q k v o gate up down
}

// --stop-after then --resume with the same world size: bitwise the straight run.
TEST(DataParallelResume, SameWorldSizeIsBitwiseExact) {
  for (const char* opt : {"--optimizer adamw", "--optimizer muon --normuon"}) {
    SCOPED_TRACE(opt);
    const std::string a = make_temp_dir("dpres"), b = make_temp_dir("dpres");
    const std::string o = std::string(opt) + " --steps 8 --batch-size 3 --save-every 100 ";
    RunResult ra = mpirun(2, train(o + "--out " + a + " --log " + a + "/m.jsonl"));
    ASSERT_EQ(ra.exit_code, 0) << ra.output;
    RunResult rb1 = mpirun(2, train(o + "--stop-after 5 --out " + b + " --log " + b + "/m.jsonl"));
    ASSERT_EQ(rb1.exit_code, 0) << rb1.output;
    ASSERT_TRUE(file_exists(b + "/ckpt_00000005/state.rank00001.safetensors")) << "rank 1's optimizer state";
    {  // the state is divided, not copied: every optimizer-state element lives in exactly one rank's file
      SafetensorsFile s0(b + "/ckpt_00000005/state.safetensors"), s1(b + "/ckpt_00000005/state.rank00001.safetensors");
      int64_t n0 = 0, n1 = 0;
      for (const auto& t : s0.tensors())
        if (t.name.rfind("adamw.", 0) == 0 || t.name.rfind("muon.", 0) == 0) n0 += t.shape.numel();
      for (const auto& t : s1.tensors())
        if (t.name.rfind("adamw.", 0) == 0 || t.name.rfind("muon.", 0) == 0) n1 += t.shape.numel();
      const int64_t params = load_config("tiny").num_params();  // checked by hand in test_config.cpp
      const int64_t per_param = std::string(opt).find("muon") != std::string::npos ? 1 : 2;  // momentum | m, v
      if (per_param == 2) EXPECT_EQ(n0 + n1, 2 * params);
      else EXPECT_GT(n0 + n1, params);  // momentum + AdamW's m, v for its part + NorMuon vectors
      EXPECT_LT(std::max(n0, n1), (n0 + n1) * 3 / 5) << n0 << " vs " << n1;
    }
    RunResult rb2 = mpirun(2, train(o + "--resume --out " + b + " --log " + b + "/m.jsonl"));
    ASSERT_EQ(rb2.exit_code, 0) << rb2.output;
    EXPECT_NE(rb2.output.find("resumed from"), std::string::npos) << rb2.output;
    std::map<int64_t, std::string> la, lb;
    for (auto& [s, r] : metrics(a + "/m.jsonl")) la[s] = r.exact;
    for (auto& [s, r] : metrics(b + "/m.jsonl")) lb[s] = r.exact;
    EXPECT_EQ(la.size(), 8u);
    EXPECT_EQ(la, lb);
    EXPECT_EQ(weights_of(a + "/model.safetensors"), weights_of(b + "/model.safetensors"));

    // Each rank's state holds its own shard: another world size cannot continue it.
    RunResult bad = mpirun(3, train(o + "--steps 10 --resume --out " + b));
    EXPECT_NE(bad.exit_code, 0) << bad.output;
    EXPECT_NE(bad.output.find("option world is 3 now but 2 in the checkpoint"), std::string::npos) << bad.output;
    RunResult one = run_cmd(train(o + "--steps 10 --resume --out " + b));  // the world size named first
    EXPECT_NE(one.exit_code, 0) << one.output;
    EXPECT_NE(one.output.find("option world is 1 now but 2 in the checkpoint"), std::string::npos) << one.output;
  }
}

// A rank that fails (an exception, as from a full disk) or dies (exit without MPI_Finalize)
// while the others wait in a collective: the job ends non-zero, well inside the bound.
TEST(DataParallelFailure, DeadRankEndsTheJob) {
  for (const char* mode : {"throw", "exit"}) {
    SCOPED_TRACE(mode);
    const auto t0 = std::chrono::steady_clock::now();
    RunResult r = mpirun(3, "env MU_TEST_RANK_FAIL=1:3:" + std::string(mode) + " " +
                                train("--steps 50 --batch-size 2"));
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_NE(r.exit_code, 0) << r.output;
    EXPECT_NE(r.exit_code, 124) << "timed out: the job hung\n" << r.output;
    EXPECT_LT(s, 60.0) << r.output;
    if (std::string(mode) == "throw")
      EXPECT_NE(r.output.find("error on rank 1 of 3: MU_TEST_RANK_FAIL: rank 1 fails at step 3"), std::string::npos)
          << r.output;
    else
      EXPECT_NE(r.output.find("rank 1 leaves at step 3"), std::string::npos) << r.output;
  }
}

// A rank launched with other options than the rest is refused on every rank, naming the
// option: before, other --steps hung in a collective and other --lr trained silently.
TEST(DataParallelFailure, RanksWithDifferentOptionsAreRefused) {
  const std::string d = make_temp_dir("ranks");
  const std::string script = d + "/per_rank.sh";
  {
    std::ofstream f(script);
    f << "#!/bin/sh\nr=${OMPI_COMM_WORLD_RANK:-${PMI_RANK:-0}}\nexec \"$@\" --lr $((r + 1))e-2\n";
  }
  RunResult r = mpirun(2, "sh " + script + " " + tool("mu-train") + " --config tiny --data " + data_file() +
                              " --seq-len 16 --warmup 2 --steps 3 --batch-size 2 --comm mpi");
  EXPECT_EQ(r.exit_code == 0 || r.exit_code == 124, false) << r.output;
  for (const char* want : {"--lr is '0.01' on rank 0 but not on every rank", "--lr is '0.02' on rank 1"})
    EXPECT_NE(r.output.find(want), std::string::npos) << want << "\n" << r.output;
  EXPECT_EQ(r.output.find("| loss"), std::string::npos) << "trained before refusing\n" << r.output;
}

// Bad launches are refused with a message, not a hang.
TEST(DataParallelFailure, ForcedCommunicatorsNeedTheirLauncher) {
  RunResult r = run_cmd(train("--steps 1 --batch-size 2 --comm nccl --device cpu"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("NCCL communicator works on CUDA buffers"), std::string::npos) << r.output;
  RunResult bad = run_cmd(train("--steps 1 --batch-size 2 --comm gloo"));
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
  EXPECT_NE(bad.output.find("--comm must be auto, single, mpi or nccl"), std::string::npos) << bad.output;
}

}  // namespace
