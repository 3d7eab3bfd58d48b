// llm.mu's CUDA emulator, the execution model (README.md here): every thread of a block is
// a fiber on the launching cpu thread; blocks run one after another. A thread runs until it
// reaches a barrier or a warp-collective, or ends; when no thread can run, the collectives
// whose participants have all arrived complete, and the run goes on.
//
// A fiber starts on its own stack through makecontext/setcontext; after that, switches are
// _setjmp/_longjmp, which (unlike swapcontext) do not save the signal mask with a system
// call: most of the emulator's time used to go there.
// Under AddressSanitizer, which follows swapcontext (with a warning) but not jumps between
// stacks, every switch is swapcontext instead.
#undef _FORTIFY_SOURCE  // its longjmp check refuses jumps between stacks
#include <setjmp.h>
#if defined(__SANITIZE_ADDRESS__)
#define MU_EMU_SWAPCONTEXT 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MU_EMU_SWAPCONTEXT 1
#endif
#endif
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "emu_internal.h"

uint3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

namespace mu_emu {
namespace {

constexpr size_t kStackBytes = 256 << 10;

enum class State { Ready, Waiting, Done };
enum class Wait { None, Block, Warp };

struct Fiber;
using WarpOp = void (*)(Fiber* const* lanes, unsigned mask);

struct Fiber {
  ucontext_t ctx;  // the fiber's start
  jmp_buf jb;      // where it suspended
  bool started = false;
  char* stack = nullptr;
  State state = State::Ready;
  Wait wait = Wait::None;
  const char* what = "";  // the collective waited on
  unsigned mask = 0;
  WarpOp op = nullptr;
  // shuffle
  uint64_t bits = 0;
  int kind = 0, arg = 0, width = 32;
  // mma
  float* d = nullptr;
  const uint32_t* a = nullptr;
  uint32_t b0 = 0, b1 = 0;
  // ldmatrix
  const void* row = nullptr;
  uint32_t* r = nullptr;
  bool trans = false;
  // cp.async copies not yet carried out: issued since the last commit, and committed
  struct Copy {
    void* dst;
    const void* src;
    bool valid;
  };
  std::vector<Copy> issued, committed;
};

struct Run {
  const std::function<void()>* body = nullptr;
  const Config* cfg = nullptr;
  std::vector<Fiber> fibers;
  ucontext_t sched_ctx;  // the scheduler (MU_EMU_SWAPCONTEXT)
  jmp_buf sched;        // the scheduler, resumed by every switch out of a fiber
  int current = -1;
  std::string failure;  // set when a thread traps or the block cannot go on
  unsigned char* smem = nullptr;
};

std::mutex g_launch_mutex;
Run* g_run = nullptr;
std::vector<char*> g_stacks;  // reused across launches
std::map<void*, size_t> g_static_smem;  // every static __shared__ array seen so far

char* stack_for(size_t i) {
  while (g_stacks.size() <= i) {
    void* p = mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
      std::fprintf(stderr, "mu-emu: cannot map a %zu KiB fiber stack\n", kStackBytes >> 10);
      std::abort();
    }
    mprotect(p, static_cast<size_t>(getpagesize()), PROT_NONE);  // a stack overflow faults
    g_stacks.push_back(static_cast<char*>(p));
  }
  return g_stacks[i];
}

void set_coordinates(int linear) {
  const unsigned bx = blockDim.x, by = blockDim.y;
  threadIdx.x = static_cast<unsigned>(linear) % bx;
  threadIdx.y = (static_cast<unsigned>(linear) / bx) % by;
  threadIdx.z = static_cast<unsigned>(linear) / (bx * by);
}

Fiber& me() { return g_run->fibers[static_cast<size_t>(g_run->current)]; }

// Leaves the running fiber for good (it ended or trapped).
[[noreturn]] void to_scheduler() {
#ifdef MU_EMU_SWAPCONTEXT
  setcontext(&g_run->sched_ctx);
  std::abort();
#else
  _longjmp(g_run->sched, 1);
#endif
}

void fiber_main() {
  (*g_run->body)();
  if (!me().issued.empty() || !me().committed.empty())
    trap("the thread ended with cp.async copies it never committed or waited for");
  me().state = State::Done;
  to_scheduler();  // never returns to makecontext's frame
}

// Suspends the calling thread until the scheduler completes what it waits on.
void suspend() {
  Fiber& f = me();
  f.state = State::Waiting;
#ifdef MU_EMU_SWAPCONTEXT
  swapcontext(&f.ctx, &g_run->sched_ctx);
#else
  if (_setjmp(f.jb) == 0) _longjmp(g_run->sched, 1);
#endif
}

std::string where() {
  char buf[256];
  std::snprintf(buf, sizeof(buf), "kernel launched at %s:%d, block (%u,%u,%u) of (%u,%u,%u), thread (%u,%u,%u)",
                g_run->cfg->file, g_run->cfg->line, blockIdx.x, blockIdx.y, blockIdx.z, gridDim.x, gridDim.y,
                gridDim.z, threadIdx.x, threadIdx.y, threadIdx.z);
  return buf;
}

int lane_of(int linear) { return linear & 31; }

// The lanes of warp w a collective with this mask names, checked against the block: every
// named lane must exist and have arrived at the same collective. Returns false (with
// `why` set) when the collective can never complete, true with `ready` telling whether it
// completes now.
bool check_warp(int w, const Fiber& first, bool& ready, std::string& why) {
  const int n = static_cast<int>(g_run->fibers.size());
  ready = true;
  for (int l = 0; l < 32; l++) {
    if (!(first.mask >> l & 1u)) continue;
    const int t = w * 32 + l;
    if (t >= n) {
      why = std::string(first.what) + ": its mask names lane " + std::to_string(l) + " of warp " + std::to_string(w) +
            ", past the block's " + std::to_string(n) + " threads";
      return false;
    }
    const Fiber& f = g_run->fibers[static_cast<size_t>(t)];
    if (f.state == State::Done) {
      why = std::string(first.what) + ": lane " + std::to_string(l) + " of warp " + std::to_string(w) +
            " has exited, the mask names it";
      return false;
    }
    if (f.state != State::Waiting || f.wait != Wait::Warp) {
      ready = false;
      continue;
    }
    if (f.what != first.what || f.mask != first.mask) {
      why = std::string("lanes of warp ") + std::to_string(w) + " wait at different collectives: " + first.what +
            " and " + f.what;
      return false;
    }
  }
  return true;
}

// One pass over the waiting threads: completes what can complete. Returns false when
// nothing can (the block is stuck), with the reason in g_run->failure.
bool resolve() {
  std::vector<Fiber>& fs = g_run->fibers;
  const int n = static_cast<int>(fs.size());
  bool released = false;
  std::string stuck;
  for (int w = 0; w * 32 < n; w++) {
    const Fiber* first = nullptr;
    for (int l = 0; l < 32 && w * 32 + l < n; l++) {
      const Fiber& f = fs[static_cast<size_t>(w * 32 + l)];
      if (f.state == State::Waiting && f.wait == Wait::Warp) {
        first = &f;
        break;
      }
    }
    if (!first) continue;
    bool ready = false;
    std::string why;
    if (!check_warp(w, *first, ready, why)) {
      g_run->failure = why;
      return false;
    }
    if (!ready) {
      stuck = std::string(first->what) + " in warp " + std::to_string(w) + " waits for lanes that are elsewhere";
      continue;
    }
    Fiber* lanes[32] = {};
    for (int l = 0; l < 32; l++)
      if (first->mask >> l & 1u) lanes[l] = &fs[static_cast<size_t>(w * 32 + l)];
    const unsigned mask = first->mask;
    if (first->op) first->op(lanes, mask);
    for (int l = 0; l < 32; l++)
      if (lanes[l]) lanes[l]->state = State::Ready, lanes[l]->wait = Wait::None;
    released = true;
  }
  if (released) return true;
  int live = 0, at_barrier = 0;
  for (const Fiber& f : fs)
    if (f.state != State::Done) live++, at_barrier += f.wait == Wait::Block;
  if (live > 0 && at_barrier == live) {
    for (Fiber& f : fs)
      if (f.state != State::Done) f.state = State::Ready, f.wait = Wait::None;
    return true;
  }
  g_run->failure = "the block cannot go on: " + std::to_string(at_barrier) + " of " + std::to_string(live) +
                   " live threads wait at __syncthreads" + (stuck.empty() ? "" : "; " + stuck) +
                   " (a barrier inside a branch some threads skip?)";
  return false;
}

// The order threads run between barriers, and blocks run within a launch (MU_EMU_ORDER):
// forward (default), reverse, or random[:seed] (a fresh permutation per block and launch).
// A read of another thread's write that lacks a barrier, or of another block's output within
// the same launch, sees a different value in one of the orders.
enum class Order { Forward, Reverse, Random };
Order g_order = Order::Forward;
std::mt19937_64 g_order_rng(1);
[[maybe_unused]] const bool g_order_from_env = [] {
  const char* mode = std::getenv("MU_EMU_ORDER");
  if (!mode) return false;
  const std::string m(mode);
  if (m == "reverse") {
    g_order = Order::Reverse;
  } else if (m.rfind("random", 0) == 0) {
    g_order = Order::Random;
    if (m.size() > 7 && m[6] == ':') g_order_rng.seed(std::strtoull(m.c_str() + 7, nullptr, 10));
  } else if (m != "forward") {
    std::fprintf(stderr, "mu-emu: MU_EMU_ORDER=%s: expected forward, reverse or random[:seed]\n", mode);
    std::exit(2);
  }
  return true;
}();

std::vector<int> order(int n) {
  std::vector<int> o(static_cast<size_t>(n));
  for (int i = 0; i < n; i++) o[static_cast<size_t>(i)] = i;
  if (g_order == Order::Reverse) std::reverse(o.begin(), o.end());
  if (g_order == Order::Random) std::shuffle(o.begin(), o.end(), g_order_rng);
  return o;
}

}  // namespace

