#include "train/train_state.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <set>

#include "core/safetensors.h"
#include "core/transfer.h"

namespace mu {

void save_train_state(const std::string& path, const TrainState& s,
                      const std::vector<std::pair<std::string, Tensor>>& optimizer_state) {
  SafetensorsWriter w;
  std::vector<std::vector<char>> keep;  // host copies live until write()
  for (const auto& [name, t] : optimizer_state) {
    keep.emplace_back(t.nbytes());
    copy_to_host(keep.back().data(), t);
    w.add(name, Tensor(keep.back().data(), t.dtype, Device::CPU, t.shape));
  }
  nlohmann::json j;
  j["step"] = s.step;
  j["loader_position"] = s.loader.position;
  j["loader_epoch"] = s.loader.epoch;
  // uint64 RNG words as strings: JSON numbers are doubles for many readers.
  for (uint64_t word : s.loader.rng) j["loader_rng"].push_back(std::to_string(word));
  w.set_metadata("format", "llm.mu-train-state");
  w.set_metadata("state", j.dump());
  w.set_metadata("options", s.options.dump());
  w.write(path);
}

TrainState load_train_state(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& optimizer_state) {
  SafetensorsFile f(path);
  const auto& md = f.metadata();
  MU_CHECK(md.count("format") && md.at("format") == "llm.mu-train-state" && md.count("state") && md.count("options"),
           "%s: not an llm.mu training-state file", path.c_str());
  TrainState s;
  try {
    nlohmann::json j = nlohmann::json::parse(md.at("state"));
    s.step = j.at("step").get<int64_t>();
    s.loader.position = j.at("loader_position").get<int64_t>();
    s.loader.epoch = j.at("loader_epoch").get<int64_t>();
    const auto& rng = j.at("loader_rng");
    MU_CHECK(rng.is_array() && rng.size() == 4, "%s: field loader_rng must hold 4 words", path.c_str());
    for (int i = 0; i < 4; i++) {
      const std::string w = rng[i].get<std::string>();
      char* end = nullptr;
      errno = 0;
      s.loader.rng[i] = std::strtoull(w.c_str(), &end, 10);
      MU_CHECK(!w.empty() && w.find_first_not_of("0123456789") == std::string::npos && errno == 0,
               "%s: field loader_rng[%d] is '%s', not a 64-bit unsigned decimal", path.c_str(), i, w.c_str());
    }
    MU_CHECK(s.step >= 0 && s.loader.position >= 0 && s.loader.epoch >= 0,
             "%s: fields step (%lld), loader_position (%lld) and loader_epoch (%lld) must be >= 0", path.c_str(),
             static_cast<long long>(s.step), static_cast<long long>(s.loader.position),
             static_cast<long long>(s.loader.epoch));
    s.options = nlohmann::json::parse(md.at("options"));
  } catch (const nlohmann::json::exception& e) {
    MU_FAIL("%s: malformed training state metadata: %s", path.c_str(), e.what());
  }
  std::set<std::string> expected;
  for (const auto& [name, t] : optimizer_state) {
    expected.insert(name);
    MU_CHECK(f.has(name), "%s: optimizer state tensor '%s' is missing (was the run started with another optimizer?)",
             path.c_str(), name.c_str());
    const StTensorInfo& info = f.get(name);
    MU_CHECK(info.shape == t.shape && info.dtype == t.dtype, "%s: tensor '%s' is %s%s, expected %s%s", path.c_str(),
             name.c_str(), dtype_name(info.dtype), info.shape.str().c_str(), dtype_name(t.dtype), t.shape.str().c_str());
    std::vector<char> buf(info.nbytes);
    std::memcpy(buf.data(), info.data, info.nbytes);
    copy_from_host(t, buf.data());
  }
  for (const auto& info : f.tensors())
    MU_CHECK(expected.count(info.name), "%s: unexpected tensor '%s' in the training state", path.c_str(), info.name.c_str());
  return s;
}

}  // namespace mu
