// optim/muon.h beyond the oracle: the spectrum the orthogonalizers produce (singular values
// from a Jacobi eigensolver in double, written here), batched == one at a time, zero
// gradients, the routing of a Llama's params (which go where, the split of wqkv and w_gate_up,
// per head) checked by its effect, the inner AdamW, the LR scales, the diagnostics, and exact
// resume of the state in process. tests/test_muon_train.cpp runs mu-train with Muon.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "core/arena.h"
#include "core/rng.h"
#include "kernels/elementwise.h"
#include "kernels/muon.h"
#include "model/config.h"
#include "model/layout.h"
#include "optim/muon.h"
#include "tests/util_linalg.h"

using namespace mu;
using mu::test::singular_values;
using mu::test::sym_eigenvalues;

namespace {

void fill_normal(const Tensor& t, Rng& rng, double scale = 1.0) {
  float* p = t.f32();
  for (int64_t i = 0; i < t.numel(); i++) p[i] = static_cast<float>(scale * rng.normal());
}

std::vector<float> values(const Tensor& t) { return std::vector<float>(t.f32(), t.f32() + t.numel()); }

TEST(MuonMath, JacobiEigenvaluesOfKnownMatrices) {
  // [[2,1],[1,2]] has eigenvalues 1 and 3; diag(5,-1,2) is its own spectrum.
  std::vector<double> ev = sym_eigenvalues({2, 1, 1, 2}, 2);
  EXPECT_NEAR(ev[0], 1.0, 1e-14);  // a converged 2x2 rotation is exact to rounding
  EXPECT_NEAR(ev[1], 3.0, 1e-14);
  ev = sym_eigenvalues({5, 0, 0, 0, -1, 0, 0, 0, 2}, 3);
  EXPECT_EQ(ev, (std::vector<double>{-1, 2, 5}));
  // A random symmetric 6x6: the rotations keep the trace and the Frobenius norm (sum of eig^2).
  Rng rng(3);
  std::vector<double> a(36);
  for (int i = 0; i < 6; i++)
    for (int j = 0; j <= i; j++) a[i * 6 + j] = a[j * 6 + i] = rng.normal();
  double tr = 0, fro = 0, sum = 0, sq = 0;
  for (int i = 0; i < 6; i++) tr += a[i * 7];
  for (double v : a) fro += v * v;
  for (double e : sym_eigenvalues(a, 6)) sum += e, sq += e * e;
  EXPECT_NEAR(sum, tr, 1e-12);  // double rounding over a few sweeps of 15 rotations
  EXPECT_NEAR(sq, fro, 1e-12);
}

// Orthogonalizes `count` Gaussian (rows, cols) matrices (transposing tall ones, as Muon does)
// and returns all their singular values.
std::vector<double> spectrum(OrthoKind kind, int steps, int64_t rows, int64_t cols, int count, uint64_t seed) {
  const int64_t m = std::min(rows, cols), n = std::max(rows, cols);
  HostTensor u = HostTensor::f32({rows, cols}), x = HostTensor::f32({count, m, n});
  HostTensor x2 = HostTensor::f32({count, m, n}), gram = HostTensor::f32({count, m, m}), poly = HostTensor::f32({count, m, m});
  Rng rng(seed);
  for (int b = 0; b < count; b++) {
    fill_normal(u, rng);
    float* dst = x.f32() + b * m * n;
    for (int64_t i = 0; i < rows; i++)
      for (int64_t j = 0; j < cols; j++) dst[rows > cols ? j * rows + i : i * cols + j] = u.f32()[i * cols + j];
  }
  orthogonalize(x, OrthoWorkspace{x2, gram, poly, Tensor()}, kind, steps);
  std::vector<double> all;
  for (int b = 0; b < count; b++) {
    std::vector<double> s = singular_values(x.f32() + b * m * n, m, n);
    all.insert(all.end(), s.begin(), s.end());
  }
  return all;
}

struct Shape2 {
  int64_t rows, cols;
};
const Shape2 kAspect2Plus[] = {{32, 64}, {24, 96}, {96, 40}, {17, 160}};  // aspect >= 2, tall and wide

// Bands: the composed scalar polynomials map the normalised singular values of these inputs
// (>= ~0.03 for aspect >= 2) into [0.6818, 1.1344] for ns5 and [0.8589, 1.1411] for Polar
// Express (float64, measured with the oracle's formulas; the "about [0.68, 1.14]" and
// "about [0.86, 1.15]"). fp32 moves them by ~1e-6, so the limits below keep a few 1e-3 of room.
TEST(MuonMath, Ns5SingularValuesStayInItsBand) {
  for (const Shape2& s : kAspect2Plus) {
    const std::vector<double> sv = spectrum(OrthoKind::Ns5, 5, s.rows, s.cols, 3, 11);
    const auto [lo, hi] = std::minmax_element(sv.begin(), sv.end());
    EXPECT_GE(*lo, 0.675) << s.rows << "x" << s.cols;
    EXPECT_LE(*hi, 1.145) << s.rows << "x" << s.cols;
    EXPECT_LT(*lo, 0.8) << "ns5 does not converge to 1; a spread this narrow means other coefficients";
  }
}

TEST(MuonMath, PolarExpressSingularValuesStayInItsBand) {
  for (const Shape2& s : kAspect2Plus) {
    const std::vector<double> sv = spectrum(OrthoKind::PolarExpress, 5, s.rows, s.cols, 3, 12);
    const auto [lo, hi] = std::minmax_element(sv.begin(), sv.end());
    EXPECT_GE(*lo, 0.855) << s.rows << "x" << s.cols;
    EXPECT_LE(*hi, 1.15) << s.rows << "x" << s.cols;
  }
}

// Past its 5 tuples Polar Express repeats the last one, whose fixed point p(x) = x is 1.0354
// with |p'| = 0.72 there: after 10 steps float64 gives [1.0158, 1.0597]. Stopping at 5 would
// leave the [0.86, 1.14] spread; repeating the first tuple would blow up.
TEST(MuonMath, PolarExpressPastFiveStepsRepeatsTheLastTuple) {
  const std::vector<double> sv = spectrum(OrthoKind::PolarExpress, 10, 32, 96, 2, 13);
  const auto [lo, hi] = std::minmax_element(sv.begin(), sv.end());
  EXPECT_GE(*lo, 1.0);
  EXPECT_LE(*hi, 1.07);
  const std::vector<QuinticCoeffs> c = ortho_coefficients(OrthoKind::PolarExpress, 7);
  EXPECT_EQ(c[5].a, c[4].a);
  EXPECT_EQ(c[6].c, c[4].c);
  EXPECT_EQ(ortho_coefficients(OrthoKind::PolarExpress, 2).size(), 2u);
  EXPECT_EQ(ortho_coefficients(OrthoKind::PolarExpress, 1)[0].a, 8.156554524902461);
}

// The cpu GEMM sums every output element in the same order whatever the batch or thread
// count, so a batch of matrices is orthogonalized bit for bit as each one alone.
TEST(MuonMath, BatchedEqualsOneAtATime) {
  const int64_t B = 3, m = 20, n = 52;
  HostTensor x = HostTensor::f32({B, m, n}), x2 = HostTensor::f32({B, m, n});
  HostTensor g = HostTensor::f32({B, m, m}), p = HostTensor::f32({B, m, m});
  Rng rng(5);
  fill_normal(x, rng);
  std::vector<float> single;
  for (int64_t b = 0; b < B; b++) {
    HostTensor one = HostTensor::f32({1, m, n}), o2 = HostTensor::f32({1, m, n});
    HostTensor og = HostTensor::f32({1, m, m}), op = HostTensor::f32({1, m, m});
    std::copy(x.f32() + b * m * n, x.f32() + (b + 1) * m * n, one.f32());
    orthogonalize(one, OrthoWorkspace{o2, og, op, Tensor()}, OrthoKind::PolarExpress, 5);
    single.insert(single.end(), one.f32(), one.f32() + m * n);
  }
  orthogonalize(x, OrthoWorkspace{x2, g, p, Tensor()}, OrthoKind::PolarExpress, 5);
  EXPECT_EQ(values(x), single);
}

TEST(MuonMath, MirrorLowerBlocksCopiesTheTransposeBelowTheDiagonalBlocks) {
  const int64_t B = 2, m = 7, block = 3;  // blocks of rows 0-2, 3-5, 6
  HostTensor x = HostTensor::f32({B, m, m});
  Rng rng(21);
  fill_normal(x, rng);
  const std::vector<float> before = values(x);
  mirror_lower_blocks(x, block);
  for (int64_t b = 0; b < B; b++)
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < m; j++) {
        const int64_t e = b * m * m + i * m + j;
        const bool below = i / block > j / block;
        EXPECT_EQ(x.f32()[e], below ? before[b * m * m + j * m + i] : before[e]) << b << " " << i << " " << j;
      }
  EXPECT_THROW(mirror_lower_blocks(HostTensor::f32({1, 3, 4}), 2), Error);  // not square
  EXPECT_THROW(mirror_lower_blocks(x, 0), Error);
}

