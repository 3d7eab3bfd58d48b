// The cuda backend's memory-bound kernels (element-wise, embedding, RMSNorm and its residual
// fusion, RoPE, SwiGLU) against the cpu backend, which the cpu suites prove against direct
// formulas and PyTorch. Inputs are random (never zeros) and rounded to the dtype under test
// before the cpu reference sees them, so a comparison measures the kernel's arithmetic, not
// input rounding. Outputs are poisoned with NaN first: an element the kernel skips fails.
// Each case runs in F32 too where the kernel supports it: F32 separates logic errors (tight
// tolerances) from bf16 rounding (looser ones, justified next to each assertion).
#include <cstring>
#include <memory>
#include <thread>

#include "kernels/cuda/cuda_ops.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/residual_rmsnorm.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"
#include "kernels/scratch.h"
#include "tests/gpu_test_util.h"

using namespace mu;
using namespace mu::gputest;

namespace {

class GpuKernels : public GpuTest {};

std::string tag(DType t, const std::string& rest) { return std::string(dtype_name(t)) + " " + rest; }

// ---- element-wise ------------------------------------------------------------------------

TEST_F(GpuKernels, AddAccumulateScaleFill) {
  std::mt19937 rng(1);
  for (DType dt : {DType::F32, DType::BF16})
    for (int64_t n : {1000, 1003, 1}) {  // 1000: the 8-wide vector path; 1003 and 1: scalar
      SCOPED_TRACE(tag(dt, "n=" + std::to_string(n)));
      const std::vector<float> a = rounded_if(random_vec(n, rng), dt), b = rounded_if(random_vec(n, rng), dt);
      DevTensor da(dt, {n}), db(dt, {n}), dout(dt, {n});
      da.upload(a);
      db.upload(b);
      dout.poison();
      add(dout, da, db);
      std::vector<float> sum(n), scaled(n);
      for (int64_t i = 0; i < n; i++) {
        sum[i] = a[i] + b[i];
        scaled[i] = b[i] * -0.37f;
      }
      // One fp32 operation, rounded once to the dtype (RNE on both sides): bit-exact.
      const std::vector<float> want_sum = rounded_if(sum, dt), want_scaled = rounded_if(scaled, dt);
      expect_close(dout.download(), want_sum, 0.0, 0.0, "add");
      accumulate(da, db);
      expect_close(da.download(), want_sum, 0.0, 0.0, "accumulate");
      scale(db, -0.37f);
      expect_close(db.download(), want_scaled, 0.0, 0.0, "scale");
      fill(dout, 2.5f);
      expect_close(dout.download(), std::vector<float>(n, 2.5f), 0.0, 0.0, "fill");
    }
}

TEST_F(GpuKernels, AccumulateMixedDtypes) {
  std::mt19937 rng(2);
  const int64_t n = 4096;
  const std::vector<float> x = random_vec(n, rng), y = rounded_if(random_vec(n, rng), DType::BF16);
  DevTensor dst(DType::F32, {n}), src(DType::BF16, {n});
  dst.upload(x);
  src.upload(y);
  accumulate(dst, src);  // fp32 gradient buffer += bf16 contribution
  std::vector<float> want(n);
  for (int64_t i = 0; i < n; i++) want[i] = x[i] + y[i];
  expect_close(dst.download(), want, 0.0, 0.0, "f32 += bf16");  // one fp32 add: exact
}

TEST_F(GpuKernels, CopyConvertsAndCrossesDevices) {
  std::mt19937 rng(3);
  for (int64_t n : {1024, 1001}) {
    SCOPED_TRACE("n=" + std::to_string(n));
    const std::vector<float> x = random_vec(n, rng, -3.0f, 3.0f);
    std::vector<uint16_t> want_bits(n);
    for (int64_t i = 0; i < n; i++) want_bits[i] = f32_to_bf16(x[i]).bits;
    const std::vector<float> xr = rounded_if(x, DType::BF16);
    DevTensor f(DType::F32, {n}), h(DType::BF16, {n}), f2(DType::F32, {n});
    f.upload(x);
    h.poison();
    copy(h, f);  // device F32 -> device BF16: round to nearest even, as f32_to_bf16
    expect_bits_equal(h.download_bits16(), want_bits, "copy f32 -> bf16 (device)");
    f2.poison();
    copy(f2, h);  // bf16 -> f32 is exact
    expect_close(f2.download(), xr, 0.0, 0.0, "copy bf16 -> f32 (device)");
    HostTensor hx = host_f32({n}, x), back = HostTensor::f32({n});
    f2.poison();
    copy(f2, hx);  // host -> device, same dtype
    expect_close(f2.download(), x, 0.0, 0.0, "copy host f32 -> device f32");
    copy(back, f2);  // device -> host
    expect_close(values(back), x, 0.0, 0.0, "copy device f32 -> host f32");
    h.poison();
    copy(h, hx);  // host F32 -> device BF16 (converted on the host)
    expect_bits_equal(h.download_bits16(), want_bits, "copy host f32 -> device bf16");
    copy(back, h);  // device BF16 -> host F32
    expect_close(values(back), xr, 0.0, 0.0, "copy device bf16 -> host f32");
  }
}

TEST_F(GpuKernels, SumSquaresIsExactEnoughAndDeterministic) {
  std::mt19937 rng(4);
  for (DType dt : {DType::F32, DType::BF16})
    for (int64_t n : {1, 1000, 3 * 16384 + 5, 300000}) {
      SCOPED_TRACE(tag(dt, "n=" + std::to_string(n)));
      const std::vector<float> x = rounded_if(random_vec(n, rng, -2.0f, 2.0f), dt);
      DevTensor d(dt, {n});
      d.upload(x);
      double want = 0.0;
      for (float v : x) want += static_cast<double>(v) * v;
      const double got = sum_squares(d);
      // Squares of floats are exact in double; only the summation order differs: ~n * 1e-16.
      EXPECT_NEAR(got, want, 1e-12 * want);
      const double again = sum_squares(d);
      EXPECT_EQ(std::memcmp(&got, &again, sizeof got), 0) << "two runs differ: " << got << " vs " << again;
    }
}

// The clip norm's form: many tensors (mixed dtypes, empty, odd sizes; aligned views on the
// 8-wide path, views one element in on the scalar path) summed with one readback, against
// float64 and against the tensors one at a time.
TEST_F(GpuKernels, SumSquaresOverManyTensors) {
  std::mt19937 rng(5);
  const std::vector<std::pair<DType, int64_t>> specs = {
      {DType::BF16, 2 * 16384}, {DType::F32, 7}, {DType::BF16, 0}, {DType::F32, 16384 + 1}, {DType::BF16, 99999}};
  std::vector<DevTensor> keep;
  std::vector<Tensor> ts;
  double want = 0.0, one_by_one = 0.0;
  for (size_t k = 0; k < specs.size(); k++) {
    const auto [dt, n] = specs[k];
    const int64_t off = k % 2;  // elements [off, off + n): 2 or 4 bytes past 16 when off = 1
    const std::vector<float> x = rounded_if(random_vec(n + 1, rng, -3.0f, 3.0f), dt);
    keep.emplace_back(dt, Shape{n + 1});
    keep.back().upload(x);
    const Tensor& whole = keep.back().t();
    ts.emplace_back(static_cast<char*>(whole.data) + off * dtype_size(dt), dt, Device::CUDA, Shape{n});
    for (int64_t i = off; i < off + n; i++) want += static_cast<double>(x[i]) * x[i];
    one_by_one += sum_squares(ts.back());
  }
  const double got = sum_squares(ts);
  EXPECT_NEAR(got, want, 1e-12 * want);
  EXPECT_NEAR(got, one_by_one, 1e-12 * want);
  const double again = sum_squares(ts);
  EXPECT_EQ(std::memcmp(&got, &again, sizeof got), 0) << "two runs differ: " << got << " vs " << again;
  EXPECT_EQ(sum_squares(std::vector<Tensor>{}), 0.0);
  EXPECT_EQ(sum_squares(std::vector<Tensor>{ts[2]}), 0.0);  // only an empty tensor
}

// More tensors than one launch's table holds (64), with dtype changes between runs: every
// chunk still lands on its own tensor.
TEST_F(GpuKernels, SumSquaresOverMoreTensorsThanOneLaunchHolds) {
  std::mt19937 rng(6);
  std::vector<DevTensor> keep;
  std::vector<Tensor> ts;
  double want = 0.0;
  for (int k = 0; k < 150; k++) {
    const DType dt = k >= 70 && k < 80 ? DType::F32 : DType::BF16;
    const int64_t n = (k * 977) % 40000 + (k % 3 == 0 ? 16384 : 1);
    const std::vector<float> x = rounded_if(random_vec(n, rng, -1.0f, 1.0f), dt);
    keep.emplace_back(dt, Shape{n});
    keep.back().upload(x);
    ts.push_back(keep.back().t());
    for (float v : x) want += static_cast<double>(v) * v;
  }
  const double got = sum_squares(ts);
  // As above: exact squares in double, ~4M terms in another order: well under 1e-12 relative.
  EXPECT_NEAR(got, want, 1e-12 * want);
  const double again = sum_squares(ts);
  EXPECT_EQ(std::memcmp(&got, &again, sizeof got), 0) << "two runs differ: " << got << " vs " << again;
}

// The device fills exactly what the cpu fills (the same hash, one fma): F32 bitwise, BF16 as
// the round-to-nearest-even of the cpu's F32 values; odd sizes, a pointer 2 bytes off 16.
TEST_F(GpuKernels, FillUniformMatchesCpu) {
  for (int64_t n : {int64_t{1}, int64_t{1000003}}) {
    SCOPED_TRACE("n=" + std::to_string(n));
    HostTensor want = HostTensor::f32({n});
    fill_uniform(want, 42, -0.5f, 1.5f);
    DevTensor f(DType::F32, {n}), h(DType::BF16, {n + 1});
    f.poison();
    h.poison();
    fill_uniform(f, 42, -0.5f, 1.5f);
    const Tensor hv(static_cast<char*>(h.t().data) + 2, DType::BF16, Device::CUDA, Shape{n});
    fill_uniform(hv, 42, -0.5f, 1.5f);
    expect_close(f.download(), values(want), 0.0, 0.0, "fill_uniform f32");
    const std::vector<uint16_t> bits = h.download_bits16();
    for (int64_t i = 0; i < n; i++)
      ASSERT_EQ(bits[i + 1], f32_to_bf16(want.f32()[i]).bits) << "fill_uniform bf16, element " << i;
  }
}

// ---- embedding -----------------------------------------------------------------------------

std::vector<int32_t> token_ids(int64_t n, int64_t V, std::mt19937& rng) {
  std::vector<int32_t> t(n);
  for (int64_t i = 0; i < n; i++) {
    const uint32_t r = rng() % 100;
    // 40% one hot token (a bucket far longer than a segment), 10% the last id, the rest uniform.
    t[i] = r < 40 ? 7 : r < 50 ? static_cast<int32_t>(V - 1) : static_cast<int32_t>(rng() % V);
  }
  t[0] = 0;
  return t;
}

HostTensor host_ids(const std::vector<int32_t>& v) {
  HostTensor t(DType::I32, {static_cast<int64_t>(v.size())});
  std::memcpy(t.t().data, v.data(), v.size() * 4);
  return t;
}

TEST_F(GpuKernels, EmbeddingForwardCopiesRows) {
  std::mt19937 rng(5);
  const int64_t V = 300, N = 50;
  // C = 72: 16-byte row copies; 37: 4-byte (F32) or 2-byte (BF16) units.
  for (DType dt : {DType::F32, DType::BF16})
    for (int64_t C : {72, 37}) {
      SCOPED_TRACE(tag(dt, "C=" + std::to_string(C)));
      const std::vector<float> table = rounded_if(random_vec(V * C, rng), dt);
      const std::vector<int32_t> tok = token_ids(N, V, rng);
      DevTensor dtab(dt, {V, C}), dtok(DType::I32, {N}), dout(dt, {N, C});
      dtab.upload(table);
      dtok.upload_i32(tok);
      dout.poison();
      embedding_forward(dout, dtok, dtab);
      std::vector<float> want(N * C);
      for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) want[n * C + c] = table[tok[n] * C + c];
      expect_close(dout.download(), want, 0.0, 0.0, "embedding rows",
                   [&](size_t i) { return "(n=" + std::to_string(i / C) + ", c=" + std::to_string(i % C) + ")"; });
    }
}

