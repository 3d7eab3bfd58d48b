// The MPI communicator under `mpirun -np 1..4` (CTest label `mpi`). Every rank runs every test;
// expected values come from the rank numbers, computed here in closed form. With --fail=MODE
// --fail-rank=R the binary instead plays a job where rank R dies (MODE exit: std::exit without
// MPI_Finalize; MODE throw: a mu::Error reaching main, which calls abort_job) while the others
// wait in all_reduce: tests/mpi_early_exit.cmake checks mpirun ends non-zero in bounded time.
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "core/comm.h"

namespace {

mu::Comm* g_comm = nullptr;

mu::Tensor cpu(void* p, mu::DType t, int64_t n) { return mu::Tensor(p, t, mu::Device::CPU, mu::Shape{n}); }

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

TEST(MpiComm, AgreesWithTheLauncher) {
  mu::LaunchEnv env = mu::launch_env();
  EXPECT_STREQ(g_comm->name(), "mpi");
  EXPECT_EQ(env.launcher, mu::Launcher::OpenMPI);
  EXPECT_EQ(g_comm->rank(), env.rank);
  EXPECT_EQ(g_comm->world(), env.world);
  EXPECT_EQ(g_comm->local_rank(), env.local_rank);
}

// Small integers and halves: every partial sum is exact in fp32, so equality is exact.
TEST(MpiComm, AllReduceSumF32) {
  const int r = g_comm->rank(), w = g_comm->world();
  for (int64_t n : {int64_t(1), int64_t(1037), int64_t(3) << 20}) {  // 3M: past the eager limits
    std::vector<float> x(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) x[i] = float((r + 1) * (i % 13)) + 0.5f * r;
    g_comm->all_reduce_sum(cpu(x.data(), mu::DType::F32, n));
    const double ranks_plus_one = w * (w + 1) / 2.0, ranks = w * (w - 1) / 2.0;
    int64_t bad = 0;
    for (int64_t i = 0; i < n; ++i) bad += x[i] != float(ranks_plus_one * (i % 13) + 0.5 * ranks);
    EXPECT_EQ(bad, 0) << "n = " << n;
  }
}

TEST(MpiComm, AllReduceSumHostScalars) {
  const int r = g_comm->rank(), w = g_comm->world();
  double s[3] = {double(r), 1.0, double(r) * r};
  g_comm->all_reduce_sum(s, 3);
  EXPECT_EQ(s[0], w * (w - 1) / 2.0);
  EXPECT_EQ(s[1], double(w));
  EXPECT_EQ(s[2], (w - 1) * w * (2 * w - 1) / 6.0);
}

TEST(MpiComm, ReduceScatterSum) {
  const int r = g_comm->rank(), w = g_comm->world();
  const int64_t n = 257;  // odd, not a power of two
  std::vector<float> in(static_cast<size_t>(w * n)), out(static_cast<size_t>(n), -1.f);
  for (int64_t j = 0; j < w * n; ++j) in[j] = float(r * 1000 + j);
  g_comm->reduce_scatter_sum(cpu(out.data(), mu::DType::F32, n), cpu(in.data(), mu::DType::F32, w * n));
  for (int64_t i = 0; i < n; ++i)
    ASSERT_EQ(out[i], float(1000.0 * w * (w - 1) / 2 + double(w) * (r * n + i))) << "element " << i;
}

// In place: out is this rank's slot of in (NCCL's in-place form), blocking and started.
TEST(MpiComm, ReduceScatterInPlace) {
  const int r = g_comm->rank(), w = g_comm->world();
  const int64_t n = 129;
  std::vector<float> buf(static_cast<size_t>(w * n));
  auto fill = [&] {
    for (int64_t j = 0; j < w * n; ++j) buf[j] = float((r + 1) * (j % 13));
  };
  auto expect_slot = [&](const char* form) {
    for (int64_t i = 0; i < n; ++i)
      ASSERT_EQ(buf[r * n + i], float(w * (w + 1) / 2 * ((r * n + i) % 13))) << form << " element " << i;
  };
  fill();
  g_comm->reduce_scatter_sum(cpu(buf.data() + r * n, mu::DType::F32, n), cpu(buf.data(), mu::DType::F32, w * n));
  expect_slot("blocking");
  fill();
  std::vector<int64_t> counts(w, n);
  g_comm->wait(g_comm->reduce_scatter_sum_v_start(cpu(buf.data() + r * n, mu::DType::F32, n),
                                                  cpu(buf.data(), mu::DType::F32, w * n), counts));
  expect_slot("started");
}

TEST(MpiComm, AllGatherAnyDtypeAndInPlace) {
  const int r = g_comm->rank(), w = g_comm->world();
  const int64_t n = 131;
  std::vector<int32_t> in(n), out(static_cast<size_t>(w * n), -1);
  for (int64_t i = 0; i < n; ++i) in[i] = r * 100000 + int32_t(i);
  g_comm->all_gather(cpu(out.data(), mu::DType::I32, w * n), cpu(in.data(), mu::DType::I32, n));
  for (int q = 0; q < w; ++q)
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(out[q * n + i], q * 100000 + int32_t(i)) << q << " " << i;
  // The ZeRO layout: each rank's input is its own slot of the output.
  std::vector<mu::bf16> all(static_cast<size_t>(w * n), mu::bf16{0xffff});
  for (int64_t i = 0; i < n; ++i) all[r * n + i] = mu::f32_to_bf16(float(r * 7 + i % 5));
  mu::Tensor whole(all.data(), mu::DType::BF16, mu::Device::CPU, mu::Shape{w, n});
  g_comm->all_gather(whole.view(mu::Shape{w * n}), whole[r]);
  for (int q = 0; q < w; ++q)
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(mu::bf16_to_f32(all[q * n + i]), float(q * 7 + i % 5));
}

// The started forms: several collectives in flight at once (as data parallel overlaps one per
// layer with the backward pass), completed in another order than started.
TEST(MpiComm, StartedCollectivesCompleteInAnyOrder) {
  const int r = g_comm->rank(), w = g_comm->world();
  const int64_t n = 333;
  const std::vector<int64_t> counts(static_cast<size_t>(w), n);
  std::vector<std::vector<float>> in(3), out(3);
  std::vector<mu::CommRequest> req;
  for (int k = 0; k < 3; ++k) {
    in[k].resize(static_cast<size_t>(w * n));
    out[k].assign(static_cast<size_t>(n), -1.f);
    for (int64_t j = 0; j < w * n; ++j) in[k][j] = float((k + 1) * (r * 1000 + j));
    req.push_back(g_comm->reduce_scatter_sum_v_start(cpu(out[k].data(), mu::DType::F32, n),
                                                     cpu(in[k].data(), mu::DType::F32, w * n), counts));
  }
  std::vector<int32_t> mine(n), all(static_cast<size_t>(w * n), -1);
  for (int64_t i = 0; i < n; ++i) mine[i] = r * 100000 + int32_t(i);
  mu::CommRequest gather =
      g_comm->all_gather_v_start(cpu(all.data(), mu::DType::I32, w * n), cpu(mine.data(), mu::DType::I32, n), counts);
  g_comm->wait(gather);
  for (int k = 2; k >= 0; --k) g_comm->wait(req[k]);
  for (int k = 0; k < 3; ++k)
    for (int64_t i = 0; i < n; ++i)
      ASSERT_EQ(out[k][i], float((k + 1) * (1000.0 * w * (w - 1) / 2 + double(w) * (r * n + i)))) << k << " " << i;
  for (int q = 0; q < w; ++q)
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(all[q * n + i], q * 100000 + int32_t(i));
  EXPECT_THROW(g_comm->wait(req[0]), mu::Error) << "a request completes once";
}

// Per-rank counts (rank r owns r*37 + 5 elements; rank 1 none), summed and gathered in place.
TEST(MpiComm, VariableCountCollectives) {
  const int r = g_comm->rank(), w = g_comm->world();
  std::vector<int64_t> counts(w), displ(w, 0);
  for (int q = 0; q < w; ++q) counts[q] = q == 1 ? 0 : q * 37 + 5;
  for (int q = 1; q < w; ++q) displ[q] = displ[q - 1] + counts[q - 1];
  const int64_t total = displ[w - 1] + counts[w - 1];
  std::vector<float> in(static_cast<size_t>(total)), out(static_cast<size_t>(std::max<int64_t>(1, counts[r])), -1.f);
  for (int64_t j = 0; j < total; ++j) in[j] = float((r + 1) * (j % 11));
  g_comm->wait(g_comm->reduce_scatter_sum_v_start(cpu(out.data(), mu::DType::F32, counts[r]),
                                                  cpu(in.data(), mu::DType::F32, total), counts));
  for (int64_t i = 0; i < counts[r]; ++i)
    ASSERT_EQ(out[i], float(w * (w + 1) / 2 * ((displ[r] + i) % 11))) << "element " << i;
  std::vector<int32_t> all(static_cast<size_t>(total), -1);
  for (int64_t i = 0; i < counts[r]; ++i) all[displ[r] + i] = r * 1000 + int32_t(i);
  g_comm->wait(g_comm->all_gather_v_start(cpu(all.data(), mu::DType::I32, total),
                                          cpu(all.data() + displ[r], mu::DType::I32, counts[r]), counts));
  for (int q = 0; q < w; ++q)
    for (int64_t i = 0; i < counts[q]; ++i) ASSERT_EQ(all[displ[q] + i], q * 1000 + int32_t(i)) << q << " " << i;
  std::vector<int64_t> wrong(counts);
  wrong.push_back(1);
  EXPECT_THROW(g_comm->reduce_scatter_sum_v_start(cpu(out.data(), mu::DType::F32, counts[r]),
                                                  cpu(in.data(), mu::DType::F32, total), wrong),
               mu::Error);
}

TEST(MpiComm, BroadcastFromEveryRoot) {
  const int r = g_comm->rank(), w = g_comm->world();
  for (int root = 0; root < w; ++root) {
    std::vector<float> x(99);
    for (size_t i = 0; i < x.size(); ++i) x[i] = float(r * 1000 + int(i));
    g_comm->broadcast(cpu(x.data(), mu::DType::F32, 99), root);
    for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(x[i], float(root * 1000 + int(i))) << "root " << root;
  }
}

// Rank 0 enters late; nobody may leave the barrier before it entered. steady_clock is
// CLOCK_MONOTONIC, one clock for all processes of this (single-node) job.
TEST(MpiComm, BarrierWaitsForTheLastRank) {
  double entered = 0;
  if (g_comm->rank() == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    entered = now_s();
  }
  g_comm->barrier();
  double left = now_s();
  g_comm->all_reduce_sum(&entered, 1);  // rank 0's time, the others add 0
  EXPECT_GE(left, entered);
}

TEST(MpiComm, BadCallsFailLocallyWithClearErrors) {
  const int w = g_comm->world();
  std::vector<float> a(8 * w + 1);
  try {
    g_comm->reduce_scatter_sum(cpu(a.data(), mu::DType::F32, 8), cpu(a.data(), mu::DType::F32, 8 * w + 1));
    ADD_FAILURE() << "no error";
  } catch (const mu::Error& e) {
    EXPECT_NE(std::string(e.what()).find("must hold world"), std::string::npos) << e.what();
  }
  try {
    g_comm->all_reduce_sum(cpu(a.data(), mu::DType::BF16, 4));
    ADD_FAILURE() << "no error";
  } catch (const mu::Error& e) {
    EXPECT_NE(std::string(e.what()).find("must be F32"), std::string::npos) << e.what();
  }
  // A part that overlaps the whole but is not this rank's slot is undefined in MPI and NCCL.
  const int r = g_comm->rank();
  std::vector<float> b(8 * w + 1);
  for (int call = 0; call < 4; ++call) {
    // One element past this rank's slot.
    mu::Tensor whole = cpu(b.data(), mu::DType::F32, 8 * w), part = cpu(b.data() + r * 8 + 1, mu::DType::F32, 8);
    std::vector<int64_t> counts(w, 8);
    try {
      if (call == 0) g_comm->reduce_scatter_sum(part, whole);
      if (call == 1) g_comm->all_gather(whole, part);
      if (call == 2) g_comm->wait(g_comm->reduce_scatter_sum_v_start(part, whole, counts));
      if (call == 3) g_comm->wait(g_comm->all_gather_v_start(whole, part, counts));
      ADD_FAILURE() << "no error for call " << call;
    } catch (const mu::Error& e) {
      EXPECT_NE(std::string(e.what()).find("without being this rank's slot"), std::string::npos) << e.what();
    }
  }
  try {
    g_comm->broadcast(cpu(a.data(), mu::DType::F32, 1), w);
    ADD_FAILURE() << "no error";
  } catch (const mu::Error& e) {
    EXPECT_NE(std::string(e.what()).find("outside world"), std::string::npos) << e.what();
  }
}

// MPI's own argument checks come back through MU_MPI_CHECK as a mu::Error naming the rank
// (MpiComm set MPI_ERRORS_RETURN); every rank makes the same bad call, so nobody waits.
TEST(MpiComm, MpiErrorsNameTheRank) {
  char b = 0;
  try {
    MU_MPI_CHECK(MPI_Bcast(&b, 1, MPI_BYTE, g_comm->world() + 5, MPI_COMM_WORLD));
    ADD_FAILURE() << "no error";
  } catch (const mu::Error& e) {
    std::string want = mu::strformat("MPI error on rank %d of %d in MPI_Bcast", g_comm->rank(), g_comm->world());
    EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
  }
}

// The failure drill: rank fail_rank dies after a first collective, the others keep reducing.
[[noreturn]] void drill(const std::string& mode, int fail_rank) {
  std::vector<float> x(1024, 1.f);
  g_comm->barrier();
  if (g_comm->rank() == fail_rank) {
    if (mode == "exit") {
      std::fprintf(stderr, "mpi_comm: rank %d exits early on purpose\n", fail_rank);
      std::exit(3);
    }
    MU_FAIL("rank %d fails on purpose", fail_rank);
  }
  for (;;) g_comm->all_reduce_sum(cpu(x.data(), mu::DType::F32, 1024));
}

// Ranks other than 0 print only their failures, prefixed with the rank.
class FailurePrinter : public testing::EmptyTestEventListener {
 public:
  explicit FailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const testing::TestPartResult& r) override {
    if (r.failed())
      std::fprintf(stderr, "rank %d: %s:%d: failure\n%s\n", rank_, r.file_name() ? r.file_name() : "?",
                   r.line_number(), r.summary());
  }

