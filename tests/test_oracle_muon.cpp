// Muon (optim/muon.h) against the independent float64 PyTorch implementation of issue 5's
// formulas (tools/reference/muon_case.py): every switch (momentum sgd/ema x Nesterov, ns5 and
// Polar Express with 3/5/7/8 steps, NorMuon on tall/wide/square, every LR scale, every weight-
// decay kind, split Q/K/V and gate/up, per head), tall, wide, square, 1 x N and N x 1, all-zero
// gradients and a clipping factor, 1 to 3 steps each; params compared after every step.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/safetensors.h"
#include "optim/muon.h"
#include "tests/util_compare.h"

using namespace mu;
using namespace mu::test;

namespace {

// Why 1e-4 on the params: the oracle is float64, we are fp32. The orthogonalizer runs 3 to 8
// quintic steps whose polynomials amplify rounding by at most their slope (a <= 8.2 for Polar
// Express' first step, ~3.4 for ns5): measured ~1e-6 relative on O in fp32 against float64.
// The update is ~10-50% of |W| here, so the params carry that ~1e-6 plus half an ulp per step:
// ~1e-6 relative. 1e-4 is the bound with ~100x margin, while every wrong switch moves
// the params by >= 1e-2 relative (the updates are checked below to be that large).
constexpr double kTolParams = 1e-4;
// The step itself, W_after - W_before, relative to its own size: the ~1e-6 error on O over an
// update that is 10-50% of W, plus the params' rounding (6e-8 of |W|) divided by that fraction.
constexpr double kTolStep = 1e-3;

MuonConfig config_of(const nlohmann::json& c) {
  MuonConfig cfg;
  cfg.lr = cfg.muon_lr = 1.0;  // equal: Muon's LR is exactly the LR passed to step()
  cfg.momentum = c.at("momentum").get<double>();
  cfg.momentum_kind = parse_momentum_kind(c.at("momentum_kind").get<std::string>());
  cfg.nesterov = c.at("nesterov").get<bool>();
  cfg.ortho = parse_ortho(c.at("ortho").get<std::string>());
  cfg.ns_steps = c.at("ns_steps").get<int>();
  cfg.normuon = c.at("normuon").get<bool>();
  cfg.normuon_beta2 = c.at("normuon_beta2").get<double>();
  cfg.lr_scale = parse_lr_scale(c.at("lr_scale").get<std::string>());
  cfg.weight_decay = c.at("weight_decay").get<double>();
  cfg.wd_kind = parse_wd_kind(c.at("wd_kind").get<std::string>());
  cfg.split_heads = c.at("split_heads").get<bool>();
  return cfg;
}

std::vector<double> host(const Tensor& t) { return as_f64(t.f32(), static_cast<size_t>(t.numel())); }

TEST(OracleMuon, EverySwitchMatchesTorchFloat64) {
  const std::string path = fixture_dir() + "/muon/fixture.safetensors";
  SafetensorsFile fx(path);
  ASSERT_TRUE(fx.metadata().count("cases")) << path << " has no cases metadata";
  const nlohmann::json cases = nlohmann::json::parse(fx.metadata().at("cases"));
  ASSERT_GE(cases.size(), 20u);
  double worst_params = 0, worst_step = 0;
  for (const nlohmann::json& c : cases) {
    const std::string name = c.at("name").get<std::string>();
    SCOPED_TRACE(name);
    const Shape shape(c.at("shape").get<std::vector<int64_t>>());
    const MuonConfig cfg = config_of(c);
    MuonSplits splits;
    for (const auto& b : c.at("blocks"))
      splits["w"].push_back({b.at(0).get<std::string>(), b.at(1).get<int64_t>(), b.at(2).get<int64_t>()});

    ArenaPlan plan;
    plan.add("param.w", Region::Master, DType::F32, shape);
    plan.add("grad.w", Region::Grads, DType::F32, shape);
    std::vector<ParamRef> refs = {{"w", Tensor(nullptr, DType::F32, Device::CPU, shape), Tensor(), true, true}};
    Muon::plan(plan, refs, cfg, splits);
    Arena arena(plan, Device::CPU);
    refs[0].param = arena.get("param.w");
    refs[0].grad = arena.get("grad.w");
    Muon opt(refs, arena, cfg, splits);
    fx.read_f32(name + ".init", refs[0].param);

    const auto lrs = c.at("lrs").get<std::vector<double>>();
    const auto gscales = c.at("grad_scales").get<std::vector<double>>();
    ASSERT_EQ(lrs.size(), gscales.size());
    for (size_t s = 1; s <= lrs.size(); s++) {
      const std::string key = name + ".after." + std::to_string(s);
      const std::vector<double> before = host(refs[0].param);
      fx.read_f32(name + ".grad." + std::to_string(s), refs[0].grad);
      opt.step(lrs[s - 1], static_cast<float>(gscales[s - 1]));
      const std::vector<double> got = host(refs[0].param), want = read_f64(fx, key);
      for (double v : got) ASSERT_TRUE(std::isfinite(v)) << key;
      const double err = rel_err(got, want);
      EXPECT_LE(err, kTolParams) << key;
      std::vector<double> got_step(got.size()), want_step(got.size());
      for (size_t i = 0; i < got.size(); i++) {
        got_step[i] = got[i] - before[i];
        want_step[i] = want[i] - before[i];
      }
      const double step_err = rel_err(got_step, want_step);
      EXPECT_LE(step_err, kTolStep) << key << " (the change W_after - W_before)";
      // The comparison has teeth: the step moves the params by far more than the tolerance.
      EXPECT_GT(rel_err(want, before), 100 * kTolParams) << key << ": the step barely moves W";
      if (std::getenv("MU_VERBOSE"))  // per-step numbers, for looking at the error budget
        printf("  %-28s step %zu: params %.2e, step %.2e, the step moves W by %.2e\n", name.c_str(), s, err, step_err,
               rel_err(want, before));
      worst_params = std::max(worst_params, err);
      worst_step = std::max(worst_step, step_err);
    }
    EXPECT_EQ(opt.steps_taken(), static_cast<int64_t>(lrs.size()));
  }
  printf("  %zu cases: worst rel L2 error %.3g on the params, %.3g on the step\n", cases.size(), worst_params,
         worst_step);
}

}  // namespace