TEST_F(GpuKernels, EmbeddingBadTokenNamesIdAndPosition) {
  DevTensor dtab(DType::BF16, {11, 8}), dtok(DType::I32, {3}), dout(DType::BF16, {3, 8});
  dtab.upload(std::vector<float>(88, 1.0f));
  for (int32_t bad : {11, -1}) {
    dtok.upload_i32({1, bad, 2});
    for (int pass = 0; pass < 2; pass++) {
      try {
        if (pass == 0)
          embedding_forward(dout, dtok, dtab);
        else
          embedding_backward(dtab, dtok, dout);
        ADD_FAILURE() << "token " << bad << " accepted (pass " << pass << ")";
      } catch (const Error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find(std::to_string(bad)), std::string::npos) << msg;
        EXPECT_NE(msg.find("position 1"), std::string::npos) << msg;
      }
    }
  }
}

TEST_F(GpuKernels, EmbeddingBackwardMatchesCpuAndIsDeterministic) {
  std::mt19937 rng(6);
  const int64_t V = 300, N = 2000;  // token 7 appears ~800 times: 25 segments of 32
  for (DType dt : {DType::F32, DType::BF16})
    for (int64_t C : {72, 37}) {  // 72: 8 channels per lane; 37: 1
      SCOPED_TRACE(tag(dt, "C=" + std::to_string(C)));
      const std::vector<float> g = rounded_if(random_vec(N * C, rng), dt);
      const std::vector<float> init = rounded_if(random_vec(V * C, rng), dt);
      const std::vector<int32_t> tok = token_ids(N, V, rng);
      HostTensor want = host_f32({V, C}, init), hg = host_f32({N, C}, g), htok = host_ids(tok);
      embedding_backward(want, htok, hg);
      DevTensor dtab(dt, {V, C}), dtok(DType::I32, {N}), dg(dt, {N, C});
      dtab.upload(init);
      dtok.upload_i32(tok);
      dg.upload(g);
      embedding_backward(dtab, dtok, dg);
      const std::vector<float> got = dtab.download();
      // fp32 sums of up to ~800 terms in [-1, 1] in another order (segments of 32): ~1e-5
      // typical, 1e-4 bound; bf16 adds one rounding of the row (<= 2^-9, 4e-3 with margin).
      expect_close(got, values(want), 1e-4, dt == DType::BF16 ? 4e-3 : 1e-5, "dtable",
                   [&](size_t i) { return "(v=" + std::to_string(i / C) + ", c=" + std::to_string(i % C) + ")"; });
      std::vector<bool> used(V, false);
      for (int32_t t : tok) used[t] = true;
      for (int64_t v = 0; v < V; v++) {
        if (used[v]) continue;
        for (int64_t c = 0; c < C; c++)
          ASSERT_EQ(got[v * C + c], init[v * C + c]) << "row " << v << " has no token but changed";
      }
      dtab.upload(init);
      embedding_backward(dtab, dtok, dg);
      const std::vector<float> again = dtab.download();
      EXPECT_EQ(std::memcmp(got.data(), again.data(), got.size() * 4), 0) << "two runs differ bitwise";
      // With the caller's host copy of the ids (as the model passes it): the same bits, and
      // the host never waits for the device (the plan goes up asynchronously).
      dtab.upload(init);
#ifdef MU_CUDA_EMU
      const mu_emu::Counters before = mu_emu::counters();
#endif
      embedding_backward(dtab, dtok, dg, tok.data());
#ifdef MU_CUDA_EMU
      EXPECT_EQ(mu_emu::counters().host_syncs - before.host_syncs, 0u) << "the backward made the host wait";
#endif
      const std::vector<float> planned = dtab.download();
      EXPECT_EQ(std::memcmp(got.data(), planned.data(), got.size() * 4), 0) << "host ids give other bits";
    }
}