 private:
  int rank_;
};

}  // namespace

int main(int argc, char** argv) {
  std::string mode;
  int fail_rank = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--fail=", 7) == 0) mode = argv[i] + 7;
    if (std::strncmp(argv[i], "--fail-rank=", 12) == 0) fail_rank = std::atoi(argv[i] + 12);
  }
  std::unique_ptr<mu::Comm> comm;
  try {
    comm = mu::make_comm(mu::Device::CPU, mu::CommBackend::Mpi);
    g_comm = comm.get();
    if (!mode.empty()) drill(mode, fail_rank);
  } catch (const mu::Error& e) {
    // What every multi-rank main does: name the rank, then take the whole job down.
    std::fprintf(stderr, "error on rank %d of %d: %s\n", comm ? comm->rank() : -1, comm ? comm->world() : 0,
                 e.what());
    if (comm) comm->abort_job(1);
    return 1;
  }
  testing::InitGoogleTest(&argc, argv);
  // Only rank 0 prints progress; the others print their failures; the exit code is agreed
  // across ranks.
  if (comm->rank() != 0) {
    auto& listeners = testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new FailurePrinter(comm->rank()));
  }
  int failed = RUN_ALL_TESTS();
  double any = failed ? 1 : 0;
  comm->all_reduce_sum(&any, 1);
  if (failed) std::fprintf(stderr, "mpi_comm: rank %d of %d had failures\n", comm->rank(), comm->world());
  return any > 0 ? 1 : 0;
}
