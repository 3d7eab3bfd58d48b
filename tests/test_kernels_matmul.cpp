// The cpu GEMM against a naive double-precision triple loop: awkward shapes, all four trans
// combinations, alpha/beta, strided batches, shapes past every block size; and its errors.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "tests/util_kernels.h"
#include "kernels/matmul.h"

using namespace mu;
using namespace mu::test;

namespace {


// Reference: out_i = alpha * op(a_i) @ op(b_i) + beta * c_i by the triple loop in double,
// reading every operand through explicit (batch, row, col) index arithmetic. c_i is out_i's
// old value, or a separate buffer of out's layout when separate_c.
struct MatmulCase {
  int64_t batch, M, N, K;
  bool ta, tb;
  float alpha, beta;
  int64_t pad_a = 0, pad_b = 0, pad_out = 0;  // extra elements between batch items (strided when > 0)
  int64_t pad_ld = 0;                         // extra elements after each out row (ld_out = N + pad_ld)
  bool separate_c = false;
};

void run_matmul_case(const MatmulCase& c, uint32_t seed) {
  std::mt19937 rng(seed);
  const int64_t ld = c.N + c.pad_ld;
  const int64_t ia = c.M * c.K + c.pad_a, ib = c.K * c.N + c.pad_b, io = c.M * ld + c.pad_out;
  HostTensor abuf = uniform({c.batch * ia}, rng), bbuf = uniform({c.batch * ib}, rng);
  const float sentinel = 12345.0f;  // in the gaps between out rows and items: must survive
  HostTensor obuf = filled({c.batch * io}, sentinel), cbuf = filled({c.batch * io}, sentinel);
  std::vector<double> old(static_cast<size_t>(c.batch * io));
  for (int64_t s = 0; s < c.batch; s++)
    for (int64_t i = 0; i < c.M; i++)
      for (int64_t j = 0; j < c.N; j++) {
        const int64_t e = s * io + i * ld + j;
        // beta 0 or a separate c: out is never read
        const float v = c.beta == 0.0f ? kNaN : std::uniform_real_distribution<float>(-1, 1)(rng);
        if (c.separate_c) {
          obuf.f32()[e] = kNaN;
          cbuf.f32()[e] = v;
        } else {
          obuf.f32()[e] = v;
        }
        old[e] = v;
      }
  auto A = [&](int64_t s, int64_t i, int64_t k) {  // op(a)(i, k)
    return static_cast<double>(abuf.f32()[s * ia + (c.ta ? k * c.M + i : i * c.K + k)]);
  };
  auto B = [&](int64_t s, int64_t k, int64_t j) {  // op(b)(k, j)
    return static_cast<double>(bbuf.f32()[s * ib + (c.tb ? j * c.K + k : k * c.N + j)]);
  };
  MatmulParams p;
  const Shape sa = c.ta ? Shape{c.K, c.M} : Shape{c.M, c.K}, sb = c.tb ? Shape{c.N, c.K} : Shape{c.K, c.N};
  auto batched = [&](Shape s) { return c.batch == 1 ? s : Shape{c.batch, s[0], s[1]}; };
  p.a = Tensor(abuf.t().data, DType::F32, Device::CPU, batched(sa));
  p.b = Tensor(bbuf.t().data, DType::F32, Device::CPU, batched(sb));
  p.out = Tensor(obuf.t().data, DType::F32, Device::CPU, batched({c.M, c.N}));
  if (c.separate_c) p.c = Tensor(cbuf.t().data, DType::F32, Device::CPU, batched({c.M, c.N}));
  p.trans_a = c.ta;
  p.trans_b = c.tb;
  p.alpha = c.alpha;
  p.beta = c.beta;
  p.batch = c.batch;
  if (c.pad_a) p.stride_a = ia;
  if (c.pad_b) p.stride_b = ib;
  if (c.pad_out) p.stride_out = io;
  if (c.pad_ld) p.ld_out = ld;
  matmul(p);
  std::vector<double> want(static_cast<size_t>(c.batch * io), sentinel);
  for (int64_t s = 0; s < c.batch; s++)
    for (int64_t i = 0; i < c.M; i++)
      for (int64_t j = 0; j < c.N; j++) {
        double acc = 0.0;
        for (int64_t k = 0; k < c.K; k++) acc += A(s, i, k) * B(s, k, j);
        double v = c.alpha * acc;
        if (c.beta != 0.0f) v += c.beta * old[s * io + i * ld + j];
        want[s * io + i * ld + j] = v;
      }
  // fp32 products of |x| <= 1 summed over K terms: rounding grows like K * 2^-24 * sum|a b|
  // <= K^2 * 6e-8; 1e-6 * K (+ relative 1e-6) covers it with margin for K up to ~1000.
  const double atol = 1e-6 * static_cast<double>(c.K) + 1e-6;
  const std::string what = "matmul M=" + std::to_string(c.M) + " N=" + std::to_string(c.N) +
                           " K=" + std::to_string(c.K) + " ta=" + std::to_string(c.ta) + " tb=" + std::to_string(c.tb) +
                           " ld=" + std::to_string(ld) + " separate_c=" + std::to_string(c.separate_c);
  expect_close(obuf.f32(), want, atol, 1e-6, what.c_str());
  if (c.separate_c && c.beta != 0.0f) {  // c is only read
    for (int64_t s = 0; s < c.batch; s++)
      for (int64_t i = 0; i < c.M; i++)
        for (int64_t j = 0; j < c.N; j++)
          ASSERT_EQ(cbuf.f32()[s * io + i * ld + j], static_cast<float>(old[s * io + i * ld + j])) << what;
  }
}

TEST(KernelsMatmul, AllTransCombosAwkward) {
  uint32_t seed = 100;
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      run_matmul_case({1, 37, 53, 29, bool(ta), bool(tb), 1.0f, 0.0f}, seed++);
      run_matmul_case({1, 37, 53, 29, bool(ta), bool(tb), 0.7f, -1.3f}, seed++);
      run_matmul_case({1, 1, 1, 1, bool(ta), bool(tb), 1.0f, 0.0f}, seed++);    // a single element
      run_matmul_case({1, 1, 129, 70, bool(ta), bool(tb), 2.0f, 0.5f}, seed++);  // one row
    }
}

