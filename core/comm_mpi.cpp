// MpiComm: host buffers over MPI_COMM_WORLD, so the cpu backend runs several ranks under
// `mpirun` on any machine. Built only where CMake found MPI (core/CMakeLists.txt).
// Errors: MPI_COMM_WORLD gets MPI_ERRORS_RETURN, so a failing call returns its code to
// MU_MPI_CHECK, which throws mu::Error naming the call and the rank; main() then calls
// abort_job() (MPI_Abort) so the other ranks are not left waiting in a collective.
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>

#include "core/comm.h"

static_assert(MPI_SUCCESS == 0, "MU_MPI_CHECK treats 0 as success");

namespace mu {

void mpi_fail(const char* stmt, int code, const char* file, int line) {
  char text[MPI_MAX_ERROR_STRING] = {0};
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) std::snprintf(text, sizeof(text), "error code %d", code);
  int rank = -1, world = 0, init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  if (init && !fin) {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
  }
  fail_at(file, line, strformat("MPI error on rank %d of %d in %s: %s", rank, world, stmt, text));
}

namespace {

// MPI counts are int: large tensors go in chunks of this many elements.
constexpr int64_t kChunk = int64_t(1) << 30;

int checked_count(const char* op, int64_t n) {
  MU_CHECK(n <= INT_MAX, "mpi communicator %s: %lld elements exceed MPI's int count", op,
           static_cast<long long>(n));
  return static_cast<int>(n);
}

class MpiComm final : public Comm {
 public:
  explicit MpiComm(const LaunchEnv& env) : local_rank_(env.local_rank) {
    int init = 0;
    MU_MPI_CHECK(MPI_Initialized(&init));
    if (!init) {
      int provided = 0;
      // FUNNELED: only the main thread calls MPI; OpenMP threads compute between calls.
      MU_MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided));
      owns_init_ = true;
    }
    MU_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    MU_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
    MU_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &world_));
    // A mismatch means the environment lies about the job, e.g. a program started straight
    // from an sbatch script with --ntasks=4 instead of through srun.
    if (env.launcher != Launcher::None) {
      MU_CHECK(rank_ == env.rank && world_ == env.world,
               "MPI sees rank %d of %d but the launch environment says %s: start the program through "
               "mpirun or srun", rank_, world_, env.describe().c_str());
    }
  }
  ~MpiComm() override {
    int fin = 0;
    MPI_Finalized(&fin);
    if (owns_init_ && !fin) MPI_Finalize();
  }

  const char* name() const override { return "mpi"; }
  int rank() const override { return rank_; }
  int world() const override { return world_; }
  int local_rank() const override { return local_rank_; }

  void all_reduce_sum(Tensor x) override {
    comm_check_device("mpi", "all_reduce_sum", x, Device::CPU);
    MU_CHECK(x.dtype == DType::F32,
             "mpi communicator all_reduce_sum: %s must be F32 (MPI has no bf16 sum; the cpu backend is fp32)",
             x.str().c_str());
    float* p = x.f32();
    for (int64_t off = 0; off < x.numel(); off += kChunk) {
      int n = static_cast<int>(std::min(kChunk, x.numel() - off));
      MU_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, p + off, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
    }
  }
  void all_reduce_sum(double* x, int64_t n) override {
    MU_CHECK(n >= 0, "mpi communicator all_reduce_sum: negative count %lld", static_cast<long long>(n));
    if (n == 0) return;
    MU_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, x, checked_count("all_reduce_sum", n), MPI_DOUBLE, MPI_SUM,
                               MPI_COMM_WORLD));
  }
  void reduce_scatter_sum(Tensor out, Tensor in) override {
    comm_check_device("mpi", "reduce_scatter_sum", in, Device::CPU);
    comm_check_reduce_scatter("mpi", world_, rank_, out, in);
    MU_CHECK(in.dtype == DType::F32, "mpi communicator reduce_scatter_sum: %s must be F32", in.str().c_str());
    int n = checked_count("reduce_scatter_sum", out.numel());
    if (n == 0) return;
    if (out.data == static_cast<char*>(in.data) + static_cast<size_t>(rank_) * out.nbytes()) {
      // In place (out is this rank's slot of in): MPI's in-place form leaves the result at the
      // start of the buffer, so it moves to the slot afterwards.
      MU_MPI_CHECK(MPI_Reduce_scatter_block(MPI_IN_PLACE, in.f32(), n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
      std::memmove(out.data, in.data, out.nbytes());
      return;
    }
    MU_MPI_CHECK(MPI_Reduce_scatter_block(in.f32(), out.f32(), n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
  }
  void all_gather(Tensor out, Tensor in) override {
    comm_check_device("mpi", "all_gather", in, Device::CPU);
    comm_check_all_gather("mpi", world_, rank_, out, in);
    int bytes = checked_count("all_gather (bytes)", static_cast<int64_t>(in.nbytes()));
    if (bytes == 0) return;
    // In place when `in` is this rank's own slot of `out` (the ZeRO layout).
    char* own = static_cast<char*>(out.data) + static_cast<size_t>(rank_) * in.nbytes();
    const void* send = in.data == own ? MPI_IN_PLACE : in.data;
    MU_MPI_CHECK(MPI_Allgather(send, bytes, MPI_BYTE, out.data, bytes, MPI_BYTE, MPI_COMM_WORLD));
  }
  void broadcast(Tensor x, int root) override {
    comm_check_device("mpi", "broadcast", x, Device::CPU);
    MU_CHECK(root >= 0 && root < world_, "mpi communicator broadcast: root %d outside world %d", root, world_);
    char* p = static_cast<char*>(x.data);
    int64_t total = static_cast<int64_t>(x.nbytes());
    for (int64_t off = 0; off < total; off += kChunk) {
      int n = static_cast<int>(std::min(kChunk, total - off));
      MU_MPI_CHECK(MPI_Bcast(p + off, n, MPI_BYTE, root, MPI_COMM_WORLD));
    }
  }
  void barrier() override { MU_MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD)); }

  CommRequest reduce_scatter_sum_v_start(Tensor out, Tensor in, const std::vector<int64_t>& counts) override {
    comm_check_device("mpi", "reduce_scatter_sum_v_start", in, Device::CPU);
    const std::vector<int64_t> displ = comm_check_v("mpi", "reduce_scatter_sum_v_start", world_, rank_, in, out, counts);
    MU_CHECK(in.dtype == DType::F32, "mpi communicator reduce_scatter_sum_v_start: %s must be F32", in.str().c_str());
    std::vector<int>& c = int_counts(counts, 1, "reduce_scatter_sum_v_start");
    MPI_Request req;
    // In place when out is this rank's slot, even an empty one: MPI wants every rank or none
    // to pass MPI_IN_PLACE, and callers of the in-place form pass each rank its slot.
    const char* slot = static_cast<char*>(in.data) + displ[rank_] * dtype_size(in.dtype);
    if (out.data == slot) {  // as reduce_scatter_sum, the move waits for completion
      MU_MPI_CHECK(MPI_Ireduce_scatter(MPI_IN_PLACE, in.f32(), c.data(), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req));
      moves_[next_id_] = {out.data, in.data, out.nbytes()};
      return remember(req);
    }
    MU_MPI_CHECK(MPI_Ireduce_scatter(in.f32(), out.f32(), c.data(), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req));
    return remember(req);
  }
  CommRequest all_gather_v_start(Tensor out, Tensor in, const std::vector<int64_t>& counts) override {
    comm_check_device("mpi", "all_gather_v_start", in, Device::CPU);
    const std::vector<int64_t> displ = comm_check_v("mpi", "all_gather_v_start", world_, rank_, out, in, counts);
    const int64_t esize = static_cast<int64_t>(dtype_size(in.dtype));
    std::vector<int>& c = int_counts(counts, esize, "all_gather_v_start (bytes)");
    std::vector<int>& d = int_counts(displ, esize, "all_gather_v_start (offsets)");
    const char* own = static_cast<char*>(out.data) + displ[rank_] * esize;
    const void* send = in.data == own ? MPI_IN_PLACE : in.data;
    MPI_Request req;
    MU_MPI_CHECK(MPI_Iallgatherv(send, c[rank_], MPI_BYTE, out.data, c.data(), d.data(), MPI_BYTE, MPI_COMM_WORLD,
                                 &req));
    return remember(req);
  }
  void wait(CommRequest r) override {
    if (r.id < 0) return;
    auto it = pending_.find(r.id);
    MU_CHECK(it != pending_.end(), "mpi communicator wait: request %lld is not pending (waited twice?)",
             static_cast<long long>(r.id));
    MPI_Request req = it->second;
    pending_.erase(it);
    MU_MPI_CHECK(MPI_Wait(&req, MPI_STATUS_IGNORE));
    int_arrays_.erase(r.id);
    auto m = moves_.find(r.id);
    if (m != moves_.end()) {
      std::memmove(m->second.dst, m->second.src, m->second.bytes);
      moves_.erase(m);
    }
  }
  void abort_job(int code) override {
    std::fflush(stdout);
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
  }

 private:
  CommRequest remember(MPI_Request req) {
    pending_[next_id_] = req;
    // The count arrays must outlive the request (MPI reads them until it completes).
    int_arrays_[next_id_] = std::move(staged_);
    staged_.clear();
    return CommRequest{next_id_++};
  }
  // v * scale as MPI ints, kept with the next request.
  std::vector<int>& int_counts(const std::vector<int64_t>& v, int64_t scale, const char* op) {
    std::vector<int> out;
    for (int64_t x : v) out.push_back(checked_count(op, x * scale));
    staged_.push_back(std::move(out));
    return staged_.back();
  }

  struct Move {  // an in-place reduce-scatter's result, moved to the slot once complete
    void* dst;
    const void* src;
    size_t bytes;
  };

  int rank_ = 0, world_ = 1, local_rank_ = 0;
  bool owns_init_ = false;
  std::map<int64_t, Move> moves_;
  std::map<int64_t, MPI_Request> pending_;
  std::map<int64_t, std::deque<std::vector<int>>> int_arrays_;
  std::deque<std::vector<int>> staged_;  // deque: references to earlier entries stay valid
  int64_t next_id_ = 0;
};

}  // namespace

std::unique_ptr<Comm> make_mpi_comm(const LaunchEnv& env) { return std::make_unique<MpiComm>(env); }

}  // namespace mu
