// llm.mu's CUDA emulator, NCCL (include/nccl.h): collectives run at once, in the order
// issued (the engine issues the same order on every rank, as NCCL requires), and a group is
// just that order. One rank: copies. Several: MPI over MPI_COMM_WORLD, which must be the
// same ranks (mpirun starts them; the engine's MPI communicator has initialised MPI).
// Sums of bf16 are done in fp32 and rounded once: NCCL rounds to bf16 at every hop of its
// ring, so on a GPU the sums are a little noisier than here.
#include <cstdio>
#include <cstring>
#include <vector>

#include "emu_internal.h"
#include "include/cuda_bf16.h"
#include "include/nccl.h"
#ifdef MU_HAVE_MPI
#include <mpi.h>
#endif

struct ncclComm {
  int rank, world;
#ifdef MU_HAVE_MPI
  MPI_Comm mpi = MPI_COMM_NULL;
#endif
};

namespace {

size_t type_size(ncclDataType_t t) {
  switch (t) {
    case ncclInt8:
    case ncclUint8: return 1;
    case ncclFloat16:
    case ncclBfloat16: return 2;
    case ncclInt32:
    case ncclUint32:
    case ncclFloat32: return 4;
    default: return 8;
  }
}

ncclResult_t refuse(const char* what) {
  std::fprintf(stderr, "mu-emu: nccl: %s\n", what);
  return ncclInvalidUsage;
}

#ifdef MU_HAVE_MPI
// The MPI type sums are done in: bf16 goes through fp32 buffers.
MPI_Datatype mpi_type(ncclDataType_t t) {
  switch (t) {
    case ncclInt8: return MPI_INT8_T;
    case ncclUint8: return MPI_UINT8_T;
    case ncclInt32: return MPI_INT32_T;
    case ncclUint32: return MPI_UINT32_T;
    case ncclInt64: return MPI_INT64_T;
    case ncclUint64: return MPI_UINT64_T;
    case ncclFloat64: return MPI_DOUBLE;
    default: return MPI_FLOAT;
  }
}

std::vector<float> widen(const void* p, size_t n) {
  std::vector<float> f(n);
  for (size_t i = 0; i < n; i++) f[i] = __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
  return f;
}
void narrow(void* p, const std::vector<float>& f, size_t n) {
  for (size_t i = 0; i < n; i++) static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(f[i]);
}

ncclResult_t mpi_ok(int rc) { return rc == MPI_SUCCESS ? ncclSuccess : ncclSystemError; }

// A sum reduction (root < 0: to every rank) of count elements; bf16 and fp16 in fp32.
ncclResult_t reduce(const void* send, void* recv, size_t count, ncclDataType_t t, int root, ncclComm_t c) {
  if (t == ncclFloat16) return refuse("fp16 sums are not emulated");
  const bool gets = root < 0 || c->rank == root;
  if (t == ncclBfloat16) {
    std::vector<float> in = widen(send, count), out(count);
    const int rc = root < 0 ? MPI_Allreduce(in.data(), out.data(), static_cast<int>(count), MPI_FLOAT, MPI_SUM, c->mpi)
                            : MPI_Reduce(in.data(), out.data(), static_cast<int>(count), MPI_FLOAT, MPI_SUM, root, c->mpi);
    if (gets) narrow(recv, out, count);
    return mpi_ok(rc);
  }
  const size_t bytes = count * type_size(t);
  std::vector<char> in(static_cast<const char*>(send), static_cast<const char*>(send) + bytes), out(bytes);
  const int rc = root < 0 ? MPI_Allreduce(in.data(), out.data(), static_cast<int>(count), mpi_type(t), MPI_SUM, c->mpi)
                          : MPI_Reduce(in.data(), out.data(), static_cast<int>(count), mpi_type(t), MPI_SUM, root, c->mpi);
  if (gets) std::memcpy(recv, out.data(), bytes);
  return mpi_ok(rc);
}
#endif

}  // namespace