// A bad id in the host copy is refused on the host, naming it; a prepared plan must match the
// tensors it is applied to; nothing of dtable is touched by a refused call.
TEST_F(GpuKernels, EmbeddingBackwardHostIdsAndPlanChecks) {
  const int64_t V = 50, C = 16, N = 6;
  std::vector<int32_t> tok = {1, 2, 3, 49, 2, 1};
  DevTensor dtab(DType::F32, {V, C}), dtok(DType::I32, {N}), dg(DType::F32, {N, C});
  std::mt19937 rng(8);
  const std::vector<float> init = random_vec(V * C, rng);
  dtab.upload(init);
  dtok.upload_i32(tok);
  dg.upload(random_vec(N * C, rng));
  tok[3] = 50;
  try {
    embedding_backward(dtab, dtok, dg, tok.data());
    ADD_FAILURE() << "id 50 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("token id 50 at position 3 is outside the vocabulary [0, 50)"),
              std::string::npos)
        << e.what();
  }
  // The failed build left no plan behind: applying "the last plan" is refused.
  EXPECT_THROW(cuda::embedding_backward_prepared(dtab, dg), Error);
  tok[3] = 49;
  cuda::embedding_backward_prepare(tok.data(), N, V);
  DevTensor dg2(DType::F32, {N - 1, C});
  EXPECT_THROW(cuda::embedding_backward_prepared(dtab, dg2), Error);  // 5 rows for a 6-id plan
  DevTensor dg3(DType::F32, {N, C + 1});
  EXPECT_THROW(cuda::embedding_backward_prepared(dtab, dg3), Error);  // C differs
  EXPECT_EQ(dtab.download(), init);
}

