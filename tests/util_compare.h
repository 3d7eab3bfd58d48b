// Shared test helpers: relative errors, running the tools, temp directories.
#pragma once
#include <string>
#include <vector>

#include "core/safetensors.h"
#include "core/tensor.h"

namespace mu::test {

// ||a - b||_2 / ||b||_2 in double: one number per tensor, insensitive to a few tiny entries.
double rel_err(const std::vector<double>& a, const std::vector<double>& b);
std::vector<double> as_f64(const float* p, size_t n);
std::vector<double> read_f64(const SafetensorsFile& f, const std::string& name);

// An oracle fixture's (B, T+1) I32 `tokens` split into inputs [:, :-1] and targets [:, 1:].
struct Batch {
  int B = 0, T = 0;
  std::vector<int32_t> inputs, targets;
};
Batch read_batch(const SafetensorsFile& fx);

// Every tensor of a safetensors file (a checkpoint) as float32, in file order: for bitwise
// comparisons of whole models.
std::vector<float> weights_of(const std::string& ckpt);

struct RunResult {
  int exit_code = -1;   // WEXITSTATUS, or -1 when killed by a signal
  bool signaled = false;
  std::string output;   // stdout + stderr
};
// Runs a shell command line (tools from MU_BINARY_DIR), capturing its output.
RunResult run_cmd(const std::string& cmd);
std::string tool(const std::string& name);  // full path of a built tool
std::string make_temp_dir(const std::string& tag);
std::string fixture_dir();                   // MU_FIXTURE_DIR (written by the oracle step)
void write_text(const std::string& path, const std::string& text);
// Text-like bytes: words drawn from a small vocabulary ("the cat sat on a mat. ..."), so a
// model has something to learn; deterministic in seed.
std::vector<uint32_t> synthetic_text_tokens(size_t n, uint64_t seed);
// The bytes synthetic_text_tokens() can produce.
const char* synthetic_alphabet();

}  // namespace mu::test
