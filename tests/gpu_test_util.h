// Shared helpers of the gpu_*.cpp suites: a fixture that skips without a device, an owning
// device tensor that uploads/downloads through f32 and can be poisoned with NaN, bf16
// rounding of reference inputs, and element-wise comparisons that name the failing index.
#pragma once
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/cuda_check.h"
#include "core/tensor.h"
#include "core/transfer.h"

namespace mu {
namespace gputest {

// Every gpu test derives from this: without a device it skips with the reason.
class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda_device_count() == 0)
      GTEST_SKIP() << "no CUDA device: the gpu suites run where one is present (kernels/cuda/README.md)";
  }
};

// Owning device tensor (cudaMalloc'd, 256-byte aligned), uploaded from / downloaded to f32.
class DevTensor {
 public:
  DevTensor(DType t, Shape s) {
    const size_t bytes = static_cast<size_t>(s.numel()) * dtype_size(t);
    MU_CUDA_CHECK(cudaMalloc(&p_, bytes > 0 ? bytes : 256));
    view_ = Tensor(p_, t, Device::CUDA, s);
  }
  ~DevTensor() {
    if (p_) cudaFree(p_);
  }
  DevTensor(const DevTensor&) = delete;
  DevTensor& operator=(const DevTensor&) = delete;
  DevTensor(DevTensor&& o) noexcept : p_(o.p_), view_(o.view_) { o.p_ = nullptr; }

  const Tensor& t() const { return view_; }
  operator Tensor() const { return view_; }  // NOLINT: used where ops take a Tensor

  void upload(const std::vector<float>& v) {
    MU_CHECK(static_cast<int64_t>(v.size()) == view_.numel(), "upload: %zu values for %s", v.size(),
             view_.str().c_str());
    std::vector<char> raw(view_.nbytes());
    if (view_.dtype == DType::I32) {
      for (size_t i = 0; i < v.size(); i++) reinterpret_cast<int32_t*>(raw.data())[i] = static_cast<int32_t>(v[i]);
    } else {
      convert_from_f32(raw.data(), view_.dtype, v.data(), v.size());
    }
    copy_from_host(view_, raw.data());
  }
  void upload_i32(const std::vector<int32_t>& v) { copy_from_host(view_, v.data()); }
  std::vector<float> download() const { return to_host_f32(view_); }
  std::vector<uint16_t> download_bits16() const {
    std::vector<uint16_t> b(static_cast<size_t>(view_.numel()));
    copy_to_host(b.data(), view_);
    return b;
  }
  std::vector<uint32_t> download_bits32() const {
    std::vector<uint32_t> b(static_cast<size_t>(view_.numel()));
    copy_to_host(b.data(), view_);
    return b;
  }
  // Quiet-NaN bit patterns (bf16 0x7fc0, f32 0x7fc00000): an element the op forgets to
  // write reads back as NaN and fails every comparison.
  void poison() {
    if (view_.dtype == DType::BF16) {
      std::vector<uint16_t> b(static_cast<size_t>(view_.numel()), 0x7fc0);
      copy_from_host(view_, b.data());
    } else {
      std::vector<uint32_t> b(static_cast<size_t>(view_.numel()), 0x7fc00000u);
      copy_from_host(view_, b.data());
    }
  }

 private:
  void* p_ = nullptr;
  Tensor view_;
};

inline std::vector<float> random_vec(size_t n, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

// Round every value to the nearest bf16 (ties to even), in place: the reference then sees
// exactly the operands the bf16 kernel sees.
inline void round_bf16(std::vector<float>& v) {
  for (float& x : v) x = bf16_to_f32(f32_to_bf16(x));
}
inline std::vector<float> rounded_if(std::vector<float> v, DType t) {
  if (t == DType::BF16) round_bf16(v);
  return v;
}

// A host F32 tensor holding v.
inline HostTensor host_f32(Shape s, const std::vector<float>& v) {
  HostTensor h = HostTensor::f32(s);
  MU_CHECK(static_cast<int64_t>(v.size()) == h.numel(), "host_f32: %zu values for %s", v.size(), s.str().c_str());
  std::memcpy(h.f32(), v.data(), v.size() * sizeof(float));
  return h;
}
inline std::vector<float> values(const HostTensor& h) { return std::vector<float>(h.f32(), h.f32() + h.numel()); }

inline double rel_l2(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); i++) {
    num += (static_cast<double>(got[i]) - want[i]) * (static_cast<double>(got[i]) - want[i]);
    den += static_cast<double>(want[i]) * want[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

inline double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, static_cast<double>(std::fabs(x)));
  return m;
}

// |got - want| <= atol + rtol * |want| for every element; NaN in got always fails (an
// unwritten element). Reports the count, the worst element, and the first misses with
// `where(i)` describing index i (e.g. "(b=1, t=70, head=3, d=5)").
inline void expect_close(const std::vector<float>& got, const std::vector<float>& want, double atol, double rtol,
                         const std::string& what, const std::function<std::string(size_t)>& where = nullptr) {
  ASSERT_EQ(got.size(), want.size()) << what;
  size_t bad = 0, nan = 0, worst = 0;
  double worst_excess = -1;
  std::ostringstream first;
  for (size_t i = 0; i < want.size(); i++) {
    const double err = std::fabs(static_cast<double>(got[i]) - want[i]);
    const double lim = atol + rtol * std::fabs(want[i]);
    const bool is_nan = std::isnan(got[i]);
    if (is_nan || !(err <= lim)) {
      if (is_nan) nan++;
      if (bad < 5)
        first << "\n  " << what << (where ? where(i) : "[" + std::to_string(i) + "]") << ": got " << got[i] << ", want "
              << want[i] << " (|err| " << err << " > " << lim << ")";
      bad++;
      const double excess = is_nan ? 1e300 : err - lim;
      if (excess > worst_excess) {
        worst_excess = excess;
        worst = i;
      }
    }
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << want.size() << " elements off (" << nan
                     << " NaN: unwritten or non-finite); worst at " << (where ? where(worst) : std::to_string(worst))
                     << first.str();
}

// Bitwise equality of two raw arrays, naming the first differing index.
template <class T>
inline void expect_bits_equal(const std::vector<T>& got, const std::vector<T>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < got.size(); i++)
    if (got[i] != want[i] && bad++ == 0) first = i;
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << got.size() << " differ bitwise, first at [" << first << "]: 0x"
                     << std::hex << static_cast<uint64_t>(got[first]) << " vs 0x" << static_cast<uint64_t>(want[first]);
}

}  // namespace gputest
}  // namespace mu
