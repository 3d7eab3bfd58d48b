// The training loop shared by every backend: data -> forward/backward (with gradient
// accumulation) -> clip -> optimizer step -> metrics, evaluation and checkpoints with exact
// resume (DESIGN.md §3, §5).
#pragma once
#include "train/options.h"

namespace mu {

// Runs a whole mu-train invocation; progress on stderr. Returns the process exit code.
int run_training(const TrainOptions& o);

}  // namespace mu
