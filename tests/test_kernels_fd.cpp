// Finite-difference checks of every backward op of the cpu backend.
//
// For an op f and a fixed random projection r, L(x) = sum(r * f(x)) is evaluated in double
// from the fp32 outputs; its central difference (L(x + h e) - L(x - h e)) / 2h must match the
// analytic gradient the backward op returns (with dout = r). We check every coordinate of
// every input (the problems are tiny) and one random direction per input.
//
// Step and tolerances: h = 1e-2 on inputs of size O(1). The central difference's truncation
// error is ~h^2/6 * f''' ~ 2e-5 relative for these smooth ops (exactly 0 for the linear ones);
// fp32 rounding of L (a few ulps of each output term that moves, ~1e-7 * |terms|) divided by
// 2h adds ~1e-5 * |terms|. So a coordinate must agree within 0.2% of itself, with a floor of
// 0.02% of the largest gradient entry (rounding of small entries); the worst coordinate seen
// uses ~30% of that. The directional derivative must agree within 1e-3 of sum |g_i u_i| (its
// natural scale; cancellation-proof).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "tests/util_kernels.h"
#include "kernels/attention.h"
#include "kernels/cross_entropy.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/matmul.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"

using namespace mu;
using namespace mu::test;

namespace {

constexpr float kStep = 1e-2f;         // see the file comment
constexpr double kCoordRtol = 2e-3;    // per-coordinate relative tolerance
constexpr double kCoordFloor = 2e-4;   // ... with this fraction of max |g| as absolute floor
constexpr double kDirRtol = 1e-3;      // directional derivative vs sum |g u|

// sum(r * y) in double.
double project(const Tensor& r, const Tensor& y) {
  double s = 0.0;
  for (int64_t i = 0; i < y.numel(); i++) s += static_cast<double>(r.f32()[i]) * y.f32()[i];
  return s;
}

// One differentiable input: its fp32 storage and the analytic gradient of L with respect to it.
struct FdInput {
  std::string name;
  Tensor x;
  std::vector<double> grad;
};

std::vector<double> to_vec(const Tensor& t, const Tensor* minus = nullptr) {
  std::vector<double> v(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); i++) v[i] = t.f32()[i] - (minus ? minus->f32()[i] : 0.0f);
  return v;
}

// Central differences of loss() against each input's analytic gradient, coordinate by
// coordinate and along one random direction. loss() must read the inputs afresh each call.
void check_gradients(const std::function<double()>& loss, const std::vector<FdInput>& inputs, uint32_t seed) {
  std::mt19937 rng(seed);
  for (const FdInput& in : inputs) {
    float* x = in.x.f32();
    const int64_t n = in.x.numel();
    ASSERT_EQ(static_cast<int64_t>(in.grad.size()), n) << in.name;
    double gmax = 0.0;
    for (double g : in.grad) {
      ASSERT_TRUE(std::isfinite(g)) << in.name << ": analytic gradient is not finite";
      gmax = std::max(gmax, std::fabs(g));
    }
    ASSERT_GT(gmax, 0.0) << in.name << ": analytic gradient is all zero (the check would be vacuous)";
    int bad = 0;
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++) {
      const float x0 = x[i];
      x[i] = x0 + kStep;
      const double lp = loss();
      x[i] = x0 - kStep;
      const double lm = loss();
      x[i] = x0;
      const double fd = (lp - lm) / (2.0 * kStep);
      const double tol = kCoordRtol * std::max(std::fabs(in.grad[i]), kCoordFloor / kCoordRtol * gmax);
      const double err = std::fabs(fd - in.grad[i]);
      worst = std::max(worst, err / tol);
      if (err > tol && bad++ < 5)
        ADD_FAILURE() << in.name << "[" << i << "]: finite difference " << fd << " vs analytic " << in.grad[i];
    }
    EXPECT_EQ(bad, 0) << in.name << ": " << bad << " of " << n << " coordinates disagree";
    // One random direction u: (L(x + h u) - L(x - h u)) / 2h against <g, u>.
    std::uniform_real_distribution<float> ud(-1.0f, 1.0f);
    std::vector<float> x0(x, x + n), u(n);
    double an = 0.0, scale = 0.0;
    for (int64_t i = 0; i < n; i++) {
      u[i] = ud(rng);
      an += in.grad[i] * u[i];
      scale += std::fabs(in.grad[i] * u[i]);
    }
    for (int64_t i = 0; i < n; i++) x[i] = x0[i] + kStep * u[i];
    const double lp = loss();
    for (int64_t i = 0; i < n; i++) x[i] = x0[i] - kStep * u[i];
    const double lm = loss();
    for (int64_t i = 0; i < n; i++) x[i] = x0[i];
    const double fd = (lp - lm) / (2.0 * kStep);
    EXPECT_NEAR(fd, an, kDirRtol * scale) << in.name << ": directional derivative";
    ::testing::Test::RecordProperty(in.name + "_worst_err_over_tol", std::to_string(worst));
  }
}

