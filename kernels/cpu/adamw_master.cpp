// fp32 cpu AdamW with a master copy: cpu::adamw_update on the master (the reference formula,
// kernels/cpu/adamw.cpp), then the parameter copied from it. The cuda backend rounds that
// copy to bf16; here it stays fp32, which is what a test compares the cuda master against.
#include <cstring>

#include "kernels/cpu/adamw_cpu.h"
#include "kernels/cpu/residual_rmsnorm_cpu.h"

namespace mu {
namespace cpu {

void adamw_update_master(Tensor param, Tensor master, Tensor grad, Tensor m, Tensor v, const AdamWHyper& h) {
  cpu::adamw_update(master, grad, m, v, h);
  std::memcpy(param.data, master.data, master.nbytes());
}

}  // namespace cpu
}  // namespace mu
