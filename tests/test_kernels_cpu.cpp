// Forward ops of the cpu backend (all but matmul: test_kernels_matmul.cpp) against direct
// double-precision loops written here (each a different formulation from the kernel's), plus
// the error contract of every entry point.
#include <gtest/gtest.h>

#include "core/cuda_check.h"
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "tests/util_kernels.h"
#include "kernels/attention.h"
#include "kernels/cross_entropy.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"

using namespace mu;
using namespace mu::test;

namespace {


// ---- embedding -------------------------------------------------------------------------

TEST(KernelsCpu, EmbeddingForward) {
  std::mt19937 rng(8);
  const int64_t V = 11, C = 37;
  HostTensor table = uniform({V, C}, rng), tokens = ids({10, 0, 3, 3, 7});
  HostTensor out = filled({5, C}, kNaN);
  embedding_forward(out, tokens, table);
  for (int64_t n = 0; n < 5; n++)
    for (int64_t c = 0; c < C; c++)
      EXPECT_EQ(out.f32()[n * C + c], table.f32()[tokens.t().i32()[n] * C + c]);
}

TEST(KernelsCpu, EmbeddingBadTokens) {
  HostTensor table = filled({11, 4}, 1.0f), out = HostTensor::f32({3, 4}), dt = HostTensor::f32({11, 4});
  for (int32_t bad : {11, -1, 1 << 30}) {
    HostTensor tokens = ids({1, bad, 2});
    try {
      embedding_forward(out, tokens, table);
      ADD_FAILURE() << "token " << bad << " accepted";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(std::to_string(bad)), std::string::npos) << msg;  // names the id
      EXPECT_NE(msg.find("position 1"), std::string::npos) << msg;          // and where it is
    }
    EXPECT_THROW(embedding_backward(dt, tokens, out), Error);
  }
  HostTensor ftok = HostTensor::f32({3});  // token ids must be I32
  EXPECT_THROW(embedding_forward(out, ftok, table), Error);
  EXPECT_THROW(embedding_forward(HostTensor::f32({3, 5}), ids({1, 2, 3}), table), Error);  // C mismatch
  // out over table's rows (the cuda kernel reads and writes through __restrict__ pointers).
  try {
    embedding_forward(Tensor(table).rows(0, 3), ids({1, 2, 3}), table);
    ADD_FAILURE() << "out inside table accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("overlaps table"), std::string::npos) << e.what();
  }
}

TEST(KernelsCpu, EmbeddingBackwardDeterministic) {
  std::mt19937 rng(9);
  const int64_t V = 5, C = 200, N = 64;
  HostTensor dout = uniform({N, C}, rng);
  std::vector<int32_t> t(N);
  for (auto& x : t) x = static_cast<int32_t>(rng() % V);
  HostTensor tokens = ids(t);
  HostTensor d1 = HostTensor::f32({V, C}), d2 = HostTensor::f32({V, C});
  with_threads(1, [&] { embedding_backward(d1, tokens, dout); });
  with_threads(2, [&] { embedding_backward(d2, tokens, dout); });
  EXPECT_EQ(0, std::memcmp(d1.f32(), d2.f32(), d1.t().nbytes()));
}

// ---- rmsnorm ---------------------------------------------------------------------------

TEST(KernelsCpu, RmsnormForward) {
  std::mt19937 rng(10);
  const int64_t N = 9, C = 131;
  const float eps = 1e-6f;
  HostTensor x = uniform({N, C}, rng, -3, 3), w = uniform({C}, rng), out = filled({N, C}, kNaN);
  HostTensor rstd = filled({N}, kNaN);
  for (int64_t c = 0; c < C; c++) x.f32()[2 * C + c] *= 1e-3f;  // a small row: eps is a visible part of the denominator
  rmsnorm_forward(out, rstd, x, w, eps);
  std::vector<double> want(N * C), want_r(N);
  for (int64_t n = 0; n < N; n++) {
    double ms = 0.0;
    for (int64_t c = 0; c < C; c++) ms += std::pow(x.f32()[n * C + c], 2.0);
    want_r[n] = std::pow(ms / C + eps, -0.5);
    for (int64_t c = 0; c < C; c++) want[n * C + c] = w.f32()[c] * (x.f32()[n * C + c] * want_r[n]);
  }
  // Only a few fp32 roundings per element: 1e-6 relative (about 8 ulp).
  expect_close(out.f32(), want, 1e-7, 1e-6, "rmsnorm out");
  expect_close(rstd.f32(), want_r, 0.0, 1e-6, "rmsnorm rstd");
}

