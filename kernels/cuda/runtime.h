// Host-side services the CUDA kernels share: the current device's properties (queried once,
// never hard-coded), a grow-only scratch buffer per device, and the small device-side error
// record through which kernels report bad data (a token id outside the vocabulary). Plain
// C++: tools (mu-bench) include it too.
//
// Every op queues its work on the legacy default stream (stream 0), so work queued by one op
// is ordered before the next op's; the scratch buffer is therefore shared by all ops. An op
// may run independent parts of itself on the device's side stream (fork_side / join_side),
// joined back before it returns.
// The cuBLASLt workspace and the scratch come from the arena when one lends them
// (lend_matmul_workspace, lend_scratch; kernels/scratch.h plans the scratch).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

struct CUstream_st;  // cudaStream_t is CUstream_st* (this header stays free of CUDA headers)

namespace mu {
namespace cuda {

struct DeviceInfo {
  int id = -1;
  std::string name;
  int cc_major = 0, cc_minor = 0;
  int sm_count = 0;
  size_t l2_bytes = 0;
  size_t smem_optin_bytes = 0;  // the largest dynamic shared memory a block may opt into
  size_t global_bytes = 0;
};

// Throws "<op>: ... no CUDA device ..." when no device is usable: every cuda entry calls it
// first, so a cuda tensor on a machine without a GPU gets a clear error, not a driver code.
void require_device(const char* op);

// The current device's properties, cached per device. Throws when there is no device.
const DeviceInfo& device_info();

// A device buffer of at least `bytes` for `op`, reused by every op on the current device. Its
// contents do not survive the next op. While an arena lends one (lend_scratch), that buffer,
// and a request past its size throws, naming the op. Otherwise a buffer of the runtime's own,
// grown as needed (growing synchronises the device first: an earlier kernel may still read it).
void* scratch(size_t bytes, const char* op);
// Lends `bytes` at p (an arena's "cuda.scratch") to the current device's ops; nullptr ends the
// loan (before the arena frees it). Synchronises.
void lend_scratch(void* p, size_t bytes);

// The cuBLASLt workspace every matmul plan is made for, and the lending of an arena buffer of
// that size (Region::Workspace) to the current device: matmuls then use it instead of a
// buffer of their own. nullptr ends the loan (before the arena frees it). Synchronises.
constexpr size_t kMatmulWorkspaceBytes = size_t{32} << 20;
void lend_matmul_workspace(void* p);

// Bytes rounded up so consecutive carve-outs of the scratch stay 256-byte aligned.
inline size_t scratch_align(size_t bytes) { return (bytes + 255) / 256 * 256; }

// The current device's side stream (non-blocking, made once): fork_side() makes it wait for
// everything queued on stream 0 so far and returns it; join_side() makes stream 0 wait for
// everything queued on the side stream so far. For independent kernels of one op (the
// attention backward's dK/dV and dQ), so that one fills the SMs the other's tail leaves idle.
CUstream_st* fork_side();
void join_side();

// The error record: one int on the device. reset_error_record() queues "no error" (a value
// larger than any position); kernels atomicMin the first bad position into it;
// read_error_record() waits for the device and returns it.
int* error_record();
void reset_error_record();
int read_error_record();
constexpr int kNoError = 0x7f7f7f7f;  // what reset writes (memset to 0x7f bytes)

}  // namespace cuda
}  // namespace mu
