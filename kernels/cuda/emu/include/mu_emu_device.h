// The device side of llm.mu's CUDA emulator: thread coordinates, barriers, warp shuffles,
// atomics, the arithmetic intrinsics, and the launch syntax. Included by the emulator's
// cuda_runtime.h; implemented in kernels/cuda/emu/emu_runtime.cpp.
//
// Every thread of a block runs as a fiber on the launching cpu thread. A thread runs until
// it reaches a barrier or a warp-collective (__syncthreads, __shfl_*_sync, ldmatrix,
// mma.sync), then the next thread runs. A collective completes once every live thread it
// names has arrived; a thread that would wait forever (a barrier some threads never reach,
// a full-mask shuffle with exited lanes) stops the run with a message instead of hanging.
#pragma once
#include <cstdint>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

extern uint3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;
constexpr int warpSize = 32;

namespace mu_emu {

// ---- launch: the build rewrites  k<<<g, b, smem, stream>>>(args)  into
//      k | ::mu_emu::Config(__FILE__, __LINE__, g, b, smem, stream) | ::mu_emu::args(args)
// (kernels/cuda/emu/transform.cmake), so a failing launch names its line.
struct Config {
  const char* file;
  int line;
  dim3 grid, block;
  size_t smem;
  cudaStream_t stream;
  Config(const char* f, int l, dim3 g, dim3 b, size_t sm = 0, cudaStream_t s = nullptr)
      : file(f), line(l), grid(g), block(b), smem(sm), stream(s) {}
};
template <class... P>
struct Bound {
  void (*f)(P...);
  Config c;
};
template <class... P>
Bound<P...> operator|(void (*f)(P...), const Config& c) {
  return Bound<P...>{f, c};
}
template <class... A>
struct Args {
  std::tuple<A...> t;
};
template <class... A>
Args<std::decay_t<A>...> args(A&&... a) {
  return Args<std::decay_t<A>...>{std::tuple<std::decay_t<A>...>(std::forward<A>(a)...)};
}
// Runs body() once per thread of every block of the grid, after checking the configuration
// the way the hardware would (block size, grid limits, shared memory). A bad configuration
// sets the error cudaGetLastError returns, and runs nothing.
void launch(const void* fn, const Config& c, const std::function<void()>& body);
// Kernel arguments that are pointers must be null or point into (or just past) a device
// allocation; a host pointer fails the launch, as dereferencing it would on the device.
bool device_pointer(const void* p);
void bad_kernel_argument(const Config& c, int index);
template <class T>
bool argument_ok(const T& v) {
  if constexpr (std::is_pointer<T>::value)
    return device_pointer(reinterpret_cast<const void*>(v));
  else
    return true;
}
template <class... P, class... A>
void operator|(const Bound<P...>& b, Args<A...>&& a) {
  static_assert(sizeof...(P) == sizeof...(A), "kernel launched with the wrong number of arguments");
  // Arguments are converted to the parameter types once, as the launch would; each thread
  // then gets its own copy, as each CUDA thread has its own parameters.
  const std::tuple<P...> params = std::make_from_tuple<std::tuple<P...>>(std::move(a.t));
  int bad = -1, index = 0;
  std::apply([&](const auto&... v) { ((bad < 0 && !argument_ok(v) ? bad = index : 0, index++), ...); }, params);
  if (bad >= 0) return bad_kernel_argument(b.c, bad);
  void (*f)(P...) = b.f;
  launch(reinterpret_cast<const void*>(f), b.c, [&params, f] { std::apply(f, params); });
}

// ---- what the threads call ----------------------------------------------------------------
void block_barrier();
void warp_barrier(unsigned mask);
// The value `bits` of lane src (kind 0 xor: lane ^ arg; 1 idx: arg; 2 down: lane + arg;
// 3 up: lane - arg; within segments of `width` lanes).
uint64_t shuffle(unsigned mask, uint64_t bits, int kind, int arg, int width);
// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 for the calling warp: d += a b.
void mma_m16n8k16_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);
// ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16: four 8x8 b16 matrices, lane l giving
// the address of row l % 8 of matrix l / 8.
void ldmatrix_x4(uint32_t (&r)[4], const void* row, bool trans);
// cp.async.cg.shared.global 16 bytes (zero-fill when !valid): queued by the calling thread,
// grouped by cp.async.commit_group, and carried out at its cp.async.wait_group 0, as late as
// the device may, so a read of the tile before the wait and the barrier finds the poison,
// and a copy never committed is never delivered.
void cp_async16(void* dst, const void* src, bool valid);
void cp_async_commit();
void cp_async_wait_all();
void* dynamic_smem();
// A kernel's static __shared__ array (one copy, shared by the block being run): registered
// by the first thread that reaches its declaration, and filled with 0xff (NaN) then and at
// the start of every block after.
void shared_static(void* p, size_t bytes);
[[noreturn]] void trap(const char* what);
// Threads of a block run first to last between barriers, and blocks first to last; or last
// to first; or shuffled (MU_EMU_ORDER=forward|reverse|random[:seed]). Tests switch reverse.
void set_reverse_order(bool reverse);
// While set, cudaMallocHost fails as it would under a locked-memory limit (tests of fallbacks).
void set_host_alloc_fails(bool fail);
// What the host has asked of the emulated device so far: kernel launches, cudaMalloc and
// cudaMallocHost calls, and calls that make the host wait for the device (a cudaMemcpy with a
// host side, an async copy to the host, the synchronise calls, cudaFree and cudaFreeHost).
// Tests bound them around a step.
struct Counters {
  uint64_t launches = 0, mallocs = 0, host_syncs = 0;
};
Counters counters();