#ifdef MU_CUDA_EMU
// Without page-locked memory (cudaMallocHost refused, as under a locked-memory limit) the
// plan goes up with a blocking copy: the same bits. On a new thread, whose plan is fresh.
TEST_F(GpuKernels, EmbeddingBackwardWithoutPinnedMemory) {
  std::mt19937 rng(10);
  const int64_t V = 200, C = 32, N = 500;
  const std::vector<int32_t> tok = token_ids(N, V, rng);
  const std::vector<float> g = random_vec(N * C, rng), init = random_vec(V * C, rng);
  DevTensor a(DType::F32, {V, C}), b(DType::F32, {V, C}), dtok(DType::I32, {N}), dg(DType::F32, {N, C});
  a.upload(init);
  b.upload(init);
  dtok.upload_i32(tok);
  dg.upload(g);
  embedding_backward(a, dtok, dg, tok.data());
  struct Refuse {  // refused only for this test, whatever happens in it
    Refuse() { mu_emu::set_host_alloc_fails(true); }
    ~Refuse() { mu_emu::set_host_alloc_fails(false); }
  };
  std::string error;
  uint64_t waits = 0;
  {
    const Refuse refuse;
    std::thread t([&] {
      try {
        const mu_emu::Counters before = mu_emu::counters();
        embedding_backward(b, dtok, dg, tok.data());
        waits = mu_emu::counters().host_syncs - before.host_syncs;
      } catch (const std::exception& e) {
        error = e.what();
      }
    });
    t.join();
  }
  ASSERT_EQ(error, "");
  EXPECT_EQ(waits, 1u) << "the fallback's blocking upload (and nothing else) waits";
  EXPECT_EQ(a.download(), b.download());
}
#endif

