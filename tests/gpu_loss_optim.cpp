// The cuda backend's fused softmax/cross-entropy (forward, and forward+backward writing
// dlogits in place) and fused AdamW (plain and with fp32 master weights) against the cpu
// backend. See gpu_kernels.cpp for the conventions (rounded inputs, poisoned outputs).
#include <cmath>
#include <cstring>

#include "kernels/adamw.h"
#include "kernels/adamw_master.h"
#include "kernels/cross_entropy.h"
#include "tests/gpu_test_util.h"

using namespace mu;
using namespace mu::gputest;

namespace {

class GpuLossOptim : public GpuTest {};

HostTensor host_ids(const std::vector<int32_t>& v) {
  HostTensor t(DType::I32, {static_cast<int64_t>(v.size())});
  std::memcpy(t.t().data, v.data(), v.size() * 4);
  return t;
}

// ---- cross-entropy -------------------------------------------------------------------------

TEST_F(GpuLossOptim, CrossEntropyMatchesCpu) {
  std::mt19937 rng(21);
  const int64_t N = 6;
  // V = 1024: 8-wide loads; 300 and 50257 (GPT-2's odd vocabulary): scalar loads.
  for (int64_t V : {1024, 300, 50257})
    for (DType dt : {DType::F32, DType::BF16}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " V=" + std::to_string(V));
      std::vector<float> z = rounded_if(random_vec(N * V, rng, -4.0f, 4.0f), dt);
      std::vector<int32_t> tgt(N);
      for (int64_t n = 0; n < N; n++) tgt[n] = static_cast<int32_t>(rng() % V);
      tgt[0] = 0;
      tgt[1] = static_cast<int32_t>(V - 1);
      // Row 2: a masked vocabulary (-inf logits) everywhere but the last 8 entries, so every
      // thread's first loads are all -inf (a NaN trap for online softmax).
      for (int64_t v = 0; v < V - 8; v++) z[2 * V + v] = -INFINITY;
      tgt[2] = static_cast<int32_t>(V - 1);
      const float gs = 1.0f / static_cast<float>(N);
      HostTensor hz = host_f32({N, V}, z), hloss = HostTensor::f32({N}), hloss2 = HostTensor::f32({N});
      cross_entropy_forward(hloss, hz, host_ids(tgt));
      cross_entropy_forward_backward(hloss2, hz, host_ids(tgt), gs);  // hz now holds dlogits
      DevTensor dz(dt, {N, V}), dt_(DType::I32, {N}), dloss(DType::F32, {N});
      dz.upload(z);
      dt_.upload_i32(tgt);
      dloss.poison();
      cross_entropy_forward(dloss, dz, dt_);
      // Same operands, fp32 sums of V exponentials in another order (and expf vs the cpu's
      // polynomial exp): ~1e-6 relative; 2e-5 leaves room at V = 50257.
      expect_close(dloss.download(), values(hloss), 1e-6, 2e-5, "losses (forward)");
      dloss.poison();
      cross_entropy_forward_backward(dloss, dz, dt_, gs);
      expect_close(dloss.download(), values(hloss2), 1e-6, 2e-5, "losses (forward_backward)");
      // dlogits = gs * (softmax - onehot): fp32 to ~1e-6 relative, then one rounding to the
      // storage dtype (bf16: 2^-9, 8e-3 with margin); atol covers the tiniest probabilities.
      expect_close(dz.download(), values(hz), 1e-9, dt == DType::BF16 ? 8e-3 : 2e-5, "dlogits",
                   [&](size_t i) { return "(n=" + std::to_string(i / V) + ", v=" + std::to_string(i % V) + ")"; });
    }
}

TEST_F(GpuLossOptim, CrossEntropyBadTargetNamesItAndPosition) {
  DevTensor dz(DType::BF16, {3, 10}), dt_(DType::I32, {3}), dloss(DType::F32, {3});
  dz.upload(std::vector<float>(30, 0.5f));
  dt_.upload_i32({1, 2, 10});
  try {
    cross_entropy_forward_backward(dloss, dz, dt_, 1.0f);
    ADD_FAILURE() << "target 10 accepted with V = 10";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("target 10"), std::string::npos) << msg;
    EXPECT_NE(msg.find("position 2"), std::string::npos) << msg;
  }
}