// The float64 quintic iteration of orthogonalize.h, by loops: X / (||X||_F * s + eps), then
// A = X X^T, B = b A + c A A, X = a X + B X per step.
std::vector<double> quintic_f64(const float* x0, int64_t m, int64_t n, OrthoKind kind, int steps) {
  std::vector<double> x(x0, x0 + m * n), a(m * m), p(m * m), next(m * n);
  double fro = 0;
  for (double v : x) fro += v * v;
  const OrthoNormalisation nz = ortho_normalisation(kind);
  for (double& v : x) v /= std::sqrt(fro) * nz.norm_scale + nz.eps;
  for (const QuinticCoeffs& q : ortho_coefficients(kind, steps)) {
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < m; j++) {
        double acc = 0;
        for (int64_t k = 0; k < n; k++) acc += x[i * n + k] * x[j * n + k];
        a[i * m + j] = acc;
      }
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < m; j++) {
        double acc = 0;
        for (int64_t k = 0; k < m; k++) acc += a[i * m + k] * a[k * m + j];
        p[i * m + j] = q.b * a[i * m + j] + q.c * acc;
      }
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++) {
        double acc = 0;
        for (int64_t k = 0; k < m; k++) acc += p[i * m + k] * x[k * n + j];
        next[i * n + j] = q.a * x[i * n + j] + acc;
      }
    x.swap(next);
  }
  return x;
}

