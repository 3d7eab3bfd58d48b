#include "core/launch.h"

#include <cerrno>
#include <cstdlib>

#include "core/error.h"

namespace mu {

const char* launcher_name(Launcher l) {
  switch (l) {
    case Launcher::None: return "none";
    case Launcher::OpenMPI: return "mpirun";
    case Launcher::Torchrun: return "torchrun";
    case Launcher::Slurm: return "slurm";
  }
  return "?";
}

std::string LaunchEnv::describe() const {
  return strformat("rank %d of %d (local %d, %s)", rank, world, local_rank, launcher_name(launcher));
}

namespace {

// A whole decimal integer in [lo, hi]; anything else names the variable and its value.
int parse_int(const char* name, const char* value, long lo, long hi) {
  MU_CHECK(value[0] != '\0', "launch environment: %s is set but empty", name);
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(value, &end, 10);
  MU_CHECK(errno == 0 && *end == '\0', "launch environment: %s=\"%s\" is not an integer", name, value);
  MU_CHECK(v >= lo && v <= hi, "launch environment: %s=%ld is outside [%ld, %ld]", name, v, lo, hi);
  return static_cast<int>(v);
}

// One launcher's three variables. Returns false when none is set; fails when rank or world
// is missing while another is set, since a half-set launcher means a broken environment.
bool read_triplet(const std::function<const char*(const char*)>& get, const char* rank_var,
                  const char* world_var, const char* local_var, bool local_required, LaunchEnv* env) {
  const char* r = get(rank_var);
  const char* w = get(world_var);
  const char* l = get(local_var);
  if (!r && !w) return false;
  MU_CHECK(r && w, "launch environment: %s is set but %s is not (both are needed to know this process's place)",
           r ? rank_var : world_var, r ? world_var : rank_var);
  env->world = parse_int(world_var, w, 1, 1 << 24);
  env->rank = parse_int(rank_var, r, 0, 1 << 24);
  MU_CHECK(env->rank < env->world, "launch environment: %s=%d must be below %s=%d", rank_var, env->rank,
           world_var, env->world);
  if (l) {
    env->local_rank = parse_int(local_var, l, 0, 1 << 24);
    MU_CHECK(env->local_rank < env->world, "launch environment: %s=%d must be below %s=%d", local_var,
             env->local_rank, world_var, env->world);
  } else {
    MU_CHECK(!local_required || env->world == 1,
             "launch environment: %s and %s are set but %s is not (it picks the GPU)", rank_var, world_var,
             local_var);
    env->local_rank = 0;
  }
  return true;
}

}  // namespace

LaunchEnv launch_env_from(const std::function<const char*(const char*)>& get) {
  LaunchEnv env;
  if (read_triplet(get, "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", true, &env)) {
    env.launcher = Launcher::OpenMPI;
  } else if (read_triplet(get, "RANK", "WORLD_SIZE", "LOCAL_RANK", true, &env)) {
    env.launcher = Launcher::Torchrun;
  } else if (read_triplet(get, "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", true, &env)) {
    env.launcher = Launcher::Slurm;
  }
  if (const char* a = get("MASTER_ADDR")) env.master_addr = a;
  if (const char* p = get("MASTER_PORT")) env.master_port = parse_int("MASTER_PORT", p, 1, 65535);
  return env;
}

LaunchEnv launch_env() {
  return launch_env_from([](const char* name) { return static_cast<const char*>(std::getenv(name)); });
}

}  // namespace mu