// Runs one block to completion; false when a thread trapped or the block got stuck.
static bool run_block(Run& run, const std::vector<int>& ord) {
  const int n = static_cast<int>(run.fibers.size());
  for (int i = 0; i < n; i++) {
    Fiber& f = run.fibers[static_cast<size_t>(i)];
    f = Fiber{};
    f.stack = stack_for(static_cast<size_t>(i));
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack;
    f.ctx.uc_stack.ss_size = kStackBytes;
    f.ctx.uc_link = &run.sched_ctx;
    makecontext(&f.ctx, fiber_main, 0);
  }
  // Unwritten shared memory reads as NaN: the dynamic buffer, and every static array.
  if (run.cfg->smem) std::memset(run.smem, 0xff, run.cfg->smem);
  for (const auto& [p, bytes] : g_static_smem) std::memset(p, 0xff, bytes);
  for (;;) {
    for (int i : ord) {
      Fiber& f = run.fibers[static_cast<size_t>(i)];
      if (f.state != State::Ready) continue;
      run.current = i;
      set_coordinates(i);
#ifdef MU_EMU_SWAPCONTEXT
      swapcontext(&run.sched_ctx, &f.ctx);
#else
      if (_setjmp(run.sched) == 0) {
        if (!f.started) {
          f.started = true;
          setcontext(&f.ctx);
        }
        _longjmp(f.jb, 1);
      }
#endif
      if (!run.failure.empty()) return false;
    }
    bool all_done = true;
    for (const Fiber& f : run.fibers) all_done = all_done && f.state == State::Done;
    if (all_done) return true;
    if (!resolve()) {
      threadIdx = uint3{0, 0, 0};
      run.failure = where() + ": " + run.failure;
      return false;
    }
  }
}