// The symmetric products by blocks (3 of 4 blocks and a mirror copy, or 6 of 9 with 3 block
// rows; block rows are multiples of 8, so 9 and 20 leave a narrower last block and 2 is one
// block) give what whole GEMMs give, and both follow the float64 iteration.
TEST(MuonMath, SymmetricBlocksOrthogonalizeAsWholeGemms) {
  struct Case {
    int64_t m, n;
  };
  for (const Case c : {Case{9, 20}, Case{16, 16}, Case{20, 30}, Case{2, 5}})
    for (OrthoKind kind : {OrthoKind::Ns5, OrthoKind::PolarExpress})
      for (int blocks : {1, 2, 3}) {
        const int64_t B = 2, m = c.m, n = c.n;
        HostTensor x = HostTensor::f32({B, m, n}), x2 = HostTensor::f32({B, m, n});
        HostTensor g = HostTensor::f32({B, m, m}), p = HostTensor::f32({B, m, m});
        Rng rng(40 + m);
        fill_normal(x, rng);
        const std::vector<float> in = values(x);
        orthogonalize(x, OrthoWorkspace{x2, g, p, Tensor()}, kind, 5, blocks);
        double worst = 0;
        for (int64_t b = 0; b < B; b++) {
          const std::vector<double> want = quintic_f64(in.data() + b * m * n, m, n, kind, 5);
          for (int64_t e = 0; e < m * n; e++) worst = std::max(worst, std::abs(x.f32()[b * m * n + e] - want[e]));
        }
        // entries are O(1) after the iteration; fp32 through 15 GEMMs with coefficients up to
        // ~22 (Polar Express's first step) keeps them within ~1e-5 of float64
        EXPECT_LT(worst, 3e-5) << m << "x" << n << " " << ortho_name(kind) << " blocks " << blocks;
      }
}

TEST(MuonMath, SymmetricProductWithSeparateC) {
  const int64_t B = 2, m = 27, k = 6;  // blocks 2: rows 16 + 11; blocks 4: 8 + 8 + 8 + 3
  HostTensor x = HostTensor::f32({B, m, k}), c = HostTensor::f32({B, m, m});
  Rng rng(50);
  fill_normal(x, rng);
  fill_normal(c, rng);
  for (int64_t b = 0; b < B; b++)  // c symmetric, as A' is where Muon passes it
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < i; j++) c.f32()[(b * m + i) * m + j] = c.f32()[(b * m + j) * m + i];
  for (int blocks : {1, 2, 4}) {
    HostTensor out = HostTensor::f32({B, m, m});
    symmetric_product(out, x, 0.5f, -2.0f, c, blocks);
    for (int64_t b = 0; b < B; b++)
      for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < m; j++) {
          double acc = 0;
          for (int64_t t = 0; t < k; t++)
            acc += static_cast<double>(x.f32()[(b * m + i) * k + t]) * x.f32()[(b * m + j) * k + t];
          const double want = 0.5 * acc - 2.0 * c.f32()[(b * m + i) * m + j];
          EXPECT_NEAR(out.f32()[(b * m + i) * m + j], want, 1e-5) << blocks << " " << b << " " << i << " " << j;
        }
  }
}

