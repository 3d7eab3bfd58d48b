// mu-train --device cuda as a user runs it: the loss curve tracks the cpu run's, a resumed
// run continues bitwise, and mu-eval --device cuda agrees with --device cpu.
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/comm.h"
#include "core/fileio.h"
#include "tests/gpu_test_util.h"
#include "tests/util_compare.h"
#include "train/shards.h"

using namespace mu;
using namespace mu::test;

namespace {

class GpuTrainCli : public gputest::GpuTest {};

std::string data_file() {
  static std::string path = [] {
    std::string d = make_temp_dir("gpucli");
    write_shard(d + "/syn.bin", synthetic_text_tokens(60000, 21), 256);
    return d + "/syn.bin";
  }();
  return path;
}

std::string cmd(const std::string& device, const std::string& extra) {
  return tool("mu-train") + " --config tiny --data " + data_file() + " --seq-len 64 --batch-size 4 --lr 3e-3 " +
         "--warmup 5 --no-shuffle --log-every 100 --device " + device + " " + extra;
}

std::map<int64_t, double> losses(const std::string& path, std::map<int64_t, std::string>* exact = nullptr) {
  std::map<int64_t, double> m;
  std::istringstream in(read_text_file(path));
  for (std::string l; std::getline(in, l);) {
    auto j = nlohmann::json::parse(l);
    if (!j.contains("loss")) continue;
    m[j["step"].get<int64_t>()] = j["loss"].get<double>();
    if (exact) (*exact)[j["step"].get<int64_t>()] = j["loss"].dump();
  }
  return m;
}

// The same mu-train command (`opts`, logging every step) on cpu and on cuda; the per-step
// losses of each, after checking both ran and the second on cuda.
struct TwoRuns {
  std::map<int64_t, double> cpu, cuda;
};
TwoRuns cpu_and_cuda(const std::string& opts) {
  const std::string c = make_temp_dir("gcpu"), g = make_temp_dir("ggpu");
  RunResult rc = run_cmd(cmd("cpu", opts + " --log " + c + "/m.jsonl"));
  RunResult rg = run_cmd(cmd("cuda", opts + " --log " + g + "/m.jsonl"));
  EXPECT_EQ(rc.exit_code, 0) << rc.output;
  EXPECT_EQ(rg.exit_code, 0) << rg.output;
  EXPECT_NE(rg.output.find("on cuda"), std::string::npos) << rg.output;
  return {losses(c + "/m.jsonl"), losses(g + "/m.jsonl")};
}

TEST_F(GpuTrainCli, CudaRunTracksCpuRun) {
  TwoRuns r = cpu_and_cuda("--steps 40");
  ASSERT_FALSE(HasFailure());
  ASSERT_EQ(r.cuda.size(), 40u);
  // Same fp32 init rounded to bf16, bf16 activations/gradients: ~1e-2 relative noise per
  // step that Adam's normalised updates do not amplify much in 40 steps: within 5%.
  for (auto& [s, v] : r.cpu) EXPECT_NEAR(r.cuda[s], v, 0.05 * v) << "step " << s;
  EXPECT_LT(r.cuda[40], r.cuda[1] - 1.0) << "the cuda run did not learn";
}

// Muon on cuda: fp32 momentum, bf16 Polar Express through cuBLASLt batched by shape, NorMuon,
// Q/K/V per head, with AdamW for the rest; against the fp32 cpu run from the same init.
TEST_F(GpuTrainCli, CudaMuonRunTracksCpuRun) {
  TwoRuns r = cpu_and_cuda("--optimizer muon --normuon --muon-ortho polar_express --muon-split-heads --steps 20");
  ASSERT_FALSE(HasFailure());
  ASSERT_EQ(r.cuda.size(), 20u);
  // The orthogonalized update does not depend on the gradient's scale and moves little with
  // a ~1e-2 relative perturbation of it (bf16 activations and gradients, bf16 Newton-Schulz
  // iterates): the emulator's run stays within 5e-4 of the cpu's; the device's own rounding
  // (fast exp, tensor-core summation order) adds ~1e-3. Within 2% at every step.
  for (auto& [s, v] : r.cpu) EXPECT_NEAR(r.cuda[s], v, 0.02 * v) << "step " << s;
  EXPECT_LT(r.cuda[20], r.cuda[1] - 1.0) << "the cuda Muon run did not learn";
}

TEST_F(GpuTrainCli, CudaResumeIsBitwiseExact) {
  const std::string a = make_temp_dir("gra"), b = make_temp_dir("grb");
  ASSERT_EQ(run_cmd(cmd("cuda", "--steps 12 --out " + a + " --log " + a + "/m.jsonl")).exit_code, 0);
  ASSERT_EQ(run_cmd(cmd("cuda", "--steps 12 --save-every 6 --stop-after 6 --out " + b + " --log " + b + "/m.jsonl"))
                .exit_code,
            0);
  RunResult r = run_cmd(cmd("cuda", "--steps 12 --save-every 6 --resume --out " + b + " --log " + b + "/m.jsonl"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::map<int64_t, std::string> ea, eb;
  losses(a + "/m.jsonl", &ea);
  losses(b + "/m.jsonl", &eb);
  EXPECT_EQ(ea, eb);
}

TEST_F(GpuTrainCli, EvalAgreesAcrossDevices) {
  const std::string d = make_temp_dir("geval");
  ASSERT_EQ(run_cmd(cmd("cpu", "--steps 20 --out " + d)).exit_code, 0);
  auto loss_on = [&](const std::string& dev) {
    RunResult r = run_cmd(tool("mu-eval") + " --model " + d + "/model.safetensors --data " + data_file() +
                          " --batch-size 4 --seq-len 64 --max-batches 8 --device " + dev);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    // The result line ("loss X nats/token | ...") follows the progress line.
    double loss = -1;
    const size_t at = r.output.rfind("loss ");
    const bool found = at != std::string::npos && (at == 0 || r.output[at - 1] == '\n') &&
                       std::sscanf(r.output.c_str() + at, "loss %lf", &loss) == 1;
    EXPECT_TRUE(found) << "mu-eval --device " << dev << " printed no result line: " << r.output;
    return loss;
  };
  const double cpu = loss_on("cpu"), gpu = loss_on("cuda");
  // bf16 weights and activations: the mean loss moves by well under 1%.
  EXPECT_NEAR(gpu, cpu, 0.01 * cpu);
}

// The data-parallel path at world 1 through NCCL (--comm nccl): pack, reduce-scatter,
// all-gather and the sharded optimizers on device buffers. One rank sums nothing, so the
// result must be the plain cuda run's up to the clipping norm's summation order.
TEST_F(GpuTrainCli, NcclPathAtOneRankMatchesThePlainRun) {
  if (!comm_have_nccl()) {  // a build without NCCL refuses --comm nccl, saying how to get it
    RunResult r = run_cmd(cmd("cuda", "--comm nccl --steps 1"));
    EXPECT_NE(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("this build has no NCCL"), std::string::npos) << r.output;
    return;
  }
  for (const char* opt : {"--optimizer adamw", "--optimizer muon --normuon"}) {
    SCOPED_TRACE(opt);
    const std::string a = make_temp_dir("gnccl"), b = make_temp_dir("gnccl");
    RunResult ra = run_cmd(cmd("cuda", std::string(opt) + " --steps 12 --out " + a + " --log " + a + "/m.jsonl"));
    RunResult rb = run_cmd(cmd("cuda", std::string(opt) + " --comm nccl --steps 12 --out " + b + " --log " + b +
                                           "/m.jsonl"));
    ASSERT_EQ(ra.exit_code, 0) << ra.output;
    ASSERT_EQ(rb.exit_code, 0) << rb.output;
    EXPECT_NE(rb.output.find("data parallel over 1 ranks (nccl)"), std::string::npos) << rb.output;
    auto la = losses(a + "/m.jsonl"), lb = losses(b + "/m.jsonl");
    ASSERT_EQ(lb.size(), 12u);
    for (auto& [s, v] : la) EXPECT_NEAR(lb[s], v, 1e-4 * v) << "step " << s;
    const auto wa = weights_of(a + "/model.safetensors"), wb = weights_of(b + "/model.safetensors");
    ASSERT_EQ(wa.size(), wb.size());
    EXPECT_LE(rel_err(as_f64(wb.data(), wb.size()), as_f64(wa.data(), wa.size())), 1e-3);
  }
}

// Two ranks through NCCL (mpirun -n 2, --comm nccl) against one rank with the same global
// batch: gradients reduce-scattered as bf16, ZeRO-1 AdamW and sharded Muon on device
// buffers, weights all-gathered. Needs two GPUs, or the CUDA emulator (its NCCL is MPI).
TEST_F(GpuTrainCli, NcclPathAtTwoRanksTracksOneRank) {
#ifndef MU_MPIEXEC
  GTEST_SKIP() << "built without MPI: mpirun starts the ranks";
#else
  if (!comm_have_nccl()) GTEST_SKIP() << "built without NCCL";
#ifndef MU_CUDA_EMU
  if (cuda_device_count() < 2) GTEST_SKIP() << "needs two GPUs (NCCL refuses two ranks on one)";
#endif
  for (const char* opt : {"--optimizer adamw", "--optimizer muon --normuon"}) {
    SCOPED_TRACE(opt);
    const std::string a = make_temp_dir("gn1"), b = make_temp_dir("gn2");
    const std::string common = tool("mu-train") + " --config tiny --data " + data_file() +
                               " --seq-len 64 --lr 3e-3 --warmup 5 --no-shuffle --log-every 100 --device cuda --steps 12 " +
                               opt;
    RunResult ra = run_cmd(common + " --batch-size 4 --out " + a + " --log " + a + "/m.jsonl");
    RunResult rb = run_cmd("timeout 600 " MU_MPIEXEC " -n 2 " + common + " --comm nccl --batch-size 2 --out " + b +
                           " --log " + b + "/m.jsonl");
    ASSERT_EQ(ra.exit_code, 0) << ra.output;
    ASSERT_EQ(rb.exit_code, 0) << rb.output;
    EXPECT_NE(rb.output.find("data parallel over 2 ranks (nccl)"), std::string::npos) << rb.output;
    auto la = losses(a + "/m.jsonl"), lb = losses(b + "/m.jsonl");
    ASSERT_EQ(lb.size(), 12u);
    // Each rank's bf16 gradient of its 2 rows, summed across ranks and rounded to bf16 again,
    // against one bf16 gradient of 4 rows: ~1e-2 relative per step in the gradients, which
    // the normalised updates keep small in the losses: within 2%.
    for (auto& [s, v] : la) EXPECT_NEAR(lb[s], v, 0.02 * v) << "step " << s;
    const auto wa = weights_of(a + "/model.safetensors"), wb = weights_of(b + "/model.safetensors");
    ASSERT_EQ(wa.size(), wb.size());
    EXPECT_LE(rel_err(as_f64(wb.data(), wb.size()), as_f64(wa.data(), wa.size())), 5e-2);
  }
#endif
}

}  // namespace