// ---- AdamW ---------------------------------------------------------------------------------

AdamWHyper hyper(int64_t step) {
  AdamWHyper h;
  h.lr = 1e-3;
  h.beta1 = 0.9;
  h.beta2 = 0.95;
  h.eps = 1e-8;
  h.weight_decay = 0.1;
  h.step = step;
  h.grad_scale = 0.5f;
  return h;
}

std::vector<uint32_t> bits_of(const std::vector<float>& v) {
  std::vector<uint32_t> b(v.size());
  std::memcpy(b.data(), v.data(), v.size() * 4);
  return b;
}

// The kernel performs the cpu reference's operations in the same order with IEEE rounding
// (no contraction), and its scalars come from the same double expressions: fp32 results
// must be bit-identical. A 1-ulp failure here means a fused or reordered operation.
TEST_F(GpuLossOptim, AdamwMasterMatchesCpuBitwise) {
  std::mt19937 rng(22);
  for (int64_t n : {1000, 1001})  // 1000: 4-wide; 1001: scalar
    for (DType gdt : {DType::BF16, DType::F32}) {
      SCOPED_TRACE("n=" + std::to_string(n) + " grad " + dtype_name(gdt));
      std::vector<float> master = random_vec(n, rng), m = random_vec(n, rng, -0.01f, 0.01f),
                         v = random_vec(n, rng, 0.0f, 1e-4f);
      HostTensor hp = HostTensor::f32({n}), hm = host_f32({n}, master), hmm = host_f32({n}, m), hv = host_f32({n}, v);
      DevTensor dp(DType::BF16, {n}), dm(DType::F32, {n}), dmm(DType::F32, {n}), dv(DType::F32, {n}), dg(gdt, {n});
      dp.poison();
      dm.upload(master);
      dmm.upload(m);
      dv.upload(v);
      for (int64_t step = 1; step <= 5; step++) {
        const std::vector<float> g = rounded_if(random_vec(n, rng, -2.0f, 2.0f), gdt);
        adamw_update_master(hp, hm, host_f32({n}, g), hmm, hv, hyper(step));
        dg.upload(g);
        adamw_update_master(dp, dm, dg, dmm, dv, hyper(step));
        SCOPED_TRACE("step " + std::to_string(step));
        expect_bits_equal(bits_of(dm.download()), bits_of(values(hm)), "master");
        expect_bits_equal(bits_of(dmm.download()), bits_of(values(hmm)), "m");
        expect_bits_equal(bits_of(dv.download()), bits_of(values(hv)), "v");
        // param = bf16(master), rounded to nearest even
        std::vector<uint16_t> want(n);
        for (int64_t i = 0; i < n; i++) want[i] = f32_to_bf16(hm.f32()[i]).bits;
        expect_bits_equal(dp.download_bits16(), want, "param (bf16 of master)");
      }
    }
}

TEST_F(GpuLossOptim, AdamwF32MatchesCpuBitwise) {
  std::mt19937 rng(23);
  const int64_t n = 4096;
  const std::vector<float> p = random_vec(n, rng), g = random_vec(n, rng), m = random_vec(n, rng, -0.01f, 0.01f),
                           v = random_vec(n, rng, 0.0f, 1e-4f);
  HostTensor hp = host_f32({n}, p), hm = host_f32({n}, m), hv = host_f32({n}, v);
  adamw_update(hp, host_f32({n}, g), hm, hv, hyper(7));
  DevTensor dp(DType::F32, {n}), dg(DType::F32, {n}), dm(DType::F32, {n}), dv(DType::F32, {n});
  dp.upload(p);
  dg.upload(g);
  dm.upload(m);
  dv.upload(v);
  adamw_update(dp, dg, dm, dv, hyper(7));
  expect_bits_equal(bits_of(dp.download()), bits_of(values(hp)), "param");
  expect_bits_equal(bits_of(dm.download()), bits_of(values(hm)), "m");
  expect_bits_equal(bits_of(dv.download()), bits_of(values(hv)), "v");
}

}  // namespace
