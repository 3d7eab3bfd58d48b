// A small TCP rendezvous: rank 0 hands a blob (the ncclUniqueId) to every other rank when no
// MPI is there to carry it (torchrun-style or srun launches). POSIX sockets; every wait is
// bounded by one deadline, so a missing rank becomes an error, never a hang.
// Protocol: a client sends {magic, rank, world} (3 x u32, network order); rank 0 checks them
// and answers {magic, blob size} then the blob.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <algorithm>
#include <memory>
#include <string>

#include "core/comm.h"

namespace mu {
namespace {

constexpr uint32_t kMagic = 0x6d75726eu;  // "murn"
using Clock = std::chrono::steady_clock;

struct Fd {
  int fd = -1;
  explicit Fd(int f = -1) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

int ms_left(Clock::time_point deadline) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return ms > 0 ? static_cast<int>(ms) : 0;
}

// Waits for `events` on fd until the deadline; false on timeout.
bool wait_fd(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int r = poll(&p, 1, ms_left(deadline));
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) return false;
  }
}

void send_all(int fd, const void* data, size_t n, Clock::time_point deadline, const char* what) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    MU_CHECK(wait_fd(fd, POLLOUT, deadline), "rendezvous: timed out sending %s", what);
    ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
    if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    MU_CHECK(k > 0, "rendezvous: sending %s failed: %s", what, std::strerror(errno));
    p += k;
    n -= static_cast<size_t>(k);
  }
}

void recv_all(int fd, void* data, size_t n, Clock::time_point deadline, const char* what) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    MU_CHECK(wait_fd(fd, POLLIN, deadline), "rendezvous: timed out waiting for %s", what);
    ssize_t k = recv(fd, p, n, 0);
    if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    MU_CHECK(k != 0, "rendezvous: the peer closed the connection before sending %s", what);
    MU_CHECK(k > 0, "rendezvous: receiving %s failed: %s", what, std::strerror(errno));
    p += k;
    n -= static_cast<size_t>(k);
  }
}

void set_nonblocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL, 0) | O_NONBLOCK); }

std::vector<uint8_t> serve(int port, int world, const std::vector<uint8_t>& blob, Clock::time_point deadline,
                           double timeout_s) {
  Fd ls(socket(AF_INET, SOCK_STREAM, 0));
  MU_CHECK(ls.fd >= 0, "rendezvous: socket() failed: %s", std::strerror(errno));
  int one = 1;
  setsockopt(ls.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  a.sin_port = htons(static_cast<uint16_t>(port));
  MU_CHECK(bind(ls.fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0,
           "rendezvous: rank 0 cannot listen on port %d: %s (set MASTER_PORT to a free port)", port,
           std::strerror(errno));
  MU_CHECK(listen(ls.fd, world) == 0, "rendezvous: listen() failed: %s", std::strerror(errno));
  set_nonblocking(ls.fd);
  std::vector<bool> seen(static_cast<size_t>(world), false);
  for (int joined = 1; joined < world;) {
    MU_CHECK(wait_fd(ls.fd, POLLIN, deadline),
             "rendezvous: rank 0 waited %.0f s on port %d and only %d of %d ranks connected", timeout_s, port,
             joined, world);
    Fd c(accept(ls.fd, nullptr, nullptr));
    if (c.fd < 0) continue;  // EAGAIN / ECONNABORTED: the peer went away before we took it
    set_nonblocking(c.fd);
    uint32_t hello[3];
    recv_all(c.fd, hello, sizeof(hello), deadline, "a rank's greeting");
    uint32_t magic = ntohl(hello[0]), r = ntohl(hello[1]), w = ntohl(hello[2]);
    MU_CHECK(magic == kMagic, "rendezvous: a stranger connected to port %d (bad greeting)", port);
    MU_CHECK(static_cast<int>(w) == world, "rendezvous: rank %u says the world is %u, rank 0 says %d", r, w, world);
    MU_CHECK(r >= 1 && static_cast<int>(r) < world && !seen[r], "rendezvous: rank %u connected twice or is out of range", r);
    seen[r] = true;
    uint32_t head[2] = {htonl(kMagic), htonl(static_cast<uint32_t>(blob.size()))};
    send_all(c.fd, head, sizeof(head), deadline, "the header");
    send_all(c.fd, blob.data(), blob.size(), deadline, "the blob");
    ++joined;
  }
  return blob;
}

std::vector<uint8_t> join(const std::string& addr, int port, int rank, int world, Clock::time_point deadline,
                          double timeout_s) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int g = getaddrinfo(addr.c_str(), std::to_string(port).c_str(), &hints, &res);
  MU_CHECK(g == 0, "rendezvous: cannot resolve MASTER_ADDR=%s: %s", addr.c_str(), gai_strerror(g));
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> guard(res, freeaddrinfo);
  std::string last = "no attempt";
  // Rank 0 may start later than us: retry refused connections until the deadline.
  while (ms_left(deadline) > 0) {
    for (addrinfo* ai = res; ai; ai = ai->ai_next) {
      Fd s(socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol));
      if (s.fd < 0) continue;
      set_nonblocking(s.fd);
      int c = connect(s.fd, ai->ai_addr, ai->ai_addrlen);
      if (c != 0 && errno == EINPROGRESS && wait_fd(s.fd, POLLOUT, deadline)) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        c = err == 0 ? 0 : -1;
        errno = err;
      }
      if (c != 0) {
        last = std::strerror(errno);
        continue;
      }
      uint32_t hello[3] = {htonl(kMagic), htonl(static_cast<uint32_t>(rank)), htonl(static_cast<uint32_t>(world))};
      send_all(s.fd, hello, sizeof(hello), deadline, "the greeting");
      uint32_t head[2];
      recv_all(s.fd, head, sizeof(head), deadline, "rank 0's answer");
      MU_CHECK(ntohl(head[0]) == kMagic, "rendezvous: %s:%d is not an llm.mu rendezvous", addr.c_str(), port);
      std::vector<uint8_t> blob(ntohl(head[1]));
      recv_all(s.fd, blob.data(), blob.size(), deadline, "the blob");
      return blob;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(100, ms_left(deadline))));
  }
  MU_FAIL("rendezvous: rank %d of %d could not reach rank 0 at %s:%d within %.0f s (last error: %s); check "
          "MASTER_ADDR/MASTER_PORT and that rank 0 is running", rank, world, addr.c_str(), port, timeout_s,
          last.c_str());
}

}  // namespace

std::vector<uint8_t> tcp_rendezvous_broadcast(const std::string& addr, int port, int rank, int world,
                                              const std::vector<uint8_t>& blob_on_rank0, double timeout_s) {
  MU_CHECK(world >= 1 && rank >= 0 && rank < world, "rendezvous: rank %d outside world %d", rank, world);
  MU_CHECK(port >= 1 && port <= 65535, "rendezvous: port %d outside 1..65535", port);
  auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  if (world == 1) return blob_on_rank0;
  if (rank == 0) return serve(port, world, blob_on_rank0, deadline, timeout_s);
  MU_CHECK(!addr.empty(), "rendezvous: rank %d needs MASTER_ADDR (the host of rank 0)", rank);
  return join(addr, port, rank, world, deadline, timeout_s);
}

}  // namespace mu