ncclResult_t ncclGetUniqueId(ncclUniqueId* id) {
  std::memset(id, 0, sizeof(*id));
  std::snprintf(id->internal, sizeof(id->internal), "mu-emu");
  return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId, int rank) {
  *comm = nullptr;
  if (nranks < 1 || rank < 0 || rank >= nranks) return refuse("ncclCommInitRank: rank outside the world");
  auto* c = new ncclComm{rank, nranks};
  if (nranks > 1) {
#ifdef MU_HAVE_MPI
    int init = 0, size = 0, me = -1;
    MPI_Initialized(&init);
    if (!init) {
      delete c;
      return refuse("several ranks need MPI: start them with mpirun");
    }
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm_rank(MPI_COMM_WORLD, &me);
    if (size != nranks || me != rank) {
      delete c;
      return refuse("the NCCL ranks must be MPI_COMM_WORLD's");
    }
    MPI_Comm_dup(MPI_COMM_WORLD, &c->mpi);
#else
    delete c;
    return refuse("several ranks need MPI, and this build has none");
#endif
  }
  *comm = c;
  return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  if (!comm) return ncclSuccess;
#ifdef MU_HAVE_MPI
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (comm->mpi != MPI_COMM_NULL && !finalized) MPI_Comm_free(&comm->mpi);
#endif
  delete comm;
  return ncclSuccess;
}
// On an error path, one rank alone: MPI_Comm_free is collective, so the communicator is left
// (the process is ending). A peer blocked in an MPI collective is not freed by this;
// MPI_Abort (the engine's abort_job under mpirun) ends them all.
ncclResult_t ncclCommAbort(ncclComm_t comm) {
  (void)comm;
  return ncclSuccess;
}
ncclResult_t ncclGroupStart() { return ncclSuccess; }
ncclResult_t ncclGroupEnd() { return ncclSuccess; }

ncclResult_t ncclAllReduce(const void* send, void* recv, size_t count, ncclDataType_t t, ncclRedOp_t op,
                           ncclComm_t c, cudaStream_t) {
  mu_emu::DeviceAccess open;
  if (!c) return refuse("ncclAllReduce on a null communicator");
  if (op != ncclSum) return refuse("only sums are emulated");
  if (c->world == 1) {
    if (send != recv) std::memmove(recv, send, count * type_size(t));
    return ncclSuccess;
  }
#ifdef MU_HAVE_MPI
  return reduce(send, recv, count, t, -1, c);
#else
  return ncclInternalError;
#endif
}

ncclResult_t ncclReduce(const void* send, void* recv, size_t count, ncclDataType_t t, ncclRedOp_t op, int root,
                        ncclComm_t c, cudaStream_t) {
  mu_emu::DeviceAccess open;
  if (!c) return refuse("ncclReduce on a null communicator");
  if (op != ncclSum) return refuse("only sums are emulated");
  if (root < 0 || root >= c->world) return refuse("ncclReduce: root outside the world");
  if (c->world == 1) {
    if (send != recv) std::memmove(recv, send, count * type_size(t));
    return ncclSuccess;
  }
#ifdef MU_HAVE_MPI
  return reduce(send, recv, count, t, root, c);
#else
  return ncclInternalError;
#endif
}

ncclResult_t ncclReduceScatter(const void* send, void* recv, size_t recv_count, ncclDataType_t t, ncclRedOp_t op,
                               ncclComm_t c, cudaStream_t s) {
  mu_emu::DeviceAccess open;
  if (!c) return refuse("ncclReduceScatter on a null communicator");
  // Each rank's part, reduced to it in turn (the same order everywhere).
  const size_t es = type_size(t);
  for (int r = 0; r < c->world; r++) {
    const char* part = static_cast<const char*>(send) + static_cast<size_t>(r) * recv_count * es;
    std::vector<char> sink;
    void* dst = recv;
    if (r != c->rank) {
      sink.resize(recv_count * es);
      dst = sink.data();
    }
    const ncclResult_t e = ncclReduce(part, dst, recv_count, t, op, r, c, s);
    if (e != ncclSuccess) return e;
  }
  return ncclSuccess;
}

ncclResult_t ncclBroadcast(const void* send, void* recv, size_t count, ncclDataType_t t, int root, ncclComm_t c,
                           cudaStream_t) {
  mu_emu::DeviceAccess open;
  if (!c) return refuse("ncclBroadcast on a null communicator");
  if (root < 0 || root >= c->world) return refuse("ncclBroadcast: root outside the world");
  const size_t bytes = count * type_size(t);
  if (c->rank == root && send != recv) std::memmove(recv, send, bytes);
  if (c->world == 1) return ncclSuccess;
#ifdef MU_HAVE_MPI
  return mpi_ok(MPI_Bcast(recv, static_cast<int>(bytes), MPI_BYTE, root, c->mpi));
#else
  return ncclInternalError;
#endif
}

ncclResult_t ncclAllGather(const void* send, void* recv, size_t send_count, ncclDataType_t t, ncclComm_t c,
                           cudaStream_t s) {
  mu_emu::DeviceAccess open;
  if (!c) return refuse("ncclAllGather on a null communicator");
  const size_t bytes = send_count * type_size(t);
  char* own = static_cast<char*>(recv) + static_cast<size_t>(c->rank) * bytes;
  if (own != send) std::memmove(own, send, bytes);
  for (int r = 0; r < c->world; r++) {
    char* part = static_cast<char*>(recv) + static_cast<size_t>(r) * bytes;
    const ncclResult_t e = ncclBroadcast(part, part, send_count, t, r, c, s);
    if (e != ncclSuccess) return e;
  }
  return ncclSuccess;
}