// Back-to-back backwards with different ids and no download between: the second call
// rebuilds and restages the plan while the first one's upload may still be queued (on a GPU);
// each result must still be its own batch's.
TEST_F(GpuKernels, EmbeddingBackwardBackToBackPlans) {
  std::mt19937 rng(9);
  const int64_t V = 500, C = 64;
  std::vector<std::vector<int32_t>> toks = {token_ids(3000, V, rng), token_ids(3000, V, rng)};
  for (int32_t& t : toks[1]) t = (t * 7 + 3) % static_cast<int32_t>(V);  // another bucket structure
  std::vector<HostTensor> want;
  std::vector<std::unique_ptr<DevTensor>> dtab, dtok, dg;
  for (int k = 0; k < 2; k++) {
    const std::vector<float> g = random_vec(3000 * C, rng), init = random_vec(V * C, rng);
    want.push_back(host_f32({V, C}, init));
    HostTensor hg = host_f32({3000, C}, g);
    embedding_backward(want.back(), host_ids(toks[k]), hg);
    dtab.push_back(std::make_unique<DevTensor>(DType::F32, Shape{V, C}));
    dtok.push_back(std::make_unique<DevTensor>(DType::I32, Shape{3000}));
    dg.push_back(std::make_unique<DevTensor>(DType::F32, Shape{3000, C}));
    dtab[k]->upload(init);
    dtok[k]->upload_i32(toks[k]);
    dg[k]->upload(g);
  }
  for (int k = 0; k < 2; k++) embedding_backward(*dtab[k], *dtok[k], *dg[k], toks[k].data());
  for (int k = 0; k < 2; k++)
    expect_close(dtab[k]->download(), values(want[k]), 1e-4, 1e-5, ("dtable " + std::to_string(k)).c_str());
}

// ---- RMSNorm -------------------------------------------------------------------------------

struct NormCase {
  int64_t N, C;
  DType act, w;
};
const NormCase kNormCases[] = {{9, 131, DType::F32, DType::F32},     {9, 131, DType::BF16, DType::BF16},
                               {64, 2048, DType::BF16, DType::BF16}, {5, 72, DType::BF16, DType::F32},
                               {3, 4096, DType::F32, DType::F32},    {1, 8, DType::BF16, DType::BF16},
                               {40, 576, DType::BF16, DType::BF16},
                               // 3 vectors per thread in the backward: 8-wide and scalar
                               {6, 2560, DType::BF16, DType::F32},   {7, 300, DType::F32, DType::BF16}};

std::string norm_name(const NormCase& k) {
  return "N=" + std::to_string(k.N) + " C=" + std::to_string(k.C) + " act " + dtype_name(k.act) + " w " +
         dtype_name(k.w);
}

