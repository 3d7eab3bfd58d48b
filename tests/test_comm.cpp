// The single-rank communicator, make_comm's choices and refusals, and the TCP rendezvous
// (threads stand in for ranks). The multi-rank collectives are in tests/mpi_comm.cpp.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "core/comm.h"

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const mu::Error& e) {
    return e.what();
  }
  return "";
}

mu::LaunchEnv env_of(mu::Launcher l, int rank, int world) {
  mu::LaunchEnv e;
  e.launcher = l;
  e.rank = rank;
  e.world = world;
  return e;
}

TEST(Comm, SingleIsCopies) {
  auto c = mu::make_comm(mu::Device::CPU, env_of(mu::Launcher::None, 0, 1), mu::CommBackend::Auto);
  EXPECT_STREQ(c->name(), "single");
  EXPECT_EQ(c->rank(), 0);
  EXPECT_EQ(c->world(), 1);
  std::vector<float> in = {1.5f, -2.f, 3.25f}, out(3, -7.f);
  mu::Tensor ti(in.data(), mu::DType::F32, mu::Device::CPU, {3});
  mu::Tensor to(out.data(), mu::DType::F32, mu::Device::CPU, {3});
  c->all_reduce_sum(ti);
  EXPECT_EQ(in, (std::vector<float>{1.5f, -2.f, 3.25f}));
  c->reduce_scatter_sum(to, ti);
  EXPECT_EQ(out, in);
  std::fill(out.begin(), out.end(), -7.f);
  c->all_gather(to, ti);
  EXPECT_EQ(out, in);
  double s[2] = {4, 5};
  c->all_reduce_sum(s, 2);
  EXPECT_EQ(s[0], 4);
  EXPECT_EQ(s[1], 5);
  c->broadcast(ti, 0);
  c->barrier();
  EXPECT_NE(error_of([&] { c->broadcast(ti, 1); }).find("root 1"), std::string::npos);
  mu::Tensor two(out.data(), mu::DType::F32, mu::Device::CPU, {2});
  EXPECT_NE(error_of([&] { c->all_gather(two, ti); }).find("world (1) x in"), std::string::npos);
  // In place is exactly the slot (the whole buffer at world 1); a partial overlap is refused.
  c->reduce_scatter_sum(ti, ti);
  c->all_gather(ti, ti);
  EXPECT_EQ(in, (std::vector<float>{1.5f, -2.f, 3.25f}));
  std::vector<float> wide(4, 0.f);
  mu::Tensor w0(wide.data(), mu::DType::F32, mu::Device::CPU, {3}), w1(wide.data() + 1, mu::DType::F32, mu::Device::CPU, {3});
  EXPECT_NE(error_of([&] { c->reduce_scatter_sum(w1, w0); }).find("without being this rank's slot"), std::string::npos);
  EXPECT_NE(error_of([&] { c->all_gather(w0, w1); }).find("without being this rank's slot"), std::string::npos);
  EXPECT_NE(error_of([&] { c->reduce_scatter_sum_v_start(w1, w0, {3}); }).find("without being this rank's slot"),
            std::string::npos);
  mu::Tensor ints(out.data(), mu::DType::I32, mu::Device::CPU, {3});
  EXPECT_NE(error_of([&] { c->all_reduce_sum(ints); }).find("must be F32 or BF16"), std::string::npos);
}

TEST(Comm, FactoryRefusesWhatCannotWork) {
  using B = mu::CommBackend;
  auto two = env_of(mu::Launcher::Torchrun, 0, 2);
  EXPECT_NE(error_of([&] { mu::make_comm(mu::Device::CPU, two, B::Single); }).find("cannot serve rank 0 of 2"),
            std::string::npos);
  EXPECT_NE(error_of([&] { mu::make_comm(mu::Device::CUDA, two, B::Mpi); }).find("host buffers"), std::string::npos);
  EXPECT_NE(error_of([&] { mu::make_comm(mu::Device::CPU, two, B::Nccl); }).find("CUDA buffers"), std::string::npos);
  // The cpu backend's ranks talk through MPI: torchrun cannot start them.
  std::string err = error_of([&] { mu::make_comm(mu::Device::CPU, two, B::Auto); });
  EXPECT_NE(err.find(mu::comm_have_mpi() ? "mpirun" : "libopenmpi-dev"), std::string::npos) << err;
  // A build without NCCL says so before touching a GPU (with NCCL this would start one).
  if (!mu::comm_have_nccl()) {
    err = error_of([&] { mu::make_comm(mu::Device::CUDA, two, B::Nccl); });
    EXPECT_NE(err.find("this build has no NCCL"), std::string::npos) << err;
  }
}

// A port that was free a moment ago (bind to 0 and let the kernel pick).
int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

TEST(Rendezvous, RankZeroHandsItsBlobToEveryRank) {
  const int world = 4, port = free_port();
  std::vector<uint8_t> blob(128);
  for (size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<uint8_t>(i * 7 + 3);
  std::vector<std::vector<uint8_t>> got(world);
  std::vector<std::string> errs(world);
  std::vector<std::thread> ts;
  // Clients start first: they must retry until rank 0 listens.
  for (int r = world - 1; r >= 0; --r) {
    ts.emplace_back([&, r] {
      errs[r] = error_of([&] {
        got[r] = mu::tcp_rendezvous_broadcast("127.0.0.1", port, r, world, r == 0 ? blob : std::vector<uint8_t>{}, 10);
      });
    });
    if (r == world - 1) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  for (auto& t : ts) t.join();
  for (int r = 0; r < world; ++r) {
    EXPECT_EQ(errs[r], "") << "rank " << r;
    EXPECT_EQ(got[r], blob) << "rank " << r;
  }
}

TEST(Rendezvous, MissingRankZeroTimesOutWithAClearError) {
  auto t0 = std::chrono::steady_clock::now();
  std::string err = error_of([&] { mu::tcp_rendezvous_broadcast("127.0.0.1", free_port(), 1, 2, {}, 0.5); });
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(err.find("rank 1 of 2 could not reach rank 0 at 127.0.0.1"), std::string::npos) << err;
  EXPECT_LT(s, 5.0);  // 0.5 s timeout plus one 100 ms retry sleep; 5 s leaves room for a loaded machine
}

TEST(Rendezvous, MissingRankTimesOutOnRankZero) {
  auto t0 = std::chrono::steady_clock::now();
  std::string err = error_of([&] { mu::tcp_rendezvous_broadcast("", free_port(), 0, 3, {1, 2, 3}, 0.5); });
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(err.find("only 1 of 3 ranks connected"), std::string::npos) << err;
  EXPECT_LT(s, 5.0);  // same bound as above
}

TEST(Rendezvous, BadArgumentsAreRefused) {
  EXPECT_NE(error_of([] { mu::tcp_rendezvous_broadcast("h", 0, 0, 2, {}, 1); }).find("port 0"), std::string::npos);
  EXPECT_NE(error_of([] { mu::tcp_rendezvous_broadcast("h", 80, 2, 2, {}, 1); }).find("rank 2 outside world 2"),
            std::string::npos);
  EXPECT_NE(error_of([] { mu::tcp_rendezvous_broadcast("", 80, 1, 2, {}, 1); }).find("needs MASTER_ADDR"),
            std::string::npos);
}

}  // namespace