template <class T>
inline uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle of a type over 8 bytes");
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}
template <class T>
inline T from_bits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}

}  // namespace mu_emu

inline void __syncthreads() { ::mu_emu::block_barrier(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { ::mu_emu::warp_barrier(mask); }
inline void __threadfence() {}
inline void __threadfence_block() {}
[[noreturn]] inline void __trap() { ::mu_emu::trap("__trap()"); }

template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  return ::mu_emu::from_bits<T>(::mu_emu::shuffle(mask, ::mu_emu::to_bits(v), 0, lane_mask, width));
}
template <class T>
inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
  return ::mu_emu::from_bits<T>(::mu_emu::shuffle(mask, ::mu_emu::to_bits(v), 1, src, width));
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return ::mu_emu::from_bits<T>(::mu_emu::shuffle(mask, ::mu_emu::to_bits(v), 2, static_cast<int>(delta), width));
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return ::mu_emu::from_bits<T>(::mu_emu::shuffle(mask, ::mu_emu::to_bits(v), 3, static_cast<int>(delta), width));
}

// Blocks run one at a time and the threads of a block never interleave between barriers,
// so the atomics are plain read-modify-writes.
template <class T>
inline T atomicAdd(T* p, T v) {
  const T old = *p;
  *p = old + v;
  return old;
}
template <class T>
inline T atomicMin(T* p, T v) {
  const T old = *p;
  *p = v < old ? v : old;
  return old;
}
template <class T>
inline T atomicMax(T* p, T v) {
  const T old = *p;
  *p = v > old ? v : old;
  return old;
}
template <class T>
inline T atomicExch(T* p, T v) {
  const T old = *p;
  *p = v;
  return old;
}
template <class T>
inline T atomicCAS(T* p, T cmp, T v) {
  const T old = *p;
  if (old == cmp) *p = v;
  return old;
}

// ---- arithmetic intrinsics (the build uses -ffp-contract=off, so each rounds once) --------
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __fma_rn(double a, double b, double c) { return std::fma(a, b, c); }
// The fast-math forms: exact here, a few ulp apart on the device.
inline float __expf(float a) { return std::exp(a); }
inline float __logf(float a) { return std::log(a); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __saturatef(float a) { return a < 0.0f ? 0.0f : (a > 1.0f ? 1.0f : a); }
inline float rsqrtf(float a) { return 1.0f / std::sqrt(a); }
inline double rsqrt(double a) { return 1.0 / std::sqrt(a); }
inline float __int_as_float(int i) { return ::mu_emu::from_bits<float>(static_cast<uint32_t>(i)); }
inline int __float_as_int(float f) { return static_cast<int>(static_cast<uint32_t>(::mu_emu::to_bits(f))); }
inline float __uint_as_float(unsigned i) { return ::mu_emu::from_bits<float>(i); }
inline unsigned __float_as_uint(float f) { return static_cast<uint32_t>(::mu_emu::to_bits(f)); }
template <class T>
inline T __ldg(const T* p) {
  return *p;
}

// The device's integer and floating min/max overloads.
#define MU_EMU_MINMAX(T)                      \
  inline T min(T a, T b) { return b < a ? b : a; } \
  inline T max(T a, T b) { return a < b ? b : a; }
MU_EMU_MINMAX(int)
MU_EMU_MINMAX(unsigned)
MU_EMU_MINMAX(long)
MU_EMU_MINMAX(unsigned long)
MU_EMU_MINMAX(long long)
MU_EMU_MINMAX(unsigned long long)
#undef MU_EMU_MINMAX
// floating: fminf/fmaxf, which return the number when the other argument is NaN
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }
inline double min(double a, double b) { return std::fmin(a, b); }
inline double max(double a, double b) { return std::fmax(a, b); }
