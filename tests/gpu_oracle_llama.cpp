// The whole model on the cuda backend (bf16 weights and activations, fp32 accumulation)
// against the PyTorch float64 oracle fixtures (tools/reference/oracle.py, the same cases
// test_oracle_llama checks the cpu backend on): logits, loss and every parameter gradient.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/cuda_check.h"
#include "core/transfer.h"
#include "model/checkpoint.h"
#include "model/hf_import.h"
#include "model/llama.h"
#include "tests/util_compare.h"

using namespace mu;
using namespace mu::test;

namespace {

const char* kCases[] = {"mha_tied",   "gqa2_untied",  "gqa3_llama3",       "awkward",
                        "v5_headdim", "bf16_sharded", "f16_tied_with_head"};

// Tolerances (relative L2 over each tensor) for bf16 against float64. The weights are rounded
// to bf16 (2^-9 relative each) and every stored activation is rounded again: logits move by
// a few 2^-9 (~5e-3); 2e-2 leaves room. Gradients pass through more bf16 roundings (dlogits,
// the residual gradient accumulated in bf16 over every layer, attention's bf16 P and dS):
// ~1e-2 is typical for models this small, 5e-2 is the bound.
constexpr double kLogitTol = 2e-2;
constexpr double kLossTol = 1e-2;  // relative, on a loss ~ln(V)
constexpr double kGradTol = 5e-2;

class GpuOracle : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    if (cuda_device_count() == 0)
      GTEST_SKIP() << "no CUDA device: the gpu suites run where one is present (kernels/cuda/README.md)";
  }
};

TEST_P(GpuOracle, Bf16ForwardBackwardMatchesPyTorch) {
  const std::string dir = fixture_dir() + "/" + GetParam();
  SafetensorsFile fx(dir + "/fixture.safetensors");
  HostModel hf = import_hf_dir(dir + "/hf");
  const LlamaConfig& cfg = hf.cfg;
  Batch b = read_batch(fx);

  ArenaPlan plan;
  Llama::plan(plan, cfg, {b.B, b.T}, true, DType::BF16);
  Arena arena(plan, Device::CUDA);
  Llama m(cfg, arena, {b.B, b.T}, true);
  const auto src = hf.w.named(cfg), dst = m.weights().named(cfg);
  ASSERT_EQ(src.size(), dst.size());
  for (size_t i = 0; i < src.size(); i++) {
    ASSERT_EQ(src[i].first, dst[i].first);
    upload_f32(dst[i].second, src[i].second.f32());  // f32 -> bf16 on the device
  }
  m.set_batch(b.inputs.data(), b.targets.data());
  const double loss = m.forward();
  const double want_loss = read_f64(fx, "loss")[0];
  EXPECT_NEAR(loss, want_loss, kLossTol * std::abs(want_loss)) << GetParam();
  std::vector<float> logits = to_host_f32(m.logits());
  const double logit_err = rel_err(as_f64(logits.data(), logits.size()), read_f64(fx, "logits"));
  EXPECT_LE(logit_err, kLogitTol) << GetParam() << " logits";
  std::printf("[%s] loss %.6f (want %.6f), logits rel L2 %.2e\n", GetParam(), loss, want_loss, logit_err);

  m.zero_grads();
  m.backward(1.0f / static_cast<float>(b.B * b.T));
  int checked = 0;
  double worst = 0;
  for (const HfView& v : hf_views(m.grads(), cfg)) {
    const std::string name = "grad." + v.hf_name;
    ASSERT_TRUE(fx.has(name)) << name;
    std::vector<float> g = to_host_f32(v.view);
    const double e = rel_err(as_f64(g.data(), g.size()), read_f64(fx, name));
    EXPECT_LE(e, kGradTol) << GetParam() << " " << name;
    worst = std::max(worst, e);
    checked++;
  }
  std::printf("[%s] %d gradients, worst rel L2 %.2e\n", GetParam(), checked, worst);
  int in_fixture = 0;
  for (const auto& t : fx.tensors()) in_fixture += t.name.rfind("grad.", 0) == 0;
  EXPECT_EQ(checked, in_fixture);
}

INSTANTIATE_TEST_SUITE_P(Cases, GpuOracle, ::testing::ValuesIn(kCases));

}  // namespace