TEST(MuonMath, LrScalesAreTheFormulas) {
  // (12, 5): 0.2*sqrt(12) = 0.692820323; sqrt(12/5) = 1.549193338; sqrt(12) = 3.464101615
  EXPECT_NEAR(muon_lr_scale(LrScaleKind::MatchRmsAdamw, 12, 5), 0.692820323, 1e-9);
  EXPECT_NEAR(muon_lr_scale(LrScaleKind::Original, 12, 5), 1.549193338, 1e-9);
  EXPECT_NEAR(muon_lr_scale(LrScaleKind::Spectral, 12, 5), 1.549193338, 1e-9);
  EXPECT_NEAR(muon_lr_scale(LrScaleKind::SqrtMax, 12, 5), 3.464101615, 1e-9);
  EXPECT_EQ(muon_lr_scale(LrScaleKind::None, 12, 5), 1.0);
  // (5, 12): original clamps at 1, spectral does not: sqrt(5/12) = 0.645497224
  EXPECT_EQ(muon_lr_scale(LrScaleKind::Original, 5, 12), 1.0);
  EXPECT_NEAR(muon_lr_scale(LrScaleKind::Spectral, 5, 12), 0.645497224, 1e-9);
  EXPECT_NEAR(muon_lr_scale(LrScaleKind::MatchRmsAdamw, 5, 12), 0.692820323, 1e-9);
}

// ---------------------------------------------------------------- a Muon over given params

struct Rig {
  ArenaPlan plan;
  std::unique_ptr<Arena> arena;
  std::vector<ParamRef> refs;
  std::unique_ptr<Muon> opt;
  Tensor param(const std::string& n) const { return arena->get("param." + n); }
  Tensor grad(const std::string& n) const { return arena->get("grad." + n); }
};

// params: (name, shape, hidden); every param decays. Params and grads are N(0, 1), seeded.
std::unique_ptr<Rig> make_rig(const std::vector<std::tuple<std::string, Shape, bool>>& params, const MuonConfig& cfg,
                              const MuonSplits& splits, uint64_t seed = 1) {
  auto r = std::make_unique<Rig>();
  for (const auto& [n, s, hidden] : params) {
    r->plan.add("param." + n, Region::Master, DType::F32, s);
    r->plan.add("grad." + n, Region::Grads, DType::F32, s);
    r->refs.push_back({n, Tensor(nullptr, DType::F32, Device::CPU, s), Tensor(), true, hidden});
  }
  Muon::plan(r->plan, r->refs, cfg, splits);
  r->arena = std::make_unique<Arena>(r->plan, Device::CPU);
  Rng rng(seed);
  for (ParamRef& ref : r->refs) {
    ref.param = r->param(ref.name);
    ref.grad = r->grad(ref.name);
    fill_normal(ref.param, rng);
    fill_normal(ref.grad, rng);
  }
  r->opt = std::make_unique<Muon>(r->refs, *r->arena, cfg, splits);
  return r;
}

MuonConfig base_config() {
  MuonConfig c;
  c.lr = c.muon_lr = 0.1;
  return c;
}

TEST(Muon, ZeroGradientGivesAZeroUpdateAndNoNaN) {
  for (OrthoKind kind : {OrthoKind::Ns5, OrthoKind::PolarExpress})
    for (WeightDecayKind wd : {WeightDecayKind::None, WeightDecayKind::Decoupled}) {
      MuonConfig cfg = base_config();
      cfg.ortho = kind;
      cfg.normuon = true;
      cfg.wd_kind = wd;
      auto r = make_rig({{"w", Shape{2, 12, 5}, true}, {"x", Shape{1, 9}, true}}, cfg, {});
      for (const ParamRef& ref : r->refs) fill(ref.grad, 0.0f);
      std::vector<std::vector<float>> before;
      for (const ParamRef& ref : r->refs) before.push_back(values(ref.param));
      for (int s = 0; s < 3; s++) r->opt->step(0.1, 1.0f);
      const float keep = static_cast<float>(1.0 - 0.1 * cfg.weight_decay);
      for (size_t i = 0; i < r->refs.size(); i++) {
        std::vector<float> want = before[i];
        if (wd == WeightDecayKind::Decoupled)  // three decays, nothing else: W * keep^3 in float
          for (float& w : want) w = (w * keep) * keep * keep;
        EXPECT_EQ(values(r->refs[i].param), want) << ortho_name(kind) << " " << wd_kind_name(wd);
      }
      for (const auto& [name, t] : r->opt->state_tensors())
        for (float v : values(t)) ASSERT_EQ(v, 0.0f) << name;  // momentum and NorMuon state stay zero
    }
}