void launch(const void* fn, const Config& c, const std::function<void()>& body) {
  std::lock_guard<std::mutex> lock(g_launch_mutex);
  if (device_faulted()) return;  // after a fault the device runs nothing more (the error stays)
  const cudaError_t bad = check_launch(fn, c);
  if (bad != cudaSuccess) {
    set_error(bad, std::string("launch at ") + c.file + ":" + std::to_string(c.line) + ": " + launch_error_text());
    return;
  }
  count_launch();
  Run run;
  run.body = &body;
  run.cfg = &c;
  const int threads = static_cast<int>(c.block.x * c.block.y * c.block.z);
  run.fibers.resize(static_cast<size_t>(threads));
  std::vector<unsigned char> smem(c.smem + 16);
  run.smem = smem.data() + (16 - reinterpret_cast<uintptr_t>(smem.data()) % 16) % 16;
  Run* outer = g_run;
  g_run = &run;
  blockDim = c.block;
  gridDim = c.grid;
  std::vector<int> ord = order(threads);
  const uint64_t nblocks = static_cast<uint64_t>(c.grid.x) * c.grid.y * c.grid.z;
  // Blocks in the same order as threads; random shuffles grids of up to 2^24 blocks (larger
  // ones run forward) and draws each block's thread order afresh.
  std::vector<uint64_t> blocks;
  if (g_order == Order::Random && nblocks <= (uint64_t{1} << 24)) {
    blocks.resize(nblocks);
    for (uint64_t i = 0; i < nblocks; i++) blocks[i] = i;
    std::shuffle(blocks.begin(), blocks.end(), g_order_rng);
  }
  bool ok = true;
  DeviceAccess open;
  for (uint64_t i = 0; ok && i < nblocks; i++) {
    uint64_t b = i;
    if (g_order == Order::Reverse) b = nblocks - 1 - i;
    if (!blocks.empty()) b = blocks[i];
    blockIdx = uint3{static_cast<unsigned>(b % c.grid.x), static_cast<unsigned>(b / c.grid.x % c.grid.y),
                     static_cast<unsigned>(b / (uint64_t{c.grid.x} * c.grid.y))};
    if (g_order == Order::Random && i > 0) ord = order(threads);
    ok = run_block(run, ord);
  }
  g_run = outer;
  if (!ok) {
    set_error(cudaErrorLaunchFailure, run.failure, /*sticky=*/true);
  }
}

