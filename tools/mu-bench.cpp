// mu-bench: throughput of the cuda backend on this GPU.
//   1. ceilings: device copy bandwidth (cudaMemcpy and a plain copy kernel) and the bf16 GEMM
//      rate of cuBLASLt (M = N = K = --gemm-size);
//   2. every kernel, forward and backward, at the training sizes of a model preset
//      (--config, --batch-size, --seq-len): time, GB/s or TFLOP/s, and the fraction of the
//      measured ceiling;
//   3. a full training step (forward, backward, AdamW with fp32 masters): tokens/s and MFU;
//   4. Muon's optimizer step (tools/lib_bench_muon.h): batched vs one-at-a-time orthogonalization.
// --cost-model instead predicts data-parallel scaling (tools/lib_cost.h, docs/distributed.md)
// from the rates given as flags; it needs no GPU.
// Timing: CUDA events around each run after warm-up runs, the median of --runs; inputs rotate
// over enough buffer sets to exceed twice the L2 cache, so no run finds its data cached.
// Bytes are what each kernel must move at least (its reads and writes of whole tensors);
// attention FLOPs follow the usual FlashAttention accounting (forward 4*B*H*T*T*D/2 causal,
// backward 2.5x forward), though the deterministic backward executes 3.5x.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/cli.h"
#include "core/cuda_check.h"
#include "core/fileio.h"
#include "kernels/adamw_master.h"
#include "kernels/attention.h"
#include "kernels/cross_entropy.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/runtime.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/matmul.h"
#include "kernels/residual_rmsnorm.h"
#include "kernels/rmsnorm.h"
#include "kernels/scratch.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"
#include "model/config.h"
#include "model/layout.h"
#include "model/llama.h"
#include "tools/lib_bench_muon.h"
#include "tools/lib_cost.h"

using namespace mu;

