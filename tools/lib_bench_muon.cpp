#include "tools/lib_bench_muon.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "core/arena.h"
#include "core/cuda_check.h"
#include "kernels/elementwise.h"
#include "optim/muon.h"
#include "train/optim_setup.h"

namespace mu {
namespace {

// Median milliseconds of fn() over `runs` runs after `warmup`, by CUDA events.
double median_ms(const std::function<void()>& fn, int warmup, int runs) {
  for (int i = 0; i < warmup; i++) fn();
  std::vector<cudaEvent_t> ev(2 * static_cast<size_t>(runs));
  for (auto& e : ev) MU_CUDA_CHECK(cudaEventCreate(&e));
  for (int i = 0; i < runs; i++) {
    MU_CUDA_CHECK(cudaEventRecord(ev[2 * i]));
    fn();
    MU_CUDA_CHECK(cudaEventRecord(ev[2 * i + 1]));
  }
  MU_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<double> ms(static_cast<size_t>(runs));
  for (int i = 0; i < runs; i++) {
    float t = 0;
    MU_CUDA_CHECK(cudaEventElapsedTime(&t, ev[2 * i], ev[2 * i + 1]));
    ms[i] = t;
  }
  for (auto& e : ev) cudaEventDestroy(e);
  std::nth_element(ms.begin(), ms.begin() + runs / 2, ms.end());
  return ms[runs / 2];
}

// The preset's parameters as bf16 device tensors with gradients, a Muon over them.
struct Rig {
  ArenaPlan plan;
  std::unique_ptr<Arena> arena;
  std::vector<ParamRef> refs;
  std::unique_ptr<Muon> muon;
};

std::unique_ptr<Rig> make_rig(const LlamaConfig& c, const MuonConfig& cfg) {
  auto r = std::make_unique<Rig>();
  r->refs = llama_param_shapes(c, DType::BF16, Device::CUDA);
  for (const ParamRef& p : r->refs) {
    r->plan.add("param." + p.name, Region::Weights, DType::BF16, p.param.shape);
    r->plan.add("grad." + p.name, Region::Grads, DType::BF16, p.param.shape);
  }
  const MuonSplits splits = llama_muon_splits(c);
  Muon::plan(r->plan, r->refs, cfg, splits);
  size_t free_b = 0, total_b = 0;
  cuda_mem_info(&free_b, &total_b);
  r->arena = std::make_unique<Arena>(r->plan, Device::CUDA, free_b, "use a smaller --config");
  uint64_t seed = 100;
  for (ParamRef& ref : r->refs) {  // random, not constant: tensor cores run faster on constant data
    ref.param = r->arena->get("param." + ref.name);
    ref.grad = r->arena->get("grad." + ref.name);
    fill_uniform(ref.param, ++seed, -0.05f, 0.05f);
    fill_uniform(ref.grad, ++seed, -1e-3f, 1e-3f);
  }
  r->muon = std::make_unique<Muon>(r->refs, *r->arena, cfg, splits);
  r->muon->init_masters();
  return r;
}

}  // namespace

nlohmann::json bench_muon(const LlamaConfig& c, const MuonBenchOptions& o) {
  MuonConfig base;
  base.ns_steps = o.ns_steps;
  base.ortho_bf16 = true;
  // The orthogonalization alone, per shape: batched (count, m, n) vs one (1, m, n) at a time.
  auto rig = make_rig(c, base);
  std::map<std::pair<int64_t, int64_t>, int64_t> shapes;  // (m, n) -> count
  for (const MuonMatrix& m : rig->muon->matrices()) shapes[{std::min(m.rows, m.cols), std::max(m.rows, m.cols)}]++;
  rig.reset();
  std::printf("muon: %s, %d orthogonalizer steps\n", c.summary().c_str(), o.ns_steps);
  std::printf("  %-12s %6s %10s %10s %9s %10s %10s %10s %10s %9s %9s\n", "shape", "count", "GFLOP", "batched",
              "TFLOP/s", "whole", "2x2 blocks", "4x4 blocks", "one by one", "speedup", "fp32");
  double flops_all = 0, ms_batched = 0, ms_single = 0, ms_f32 = 0;
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& entry : shapes) {  // (no structured bindings: lambdas capture these, C++17)
    const int64_t m = entry.first.first, n = entry.first.second, count = entry.second;
    MuonMatrix shape;
    shape.rows = m;
    shape.cols = n;
    const double flops = static_cast<double>(count) * muon_ortho_flops(shape, o.ns_steps);
    auto run = [&](int64_t batch, DType wdt, int blocks) {
      std::vector<void*> mem;
      auto make = [&](DType t, Shape s) {
        void* p = nullptr;
        MU_CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(256, static_cast<size_t>(s.numel()) * dtype_size(t))));
        mem.push_back(p);
        Tensor x(p, t, Device::CUDA, s);
        fill_uniform(x, mem.size(), -1.0f, 1.0f);  // the workspaces are overwritten; x is the input
        return x;
      };
      Tensor x = make(DType::F32, {batch, m, n});
      OrthoWorkspace ws{make(wdt, {batch, m, n}), make(wdt, {batch, m, m}), make(wdt, {batch, m, m}),
                        wdt == DType::BF16 ? make(DType::BF16, {batch, m, n}) : Tensor()};
      const int64_t repeats = count / batch;  // one at a time: `count` calls on one matrix
      const double ms = median_ms(
          [&] {
            for (int64_t i = 0; i < repeats; i++) orthogonalize(x, ws, OrthoKind::Ns5, o.ns_steps, blocks);
          },
          o.warmup, o.runs);
      for (void* p : mem) cudaFree(p);
      return ms;
    };
    // The symmetric products as whole GEMMs, as 3 of 4 blocks and as 10 of 16 (optim/
    // orthogonalize.h; small m may give fewer blocks), and what orthogonalize chooses by itself.
    const double whole = run(count, DType::BF16, 1), blocked = run(count, DType::BF16, 2);
    const double blocked4 = run(count, DType::BF16, 4);
    const int chosen = default_symmetric_blocks(m);
    const double b = chosen == 1 ? whole : chosen == 2 ? blocked : chosen == 4 ? blocked4 : run(count, DType::BF16, chosen);
    const double s = run(1, DType::BF16, 0), f = run(count, DType::F32, 0);
    flops_all += flops;
    ms_batched += b;
    ms_single += s;
    ms_f32 += f;
    std::printf("  %5lldx%-6lld %6lld %10.2f %8.3fms %9.1f %8.3fms %8.3fms %8.3fms %8.3fms %8.2fx %7.3fms\n",
                static_cast<long long>(m), static_cast<long long>(n), static_cast<long long>(count), flops / 1e9, b,
                flops / b / 1e9, whole, blocked, blocked4, s, s / b, f);
    rows.push_back({{"m", m}, {"n", n}, {"count", count}, {"flops", flops}, {"batched_ms", b}, {"whole_gemms_ms", whole},
                    {"blocks_2x2_ms", blocked}, {"blocks_4x4_ms", blocked4}, {"one_by_one_ms", s}, {"fp32_ms", f}});
  }
  const double tflops = flops_all / ms_batched / 1e9;
  std::printf("  orthogonalization: %.3f ms batched bf16, %.1f TFLOP/s", ms_batched, tflops);
  if (o.gemm_tflops > 0) std::printf(" = %.1f%% of the measured bf16 GEMM", 100 * tflops / o.gemm_tflops);
  std::printf("; one at a time %.3f ms (batched is %.2fx faster); fp32 batched %.3f ms\n", ms_single,
              ms_single / ms_batched, ms_f32);

  // The whole Muon step (every parameter: Muon's matrices and its AdamW's).
  rig = make_rig(c, base);
  const double step_ms = median_ms([&] { rig->muon->step(1e-3, 1.0f); }, o.warmup, o.runs);
  std::printf("  whole Muon step: %.3f ms", step_ms);
  if (o.train_step_ms > 0) std::printf(" = %.1f%% of the training step (%.1f ms)", 100 * step_ms / o.train_step_ms,
                                       o.train_step_ms);
  std::printf("\n");
  return {{"shapes", rows},
          {"ortho_flops", flops_all},
          {"ortho_batched_ms", ms_batched},
          {"ortho_tflops", tflops},
          {"ortho_fraction_of_gemm", o.gemm_tflops > 0 ? tflops / o.gemm_tflops : 0.0},
          {"ortho_one_by_one_ms", ms_single},
          {"ortho_fp32_ms", ms_f32},
          {"muon_step_ms", step_ms},
          {"muon_step_fraction_of_train_step", o.train_step_ms > 0 ? step_ms / o.train_step_ms : 0.0}};
}

}  // namespace mu