void* dynamic_smem() { return g_run->smem; }

std::string current_launch() { return g_run ? where() : std::string("a kernel"); }

bool device_pointer(const void* p) { return p == nullptr || is_device(p, 0); }

void bad_kernel_argument(const Config& c, int index) {
  set_error(cudaErrorLaunchFailure,
            std::string("launch at ") + c.file + ":" + std::to_string(c.line) + ": kernel argument " +
                std::to_string(index) + " points outside device memory (a host pointer?)",
            /*sticky=*/true);
}

void shared_static(void* p, size_t bytes) {
  // Runs on the launching thread (under the launch lock), once per thread and declaration.
  if (g_static_smem.emplace(p, bytes).second) std::memset(p, 0xff, bytes);
}

void set_reverse_order(bool reverse) {
  std::lock_guard<std::mutex> lock(g_launch_mutex);
  // false: back to forward, or to random when MU_EMU_ORDER asked for it
  if (reverse)
    g_order = Order::Reverse;
  else if (g_order == Order::Reverse)
    g_order = Order::Forward;
}

void trap(const char* what) {
  if (!g_run) {
    std::fprintf(stderr, "mu-emu: %s outside a kernel\n", what);
    std::abort();
  }
  g_run->failure = where() + ": " + what;
  me().state = State::Done;
  to_scheduler();  // the run stops
}

void block_barrier() {
  Fiber& f = me();
  f.wait = Wait::Block;
  f.what = "__syncthreads";
  suspend();
}

// The calling thread arrives at warp collective `what` over the lanes in `mask`; `op` (if
// any) runs once all of them have, over their fibers. The caller fills in its operands and
// suspends.
static Fiber& arrive_warp(const char* what, unsigned mask, WarpOp op) {
  Fiber& f = me();
  f.wait = Wait::Warp;
  f.what = what;
  f.mask = mask;
  f.op = op;
  return f;
}