// The tiny preset: C 64, F 176, 2 layers, 4 heads sharing 2 KV heads of 16.
std::vector<std::tuple<std::string, Shape, bool>> tiny_params() {
  std::vector<std::tuple<std::string, Shape, bool>> out;
  for (const ParamInfo& p : llama_param_infos(load_config("tiny"))) out.emplace_back(p.name, p.shape, p.hidden_matrix);
  return out;
}
MuonSplits tiny_splits() { return llama_muon_splits(64, 4, 2, 16, 176); }

TEST(Muon, RoutesALlamaByLogicalMatrix) {
  MuonConfig cfg = base_config();
  cfg.normuon = true;
  auto r = make_rig(tiny_params(), cfg, tiny_splits());
  const Muon& m = *r->opt;
  EXPECT_EQ(m.hidden_params(), (std::vector<std::string>{"layers.wqkv", "layers.wo", "layers.w_gate_up", "layers.w_down"}));
  EXPECT_EQ(m.adamw_params(), (std::vector<std::string>{"embed", "layers.attn_norm", "layers.mlp_norm", "final_norm"}));
  // per layer: q, k, v from wqkv rows 0/64/96; o; gate, up from w_gate_up rows 0/176; down
  struct Want {
    const char* group;
    int64_t row0, rows, cols;
  } want[] = {{"q", 0, 64, 64}, {"k", 64, 32, 64}, {"v", 96, 32, 64}, {"o", 0, 64, 64},
              {"gate", 0, 176, 64}, {"up", 176, 176, 64}, {"down", 0, 64, 176}};
  ASSERT_EQ(m.matrices().size(), 14u);
  size_t i = 0;
  for (int p = 0; p < 4; p++) {
    const int blocks = p == 0 ? 3 : p == 2 ? 2 : 1, first = p == 0 ? 0 : p == 1 ? 3 : p == 2 ? 4 : 6;
    for (int l = 0; l < 2; l++)
      for (int b = 0; b < blocks; b++, i++) {
        const MuonMatrix& mm = m.matrices()[i];
        const Want& w = want[first + b];
        EXPECT_EQ(mm.group, w.group);
        EXPECT_EQ(mm.param, static_cast<size_t>(p));
        EXPECT_EQ(mm.layer, l);
        EXPECT_EQ(mm.row0, w.row0);
        EXPECT_EQ(mm.rows, w.rows);
        EXPECT_EQ(mm.cols, w.cols);
        EXPECT_EQ(mm.sample, l == 0) << w.group;
      }
  }
  // batched by wide shape: (64,64) q, o; (32,64) k, v; (64,176) gate, up, down
  ASSERT_EQ(m.batches().size(), 3u);
  EXPECT_EQ(m.batches()[0].m * 1000 + m.batches()[0].n, 64064);
  EXPECT_EQ(m.batches()[0].items.size(), 4u);
  EXPECT_EQ(m.batches()[1].m * 1000 + m.batches()[1].n, 32064);
  EXPECT_EQ(m.batches()[1].items.size(), 4u);
  EXPECT_EQ(m.batches()[2].m * 1000 + m.batches()[2].n, 64176);
  EXPECT_EQ(m.batches()[2].items.size(), 6u);
  // state: AdamW m/v for the rest, momentum per hidden param, NorMuon max(A,B) per matrix
  std::map<std::string, Shape> state;
  for (const auto& [name, t] : r->opt->state_tensors()) state[name] = t.shape;
  EXPECT_EQ(state.size(), 8u + 8u);
  EXPECT_EQ(state.at("adamw.m.embed"), (Shape{256, 64}));
  EXPECT_EQ(state.at("adamw.v.final_norm"), (Shape{64}));
  EXPECT_EQ(state.at("muon.momentum.layers.wqkv"), (Shape{2, 128, 64}));
  EXPECT_EQ(state.at("muon.normuon_v.layers.wqkv"), (Shape{2, 64 + 64 + 64}));
  EXPECT_EQ(state.at("muon.normuon_v.layers.wo"), (Shape{2, 64}));
  EXPECT_EQ(state.at("muon.normuon_v.layers.w_gate_up"), (Shape{2, 176 + 176}));
  EXPECT_EQ(state.at("muon.normuon_v.layers.w_down"), (Shape{2, 176}));
  EXPECT_FALSE(state.count("adamw.m.layers.wqkv"));
}