TEST(KernelsCpu, RmsnormErrors) {
  HostTensor x = HostTensor::f32({4, 8}), w = HostTensor::f32({8}), out = HostTensor::f32({4, 8});
  HostTensor rstd = HostTensor::f32({4});
  EXPECT_THROW(rmsnorm_forward(out, rstd, x, HostTensor::f32({7}), 1e-5f), Error);
  EXPECT_THROW(rmsnorm_forward(out, HostTensor::f32({3}), x, w, 1e-5f), Error);
  EXPECT_THROW(rmsnorm_forward(HostTensor(DType::BF16, {4, 8}), rstd, x, w, 1e-5f), Error);
  EXPECT_THROW(rmsnorm_backward(HostTensor::f32({4, 9}), w, out, x, w, rstd), Error);
}

// ---- rope ------------------------------------------------------------------------------

// Reference inverse frequencies written from the frequency side (the kernel works with
// wavelengths): a frequency above 2*pi*high/old is kept, below 2*pi*low/old divided by factor,
// in between interpolated with weight (old*f/(2*pi) - low)/(high - low).
std::vector<double> ref_inv_freq(const RopeParams& p) {
  std::vector<double> f(p.head_dim / 2);
  for (int i = 0; i < p.head_dim / 2; i++) {
    f[i] = std::exp(-std::log(p.theta) * (2.0 * i) / p.head_dim);
    if (p.scaling_type != "llama3") continue;
    const double two_pi = 2.0 * std::acos(-1.0);
    const double hi_f = two_pi * p.high_freq_factor / p.original_max_position;
    const double lo_f = two_pi * p.low_freq_factor / p.original_max_position;
    if (f[i] > hi_f) continue;
    if (f[i] < lo_f) {
      f[i] /= p.factor;
      continue;
    }
    const double w = (p.original_max_position * f[i] / two_pi - p.low_freq_factor) /
                     (p.high_freq_factor - p.low_freq_factor);
    f[i] = w * f[i] + (1.0 - w) * f[i] / p.factor;
  }
  return f;
}

void check_tables(const RopeParams& p, int64_t T) {
  HostTensor cos = filled({T, p.head_dim / 2}, kNaN), sin = filled({T, p.head_dim / 2}, kNaN);
  rope_tables(cos, sin, p);
  const std::vector<double> f = ref_inv_freq(p);
  std::vector<double> wc, ws;
  for (int64_t t = 0; t < T; t++)
    for (double fi : f) {
      wc.push_back(std::cos(t * fi));
      ws.push_back(std::sin(t * fi));
    }
  // cos/sin of the same double angle, rounded once to fp32: within an fp32 ulp of |x| <= 1.
  expect_close(cos.f32(), wc, 1.2e-7, 0.0, "rope cos");
  expect_close(sin.f32(), ws, 1.2e-7, 0.0, "rope sin");
}

TEST(KernelsCpu, RopeTablesPlain) {
  RopeParams p;
  p.head_dim = 64;
  p.theta = 10000.0;
  check_tables(p, 50);
}

TEST(KernelsCpu, RopeTablesLlama3) {
  // Llama 3.1's settings; with head_dim 64 and theta 5e5 the frequencies i = 15..17 fall in
  // the interpolated band, lower ones are kept and higher ones divided by the factor.
  RopeParams p;
  p.head_dim = 64;
  p.theta = 500000.0;
  p.scaling_type = "llama3";
  p.factor = 8.0;
  p.low_freq_factor = 1.0;
  p.high_freq_factor = 4.0;
  p.original_max_position = 8192;
  check_tables(p, 40);
  // The three regimes really occur at these settings (otherwise the test proves less).
  RopeParams plain = p;
  plain.scaling_type = "";
  const std::vector<double> a = ref_inv_freq(p), b = ref_inv_freq(plain);
  int kept = 0, divided = 0, mixed = 0;
  for (size_t i = 0; i < a.size(); i++) {
    if (a[i] == b[i]) kept++;
    else if (std::fabs(a[i] * p.factor - b[i]) < 1e-15 * b[i]) divided++;
    else mixed++;
  }
  EXPECT_GT(kept, 0);
  EXPECT_GT(divided, 0);
  EXPECT_GT(mixed, 0);
}