// ---- matmul: the linear layer y = x @ W^T and its two backward products ----------------

TEST(KernelsFd, MatmulLinearLayer) {
  std::mt19937 rng(1);
  const int64_t N = 7, in = 6, out = 5;  // awkward sizes below one micro-tile
  HostTensor x = uniform({N, in}, rng), W = uniform({out, in}, rng);
  HostTensor r = uniform({N, out}, rng), y = HostTensor::f32({N, out});
  auto loss = [&] {
    MatmulParams p;
    p.out = y;
    p.a = x;
    p.b = W;
    p.trans_b = true;
    matmul(p);
    return project(r, y);
  };
  // dx = dy @ W (beta 0 overwrites: NaN prefill must vanish); dW += dy^T @ x (beta 1).
  HostTensor dx = filled({N, in}, kNaN);
  HostTensor dW = uniform({out, in}, rng), dW0 = HostTensor::f32({out, in});
  copy(dW0, dW);
  MatmulParams pdx;
  pdx.out = dx;
  pdx.a = r;
  pdx.b = W;
  matmul(pdx);
  MatmulParams pdw;
  pdw.out = dW;
  pdw.a = r;
  pdw.b = x;
  pdw.trans_a = true;
  pdw.beta = 1.0f;
  matmul(pdw);
  check_gradients(loss, {{"x", x, to_vec(dx)}, {"W", W, to_vec(dW, &dW0.t())}}, 11);
}

// A batched product with alpha: L = sum(r * alpha * a_i @ b_i) for i < 3; the gradients are
// alpha * r_i @ b_i^T and alpha * a_i^T @ r_i, also computed batched.
TEST(KernelsFd, MatmulBatchedAlpha) {
  std::mt19937 rng(2);
  const int64_t B = 3, M = 4, K = 5, N = 6;
  const float alpha = -0.75f;
  HostTensor a = uniform({B, M, K}, rng), b = uniform({B, K, N}, rng);
  HostTensor r = uniform({B, M, N}, rng), y = HostTensor::f32({B, M, N});
  auto loss = [&] {
    MatmulParams p;
    p.out = y;
    p.a = a;
    p.b = b;
    p.alpha = alpha;
    p.batch = B;
    matmul(p);
    return project(r, y);
  };
  HostTensor da = filled({B, M, K}, kNaN), db = filled({B, K, N}, kNaN);
  MatmulParams pa;
  pa.out = da;
  pa.a = r;
  pa.b = b;
  pa.trans_b = true;
  pa.alpha = alpha;
  pa.batch = B;
  matmul(pa);
  MatmulParams pb;
  pb.out = db;
  pb.a = a;
  pb.b = r;
  pb.trans_a = true;
  pb.alpha = alpha;
  pb.batch = B;
  matmul(pb);
  check_gradients(loss, {{"a", a, to_vec(da)}, {"b", b, to_vec(db)}}, 12);
}

// ---- rmsnorm ---------------------------------------------------------------------------

void rmsnorm_case(int64_t N, int64_t C, uint32_t seed) {
  std::mt19937 rng(seed);
  const float eps = 1e-5f;
  HostTensor x = uniform({N, C}, rng), w = uniform({C}, rng, 0.5f, 1.5f);
  HostTensor r = uniform({N, C}, rng), y = HostTensor::f32({N, C}), rstd = HostTensor::f32({N});
  auto loss = [&] {
    rmsnorm_forward(y, rstd, x, w, eps);
    return project(r, y);
  };
  loss();  // fills rstd for the backward
  // Both gradients accumulate (+=): prefill them and subtract the prefill.
  HostTensor dx = uniform({N, C}, rng), dw = uniform({C}, rng);
  HostTensor dx0 = HostTensor::f32({N, C}), dw0 = HostTensor::f32({C});
  copy(dx0, dx);
  copy(dw0, dw);
  rmsnorm_backward(dx, dw, r, x, w, rstd);
  check_gradients(loss, {{"x", x, to_vec(dx, &dx0.t())}, {"weight", w, to_vec(dw, &dw0.t())}}, seed + 100);
}