TEST(Muon, SplitHeadsMakesEachHeadAMatrix) {
  MuonConfig cfg = base_config();
  cfg.split_heads = true;
  cfg.normuon = true;
  auto r = make_rig(tiny_params(), cfg, tiny_splits());
  const Muon& m = *r->opt;
  ASSERT_EQ(m.matrices().size(), 2u * (4 + 2 + 2) + 2u + 4u + 2u);
  for (int h = 0; h < 8; h++) {  // layer 0 of wqkv: q heads 0-3, k 0-1, v 0-1, 16 rows each
    const MuonMatrix& mm = m.matrices()[static_cast<size_t>(h)];
    EXPECT_EQ(mm.group, h < 4 ? "q" : h < 6 ? "k" : "v");
    EXPECT_EQ(mm.head, h < 4 ? h : h < 6 ? h - 4 : h - 6);
    EXPECT_EQ(mm.row0, 16 * h);
    EXPECT_EQ(mm.rows, 16);
  }
  EXPECT_EQ(m.batches()[0].m * 1000 + m.batches()[0].n, 16064);
  EXPECT_EQ(m.batches()[0].items.size(), 16u);
  std::map<std::string, Shape> state;
  for (const auto& [name, t] : r->opt->state_tensors()) state[name] = t.shape;
  EXPECT_EQ(state.at("muon.normuon_v.layers.wqkv"), (Shape{2, 8 * 64}));
}

// The routing by its effect: a step on the fused stacked param moves every logical matrix
// exactly as Muon on that matrix alone would (the same ops, batched differently: bitwise).
TEST(Muon, FusedParamsUpdateLikeTheirLogicalMatricesAlone) {
  for (bool heads : {false, true}) {
    MuonConfig cfg = base_config();
    cfg.split_heads = heads;
    cfg.normuon = true;
    cfg.ortho = OrthoKind::PolarExpress;
    auto fused = make_rig(tiny_params(), cfg, tiny_splits(), 7);
    std::vector<std::unique_ptr<Rig>> alone;
    for (const MuonMatrix& mm : fused->opt->matrices()) {
      const ParamRef& ref = fused->refs[mm.param == 0 ? 2 : mm.param == 1 ? 3 : mm.param == 2 ? 5 : 6];
      ASSERT_EQ(ref.name, fused->opt->hidden_params()[mm.param]);
      auto a = make_rig({{"m", Shape{mm.rows, mm.cols}, true}}, cfg, {});
      copy(a->refs[0].param, ref.param[mm.layer].rows(mm.row0, mm.rows));
      copy(a->refs[0].grad, ref.grad[mm.layer].rows(mm.row0, mm.rows));
      alone.push_back(std::move(a));
    }
    for (int s = 0; s < 2; s++) {
      fused->opt->step(0.1, 0.5f);
      for (auto& a : alone) a->opt->step(0.1, 0.5f);
    }
    for (size_t i = 0; i < alone.size(); i++) {
      const MuonMatrix& mm = fused->opt->matrices()[i];
      const Tensor got = fused->refs[mm.param == 0 ? 2 : mm.param == 1 ? 3 : mm.param == 2 ? 5 : 6].param;
      ASSERT_EQ(values(got[mm.layer].rows(mm.row0, mm.rows)), values(alone[i]->refs[0].param))
          << mm.group << " layer " << mm.layer << " head " << mm.head;
    }
  }
}

TEST(Muon, SplitHeadsChangesTheUpdate) {
  std::vector<float> w[2];
  for (int heads = 0; heads < 2; heads++) {
    MuonConfig cfg = base_config();
    cfg.split_heads = heads == 1;
    auto r = make_rig(tiny_params(), cfg, tiny_splits(), 9);
    r->opt->step(0.1, 1.0f);
    w[heads] = values(r->refs[2].param);  // layers.wqkv
  }
  double diff = 0, norm = 0;
  for (size_t i = 0; i < w[0].size(); i++) diff += std::pow(w[0][i] - w[1][i], 2), norm += w[0][i] * w[0][i];
  EXPECT_GT(std::sqrt(diff / norm), 1e-3);  // per-head orthogonalization is a different update
}

