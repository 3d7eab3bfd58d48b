// Launch environment: which launcher's variables win, and the errors on broken environments.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <string>

#include "core/error.h"
#include "core/launch.h"

namespace {

using Env = std::map<std::string, std::string>;

mu::LaunchEnv from(const Env& env) {
  return mu::launch_env_from([&](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

std::string error_of(const Env& env) {
  try {
    from(env);
  } catch (const mu::Error& e) {
    return e.what();
  }
  return "";
}

TEST(Launch, NoLauncherIsOneProcess) {
  mu::LaunchEnv e = from({});
  EXPECT_EQ(e.launcher, mu::Launcher::None);
  EXPECT_EQ(e.rank, 0);
  EXPECT_EQ(e.world, 1);
  EXPECT_EQ(e.local_rank, 0);
  EXPECT_TRUE(e.master_addr.empty());
  EXPECT_EQ(e.master_port, 0);
}

TEST(Launch, OpenMpi) {
  mu::LaunchEnv e = from({{"OMPI_COMM_WORLD_RANK", "5"}, {"OMPI_COMM_WORLD_SIZE", "8"},
                          {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}});
  EXPECT_EQ(e.launcher, mu::Launcher::OpenMPI);
  EXPECT_EQ(e.rank, 5);
  EXPECT_EQ(e.world, 8);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.describe(), "rank 5 of 8 (local 1, mpirun)");
}

TEST(Launch, SlurmWithMaster) {
  mu::LaunchEnv e = from({{"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "16"}, {"SLURM_LOCALID", "3"},
                          {"MASTER_ADDR", "node07"}, {"MASTER_PORT", "29500"}});
  EXPECT_EQ(e.launcher, mu::Launcher::Slurm);
  EXPECT_EQ(e.rank, 3);
  EXPECT_EQ(e.world, 16);
  EXPECT_EQ(e.local_rank, 3);
  EXPECT_EQ(e.master_addr, "node07");
  EXPECT_EQ(e.master_port, 29500);
}

TEST(Launch, TorchrunWinsOverTheSlurmAllocation) {
  // torchrun inside an sbatch script: SLURM_* describe the allocation, RANK this process.
  mu::LaunchEnv e = from({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_LOCALID", "0"},
                          {"RANK", "6"}, {"WORLD_SIZE", "16"}, {"LOCAL_RANK", "6"},
                          {"MASTER_ADDR", "10.0.0.1"}, {"MASTER_PORT", "1234"}});
  EXPECT_EQ(e.launcher, mu::Launcher::Torchrun);
  EXPECT_EQ(e.rank, 6);
  EXPECT_EQ(e.world, 16);
  EXPECT_EQ(e.local_rank, 6);
}

TEST(Launch, OpenMpiWinsOverTorchrunAndSlurm) {
  mu::LaunchEnv e = from({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"}, {"RANK", "0"}, {"WORLD_SIZE", "1"},
                          {"OMPI_COMM_WORLD_RANK", "2"}, {"OMPI_COMM_WORLD_SIZE", "3"},
                          {"OMPI_COMM_WORLD_LOCAL_RANK", "0"}});
  EXPECT_EQ(e.launcher, mu::Launcher::OpenMPI);
  EXPECT_EQ(e.rank, 2);
  EXPECT_EQ(e.world, 3);
}

TEST(Launch, LocalRankMayBeOmittedOnlyForOneProcess) {
  mu::LaunchEnv e = from({{"RANK", "0"}, {"WORLD_SIZE", "1"}});
  EXPECT_EQ(e.launcher, mu::Launcher::Torchrun);
  EXPECT_EQ(e.local_rank, 0);
  EXPECT_NE(error_of({{"RANK", "1"}, {"WORLD_SIZE", "2"}}).find("LOCAL_RANK is not"), std::string::npos);
}

TEST(Launch, InconsistentValuesNameTheVariables) {
  struct Case {
    Env env;
    const char* want;
  };
  const Case cases[] = {
      {{{"RANK", "1"}}, "RANK is set but WORLD_SIZE is not"},
      {{{"WORLD_SIZE", "4"}}, "WORLD_SIZE is set but RANK is not"},
      {{{"RANK", "4"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "0"}}, "RANK=4 must be below WORLD_SIZE=4"},
      {{{"RANK", "-1"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "0"}}, "RANK=-1 is outside"},
      {{{"RANK", "1"}, {"WORLD_SIZE", "0"}, {"LOCAL_RANK", "0"}}, "WORLD_SIZE=0 is outside"},
      {{{"RANK", "1"}, {"WORLD_SIZE", "two"}, {"LOCAL_RANK", "0"}}, "WORLD_SIZE=\"two\" is not an integer"},
      {{{"RANK", "1"}, {"WORLD_SIZE", "4x"}, {"LOCAL_RANK", "0"}}, "WORLD_SIZE=\"4x\" is not an integer"},
      {{{"RANK", ""}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "0"}}, "RANK is set but empty"},
      {{{"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "2"}, {"SLURM_LOCALID", "2"}}, "SLURM_LOCALID=2 must be below SLURM_NTASKS=2"},
      {{{"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "2"}}, "OMPI_COMM_WORLD_LOCAL_RANK is not"},
      {{{"MASTER_PORT", "70000"}}, "MASTER_PORT=70000 is outside [1, 65535]"},
      {{{"MASTER_PORT", "0"}}, "MASTER_PORT=0 is outside"},
  };
  for (const Case& c : cases) {
    std::string err = error_of(c.env);
    EXPECT_NE(err.find(c.want), std::string::npos) << "want \"" << c.want << "\", got \"" << err << "\"";
  }
}

// The process-environment entry point, through setenv as a launcher would leave it.
TEST(Launch, ReadsTheProcessEnvironment) {
  const char* vars[] = {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
                        "RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID", "SLURM_NTASKS",
                        "SLURM_LOCALID", "MASTER_ADDR", "MASTER_PORT"};
  for (const char* v : vars) unsetenv(v);
  EXPECT_EQ(mu::launch_env().launcher, mu::Launcher::None);
  setenv("SLURM_PROCID", "2", 1);
  setenv("SLURM_NTASKS", "4", 1);
  setenv("SLURM_LOCALID", "0", 1);
  mu::LaunchEnv e = mu::launch_env();
  EXPECT_EQ(e.launcher, mu::Launcher::Slurm);
  EXPECT_EQ(e.rank, 2);
  EXPECT_EQ(e.world, 4);
  setenv("SLURM_NTASKS", "2", 1);
  EXPECT_THROW(mu::launch_env(), mu::Error);  // rank 2 of 2
  for (const char* v : vars) unsetenv(v);
}

}  // namespace
