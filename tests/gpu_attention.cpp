// The cuda flash attention (forward and backward) against the cpu backend's attention, which
// test_kernels_cpu / test_kernels_fd prove against a materialised-softmax reference and finite
// differences. Shapes are chosen to hit every path: T = 1, T not a multiple of the 64-row tile,
// exactly one tile, several tiles; GQA ratios 1, 2, 3 and 4; head dims 16, 24, 32 (the
// fixtures', run on the 32-wide kernel with zero padding), 64 and 128. The forward runs with
// both its query tiles (64 and 128 rows per block), the backward with both dQ tiles.
//
// The backward is fed the GPU forward's own out and lse on both sides, so its comparison
// measures the backward kernels alone. Failures name the case, the tensor and (b, t, head, d).
#include "kernels/attention.h"
#include "kernels/cuda/cuda_ops.h"
#include "tests/gpu_test_util.h"

using namespace mu;
using namespace mu::gputest;

namespace {

class GpuAttention : public GpuTest {};

struct Case {
  int B, T, H, Hkv, D;
};

const Case kCases[] = {
    {1, 1, 1, 1, 64},     // a single position
    {2, 77, 4, 4, 64},    // MHA, T = 64 + 13
    {1, 130, 6, 2, 64},   // GQA 3, three query tiles
    {2, 64, 4, 2, 128},   // GQA 2, exactly one tile, head dim 128
    {1, 200, 4, 1, 128},  // GQA 4 (MQA-like), 128
    {2, 11, 4, 2, 16},    // the oracle fixtures' shape: D 16 padded to 32
    {1, 50, 3, 1, 24},    // D 24 (awkward fixture), GQA 3
    {1, 97, 2, 1, 32},    // D 32 exactly, GQA 2
    {1, 300, 2, 2, 128},  // five tiles, head dim 128
};

std::string case_name(const Case& c) {
  return "B=" + std::to_string(c.B) + " T=" + std::to_string(c.T) + " H=" + std::to_string(c.H) +
         " Hkv=" + std::to_string(c.Hkv) + " D=" + std::to_string(c.D);
}

// "(b, t, head, d)" of a flat index into a (B, T, heads, D) tensor.
std::function<std::string(size_t)> bthd(const Case& c, int heads) {
  return [=](size_t i) {
    const size_t d = i % c.D, h = i / c.D % heads, t = i / c.D / heads % c.T, b = i / c.D / heads / c.T;
    return "(b=" + std::to_string(b) + ", t=" + std::to_string(t) + ", head=" + std::to_string(h) +
           ", d=" + std::to_string(d) + ")";
  };
}

// Keeps only the heads [h0, h1) of a (B, T, heads, D) tensor (zeros elsewhere), so dq, dk and dv
// are compared and reported separately.
std::vector<float> heads_only(const std::vector<float>& v, const Case& c, int heads, int h0, int h1) {
  std::vector<float> out(v.size(), 0.0f);
  for (size_t i = 0; i < v.size(); i++) {
    const int h = static_cast<int>(i / c.D % heads);
    if (h >= h0 && h < h1) out[i] = v[i];
  }
  return out;
}

TEST_F(GpuAttention, ForwardMatchesCpu) {
  std::mt19937 rng(31);
  for (int rows : {64, 128}) {  // both forward kernels: 16 or 32 query rows per warp
    for (const Case& c : kCases) {
      SCOPED_TRACE(case_name(c) + " rows per block " + std::to_string(rows));
      const AttentionShape s{c.B, c.T, c.H, c.Hkv, c.D};
      const int Ht = c.H + 2 * c.Hkv;
      const Shape qkv_s{c.B, c.T, Ht, c.D}, out_s{c.B, c.T, c.H, c.D}, lse_s{c.B, c.H, c.T};
      const std::vector<float> qkv = rounded_if(random_vec(qkv_s.numel(), rng, -2.0f, 2.0f), DType::BF16);
      HostTensor hout = HostTensor::f32(out_s), hlse = HostTensor::f32(lse_s);
      attention_forward(hout, hlse, host_f32(qkv_s, qkv), s);
      DevTensor dqkv(DType::BF16, qkv_s), dout(DType::BF16, out_s), dlse(DType::F32, lse_s);
      dqkv.upload(qkv);
      dout.poison();
      dlse.poison();
      cuda::attention_forward(dout, dlse, dqkv, s, rows);
      // lse: scores from exact bf16 products summed in fp32 by the tensor cores, fp32 softmax
      // state: ~1e-6 relative; 1e-4 absolute on values ~log(T) + O(1).
      expect_close(dlse.download(), values(hlse), 1e-4, 1e-5, "lse", [&](size_t i) {
        return "(b=" + std::to_string(i / c.T / c.H) + ", head=" + std::to_string(i / c.T % c.H) +
               ", t=" + std::to_string(i % c.T) + ")";
      });
      // out: P is rounded to bf16 before P @ V (relative 2^-9 per weight) and out to bf16 once:
      // |err| <~ 2^-8 * max|v| = 8e-3 for |v| <= 2; 1e-2 absolute + 1e-2 relative.
      const std::vector<float> got = dout.download(), want = values(hout);
      expect_close(got, want, 1e-2, 1e-2, "out", bthd(c, c.H));
      EXPECT_LE(rel_l2(got, want), 5e-3) << "out: relative L2 error (bf16 P and output: ~2e-3 expected)";
    }
  }
}

TEST_F(GpuAttention, BackwardMatchesCpuAndIsDeterministic) {
  std::mt19937 rng(32);
  for (int dq_rows : {64, 128}) {  // both dQ kernels (128 rows per block at head dims up to 64)
    for (const Case& c : kCases) {
      if (dq_rows == 128 && c.D > 64) continue;
      SCOPED_TRACE(case_name(c) + " dq rows per block " + std::to_string(dq_rows));
      const AttentionShape s{c.B, c.T, c.H, c.Hkv, c.D};
      const int Ht = c.H + 2 * c.Hkv;
      const Shape qkv_s{c.B, c.T, Ht, c.D}, out_s{c.B, c.T, c.H, c.D}, lse_s{c.B, c.H, c.T};
      const std::vector<float> qkv = rounded_if(random_vec(qkv_s.numel(), rng, -2.0f, 2.0f), DType::BF16);
      const std::vector<float> gout = rounded_if(random_vec(out_s.numel(), rng), DType::BF16);
      DevTensor dqkv(DType::BF16, qkv_s), dout(DType::BF16, out_s), dlse(DType::F32, lse_s), dgout(DType::BF16, out_s),
          dgrad(DType::BF16, qkv_s);
      dqkv.upload(qkv);
      dgout.upload(gout);
      attention_forward(dout, dlse, dqkv, s);
      const std::vector<float> out = dout.download(), lse = dlse.download();  // out is bf16-valued
      HostTensor hgrad = HostTensor::f32(qkv_s);
      attention_backward(hgrad, host_f32(out_s, gout), host_f32(out_s, out), host_f32(lse_s, lse), host_f32(qkv_s, qkv),
                         s);
      dgrad.poison();  // dq, dk and dv must all be written
      cuda::attention_backward(dgrad, dgout, dout, dlse, dqkv, s, dq_rows);
      const std::vector<float> got = dgrad.download(), want = values(hgrad);
      const std::vector<uint16_t> got_bits = dgrad.download_bits16();
      // P and dS are rounded to bf16 before their products (relative 2^-9 each), sums of up to
      // T * group terms in fp32, the result rounded to bf16 once: errors of ~1e-3 of the
      // tensor's scale. Element-wise: 2e-2 of the largest |want| plus 2e-2 relative; whole
      // tensor: relative L2 <= 1e-2. The 1e-5 floor is for T = 1, where dq and dk are exactly
      // zero (one key: P = 1, dS = P (dP - delta) = 0) and the device's dP (tensor-core sums)
      // and delta (another order) differ by fp32 rounding: ~1e-8 here, terms of size ~10.
      const struct {
        const char* name;
        int h0, h1;
      } parts[] = {{"dq", 0, c.H}, {"dk", c.H, c.H + c.Hkv}, {"dv", c.H + c.Hkv, Ht}};
      for (const auto& part : parts) {
        const std::vector<float> g = heads_only(got, c, Ht, part.h0, part.h1);
        const std::vector<float> w = heads_only(want, c, Ht, part.h0, part.h1);
        expect_close(g, w, 2e-2 * max_abs(w) + 1e-5, 2e-2, part.name, bthd(c, Ht));
        if (max_abs(w) > 0) {
          EXPECT_LE(rel_l2(g, w), 1e-2) << part.name << ": relative L2 error";
        }
      }
      // The same inputs give the same bits (no atomics anywhere), with dQ beside dK/dV on the
      // side stream (the default) or after it.
      dgrad.poison();
      cuda::attention_backward(dgrad, dgout, dout, dlse, dqkv, s, dq_rows);
      expect_bits_equal(dgrad.download_bits16(), got_bits, "dqkv, second run");
      dgrad.poison();
      cuda::attention_backward(dgrad, dgout, dout, dlse, dqkv, s, dq_rows, /*overlap=*/false);
      expect_bits_equal(dgrad.download_bits16(), got_bits, "dqkv, dQ after dK/dV");
    }
  }
}

TEST_F(GpuAttention, RejectsUnsupportedShapes) {
  const AttentionShape s{1, 8, 2, 1, 20};  // head_dim 20: not a multiple of 8
  DevTensor qkv(DType::BF16, {1, 8, 4, 20}), out(DType::BF16, {1, 8, 2, 20}), lse(DType::F32, {1, 2, 8});
  try {
    attention_forward(out, lse, qkv, s);
    ADD_FAILURE() << "head_dim 20 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("head_dim 20"), std::string::npos) << e.what();
  }
  const AttentionShape s2{1, 8, 2, 1, 16};
  DevTensor qkv32(DType::F32, {1, 8, 4, 16}), out2(DType::BF16, {1, 8, 2, 16});
  EXPECT_THROW(attention_forward(out2, lse, qkv32, s2), Error);  // F32 qkv: BF16 only
  // The kernels' tile choices: the forward has 64 and 128 rows per block, the dQ kernel 128
  // only up to head dim 64.
  const AttentionShape s3{1, 8, 1, 1, 128};
  DevTensor qkv3(DType::BF16, {1, 8, 3, 128}), out3(DType::BF16, {1, 8, 1, 128}), lse3(DType::F32, {1, 1, 8}),
      dout3(DType::BF16, {1, 8, 1, 128}), dqkv3(DType::BF16, {1, 8, 3, 128});
  EXPECT_THROW(cuda::attention_forward(out3, lse3, qkv3, s3, 96), Error);
  try {
    cuda::attention_backward(dqkv3, dout3, out3, lse3, qkv3, s3, 128);
    ADD_FAILURE() << "dq rows 128 at head dim 128 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("128 at head dims up to 64"), std::string::npos) << e.what();
  }
}

}  // namespace