TEST(KernelsCpu, RopeForward) {
  std::mt19937 rng(11);
  const int64_t B = 2, T = 9, H = 7, D = 10;
  const int n_rot = 5;
  RopeParams p;
  p.head_dim = D;
  p.theta = 1000.0;
  HostTensor cos = HostTensor::f32({T + 3, D / 2}), sin = HostTensor::f32({T + 3, D / 2});  // a longer table is fine
  rope_tables(cos, sin, p);
  HostTensor x = uniform({B, T, H, D}, rng), x0 = HostTensor::f32({B, T, H, D});
  copy(x0, x);
  rope_forward(x, n_rot, cos, sin);
  const std::vector<double> f = ref_inv_freq(p);
  std::vector<double> want(B * T * H * D);
  for (int64_t b = 0; b < B; b++)
    for (int64_t t = 0; t < T; t++)
      for (int64_t h = 0; h < H; h++) {
        const float* v = x0.f32() + ((b * T + t) * H + h) * D;
        double* w = want.data() + ((b * T + t) * H + h) * D;
        for (int64_t i = 0; i < D / 2; i++) {
          // (x1 + i x2) * e^{i t f}: the rotate_half rotation as a complex product
          std::complex<double> z(v[i], v[i + D / 2]);
          if (h < n_rot) z *= std::polar(1.0, t * f[i]);
          w[i] = z.real();
          w[i + D / 2] = z.imag();
        }
      }
  // Two fp32 products and a sum per element, with fp32 tables: a few ulp of |x| <= 1.4.
  expect_close(x.f32(), want, 1e-6, 0.0, "rope forward");
  for (int64_t bt = 0; bt < B * T; bt++)  // heads past n_rot are untouched, bit for bit
    for (int64_t i = n_rot * D; i < H * D; i++) ASSERT_EQ(x.f32()[bt * H * D + i], x0.f32()[bt * H * D + i]);
  // backward undoes forward (the rotation is orthogonal)
  rope_backward(x, n_rot, cos, sin);
  std::vector<double> orig(x0.f32(), x0.f32() + x0.numel());
  expect_close(x.f32(), orig, 1e-6, 0.0, "rope backward(forward(x))");
}

TEST(KernelsCpu, RopeErrors) {
  RopeParams p;
  p.head_dim = 8;
  HostTensor cos = HostTensor::f32({4, 4}), sin = HostTensor::f32({4, 4});
  p.scaling_type = "yarn";
  EXPECT_THROW(rope_tables(cos, sin, p), Error);
  p.scaling_type = "";
  p.head_dim = 7;
  EXPECT_THROW(rope_tables(cos, sin, p), Error);
  p.head_dim = 8;
  EXPECT_THROW(rope_tables(cos, HostTensor::f32({4, 3}), p), Error);
  HostTensor qkv = HostTensor::f32({1, 5, 3, 8});
  EXPECT_THROW(rope_forward(qkv, 2, cos, sin), Error);  // table has 4 rows, T = 5
  HostTensor qkv4 = HostTensor::f32({1, 4, 3, 8});
  EXPECT_THROW(rope_forward(qkv4, 4, cos, sin), Error);  // more rotated heads than heads
  EXPECT_NO_THROW(rope_forward(qkv4, 3, cos, sin));
}

// ---- attention -------------------------------------------------------------------------