namespace {

struct Options {
  std::string config = "llama-3.2-1b";
  int batch = 4, seq = 2048, runs = 20, warmup = 3, step_runs = 5;
  int64_t gemm = 8192;
  double peak_tflops = 0.0;  // 0: from the device name (lib_cost.h), else MFU against the measured GEMM only
  bool step = true, muon = true;
  std::string json;
  // --cost-model
  bool cost_model = false;
  std::string worlds = "1,2,4,8,16,64", optimizer = "muon", measured;
  double link_gbs = 400, mfu = 0.4, ortho_tflops = 400, hbm_gbs = 2700;
};

std::vector<int> parse_worlds(const std::string& s) {
  std::vector<int> out;
  size_t at = 0;
  while (at <= s.size()) {
    const size_t comma = std::min(s.find(',', at), s.size());
    const std::string item = s.substr(at, comma - at);
    char* end = nullptr;
    const long v = std::strtol(item.c_str(), &end, 10);
    MU_CHECK(!item.empty() && *end == 0 && v >= 1 && v <= 1000000,
             "--worlds: '%s' is not a list of positive world sizes like 1,8,64", s.c_str());
    out.push_back(static_cast<int>(v));
    at = comma + 1;
  }
  return out;
}

void write_json(const std::string& path, const nlohmann::json& j) {
  FILE* f = std::fopen(path.c_str(), "w");
  MU_CHECK(f, "cannot write %s", path.c_str());
  const std::string s = j.dump(2);
  const bool ok = std::fwrite(s.data(), 1, s.size(), f) == s.size();
  MU_CHECK(std::fclose(f) == 0 && ok, "writing %s failed", path.c_str());
}

// --json is written at the end, after minutes of measuring: check now that it can be, without
// touching an existing file (opened for append, not truncated; a new one is created and removed).
void check_json_writable(const Options& o) {
  if (o.json.empty()) return;
  MU_CHECK(o.measured.empty() || !same_file(o.json, o.measured),
           "--json %s is the --measured file %s: writing it would replace the measurement; give another --json",
           o.json.c_str(), o.measured.c_str());
  std::error_code ec;
  MU_CHECK(!std::filesystem::is_directory(o.json, ec), "--json %s is a directory; give a file name", o.json.c_str());
  const bool existed = std::filesystem::exists(o.json, ec);
  const int fd = ::open(o.json.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  MU_CHECK(fd >= 0, "--json %s: cannot write it: %s", o.json.c_str(), std::strerror(errno));
  ::close(fd);
  if (!existed) ::unlink(o.json.c_str());
}

int run_cost_model(const Options& o) {
  // 0 keeps its meaning (the default, 989 here); cost_row() checks every other input.
  MU_CHECK(std::isfinite(o.peak_tflops) && o.peak_tflops >= 0,
           "--peak-tflops %g: must be positive (or 0: 989 for --cost-model)", o.peak_tflops);
  check_json_writable(o);
  CostInputs in;
  in.optimizer = o.optimizer;
  in.batch = o.batch;
  in.seq = o.seq;
  in.link_gbs = o.link_gbs;
  in.peak_tflops = o.peak_tflops > 0 ? o.peak_tflops : 989.0;
  in.mfu = o.mfu;
  in.ortho_tflops = o.ortho_tflops;
  in.hbm_gbs = o.hbm_gbs;
  std::string took;
  if (!o.measured.empty()) {
    std::string text;
    try {
      text = read_text_file(o.measured);
    } catch (const Error& e) {
      MU_FAIL("--measured %s: %s", o.measured.c_str(), e.what());
    }
    nlohmann::json bench;
    try {
      bench = nlohmann::json::parse(text);
    } catch (const std::exception& e) {
      MU_FAIL("--measured %s: not JSON (%s); give the file `mu-bench --json` wrote", o.measured.c_str(), e.what());
    }
    took = cost_inputs_from_bench(bench, &in);
  }
  nlohmann::json j;
  // The table first: it refuses bad inputs, and a failed run prints nothing.
  const std::string table = cost_table(load_config(o.config), o.config, in, parse_worlds(o.worlds), &j);
  if (!took.empty()) std::printf("from %s: %s\n", o.measured.c_str(), took.c_str());
  std::printf("%s", table.c_str());
  if (!o.json.empty()) write_json(o.json, j);
  return 0;
}

// Device memory owned by the benchmark, freed at exit. Float tensors are filled with
// pseudo-random values (a new seed each): kernels, the tensor cores above all, can run faster
// on constant data than on real data (lower power, higher clocks), which would flatter both
// the ceilings and the kernels measured against them.
class Pool {
 public:
  ~Pool() {
    for (void* p : ptrs_) cudaFree(p);
  }
  Tensor make(DType t, Shape s, float lo = -1.0f, float hi = 1.0f) {
    Tensor x = alloc(t, s);
    if (t == DType::F32 || t == DType::BF16) fill_uniform(x, ++seed_, lo, hi);
    return x;
  }
  Tensor make_filled(DType t, Shape s, float value) {
    Tensor x = alloc(t, s);
    fill(x, value);
    return x;
  }
  static std::vector<int32_t> host_tokens(int64_t n, int64_t V, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> h(n);
    for (auto& v : h) v = static_cast<int32_t>(rng() % V);
    return h;
  }
  Tensor tokens(int64_t n, int64_t V, uint32_t seed) {
    Tensor x = alloc(DType::I32, {n});
    const std::vector<int32_t> h = host_tokens(n, V, seed);
    MU_CUDA_CHECK(cudaMemcpy(x.data, h.data(), n * 4, cudaMemcpyHostToDevice));
    return x;
  }

 private:
  Tensor alloc(DType t, Shape s) {
    void* p = nullptr;
    const size_t bytes = std::max<size_t>(256, static_cast<size_t>(s.numel()) * dtype_size(t));
    MU_CUDA_CHECK(cudaMalloc(&p, bytes));
    ptrs_.push_back(p);
    return Tensor(p, t, Device::CUDA, s);
  }
  std::vector<void*> ptrs_;
  uint64_t seed_ = 0;
};

// Median milliseconds of fn(set) over `runs` runs after `warmup`, cycling through nsets sets.
double median_ms(const std::function<void(int)>& fn, int nsets, int warmup, int runs) {
  for (int i = 0; i < warmup; i++) fn(i % nsets);
  std::vector<cudaEvent_t> ev(2 * runs);
  for (auto& e : ev) MU_CUDA_CHECK(cudaEventCreate(&e));
  for (int i = 0; i < runs; i++) {
    MU_CUDA_CHECK(cudaEventRecord(ev[2 * i]));
    fn((warmup + i) % nsets);
    MU_CUDA_CHECK(cudaEventRecord(ev[2 * i + 1]));
  }
  MU_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<double> ms(runs);
  for (int i = 0; i < runs; i++) {
    float t = 0;
    MU_CUDA_CHECK(cudaEventElapsedTime(&t, ev[2 * i], ev[2 * i + 1]));
    ms[i] = t;
  }
  for (auto& e : ev) cudaEventDestroy(e);
  std::sort(ms.begin(), ms.end());
  return ms[runs / 2];
}

struct Row {
  std::string name, shape;
  double ms = 0, bytes = 0, flops = 0;  // one of bytes/flops is set
  double rate = 0, frac = 0;            // GB/s or TFLOP/s, fraction of the ceiling
};

class Bench {
 public:
  Bench(const Options& o, size_t l2) : o_(o), l2_(l2) {}
  double copy_gbs = 0, gemm_tflops = 0;
  double embedding_host_ms = 0;  // the embedding backward's host bucketing, per call
  std::vector<Row> rows;

  // Sets needed for `set_bytes` per set to exceed twice the L2 (at most 16).
  int sets_for(double set_bytes) const {
    return static_cast<int>(std::clamp<double>(std::ceil(2.0 * l2_ / std::max(set_bytes, 1.0)), 1, 16));
  }
  void memory_bound(const std::string& name, const std::string& shape, double bytes, int nsets,
                    const std::function<void(int)>& fn) {
    Row r{name, shape};
    r.ms = median_ms(fn, nsets, o_.warmup, o_.runs);
    r.bytes = bytes;
    r.rate = bytes / (r.ms * 1e-3) / 1e9;
    r.frac = copy_gbs > 0 ? r.rate / copy_gbs : 0;
    print(r, "GB/s");
    rows.push_back(r);
  }
  void compute_bound(const std::string& name, const std::string& shape, double flops, int nsets,
                     const std::function<void(int)>& fn) {
    Row r{name, shape};
    r.ms = median_ms(fn, nsets, o_.warmup, o_.runs);
    r.flops = flops;
    r.rate = flops / (r.ms * 1e-3) / 1e12;
    r.frac = gemm_tflops > 0 ? r.rate / gemm_tflops : 0;
    print(r, "TFLOP/s");
    rows.push_back(r);
  }
  static void print(const Row& r, const char* unit) {
    std::printf("  %-30s %-26s %10.1f us %9.1f %-7s %5.1f%%\n", r.name.c_str(), r.shape.c_str(), r.ms * 1e3, r.rate,
                unit, 100 * r.frac);
    std::fflush(stdout);
  }

 private:
  const Options& o_;
  size_t l2_;
};

std::string dims(std::initializer_list<int64_t> d) {
  std::string s;
  for (int64_t x : d) s += (s.empty() ? "" : "x") + std::to_string(x);
  return s;
}

void bench_ceilings(Bench& b, Pool& pool, const Options& o, const cuda::DeviceInfo& dev) {
  std::printf("ceilings\n");
  const int64_t bytes = std::max<int64_t>(int64_t{1} << 30, 8 * static_cast<int64_t>(dev.l2_bytes));
  Tensor src = pool.make(DType::U8, {bytes}), dst = pool.make(DType::U8, {bytes});
  Row r{"cudaMemcpy D2D", dims({bytes})};
  r.ms = median_ms([&](int) { MU_CUDA_CHECK(cudaMemcpy(dst.data, src.data, bytes, cudaMemcpyDeviceToDevice)); }, 1,
                   o.warmup, o.runs);
  r.bytes = 2.0 * bytes;
  r.rate = r.bytes / (r.ms * 1e-3) / 1e9;
  Bench::print(r, "GB/s");
  b.rows.push_back(r);
  Row k{"copy kernel", dims({bytes})};
  k.ms = median_ms([&](int) { cuda::bench_copy_kernel(dst.data, src.data, bytes); }, 1, o.warmup, o.runs);
  k.bytes = 2.0 * bytes;
  k.rate = k.bytes / (k.ms * 1e-3) / 1e9;
  Bench::print(k, "GB/s");
  b.rows.push_back(k);
  b.copy_gbs = std::max(r.rate, k.rate);

  const int64_t n = o.gemm;
  Tensor a = pool.make(DType::BF16, {n, n}), w = pool.make(DType::BF16, {n, n}), c = pool.make(DType::BF16, {n, n});
  Row g{"bf16 GEMM (cuBLASLt)", dims({n, n, n})};
  g.ms = median_ms(
      [&](int) {
        MatmulParams p;
        p.out = c;
        p.a = a;
        p.b = w;
        p.trans_b = true;
        matmul(p);
      },
      1, o.warmup, o.runs);
  g.flops = 2.0 * n * n * n;
  g.rate = g.flops / (g.ms * 1e-3) / 1e12;
  Bench::print(g, "TFLOP/s");
  b.rows.push_back(g);
  b.gemm_tflops = g.rate;
  std::printf("  ceiling: copy %.0f GB/s, bf16 GEMM %.1f TFLOP/s\n", b.copy_gbs, b.gemm_tflops);
}

void bench_kernels(Bench& b, Pool& pool, const LlamaConfig& c, const Options& o) {
  const int64_t B = o.batch, T = o.seq, N = B * T, C = c.hidden_size, F = c.intermediate_size, V = c.vocab_size;
  const int64_t H = c.num_attention_heads, Hkv = c.num_key_value_heads, D = c.head_dim, Ht = H + 2 * Hkv;
  const DType bf = DType::BF16;
  std::printf("kernels at %s training sizes: B=%lld T=%lld (N=%lld tokens)\n", o.config.c_str(),
              static_cast<long long>(B), static_cast<long long>(T), static_cast<long long>(N));
  const double act = N * C * 2.0;  // one (N, C) bf16 tensor

  // Rotating sets of the tensors each kernel touches.
  auto sets = [&](double set_bytes, const std::function<std::vector<Tensor>()>& mk) {
    std::vector<std::vector<Tensor>> s(b.sets_for(set_bytes));
    for (auto& x : s) x = mk();
    return s;
  };
  {
    auto s = sets(2 * act, [&] { return std::vector<Tensor>{pool.make(bf, {N, C}), pool.tokens(N, V, 1)}; });
    Tensor table = pool.make(bf, {V, C});
    const std::vector<int32_t> ids = Pool::host_tokens(N, V, 1);  // every set's ids (seed 1)
    // The table's bytes are its distinct rows: a repeated id finds its row in L2 (uniform ids
    // repeat: about 29K distinct of 32K at V = 128K).
    const double rows = static_cast<double>(std::set<int32_t>(ids.begin(), ids.end()).size()) * C * 2;
    b.memory_bound("embedding fwd", dims({N, C}), rows + act + N * 4.0, static_cast<int>(s.size()),
                   [&](int i) { embedding_forward(s[i][0], s[i][1], table); });
    // The backward's device share (the plan's upload and the kernels), timed alone: in training
    // the host buckets the ids from its own copy of the batch while the GPU still runs the
    // backward's earlier layers (kernels/embedding.h), so only this share is on the GPU's path.
    Tensor dtable = pool.make(bf, {V, C});
    const auto t0 = std::chrono::steady_clock::now();
    const int host_runs = 5;
    for (int i = 0; i < host_runs; i++) cuda::embedding_backward_prepare(ids.data(), N, V);
    b.embedding_host_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / host_runs;
    b.memory_bound("embedding bwd", dims({N, C}), act + 2 * rows, static_cast<int>(s.size()),
                   [&](int i) { cuda::embedding_backward_prepared(dtable, s[i][0]); });
    std::printf("  %-30s %-26s %10.1f us on the host (overlapped with the backward in training)\n",
                "embedding bwd: host bucketing", dims({N}).c_str(), b.embedding_host_ms * 1e3);
  }
  {
    Tensor w = pool.make(bf, {C}, 0.5f, 1.5f), dw = pool.make(bf, {C});
    auto s = sets(6 * act, [&] {
      return std::vector<Tensor>{pool.make(bf, {N, C}), pool.make(bf, {N, C}), pool.make(DType::F32, {N}, 0.5f, 2.0f),
                                 pool.make(bf, {N, C}), pool.make(bf, {N, C}), pool.make(bf, {N, C})};
    });
    const int ns = static_cast<int>(s.size());
    b.memory_bound("rmsnorm fwd", dims({N, C}), 2 * act, ns,
                   [&](int i) { rmsnorm_forward(s[i][1], s[i][2], s[i][0], w, 1e-5f); });
    b.memory_bound("residual+rmsnorm fwd", dims({N, C}), 4 * act, ns,
                   [&](int i) { residual_rmsnorm_forward(s[i][3], s[i][1], s[i][2], s[i][0], s[i][4], w, 1e-5f); });
    b.memory_bound("rmsnorm bwd", dims({N, C}), 4 * act, ns,
                   [&](int i) { rmsnorm_backward(s[i][5], dw, s[i][1], s[i][0], w, s[i][2]); });
  }
  {
    const double bytes = 2.0 * N * (H + Hkv) * D * 2;  // read + write the rotated heads
    Tensor cs = pool.make(DType::F32, {T, D / 2}), sn = pool.make(DType::F32, {T, D / 2});
    auto s = sets(N * Ht * D * 2.0, [&] { return std::vector<Tensor>{pool.make(bf, {B, T, Ht, D})}; });
    b.memory_bound("rope fwd", dims({B, T, Ht, D}), bytes, static_cast<int>(s.size()),
                   [&](int i) { rope_forward(s[i][0], static_cast<int>(H + Hkv), cs, sn); });
    b.memory_bound("rope bwd", dims({B, T, Ht, D}), bytes, static_cast<int>(s.size()),
                   [&](int i) { rope_backward(s[i][0], static_cast<int>(H + Hkv), cs, sn); });
  }
  {
    const double gu = N * 2.0 * F * 2, y = N * F * 2.0;
    auto s = sets(2 * gu + 2 * y, [&] {
      return std::vector<Tensor>{pool.make(bf, {N, 2 * F}), pool.make(bf, {N, F}), pool.make(bf, {N, F}),
                                 pool.make(bf, {N, 2 * F})};
    });
    const int ns = static_cast<int>(s.size());
    b.memory_bound("swiglu fwd", dims({N, F}), gu + y, ns, [&](int i) { swiglu_forward(s[i][1], s[i][0]); });
    b.memory_bound("swiglu bwd", dims({N, F}), 2 * gu + y, ns,
                   [&](int i) { swiglu_backward(s[i][3], s[i][2], s[i][0]); });
  }
  // Attention at the preset's shape, and at head dim 128 (the comparison point).
  for (int64_t d : {D, int64_t{128}}) {
    if (d == 128 && D == 128) continue;
    const int64_t h = d == D ? H : std::max<int64_t>(1, H * D / 128), hkv = d == D ? Hkv : h;
    const AttentionShape as{static_cast<int>(B), static_cast<int>(T), static_cast<int>(h), static_cast<int>(hkv),
                            static_cast<int>(d)};
    const double fwd = 4.0 * B * h * T * T * d / 2;
    auto s = sets(N * (h + 2 * hkv) * d * 4.0, [&] {
      return std::vector<Tensor>{pool.make(bf, {B, T, h + 2 * hkv, d}), pool.make(bf, {B, T, h, d}),
                                 pool.make(DType::F32, {B, h, T}), pool.make(bf, {B, T, h, d}),
                                 pool.make(bf, {B, T, h + 2 * hkv, d})};
    });
    const int ns = static_cast<int>(s.size());
    const std::string shp = dims({B, T, h, hkv, d});
    b.compute_bound("attention fwd d=" + std::to_string(d), shp, fwd, ns,
                    [&](int i) { attention_forward(s[i][1], s[i][2], s[i][0], as); });
    const int other_rows = cuda::kAttentionForwardRows == 64 ? 128 : 64;  // the forward's other query tile
    b.compute_bound("attention fwd d=" + std::to_string(d) + " (" + std::to_string(other_rows) + " rows)", shp, fwd,
                    ns, [&](int i) { cuda::attention_forward(s[i][1], s[i][2], s[i][0], as, other_rows); });
    b.compute_bound("attention bwd d=" + std::to_string(d), shp, 2.5 * fwd, ns,
                    [&](int i) { attention_backward(s[i][4], s[i][3], s[i][1], s[i][2], s[i][0], as); });
    b.compute_bound("attention bwd d=" + std::to_string(d) + " (serial)", shp, 2.5 * fwd, ns, [&](int i) {
      cuda::attention_backward(s[i][4], s[i][3], s[i][1], s[i][2], s[i][0], as, 0, /*overlap=*/false);
    });
    if (d <= 64) {  // the dQ kernel's other query tile (128 rows exists up to head dim 64)
      const int other_dq = cuda::kAttentionDqRows == 64 ? 128 : 64;
      b.compute_bound("attention bwd d=" + std::to_string(d) + " (dq " + std::to_string(other_dq) + ")", shp, 2.5 * fwd,
                      ns, [&](int i) {
                        cuda::attention_backward(s[i][4], s[i][3], s[i][1], s[i][2], s[i][0], as, other_dq);
                      });
    }
  }
  {  // The LM head's loss: logits (N, V) bf16, read twice and written once in place.
    const double logits = N * static_cast<double>(V) * 2;
    Tensor tg = pool.tokens(N, V, 2), loss = pool.make(DType::F32, {N});
    auto s = sets(logits, [&] { return std::vector<Tensor>{pool.make(bf, {N, V})}; });
    b.memory_bound("cross-entropy fwd+bwd", dims({N, V}), 2 * logits, static_cast<int>(s.size()),
                   [&](int i) { cross_entropy_forward_backward(loss, s[i][0], tg, 1.0f / N); });
  }
  {  // The layer's matmuls (forward shapes; backward ones have the same FLOPs).
    struct Mm {
      const char* name;
      int64_t out, in;
    } mms[] = {{"matmul qkv", Ht * D, C},
               {"matmul o", C, H * D},
               {"matmul gate_up", 2 * F, C},
               {"matmul down", C, F},
               {"matmul lm_head", V, C}};
    for (const Mm& m : mms) {
      Tensor x = pool.make(bf, {N, m.in}), w = pool.make(bf, {m.out, m.in}), y = pool.make(bf, {N, m.out});
      b.compute_bound(m.name, dims({N, m.out, m.in}), 2.0 * N * m.out * m.in, 1, [&](int) {
        MatmulParams p;
        p.out = y;
        p.a = x;
        p.b = w;
        p.trans_b = true;
        matmul(p);
      });
    }
  }
  {  // AdamW over a tensor the size of the model: 28 bytes per parameter.
    const int64_t n = c.num_params();
    Tensor p = pool.make(bf, {n}), master = pool.make(DType::F32, {n}), g = pool.make(bf, {n}),
           m = pool.make(DType::F32, {n}, -1e-3f, 1e-3f), v = pool.make(DType::F32, {n}, 0.0f, 1e-6f);
    AdamWHyper h;
    h.lr = 1e-4;
    b.memory_bound("adamw (fp32 master)", dims({n}), 28.0 * n, 1,
                   [&](int) { adamw_update_master(p, master, g, m, v, h); });
  }
  {  // The clip norm: squares of every gradient (bf16, the model's tensors), one readback.
    std::vector<Tensor> grads;
    double bytes = 0;
    for (const ParamInfo& p : llama_param_infos(c)) {
      grads.push_back(pool.make(bf, p.shape));
      bytes += 2.0 * p.shape.numel();
    }
    b.memory_bound("grad norm (sum of squares)", strformat("%zu tensors", grads.size()), bytes, 1,
                   [&](int) { sum_squares(grads); });
  }
}

// forward + backward + AdamW (fp32 masters) on the real model.
nlohmann::json bench_step(Bench& b, const LlamaConfig& c, const Options& o) {
  const int64_t N = static_cast<int64_t>(o.batch) * o.seq;
  ArenaPlan plan;
  Llama::plan(plan, c, {o.batch, o.seq}, true, DType::BF16);
  plan_scratch(plan, Device::CUDA);  // as mu-train does: the ops' scratch in the arena
  size_t free_b = 0, total_b = 0;
  cuda_mem_info(&free_b, &total_b);
  std::printf("training step: %s, B=%d T=%d\n%s", c.summary().c_str(), o.batch, o.seq, plan.describe(free_b).c_str());
  std::printf("\n");
  Arena arena(plan, Device::CUDA, free_b, "lower --batch-size or --seq-len");
  ScratchLoan scratch(arena);
  Llama m(c, arena, {o.batch, o.seq}, true);
  m.init_random(1);
  Pool pool;
  struct State {
    Tensor w, g, master, m, v;
  };
  std::vector<State> st;
  const auto ws = m.weights().named(c), gs = m.grads().named(c);
  for (size_t i = 0; i < ws.size(); i++) {
    const Shape& shape = ws[i].second.shape;
    State s{ws[i].second, gs[i].second, pool.make(DType::F32, shape), pool.make_filled(DType::F32, shape, 0.0f),
            pool.make_filled(DType::F32, shape, 0.0f)};
    copy(s.master, s.w);  // bf16 -> f32
    st.push_back(s);
  }
  std::vector<int32_t> tok(N);
  std::mt19937 rng(3);
  for (auto& t : tok) t = static_cast<int32_t>(rng() % c.vocab_size);
  m.set_batch(tok.data(), tok.data());
  int64_t step = 0;
  const double ms = median_ms(
      [&](int) {
        m.zero_grads();
        m.forward_backward(1.0f / N);
        AdamWHyper h;
        h.lr = 1e-4;
        h.weight_decay = 0.1;
        h.step = ++step;
        for (State& s : st) adamw_update_master(s.w, s.master, s.g, s.m, s.v, h);
      },
      1, 1, o.step_runs);
  // Device memory the step holds (arena, optimizer state, cuBLASLt workspace, scratch): the
  // free memory it consumed, comparable with torch.cuda.max_memory_reserved on the PyTorch side.
  size_t free_after = 0;
  cuda_mem_info(&free_after, &total_b);
  const double used_bytes = static_cast<double>(free_b) - static_cast<double>(free_after);
  const double tok_s = N / (ms * 1e-3);
  // FLOPs per token: 6N + 6 L H D T (tools/lib_cost.h: N without an untied embedding table).
  const double per_token = train_flops_per_token(c, o.seq);
  const double tflops = per_token * tok_s / 1e12;
  std::printf("  step %.1f ms | %.0f tokens/s | %.1f TFLOP/s (6N + attention) | MFU %.1f%% of the measured GEMM", ms,
              tok_s, tflops, 100 * tflops / b.gemm_tflops);
  if (o.peak_tflops > 0) std::printf(", %.1f%% of %.0f TFLOP/s peak", 100 * tflops / o.peak_tflops, o.peak_tflops);
  std::printf("\n");
  std::printf("  device memory held by the step: %.1f MiB\n", used_bytes / 1048576.0);
  return {{"ms", ms},
          {"memory_bytes", used_bytes},
          {"tokens_per_s", tok_s},
          {"tflops", tflops},
          {"flops_per_token", per_token},
          {"mfu_vs_gemm", tflops / b.gemm_tflops},
          {"mfu_vs_peak", o.peak_tflops > 0 ? tflops / o.peak_tflops : 0.0}};
}

}  // namespace

int main(int argc, char** argv) {
  return run_main("mu-bench", [&] {
    Options o;
    Cli cli("mu-bench", "Throughput of the cuda kernels, cuBLASLt and a training step on this GPU.");
    cli.add_string("config", &o.config, "PRESET", "model preset or config.json whose training sizes are used");
    cli.add_int("batch-size", &o.batch, "sequences per batch");
    cli.add_int("seq-len", &o.seq, "tokens per sequence");
    cli.add_int64("gemm-size", &o.gemm, "M = N = K of the GEMM ceiling measurement");
    cli.add_int("runs", &o.runs, "timed runs per kernel (the median is reported)");
    cli.add_int("warmup", &o.warmup, "untimed runs first");
    cli.add_flag("step", &o.step, "also time a full training step (forward, backward, AdamW)");
    cli.add_int("step-runs", &o.step_runs, "timed training steps");
    cli.add_flag("muon", &o.muon,
                 "also time Muon's optimizer step: the orthogonalization batched vs one matrix at a time, whole "
                 "GEMMs vs symmetric 2x2 and 4x4 blocks, its TFLOP/s against the GEMM ceiling, and the whole step "
                 "against the training step");
    cli.add_float("peak-tflops", &o.peak_tflops,
                  "the GPU's dense bf16 peak for MFU (989 for H100 SXM); 0: known from the device name (H100, H200, "
                  "GB200, B200, A100, L4, L40S, RTX 4090), else MFU against the measured GEMM only");
    cli.add_string("json", &o.json, "FILE", "also write the results as JSON");
    cli.section("cost model (no GPU needed; docs/distributed.md)");
    cli.add_flag("cost-model", &o.cost_model,
                 "predict data-parallel scaling of --config instead of measuring: gradient reduce-scatter, weight "
                 "all-gather and sharded Muon against one GPU's step (--peak-tflops defaults to 989 here)");
    cli.add_string("worlds", &o.worlds, "LIST", "world sizes for --cost-model, e.g. 1,8,64");
    cli.add_string("optimizer", &o.optimizer, "muon|adamw", "optimizer for --cost-model");
    cli.add_float("link-gbs", &o.link_gbs, "per-GPU collective bus bandwidth in GB/s (NVLink ~400, 400G IB NIC ~45)");
    cli.add_float("mfu", &o.mfu, "forward+backward model FLOPs utilisation assumed by --cost-model");
    cli.add_float("ortho-tflops", &o.ortho_tflops, "achieved Newton-Schulz GEMM rate assumed by --cost-model");
    cli.add_float("hbm-gbs", &o.hbm_gbs, "achieved memory bandwidth of the element-wise optimizer kernels");
    cli.add_string("measured", &o.measured, "FILE",
                   "a `mu-bench --json` result from one GPU: its measured rates replace --ortho-tflops, --hbm-gbs "
                   "and (same batch and seq-len) the step estimate");
    if (!cli.parse(argc, argv)) return 0;
    if (o.cost_model) return run_cost_model(o);
    check_json_writable(o);  // before any measurement: a bad --json must not fail at the end
    if (cuda_device_count() == 0) {
      std::fprintf(stderr, "mu-bench: no CUDA device found; mu-bench measures the GPU backend and needs one\n");
      return 1;
    }
    MU_CHECK(o.batch > 0 && o.seq > 0 && o.runs > 0 && o.warmup >= 0 && o.gemm > 0,
             "sizes and counts must be positive");
    MU_CHECK(o.peak_tflops >= 0, "--peak-tflops %g: must be positive (or 0: known from the device name)",
             o.peak_tflops);
    const LlamaConfig cfg = load_config(o.config);
    const cuda::DeviceInfo& dev = cuda::device_info();
    std::printf("device %s: sm_%d%d, %d SMs, L2 %.0f MiB, %.1f GiB\n", dev.name.c_str(), dev.cc_major, dev.cc_minor,
                dev.sm_count, dev.l2_bytes / 1048576.0, dev.global_bytes / 1073741824.0);
    if (o.peak_tflops <= 0) {
      o.peak_tflops = known_peak_bf16_tflops(dev.name);
      if (o.peak_tflops > 0)
        std::printf("peak dense bf16 %.0f TFLOP/s (datasheet, from the device name; --peak-tflops overrides)\n",
                    o.peak_tflops);
      else
        std::printf("peak dense bf16: %s is not in mu-bench's table; pass --peak-tflops for MFU against the peak\n",
                    dev.name.c_str());
    }
    Bench b(o, dev.l2_bytes);
    nlohmann::json step;
    {
      Pool pool;
      bench_ceilings(b, pool, o, dev);
    }
    {
      Pool pool;
      bench_kernels(b, pool, cfg, o);
    }
    if (o.step) step = bench_step(b, cfg, o);
    nlohmann::json muon;
    if (o.muon) {
      MuonBenchOptions mo;
      mo.warmup = o.warmup;
      mo.runs = std::max(3, o.runs / 2);
      mo.gemm_tflops = b.gemm_tflops;
      mo.train_step_ms = step.is_null() ? 0.0 : step["ms"].get<double>();
      muon = bench_muon(cfg, mo);
    }
    if (!o.json.empty()) {
      nlohmann::json j;
      j["device"] = dev.name;
      j["config"] = o.config;
      j["batch_size"] = o.batch;
      j["seq_len"] = o.seq;
      j["copy_gbs"] = b.copy_gbs;
      j["gemm_tflops"] = b.gemm_tflops;
      j["peak_tflops"] = o.peak_tflops;
      j["embedding_bwd_host_ms"] = b.embedding_host_ms;
      for (const Row& r : b.rows)
        j["kernels"].push_back({{"name", r.name},
                                {"shape", r.shape},
                                {"ms", r.ms},
                                {"bytes", r.bytes},
                                {"flops", r.flops},
                                {"rate", r.rate},
                                {"fraction_of_ceiling", r.frac}});
      if (!step.is_null()) j["step"] = step;
      if (!muon.is_null()) j["muon"] = muon;
      write_json(o.json, j);
    }
    return 0;
  });
}
