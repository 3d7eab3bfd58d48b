#include "optim/schedule.h"

#include <cmath>

#include "core/error.h"

namespace mu {

ScheduleKind parse_schedule(const std::string& s) {
  if (s == "constant") return ScheduleKind::Constant;
  if (s == "cosine") return ScheduleKind::Cosine;
  if (s == "linear") return ScheduleKind::Linear;
  if (s == "wsd") return ScheduleKind::Wsd;
  MU_FAIL("unknown LR schedule '%s' (expected one of: constant, cosine, linear, wsd)", s.c_str());
}

const char* schedule_name(ScheduleKind k) {
  switch (k) {
    case ScheduleKind::Constant: return "constant";
    case ScheduleKind::Cosine: return "cosine";
    case ScheduleKind::Linear: return "linear";
    case ScheduleKind::Wsd: return "wsd";
  }
  MU_FAIL("schedule_name: invalid ScheduleKind %d", static_cast<int>(k));
}

double lr_at(const ScheduleConfig& c, int64_t step, int64_t total) {
  MU_CHECK(total > 0, "lr schedule: total steps is %lld, must be > 0", static_cast<long long>(total));
  MU_CHECK(step >= 0 && step < total, "lr schedule: step %lld is outside [0, %lld)", static_cast<long long>(step),
           static_cast<long long>(total));
  MU_CHECK(std::isfinite(c.lr) && c.lr >= 0.0, "lr schedule: lr is %g, must be finite and >= 0", c.lr);
  MU_CHECK(c.warmup >= 0, "lr schedule: warmup is %lld, must be >= 0", static_cast<long long>(c.warmup));
  MU_CHECK(c.min_lr_ratio >= 0.0 && c.min_lr_ratio <= 1.0, "lr schedule: min_lr_ratio is %g, must be in [0, 1]",
           c.min_lr_ratio);
  MU_CHECK(c.wsd_decay_frac >= 0.0 && c.wsd_decay_frac <= 1.0,
           "lr schedule: wsd_decay_frac is %g, must be in [0, 1]", c.wsd_decay_frac);

  if (step < c.warmup) return c.lr * static_cast<double>(step + 1) / static_cast<double>(c.warmup);
  const double lr = c.lr, min_lr = c.lr * c.min_lr_ratio;
  const int64_t span = total - c.warmup > 1 ? total - c.warmup : 1;
  const double p = static_cast<double>(step - c.warmup) / static_cast<double>(span);
  switch (c.kind) {
    case ScheduleKind::Constant: return lr;
    case ScheduleKind::Cosine: return min_lr + (lr - min_lr) * 0.5 * (1.0 + std::cos(M_PI * p));
    case ScheduleKind::Linear: return lr - (lr - min_lr) * p;
    case ScheduleKind::Wsd: {
      const int64_t decay = std::llround(c.wsd_decay_frac * static_cast<double>(total));
      const int64_t start = total - decay;
      if (step < start) return lr;
      return lr - (lr - min_lr) * static_cast<double>(step - start) / static_cast<double>(decay);
    }
  }
  MU_FAIL("lr schedule: invalid ScheduleKind %d", static_cast<int>(c.kind));
}

}  // namespace mu
