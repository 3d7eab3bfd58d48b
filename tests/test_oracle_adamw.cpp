// AdamW against torch.optim.AdamW (tools/reference/adamw_case.py): two parameters, one with
// decoupled weight decay (w2d) and one without (b1d), five steps with a different LR each,
// params compared with torch's after every step.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/safetensors.h"
#include "optim/adamw.h"
#include "tests/util_compare.h"

using namespace mu;
using namespace mu::test;

namespace {

// Why 1e-6: the oracle runs torch in float64, we run fp32. Each step rounds |p| ~ 1 to float
// (half an ulp, 6e-8 relative), the rounded init adds as much, and the update (lr <= 3e-3
// times an O(1) ratio computed to ~1e-7 relative) adds ~1e-9. Five steps therefore stay
// below ~4e-7 relative even if every rounding lined up (measured: 1.1e-7 L2, 2.7e-7 worst
// element); 1e-6 leaves room while a missing bias correction or decay on the wrong param
// is off by >= 1e-4 after one step. (eps placement is below this test's resolution for O(1)
// grads; tests/test_optim.cpp checks it with small gradients.)
constexpr double kTol = 1e-6;

TEST(OracleAdamW, MatchesTorchEveryStep) {
  const std::string path = fixture_dir() + "/adamw/fixture.safetensors";
  SafetensorsFile fx(path);
  const auto& meta = fx.metadata();
  ASSERT_TRUE(meta.count("hparams")) << path << " has no hparams metadata";
  const nlohmann::json hp = nlohmann::json::parse(meta.at("hparams"));

  AdamWConfig cfg;
  cfg.beta1 = hp.at("betas").at(0).get<double>();
  cfg.beta2 = hp.at("betas").at(1).get<double>();
  cfg.eps = hp.at("eps").get<double>();
  cfg.weight_decay = hp.at("weight_decay").get<double>();
  const std::vector<double> lrs = hp.at("lrs").get<std::vector<double>>();
  const auto decay = hp.at("decay_params").get<std::vector<std::string>>();
  const auto no_decay = hp.at("no_decay_params").get<std::vector<std::string>>();
  ASSERT_EQ(decay, std::vector<std::string>{"w2d"});
  ASSERT_EQ(no_decay, std::vector<std::string>{"b1d"});
  ASSERT_FALSE(lrs.empty());

  // Params and grads in an arena, as the trainer holds them.
  const std::vector<std::string> names = {"w2d", "b1d"};
  ArenaPlan plan;
  for (const std::string& n : names) {
    plan.add("param." + n, Region::Master, DType::F32, fx.get("init." + n).shape);
    plan.add("grad." + n, Region::Grads, DType::F32, fx.get("init." + n).shape);
  }
  // plan() reads only names and shapes, so the refs can be built before the arena exists
  // (the trainer plans everything, then allocates once); rebound to the arena's memory after.
  std::vector<ParamRef> refs;
  for (const std::string& n : names) {
    const bool wd = std::find(decay.begin(), decay.end(), n) != decay.end();
    const Tensor shape_only(nullptr, DType::F32, Device::CPU, fx.get("init." + n).shape);
    refs.push_back(ParamRef{n, shape_only, Tensor(), wd, false});
  }
  AdamW::plan(plan, refs);
  Arena arena(plan, Device::CPU);
  for (ParamRef& r : refs) {
    r.param = arena.get("param." + r.name);
    r.grad = arena.get("grad." + r.name);
  }
  AdamW opt(refs, arena, cfg);
  for (const ParamRef& r : refs) fx.read_f32("init." + r.name, r.param);

  for (size_t s = 1; s <= lrs.size(); s++) {
    for (const ParamRef& r : refs) fx.read_f32("grad." + std::to_string(s) + "." + r.name, r.grad);
    opt.step(lrs[s - 1], 1.0f);
    for (const ParamRef& r : refs) {
      const std::string key = "after." + std::to_string(s) + "." + r.name;
      const std::vector<double> want = read_f64(fx, key);
      const std::vector<double> got = as_f64(r.param.f32(), static_cast<size_t>(r.param.numel()));
      const double err = rel_err(got, want);
      EXPECT_LE(err, kTol) << key;
      double worst = 0;  // element-wise too: one bad element must not hide in the norm
      for (size_t i = 0; i < got.size(); i++)
        worst = std::max(worst, std::abs(got[i] - want[i]) / std::max(std::abs(want[i]), 1e-3));
      EXPECT_LE(worst, 2 * kTol) << key << " (worst element; relative, floored at 1e-3)";
      if (s == lrs.size()) printf("  %s: rel L2 %.3g, worst element %.3g\n", key.c_str(), err, worst);
    }
  }
  EXPECT_EQ(opt.steps_taken(), static_cast<int64_t>(lrs.size()));
}

}  // namespace
