// Where this process sits in a multi-process job: rank, world size and local rank, read from
// the environment the launcher left (mpirun, srun or torchrun-style). Nothing here starts
// communication; core/comm.h builds a communicator from it.
//
// Precedence (the first launcher whose variables are present wins):
//   1. Open MPI  (mpirun):   OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_RANK
//   2. torchrun-style:       RANK, WORLD_SIZE, LOCAL_RANK (+ MASTER_ADDR, MASTER_PORT)
//   3. Slurm     (srun):     SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID
//   4. none: a single process (rank 0 of 1).
// Why this order: the innermost launcher describes this process. mpirun or torchrun inside a
// Slurm allocation inherit the allocation's SLURM_* variables, which then describe the
// allocation, not this process; torchrun never sets OMPI_*, and mpirun never sets RANK.
// MASTER_ADDR/MASTER_PORT are read whatever the launcher (the NCCL rendezvous needs them when
// no MPI is there to carry the unique id).
#pragma once
#include <functional>
#include <string>

namespace mu {

enum class Launcher { None, OpenMPI, Torchrun, Slurm };
const char* launcher_name(Launcher l);  // "none", "mpirun", "torchrun", "slurm"

struct LaunchEnv {
  Launcher launcher = Launcher::None;
  int rank = 0;        // 0 .. world-1
  int world = 1;       // number of processes in the job
  int local_rank = 0;  // index among the processes on this node: picks the GPU
  std::string master_addr;  // empty when MASTER_ADDR is unset
  int master_port = 0;      // 0 when MASTER_PORT is unset
  std::string describe() const;  // "rank 1 of 4 (local 1, mpirun)"
};

// Reads the variables through `get` (returns nullptr for an unset variable), so tests can
// feed any environment. Fails (mu::Error naming the variables) on a half-set launcher
// (RANK without WORLD_SIZE), non-integers, rank outside [0, world), world < 1, a negative
// local rank or a local rank >= world, or a port outside 1..65535.
LaunchEnv launch_env_from(const std::function<const char*(const char*)>& get);
// The same, from this process's environment.
LaunchEnv launch_env();

}  // namespace mu