// The non-hidden params get exactly what a standalone AdamW with the same config gives them.
TEST(Muon, InnerAdamWMatchesStandaloneAdamW) {
  MuonConfig cfg = base_config();
  cfg.adamw.weight_decay = 0.05;
  auto r = make_rig(tiny_params(), cfg, tiny_splits(), 4);
  ArenaPlan plan;
  std::vector<ParamRef> refs;
  for (const ParamRef& p : r->refs)
    if (!p.hidden_matrix) {
      plan.add("p." + p.name, Region::Master, DType::F32, p.param.shape);
      refs.push_back({p.name, Tensor(nullptr, DType::F32, Device::CPU, p.param.shape), p.grad, true, false});
    }
  AdamW::plan(plan, refs);
  Arena arena(plan, Device::CPU);
  for (ParamRef& p : refs) {
    p.param = arena.get("p." + p.name);
    copy(p.param, r->arena->get("param." + p.name));
  }
  AdamW solo(refs, arena, cfg.adamw);
  for (int s = 0; s < 3; s++) {
    r->opt->step(0.01 * (s + 1), 0.7f);
    solo.step(0.01 * (s + 1), 0.7f);
  }
  for (const ParamRef& p : refs) EXPECT_EQ(values(p.param), values(r->param(p.name))) << p.name;
}

TEST(Muon, MuonLrFollowsTheSchedule) {
  MuonConfig cfg = base_config();
  cfg.lr = 1e-3;
  cfg.muon_lr = 2e-2;
  auto r = make_rig({{"w", Shape{6, 4}, true}}, cfg, {});
  EXPECT_NEAR(r->opt->muon_lr_at(5e-4), 1e-2, 1e-15);  // half the peak -> half of muon_lr
  EXPECT_NEAR(r->opt->muon_lr_at(1e-3), 2e-2, 1e-15);
  cfg.muon_lr = cfg.lr;
  auto s = make_rig({{"w", Shape{6, 4}, true}}, cfg, {});
  EXPECT_EQ(s->opt->muon_lr_at(3.7e-4), 3.7e-4);  // equal LRs: exactly the schedule
}

// Diagnostics, checked against the weight change itself (wd off, no NorMuon: W_after - W_before
// = -lr_eff * O): its RMS is update_rms, and O's orthogonality error is ortho_err.
TEST(Muon, DiagnosticsDescribeTheStepTaken) {
  MuonConfig cfg = base_config();
  cfg.wd_kind = WeightDecayKind::None;
  auto r = make_rig({{"t", Shape{12, 5}, true}, {"u", Shape{2, 5, 12}, true}}, cfg, {});
  const std::vector<float> t0 = values(r->refs[0].param), u0 = values(r->refs[1].param);
  r->opt->step(0.1, 1.0f);
  EXPECT_TRUE(r->opt->take_diagnostics().empty()) << "not requested";
  const std::vector<float> t1 = values(r->refs[0].param), u1 = values(r->refs[1].param);
  r->opt->request_diagnostics();
  r->opt->step(0.1, 1.0f);
  std::map<std::string, double> d;
  for (const auto& [k, v] : r->opt->take_diagnostics()) d[k] = v;
  ASSERT_EQ(d.size(), 7u);
  EXPECT_EQ(d.at("muon.lr"), 0.1);
  const double lr_t = 0.1 * 0.2 * std::sqrt(12.0);  // match_rms_adamw, both 12 x 5 and 5 x 12
  EXPECT_NEAR(d.at("muon.t.lr_eff"), lr_t, 1e-12);
  EXPECT_NEAR(d.at("muon.u.lr_eff"), lr_t, 1e-12);
  const std::vector<float> t2 = values(r->refs[0].param), u2 = values(r->refs[1].param);
  auto rms_change = [](const std::vector<float>& a, const std::vector<float>& b) {
    double s = 0;
    for (size_t i = 0; i < a.size(); i++) s += (double(b[i]) - a[i]) * (double(b[i]) - a[i]);
    return std::sqrt(s / static_cast<double>(a.size()));
  };
  // The change is rounded to W's ulp (6e-8 of |W| ~ 1) against steps of ~0.02: ~1e-5 relative.
  EXPECT_NEAR(d.at("muon.t.update_rms"), rms_change(t1, t2), 1e-4 * d.at("muon.t.update_rms"));
  EXPECT_NEAR(d.at("muon.u.update_rms"), rms_change(u1, u2), 1e-4 * d.at("muon.u.update_rms"));
  // ortho_err of the 12 x 5 sample: X = O^T (5 x 12), O = -(W2 - W1) / lr_eff.
  std::vector<float> x(60);
  for (int i = 0; i < 12; i++)
    for (int j = 0; j < 5; j++) x[j * 12 + i] = static_cast<float>(-(double(t2[i * 5 + j]) - t1[i * 5 + j]) / lr_t);
  double err = 0;
  for (int i = 0; i < 5; i++)
    for (int j = 0; j < 5; j++) {
      double g = 0;
      for (int k = 0; k < 12; k++) g += double(x[i * 12 + k]) * x[j * 12 + k];
      err += (g - (i == j)) * (g - (i == j));
    }
  err = std::sqrt(err / 5);
  EXPECT_NEAR(d.at("muon.t.ortho_err"), err, 1e-3);  // O recovered through W's rounding: ~1e-5 absolute
  EXPECT_GT(err, 1e-3);  // ns5 is not exactly orthogonal: the number carries information
  (void)t0;
  (void)u0;
}

