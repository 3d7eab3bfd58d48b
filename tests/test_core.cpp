// core/: the arena (plan, alignment, budget refusal), the RNG (determinism, resumable state,
// distribution moments) and the CLI option table (parsing and --help from one table).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>

#include "core/arena.h"
#include "core/cli.h"
#include "core/rng.h"

using namespace mu;

TEST(Arena, PlanAlignsAndZeroes) {
  ArenaPlan plan;
  plan.add("w.a", Region::Weights, DType::F32, {3, 5});
  plan.add("w.b", Region::Weights, DType::BF16, {7});
  plan.add("act.x", Region::Activations, DType::F32, {4, 4});
  EXPECT_THROW(plan.add("w.a", Region::Grads, DType::F32, {1}), Error);
  EXPECT_EQ(plan.entry("w.b").offset % kArenaAlign, 0u);
  EXPECT_EQ(plan.region_bytes(Region::Weights), 2 * kArenaAlign);  // 60 B and 14 B, each padded
  Arena arena(plan, Device::CPU);
  Tensor a = arena.get("w.a"), b = arena.get("w.b");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data) % kArenaAlign, 0u);
  EXPECT_EQ(static_cast<char*>(b.data) - static_cast<char*>(a.data), static_cast<ptrdiff_t>(kArenaAlign));
  EXPECT_EQ(a.shape, Shape({3, 5}));
  EXPECT_EQ(b.dtype, DType::BF16);
  for (int i = 0; i < 15; i++) EXPECT_EQ(a.f32()[i], 0.0f);
  EXPECT_THROW(arena.get("nope"), Error);
  Tensor whole = arena.region(Region::Weights, DType::F32);
  EXPECT_EQ(whole.numel(), static_cast<int64_t>(2 * kArenaAlign / 4));
}

TEST(Arena, DescribesThePlanAndRefusesWhatDoesNotFit) {
  ArenaPlan plan;
  plan.add("big", Region::Activations, DType::F32, {1024, 1024});  // 4 MiB
  plan.add("p", Region::Weights, DType::F32, {256, 1024});          // 1 MiB
  const std::string d = plan.describe(8u << 20);
  EXPECT_NE(d.find("weights"), std::string::npos) << d;
  EXPECT_NE(d.find("activations"), std::string::npos) << d;
  EXPECT_NE(d.find("5.0 MiB"), std::string::npos) << d;
  EXPECT_NE(d.find("8.0 MiB available"), std::string::npos) << d;
  try {
    Arena arena(plan, Device::CPU, 3u << 20, "lower --batch-size");
    FAIL() << "a 5 MiB plan fit in a 3 MiB budget";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("5.0 MiB"), std::string::npos) << m;
    EXPECT_NE(m.find("3.0 MiB"), std::string::npos) << m;
    EXPECT_NE(m.find("lower --batch-size"), std::string::npos) << m;
    EXPECT_NE(m.find("activations"), std::string::npos) << m;
  }
  Arena ok(plan, Device::CPU, 6u << 20);
}

TEST(Rng, DeterministicResumableAndRoughlyNormal) {
  Rng a(42), b(42), c(43);
  EXPECT_EQ(a.next_u64(), b.next_u64());
  EXPECT_NE(a.next_u64(), c.next_u64());
  Rng s(7);
  for (int i = 0; i < 10; i++) s.next_u64();
  Rng r(0);
  r.set_state(s.state());
  for (int i = 0; i < 100; i++) ASSERT_EQ(r.next_u64(), s.next_u64());
  // Moments of 200k normals: mean 0 +- 5 sigma/sqrt(n) (~0.011), variance 1 +- ~0.016.
  Rng g(1);
  const int n = 200000;
  double sum = 0, sq = 0;
  for (int i = 0; i < n; i++) {
    double x = g.normal();
    sum += x;
    sq += x * x;
  }
  EXPECT_NEAR(sum / n, 0.0, 0.012);
  EXPECT_NEAR(sq / n, 1.0, 0.016);
  // below(n) covers [0, n) uniformly: 7 buckets, 70k draws, each within 5 sigma of 10k.
  int counts[7] = {};
  for (int i = 0; i < 70000; i++) counts[g.below(7)]++;
  for (int k : counts) EXPECT_NEAR(k, 10000, 500);
  for (int i = 0; i < 1000; i++) {
    double u = g.uniform();
    ASSERT_TRUE(u >= 0.0 && u < 1.0);
  }
}

namespace {
struct Parsed {
  std::string name = "x";
  int n = 3;
  int64_t big = 5;
  double lr = 0.1;
  bool flag = true;
};
bool parse(Cli& cli, Parsed& p, std::vector<std::string> args) {
  cli.add_string("name", &p.name, "S", "a name");
  cli.add_int("n", &p.n, "a count");
  cli.add_int64("big", &p.big, "a big count");
  cli.add_float("lr", &p.lr, "a rate");
  cli.add_flag("flag", &p.flag, "a switch");
  std::vector<char*> argv = {const_cast<char*>("prog")};
  for (auto& a : args) argv.push_back(a.data());
  return cli.parse(static_cast<int>(argv.size()), argv.data());
}
}  // namespace

TEST(Cli, ParsesBothSpellingsAndNegatedFlags) {
  Cli cli("prog", "test");
  Parsed p;
  ASSERT_TRUE(parse(cli, p, {"--name", "abc", "--n=7", "--lr", "3e-4", "--no-flag", "--big", "12345678901"}));
  EXPECT_EQ(p.name, "abc");
  EXPECT_EQ(p.n, 7);
  EXPECT_EQ(p.lr, 3e-4);
  EXPECT_FALSE(p.flag);
  EXPECT_EQ(p.big, 12345678901LL);
  EXPECT_TRUE(cli.given("n"));
  EXPECT_FALSE(Cli("p", "").usage().empty());
}

TEST(Cli, RejectsBadInputNamingTheOption) {
  struct Case {
    std::vector<std::string> args;
    std::string expect;
  } cases[] = {{{"--bogus", "1"}, "--bogus"},  {{"--n", "x"}, "--n"},     {{"--n", "1.5"}, "--n"},
               {{"--lr", "fast"}, "--lr"},     {{"--name"}, "--name"},     {{"--flag=1"}, "--flag"},
               {{"positional"}, "positional"}, {{"--no-name", "a"}, "--no-name"}};
  for (const auto& c : cases) {
    Cli cli("prog", "test");
    Parsed p;
    try {
      parse(cli, p, c.args);
      ADD_FAILURE() << "accepted " << c.args[0];
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(c.expect), std::string::npos) << e.what();
    }
  }
}

TEST(Cli, HelpComesFromTheSameTable) {
  Cli cli("prog", "does things");
  Parsed p;
  parse(cli, p, {});
  const std::string u = cli.usage();
  for (const char* s : {"--name S", "--n N", "--big N", "--lr X", "--flag, --no-flag", "[x]", "[3]", "[0.1]", "[on]"})
    EXPECT_NE(u.find(s), std::string::npos) << s << "\n" << u;
}
