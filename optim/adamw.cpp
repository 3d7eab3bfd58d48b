#include "optim/adamw.h"

#include <cmath>
#include <set>

#include "kernels/adamw.h"
#include "kernels/adamw_master.h"
#include "kernels/elementwise.h"

namespace mu {

void AdamW::plan(ArenaPlan& plan, const std::vector<ParamRef>& params) {
  for (const ParamRef& p : params) {
    plan.add(m_name(p.name), Region::OptState, DType::F32, p.param.shape);
    plan.add(v_name(p.name), Region::OptState, DType::F32, p.param.shape);
    if (p.param.dtype != DType::F32) plan.add(master_name(p.name), Region::Master, DType::F32, p.param.shape);
  }
}

AdamW::AdamW(const std::vector<ParamRef>& params, const Arena& arena, AdamWConfig cfg) : cfg_(cfg) {
  MU_CHECK(cfg.beta1 >= 0.0 && cfg.beta1 < 1.0, "adamw: beta1 is %g, must be in [0, 1)", cfg.beta1);
  MU_CHECK(cfg.beta2 >= 0.0 && cfg.beta2 < 1.0, "adamw: beta2 is %g, must be in [0, 1)", cfg.beta2);
  MU_CHECK(std::isfinite(cfg.eps) && cfg.eps >= 0.0, "adamw: eps is %g, must be finite and >= 0", cfg.eps);
  MU_CHECK(std::isfinite(cfg.weight_decay) && cfg.weight_decay >= 0.0,
           "adamw: weight_decay is %g, must be finite and >= 0", cfg.weight_decay);
  std::set<std::string> seen;
  for (const ParamRef& p : params) {
    const char* n = p.name.c_str();
    MU_CHECK(seen.insert(p.name).second, "adamw: parameter '%s' appears twice", n);
    MU_CHECK(!p.param.empty() && !p.grad.empty(), "adamw: parameter '%s' has no %s tensor", n,
             p.param.empty() ? "param" : "grad");
    MU_CHECK(p.grad.shape == p.param.shape, "adamw: parameter '%s' is %s but its grad is %s", n,
             p.param.str().c_str(), p.grad.str().c_str());
    MU_CHECK(p.grad.device == p.param.device && p.param.device == arena.device(),
             "adamw: parameter '%s' (%s), its grad (%s) and the optimizer state (%s) must share a device", n,
             device_name(p.param.device), device_name(p.grad.device), device_name(arena.device()));
    MU_CHECK(arena.has(m_name(p.name)) && arena.has(v_name(p.name)),
             "adamw: no state for parameter '%s' in the arena (call AdamW::plan with the same params)", n);
    Slot s{p, arena.get(m_name(p.name)), arena.get(v_name(p.name)), Tensor()};
    if (p.param.dtype != DType::F32) {
      MU_CHECK(arena.has(master_name(p.name)), "adamw: parameter '%s' is %s but has no fp32 master in the arena", n,
               dtype_name(p.param.dtype));
      s.master = arena.get(master_name(p.name));
    }
    for (const Tensor* t : {&s.m, &s.v})
      MU_CHECK(t->dtype == DType::F32 && t->shape == p.param.shape,
               "adamw: state of parameter '%s' is %s, expected F32%s", n, t->str().c_str(),
               p.param.shape.str().c_str());
    slots_.push_back(s);
  }
}

void AdamW::step(double lr, float grad_scale) {
  const int64_t t = steps_ + 1;
  for (const Slot& s : slots_) {
    AdamWHyper h;
    h.lr = lr;
    h.beta1 = cfg_.beta1;
    h.beta2 = cfg_.beta2;
    h.eps = cfg_.eps;
    h.weight_decay = s.ref.weight_decay ? cfg_.weight_decay : 0.0;
    h.step = t;
    h.grad_scale = grad_scale;
    if (s.master.empty())
      adamw_update(s.ref.param, s.ref.grad, s.m, s.v, h);
    else
      adamw_update_master(s.ref.param, s.master, s.ref.grad, s.m, s.v, h);
  }
  steps_ = t;
}

std::vector<std::pair<std::string, Tensor>> AdamW::state_tensors() {
  std::vector<std::pair<std::string, Tensor>> out;
  out.reserve(2 * slots_.size());
  for (const Slot& s : slots_) {
    out.emplace_back(m_name(s.ref.name), s.m);
    out.emplace_back(v_name(s.ref.name), s.v);
    if (!s.master.empty()) out.emplace_back(master_name(s.ref.name), s.master);
  }
  return out;
}

void AdamW::init_masters() {
  for (const Slot& s : slots_)
    if (!s.master.empty()) copy(s.master, s.ref.param);
}

void AdamW::set_steps_taken(int64_t n) {
  MU_CHECK(n >= 0, "adamw: steps taken is %lld, must be >= 0", static_cast<long long>(n));
  steps_ = n;
}

}  // namespace mu
