// The cuda Muon ops (kernels/cuda/muon.cu) against the cpu backend on random inputs, and a
// whole Muon step (BF16 params with fp32 masters on cuda) against the cpu Muon (F32 params)
// on the same bf16-representable weights and gradients. Outputs are poisoned with NaN first
// wherever the op writes a separate tensor. See gpu_kernels.cpp for the conventions.
//
// Tolerances: the cpu reference is compiled in gnu++17 with -march=native, so GCC may fuse a
// multiply and an add into an FMA where the cuda kernel rounds twice (explicit __f*_rn); the
// element-wise ops therefore agree to a few fp32 ulps, not bitwise.
#include <map>
#include <memory>
#include <tuple>

#include "core/arena.h"
#include "kernels/muon.h"
#include "optim/muon.h"
#include "tests/gpu_test_util.h"
#include "tests/util_linalg.h"

using namespace mu;
using namespace mu::gputest;

namespace {

class GpuMuon : public GpuTest {};

// A few fp32 ulps on O(1) values (see the header); atol covers cancellation to ~0.
constexpr double kUlpsAtol = 1e-6, kUlpsRtol = 2e-6;

struct Mat {
  int64_t rows, cols;
};
// Odd sizes (partial 32 x 32 tiles), a single row, a square, tall and wide.
const Mat kShapes[] = {{33, 70}, {70, 33}, {1, 5}, {64, 64}, {7, 1}};

std::string shape_str(Mat s) { return std::to_string(s.rows) + "x" + std::to_string(s.cols); }

// ---- muon_momentum ----------------------------------------------------------------------

TEST_F(GpuMuon, MomentumMatchesCpu) {
  std::mt19937 rng(31);
  for (Mat s : kShapes)
    for (bool tr : {false, true})
      for (MomentumKind kind : {MomentumKind::Sgd, MomentumKind::Ema})
        for (bool nesterov : {true, false})
          for (DType gdt : {DType::F32, DType::BF16}) {
            SCOPED_TRACE(shape_str(s) + (tr ? " transposed" : "") + (kind == MomentumKind::Sgd ? " sgd" : " ema") +
                         (nesterov ? " nesterov" : "") + " grad " + dtype_name(gdt));
            const int64_t A = s.rows, B = s.cols, n = A * B;
            const std::vector<float> buf = random_vec(n, rng), g = rounded_if(random_vec(n, rng, -3.0f, 3.0f), gdt);
            const Shape out_shape = tr ? Shape{B, A} : Shape{A, B};
            // Every host tensor a params struct views is a named local: a temporary would be
            // freed before the op reads it.
            HostTensor hb = host_f32({A, B}, buf), hg = host_f32({A, B}, g), ho = HostTensor::f32(out_shape);
            MuonMomentumParams p;
            p.kind = kind;
            p.mu = 0.9f;
            p.nesterov = nesterov;
            p.transpose_out = tr;
            p.grad_scale = 0.7f;
            p.buf = hb;
            p.grad = hg;
            p.out = ho;
            muon_momentum(p);
            DevTensor db(DType::F32, {A, B}), dg(gdt, {A, B}), dout(DType::F32, out_shape);
            db.upload(buf);
            dg.upload(g);
            dout.poison();
            p.buf = db;
            p.grad = dg;
            p.out = dout;
            muon_momentum(p);
            expect_close(db.download(), values(hb), kUlpsAtol, kUlpsRtol, "buf");
            expect_close(dout.download(), values(ho), kUlpsAtol, kUlpsRtol, "out");
          }
}

// ---- frobenius_normalize ----------------------------------------------------------------

TEST_F(GpuMuon, FrobeniusNormalizeMatchesCpu) {
  std::mt19937 rng(32);
  // 5 x 7000 = 35000 elements per item: three 16384-element chunks, the last partial; item 1
  // is all zeros (eps keeps it at zero); 1 x 1 items: a single element.
  const std::vector<std::tuple<int64_t, int64_t, int64_t>> cases = {{3, 5, 7000}, {4, 1, 1}, {2, 17, 40}};
  const std::vector<std::pair<double, double>> norms = {{1.0, 1e-7}, {1.02, 1e-6}};  // ns5's and Polar Express's
  for (auto [batch, m, n] : cases) {
    SCOPED_TRACE(std::to_string(batch) + "x" + std::to_string(m) + "x" + std::to_string(n));
    std::vector<float> x = random_vec(batch * m * n, rng, -2.0f, 2.0f);
    if (batch > 1) std::fill(x.begin() + m * n, x.begin() + 2 * m * n, 0.0f);
    for (auto [scale, eps] : norms) {
      HostTensor hx = host_f32({batch, m, n}, x);
      frobenius_normalize(hx, scale, eps);
      DevTensor dx(DType::F32, {batch, m, n});
      dx.upload(x);
      frobenius_normalize(dx, scale, eps);
      // the factor is formed in double from a double sum (another order): the same float or 1
      // ulp apart, then one fp32 multiply
      expect_close(dx.download(), values(hx), 1e-7, 1e-6, "x");
      if (batch > 1) {
        const std::vector<float> got = dx.download();
        for (int64_t i = m * n; i < 2 * m * n; i++) ASSERT_EQ(got[i], 0.0f) << "zero item at " << i;
      }
    }
  }
}

// ---- normuon_normalize ------------------------------------------------------------------

TEST_F(GpuMuon, NorMuonMatchesCpu) {
  std::mt19937 rng(33);
  for (Mat s : kShapes)
    for (bool per_row : {true, false})
      for (bool zero : {false, true}) {
        SCOPED_TRACE(shape_str(s) + (per_row ? " per row" : " per column") + (zero ? " zero O" : ""));
        const int64_t m = s.rows, n = s.cols, len = per_row ? m : n;
        HostTensor hv = host_f32({len}, random_vec(len, rng, 0.0f, 1e-2f));
        DevTensor dv(DType::F32, {len});
        dv.upload(values(hv));
        for (int step = 0; step < 2; step++) {  // the second step starts from the updated S
          SCOPED_TRACE("step " + std::to_string(step));
          std::vector<float> o = random_vec(m * n, rng, -0.5f, 0.5f);
          if (zero) std::fill(o.begin(), o.end(), 0.0f);
          HostTensor ho = host_f32({m, n}, o);
          NorMuonParams p;
          p.beta2 = 0.95f;
          p.per_row = per_row;
          p.o = ho;
          p.v = hv;
          normuon_normalize(p);
          DevTensor dO(DType::F32, {m, n});
          dO.upload(o);
          p.o = dO;
          p.v = dv;
          normuon_normalize(p);
          // double sums in another order: S may differ by an ulp, the factors by ~1e-7 relative
          expect_close(dO.download(), values(ho), 1e-7, 2e-6, "o");
          expect_close(dv.download(), values(hv), 1e-12, 2e-6, "S");
          if (zero) {
            for (float x : dO.download()) ASSERT_EQ(x, 0.0f) << "a zero O must give a zero update";
          }
        }
      }
}

// ---- muon_apply ---------------------------------------------------------------------------

TEST_F(GpuMuon, ApplyMatchesCpu) {
  std::mt19937 rng(34);
  for (Mat s : kShapes)
    for (bool tr : {false, true})
      for (WeightDecayKind wd : {WeightDecayKind::Decoupled, WeightDecayKind::Cautious, WeightDecayKind::None})
        for (DType pdt : {DType::F32, DType::BF16}) {
          SCOPED_TRACE(shape_str(s) + (tr ? " o transposed" : "") + " wd " + std::to_string(static_cast<int>(wd)) +
                       " param " + dtype_name(pdt));
          const int64_t A = s.rows, B = s.cols, n = A * B;
          const std::vector<float> w = rounded_if(random_vec(n, rng), pdt), o = random_vec(n, rng);
          const Shape o_shape = tr ? Shape{B, A} : Shape{A, B};
          HostTensor hw = host_f32({A, B}, w), ho = host_f32(o_shape, o);
          MuonApplyParams p;
          p.o_transposed = tr;
          p.lr = 0.05;
          p.scale = 1.3;
          p.weight_decay = 0.5;  // large, so the decay (and the cautious mask) shows in bf16
          p.wd_kind = wd;
          p.param = hw;
          p.o = ho;
          muon_apply(p);
          DevTensor dw(pdt, {A, B}), dO(DType::F32, o_shape);
          dw.upload(w);
          dO.upload(o);
          p.param = dw;
          p.o = dO;
          muon_apply(p);
          // bf16: the fp32 result (a few ulps off the cpu's) rounded once: within one bf16 ulp (2^-8)
          const double rtol = pdt == DType::BF16 ? 1.0 / 256 : kUlpsRtol;
          expect_close(dw.download(), values(hw), kUlpsAtol, rtol, "param");
        }
}

// ---- the bf16 orthogonalization (cuBLASLt strided-batched, bf16 operands) -------------------

// Random Gaussian batches of aspect ratio 2.5 and 4 (and a square one): the bf16 iteration must
// stay close to the fp32 one and keep the singular values in the float64 bands of issue 5
// (ns5 about [0.68, 1.14], Polar Express about [0.86, 1.15] after 5 steps), widened for bf16:
// each step rounds X, A' and B' to 8 bits of mantissa (relative 2^-9 = 0.002 per element),
// which moves singular values by ~1e-2 over 5 steps; a wrong stride, transpose or coefficient
// lands far outside.
TEST_F(GpuMuon, Bf16OrthogonalizeStaysInTheBand) {
  std::mt19937 rng(36);
  const std::vector<std::tuple<int64_t, int64_t, int64_t>> shapes = {{3, 64, 160}, {2, 32, 128}, {2, 48, 48}};
  for (auto [batch, m, n] : shapes)
    for (OrthoKind kind : {OrthoKind::Ns5, OrthoKind::PolarExpress})
      for (int blocks : {1, 2, 3}) {  // whole GEMMs, and the symmetric products by blocks
        SCOPED_TRACE(std::string(ortho_name(kind)) + " " + std::to_string(batch) + "x" + std::to_string(m) + "x" +
                     std::to_string(n) + " blocks " + std::to_string(blocks));
        std::normal_distribution<float> g(0.0f, 1.0f);
        std::vector<float> x(static_cast<size_t>(batch * m * n));
        for (float& v : x) v = g(rng);
        // fp32 on the cpu: the reference
        HostTensor hx = host_f32({batch, m, n}, x), h2 = HostTensor::f32({batch, m, n});
        HostTensor hg = HostTensor::f32({batch, m, m}), hp = HostTensor::f32({batch, m, m});
        orthogonalize(hx, OrthoWorkspace{h2, hg, hp, Tensor()}, kind, 5);
        // bf16 on the device, outputs poisoned
        DevTensor dx(DType::F32, {batch, m, n}), d2(DType::BF16, {batch, m, n}), db(DType::BF16, {batch, m, n});
        DevTensor dg(DType::BF16, {batch, m, m}), dp(DType::BF16, {batch, m, m});
        dx.upload(x);
        d2.poison();
        db.poison();
        dg.poison();
        dp.poison();
        orthogonalize(dx, OrthoWorkspace{d2, dg, dp, db}, kind, 5, blocks);
        const std::vector<float> got = dx.download();
        for (float v : got) ASSERT_TRUE(std::isfinite(v));
        // ~1e-2 expected from the rounding above; 5e-2 bounds it
        EXPECT_LT(rel_l2(got, values(hx)), 5e-2);
        const bool square = m == n;  // square Gaussians have tiny singular values: only the top is banded
        const double lo = kind == OrthoKind::Ns5 ? 0.6 : 0.8, hi = 1.22;
        for (int64_t b = 0; b < batch; b++) {
          const std::vector<double> sv = mu::test::singular_values(got.data() + b * m * n, m, n);
          EXPECT_LE(sv.back(), hi) << "item " << b;
          if (!square) {
            EXPECT_GE(sv.front(), lo) << "item " << b;
          }
        }
      }
}

// The mirror copy that completes a symmetric product computed by blocks: an exact copy, so the
// device must equal the cpu bit for bit, in both dtypes; odd sizes leave partial 32 x 32 tiles
// and a narrower last block, and block 1 mirrors everything below the diagonal.
TEST_F(GpuMuon, MirrorLowerBlocksMatchesCpu) {
  std::mt19937 rng(37);
  for (DType dt : {DType::F32, DType::BF16})
    for (auto [m, block] : std::vector<std::pair<int64_t, int64_t>>{{70, 24}, {70, 35}, {33, 1}, {96, 64}, {5, 5}}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " m=" + std::to_string(m) + " block=" + std::to_string(block));
      const int64_t batch = 3;
      const std::vector<float> x = rounded_if(random_vec(batch * m * m, rng), dt);
      HostTensor hx = host_f32({batch, m, m}, x);
      mirror_lower_blocks(hx, block);
      DevTensor dx(dt, {batch, m, m});
      dx.upload(x);
      mirror_lower_blocks(dx, block);
      expect_close(dx.download(), values(hx), 0.0, 0.0, "x");
    }
}