// Output tolerances: F32 sees only fp32 reductions of length C in another order (a few ulp);
// BF16 adds one rounding of each output (<= 2^-9 relative) that may fall on the other side of
// a rounding boundary than the cpu value would (one bf16 ulp, 2^-8): 8e-3 leaves 2x margin.
double out_rtol(DType t) { return t == DType::BF16 ? 8e-3 : 2e-6; }

TEST_F(GpuKernels, RmsnormForward) {
  std::mt19937 rng(7);
  const float eps = 1e-5f;
  for (const NormCase& k : kNormCases) {
    SCOPED_TRACE(norm_name(k));
    std::vector<float> x = random_vec(k.N * k.C, rng, -3.0f, 3.0f);
    if (k.N > 2)
      for (int64_t c = 0; c < k.C; c++) x[2 * k.C + c] *= 1e-3f;  // a small row: eps matters
    x = rounded_if(x, k.act);
    const std::vector<float> w = rounded_if(random_vec(k.C, rng), k.w);
    HostTensor hout = HostTensor::f32({k.N, k.C}), hr = HostTensor::f32({k.N});
    rmsnorm_forward(hout, hr, host_f32({k.N, k.C}, x), host_f32({k.C}, w), eps);
    DevTensor dx(k.act, {k.N, k.C}), dw(k.w, {k.C}), dout(k.act, {k.N, k.C}), dr(DType::F32, {k.N});
    dx.upload(x);
    dw.upload(w);
    dout.poison();
    dr.poison();
    rmsnorm_forward(dout, dr, dx, dw, eps);
    expect_close(dout.download(), values(hout), 1e-6, out_rtol(k.act), "rmsnorm out");
    expect_close(dr.download(), values(hr), 0.0, 2e-6, "rmsnorm rstd");  // fp32 vs double sum of C squares
  }
}

TEST_F(GpuKernels, RmsnormBackward) {
  std::mt19937 rng(8);
  for (const NormCase& k : kNormCases) {
    SCOPED_TRACE(norm_name(k));
    const std::vector<float> x = rounded_if(random_vec(k.N * k.C, rng, -3.0f, 3.0f), k.act);
    const std::vector<float> w = rounded_if(random_vec(k.C, rng), k.w);
    const std::vector<float> g = rounded_if(random_vec(k.N * k.C, rng), k.act);
    const std::vector<float> dx0 = rounded_if(random_vec(k.N * k.C, rng), k.act);  // dx accumulates
    const std::vector<float> dw0 = rounded_if(random_vec(k.C, rng), k.w);          // so does dweight
    std::vector<float> r(k.N);
    for (int64_t n = 0; n < k.N; n++) r[n] = 0.3f + 0.1f * static_cast<float>(n % 7);
    HostTensor hdx = host_f32({k.N, k.C}, dx0), hdw = host_f32({k.C}, dw0);
    rmsnorm_backward(hdx, hdw, host_f32({k.N, k.C}, g), host_f32({k.N, k.C}, x), host_f32({k.C}, w),
                     host_f32({k.N}, r));
    DevTensor ddx(k.act, {k.N, k.C}), ddw(k.w, {k.C}), dg(k.act, {k.N, k.C}), dx(k.act, {k.N, k.C}), dw(k.w, {k.C}),
        dr(DType::F32, {k.N});
    ddx.upload(dx0);
    ddw.upload(dw0);
    dg.upload(g);
    dx.upload(x);
    dw.upload(w);
    dr.upload(r);
    rmsnorm_backward(ddx, ddw, dg, dx, dw, dr);
    const std::vector<float> want_dx = values(hdx), want_dw = values(hdw);
    // dx: fp32 row reductions (F32: 1e-5 relative of the row's scale); bf16: one rounding.
    expect_close(ddx.download(), want_dx, 1e-5 * max_abs(want_dx), out_rtol(k.act) + 1e-5, "rmsnorm dx");
    // dweight: sums over N rows in another order (fixed chunks): 1e-5 of the largest entry in
    // F32; bf16: one rounding of the sum plus the bf16 inputs' products (8e-3).
    expect_close(ddw.download(), want_dw, 1e-5 * max_abs(want_dw) * (k.w == DType::BF16 ? 100 : 1),
                 out_rtol(k.w) + 1e-5, "rmsnorm dweight");
  }
}

