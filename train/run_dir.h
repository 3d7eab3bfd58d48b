// A run directory (--out): checkpoints as ckpt_<step>/ each holding model.safetensors and
// state.safetensors, complete only once its COMPLETE marker exists (written last, atomically).
#pragma once
#include <cstdint>
#include <string>

namespace mu {

std::string checkpoint_dir(const std::string& out, int64_t step);  // out/ckpt_00000042
void make_dirs(const std::string& path);                            // mkdir -p, clear error
void mark_complete(const std::string& ckpt_dir, int64_t step);
bool is_complete(const std::string& ckpt_dir);
// Highest step with a complete checkpoint in `out`, or -1 (dir set to its path).
int64_t latest_checkpoint(const std::string& out, std::string* dir);
// What `out` already holds of a run: "" when nothing, else e.g. "checkpoints up to step 6
// (ckpt_00000006) and model.safetensors". A fresh run refuses such a directory: its pruning
// and a later --resume would mix the two runs.
std::string existing_run(const std::string& out);
// Removes complete checkpoints beyond the newest `keep`, and incomplete ones older than the newest complete.
void prune_checkpoints(const std::string& out, int keep);

}  // namespace mu