// Reference: materialise K and V repeated per query head, the full (T, T) score matrix with
// -inf above the diagonal, a row softmax and P @ V, all in double.
void check_attention(AttentionShape s, uint32_t seed) {
  std::mt19937 rng(seed);
  const int64_t Ht = s.n_head + 2 * s.n_kv_head, D = s.head_dim, T = s.T;
  HostTensor qkv = uniform({s.B, T, Ht, D}, rng, -2.0f, 2.0f);
  HostTensor out = filled({s.B, T, s.n_head, D}, kNaN), lse = filled({s.B, s.n_head, T}, kNaN);
  attention_forward(out, lse, qkv, s);
  auto at = [&](int64_t b, int64_t t, int64_t head, int64_t d) {
    return static_cast<double>(qkv.f32()[((b * T + t) * Ht + head) * D + d]);
  };
  std::vector<double> want_o(out.numel()), want_l(lse.numel());
  const int64_t rep = s.n_head / s.n_kv_head;
  for (int64_t b = 0; b < s.B; b++)
    for (int64_t h = 0; h < s.n_head; h++) {
      std::vector<double> Kr(T * D), Vr(T * D);  // explicit repetition of the group's kv head
      for (int64_t t = 0; t < T; t++)
        for (int64_t d = 0; d < D; d++) {
          Kr[t * D + d] = at(b, t, s.n_head + h / rep, d);
          Vr[t * D + d] = at(b, t, s.n_head + s.n_kv_head + h / rep, d);
        }
      std::vector<double> S(T * T);
      for (int64_t i = 0; i < T; i++)
        for (int64_t j = 0; j < T; j++) {
          double dot = 0.0;
          for (int64_t d = 0; d < D; d++) dot += at(b, i, h, d) * Kr[j * D + d];
          S[i * T + j] = j <= i ? dot / std::sqrt(static_cast<double>(D)) : -INFINITY;
        }
      for (int64_t i = 0; i < T; i++) {
        double mx = -INFINITY, z = 0.0;
        for (int64_t j = 0; j < T; j++) mx = std::max(mx, S[i * T + j]);
        for (int64_t j = 0; j < T; j++) z += std::exp(S[i * T + j] - mx);
        want_l[(b * s.n_head + h) * T + i] = mx + std::log(z);
        for (int64_t d = 0; d < D; d++) {
          double o = 0.0;
          for (int64_t j = 0; j < T; j++) o += std::exp(S[i * T + j] - mx) / z * Vr[j * D + d];
          want_o[((b * T + i) * s.n_head + h) * D + d] = o;
        }
      }
    }
  // fp32 scores (|s| <= ~4 * sqrt(D)) carry ~1e-6 absolute error, which moves the
  // probabilities by that relative amount; outputs are convex mixes of |v| <= 2: 1e-5.
  expect_close(out.f32(), want_o, 1e-5, 0.0, "attention out");
  expect_close(lse.f32(), want_l, 1e-5, 1e-6, "attention lse");
}

TEST(KernelsCpu, AttentionForward) {
  check_attention({2, 7, 2, 2, 8}, 20);    // MHA
  check_attention({2, 7, 4, 2, 6}, 21);    // GQA 2
  check_attention({1, 33, 6, 2, 16}, 22);  // GQA 3, longer T
  check_attention({1, 1, 3, 1, 8}, 23);    // T = 1: out is v
  check_attention({3, 70, 4, 1, 32}, 24);  // MQA, several dynamic chunks per thread
}

// The backward ops that reduce over rows (attention's dk/dv, rmsnorm's dweight) sum in a fixed
// order: one thread and two give the same bits.
TEST(KernelsCpu, BackwardsBitwiseIndependentOfThreadCount) {
  std::mt19937 rng(25);
  AttentionShape s{2, 37, 4, 2, 16};
  HostTensor qkv = uniform({2, 37, 8, 16}, rng), dout = uniform({2, 37, 4, 16}, rng);
  HostTensor out = HostTensor::f32({2, 37, 4, 16}), lse = HostTensor::f32({2, 4, 37});
  attention_forward(out, lse, qkv, s);
  HostTensor d1 = HostTensor::f32({2, 37, 8, 16}), d2 = HostTensor::f32({2, 37, 8, 16});
  with_threads(1, [&] { attention_backward(d1, dout, out, lse, qkv, s); });
  with_threads(2, [&] { attention_backward(d2, dout, out, lse, qkv, s); });
  EXPECT_EQ(0, std::memcmp(d1.f32(), d2.f32(), d1.t().nbytes()));
  HostTensor x = uniform({300, 130}, rng), w = uniform({130}, rng), g = uniform({300, 130}, rng);
  HostTensor y = HostTensor::f32({300, 130}), rstd = HostTensor::f32({300});
  rmsnorm_forward(y, rstd, x, w, 1e-5f);
  HostTensor dx1 = HostTensor::f32({300, 130}), dx2 = HostTensor::f32({300, 130});
  HostTensor dw1 = HostTensor::f32({130}), dw2 = HostTensor::f32({130});
  with_threads(1, [&] { rmsnorm_backward(dx1, dw1, g, x, w, rstd); });
  with_threads(2, [&] { rmsnorm_backward(dx2, dw2, g, x, w, rstd); });
  EXPECT_EQ(0, std::memcmp(dx1.f32(), dx2.f32(), dx1.t().nbytes()));
  EXPECT_EQ(0, std::memcmp(dw1.f32(), dw2.f32(), dw1.t().nbytes()));
}

