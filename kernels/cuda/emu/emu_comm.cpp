// The CUDA emulator has no NCCL: the emulated build leaves core/comm_nccl.cpp out and this
// takes its place, so `--comm nccl` (or auto under a launcher) says why it cannot run.
#include "core/comm.h"
#include "core/error.h"

namespace mu {
std::unique_ptr<Comm> make_nccl_comm(const LaunchEnv&, std::unique_ptr<Comm>) {
  MU_FAIL("the NCCL communicator is not part of the CUDA emulator build (-DMU_CUDA_EMU=ON); run several ranks "
          "with --device cpu and MPI, or build for a real GPU");
}
}  // namespace mu