// Exact resume in process: state_tensors() is everything a restart needs.
TEST(Muon, StateTensorsResumeBitwise) {
  MuonConfig cfg = base_config();
  cfg.normuon = true;
  cfg.momentum_kind = MomentumKind::Ema;
  auto a = make_rig(tiny_params(), cfg, tiny_splits(), 21);
  Rng rng(8);
  std::vector<std::vector<std::vector<float>>> grads(5);  // per step, per param
  for (auto& g : grads)
    for (const ParamRef& p : a->refs) {
      HostTensor h = HostTensor::f32(p.grad.shape);
      fill_normal(h, rng);
      g.push_back(values(h));
    }
  auto set_grads = [&](Rig& r, int s) {
    for (size_t i = 0; i < r.refs.size(); i++) std::copy(grads[s][i].begin(), grads[s][i].end(), r.refs[i].grad.f32());
  };
  for (int s = 0; s < 3; s++) set_grads(*a, s), a->opt->step(0.05, 1.0f);
  // snapshot after 3 steps
  std::map<std::string, std::vector<float>> snap;
  for (const auto& [n, t] : a->opt->state_tensors()) snap[n] = values(t);
  for (const ParamRef& p : a->refs) snap["param." + p.name] = values(p.param);
  for (int s = 3; s < 5; s++) set_grads(*a, s), a->opt->step(0.05, 1.0f);
  // a fresh optimizer restored from the snapshot
  auto b = make_rig(tiny_params(), cfg, tiny_splits(), 99);
  for (const auto& [n, t] : b->opt->state_tensors()) {
    ASSERT_TRUE(snap.count(n)) << n;
    std::copy(snap[n].begin(), snap[n].end(), t.f32());
  }
  for (const ParamRef& p : b->refs) std::copy(snap["param." + p.name].begin(), snap["param." + p.name].end(), p.param.f32());
  b->opt->set_steps_taken(3);
  for (int s = 3; s < 5; s++) set_grads(*b, s), b->opt->step(0.05, 1.0f);
  for (size_t i = 0; i < a->refs.size(); i++) EXPECT_EQ(values(a->refs[i].param), values(b->refs[i].param)) << a->refs[i].name;
  EXPECT_EQ(b->opt->steps_taken(), 5);
}

TEST(Muon, BadConfigAndNamesFailWithAMessage) {
  auto expect_error = [](const std::function<void()>& f, const std::string& needle) {
    try {
      f();
      ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error([] { parse_ortho("ns6"); }, "ns5, polar_express");
  expect_error([] { parse_lr_scale("rms"); }, "match_rms_adamw, original, spectral, sqrt_max, none");
  expect_error([] { parse_momentum_kind("nag"); }, "sgd, ema");
  expect_error([] { parse_wd_kind("l2"); }, "decoupled, cautious, none");
  expect_error([] {
    MuonConfig c = base_config();
    c.momentum = 1.0;
    make_rig({{"w", Shape{4, 4}, true}}, c, {});
  }, "momentum");
  expect_error([] {
    MuonConfig c = base_config();
    c.lr = 0.0;
    make_rig({{"w", Shape{4, 4}, true}}, c, {});
  }, "--lr must be > 0");
  expect_error([] { make_rig({{"w", Shape{2, 10, 4}, true}}, base_config(), {{"w", {{"a", 6, 0}, {"b", 3, 0}}}}); },
               "cover 9 rows");
  expect_error([] { make_rig({{"w", Shape{10, 4}, true}}, base_config(), {{"w", {{"a", 10, 3}}}}); },
               "heads of 3");
  expect_error([] { make_rig({{"w", Shape{10}, true}}, base_config(), {}); }, "'w'");
}

}  // namespace