TEST(KernelsCpu, AttentionErrors) {
  AttentionShape s{1, 4, 4, 3, 8};  // 4 % 3 != 0
  HostTensor qkv = HostTensor::f32({1, 4, 10, 8}), out = HostTensor::f32({1, 4, 4, 8}), lse = HostTensor::f32({1, 4, 4});
  EXPECT_THROW(attention_forward(out, lse, qkv, s), Error);
  s = {1, 4, 4, 2, 8};
  EXPECT_THROW(attention_forward(out, lse, qkv, s), Error);  // qkv has 10 heads, want 8
  HostTensor qkv8 = HostTensor::f32({1, 4, 8, 8});
  EXPECT_NO_THROW(attention_forward(out, lse, qkv8, s));
  EXPECT_THROW(attention_forward(out, HostTensor::f32({1, 4, 5}), qkv8, s), Error);
  EXPECT_THROW(attention_backward(HostTensor::f32({1, 4, 8, 8}), HostTensor::f32({1, 4, 4, 7}), out, lse, qkv8, s),
               Error);
  // The gradient in place of an input: refused, naming both.
  HostTensor dout = HostTensor::f32({1, 4, 4, 8});
  try {
    attention_backward(qkv8, dout, out, lse, qkv8, s);
    ADD_FAILURE() << "dqkv = qkv accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("overlaps qkv"), std::string::npos) << e.what();
  }
}

// ---- swiglu ----------------------------------------------------------------------------

TEST(KernelsCpu, SwigluForward) {
  std::mt19937 rng(30);
  const int64_t N = 6, F = 45;
  HostTensor gu = uniform({N, 2 * F}, rng, -8, 8), out = filled({N, F}, kNaN);
  swiglu_forward(out, gu);
  std::vector<double> want(N * F);
  for (int64_t n = 0; n < N; n++)
    for (int64_t i = 0; i < F; i++) {
      const double g = gu.f32()[n * 2 * F + i], u = gu.f32()[n * 2 * F + F + i];
      want[n * F + i] = g / (1.0 + std::exp(-g)) * u;  // silu(g) = g * sigmoid(g)
    }
  // expf and three fp32 operations: ~4 ulp; 1e-6 relative plus 1e-7 near zero.
  expect_close(out.f32(), want, 1e-7, 1e-6, "swiglu");
  EXPECT_THROW(swiglu_forward(HostTensor::f32({N, F + 1}), gu), Error);
  EXPECT_THROW(swiglu_forward(HostTensor::f32({N, F}), HostTensor::f32({N, 2 * F + 1})), Error);
  EXPECT_THROW(swiglu_backward(HostTensor::f32({N, 2 * F}), HostTensor::f32({N, F - 1}), gu), Error);
}

// ---- cross-entropy ---------------------------------------------------------------------

