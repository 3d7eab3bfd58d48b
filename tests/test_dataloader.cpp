// DataLoader: the windows it reads, rank splitting, shuffled epochs and exact resume.
// The data is tokens 0, 1, 2, ... so every token names its own position, and the expected
// batches follow from the window formula in train/dataloader.h.
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "train/dataloader.h"
#include "train/shards.h"

using namespace mu;

namespace {

constexpr int kVocab = 100000;  // uint32 shards; the positions below stay < 100000

// Tokens 0..n-1 split over a few shards (so windows cross shard boundaries).
class IotaData {
 public:
  explicit IotaData(int64_t n) {
    char tmpl[] = "/tmp/mu_test_dataloader_XXXXXX";
    char* d = mkdtemp(tmpl);
    if (d == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = d;
    std::vector<uint32_t> toks(n);
    std::iota(toks.begin(), toks.end(), 0u);
    int64_t per = std::max<int64_t>(1, n / 3 + 1);
    int k = 0;
    for (int64_t s = 0; s < n; s += per, k++) {
      std::vector<uint32_t> part(toks.begin() + s, toks.begin() + std::min(n, s + per));
      write_shard(dir_ + "/s_" + std::to_string(k) + ".bin", part, kVocab);
    }
    set_ = std::make_unique<ShardSet>(dir_ + "/s_*.bin", kVocab);
  }
  ~IotaData() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  const ShardSet& set() const { return *set_; }

 private:
  std::string dir_;
  std::unique_ptr<ShardSet> set_;
};

struct Batch {
  std::vector<int32_t> x, y;
  bool operator==(const Batch& o) const { return x == o.x && y == o.y; }
};

Batch next_batch(DataLoader& dl, const LoaderConfig& c) {
  Batch b{std::vector<int32_t>(c.B * c.T, -1), std::vector<int32_t>(c.B * c.T, -1)};
  dl.next(b.x.data(), b.y.data());
  return b;
}

LoaderConfig config(int B, int T, bool shuffle, uint64_t seed = 0, int rank = 0, int world = 1) {
  LoaderConfig c;
  c.B = B;
  c.T = T;
  c.shuffle = shuffle;
  c.seed = seed;
  c.rank = rank;
  c.world = world;
  return c;
}

// Checks that b is this rank's part of window w, and returns w.
void expect_window(const Batch& b, const LoaderConfig& c, int64_t w) {
  const int64_t base = w * c.world * c.B * c.T + int64_t(c.rank) * c.B * c.T;
  for (int r = 0; r < c.B; r++)
    for (int t = 0; t < c.T; t++) {
      ASSERT_EQ(b.x[r * c.T + t], base + r * c.T + t) << "window " << w << " row " << r << " t " << t;
      ASSERT_EQ(b.y[r * c.T + t], base + r * c.T + t + 1) << "window " << w << " row " << r << " t " << t;
    }
}

}  // namespace

TEST(DataLoader, NoShuffleWindowsInOrderAndWrap) {
  // B=2, T=4: windows of 8 tokens (+1). 29 tokens: windows start at 0, 8, 16 (16+8 = 24 <= 28);
  // a fourth at 24 would need token 32.
  IotaData data(29);
  LoaderConfig c = config(2, 4, false);
  DataLoader dl(data.set(), c);
  EXPECT_EQ(dl.batches_per_epoch(), 3);
  for (int i = 0; i < 8; i++) {
    EXPECT_EQ(dl.epoch(), i / 3);
    Batch b = next_batch(dl, c);
    expect_window(b, c, i % 3);
  }
  // Spot-check the formula once with literal numbers: batch 1, row 1 = tokens 12..15 -> 13..16.
  DataLoader again(data.set(), c);
  next_batch(again, c);
  Batch b1 = next_batch(again, c);
  EXPECT_EQ(b1.x, (std::vector<int32_t>{8, 9, 10, 11, 12, 13, 14, 15}));
  EXPECT_EQ(b1.y, (std::vector<int32_t>{9, 10, 11, 12, 13, 14, 15, 16}));
}

TEST(DataLoader, EpochLengthAtTheBoundary) {
  // A window needs world*B*T + 1 tokens: 25 tokens fit 3 windows of 8, 24 only 2.
  IotaData d25(25), d24(24), d9(9);
  EXPECT_EQ(DataLoader(d25.set(), config(2, 4, false)).batches_per_epoch(), 3);
  EXPECT_EQ(DataLoader(d24.set(), config(2, 4, false)).batches_per_epoch(), 2);
  EXPECT_EQ(DataLoader(d9.set(), config(2, 4, false)).batches_per_epoch(), 1);
  IotaData d8(8);
  try {
    DataLoader dl(d8.set(), config(2, 4, false));
    FAIL() << "expected an error for 8 tokens";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(d8.set().pattern() + ": 8 tokens"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("= 9"), std::string::npos) << e.what();
  }
  // world=2 doubles the need: 17 tokens.
  IotaData d16(16);
  EXPECT_THROW(DataLoader(d16.set(), config(2, 4, false, 0, 1, 2)), Error);
}

TEST(DataLoader, RejectsBadConfig) {
  IotaData data(100);
  EXPECT_THROW(DataLoader(data.set(), config(0, 4, false)), Error);
  EXPECT_THROW(DataLoader(data.set(), config(2, 0, false)), Error);
  EXPECT_THROW(DataLoader(data.set(), config(2, 4, false, 0, 2, 2)), Error);
  EXPECT_THROW(DataLoader(data.set(), config(2, 4, false, 0, -1, 2)), Error);
}

TEST(DataLoader, RanksSplitTheGlobalBatch) {
  // world=2, B=2 per rank must equal the world=1, B=4 batch split by rows: rank k = rows 2k, 2k+1.
  IotaData data(16 * 3 + 5);  // 3 windows of 16 tokens
  for (bool shuffle : {false, true}) {
    LoaderConfig whole = config(4, 4, shuffle, 11), r0 = config(2, 4, shuffle, 11, 0, 2),
                 r1 = config(2, 4, shuffle, 11, 1, 2);
    DataLoader dw(data.set(), whole), d0(data.set(), r0), d1(data.set(), r1);
    EXPECT_EQ(d0.batches_per_epoch(), dw.batches_per_epoch());
    for (int i = 0; i < 7; i++) {  // more than two epochs
      Batch w = next_batch(dw, whole), a = next_batch(d0, r0), b = next_batch(d1, r1);
      const size_t half = 2 * 4;
      EXPECT_EQ(a.x, std::vector<int32_t>(w.x.begin(), w.x.begin() + half)) << "step " << i;
      EXPECT_EQ(a.y, std::vector<int32_t>(w.y.begin(), w.y.begin() + half)) << "step " << i;
      EXPECT_EQ(b.x, std::vector<int32_t>(w.x.begin() + half, w.x.end())) << "step " << i;
      EXPECT_EQ(b.y, std::vector<int32_t>(w.y.begin() + half, w.y.end())) << "step " << i;
    }
  }
}

TEST(DataLoader, ShuffleVisitsEveryWindowOncePerEpoch) {
  const int windows = 20;
  IotaData data(windows * 8 + 1);
  LoaderConfig c = config(2, 4, true, 1234);
  DataLoader dl(data.set(), c);
  ASSERT_EQ(dl.batches_per_epoch(), windows);
  std::vector<std::vector<int64_t>> orders(3);
  for (auto& order : orders)
    for (int i = 0; i < windows; i++) {
      Batch b = next_batch(dl, c);
      int64_t w = b.x[0] / 8;
      expect_window(b, c, w);  // a whole, aligned window
      order.push_back(w);
    }
  for (const auto& order : orders) {
    std::vector<int64_t> sorted = order;
    std::sort(sorted.begin(), sorted.end());
    std::vector<int64_t> all(windows);
    std::iota(all.begin(), all.end(), 0);
    EXPECT_EQ(sorted, all);  // a permutation: each window exactly once
  }
  // Shuffled, and differently per epoch (a fixed seed: this is a fact about seed 1234, not luck
  // at test time; any seed fails these with probability ~1/20!).
  std::vector<int64_t> identity(windows);
  std::iota(identity.begin(), identity.end(), 0);
  EXPECT_NE(orders[0], identity);
  EXPECT_NE(orders[0], orders[1]);
  EXPECT_NE(orders[1], orders[2]);

  // The documented draw: Fisher–Yates from Rng(seed) with below(i+1), i = n-1 .. 1, epochs
  // drawn one after another from the same stream.
  Rng rng(1234);
  for (const auto& order : orders) {
    std::vector<int64_t> want(identity);
    for (int i = windows - 1; i > 0; i--) std::swap(want[i], want[rng.below(i + 1)]);
    EXPECT_EQ(order, want);
  }
}

TEST(DataLoader, ShuffleIsDeterministicInTheSeed) {
  IotaData data(20 * 8 + 3);
  LoaderConfig c7 = config(2, 4, true, 7), c8 = config(2, 4, true, 8);
  DataLoader a(data.set(), c7), b(data.set(), c7), other(data.set(), c8);
  bool differs = false;
  for (int i = 0; i < 45; i++) {
    Batch x = next_batch(a, c7), y = next_batch(b, c7), z = next_batch(other, c8);
    EXPECT_EQ(x, y) << "step " << i;
    differs |= !(x == z);
  }
  EXPECT_TRUE(differs) << "seeds 7 and 8 gave the same order";
}

TEST(DataLoader, ResumeContinuesBitwise) {
  IotaData data(20 * 8 + 5);
  for (bool shuffle : {true, false}) {
    LoaderConfig c = config(2, 4, shuffle, 99);
    // Save mid-epoch (7), at an epoch boundary (20) and in the second epoch (33).
    for (int save_at : {0, 7, 20, 33}) {
      DataLoader dl(data.set(), c);
      for (int i = 0; i < save_at; i++) next_batch(dl, c);
      DataLoader::State st = dl.state();
      EXPECT_EQ(st.epoch, save_at / 20);
      EXPECT_EQ(st.position, save_at % 20);
      std::vector<Batch> want;
      for (int i = 0; i < 45; i++) want.push_back(next_batch(dl, c));
      DataLoader fresh(data.set(), c);
      next_batch(fresh, c);  // a loader that has moved on must still be restorable
      fresh.set_state(st);
      for (int i = 0; i < 45; i++)
        ASSERT_EQ(next_batch(fresh, c), want[i]) << "shuffle " << shuffle << " saved at " << save_at << " step " << i;
      EXPECT_EQ(fresh.state().epoch, dl.state().epoch);
      EXPECT_EQ(fresh.state().position, dl.state().position);
      EXPECT_EQ(fresh.state().rng, dl.state().rng);
    }
  }
}

TEST(DataLoader, RejectsAStateFromOtherData) {
  IotaData data(5 * 8 + 1);
  LoaderConfig c = config(2, 4, true, 1);
  DataLoader dl(data.set(), c);
  DataLoader::State st = dl.state();
  st.position = 5;  // epoch has 5 batches: 0..4
  EXPECT_THROW(dl.set_state(st), Error);
  st.position = -1;
  EXPECT_THROW(dl.set_state(st), Error);
  st.position = 0;
  st.epoch = -2;
  EXPECT_THROW(dl.set_state(st), Error);
}
