// mu-eval's modes, kept apart from its option parsing.
#pragma once
#include <cstdint>
#include <string>

#include "core/tensor.h"
#include "model/config.h"

namespace mu {

// Forward (and backward) dump of a token batch file; see mu-eval --help.
void eval_dump(const std::string& model, const std::string& tokens, const std::string& out, bool grads, bool params,
               Device dev);

struct DataEvalResult {
  double loss = 0;      // mean cross-entropy (nats/token)
  double accuracy = 0;  // fraction of positions whose argmax is the target
  int64_t tokens = 0;
};
// Mean loss and accuracy over up to max_batches in-order B x T windows of the shards in `glob`
// (max_batches <= 0: the whole data set).
DataEvalResult eval_data(const std::string& model, const std::string& glob, int B, int T, int64_t max_batches,
                         Device dev);

struct SampleOptions {
  std::string prompt;
  int max_new_tokens = 200;
  double temperature = 0.8;
  int top_k = 40;  // 0: the whole vocabulary
  uint64_t seed = 1;
  int context = 0;  // tokens of context the model sees (0: max_position_embeddings, capped at 1024)
};
// Generates text from the prompt with the byte tokenizer (ids 0..255; the model's vocab_size
// must be 256), streaming it to stdout.
// Returns the generated text (prompt excluded).
std::string sample_text(const std::string& model, const SampleOptions& s, Device dev);

Device parse_device(const std::string& s);

}  // namespace mu
