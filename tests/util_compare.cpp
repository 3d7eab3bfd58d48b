#include "tests/util_compare.h"

#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "core/rng.h"

namespace mu::test {

double rel_err(const std::vector<double>& a, const std::vector<double>& b) {
  MU_CHECK(a.size() == b.size(), "rel_err: sizes differ (%zu vs %zu)", a.size(), b.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); i++) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  if (den == 0) return std::sqrt(num);
  return std::sqrt(num / den);
}

std::vector<double> as_f64(const float* p, size_t n) { return std::vector<double>(p, p + n); }

std::vector<double> read_f64(const SafetensorsFile& f, const std::string& name) {
  const StTensorInfo& t = f.get(name);
  std::vector<double> out(static_cast<size_t>(t.shape.numel()));
  if (t.dtype == DType::F64) {
    const double* p = static_cast<const double*>(t.data);
    out.assign(p, p + out.size());
  } else {
    HostTensor h = HostTensor::f32(t.shape);
    f.read_f32(name, h);
    for (size_t i = 0; i < out.size(); i++) out[i] = h.f32()[i];
  }
  return out;
}

Batch read_batch(const SafetensorsFile& fx) {
  const StTensorInfo& t = fx.get("tokens");
  MU_CHECK(t.dtype == DType::I32 && t.shape.ndim == 2, "%s: 'tokens' must be I32 (B, T+1)", fx.path().c_str());
  Batch b;
  b.B = static_cast<int>(t.shape[0]);
  b.T = static_cast<int>(t.shape[1]) - 1;
  const int32_t* p = static_cast<const int32_t*>(t.data);
  for (int i = 0; i < b.B; i++)
    for (int j = 0; j < b.T; j++) {
      b.inputs.push_back(p[i * (b.T + 1) + j]);
      b.targets.push_back(p[i * (b.T + 1) + j + 1]);
    }
  return b;
}

std::vector<float> weights_of(const std::string& ckpt) {
  SafetensorsFile f(ckpt);
  std::vector<float> all;
  for (const auto& t : f.tensors()) {
    HostTensor h = HostTensor::f32(t.shape);
    f.read_f32(t.name, h);
    all.insert(all.end(), h.f32(), h.f32() + h.numel());
  }
  return all;
}

RunResult run_cmd(const std::string& cmd) {
  RunResult r;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  int status = pclose(p);
  if (WIFSIGNALED(status)) {
    r.signaled = true;
  } else if (WIFEXITED(status)) {
    r.exit_code = WEXITSTATUS(status);
    // the shell reports a child killed by a signal as 128 + signo
    if (r.exit_code > 128) r.signaled = true;
  }
  return r;
}

std::string tool(const std::string& name) { return std::string(MU_BINARY_DIR) + "/" + name; }

std::string make_temp_dir(const std::string& tag) {
  std::string tmpl = std::string(MU_BINARY_DIR) + "/tmp-" + tag + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back(0);
  char* d = mkdtemp(buf.data());
  MU_CHECK(d, "mkdtemp %s failed", tmpl.c_str());
  return d;
}

std::string fixture_dir() { return MU_FIXTURE_DIR; }

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  MU_CHECK(f.good(), "cannot write %s", path.c_str());
}

namespace {
const char* kWords[] = {"the ", "cat ", "sat ", "on ", "a ", "mat. ", "dogs ", "run ", "fast ", "\n"};
}

std::vector<uint32_t> synthetic_text_tokens(size_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<uint32_t> out;
  while (out.size() < n)
    for (const char* c = kWords[rng.below(10)]; *c && out.size() < n; c++) out.push_back(static_cast<unsigned char>(*c));
  return out;
}

const char* synthetic_alphabet() { return "thecatsondgrufm. \n"; }

}  // namespace mu::test