TEST(KernelsCpu, CrossEntropy) {
  std::mt19937 rng(40);
  const int64_t N = 7, V = 1001;
  HostTensor logits = uniform({N, V}, rng, -5, 5);
  for (int64_t j = 0; j < V; j++) logits.f32()[3 * V + j] += 1000.0f;  // needs the max subtraction
  logits.f32()[5 * V + 17] = 60.0f;                                      // one dominant logit
  std::vector<int32_t> t(N);
  for (auto& x : t) x = static_cast<int32_t>(rng() % V);
  t[5] = 17;
  HostTensor targets = ids(t), losses = filled({N}, kNaN);
  cross_entropy_forward(losses, logits, targets);
  std::vector<double> want(N), want_g(N * V);
  const float grad_scale = 1.0f / N;
  for (int64_t n = 0; n < N; n++) {
    const float* z = logits.f32() + n * V;
    double mx = -INFINITY, sum = 0.0;
    for (int64_t j = 0; j < V; j++) mx = std::max(mx, static_cast<double>(z[j]));
    for (int64_t j = 0; j < V; j++) sum += std::exp(z[j] - mx);
    want[n] = -(z[t[n]] - mx - std::log(sum));  // -log softmax[target]
    for (int64_t j = 0; j < V; j++) want_g[n * V + j] = grad_scale * (std::exp(z[j] - mx) / sum - (j == t[n]));
  }
  // The loss is a difference of O(1000) values in the shifted row: 1e-4 absolute (fp32 ulp
  // of 1000 is 6e-5), 1e-5 elsewhere through the relative part.
  expect_close(losses.f32(), want, 1e-4, 1e-5, "cross-entropy losses");
  HostTensor fused = filled({N}, kNaN);
  cross_entropy_forward_backward(fused, logits, targets, grad_scale);
  expect_close(fused.f32(), want, 1e-4, 1e-5, "fused losses");
  // probabilities in fp32: ~1e-7 relative of p plus the 1e-7 rounding of the -1 entry
  expect_close(logits.f32(), want_g, 1e-8, 1e-5, "dlogits");
}

TEST(KernelsCpu, CrossEntropyErrors) {
  HostTensor logits = HostTensor::f32({3, 5}), losses = HostTensor::f32({3});
  for (int32_t bad : {5, -1}) {
    HostTensor targets = ids({0, 4, bad});
    try {
      cross_entropy_forward(losses, logits, targets);
      ADD_FAILURE() << "target " << bad << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("position 2"), std::string::npos) << e.what();
    }
    EXPECT_THROW(cross_entropy_forward_backward(losses, logits, targets, 1.0f), Error);
  }
  EXPECT_THROW(cross_entropy_forward(losses, logits, ids({0, 1})), Error);         // N mismatch
  EXPECT_THROW(cross_entropy_forward(losses, logits, HostTensor::f32({3})), Error);  // targets not I32
  EXPECT_THROW(cross_entropy_forward(HostTensor::f32({4}), logits, ids({0, 1, 2})), Error);
}

// ---- elementwise -----------------------------------------------------------------------

TEST(KernelsCpu, Elementwise) {
  std::mt19937 rng(50);
  const int64_t n = 100003;  // not a multiple of any vector width or chunk
  HostTensor a = uniform({n}, rng), b = uniform({n}, rng), out = filled({n}, kNaN);
  add(out, a, b);
  for (int64_t i = 0; i < n; i++) ASSERT_EQ(out.f32()[i], a.f32()[i] + b.f32()[i]);
  add(a, a, b);  // out aliases a
  for (int64_t i = 0; i < n; i++) ASSERT_EQ(a.f32()[i], out.f32()[i]);
  accumulate(out, b);
  for (int64_t i = 0; i < n; i++) ASSERT_EQ(out.f32()[i], a.f32()[i] + b.f32()[i]);
  scale(out, -0.5f);
  for (int64_t i = 0; i < n; i++) ASSERT_EQ(out.f32()[i], (a.f32()[i] + b.f32()[i]) * -0.5f);
  fill(out, 3.25f);
  for (int64_t i = 0; i < n; i++) ASSERT_EQ(out.f32()[i], 3.25f);
  HostTensor c = HostTensor::f32({7, n / 7 + 0});
  EXPECT_THROW(copy(c, b), Error);  // numel differs
  HostTensor m = HostTensor::f32({n});
  copy(m, b);
  EXPECT_EQ(0, std::memcmp(m.f32(), b.f32(), b.t().nbytes()));
  double want = 0.0;
  for (int64_t i = 0; i < n; i++) want += static_cast<double>(b.f32()[i]) * b.f32()[i];
  double s1 = 0, s2 = 0;
  with_threads(1, [&] { s1 = sum_squares(b); });
  with_threads(2, [&] { s2 = sum_squares(b); });
  EXPECT_NEAR(s1, want, 1e-12 * want);  // double sums of exact fp32 squares: only the order differs
  EXPECT_EQ(s1, s2);                     // fixed chunking: independent of the thread count
  // Several tensors (the clip norm's form): the sum of the single sums, in the order given.
  HostTensor none = HostTensor::f32({0});
  EXPECT_EQ(sum_squares(std::vector<Tensor>{b, none, out}), s1 + sum_squares(out));
  EXPECT_EQ(sum_squares(std::vector<Tensor>{}), 0.0);
  // A cpu tensor and a cuda one in one sum: refused before anything is read.
  float fake[4] = {};
  const Tensor on_gpu(fake, DType::F32, Device::CUDA, Shape{4});
  EXPECT_THROW(sum_squares(std::vector<Tensor>{b, on_gpu}), Error);
  EXPECT_THROW(add(out, a, HostTensor::f32({n - 1})), Error);
  EXPECT_THROW(accumulate(out, HostTensor(DType::BF16, {n})), Error);
  EXPECT_THROW(copy(m, HostTensor(DType::BF16, {n})), Error);
}