static void check_mask_has_me(unsigned mask, const char* what) {
  if (!(mask >> lane_of(g_run->current) & 1u)) {
    static thread_local char buf[160];
    std::snprintf(buf, sizeof(buf), "%s with mask 0x%08x called by lane %d, which the mask leaves out", what, mask,
                  lane_of(g_run->current));
    trap(buf);
  }
}

void warp_barrier(unsigned mask) {
  check_mask_has_me(mask, "__syncwarp");
  arrive_warp("__syncwarp", mask, nullptr);
  suspend();
}

static void shuffle_op(Fiber* const* lanes, unsigned mask) {
  uint64_t in[32] = {};
  for (int l = 0; l < 32; l++)
    if (lanes[l]) in[l] = lanes[l]->bits;
  for (int l = 0; l < 32; l++) {
    Fiber* f = lanes[l];
    if (!f) continue;
    const int w = f->width, base = l & ~(w - 1);
    int src = l;
    switch (f->kind) {
      // the lane mask and deltas count in their low 5 bits (shfl.sync's b operand)
      case 0: src = l ^ (f->arg & 31); if (src >= base + w) src = l; break;
      case 1: src = base + (f->arg & (w - 1)); break;
      case 2: src = l + (f->arg & 31); if (src >= base + w) src = l; break;
      default: src = l - (f->arg & 31); if (src < base) src = l; break;
    }
    if (!(mask >> src & 1u)) {
      // Undefined on the device: the source lane is not in the mask.
      f->bits = 0x7fc000007fc00000ull;  // NaN patterns, so a test notices
      continue;
    }
    f->bits = in[src];
  }
}

uint64_t shuffle(unsigned mask, uint64_t bits, int kind, int arg, int width) {
  check_mask_has_me(mask, "__shfl_*_sync");
  if (width <= 0 || width > 32 || (width & (width - 1))) trap("__shfl_*_sync: width is not a power of two <= 32");
  static const char* const kWhat[] = {"__shfl_xor_sync", "__shfl_sync", "__shfl_down_sync", "__shfl_up_sync"};
  Fiber& f = arrive_warp(kWhat[kind & 3], mask, shuffle_op);  // different modes do not complete together
  f.bits = bits;
  f.kind = kind;
  f.arg = arg;
  f.width = width;
  suspend();
  return me().bits;
}

// ---- tensor-core instructions: fragment layouts from the PTX ISA ("Matrix fragments for
// mma.m16n8k16 with floating point type", "Matrix fragments for ldmatrix"), with
// g = lane / 4 and q = lane % 4; the lower-indexed element of a pair is the low half.

static float bf16_lo(uint32_t v) { return __uint_as_float(v << 16); }
static float bf16_hi(uint32_t v) { return __uint_as_float(v & 0xffff0000u); }

static void mma_op(Fiber* const* lanes, unsigned) {
  float A[16][16], B[16][8], C[16][8];
  for (int l = 0; l < 32; l++) {
    const Fiber* f = lanes[l];
    const int g = l / 4, q = l % 4;
    for (int h = 0; h < 4; h++) {  // a[h]: rows g (+8 if h odd), columns 2q (+8 if h >= 2)
      const int r = g + (h & 1) * 8, c = 2 * q + (h >> 1) * 8;
      A[r][c] = bf16_lo(f->a[h]);
      A[r][c + 1] = bf16_hi(f->a[h]);
    }
    B[2 * q][g] = bf16_lo(f->b0);
    B[2 * q + 1][g] = bf16_hi(f->b0);
    B[2 * q + 8][g] = bf16_lo(f->b1);
    B[2 * q + 9][g] = bf16_hi(f->b1);
    C[g][2 * q] = f->d[0];
    C[g][2 * q + 1] = f->d[1];
    C[g + 8][2 * q] = f->d[2];
    C[g + 8][2 * q + 1] = f->d[3];
  }
  for (int l = 0; l < 32; l++) {
    const int g = l / 4, q = l % 4;
    for (int i = 0; i < 4; i++) {
      const int r = g + (i >> 1) * 8, c = 2 * q + (i & 1);
      float acc = C[r][c];
      for (int k = 0; k < 16; k++) acc += A[r][k] * B[k][c];  // bf16 products are exact in fp32
      lanes[l]->d[i] = acc;
    }
  }
}

