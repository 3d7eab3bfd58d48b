// Learning-rate schedules: linear warmup, then constant, cosine, linear or
// warmup-stable-decay (WSD) down to min_lr = lr * min_lr_ratio.
#pragma once
#include <cstdint>
#include <string>

namespace mu {

enum class ScheduleKind { Constant, Cosine, Linear, Wsd };

struct ScheduleConfig {
  ScheduleKind kind = ScheduleKind::Cosine;
  double lr = 3e-4;           // peak LR
  int64_t warmup = 0;         // steps of linear warmup
  double min_lr_ratio = 0.1;  // cosine/linear/wsd end near lr * min_lr_ratio
  double wsd_decay_frac = 0.2;  // wsd: the fraction of all steps spent decaying
};

// "constant" | "cosine" | "linear" | "wsd"; anything else is an error listing these.
ScheduleKind parse_schedule(const std::string& s);
const char* schedule_name(ScheduleKind k);

// LR for 0-based step s of `total` (0 <= s < total; outside is an error), min = lr*min_lr_ratio:
//   s < warmup:  lr * (s+1) / warmup
//   otherwise, with p = (s - warmup) / max(1, total - warmup):
//     constant: lr;  cosine: min + (lr-min) * 0.5 * (1 + cos(pi p));  linear: lr - (lr-min) * p
//     (p < 1 at the last step, so it ends close to but above min)
//   wsd: lr until step total - D, D = round(wsd_decay_frac * total); then at step total-D+k
//     (0 <= k < D) lr - (lr-min) * k / D: the same shape as linear over the last D steps.
double lr_at(const ScheduleConfig& c, int64_t step, int64_t total);

}  // namespace mu