// fill_uniform: statistics of a uniform distribution on [lo, hi) (no value is taken from the
// hash itself), determinism by seed and independence from the thread count.
TEST(KernelsCpu, FillUniformIsUniformAndSeeded) {
  const int64_t n = int64_t{1} << 20;
  const float lo = -2.0f, hi = 3.0f;
  HostTensor a = HostTensor::f32({n}), b = HostTensor::f32({n}), c = HostTensor::f32({n});
  with_threads(1, [&] { fill_uniform(a, 7, lo, hi); });
  with_threads(2, [&] { fill_uniform(b, 7, lo, hi); });
  fill_uniform(c, 8, lo, hi);
  EXPECT_EQ(0, std::memcmp(a.f32(), b.f32(), a.t().nbytes())) << "the thread count changed the values";
  double sum = 0, sq = 0, lag = 0;
  int64_t same_as_other_seed = 0;
  std::vector<int64_t> bins(20, 0);
  for (int64_t i = 0; i < n; i++) {
    const double x = a.f32()[i];
    ASSERT_TRUE(x >= lo && x <= hi) << "element " << i << " = " << x;
    sum += x;
    sq += x * x;
    if (i > 0) lag += (x - 0.5) * (a.f32()[i - 1] - 0.5);
    bins[static_cast<size_t>((x - lo) / (hi - lo) * 20)]++;
    same_as_other_seed += a.f32()[i] == c.f32()[i];
  }
  const double mean = sum / n, var = sq / n - mean * mean, width = hi - lo;
  // Uniform on [lo, hi): mean 0.5, variance width^2 / 12; 6 standard errors allowed.
  EXPECT_NEAR(mean, 0.5, 6 * width / std::sqrt(12.0 * n));
  EXPECT_NEAR(var, width * width / 12, 0.01 * width * width / 12);
  // lag-1 autocorrelation: about N(0, 1/n) for independent values
  EXPECT_LT(std::abs(lag / n / (width * width / 12)), 6 / std::sqrt(static_cast<double>(n)));
  // Chi-square over 20 equal bins, 19 degrees of freedom: 60 is far past p = 1e-5 (about 50).
  double chi2 = 0;
  for (int64_t k : bins) chi2 += (k - n / 20.0) * (k - n / 20.0) / (n / 20.0);
  EXPECT_LT(chi2, 60.0);
  EXPECT_LT(same_as_other_seed, n / 1000) << "seeds 7 and 8 give mostly the same values";
  EXPECT_THROW(fill_uniform(a, 1, 1.0f, 1.0f), Error);  // empty range
  EXPECT_THROW(fill_uniform(a, 1, 0.0f, std::numeric_limits<float>::infinity()), Error);
}

TEST(KernelsCpu, CudaTensorsFailClearly) {
  // Without a GPU, a cuda tensor reaches the dispatch and gets a clear message (nothing is
  // touched). With one, the host pointer below would be a real fault: the gpu_* suites cover it.
  if (cuda_device_count() > 0) GTEST_SKIP() << "a CUDA device is present; the gpu_* tests cover cuda tensors";
  static float dummy[64];
  Tensor t(dummy, DType::F32, Device::CUDA, {4, 4});
  try {
    fill(t, 1.0f);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no CUDA device"), std::string::npos) << e.what();
  }
  Tensor w(dummy, DType::F32, Device::CUDA, {4});
  Tensor r(dummy, DType::F32, Device::CUDA, {4});
  EXPECT_THROW(rmsnorm_forward(t, r, t, w, 1e-5f), Error);
}

}  // namespace
