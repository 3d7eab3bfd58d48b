// Engine checkpoints (DESIGN.md §5): one safetensors file with the engine's tensor names
// ("embed", "layers.wqkv", ...) and __metadata__ {format: "llm.mu", format_version, config:
// the HF config.json text}. Written atomically.
#pragma once
#include <string>

#include "model/config.h"
#include "model/layout.h"

namespace mu {

constexpr const char* kCheckpointFormat = "llm.mu";
constexpr int kCheckpointVersion = 1;

// Writes every parameter of `w` (any device) converted to `stored` (F32 or BF16).
void save_checkpoint(const std::string& path, const LlamaConfig& c, const LlamaWeights& w, DType stored = DType::F32);

// The config stored in a checkpoint; a clear error when `path` is not an llm.mu checkpoint.
LlamaConfig checkpoint_config(const std::string& path);

// Loads every parameter into `w` (any device, converting dtypes). Missing, unexpected or
// mis-shaped tensors are errors naming the file and the tensor.
void load_checkpoint_weights(const std::string& path, const LlamaConfig& c, const LlamaWeights& w);

// Host float32 values -> a tensor of any dtype and device.
void upload_f32(const Tensor& dst, const float* src);

}  // namespace mu