TEST(KernelsFd, RmsnormSmallC) { rmsnorm_case(5, 19, 3); }
TEST(KernelsFd, RmsnormTwoChannelBlocks) { rmsnorm_case(6, 70, 4); }  // C > 64: dweight's channel blocking

// ---- rope ------------------------------------------------------------------------------

TEST(KernelsFd, Rope) {
  std::mt19937 rng(5);
  const int64_t B = 2, T = 5, H = 5, D = 8;
  const int n_rot = 3;  // e.g. 2 q heads + 1 k head; the last 2 (v) heads pass through
  RopeParams rp;
  rp.head_dim = D;
  rp.theta = 100.0;  // a small theta: large angles within T = 5
  HostTensor cos = HostTensor::f32({T, D / 2}), sin = HostTensor::f32({T, D / 2});
  rope_tables(cos, sin, rp);
  HostTensor qkv = uniform({B, T, H, D}, rng), r = uniform({B, T, H, D}, rng);
  HostTensor work = HostTensor::f32({B, T, H, D});
  auto loss = [&] {
    copy(work, qkv);
    rope_forward(work, n_rot, cos, sin);
    return project(r, work);
  };
  HostTensor g = HostTensor::f32({B, T, H, D});
  copy(g, r);
  rope_backward(g, n_rot, cos, sin);
  check_gradients(loss, {{"qkv", qkv, to_vec(g)}}, 105);
}

// ---- attention: dq, dk, dv for GQA ratios 1, 2, 3 ---------------------------------------

void attention_case(AttentionShape s, uint32_t seed) {
  std::mt19937 rng(seed);
  const int64_t Htot = s.n_head + 2 * s.n_kv_head;
  HostTensor qkv = uniform({s.B, s.T, Htot, s.head_dim}, rng, -1.5f, 1.5f);
  HostTensor r = uniform({s.B, s.T, s.n_head, s.head_dim}, rng);
  HostTensor out = HostTensor::f32({s.B, s.T, s.n_head, s.head_dim}), lse = HostTensor::f32({s.B, s.n_head, s.T});
  auto loss = [&] {
    attention_forward(out, lse, qkv, s);
    return project(r, out);
  };
  loss();
  HostTensor dqkv = filled({s.B, s.T, Htot, s.head_dim}, kNaN);  // "=": every element must be written
  attention_backward(dqkv, r, out, lse, qkv, s);
  // Split qkv into its q, k and v parts so a failure names the part; each part is checked
  // through views of the same buffer.
  std::vector<double> g = to_vec(dqkv);
  const int64_t row = Htot * s.head_dim;
  std::vector<FdInput> parts;
  const int64_t starts[3] = {0, s.n_head * int64_t{s.head_dim}, (s.n_head + s.n_kv_head) * int64_t{s.head_dim}};
  const int64_t widths[3] = {s.n_head * int64_t{s.head_dim}, s.n_kv_head * int64_t{s.head_dim},
                             s.n_kv_head * int64_t{s.head_dim}};
  const char* names[3] = {"dq", "dk", "dv"};
  // Each part is strided inside qkv, so perturb a packed copy and scatter it back in loss().
  std::vector<HostTensor> packed;
  for (int p = 0; p < 3; p++) {
    HostTensor t = HostTensor::f32({s.B * s.T, widths[p]});
    std::vector<double> gp(static_cast<size_t>(t.numel()));
    for (int64_t bt = 0; bt < s.B * s.T; bt++)
      for (int64_t i = 0; i < widths[p]; i++) {
        t.f32()[bt * widths[p] + i] = qkv.f32()[bt * row + starts[p] + i];
        gp[bt * widths[p] + i] = g[bt * row + starts[p] + i];
      }
    parts.push_back({names[p], t, gp});
    packed.push_back(std::move(t));
  }
  auto loss_parts = [&] {
    for (int p = 0; p < 3; p++)
      for (int64_t bt = 0; bt < s.B * s.T; bt++)
        for (int64_t i = 0; i < widths[p]; i++)
          qkv.f32()[bt * row + starts[p] + i] = packed[p].f32()[bt * widths[p] + i];
    return loss();
  };
  check_gradients(loss_parts, parts, seed + 100);
}

