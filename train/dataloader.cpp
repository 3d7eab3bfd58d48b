#include "train/dataloader.h"

#include <numeric>
#include <utility>

#include "core/error.h"

namespace mu {

DataLoader::DataLoader(const ShardSet& data, LoaderConfig cfg) : data_(data), cfg_(cfg), rng_(cfg.seed) {
  MU_CHECK(cfg.B > 0 && cfg.T > 0, "data loader: B and T must be positive, got B=%d T=%d", cfg.B, cfg.T);
  MU_CHECK(cfg.world >= 1 && cfg.rank >= 0 && cfg.rank < cfg.world,
           "data loader: rank %d is not in [0, world=%d)", cfg.rank, cfg.world);
  window_tokens_ = int64_t(cfg.world) * cfg.B * cfg.T;
  const int64_t total = data.total_tokens();
  MU_CHECK(total >= window_tokens_ + 1,
           "data %s: %lld tokens, but one batch needs world*B*T+1 = %d*%d*%d+1 = %lld (use fewer rows, a "
           "shorter sequence or more data)",
           data.pattern().c_str(), (long long)total, cfg.world, cfg.B, cfg.T, (long long)(window_tokens_ + 1));
  // Window w needs tokens up to w*window + window inclusive.
  batches_per_epoch_ = (total - 1) / window_tokens_;
  start_epoch();
}

void DataLoader::start_epoch() {
  epoch_rng_ = rng_.state();
  if (!cfg_.shuffle) return;
  order_.resize(batches_per_epoch_);
  std::iota(order_.begin(), order_.end(), int64_t(0));
  for (int64_t i = batches_per_epoch_ - 1; i > 0; i--) {
    int64_t j = static_cast<int64_t>(rng_.below(static_cast<uint64_t>(i + 1)));
    std::swap(order_[i], order_[j]);
  }
}

void DataLoader::next(int32_t* inputs, int32_t* targets) {
  const int64_t window = cfg_.shuffle ? order_[position_] : position_;
  const int64_t rank_tokens = int64_t(cfg_.B) * cfg_.T;
  // This rank's rows are contiguous in the window: one span of B*T (+1) tokens.
  const int64_t start = window * window_tokens_ + cfg_.rank * rank_tokens;
  data_.read(start, rank_tokens, inputs);
  data_.read(start + 1, rank_tokens, targets);
  if (++position_ == batches_per_epoch_) {
    position_ = 0;
    epoch_++;
    start_epoch();
  }
}

void DataLoader::set_state(const State& s) {
  MU_CHECK(s.position >= 0 && s.position < batches_per_epoch_,
           "data loader: saved position %lld is outside this data's epoch of %lld batches "
           "(was the state saved with other data, B, T or world size?)",
           (long long)s.position, (long long)batches_per_epoch_);
  MU_CHECK(s.epoch >= 0, "data loader: saved epoch %lld is negative", (long long)s.epoch);
  rng_.set_state(s.rng);
  epoch_ = s.epoch;
  start_epoch();
  position_ = s.position;
}

}  // namespace mu