// Shapes past every block size of the cpu GEMM (K > 2 * KC, N > NC = 4096, M spanning several
// row blocks), so the block loops, the beta hand-over between K blocks and the edge tiles all run.
TEST(KernelsMatmul, LargerThanBlocks) {
  run_matmul_case({1, 29, 4133, 411, false, true, 1.0f, 0.0f}, 200);
  run_matmul_case({1, 301, 75, 413, true, false, 0.5f, 1.0f}, 201);
  run_matmul_case({1, 250, 130, 97, true, true, 1.0f, -2.0f}, 202);
}

TEST(KernelsMatmul, BatchedStrided) {
  // batch 3 with gaps between items (non-contiguous strides), all trans combos
  uint32_t seed = 300;
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++)
      run_matmul_case({3, 37, 53, 29, bool(ta), bool(tb), 0.9f, 0.3f, 5, 11, 7}, seed++);
  run_matmul_case({3, 13, 17, 19, false, false, 1.0f, 0.0f}, seed++);        // contiguous batch
  run_matmul_case({8, 45, 33, 70, false, true, 1.0f, 0.0f, 0, 3, 1}, seed++);  // one thread per item
}

// out as a block of a wider matrix (rows ld_out apart; the gaps keep their values) and the beta
// term read from a separate c: the forms the symmetric products of Muon use.
TEST(KernelsMatmul, RowPitchAndSeparateC) {
  uint32_t seed = 400;
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      run_matmul_case({1, 37, 53, 29, bool(ta), bool(tb), 0.7f, -1.3f, 0, 0, 0, 9, false}, seed++);
      run_matmul_case({1, 37, 53, 29, bool(ta), bool(tb), 0.7f, -1.3f, 0, 0, 0, 0, true}, seed++);
      run_matmul_case({3, 21, 13, 40, bool(ta), bool(tb), 1.0f, 0.5f, 3, 0, 5, 4, true}, seed++);
    }
  run_matmul_case({8, 45, 33, 70, false, true, 1.0f, 2.0f, 0, 3, 0, 1, true}, seed++);  // one thread per item
  run_matmul_case({2, 17, 11, 9, false, false, 1.0f, 0.0f, 0, 0, 0, 6, true}, seed++);  // beta 0: c unread
}

