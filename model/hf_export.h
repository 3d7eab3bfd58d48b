// Writing a Hugging Face Llama directory from engine weights: config.json (transformers v4
// field names), model.safetensors or model-0000k-of-0000n.safetensors shards with
// model.safetensors.index.json, and optionally the tokenizer files of another HF directory.
// The directory appears whole or not at all: everything is written into "<dir>.tmp-<pid>",
// fsynced, then renamed into place.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "model/config.h"
#include "model/layout.h"

namespace mu {

struct HfExportOptions {
  DType dtype = DType::F32;              // stored dtype: F32, BF16 or F16
  int64_t max_shard_bytes = 5000000000;  // transformers' default max_shard_size "5GB"
  std::string tokenizer_from;            // HF directory to copy tokenizer files from ("" = none)
  bool force = false;                    // replace an existing non-empty directory
};

struct HfExportResult {
  std::vector<std::string> files;  // file names written into the directory, in write order
  int64_t total_bytes = 0;         // tensor bytes (the index's metadata.total_size)
  int shards = 0;                  // 1: a single model.safetensors
};

// Writes `w` (any device; values converted through float32, so bf16/f16 -> same dtype is
// bit-exact) as a HF LlamaForCausalLM directory. Tied models get no lm_head.weight.
// config.json is config_to_json(c) with torch_dtype set to the stored dtype. Refuses an
// existing non-empty `dir` unless o.force. Every failure names the path or tensor and
// leaves `dir` as it was.
HfExportResult export_hf_dir(const std::string& dir, const LlamaConfig& c, const LlamaWeights& w,
                             const HfExportOptions& o = {});

// The checks export_hf_dir makes before writing anything, for callers that want to fail
// before loading a model: `dir` must be absent, an empty directory, or (o.force) any
// directory; o.tokenizer_from must hold tokenizer files. Returns those files' names.
std::vector<std::string> hf_export_precheck(const std::string& dir, const HfExportOptions& o);

// The files copied from HfExportOptions::tokenizer_from when present there.
const std::vector<std::string>& hf_tokenizer_files();

// "5GB", "500MB", "2GiB", "1.5GB", "10kB", "123" -> bytes (transformers' convention:
// GB = 1e9, GiB = 2^30). `what` names the option in the error message.
int64_t parse_byte_size(const std::string& s, const std::string& what);

// transformers' torch_dtype spellings: F32 <-> "float32", BF16 <-> "bfloat16", F16 <-> "float16".
const char* torch_dtype_name(DType t);
bool dtype_from_torch_name(const std::string& s, DType* out);  // false for anything else

}  // namespace mu
