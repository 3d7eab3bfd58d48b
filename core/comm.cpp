// make_comm (the choice of backend from the launch environment) and the checks every
// implementation shares.
#include "core/comm.h"

namespace mu {

const char* comm_backend_name(CommBackend b) {
  switch (b) {
    case CommBackend::Auto: return "auto";
    case CommBackend::Single: return "single";
    case CommBackend::Mpi: return "mpi";
    case CommBackend::Nccl: return "nccl";
  }
  return "?";
}

bool comm_have_mpi() {
#ifdef MU_HAVE_MPI
  return true;
#else
  return false;
#endif
}

bool comm_have_nccl() {
#ifdef MU_HAVE_NCCL
  return true;
#else
  return false;
#endif
}

// Where a backend is not built, its constructor is a stub that fails, so that every build
// links whatever the optimiser drops (make_comm checks comm_have_* before calling them).
#ifndef MU_HAVE_MPI
std::unique_ptr<Comm> make_mpi_comm(const LaunchEnv&) { MU_FAIL("this build has no MPI communicator"); }
#endif
#ifndef MU_HAVE_NCCL
std::unique_ptr<Comm> make_nccl_comm(const LaunchEnv&, std::unique_ptr<Comm>) {
  MU_FAIL("this build has no NCCL communicator");
}
#endif

std::unique_ptr<Comm> make_comm(Device device, CommBackend backend) {
  return make_comm(device, launch_env(), backend);
}

std::unique_ptr<Comm> make_comm(Device device, const LaunchEnv& env, CommBackend backend) {
  if (backend == CommBackend::Auto) {
    if (env.world == 1) backend = CommBackend::Single;
    else backend = device == Device::CPU ? CommBackend::Mpi : CommBackend::Nccl;
  }
  switch (backend) {
    case CommBackend::Single:
      MU_CHECK(env.world == 1, "the single-rank communicator cannot serve %s", env.describe().c_str());
      return make_single_comm(env);
    case CommBackend::Mpi:
      MU_CHECK(device == Device::CPU,
               "the MPI communicator works on host buffers; the %s device uses NCCL", device_name(device));
      MU_CHECK(comm_have_mpi(),
               "%s needs the MPI communicator, but this build has no MPI: install Open MPI "
               "(`apt-get install libopenmpi-dev openmpi-bin`), re-run cmake and rebuild",
               env.describe().c_str());
      MU_CHECK(env.world == 1 || env.launcher == Launcher::OpenMPI || env.launcher == Launcher::Slurm,
               "%s: the cpu backend runs several ranks through MPI, so launch with `mpirun -np N` "
               "(or `srun --mpi=pmix`), not torchrun", env.describe().c_str());
      return make_mpi_comm(env);
    case CommBackend::Nccl: {
      MU_CHECK(device == Device::CUDA, "the NCCL communicator works on CUDA buffers, not %s", device_name(device));
      MU_CHECK(comm_have_nccl(),
               "%s needs the NCCL communicator, but this build has no NCCL: install libnccl-dev (or set "
               "NCCL_ROOT to an NCCL), re-run cmake and rebuild; one GPU trains without it",
               env.describe().c_str());
      // Under mpirun the ncclUniqueId travels through MPI; elsewhere through the TCP rendezvous.
      std::unique_ptr<Comm> host;
      if (env.world > 1 && env.launcher == Launcher::OpenMPI && comm_have_mpi()) host = make_mpi_comm(env);
      return make_nccl_comm(env, std::move(host));
    }
    case CommBackend::Auto: break;
  }
  MU_FAIL("make_comm: unknown backend");
}

void comm_check_device(const char* comm, const char* op, const Tensor& t, Device want) {
  MU_CHECK(t.device == want, "%s communicator %s: tensor %s must be on %s", comm, op, t.str().c_str(),
           device_name(want));
  MU_CHECK(t.data != nullptr || t.numel() == 0, "%s communicator %s: tensor %s has no data", comm, op,
           t.str().c_str());
}

// `part` (this rank's share) either lies apart from `whole`, or is exactly this rank's slot
// of it, `offset` elements in: the in-place forms NCCL and MPI define. Anything between is
// undefined in both libraries, so it is refused.
static void check_slot(const char* comm, const char* op, const Tensor& whole, const Tensor& part,
                       int64_t offset) {
  const char* slot = static_cast<const char*>(whole.data) + offset * static_cast<int64_t>(dtype_size(whole.dtype));
  MU_CHECK(!overlaps(whole, part) || part.data == slot,
           "%s communicator %s: %s overlaps %s without being this rank's slot (%lld elements in); "
           "pass a separate buffer or exactly that slot",
           comm, op, part.str().c_str(), whole.str().c_str(), static_cast<long long>(offset));
}

void comm_check_reduce_scatter(const char* comm, int world, int rank, const Tensor& out, const Tensor& in) {
  MU_CHECK(out.dtype == in.dtype, "%s communicator reduce_scatter: out %s and in %s differ in dtype", comm,
           out.str().c_str(), in.str().c_str());
  MU_CHECK(in.numel() == out.numel() * world,
           "%s communicator reduce_scatter: in %s must hold world (%d) x out %s elements", comm,
           in.str().c_str(), world, out.str().c_str());
  MU_CHECK(out.device == in.device, "%s communicator reduce_scatter: out %s and in %s on different devices",
           comm, out.str().c_str(), in.str().c_str());
  check_slot(comm, "reduce_scatter", in, out, rank * out.numel());
}

void comm_check_all_gather(const char* comm, int world, int rank, const Tensor& out, const Tensor& in) {
  MU_CHECK(out.dtype == in.dtype, "%s communicator all_gather: out %s and in %s differ in dtype", comm,
           out.str().c_str(), in.str().c_str());
  MU_CHECK(out.numel() == in.numel() * world,
           "%s communicator all_gather: out %s must hold world (%d) x in %s elements", comm,
           out.str().c_str(), world, in.str().c_str());
  MU_CHECK(out.device == in.device, "%s communicator all_gather: out %s and in %s on different devices", comm,
           out.str().c_str(), in.str().c_str());
  check_slot(comm, "all_gather", out, in, rank * in.numel());
}

std::vector<int64_t> comm_check_v(const char* comm, const char* op, int world, int rank, const Tensor& whole,
                                  const Tensor& part, const std::vector<int64_t>& counts) {
  MU_CHECK(static_cast<int>(counts.size()) == world, "%s communicator %s: %zu counts for a world of %d", comm, op,
           counts.size(), world);
  std::vector<int64_t> displ(counts.size(), 0);
  int64_t total = 0;
  for (size_t r = 0; r < counts.size(); r++) {
    MU_CHECK(counts[r] >= 0, "%s communicator %s: count %lld for rank %zu", comm, op,
             static_cast<long long>(counts[r]), r);
    displ[r] = total;
    total += counts[r];
  }
  MU_CHECK(whole.dtype == part.dtype && whole.device == part.device,
           "%s communicator %s: %s and %s differ in dtype or device", comm, op, whole.str().c_str(),
           part.str().c_str());
  MU_CHECK(whole.numel() == total && part.numel() == counts[rank],
           "%s communicator %s: the whole %s must hold the %lld counted elements and this rank's part %s its %lld",
           comm, op, whole.str().c_str(), static_cast<long long>(total), part.str().c_str(),
           static_cast<long long>(counts[rank]));
  check_slot(comm, op, whole, part, displ[rank]);
  return displ;
}

}  // namespace mu
