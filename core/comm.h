// The communicator: the collectives data parallelism needs, on one interface with three
// implementations chosen by make_comm():
//   SingleComm (world 1: collectives are copies), MpiComm (host buffers, MPI_COMM_WORLD; the cpu
//   backend's multi-rank path under mpirun), NcclComm (device buffers; the production path).
// Every collective is blocking from the caller's view (NCCL ops are synchronised on the comm's
// stream before returning) and must be called by every rank in the same order.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/launch.h"
#include "core/tensor.h"

namespace mu {

// A started collective (Comm::*_start); Comm::wait completes it.
struct CommRequest {
  int64_t id = -1;  // -1: nothing pending (the op completed at start)
};

class Comm {
 public:
  virtual ~Comm() = default;
  virtual const char* name() const = 0;  // "single", "mpi", "nccl"
  virtual int rank() const = 0;
  virtual int world() const = 0;
  virtual int local_rank() const = 0;

  // x <- sum over ranks of x, in place. F32 everywhere; BF16 too on NCCL.
  virtual void all_reduce_sum(Tensor x) = 0;
  // Host scalars (loss, token counts, grad-norm parts): x[0..n) <- sums over ranks.
  virtual void all_reduce_sum(double* x, int64_t n = 1) = 0;
  // in: (world * n) elements, out: n; out on rank r <- sum over ranks of in[r*n .. r*n+n).
  virtual void reduce_scatter_sum(Tensor out, Tensor in) = 0;
  // in: n elements, out: (world * n); out[r*n .. r*n+n) <- rank r's in. Any dtype.
  virtual void all_gather(Tensor out, Tensor in) = 0;
  // x on every rank <- x on rank `root`. Any dtype.
  virtual void broadcast(Tensor x, int root) = 0;
  virtual void barrier() = 0;

  // Started (non-blocking) collectives, to overlap communication with compute: data parallel
  // starts each layer's gradient reduce-scatter while the backward pass goes on. Until wait()
  // returns, neither buffer may be read or written. Requests may complete in any order but
  // every rank must start the same collectives in the same order. MPI uses
  // MPI_Ireduce_scatter / MPI_Iallgatherv, NCCL a side stream ordered by CUDA events after
  // the compute already queued (wait() orders later compute after it, without a host
  // synchronisation); single rank completes at start.
  //
  // Rank r's share is counts[r] elements (the same counts on every rank):
  //   reduce_scatter_sum_v_start: in holds sum(counts) elements, rank by rank; out (counts[rank])
  //     <- the sum over ranks of rank `rank`'s part of in;
  //   all_gather_v_start: out (sum(counts)) <- every rank's in (counts[rank]), rank by rank; in
  //     may be this rank's own part of out.
  // Data parallel uses these so that ranks owning unequal parts (whole Muon matrices) need no
  // padding. F32 (and BF16 on NCCL) for the sum; any dtype for the gather.
  virtual CommRequest reduce_scatter_sum_v_start(Tensor out, Tensor in, const std::vector<int64_t>& counts) = 0;
  virtual CommRequest all_gather_v_start(Tensor out, Tensor in, const std::vector<int64_t>& counts) = 0;
  virtual void wait(CommRequest r) { (void)r; }
  // For main() only, after a rank failed: ends every rank of the job with `code` (MPI_Abort)
  // so the others do not wait forever in a collective. Returns where world is 1 (SingleComm)
  // so main exits normally.
  virtual void abort_job(int code) = 0;
  // For a rank unwinding after an error: cancels this rank's side of collectives in flight
  // (NCCL: ncclCommAbort) so that freeing device memory on the way out cannot wait on them.
  // The communicator is unusable afterwards except for abort_job(). No-op for MPI and single.
  virtual void abort_collectives() {}
};

enum class CommBackend { Auto, Single, Mpi, Nccl };
const char* comm_backend_name(CommBackend b);

// Auto: world 1 -> single; world > 1 -> mpi for Device::CPU, nccl for Device::CUDA.
// Forcing a backend is for tests (mpi at world 1) and for the NCCL path at world 1.
// Fails with a message saying what to do when the backend is not built (MPI or NCCL missing
// at configure time) or the launch environment does not suit it.
std::unique_ptr<Comm> make_comm(Device device, CommBackend backend = CommBackend::Auto);
std::unique_ptr<Comm> make_comm(Device device, const LaunchEnv& env, CommBackend backend);

// True when this build has the MPI communicator (find_package(MPI) succeeded).
bool comm_have_mpi();
// True when this build has the NCCL communicator (NCCL found, or the CUDA emulator's).
bool comm_have_nccl();

// ---- the implementations (constructed by make_comm) -----------------------------------
std::unique_ptr<Comm> make_single_comm(const LaunchEnv& env);
std::unique_ptr<Comm> make_mpi_comm(const LaunchEnv& env);  // only where comm_have_mpi()
// host_comm, when given, carries the ncclUniqueId (mpirun); else the TCP rendezvous does.
// Only where comm_have_nccl().
std::unique_ptr<Comm> make_nccl_comm(const LaunchEnv& env, std::unique_ptr<Comm> host_comm);

// ---- shape checks shared by the implementations ---------------------------------------
// Each names the op, the tensors and what is wrong.
// Each collective's part (reduce-scatter's out, all-gather's in) lies apart from the whole or
// is exactly this rank's slot of it (in place); a partial overlap is refused.
void comm_check_reduce_scatter(const char* comm, int world, int rank, const Tensor& out, const Tensor& in);
void comm_check_all_gather(const char* comm, int world, int rank, const Tensor& out, const Tensor& in);
void comm_check_device(const char* comm, const char* op, const Tensor& t, Device want);
// The variable-count forms: counts has world entries >= 0, out/in match them; returns each
// rank's offset (in elements) within the whole.
std::vector<int64_t> comm_check_v(const char* comm, const char* op, int world, int rank, const Tensor& whole,
                                  const Tensor& part, const std::vector<int64_t>& counts);

// ---- TCP rendezvous: rank 0 hands a small blob (the ncclUniqueId) to every rank --------
// Rank 0 listens on port, the others connect to addr:port, retrying until timeout_s; every
// wait is bounded, and a timeout names the address, the rank and what was missing.
std::vector<uint8_t> tcp_rendezvous_broadcast(const std::string& addr, int port, int rank, int world,
                                              const std::vector<uint8_t>& blob_on_rank0, double timeout_s);

}  // namespace mu

// MPI calls: a failure becomes mu::Error naming the call, MPI's error text and the rank.
// (MpiComm sets MPI_ERRORS_RETURN on MPI_COMM_WORLD so errors reach this check.)
namespace mu {
[[noreturn]] void mpi_fail(const char* stmt, int code, const char* file, int line);
}
#define MU_MPI_CHECK(stmt)                                                   \
  do {                                                                       \
    int mu_mpi_rc_ = (stmt);                                                 \
    if (mu_mpi_rc_ != 0) ::mu::mpi_fail(#stmt, mu_mpi_rc_, __FILE__, __LINE__); \
  } while (0)