// ---- a whole Muon step ------------------------------------------------------------------

struct Rig {
  ArenaPlan plan;
  std::unique_ptr<Arena> arena;
  std::vector<ParamRef> refs;
  std::unique_ptr<Muon> opt;
};

struct ParamSpec {
  std::string name;
  Shape shape;
  bool hidden;
};
// Stacked wide and tall hidden matrices (batched together per shape, the tall one transposed),
// a 2-D hidden one, and a non-hidden one for the inner AdamW.
const std::vector<ParamSpec> kParams = {{"layers.wide", {3, 24, 56}, true},
                                        {"layers.tall", {2, 56, 24}, true},
                                        {"square", {40, 40}, true},
                                        {"embed", {30, 16}, false}};

std::unique_ptr<Rig> make_rig(Device dev, const MuonConfig& cfg) {
  auto r = std::make_unique<Rig>();
  const DType dt = dev == Device::CUDA ? DType::BF16 : DType::F32;
  for (const ParamSpec& p : kParams) {
    r->plan.add("param." + p.name, Region::Weights, dt, p.shape);
    r->plan.add("grad." + p.name, Region::Grads, dt, p.shape);
    r->refs.push_back({p.name, Tensor(nullptr, dt, dev, p.shape), Tensor(), true, p.hidden});
  }
  Muon::plan(r->plan, r->refs, cfg, MuonSplits{});
  r->arena = std::make_unique<Arena>(r->plan, dev);
  for (ParamRef& ref : r->refs) {
    ref.param = r->arena->get("param." + ref.name);
    ref.grad = r->arena->get("grad." + ref.name);
  }
  r->opt = std::make_unique<Muon>(r->refs, *r->arena, cfg, MuonSplits{});
  return r;
}

