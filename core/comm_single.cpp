// SingleComm: world 1. Sums over one rank are the identity, so every collective is at most a
// copy (host memcpy or cudaMemcpy, whichever device the tensors live on).
#include <cuda_runtime.h>

#include <cstring>

#include "core/comm.h"
#include "core/cuda_check.h"

namespace mu {
namespace {

void copy_tensor(const Tensor& dst, const Tensor& src) {
  if (dst.data == src.data || src.nbytes() == 0) return;
  if (dst.device == Device::CPU) std::memcpy(dst.data, src.data, src.nbytes());
  else MU_CUDA_CHECK(cudaMemcpy(dst.data, src.data, src.nbytes(), cudaMemcpyDeviceToDevice));
}

class SingleComm final : public Comm {
 public:
  explicit SingleComm(const LaunchEnv& env) : local_rank_(env.local_rank) {}
  const char* name() const override { return "single"; }
  int rank() const override { return 0; }
  int world() const override { return 1; }
  int local_rank() const override { return local_rank_; }

  void all_reduce_sum(Tensor x) override {
    MU_CHECK(x.dtype == DType::F32 || x.dtype == DType::BF16,
             "single communicator all_reduce_sum: %s must be F32 or BF16", x.str().c_str());
  }
  void all_reduce_sum(double*, int64_t n) override {
    MU_CHECK(n >= 0, "single communicator all_reduce_sum: negative count %lld", static_cast<long long>(n));
  }
  void reduce_scatter_sum(Tensor out, Tensor in) override {
    comm_check_reduce_scatter("single", 1, 0, out, in);
    copy_tensor(out, in);
  }
  void all_gather(Tensor out, Tensor in) override {
    comm_check_all_gather("single", 1, 0, out, in);
    copy_tensor(out, in);
  }
  void broadcast(Tensor, int root) override {
    MU_CHECK(root == 0, "single communicator broadcast: root %d is not a rank of a world of 1", root);
  }
  void barrier() override {}
  CommRequest reduce_scatter_sum_v_start(Tensor out, Tensor in, const std::vector<int64_t>& counts) override {
    comm_check_v("single", "reduce_scatter_sum_v", 1, 0, in, out, counts);
    copy_tensor(out, in);
    return {};
  }
  CommRequest all_gather_v_start(Tensor out, Tensor in, const std::vector<int64_t>& counts) override {
    comm_check_v("single", "all_gather_v", 1, 0, out, in, counts);
    copy_tensor(out, in);
    return {};
  }
  void abort_job(int) override {}

 private:
  int local_rank_;
};

}  // namespace

std::unique_ptr<Comm> make_single_comm(const LaunchEnv& env) { return std::make_unique<SingleComm>(env); }

}  // namespace mu
