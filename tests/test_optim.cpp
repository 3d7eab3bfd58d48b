// optim/: LR schedules, global-norm clipping and AdamW. Expected values are worked out by
// hand (the arithmetic is in the comments) or from the textbook formula evaluated in double
// right here, never taken from the code under test.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/arena.h"
#include "kernels/adamw.h"
#include "optim/adamw.h"
#include "optim/clip.h"
#include "optim/schedule.h"

using namespace mu;

namespace {

// lr_at is plain double arithmetic on small numbers: anything beyond a few ulps is a bug.
constexpr double kLrTol = 1e-12;

ScheduleConfig sched(ScheduleKind k, double lr, int64_t warmup, double min_ratio, double wsd_frac = 0.2) {
  ScheduleConfig c;
  c.kind = k;
  c.lr = lr;
  c.warmup = warmup;
  c.min_lr_ratio = min_ratio;
  c.wsd_decay_frac = wsd_frac;
  return c;
}

// ---------------------------------------------------------------- schedules

TEST(Schedule, ParsesEveryNameAndRejectsOthers) {
  EXPECT_EQ(parse_schedule("constant"), ScheduleKind::Constant);
  EXPECT_EQ(parse_schedule("cosine"), ScheduleKind::Cosine);
  EXPECT_EQ(parse_schedule("linear"), ScheduleKind::Linear);
  EXPECT_EQ(parse_schedule("wsd"), ScheduleKind::Wsd);
  for (const char* bad : {"Cosine", "", "cos", "wsd "}) {
    try {
      parse_schedule(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("constant, cosine, linear, wsd"), std::string::npos) << e.what();
    }
  }
  for (ScheduleKind k : {ScheduleKind::Constant, ScheduleKind::Cosine, ScheduleKind::Linear, ScheduleKind::Wsd})
    EXPECT_EQ(parse_schedule(schedule_name(k)), k);
}

TEST(Schedule, ConstantWithWarmup) {
  // warmup 4: lr * (s+1)/4 = 0.25, 0.5, 0.75, 1.0 (x 1e-3), then 1e-3 to the end.
  const ScheduleConfig c = sched(ScheduleKind::Constant, 1e-3, 4, 0.1);
  EXPECT_NEAR(lr_at(c, 0, 10), 0.25e-3, kLrTol);
  EXPECT_NEAR(lr_at(c, 1, 10), 0.50e-3, kLrTol);
  EXPECT_NEAR(lr_at(c, 2, 10), 0.75e-3, kLrTol);
  EXPECT_NEAR(lr_at(c, 3, 10), 1.00e-3, kLrTol);  // the last warmup step reaches lr
  for (int64_t s = 4; s < 10; s++) EXPECT_NEAR(lr_at(c, s, 10), 1e-3, kLrTol) << s;
}

TEST(Schedule, CosineNoWarmup) {
  // lr 1, min 0.1, total 8: p = s/8; lr = 0.1 + 0.45 * (1 + cos(pi p)).
  const ScheduleConfig c = sched(ScheduleKind::Cosine, 1.0, 0, 0.1);
  const double h = std::sqrt(0.5);  // cos(pi/4)
  EXPECT_NEAR(lr_at(c, 0, 8), 1.0, kLrTol);                  // p = 0: the peak
  EXPECT_NEAR(lr_at(c, 2, 8), 0.1 + 0.45 * (1 + h), kLrTol);  // p = 1/4
  EXPECT_NEAR(lr_at(c, 4, 8), 0.55, kLrTol);                 // p = 1/2: halfway between lr and min
  EXPECT_NEAR(lr_at(c, 6, 8), 0.1 + 0.45 * (1 - h), kLrTol);  // p = 3/4
  // p = 7/8 at the last step: 0.1 + 0.45*(1 - cos(pi/8)), above min.
  EXPECT_NEAR(lr_at(c, 7, 8), 0.1 + 0.45 * (1 - 0.92387953251128674), kLrTol);
  EXPECT_GT(lr_at(c, 7, 8), 0.1);
  for (int64_t s = 1; s < 8; s++) EXPECT_LT(lr_at(c, s, 8), lr_at(c, s - 1, 8)) << s;
}

TEST(Schedule, CosineAfterWarmup) {
  // lr 2, min 0, warmup 2, total 6: s0 = 1, s1 = 2; then p = (s-2)/4.
  const ScheduleConfig c = sched(ScheduleKind::Cosine, 2.0, 2, 0.0);
  EXPECT_NEAR(lr_at(c, 0, 6), 1.0, kLrTol);
  EXPECT_NEAR(lr_at(c, 1, 6), 2.0, kLrTol);
  EXPECT_NEAR(lr_at(c, 2, 6), 2.0, kLrTol);  // p = 0
  EXPECT_NEAR(lr_at(c, 3, 6), 1.0 + std::sqrt(0.5), kLrTol);  // p = 1/4: 1 + cos(pi/4)
  EXPECT_NEAR(lr_at(c, 4, 6), 1.0, kLrTol);  // p = 1/2
  EXPECT_NEAR(lr_at(c, 5, 6), 1.0 - std::sqrt(0.5), kLrTol);  // p = 3/4
}

TEST(Schedule, LinearAfterWarmup) {
  // lr 2, min 0.5 (ratio 0.25), warmup 2, total 12: p = (s-2)/10, lr = 2 - 1.5 p.
  const ScheduleConfig c = sched(ScheduleKind::Linear, 2.0, 2, 0.25);
  EXPECT_NEAR(lr_at(c, 0, 12), 1.0, kLrTol);
  EXPECT_NEAR(lr_at(c, 1, 12), 2.0, kLrTol);
  EXPECT_NEAR(lr_at(c, 2, 12), 2.0, kLrTol);   // p = 0
  EXPECT_NEAR(lr_at(c, 7, 12), 1.25, kLrTol);  // p = 0.5
  EXPECT_NEAR(lr_at(c, 11, 12), 0.65, kLrTol);  // p = 0.9: the last step, above min 0.5
}

TEST(Schedule, WsdStableThenLinearDecay) {
  // lr 1, min 0.1, total 20, frac 0.25: D = 5 decay steps starting at step 15;
  // step 15 + k has lr 1 - 0.9 k/5.
  const ScheduleConfig c = sched(ScheduleKind::Wsd, 1.0, 0, 0.1, 0.25);
  for (int64_t s = 0; s <= 15; s++) EXPECT_NEAR(lr_at(c, s, 20), 1.0, kLrTol) << s;
  EXPECT_NEAR(lr_at(c, 16, 20), 0.82, kLrTol);
  EXPECT_NEAR(lr_at(c, 17, 20), 0.64, kLrTol);
  EXPECT_NEAR(lr_at(c, 19, 20), 0.28, kLrTol);
}

TEST(Schedule, WsdRoundsDecayStepsAndWarmsUp) {
  // total 10, frac 0.26: 2.6 rounds to D = 3, decay from step 7: 1, 0.7, 0.4. Warmup 3 first.
  const ScheduleConfig c = sched(ScheduleKind::Wsd, 1.0, 3, 0.1, 0.26);
  EXPECT_NEAR(lr_at(c, 0, 10), 1.0 / 3.0, kLrTol);
  EXPECT_NEAR(lr_at(c, 1, 10), 2.0 / 3.0, kLrTol);
  EXPECT_NEAR(lr_at(c, 2, 10), 1.0, kLrTol);
  EXPECT_NEAR(lr_at(c, 6, 10), 1.0, kLrTol);
  EXPECT_NEAR(lr_at(c, 7, 10), 1.0, kLrTol);
  EXPECT_NEAR(lr_at(c, 8, 10), 0.7, kLrTol);
  EXPECT_NEAR(lr_at(c, 9, 10), 0.4, kLrTol);
  // frac 0: never decays (and no division by zero decay steps).
  const ScheduleConfig flat = sched(ScheduleKind::Wsd, 1.0, 0, 0.1, 0.0);
  EXPECT_NEAR(lr_at(flat, 9, 10), 1.0, kLrTol);
}

TEST(Schedule, Boundaries) {
  // warmup longer than the run: every step is warmup.
  const ScheduleConfig w = sched(ScheduleKind::Cosine, 1.0, 8, 0.1);
  EXPECT_NEAR(lr_at(w, 4, 5), 5.0 / 8.0, kLrTol);
  // total 1, no warmup: p = 0, every kind gives the peak.
  for (ScheduleKind k : {ScheduleKind::Constant, ScheduleKind::Cosine, ScheduleKind::Linear, ScheduleKind::Wsd})
    EXPECT_NEAR(lr_at(sched(k, 0.5, 0, 0.1, 0.0), 0, 1), 0.5, kLrTol) << schedule_name(k);
  // warmup == total - 1: the single post-warmup step has p = 0 (span clamped to 1).
  EXPECT_NEAR(lr_at(sched(ScheduleKind::Linear, 1.0, 3, 0.0), 3, 4), 1.0, kLrTol);

  const ScheduleConfig c = sched(ScheduleKind::Cosine, 1.0, 0, 0.1);
  EXPECT_THROW(lr_at(c, -1, 10), Error);
  EXPECT_THROW(lr_at(c, 10, 10), Error);  // 0-based: the last step is total - 1
  EXPECT_THROW(lr_at(c, 0, 0), Error);
  EXPECT_THROW(lr_at(sched(ScheduleKind::Cosine, 1.0, 0, 1.5), 0, 10), Error);
  EXPECT_THROW(lr_at(sched(ScheduleKind::Cosine, -1.0, 0, 0.1), 0, 10), Error);
  EXPECT_THROW(lr_at(sched(ScheduleKind::Wsd, 1.0, 0, 0.1, 1.5), 0, 10), Error);
  EXPECT_THROW(lr_at(sched(ScheduleKind::Cosine, 1.0, -2, 0.1), 0, 10), Error);
}

// ---------------------------------------------------------------- clipping

HostTensor vec(const std::vector<float>& v) {
  HostTensor t = HostTensor::f32(Shape{static_cast<int64_t>(v.size())});
  std::memcpy(t.f32(), v.data(), v.size() * sizeof(float));
  return t;
}

TEST(Clip, GlobalNormOfKnownVectors) {
  // ||(3, 4, 12)|| = sqrt(9 + 16 + 144) = 13, split over two tensors.
  HostTensor a = vec({3.0f, 4.0f}), b = vec({-12.0f});
  ClipResult r = clip_scale({a, b}, 26.0);
  EXPECT_DOUBLE_EQ(r.norm, 13.0);
  EXPECT_EQ(r.scale, 1.0f);  // well below max_norm: exactly 1
  // 1001 elements of 0.5 (awkward length): sqrt(1001 * 0.25).
  HostTensor c = HostTensor::f32(Shape{7, 11, 13});
  for (int64_t i = 0; i < c.numel(); i++) c.f32()[i] = 0.5f;
  EXPECT_DOUBLE_EQ(clip_scale({c}, 1e9).norm, std::sqrt(250.25));
  // no gradients at all: norm 0, no scaling.
  ClipResult e = clip_scale({}, 1.0);
  EXPECT_EQ(e.norm, 0.0);
  EXPECT_EQ(e.scale, 1.0f);
}

TEST(Clip, ScaleFormulaAboveMaxNorm) {
  HostTensor a = vec({3.0f, 4.0f}), b = vec({12.0f});
  ClipResult r = clip_scale({a, b}, 6.5);
  EXPECT_DOUBLE_EQ(r.norm, 13.0);
  // torch: 6.5 / (13 + 1e-6) = 0.4999999615384645... rounded to float (ulp 3e-8 near 0.5).
  EXPECT_NEAR(r.scale, 0.49999996153846454, 3e-8);
  EXPECT_LT(r.scale, 0.5f);  // the 1e-6 is really there: 6.5/13 would be exactly 0.5
  // At norm == max_norm torch already scales by 13/(13 + 1e-6) = 0.99999992..., not 1.
  ClipResult at = clip_scale({a, b}, 13.0);
  EXPECT_NEAR(at.scale, 0.99999992307692910, 6e-8);  // float ulp just below 1 is 6e-8
  EXPECT_LT(at.scale, 1.0f);
}

TEST(Clip, DisabledAndBelow) {
  HostTensor a = vec({3.0f, 4.0f}), b = vec({12.0f});
  for (double off : {0.0, -1.0}) {
    ClipResult r = clip_scale({a, b}, off);
    EXPECT_DOUBLE_EQ(r.norm, 13.0) << "the norm is still reported for logging";
    EXPECT_EQ(r.scale, 1.0f);
  }
  EXPECT_EQ(clip_scale({a, b}, 13.5).scale, 1.0f);
  EXPECT_THROW(clip_scale({a, b}, std::nan("")), Error);
}

TEST(Clip, NonFiniteNormIsReturned) {
  HostTensor a = vec({1.0f, std::numeric_limits<float>::infinity()}), b = vec({2.0f});
  ClipResult r = clip_scale({a, b}, 1.0);
  EXPECT_TRUE(std::isinf(r.norm));
  EXPECT_EQ(r.scale, 1.0f);
  HostTensor n = vec({std::nanf(""), 1.0f});
  EXPECT_TRUE(std::isnan(clip_scale({n}, 1.0).norm));
}

// ---------------------------------------------------------------- AdamW

struct ParamSpec {
  std::string name;
  Shape shape;
  bool decay;
};

// Params and grads (HostTensors), the arena holding AdamW's state, and the optimizer.
struct Rig {
  std::vector<HostTensor> params, grads;
  std::vector<ParamRef> refs;
  std::unique_ptr<Arena> arena;
  std::unique_ptr<AdamW> opt;