TEST_F(GpuKernels, ResidualRmsnormForward) {
  std::mt19937 rng(9);
  const float eps = 1e-6f;
  for (const NormCase& k : kNormCases) {
    SCOPED_TRACE(norm_name(k));
    const std::vector<float> a = rounded_if(random_vec(k.N * k.C, rng, -2.0f, 2.0f), k.act);
    const std::vector<float> b = rounded_if(random_vec(k.N * k.C, rng, -2.0f, 2.0f), k.act);
    const std::vector<float> w = rounded_if(random_vec(k.C, rng), k.w);
    std::vector<float> sum(a.size());
    for (size_t i = 0; i < a.size(); i++) sum[i] = a[i] + b[i];
    sum = rounded_if(sum, k.act);  // the kernel normalises the stored residual
    HostTensor hout = HostTensor::f32({k.N, k.C}), hr = HostTensor::f32({k.N});
    rmsnorm_forward(hout, hr, host_f32({k.N, k.C}, sum), host_f32({k.C}, w), eps);
    DevTensor da(k.act, {k.N, k.C}), db(k.act, {k.N, k.C}), dw(k.w, {k.C}), dres(k.act, {k.N, k.C}),
        dout(k.act, {k.N, k.C}), dr(DType::F32, {k.N});
    da.upload(a);
    db.upload(b);
    dw.upload(w);
    dres.poison();
    dout.poison();
    dr.poison();
    residual_rmsnorm_forward(dres, dout, dr, da, db, dw, eps);
    expect_close(dres.download(), sum, 0.0, 0.0, "residual sum");  // one fp32 add, one rounding: exact
    expect_close(dout.download(), values(hout), 1e-6, out_rtol(k.act), "residual_rmsnorm out");
    expect_close(dr.download(), values(hr), 0.0, 2e-6, "residual_rmsnorm rstd");
    // In place on the residual stream (res_out aliases a).
    residual_rmsnorm_forward(da, dout, dr, da, db, dw, eps);
    expect_close(da.download(), sum, 0.0, 0.0, "residual sum in place");
  }
}

// ---- RoPE --------------------------------------------------------------------------------

TEST_F(GpuKernels, RopeForwardBackward) {
  std::mt19937 rng(10);
  const int64_t B = 2, T = 33, Htot = 4;  // 2 q heads, 1 k head, 1 v head
  const int n_rot = 3;
  // D 64/128: 8 pairs per thread; 24 and 10 (D/2 not a multiple of 8): one pair per thread.
  for (int64_t D : {64, 128, 24, 10})
    for (DType dt : {DType::BF16, DType::F32}) {
      SCOPED_TRACE(tag(dt, "D=" + std::to_string(D)));
      RopeParams rp;
      rp.head_dim = static_cast<int>(D);
      rp.theta = 10000.0;
      HostTensor hcos = HostTensor::f32({T + 5, D / 2}), hsin = HostTensor::f32({T + 5, D / 2});
      rope_tables(hcos, hsin, rp);
      DevTensor dcos(DType::F32, {T + 5, D / 2}), dsin(DType::F32, {T + 5, D / 2});
      dcos.upload(values(hcos));
      dsin.upload(values(hsin));
      const Shape s{B, T, Htot, D};
      const std::vector<float> x = rounded_if(random_vec(s.numel(), rng), dt);
      for (int backward = 0; backward < 2; backward++) {
        HostTensor hx = host_f32(s, x);
        DevTensor dx(dt, s);
        dx.upload(x);
        if (backward) {
          rope_backward(hx, n_rot, hcos, hsin);
          rope_backward(dx, n_rot, dcos, dsin);
        } else {
          rope_forward(hx, n_rot, hcos, hsin);
          rope_forward(dx, n_rot, dcos, dsin);
        }
        const std::vector<float> got = dx.download();
        // Two fp32 products and a sum from the same operands; bf16: one rounding of the result
        // (8e-3 with margin); 1e-6 absolute for cancellation.
        expect_close(got, values(hx), 1e-6, dt == DType::BF16 ? 8e-3 : 1e-6,
                     backward ? "rope backward" : "rope forward", [&](size_t i) {
                       return "(bt=" + std::to_string(i / (Htot * D)) + ", head=" + std::to_string(i / D % Htot) +
                              ", i=" + std::to_string(i % D) + ")";
                     });
        for (int64_t i = 0; i < s.numel(); i++) {
          if (i / D % Htot < n_rot) continue;
          ASSERT_EQ(got[i], x[i]) << "v head changed at element " << i;
        }
      }
    }
}

// ---- SwiGLU ------------------------------------------------------------------------------