TEST(KernelsMatmul, EmptyK) {  // K = 0: out = beta * out
  HostTensor a = HostTensor::f32({3, 0}), b = HostTensor::f32({0, 4}), out = filled({3, 4}, 2.0f);
  MatmulParams p;
  p.out = out;
  p.a = a;
  p.b = b;
  p.beta = 0.5f;
  matmul(p);
  for (int i = 0; i < 12; i++) EXPECT_EQ(out.f32()[i], 1.0f);
}

TEST(KernelsMatmul, BitwiseIndependentOfThreadCount) {
  std::mt19937 rng(7);
  HostTensor a = uniform({300, 257}, rng), b = uniform({190, 257}, rng);
  HostTensor o1 = HostTensor::f32({300, 190}), o2 = HostTensor::f32({300, 190});
  MatmulParams p;
  p.a = a;
  p.b = b;
  p.trans_b = true;
  p.out = o1;
  with_threads(1, [&] { matmul(p); });
  p.out = o2;
  with_threads(2, [&] { matmul(p); });
  EXPECT_EQ(0, std::memcmp(o1.f32(), o2.f32(), o1.t().nbytes()));
}

TEST(KernelsMatmul, Errors) {
  HostTensor a = HostTensor::f32({4, 5}), b = HostTensor::f32({5, 6}), out = HostTensor::f32({4, 6});
  MatmulParams p;
  p.out = out;
  p.a = a;
  p.b = b;
  EXPECT_NO_THROW(matmul(p));
  MatmulParams q = p;
  q.trans_b = true;  // op(b) would be (6, 5): K mismatch
  EXPECT_THROW(matmul(q), Error);
  q = p;
  q.out = HostTensor::f32({4, 7});
  EXPECT_THROW(matmul(q), Error);
  HostTensor bh(DType::BF16, {5, 6});
  q = p;
  q.b = bh;  // the cpu backend is fp32 only
  EXPECT_THROW(matmul(q), Error);
  q = p;
  q.a = Tensor(out.t().data, DType::F32, Device::CPU, {4, 5});  // out aliases a
  EXPECT_THROW(matmul(q), Error);
  q = p;
  q.batch = 2;  // tensors are not (2, rows, cols)
  EXPECT_THROW(matmul(q), Error);
  q = p;
  q.out = Tensor(out.t().data, DType::F32, Device::CUDA, {4, 6});
  EXPECT_THROW(matmul(q), Error);  // mixed devices
  q = p;
  q.ld_out = 5;  // below out's 6 columns
  EXPECT_THROW(matmul(q), Error);
  HostTensor a2 = filled({2, 4, 5}, 1.0f), b2 = filled({2, 5, 6}, 1.0f), big = filled({64}, 0.0f);
  q = p;
  q.a = a2;
  q.b = b2;
  q.batch = 2;
  q.out = Tensor(big.t().data, DType::F32, Device::CPU, {2, 4, 6});
  q.ld_out = 8;
  q.stride_out = 3 * 8 + 5;  // one short of (M-1)*ld + N: the items would overlap
  EXPECT_THROW(matmul(q), Error);
  q.stride_out = 3 * 8 + 6;
  EXPECT_NO_THROW(matmul(q));
  HostTensor c_bad = HostTensor::f32({4, 5});
  q = p;
  q.c = c_bad;  // c must have out's shape
  EXPECT_THROW(matmul(q), Error);
  q.c = Tensor(static_cast<float*>(out.t().data) + 1, DType::F32, Device::CPU, {4, 6});  // partly over out
  EXPECT_THROW(matmul(q), Error);
  q.c = out;  // out itself is fine
  EXPECT_NO_THROW(matmul(q));
  q.c = Tensor(b.t().data, DType::F32, Device::CPU, {4, 6});  // over an input is fine: c is only read
  EXPECT_NO_THROW(matmul(q));
  try {
    q = p;
    q.out = HostTensor::f32({4, 7});
    matmul(q);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("matmul"), std::string::npos) << e.what();
  }
}

}  // namespace