void mma_m16n8k16_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  Fiber& f = arrive_warp("mma.sync.m16n8k16", 0xffffffffu, mma_op);
  f.d = d;
  f.a = a;
  f.b0 = b0;
  f.b1 = b1;
  suspend();
}

static void ldmatrix_op(Fiber* const* lanes, unsigned) {
  for (int l = 0; l < 32; l++) {
    const int g = l / 4, q = l % 4;
    for (int i = 0; i < 4; i++) {
      uint16_t e[2];
      for (int j = 0; j < 2; j++) {
        // not transposed: row g, column 2q+j of matrix i; transposed: row 2q+j, column g
        const int row = lanes[l]->trans ? 2 * q + j : g, col = lanes[l]->trans ? g : 2 * q + j;
        const uint16_t* p = static_cast<const uint16_t*>(lanes[8 * i + row]->row);
        std::memcpy(&e[j], p + col, 2);
      }
      lanes[l]->r[i] = static_cast<uint32_t>(e[0]) | static_cast<uint32_t>(e[1]) << 16;
    }
  }
}

void ldmatrix_x4(uint32_t (&r)[4], const void* row, bool trans) {
  if (reinterpret_cast<uintptr_t>(row) % 16) trap("ldmatrix: a row address is not 16-byte aligned");
  const unsigned char* s = g_run->smem;
  const unsigned char* p = static_cast<const unsigned char*>(row);
  if (p < s || p + 16 > s + g_run->cfg->smem) trap("ldmatrix: a row address is outside the dynamic shared memory");
  Fiber& f = arrive_warp(trans ? "ldmatrix.x4.trans" : "ldmatrix.x4", 0xffffffffu, ldmatrix_op);
  f.row = row;
  f.r = r;
  f.trans = trans;
  suspend();
}

void cp_async16(void* dst, const void* src, bool valid) {
  unsigned char* s = g_run->smem;
  unsigned char* d = static_cast<unsigned char*>(dst);
  if (reinterpret_cast<uintptr_t>(dst) % 16 || reinterpret_cast<uintptr_t>(src) % 16)
    trap("cp.async 16: an address is not 16-byte aligned");
  if (d < s || d + 16 > s + g_run->cfg->smem) trap("cp.async: the destination is outside the dynamic shared memory");
  // MU_EMU_CPASYNC=early delivers at issue, the earliest the device may: a prefetch that
  // overwrites a tile its own thread still reads shows up then, as the late default shows
  // a read before the wait.
  static const bool early = [] {
    const char* e = std::getenv("MU_EMU_CPASYNC");
    return e && std::string(e) == "early";
  }();
  if (early) {
    if (valid)
      std::memcpy(dst, src, 16);
    else
      std::memset(dst, 0, 16);
    me().issued.push_back({nullptr, nullptr, false});  // still to be committed and waited for
    return;
  }
  me().issued.push_back({dst, src, valid});
}

void cp_async_commit() {
  Fiber& f = me();
  f.committed.insert(f.committed.end(), f.issued.begin(), f.issued.end());
  f.issued.clear();
}

// cp.async.wait_group 0: every committed group has landed; copies issued after the last
// commit belong to no group and are not waited for (PTX ISA, cp.async.wait_group).
void cp_async_wait_all() {
  for (const Fiber::Copy& c : me().committed) {
    if (!c.dst) continue;  // delivered at issue (MU_EMU_CPASYNC=early)
    if (c.valid)
      std::memcpy(c.dst, c.src, 16);
    else
      std::memset(c.dst, 0, 16);
  }
  me().committed.clear();
}

}  // namespace mu_emu
