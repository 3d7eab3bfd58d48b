// The training-state file beside each checkpoint's model: optimizer state tensors plus the
// scalars exact resume needs (step, data-loader position and RNG), and the options that
// must not change across a resume.
#pragma once
#include <array>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/tensor.h"
#include "train/dataloader.h"

namespace mu {

struct TrainState {
  int64_t step = 0;                  // optimizer steps completed
  DataLoader::State loader;          // where the training data continues
  nlohmann::json options;            // trajectory-defining options, checked on resume
};

void save_train_state(const std::string& path, const TrainState& s,
                      const std::vector<std::pair<std::string, Tensor>>& optimizer_state);
// Fills `optimizer_state` tensors (any device) from the file; errors name the file and tensor.
TrainState load_train_state(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& optimizer_state);

}  // namespace mu