void put(Tensor t, const std::vector<float>& v) {
  std::vector<char> raw(t.nbytes());
  convert_from_f32(raw.data(), t.dtype, v.data(), v.size());
  copy_from_host(t, raw.data());
}

TEST_F(GpuMuon, WholeStepWithBf16ParamsMatchesCpu) {
  MuonConfig plain;
  plain.lr = plain.muon_lr = 0.02;
  plain.adamw.weight_decay = 0.1;
  MuonConfig variant = plain;
  variant.ortho = OrthoKind::PolarExpress;
  variant.momentum_kind = MomentumKind::Ema;
  variant.nesterov = false;
  variant.normuon = true;
  variant.wd_kind = WeightDecayKind::Cautious;
  variant.lr_scale = LrScaleKind::Original;
  MuonConfig fast = variant;
  fast.ortho_bf16 = true;  // the training default on cuda
  for (const MuonConfig& cfg : {plain, variant, fast}) {
    SCOPED_TRACE(std::string(cfg.normuon ? "polar_express + ema + normuon + cautious" : "ns5 + sgd nesterov + decoupled") +
                 (cfg.ortho_bf16 ? " (bf16 orthogonalization)" : ""));
    MuonConfig cpu_cfg = cfg;
    cpu_cfg.ortho_bf16 = false;  // the cpu is fp32
    auto cpu = make_rig(Device::CPU, cpu_cfg), gpu = make_rig(Device::CUDA, cfg);
    std::mt19937 rng(35);
    std::map<std::string, std::vector<float>> w0;
    for (size_t i = 0; i < kParams.size(); i++) {
      std::vector<float> w = random_vec(static_cast<size_t>(kParams[i].shape.numel()), rng);
      round_bf16(w);  // the weights both sides start from are bf16 values
      w0[kParams[i].name] = w;
      put(cpu->refs[i].param, w);
      put(gpu->refs[i].param, w);
    }
    cpu->opt->init_masters();  // no-op on the cpu (F32 params have no masters)
    gpu->opt->init_masters();
    const double lrs[] = {0.02, 0.015, 0.01};
    for (int step = 0; step < 3; step++) {
      for (size_t i = 0; i < kParams.size(); i++) {
        std::vector<float> g = random_vec(static_cast<size_t>(kParams[i].shape.numel()), rng, -2.0f, 2.0f);
        round_bf16(g);  // the cuda grads are BF16
        put(cpu->refs[i].grad, g);
        put(gpu->refs[i].grad, g);
      }
      if (step == 2) {
        cpu->opt->request_diagnostics();
        gpu->opt->request_diagnostics();
      }
      cpu->opt->step(lrs[step], 0.8f);
#ifdef MU_CUDA_EMU
      const mu_emu::Counters before = mu_emu::counters();
#endif
      gpu->opt->step(lrs[step], 0.8f);
#ifdef MU_CUDA_EMU
      // Issue 5: no per-matrix host synchronisation. Without diagnostics the step never waits
      // for the device, and once warm (step 0 grew the runtime's scratch) allocates nothing.
      const mu_emu::Counters after = mu_emu::counters();
      if (step == 1) {
        EXPECT_EQ(after.host_syncs - before.host_syncs, 0u) << "host synchronisations in one Muon step";
        EXPECT_EQ(after.mallocs - before.mallocs, 0u) << "cudaMalloc calls in one warm Muon step";
        EXPECT_GT(after.launches - before.launches, 0u);
      }
#endif
    }
    for (size_t i = 0; i < kParams.size(); i++) {
      const std::string& n = kParams[i].name;
      SCOPED_TRACE(n);
      const std::string master = kParams[i].hidden ? Muon::master_name(n) : AdamW::master_name(n);
      ASSERT_TRUE(gpu->arena->has(master)) << master;
      const std::vector<float> got = to_host_f32(gpu->arena->get(master)), want = to_host_f32(cpu->refs[i].param);
      // Compare the updates (master - w0): fp32 GEMMs in another summation order, amplified by
      // up to ~3.4^5 for small singular values over the orthogonalizer's steps, plus the odd
      // flipped cautious mask: ~1e-5 expected, 1e-3 bound; a transposed, unscaled or unmasked
      // update is O(1) off. AdamW's masters follow bit-identical kernels: 1e-6.
      std::vector<float> dg(got.size()), dc(got.size());
      for (size_t k = 0; k < got.size(); k++) {
        dg[k] = got[k] - w0[n][k];
        dc[k] = want[k] - w0[n][k];
      }
      // With the bf16 iteration the orthogonalizer's output carries ~1e-2 relative (see
      // Bf16OrthogonalizeStaysInTheBand): 5e-2.
      EXPECT_LT(rel_l2(dg, dc), kParams[i].hidden ? (cfg.ortho_bf16 ? 5e-2 : 1e-3) : 1e-6) << "update of " << master;
      for (float x : got) ASSERT_TRUE(std::isfinite(x)) << master;
      // the bf16 param is its master rounded once to nearest even
      std::vector<uint16_t> want_bits(got.size());
      for (size_t k = 0; k < got.size(); k++) want_bits[k] = f32_to_bf16(got[k]).bits;
      std::vector<uint16_t> bits(got.size());
      copy_to_host(bits.data(), gpu->refs[i].param);
      expect_bits_equal(bits, want_bits, "param (bf16 of " + master + ")");
      if (kParams[i].hidden) {  // momentum depends on the grads alone: a few ulps
        const std::string mom = Muon::momentum_name(n);
        expect_close(to_host_f32(gpu->arena->get(mom)), to_host_f32(cpu->arena->get(mom)), kUlpsAtol, kUlpsRtol, mom);
        if (cfg.normuon) {
          const std::string v = Muon::normuon_name(n);
          EXPECT_LT(rel_l2(to_host_f32(gpu->arena->get(v)), to_host_f32(cpu->arena->get(v))), cfg.ortho_bf16 ? 5e-2 : 1e-3)
              << v;
        }
      }
    }
    // the masters are training state (exact resume); the cpu has none
    std::map<std::string, bool> names;
    for (const auto& [name, t] : gpu->opt->state_tensors()) names[name] = true;
    for (const ParamSpec& p : kParams)
      EXPECT_TRUE(names.count(p.hidden ? Muon::master_name(p.name) : AdamW::master_name(p.name))) << p.name;
    for (const auto& [name, t] : cpu->opt->state_tensors())
      EXPECT_EQ(name.find("master"), std::string::npos) << name << " on the cpu";
    // diagnostics agree: the same formulas on nearly the same O
    const auto dc = cpu->opt->take_diagnostics(), dgd = gpu->opt->take_diagnostics();
    ASSERT_EQ(dc.size(), dgd.size());
    for (size_t k = 0; k < dc.size(); k++) {
      EXPECT_EQ(dc[k].first, dgd[k].first);
      // bf16: the update RMS within 5e-2 as the updates; ortho_err (~0.2 for Polar Express)
      // measures the orthogonalizer's distance from I, which bf16 rounding moves by ~1e-2 absolute
      const bool err = dc[k].first.find("ortho_err") != std::string::npos;
      const double tol = !cfg.ortho_bf16 ? 1e-3 : err ? 0.2 : 5e-2;
      EXPECT_NEAR(dgd[k].second, dc[k].second, tol * std::fabs(dc[k].second) + 1e-6) << dc[k].first;
    }
  }
}

}  // namespace
