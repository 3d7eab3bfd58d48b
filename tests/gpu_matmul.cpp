// The cuBLASLt matmul wrapper against the cpu GEMM (test_kernels_matmul proves that one):
// all four trans combinations on odd shapes, beta = 0 (out poisoned: it must not be read)
// and beta = 1 (accumulate), bf16 -> bf16, bf16 -> f32 and f32 -> f32, strided batches with
// gaps between items, out with a row pitch and a separate c, K = 0, and an operand whose
// pointer is not 256-byte aligned (the plan cache keys on alignment).
#include "kernels/matmul.h"
#include "tests/gpu_test_util.h"

using namespace mu;
using namespace mu::gputest;

namespace {

class GpuMatmul : public GpuTest {};

struct Dims {
  int64_t M, N, K;
};

// Runs one product on both backends and compares. ab/out: dtypes of the operands and out.
// ld_pad > 0: out's rows are N + ld_pad apart (a block of a wider matrix). separate_c: on the
// device the beta term reads a separate c (out poisoned); the cpu computes it in place.
void check_product(Dims d, bool ta, bool tb, DType ab, DType out_t, float alpha, float beta, int64_t batch, int64_t pad,
                   std::mt19937& rng, int64_t ld_pad = 0, bool separate_c = false) {
  const int64_t ar = ta ? d.K : d.M, ac = ta ? d.M : d.K, br = tb ? d.N : d.K, bc = tb ? d.K : d.N;
  const int64_t ld = d.N + ld_pad;
  // Batch items sit `pad` elements apart beyond their size (a strided batch with gaps).
  const int64_t sa = ar * ac + pad, sb = br * bc + pad, so = d.M * ld + pad;
  const int64_t na = (batch - 1) * sa + ar * ac, nb = (batch - 1) * sb + br * bc, no = (batch - 1) * so + d.M * ld;
  const std::vector<float> a = rounded_if(random_vec(na, rng), ab), b = rounded_if(random_vec(nb, rng), ab);
  const std::vector<float> c0 = rounded_if(random_vec(no, rng), out_t);
  const bool batched = batch > 1;
  auto shape = [&](int64_t r, int64_t c) { return batched ? Shape{batch, r, c} : Shape{r, c}; };

  // cpu: the same strided layout on the host.
  HostTensor ha = host_f32({na}, a), hb = host_f32({nb}, b), hc = host_f32({no}, c0);
  MatmulParams hp;
  hp.a = Tensor(ha.t().data, DType::F32, Device::CPU, shape(ar, ac));
  hp.b = Tensor(hb.t().data, DType::F32, Device::CPU, shape(br, bc));
  hp.out = Tensor(hc.t().data, DType::F32, Device::CPU, shape(d.M, d.N));
  hp.trans_a = ta;
  hp.trans_b = tb;
  hp.alpha = alpha;
  hp.beta = beta;
  hp.batch = batch;
  if (batched) {
    hp.stride_a = sa;
    hp.stride_b = sb;
    hp.stride_out = so;
  }
  if (ld_pad) hp.ld_out = ld;
  matmul(hp);

  DevTensor da(ab, {na}), db(ab, {nb}), dc(out_t, {no}), dsep(out_t, {no});
  da.upload(a);
  db.upload(b);
  if (beta == 0.0f || separate_c)
    dc.poison();  // out must not be read (NaN * 0 would be NaN)
  else
    dc.upload(c0);
  MatmulParams dp = hp;
  dp.a = Tensor(da.t().data, ab, Device::CUDA, hp.a.shape);
  dp.b = Tensor(db.t().data, ab, Device::CUDA, hp.b.shape);
  dp.out = Tensor(dc.t().data, out_t, Device::CUDA, hp.out.shape);
  if (separate_c) {
    dsep.upload(c0);
    dp.c = Tensor(dsep.t().data, out_t, Device::CUDA, hp.out.shape);
  }
  matmul(dp);

  std::vector<float> got = dc.download(), want = values(hc);
  const int64_t N = d.N, M = d.M;
  auto in_gap = [=](int64_t i) { return i % so >= M * ld || i % so % ld >= N; };
  for (int64_t i = 0; i < no; i++)  // the gaps between out rows and items are not part of the product
    if (in_gap(i)) {
      if (!(beta == 0.0f || separate_c)) {
        EXPECT_EQ(got[i], want[i]) << "gap element " << i << " was written";
      }
      got[i] = want[i] = 0.0f;
    }
  if (separate_c) expect_close(dsep.download(), c0, 0.0, 0.0, "c (only read)");
  // Both accumulate exact products of the same operands in fp32 (cuBLASLt: CUBLAS_COMPUTE_32F,
  // no TF32), in different orders: ~K * 6e-8 of the partial sums' size, 1e-5 * sqrt(K) absolute
  // covers it. A bf16 out is rounded once more: 2^-9 relative (8e-3 with a boundary-crossing margin).
  const double atol = 1e-5 * std::sqrt(static_cast<double>(d.K) + 1.0);
  const double rtol = out_t == DType::BF16 ? 8e-3 : 1e-5;
  expect_close(got, want, atol, rtol, "out", [=](size_t i) {
    const int64_t item = static_cast<int64_t>(i) / so, r = static_cast<int64_t>(i) % so;
    return "(batch " + std::to_string(item) + ", row " + std::to_string(r / ld) + ", col " + std::to_string(r % ld) +
           (in_gap(static_cast<int64_t>(i)) ? ", in a gap" : "") + ")";
  });
}

std::string name(Dims d, bool ta, bool tb, DType ab, DType o, float beta, int64_t batch) {
  return "M=" + std::to_string(d.M) + " N=" + std::to_string(d.N) + " K=" + std::to_string(d.K) + (ta ? " a^T" : "") +
         (tb ? " b^T" : "") + " " + dtype_name(ab) + "->" + dtype_name(o) + " beta=" + std::to_string(beta) +
         " batch=" + std::to_string(batch);
}

TEST_F(GpuMatmul, AllTransposesDtypesAndBetas) {
  std::mt19937 rng(41);
  const Dims dims[] = {{77, 50, 33}, {128, 256, 64}, {1, 300, 17}, {64, 64, 1}, {256, 96, 1000}};
  const DType combos[][2] = {{DType::BF16, DType::BF16}, {DType::BF16, DType::F32}, {DType::F32, DType::F32}};
  for (const Dims& d : dims)
    for (int t = 0; t < 4; t++)
      for (const auto& combo : combos)
        for (float beta : {0.0f, 1.0f}) {
          const bool ta = t & 1, tb = t & 2;
          SCOPED_TRACE(name(d, ta, tb, combo[0], combo[1], beta, 1));
          check_product(d, ta, tb, combo[0], combo[1], beta == 0.0f ? 1.0f : 0.5f, beta, 1, 0, rng);
        }
}

TEST_F(GpuMatmul, StridedBatches) {
  std::mt19937 rng(42);
  // Newton-Schulz-like square products and a rectangular one, items packed or with gaps.
  for (int64_t pad : {0, 24})
    for (int t = 0; t < 4; t++) {
      const bool ta = t & 1, tb = t & 2;
      SCOPED_TRACE(name({96, 96, 96}, ta, tb, DType::BF16, DType::BF16, 0.0f, 5) + " pad=" + std::to_string(pad));
      check_product({96, 96, 96}, ta, tb, DType::BF16, DType::BF16, 1.0f, 0.0f, 5, pad, rng);
      SCOPED_TRACE(name({40, 72, 56}, ta, tb, DType::BF16, DType::F32, 1.0f, 3));
      check_product({40, 72, 56}, ta, tb, DType::BF16, DType::F32, -1.0f, 1.0f, 3, pad, rng);
    }
}

// out as a block of a wider matrix (rows ld_out apart) and the beta term from a separate c, as
// Muon's symmetric products use them; the gaps must keep their values.
TEST_F(GpuMatmul, RowPitchAndSeparateC) {
  std::mt19937 rng(44);
  for (int t = 0; t < 4; t++) {
    const bool ta = t & 1, tb = t & 2;
    SCOPED_TRACE(name({40, 24, 56}, ta, tb, DType::BF16, DType::BF16, 1.0f, 3) + " ld pad 40");
    check_product({40, 24, 56}, ta, tb, DType::BF16, DType::BF16, 1.0f, 0.0f, 3, 16, rng, 40, false);
    SCOPED_TRACE("separate c");
    check_product({40, 24, 56}, ta, tb, DType::BF16, DType::BF16, -2.0f, 0.75f, 3, 16, rng, 40, true);
    check_product({33, 17, 20}, ta, tb, DType::F32, DType::F32, 1.0f, 3.4445f, 1, 0, rng, 0, true);
    check_product({33, 17, 20}, ta, tb, DType::BF16, DType::F32, 1.0f, 1.0f, 2, 0, rng, 7, true);
  }
}

TEST_F(GpuMatmul, EmptyKScalesOut) {
  DevTensor a(DType::BF16, {4, 0}), b(DType::BF16, {0, 6}), c(DType::BF16, {4, 6});
  c.upload(std::vector<float>(24, 2.0f));
  MatmulParams p;
  p.a = a;
  p.b = b;
  p.out = c;
  p.beta = 0.5f;
  matmul(p);
  expect_close(c.download(), std::vector<float>(24, 1.0f), 0.0, 0.0, "beta * out");
  p.beta = 0.0f;
  matmul(p);
  expect_close(c.download(), std::vector<float>(24, 0.0f), 0.0, 0.0, "zeros");
}

TEST_F(GpuMatmul, UnalignedOperandAndCachedPlans) {
  std::mt19937 rng(43);
  const int64_t M = 33, N = 40, K = 24;
  const std::vector<float> a = rounded_if(random_vec((M + 1) * K, rng), DType::BF16);
  const std::vector<float> b = rounded_if(random_vec(N * K, rng), DType::BF16);
  DevTensor da(DType::BF16, {M + 1, K}), db(DType::BF16, {N, K}), dc(DType::F32, {M, N});
  da.upload(a);
  db.upload(b);
  HostTensor ha = host_f32({M + 1, K}, a), hb = host_f32({N, K}, b), hc = HostTensor::f32({M, N});
  // Rows 1.. of a: 48 bytes past a 256-byte boundary. Then the aligned rows, then again
  // unaligned: each uses (and re-uses) a plan valid for its alignment.
  for (int64_t first : {1, 0, 1}) {
    SCOPED_TRACE("a starts at row " + std::to_string(first));
    MatmulParams hp;
    hp.a = Tensor(ha).rows(first, M);
    hp.b = hb;
    hp.out = hc;
    hp.trans_b = true;
    matmul(hp);
    dc.poison();
    MatmulParams dp = hp;
    dp.a = Tensor(da).rows(first, M);
    dp.b = db;
    dp.out = dc;
    matmul(dp);
    expect_close(dc.download(), values(hc), 1e-5 * std::sqrt(double(K)), 1e-5, "y = x W^T");  // see above
  }
}

}  // namespace