TEST_F(GpuKernels, SwigluForwardBackward) {
  std::mt19937 rng(11);
  const int64_t N = 7;
  for (int64_t F : {176, 35})  // 176: 8-wide; 35: scalar
    for (DType dt : {DType::F32, DType::BF16}) {
      SCOPED_TRACE(tag(dt, "F=" + std::to_string(F)));
      const std::vector<float> gu = rounded_if(random_vec(N * 2 * F, rng, -4.0f, 4.0f), dt);
      const std::vector<float> dy = rounded_if(random_vec(N * F, rng), dt);
      HostTensor hout = HostTensor::f32({N, F}), hdgu = HostTensor::f32({N, 2 * F});
      swiglu_forward(hout, host_f32({N, 2 * F}, gu));
      swiglu_backward(hdgu, host_f32({N, F}, dy), host_f32({N, 2 * F}, gu));
      DevTensor dgu(dt, {N, 2 * F}), dout(dt, {N, F}), ddy(dt, {N, F}), ddgu(dt, {N, 2 * F});
      dgu.upload(gu);
      ddy.upload(dy);
      dout.poison();
      ddgu.poison();
      swiglu_forward(dout, dgu);
      swiglu_backward(ddgu, ddy, dgu);
      // expf here vs the cpu's polynomial exp (a few ulp each): 1e-5 in F32; bf16 adds one
      // rounding of the output (8e-3 with margin).
      const double rt = dt == DType::BF16 ? 8e-3 : 1e-5;
      expect_close(dout.download(), values(hout), 1e-6, rt, "swiglu out");
      expect_close(ddgu.download(), values(hdgu), 1e-6, rt, "swiglu dgate_up");
    }
}

// ---- planned scratch ------------------------------------------------------------------------

// While an arena lends "cuda.scratch" the ops take their scratch from it: the embedding
// backward's bound covers the token patterns that need the most (one token everywhere, tokens
// repeated just past a warp's segment, all distinct), and a request past the planned size is
// refused with the op's name instead of allocating.
TEST_F(GpuKernels, PlannedScratchCoversTheOpsAndRefusesMore) {
  const int64_t N = 200, V = 300, C = 24;
  ArenaPlan plan;
  plan.need_scratch(scratch_bytes_embedding_backward(N, C));
  plan_scratch(plan, Device::CUDA);
  ASSERT_TRUE(plan.has("cuda.scratch"));
  Arena arena(plan, Device::CUDA);
  ScratchLoan loan(arena);
  std::mt19937 rng(11);
  const std::vector<float> dout = rounded_if(random_vec(N * C, rng), DType::F32);
  DevTensor ddout(DType::F32, {N, C}), dtable(DType::F32, {V, C}), tokens(DType::I32, {N});
  ddout.upload(dout);
  std::vector<std::vector<int32_t>> patterns(4, std::vector<int32_t>(N));
  for (int64_t n = 0; n < N; n++) {
    patterns[0][n] = 7;                                  // one bucket of N
    patterns[1][n] = static_cast<int32_t>(n / 33);       // runs of 33: a long bucket of 2 slots each
    patterns[2][n] = static_cast<int32_t>(n);            // all distinct
    patterns[3][n] = static_cast<int32_t>(rng() % 5);    // a few long buckets
  }
  for (size_t k = 0; k < patterns.size(); k++) {
    SCOPED_TRACE("token pattern " + std::to_string(k));
    tokens.upload_i32(patterns[k]);
    dtable.upload(std::vector<float>(V * C, 0.0f));
    embedding_backward(dtable, tokens, ddout);
    std::vector<double> want(V * C, 0.0);
    for (int64_t n = 0; n < N; n++)
      for (int64_t c = 0; c < C; c++) want[patterns[k][n] * C + c] += dout[n * C + c];
    const std::vector<float> got = dtable.download();
    for (int64_t i = 0; i < V * C; i++) ASSERT_NEAR(got[i], want[i], 1e-4) << "dtable[" << i << "]";
  }
  // rmsnorm_backward over 4096 rows of 256 needs far more than the plan has
  DevTensor x(DType::F32, {4096, 256}), w(DType::F32, {256}), dx(DType::F32, {4096, 256}), dw(DType::F32, {256}),
      rstd(DType::F32, {4096});
  try {
    rmsnorm_backward(dx, dw, x, x, w, rstd);
    ADD_FAILURE() << "a scratch request past the plan was served";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("rmsnorm_backward"), std::string::npos) << m;
    EXPECT_NE(m.find("cuda.scratch"), std::string::npos) << m;
  }
}

}  // namespace