  Rig(const std::vector<ParamSpec>& specs, AdamWConfig cfg) {
    for (const ParamSpec& s : specs) {
      params.push_back(HostTensor::f32(s.shape));
      grads.push_back(HostTensor::f32(s.shape));
      refs.push_back(ParamRef{s.name, params.back(), grads.back(), s.decay, false});
    }
    ArenaPlan plan;
    AdamW::plan(plan, refs);
    arena = std::make_unique<Arena>(plan, Device::CPU);
    opt = std::make_unique<AdamW>(refs, *arena, cfg);
  }
  float* p(size_t i) { return params[i].f32(); }
  float* g(size_t i) { return grads[i].f32(); }
};

AdamWConfig adamw_cfg(double wd, double eps = 1e-8) {
  AdamWConfig c;
  c.beta1 = 0.9;
  c.beta2 = 0.95;
  c.eps = eps;
  c.weight_decay = wd;
  return c;
}

TEST(AdamW, FirstStepMovesEachParamByLrTimesSignOfGrad) {
  // Step 1: m = 0.1 g, v = 0.05 g^2; bias correction divides by 0.1 and 0.05, so
  // mhat = g, vhat = g^2 and the update is lr * g / (|g| + eps) ~ lr * sign(g), whatever |g|.
  const std::vector<float> p0 = {0.5f, -1.25f, 3.0f, 0.0f, 2.0f, -0.75f, 1.0f};
  const std::vector<float> g = {1e-3f, -2.0f, 0.5f, 100.0f, -1e-4f, 0.0f, 7.0f};
  Rig r({{"w", Shape{7}, false}}, adamw_cfg(0.0));
  std::memcpy(r.p(0), p0.data(), sizeof(float) * 7);
  std::memcpy(r.g(0), g.data(), sizeof(float) * 7);
  const double lr = 0.01;
  r.opt->step(lr, 1.0f);
  EXPECT_EQ(r.opt->steps_taken(), 1);
  const float* m = r.arena->get("adamw.m.w").f32();
  const float* v = r.arena->get("adamw.v.w").f32();
  for (int i = 0; i < 7; i++) {
    const double gi = g[i];
    const double sign = gi > 0 ? 1.0 : gi < 0 ? -1.0 : 0.0;
    // |p| <= 3: one float ulp of the result is <= 2.4e-7; the update itself is exact to ~1e-9.
    EXPECT_NEAR(r.p(0)[i], p0[i] - lr * gi / (std::abs(gi) + 1e-8), 2.5e-7) << i;
    EXPECT_NEAR(r.p(0)[i], p0[i] - lr * sign, 2.5e-7 + lr * 1e-8 / 1e-4) << i;  // eps/|g| <= 1e-4 here
    // state: a few float roundings of 0.1 g and 0.05 g^2
    EXPECT_NEAR(m[i], 0.1 * gi, 1e-6 * std::abs(0.1 * gi)) << i;
    EXPECT_NEAR(v[i], 0.05 * gi * gi, 1e-6 * 0.05 * gi * gi) << i;
  }
}

TEST(AdamW, SecondStepByHand) {
  // One element, lr 0.1, betas (0.9, 0.95), wd 0, g1 = 1, g2 = -0.5, p0 = 1:
  //   step 1: p1 = 1 - 0.1 * 1/(1 + 1e-8)
  //   step 2: m = 0.9*0.1 + 0.1*(-0.5) = 0.04, v = 0.95*0.05 + 0.05*0.25 = 0.06
  //           mhat = 0.04/(1 - 0.81) = 0.04/0.19, vhat = 0.06/(1 - 0.9025) = 0.06/0.0975
  //           p2 = p1 - 0.1 * mhat / (sqrt(vhat) + 1e-8)
  Rig r({{"x", Shape{1}, false}}, adamw_cfg(0.0));
  r.p(0)[0] = 1.0f;
  r.g(0)[0] = 1.0f;
  r.opt->step(0.1, 1.0f);
  const double p1 = 1.0 - 0.1 * 1.0 / (1.0 + 1e-8);
  EXPECT_NEAR(r.p(0)[0], p1, 1.2e-7);  // |p| ~ 0.9: one float ulp is 6e-8
  r.g(0)[0] = -0.5f;
  r.opt->step(0.1, 1.0f);
  const double p2 = p1 - 0.1 * (0.04 / 0.19) / (std::sqrt(0.06 / 0.0975) + 1e-8);
  EXPECT_NEAR(r.p(0)[0], p2, 2.4e-7);  // two steps of fp32 rounding at |p| ~ 0.9
  EXPECT_EQ(r.opt->steps_taken(), 2);
}

TEST(AdamW, WeightDecayOnlyWhereMarked) {
  // wd 0.1, lr 0.01: the decayed param is first scaled by 1 - 0.001, the other is not.
  Rig r({{"mat", Shape{2, 2}, true}, {"gain", Shape{4}, false}}, adamw_cfg(0.1));
  const float p0[4] = {1.0f, -2.0f, 0.5f, 4.0f}, g[4] = {1.0f, 1.0f, -1.0f, -1.0f};
  for (size_t k = 0; k < 2; k++) {
    std::memcpy(r.p(k), p0, sizeof p0);
    std::memcpy(r.g(k), g, sizeof g);
  }
  r.opt->step(0.01, 1.0f);
  for (int i = 0; i < 4; i++) {
    const double upd = 0.01 * g[i] / (1.0 + 1e-8);
    EXPECT_NEAR(r.p(0)[i], p0[i] * (1.0 - 0.01 * 0.1) - upd, 5e-7) << i;  // |p| <= 4: ulp 4.8e-7
    EXPECT_NEAR(r.p(1)[i], p0[i] - upd, 5e-7) << i;
  }
  // the decay is visible beyond that tolerance: 4 * 0.001 = 4e-3 apart on the last element
  EXPECT_GT(std::abs(r.p(0)[3] - r.p(1)[3]), 3e-3);
}

TEST(AdamW, GradScaleMultipliesTheGradient) {
  // eps 1 makes the step depend on |g|: g = 1 scaled by 0.5 gives mhat = 0.5, vhat = 0.25,
  // update = lr * 0.5 / (0.5 + 1) = lr/3 (unscaled it would be lr/2).
  Rig r({{"x", Shape{1}, false}}, adamw_cfg(0.0, 1.0));
  r.g(0)[0] = 1.0f;
  r.opt->step(0.3, 0.5f);
  EXPECT_NEAR(r.p(0)[0], -0.1, 1e-8);  // |p| = 0.1: float ulp 7.5e-9

  // With eps 1e-8: grad g with scale s is bitwise the same as grad g*s (computed in float) with scale 1.
  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  Rig a({{"w", Shape{5, 7}, true}}, adamw_cfg(0.1)), b({{"w", Shape{5, 7}, true}}, adamw_cfg(0.1));
  const float s = 0.37f;
  for (int step = 0; step < 3; step++) {
    for (int i = 0; i < 35; i++) {
      if (step == 0) a.p(0)[i] = b.p(0)[i] = nd(rng);
      a.g(0)[i] = nd(rng);
      b.g(0)[i] = a.g(0)[i] * s;
    }
    a.opt->step(1e-2, s);
    b.opt->step(1e-2, 1.0f);
  }
  EXPECT_EQ(std::memcmp(a.p(0), b.p(0), 35 * sizeof(float)), 0);
}

TEST(AdamW, PlanAndStateTensorNames) {
  Rig r({{"embed", Shape{3, 4}, true}, {"layers.wqkv", Shape{2, 3, 4}, true}, {"final_norm", Shape{4}, false}},
        adamw_cfg(0.0));
  EXPECT_EQ(r.opt->name(), "adamw");
  const std::vector<std::string> want = {"adamw.m.embed",       "adamw.v.embed",      "adamw.m.layers.wqkv",
                                         "adamw.v.layers.wqkv", "adamw.m.final_norm", "adamw.v.final_norm"};
  auto st = r.opt->state_tensors();
  ASSERT_EQ(st.size(), want.size());
  for (size_t i = 0; i < want.size(); i++) {
    EXPECT_EQ(st[i].first, want[i]);
    const ArenaPlan::Entry& e = r.arena->plan().entry(want[i]);
    EXPECT_EQ(e.region, Region::OptState) << want[i];
    EXPECT_EQ(st[i].second.dtype, DType::F32) << want[i];
    EXPECT_EQ(st[i].second.shape, r.refs[i / 2].param.shape) << want[i];
    EXPECT_EQ(st[i].second.data, r.arena->get(want[i]).data) << want[i];
  }
  EXPECT_EQ(r.arena->plan().region_bytes(Region::OptState) >= 2 * (12 + 24 + 4) * sizeof(float), true);
}

// Copies tensor bytes (same dtype and numel).
void copy_bytes(Tensor dst, Tensor src) {
  ASSERT_EQ(dst.nbytes(), src.nbytes());
  std::memcpy(dst.data, src.data, src.nbytes());
}

TEST(AdamW, ResumeFromStateIsBitwiseIdentical) {
  // Awkward shapes; a decayed matrix and an undecayed vector.
  const std::vector<ParamSpec> specs = {{"w", Shape{7, 13}, true}, {"b", Shape{5}, false}};
  const double lrs[4] = {1e-2, 2e-2, 1.5e-2, 5e-3};
  const float scales[4] = {1.0f, 0.8f, 1.0f, 0.6f};
  std::mt19937 rng(1234);
  std::normal_distribution<float> nd;
  std::vector<std::vector<float>> init(2), grads[4];
  for (size_t k = 0; k < 2; k++) {
    for (int64_t i = 0; i < specs[k].shape.numel(); i++) init[k].push_back(nd(rng));
    for (auto& gs : grads) {
      gs.emplace_back();
      for (int64_t i = 0; i < specs[k].shape.numel(); i++) gs.back().push_back(nd(rng));
    }
  }
  auto start = [&](Rig& r) {
    for (size_t k = 0; k < 2; k++) std::memcpy(r.p(k), init[k].data(), init[k].size() * sizeof(float));
  };
  auto run = [&](Rig& r, int from, int to) {
    for (int s = from; s < to; s++) {
      for (size_t k = 0; k < 2; k++) std::memcpy(r.g(k), grads[s][k].data(), grads[s][k].size() * sizeof(float));
      r.opt->step(lrs[s], scales[s]);
    }
  };
  // Fills `to` with from's params and optimizer state (what a checkpoint carries).
  auto restore = [&](Rig& to, Rig& from, bool with_steps) {
    for (size_t k = 0; k < 2; k++) copy_bytes(to.params[k], from.params[k]);
    auto src = from.opt->state_tensors(), dst = to.opt->state_tensors();
    ASSERT_EQ(src.size(), dst.size());
    for (size_t i = 0; i < src.size(); i++) {
      ASSERT_EQ(src[i].first, dst[i].first);
      copy_bytes(dst[i].second, src[i].second);
    }
    if (with_steps) to.opt->set_steps_taken(from.opt->steps_taken());
  };

  Rig full(specs, adamw_cfg(0.1)), half(specs, adamw_cfg(0.1)), resumed(specs, adamw_cfg(0.1)),
      forgot(specs, adamw_cfg(0.1));
  start(full);
  run(full, 0, 4);
  start(half);
  run(half, 0, 2);
  restore(resumed, half, true);
  EXPECT_EQ(resumed.opt->steps_taken(), 2);
  run(resumed, 2, 4);
  EXPECT_EQ(resumed.opt->steps_taken(), 4);
  for (size_t k = 0; k < 2; k++)
    EXPECT_EQ(std::memcmp(full.p(k), resumed.p(k), full.params[k].t().nbytes()), 0) << specs[k].name;

  // Control: without the step count the bias corrections restart at step 1 and the result
  // differs, so the comparison above can fail.
  restore(forgot, half, false);
  run(forgot, 2, 4);
  EXPECT_NE(std::memcmp(full.p(0), forgot.p(0), full.params[0].t().nbytes()), 0);
}

TEST(AdamW, RejectsBadSetup) {
  HostTensor p = HostTensor::f32(Shape{3, 4}), g = HostTensor::f32(Shape{4, 3}), g_ok = HostTensor::f32(Shape{3, 4});
  std::vector<ParamRef> bad = {{"w", p, g, true, false}};
  ArenaPlan plan;
  AdamW::plan(plan, bad);
  Arena arena(plan, Device::CPU);
  try {
    AdamW opt(bad, arena, adamw_cfg(0.0));
    ADD_FAILURE() << "accepted a grad of another shape";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'w'"), std::string::npos) << e.what();
  }
  // state missing from the arena (plan() not called for this param)
  std::vector<ParamRef> other = {{"other", p, g_ok, true, false}};
  EXPECT_THROW(AdamW(other, arena, adamw_cfg(0.0)), Error);
  std::vector<ParamRef> twice = {{"w", p, g_ok, true, false}, {"w", p, g_ok, true, false}};
  EXPECT_THROW(AdamW(twice, arena, adamw_cfg(0.0)), Error);
  AdamWConfig beta_one = adamw_cfg(0.0);
  beta_one.beta2 = 1.0;
  std::vector<ParamRef> good = {{"w", p, g_ok, true, false}};
  EXPECT_THROW(AdamW(good, arena, beta_one), Error);
  AdamW ok(good, arena, adamw_cfg(0.0));
  EXPECT_THROW(ok.set_steps_taken(-1), Error);
  EXPECT_THROW(ok.step(std::nan(""), 1.0f), Error);
  EXPECT_EQ(ok.steps_taken(), 0);  // a rejected step is not counted
}

TEST(AdamWKernel, ValidatesArguments) {
  HostTensor p = HostTensor::f32(Shape{6}), g = HostTensor::f32(Shape{2, 3}), m = HostTensor::f32(Shape{6}),
             v = HostTensor::f32(Shape{6}), short_v = HostTensor::f32(Shape{5});
  HostTensor bf(DType::BF16, Shape{6});
  AdamWHyper h;
  h.lr = 1e-3;
  adamw_update(p, g, m, v, h);  // same numel, different shape: fine
  EXPECT_THROW(adamw_update(p, g, m, short_v, h), Error);
  EXPECT_THROW(adamw_update(p, bf, m, v, h), Error);
  AdamWHyper h0 = h;
  h0.step = 0;
  EXPECT_THROW(adamw_update(p, g, m, v, h0), Error);
  AdamWHyper hb = h;
  hb.beta1 = 1.0;
  EXPECT_THROW(adamw_update(p, g, m, v, hb), Error);
  AdamWHyper hs = h;
  hs.grad_scale = std::numeric_limits<float>::infinity();
  EXPECT_THROW(adamw_update(p, g, m, v, hs), Error);
}

}  // namespace
