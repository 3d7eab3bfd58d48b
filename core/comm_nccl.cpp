// NcclComm: device buffers through NCCL, the production path on GPUs.
// NOT YET RUN ON A GPU: written on machines without one. Under the CUDA emulator (whose NCCL
// is MPI, kernels/cuda/emu/emu_nccl.cpp) the training path through it runs at one and two
// ranks (tests/gpu_train_cli.cpp); streams and events are not exercised there.
// The local rank picks the GPU. The ncclUniqueId comes from rank 0 through MPI under mpirun
// (host_comm), otherwise through the TCP rendezvous on MASTER_ADDR and port MASTER_PORT + 1:
// torchrun's agent already listens on MASTER_PORT for its own store. MU_RENDEZVOUS_PORT
// overrides the port, MU_RENDEZVOUS_TIMEOUT (seconds, default 300) the wait.
#include <cuda_runtime.h>
#include <nccl.h>

#include <cstdlib>
#include <map>
#include <cstring>

#include "core/comm.h"
#include "core/cuda_check.h"

namespace mu {
namespace {

ncclDataType_t nccl_type(DType t, const char* op, const Tensor& x) {
  switch (t) {
    case DType::F32: return ncclFloat32;
    case DType::BF16: return ncclBfloat16;
    default: MU_FAIL("nccl communicator %s: %s must be F32 or BF16", op, x.str().c_str());
  }
}

double env_seconds(const char* name, double fallback) {
  const char* v = std::getenv(name);
  if (!v) return fallback;
  char* end = nullptr;
  double s = std::strtod(v, &end);
  MU_CHECK(*end == '\0' && s > 0, "%s=\"%s\" must be a positive number of seconds", name, v);
  return s;
}

ncclUniqueId share_unique_id(const LaunchEnv& env, Comm* host_comm) {
  ncclUniqueId id;
  std::memset(&id, 0, sizeof(id));
  if (env.rank == 0) MU_NCCL_CHECK(ncclGetUniqueId(&id));
  if (env.world == 1) return id;
  if (host_comm) {
    host_comm->broadcast(Tensor(&id, DType::U8, Device::CPU, Shape{int64_t(sizeof(id))}), 0);
    return id;
  }
  MU_CHECK(!env.master_addr.empty() && env.master_port > 0,
           "%s: NCCL needs the unique id from rank 0; launch with mpirun, or set MASTER_ADDR and "
           "MASTER_PORT (torchrun and the Slurm recipe in the README do)", env.describe().c_str());
  int port = env.master_port + 1;
  if (const char* p = std::getenv("MU_RENDEZVOUS_PORT")) port = std::atoi(p);
  std::vector<uint8_t> mine(reinterpret_cast<uint8_t*>(&id), reinterpret_cast<uint8_t*>(&id) + sizeof(id));
  std::vector<uint8_t> got = tcp_rendezvous_broadcast(env.master_addr, port, env.rank, env.world, mine,
                                                      env_seconds("MU_RENDEZVOUS_TIMEOUT", 300));
  MU_CHECK(got.size() == sizeof(id), "rendezvous: got %zu bytes, an ncclUniqueId has %zu", got.size(), sizeof(id));
  std::memcpy(&id, got.data(), sizeof(id));
  return id;
}

class NcclComm final : public Comm {
 public:
  NcclComm(const LaunchEnv& env, std::unique_ptr<Comm> host_comm)
      : rank_(env.rank), world_(env.world), local_rank_(env.local_rank), host_(std::move(host_comm)) {
    int n = cuda_device_count();
    MU_CHECK(n > 0, "%s: the NCCL communicator needs a CUDA device and none is visible", env.describe().c_str());
    // One visible GPU: the launcher bound one per task (srun --gpus-per-task=1, or
    // CUDA_VISIBLE_DEVICES per rank), so it is this rank's whatever its local rank.
    MU_CHECK(n == 1 || local_rank_ < n,
             "%s: local rank %d has no GPU of its own (%d visible); start at most %d ranks per node",
             env.describe().c_str(), local_rank_, n, n);
    MU_CUDA_CHECK(cudaSetDevice(n == 1 ? 0 : local_rank_));
    ncclUniqueId id = share_unique_id(env, host_.get());
    MU_NCCL_CHECK(ncclCommInitRank(&comm_, world_, id, rank_));
    // One non-blocking stream for every collective, so they run in the order issued (NCCL
    // needs the same order on every rank, and two streams could interleave them). Each
    // collective first waits, through an event, for the work queued so far on the legacy
    // default stream where the engine's kernels run (so gradients are complete before they
    // are reduced); being non-blocking, the stream does not make later compute wait for a
    // started collective (the overlap), until wait() says so.
    MU_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  ~NcclComm() override {
    // The communicator first (NCCL's order): it may still use the device, and cudaFree
    // synchronizes the device.
    if (comm_) ncclCommDestroy(comm_);
    if (scratch_) cudaFree(scratch_);
    if (stream_) cudaStreamDestroy(stream_);
    for (auto& [id, ev] : pending_) cudaEventDestroy(ev);
  }
  const char* name() const override { return "nccl"; }
  int rank() const override { return rank_; }
  int world() const override { return world_; }
  int local_rank() const override { return local_rank_; }

  void all_reduce_sum(Tensor x) override {
    comm_check_device("nccl", "all_reduce_sum", x, Device::CUDA);
    ncclDataType_t t = nccl_type(x.dtype, "all_reduce_sum", x);
    after_queued_compute();
    MU_NCCL_CHECK(ncclAllReduce(x.data, x.data, static_cast<size_t>(x.numel()), t, ncclSum, comm_, stream_));
    sync();
  }
  void all_reduce_sum(double* x, int64_t n) override {
    MU_CHECK(n >= 0, "nccl communicator all_reduce_sum: negative count %lld", static_cast<long long>(n));
    if (n == 0) return;
    size_t bytes = static_cast<size_t>(n) * sizeof(double);
    if (bytes > scratch_bytes_) {
      if (scratch_) MU_CUDA_CHECK(cudaFree(scratch_));
      scratch_ = nullptr;
      MU_CUDA_CHECK(cudaMalloc(&scratch_, bytes));
      scratch_bytes_ = bytes;
    }
    after_queued_compute();
    MU_CUDA_CHECK(cudaMemcpyAsync(scratch_, x, bytes, cudaMemcpyHostToDevice, stream_));
    MU_NCCL_CHECK(ncclAllReduce(scratch_, scratch_, static_cast<size_t>(n), ncclFloat64, ncclSum, comm_, stream_));
    MU_CUDA_CHECK(cudaMemcpyAsync(x, scratch_, bytes, cudaMemcpyDeviceToHost, stream_));
    sync();
  }
  void reduce_scatter_sum(Tensor out, Tensor in) override {
    comm_check_device("nccl", "reduce_scatter_sum", in, Device::CUDA);
    comm_check_reduce_scatter("nccl", world_, rank_, out, in);
    ncclDataType_t t = nccl_type(in.dtype, "reduce_scatter_sum", in);
    after_queued_compute();
    MU_NCCL_CHECK(ncclReduceScatter(in.data, out.data, static_cast<size_t>(out.numel()), t, ncclSum, comm_, stream_));
    sync();
  }
  void all_gather(Tensor out, Tensor in) override {
    comm_check_device("nccl", "all_gather", in, Device::CUDA);
    comm_check_all_gather("nccl", world_, rank_, out, in);
    // Bytes: any dtype gathers the same way.
    after_queued_compute();
    MU_NCCL_CHECK(ncclAllGather(in.data, out.data, in.nbytes(), ncclUint8, comm_, stream_));
    sync();
  }
  void broadcast(Tensor x, int root) override {
    comm_check_device("nccl", "broadcast", x, Device::CUDA);
    MU_CHECK(root >= 0 && root < world_, "nccl communicator broadcast: root %d outside world %d", root, world_);
    after_queued_compute();
    MU_NCCL_CHECK(ncclBroadcast(x.data, x.data, x.nbytes(), ncclUint8, root, comm_, stream_));
    sync();
  }
  void barrier() override {
    double one = 1;
    all_reduce_sum(&one, 1);
  }
  // NCCL has no variable-count reduce-scatter or all-gather: a group of reduces (root r gets
  // its part) and a group of broadcasts (root r sends its part), each rank's part once; the
  // group runs them together. Zero counts are skipped (the same on every rank).
  CommRequest reduce_scatter_sum_v_start(Tensor out, Tensor in, const std::vector<int64_t>& counts) override {
    comm_check_device("nccl", "reduce_scatter_sum_v_start", in, Device::CUDA);
    const std::vector<int64_t> displ = comm_check_v("nccl", "reduce_scatter_sum_v_start", world_, rank_, in, out, counts);
    ncclDataType_t t = nccl_type(in.dtype, "reduce_scatter_sum_v_start", in);
    const size_t es = dtype_size(in.dtype);
    after_queued_compute();
    Group group;
    for (int r = 0; r < world_; r++) {
      if (counts[r] == 0) continue;
      const char* send = static_cast<const char*>(in.data) + static_cast<size_t>(displ[r]) * es;
      // Only the root's receive buffer is written; elsewhere the send part stands in (the
      // in-place form), never read again by the caller.
      void* recv = r == rank_ ? out.data : const_cast<char*>(send);
      MU_NCCL_CHECK(ncclReduce(send, recv, static_cast<size_t>(counts[r]), t, ncclSum, r, comm_, stream_));
    }
    group.end();
    return record_done();
  }
  CommRequest all_gather_v_start(Tensor out, Tensor in, const std::vector<int64_t>& counts) override {
    comm_check_device("nccl", "all_gather_v_start", in, Device::CUDA);
    const std::vector<int64_t> displ = comm_check_v("nccl", "all_gather_v_start", world_, rank_, out, in, counts);
    const size_t es = dtype_size(in.dtype);
    after_queued_compute();
    char* own = static_cast<char*>(out.data) + static_cast<size_t>(displ[rank_]) * es;
    if (in.data != own && counts[rank_] > 0)
      MU_CUDA_CHECK(cudaMemcpyAsync(own, in.data, in.nbytes(), cudaMemcpyDeviceToDevice, stream_));
    Group group;
    for (int r = 0; r < world_; r++) {
      if (counts[r] == 0) continue;
      char* part = static_cast<char*>(out.data) + static_cast<size_t>(displ[r]) * es;
      MU_NCCL_CHECK(ncclBroadcast(part, part, static_cast<size_t>(counts[r]) * es, ncclUint8, r, comm_, stream_));
    }
    group.end();
    return record_done();
  }

  void wait(CommRequest r) override {
    if (r.id < 0) return;
    auto it = pending_.find(r.id);
    MU_CHECK(it != pending_.end(), "nccl communicator wait: request %lld is not pending (waited twice?)",
             static_cast<long long>(r.id));
    MU_CUDA_CHECK(cudaStreamWaitEvent(0, it->second, 0));  // later compute runs after the collective
    MU_CUDA_CHECK(cudaEventDestroy(it->second));           // released once it has completed
    pending_.erase(it);
  }

  void abort_collectives() override {
    if (comm_) ncclCommAbort(comm_);
    comm_ = nullptr;
  }
  void abort_job(int code) override {
    // Frees peers blocked in NCCL kernels; under mpirun MPI_Abort then ends every rank,
    // under torchrun/srun the launcher ends the job when this rank exits non-zero.
    if (comm_) ncclCommAbort(comm_);
    comm_ = nullptr;
    if (host_) host_->abort_job(code);
  }

 private:
  void sync() { MU_CUDA_CHECK(cudaStreamSynchronize(stream_)); }
  // ncclGroupStart .. ncclGroupEnd, closed even when an enqueue inside throws (an open group
  // would swallow later NCCL calls, the abort included).
  struct Group {
    bool open = true;
    Group() { MU_NCCL_CHECK(ncclGroupStart()); }
    void end() {
      open = false;
      MU_NCCL_CHECK(ncclGroupEnd());
    }
    ~Group() {
      if (open) ncclGroupEnd();
    }
  };
  // The comm stream waits for everything queued so far on the legacy default stream.
  void after_queued_compute() {
    cudaEvent_t ev;
    MU_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
    MU_CUDA_CHECK(cudaEventRecord(ev, 0));
    MU_CUDA_CHECK(cudaStreamWaitEvent(stream_, ev, 0));
    MU_CUDA_CHECK(cudaEventDestroy(ev));
  }
  CommRequest record_done() {
    cudaEvent_t ev;
    MU_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
    MU_CUDA_CHECK(cudaEventRecord(ev, stream_));
    pending_[next_id_] = ev;
    return CommRequest{next_id_++};
  }

  int rank_, world_, local_rank_;
  std::unique_ptr<Comm> host_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  std::map<int64_t, cudaEvent_t> pending_;
  int64_t next_id_ = 0;
  void* scratch_ = nullptr;
  size_t scratch_bytes_ = 0;
};

}  // namespace

std::unique_ptr<Comm> make_nccl_comm(const LaunchEnv& env, std::unique_ptr<Comm> host_comm) {
  return std::make_unique<NcclComm>(env, std::move(host_comm));
}

}  // namespace mu
