// Reading a Hugging Face Llama directory (config.json + model.safetensors, or a sharded
// model.safetensors.index.json) into the engine layout on the host, in float32.
#pragma once
#include <memory>
#include <string>

#include "core/arena.h"
#include "model/config.h"
#include "model/layout.h"

namespace mu {

struct HostModel {
  LlamaConfig cfg;
  std::unique_ptr<Arena> arena;  // CPU, F32 weights named "param.<engine name>"
  LlamaWeights w;
};

// Allocates a host F32 model for `cfg` (weights zeroed).
HostModel make_host_model(const LlamaConfig& cfg);

// Every failure names the file and the tensor or field: missing config.json or weights,
// a tensor missing or mis-shaped, tensors the layout does not know (e.g. biases).
HostModel import_hf_dir(const std::string& dir);

}  // namespace mu
