// Muon's switches by name, its LR scales, and the routing: which rows of which hidden param
// form each logical matrix, and how same-shape matrices are batched.
#include <algorithm>
#include <cmath>

#include "optim/muon.h"

namespace mu {

LrScaleKind parse_lr_scale(const std::string& s) {
  if (s == "match_rms_adamw") return LrScaleKind::MatchRmsAdamw;
  if (s == "original") return LrScaleKind::Original;
  if (s == "spectral") return LrScaleKind::Spectral;
  if (s == "sqrt_max") return LrScaleKind::SqrtMax;
  if (s == "none") return LrScaleKind::None;
  MU_FAIL("unknown Muon LR scale '%s' (expected one of: match_rms_adamw, original, spectral, sqrt_max, none)",
          s.c_str());
}

const char* lr_scale_name(LrScaleKind k) {
  switch (k) {
    case LrScaleKind::MatchRmsAdamw: return "match_rms_adamw";
    case LrScaleKind::Original: return "original";
    case LrScaleKind::Spectral: return "spectral";
    case LrScaleKind::SqrtMax: return "sqrt_max";
    case LrScaleKind::None: return "none";
  }
  MU_FAIL("lr_scale_name: invalid LrScaleKind %d", static_cast<int>(k));
}

MomentumKind parse_momentum_kind(const std::string& s) {
  if (s == "sgd") return MomentumKind::Sgd;
  if (s == "ema") return MomentumKind::Ema;
  MU_FAIL("unknown Muon momentum kind '%s' (expected one of: sgd, ema)", s.c_str());
}

const char* momentum_kind_name(MomentumKind k) { return k == MomentumKind::Sgd ? "sgd" : "ema"; }

WeightDecayKind parse_wd_kind(const std::string& s) {
  if (s == "decoupled") return WeightDecayKind::Decoupled;
  if (s == "cautious") return WeightDecayKind::Cautious;
  if (s == "none") return WeightDecayKind::None;
  MU_FAIL("unknown Muon weight-decay kind '%s' (expected one of: decoupled, cautious, none)", s.c_str());
}

const char* wd_kind_name(WeightDecayKind k) {
  switch (k) {
    case WeightDecayKind::Decoupled: return "decoupled";
    case WeightDecayKind::Cautious: return "cautious";
    case WeightDecayKind::None: return "none";
  }
  MU_FAIL("wd_kind_name: invalid WeightDecayKind %d", static_cast<int>(k));
}

double muon_lr_scale(LrScaleKind k, int64_t rows, int64_t cols) {
  MU_CHECK(rows > 0 && cols > 0, "muon_lr_scale: matrix is %lld x %lld", static_cast<long long>(rows),
           static_cast<long long>(cols));
  const double A = static_cast<double>(rows), B = static_cast<double>(cols);
  switch (k) {
    case LrScaleKind::MatchRmsAdamw: return 0.2 * std::sqrt(std::max(A, B));  // Moonlight, arXiv 2502.16982
    case LrScaleKind::Original: return std::sqrt(std::max(1.0, A / B));       // Keller Jordan, torch.optim.Muon
    case LrScaleKind::Spectral: return std::sqrt(A / B);                      // Dion (microsoft/dion muon.py)
    case LrScaleKind::SqrtMax: return std::sqrt(std::max(A, B));              // early modded-nanogpt
    case LrScaleKind::None: return 1.0;
  }
  MU_FAIL("muon_lr_scale: invalid LrScaleKind %d", static_cast<int>(k));
}

MuonSplits llama_muon_splits(int64_t hidden, int64_t heads, int64_t kv_heads, int64_t head_dim, int64_t ffn) {
  MU_CHECK(hidden > 0 && heads > 0 && kv_heads > 0 && head_dim > 0 && ffn > 0,
           "llama_muon_splits: sizes must be positive (hidden %lld, heads %lld, kv heads %lld, head_dim %lld, ffn %lld)",
           static_cast<long long>(hidden), static_cast<long long>(heads), static_cast<long long>(kv_heads),
           static_cast<long long>(head_dim), static_cast<long long>(ffn));
  MuonSplits s;
  s["layers.wqkv"] = {{"q", heads * head_dim, head_dim}, {"k", kv_heads * head_dim, head_dim},
                      {"v", kv_heads * head_dim, head_dim}};
  s["layers.wo"] = {{"o", hidden, 0}};
  s["layers.w_gate_up"] = {{"gate", ffn, 0}, {"up", ffn, 0}};
  s["layers.w_down"] = {{"down", hidden, 0}};
  return s;
}

std::vector<MuonMatrix> muon_matrices(const std::vector<ParamRef>& hidden, const MuonSplits& splits,
                                      bool split_heads) {
  std::vector<MuonMatrix> out;
  std::map<std::string, bool> group_seen;
  for (size_t p = 0; p < hidden.size(); p++) {
    const ParamRef& r = hidden[p];
    const Shape& s = r.param.shape;
    MU_CHECK(s.ndim == 2 || s.ndim == 3,
             "muon: hidden parameter '%s' is %s; Muon takes matrices (A, B) or stacks of them (L, A, B)",
             r.name.c_str(), s.str().c_str());
    const int64_t layers = s.ndim == 3 ? s[0] : 1, R = s[-2], C = s[-1];
    MU_CHECK(layers > 0 && R > 0 && C > 0, "muon: hidden parameter '%s' is %s (empty)", r.name.c_str(),
             s.str().c_str());
    std::vector<MuonBlock> blocks = {{r.name, R, 0}};
    if (auto it = splits.find(r.name); it != splits.end()) blocks = it->second;
    int64_t total = 0;
    for (const MuonBlock& b : blocks) {
      MU_CHECK(b.rows > 0, "muon: block '%s' of '%s' has %lld rows", b.name.c_str(), r.name.c_str(),
               static_cast<long long>(b.rows));
      MU_CHECK(b.head_rows >= 0 && (b.head_rows == 0 || b.rows % b.head_rows == 0),
               "muon: block '%s' of '%s': %lld rows do not split into heads of %lld", b.name.c_str(), r.name.c_str(),
               static_cast<long long>(b.rows), static_cast<long long>(b.head_rows));
      total += b.rows;
    }
    MU_CHECK(total == R, "muon: the blocks of '%s' cover %lld rows but the parameter %s has %lld", r.name.c_str(),
             static_cast<long long>(total), s.str().c_str(), static_cast<long long>(R));
    for (int64_t l = 0; l < layers; l++) {
      int64_t row = 0, v_off = 0;
      for (const MuonBlock& b : blocks) {
        const bool per_head = split_heads && b.head_rows > 0;
        const int64_t n_parts = per_head ? b.rows / b.head_rows : 1, part_rows = per_head ? b.head_rows : b.rows;
        for (int64_t h = 0; h < n_parts; h++) {
          MuonMatrix m;
          m.param = p;
          m.group = b.name;
          m.layer = s.ndim == 3 ? l : -1;
          m.head = per_head ? h : -1;
          m.row0 = row + h * part_rows;
          m.rows = part_rows;
          m.cols = C;
          m.v_offset = v_off;
          m.sample = !group_seen[b.name];
          group_seen[b.name] = true;
          v_off += std::max(m.rows, m.cols);
          out.push_back(m);
        }
        row += b.rows;
      }
    }
  }
  return out;
}

std::vector<MuonBatch> muon_batches(const std::vector<MuonMatrix>& matrices, int64_t max_batch_elems,
                                    const std::vector<int>* owner, int rank) {
  MU_CHECK(max_batch_elems > 0, "muon: max_batch_elems is %lld, must be > 0", static_cast<long long>(max_batch_elems));
  std::vector<MuonBatch> groups;  // one per wide shape, in order of first appearance
  MU_CHECK(!owner || owner->size() == matrices.size(), "muon: the ownership list has %zu entries for %zu matrices",
           owner ? owner->size() : size_t{0}, matrices.size());
  for (size_t i = 0; i < matrices.size(); i++) {
    if (owner && (*owner)[i] != rank) continue;
    const int64_t m = std::min(matrices[i].rows, matrices[i].cols), n = std::max(matrices[i].rows, matrices[i].cols);
    auto it = std::find_if(groups.begin(), groups.end(), [&](const MuonBatch& g) { return g.m == m && g.n == n; });
    if (it == groups.end()) {
      groups.push_back(MuonBatch{m, n, {}});
      it = groups.end() - 1;
    }
    it->items.push_back(i);
  }
  std::vector<MuonBatch> out;
  for (const MuonBatch& g : groups) {
    const size_t per = static_cast<size_t>(std::max<int64_t>(1, max_batch_elems / (g.m * g.n)));
    for (size_t s = 0; s < g.items.size(); s += per) {
      MuonBatch b{g.m, g.n, {}};
      b.items.assign(g.items.begin() + s, g.items.begin() + std::min(g.items.size(), s + per));
      out.push_back(b);
    }
  }
  return out;
}

int64_t normuon_layer_len(const std::vector<MuonMatrix>& matrices, size_t p) {
  int64_t len = 0;
  for (const MuonMatrix& m : matrices)
    if (m.param == p && m.layer <= 0) len = std::max(len, m.v_offset + std::max(m.rows, m.cols));
  return len;
}

}  // namespace mu