TEST(KernelsFd, AttentionMha) { attention_case({2, 7, 2, 2, 8}, 6); }       // ratio 1
TEST(KernelsFd, AttentionGqa2) { attention_case({2, 7, 4, 2, 6}, 7); }      // ratio 2, head_dim 6
TEST(KernelsFd, AttentionGqa3) { attention_case({1, 7, 6, 2, 8}, 8); }      // ratio 3
TEST(KernelsFd, AttentionMqaLongerT) { attention_case({1, 13, 3, 1, 6}, 9); }  // one kv head shared by 3
TEST(KernelsFd, AttentionPastOneKeyBlock) { attention_case({1, 70, 2, 1, 4}, 10); }  // T > 64: two key blocks

// ---- swiglu ----------------------------------------------------------------------------

TEST(KernelsFd, Swiglu) {
  std::mt19937 rng(10);
  const int64_t N = 4, F = 13;
  HostTensor gu = uniform({N, 2 * F}, rng, -3.0f, 3.0f);  // wide enough to reach silu's curvature
  HostTensor r = uniform({N, F}, rng), y = HostTensor::f32({N, F});
  auto loss = [&] {
    swiglu_forward(y, gu);
    return project(r, y);
  };
  HostTensor dgu = filled({N, 2 * F}, kNaN);
  swiglu_backward(dgu, r, gu);
  check_gradients(loss, {{"gate_up", gu, to_vec(dgu)}}, 110);
}

// ---- cross-entropy: the fused op's dlogits is the gradient of grad_scale * sum(losses) ---

TEST(KernelsFd, CrossEntropy) {
  std::mt19937 rng(11);
  const int64_t N = 5, V = 11;
  const float grad_scale = 0.37f;
  HostTensor logits = uniform({N, V}, rng, -3.0f, 3.0f);
  HostTensor targets(DType::I32, {N});
  for (int64_t i = 0; i < N; i++) targets.t().i32()[i] = static_cast<int32_t>(rng() % V);
  HostTensor losses = HostTensor::f32({N}), scale = filled({N}, grad_scale);
  auto loss = [&] {
    cross_entropy_forward(losses, logits, targets);
    return project(scale, losses);
  };
  HostTensor dlogits = HostTensor::f32({N, V}), fused_losses = HostTensor::f32({N});
  copy(dlogits, logits);
  cross_entropy_forward_backward(fused_losses, dlogits, targets, grad_scale);
  loss();
  for (int64_t i = 0; i < N; i++) EXPECT_EQ(fused_losses.f32()[i], losses.f32()[i]) << "row " << i;
  check_gradients(loss, {{"logits", logits, to_vec(dlogits)}}, 111);
}

// ---- embedding: dtable accumulates, repeated tokens sum ----------------------------------

TEST(KernelsFd, Embedding) {
  std::mt19937 rng(12);
  const int64_t V = 9, C = 70, N = 12;  // C > 64: two channel blocks in the backward
  HostTensor table = uniform({V, C}, rng);
  HostTensor tokens(DType::I32, {N});
  const int32_t ids[N] = {3, 0, 8, 3, 3, 5, 1, 0, 7, 2, 8, 3};  // repeats; token 4 and 6 unused
  for (int64_t i = 0; i < N; i++) tokens.t().i32()[i] = ids[i];
  HostTensor r = uniform({N, C}, rng), out = HostTensor::f32({N, C});
  auto loss = [&] {
    embedding_forward(out, tokens, table);
    return project(r, out);
  };
  HostTensor dtable = uniform({V, C}, rng), dtable0 = HostTensor::f32({V, C});
  copy(dtable0, dtable);
  embedding_backward(dtable, tokens, r);
  std::vector<double> g = to_vec(dtable, &dtable0.t());
  for (int64_t c = 0; c < C; c++) {  // unused tokens: exactly the prefill
    EXPECT_EQ(g[4 * C + c], 0.0);
    EXPECT_EQ(g[6 * C + c], 0.0);
  }
  check_gradients(loss, {{"table", table, g}}, 112);
}

}  // namespace
