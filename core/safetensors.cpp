// Reader checks, in order (each failure a mu::Error naming the file, the tensor where there
// is one, and the problem): open/stat errors (missing, directory, permission: errno text);
// file shorter than 8 bytes; header length 0, above kSafetensorsMaxHeader, or past the end
// of the file; JSON that is not well-formed (incl. bad UTF-8), not an object, or repeats a
// key; __metadata__ not an object of strings; per tensor: entry not an object, dtype /
// shape / data_offsets missing or of the wrong JSON type, unknown dtype, negative dims, more
// than kMaxDims dims, end < begin, numel * dtype size overflowing or != end - begin, range
// past the end of the data buffer; and finally overlapping ranges between tensors.
#include "core/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "core/fileio.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors I/O assumes a little-endian host (the format is little-endian)"
#endif

namespace mu {

namespace {

using json = nlohmann::json;

constexpr DType kAllDTypes[] = {DType::F32, DType::BF16, DType::F16, DType::F64, DType::I32,
                                DType::I64, DType::U16,  DType::U32, DType::U8};

std::string supported_dtypes() {
  std::string s;
  for (DType t : kAllDTypes) s += std::string(s.empty() ? "" : ", ") + dtype_name(t);
  return s;
}

const char* json_type(const json& j) { return j.type_name(); }

// A JSON integer >= 0 as uint64; false for floats, bools, negatives and anything else.
bool json_to_u64(const json& j, uint64_t* out) {
  if (j.is_number_unsigned()) {
    *out = j.get<uint64_t>();
    return true;
  }
  if (j.is_number_integer()) {  // signed storage: nlohmann uses it only for negative values
    int64_t v = j.get<int64_t>();
    if (v < 0) return false;
    *out = static_cast<uint64_t>(v);
    return true;
  }
  return false;
}

// Parses one tensor entry; `data_size` is the length of the byte buffer after the header.
StTensorInfo parse_entry(const std::string& path, const std::string& name, const json& e, uint64_t data_size) {
  const char* p = path.c_str();
  const char* n = name.c_str();
  MU_CHECK(e.is_object(), "safetensors file '%s': tensor '%s': entry must be a JSON object, got %s", p, n,
           json_type(e));
  for (const char* field : {"dtype", "shape", "data_offsets"})
    MU_CHECK(e.contains(field), "safetensors file '%s': tensor '%s': missing field \"%s\"", p, n, field);

  StTensorInfo info;
  info.name = name;
  const json& jd = e["dtype"];
  MU_CHECK(jd.is_string(), "safetensors file '%s': tensor '%s': \"dtype\" must be a string, got %s", p, n,
           json_type(jd));
  const std::string ds = jd.get<std::string>();
  MU_CHECK(dtype_from_name(ds, &info.dtype),
           "safetensors file '%s': tensor '%s': unsupported dtype \"%s\" (llm.mu reads %s)", p, n, ds.c_str(),
           supported_dtypes().c_str());

  const json& js = e["shape"];
  MU_CHECK(js.is_array(), "safetensors file '%s': tensor '%s': \"shape\" must be an array, got %s", p, n,
           json_type(js));
  MU_CHECK(js.size() <= static_cast<size_t>(kMaxDims),
           "safetensors file '%s': tensor '%s': shape has %zu dims, llm.mu supports at most %d", p, n, js.size(),
           kMaxDims);
  // numel * element size in u64 with overflow checks: a corrupt shape like [2^40, 2^40]
  // must be reported, not wrapped around into a plausible byte count. Zero dims are skipped
  // in the product so that Shape::numel() (int64) can never overflow on an accepted shape,
  // whatever order it multiplies in; a zero dim then makes the tensor empty.
  uint64_t nbytes = dtype_size(info.dtype);
  bool overflow = false, has_zero = false;
  for (size_t i = 0; i < js.size(); i++) {
    const json& d = js[i];
    MU_CHECK(d.is_number_integer(), "safetensors file '%s': tensor '%s': shape[%zu] must be an integer, got %s",
             p, n, i, d.dump().c_str());
    uint64_t v = 0;
    MU_CHECK(json_to_u64(d, &v), "safetensors file '%s': tensor '%s': shape[%zu] is negative (%lld)", p, n, i,
             static_cast<long long>(d.get<int64_t>()));
    info.shape.d[info.shape.ndim++] = static_cast<int64_t>(v > uint64_t(INT64_MAX) ? INT64_MAX : v);
    if (v == 0) has_zero = true;
    else overflow = overflow || __builtin_mul_overflow(nbytes, v, &nbytes);
  }
  MU_CHECK(!overflow && nbytes <= static_cast<uint64_t>(INT64_MAX),
           "safetensors file '%s': tensor '%s': shape %s of %s overflows 64-bit byte counts", p, n,
           js.dump().c_str(), ds.c_str());
  if (has_zero) nbytes = 0;

  const json& jo = e["data_offsets"];
  MU_CHECK(jo.is_array() && jo.size() == 2,
           "safetensors file '%s': tensor '%s': \"data_offsets\" must be an array [begin, end], got %s", p, n,
           jo.dump().c_str());
  uint64_t begin = 0, end = 0;
  MU_CHECK(json_to_u64(jo[0], &begin) && json_to_u64(jo[1], &end),
           "safetensors file '%s': tensor '%s': \"data_offsets\" must hold two non-negative integers, got %s", p,
           n, jo.dump().c_str());
  MU_CHECK(end >= begin, "safetensors file '%s': tensor '%s': data_offsets end %llu < begin %llu", p, n,
           static_cast<unsigned long long>(end), static_cast<unsigned long long>(begin));
  MU_CHECK(end - begin == nbytes,
           "safetensors file '%s': tensor '%s': data_offsets [%llu, %llu] span %llu bytes but %s %s needs %llu", p,
           n, static_cast<unsigned long long>(begin), static_cast<unsigned long long>(end),
           static_cast<unsigned long long>(end - begin), ds.c_str(), info.shape.str().c_str(),
           static_cast<unsigned long long>(nbytes));
  MU_CHECK(end <= data_size,
           "safetensors file '%s': tensor '%s': data_offsets [%llu, %llu] run past the end of the data buffer "
           "(%llu bytes; file truncated?)",
           p, n, static_cast<unsigned long long>(begin), static_cast<unsigned long long>(end),
           static_cast<unsigned long long>(data_size));
  info.offset = static_cast<size_t>(begin);
  info.nbytes = static_cast<size_t>(nbytes);
  return info;
}

}  // namespace

// ---- SafetensorsFile ------------------------------------------------------------------

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  const char* p = path.c_str();
  int fd = ::open(p, O_RDONLY | O_CLOEXEC);
  MU_CHECK(fd >= 0, "cannot open safetensors file '%s': %s", p, std::strerror(errno));
  struct stat st;
  int rc = ::fstat(fd, &st);
  int e = errno;
  if (rc != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    MU_CHECK(rc == 0, "cannot stat safetensors file '%s': %s", p, std::strerror(e));
    MU_FAIL("cannot read safetensors file '%s': it is %s, not a regular file", p,
            S_ISDIR(st.st_mode) ? "a directory" : "a special file");
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    MU_FAIL("safetensors file '%s' is %llu bytes, shorter than the 8-byte header length field", p,
            static_cast<unsigned long long>(size));
  }
  map_ = ::mmap(nullptr, static_cast<size_t>(size), PROT_READ, MAP_PRIVATE, fd, 0);
  e = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    MU_FAIL("cannot mmap safetensors file '%s' (%llu bytes): %s", p, static_cast<unsigned long long>(size),
            std::strerror(e));
  }
  map_size_ = static_cast<size_t>(size);
  // From here on a failed check must unmap: the destructor does not run for a throwing ctor.
  try {
    const char* base = static_cast<const char*>(map_);
    uint64_t n = 0;
    std::memcpy(&n, base, 8);  // little-endian host (checked at compile time)
    MU_CHECK(n > 0, "safetensors file '%s': header length is 0", p);
    MU_CHECK(n <= kSafetensorsMaxHeader, "safetensors file '%s': header length %llu exceeds the %llu-byte limit",
             p, static_cast<unsigned long long>(n), static_cast<unsigned long long>(kSafetensorsMaxHeader));
    MU_CHECK(n <= size - 8, "safetensors file '%s': header length %llu runs past the end of the %llu-byte file",
             p, static_cast<unsigned long long>(n), static_cast<unsigned long long>(size));
    const char* hdr = base + 8;
    const uint64_t data_size = size - 8 - n;

    // Duplicate top-level keys would otherwise be resolved silently (the last one wins).
    std::set<std::string> seen;
    std::string dup;
    json::parser_callback_t on_event = [&](int depth, json::parse_event_t ev, json& parsed) {
      if (ev == json::parse_event_t::key && depth == 1 && !seen.insert(parsed.get<std::string>()).second &&
          dup.empty())
        dup = parsed.get<std::string>();
      return true;
    };
    json h;
    try {
      h = json::parse(hdr, hdr + n, on_event);
    } catch (const json::exception& ex) {
      MU_FAIL("safetensors file '%s': header is not well-formed JSON: %s", p, ex.what());
    }
    MU_CHECK(h.is_object(), "safetensors file '%s': header must be a JSON object, got %s", p, json_type(h));
    MU_CHECK(dup.empty(), "safetensors file '%s': header names \"%s\" twice", p, dup.c_str());

    for (auto it = h.begin(); it != h.end(); ++it) {
      if (it.key() == "__metadata__") {
        MU_CHECK(it->is_object(), "safetensors file '%s': __metadata__ must be an object of strings, got %s", p,
                 json_type(*it));
        for (auto m = it->begin(); m != it->end(); ++m) {
          MU_CHECK(m->is_string(), "safetensors file '%s': __metadata__ value of \"%s\" must be a string, got %s",
                   p, m.key().c_str(), json_type(*m));
          metadata_[m.key()] = m->get<std::string>();
        }
        continue;
      }
      tensors_.push_back(parse_entry(path_, it.key(), *it, data_size));
    }

    std::sort(tensors_.begin(), tensors_.end(), [](const StTensorInfo& a, const StTensorInfo& b) {
      return a.offset != b.offset ? a.offset < b.offset : a.nbytes < b.nbytes;
    });
    // Sorted by begin, two non-empty ranges overlap exactly when one starts before the
    // furthest end seen so far. Empty tensors occupy no bytes and overlap nothing.
    size_t reach = 0;
    const StTensorInfo* reach_owner = nullptr;
    for (const StTensorInfo& t : tensors_) {
      if (t.nbytes == 0) continue;
      MU_CHECK(reach_owner == nullptr || t.offset >= reach,
               "safetensors file '%s': tensor '%s' (bytes [%zu, %zu)) overlaps tensor '%s' (ends at %zu)", p,
               t.name.c_str(), t.offset, t.offset + t.nbytes, reach_owner->name.c_str(), reach);
      reach = t.offset + t.nbytes;
      reach_owner = &t;
    }
    const char* data = hdr + n;
    for (size_t i = 0; i < tensors_.size(); i++) {
      tensors_[i].data = data + tensors_[i].offset;
      index_[tensors_[i].name] = i;
    }
  } catch (...) {
    release();
    throw;
  }
}

void SafetensorsFile::release() noexcept {
  if (map_ != nullptr) ::munmap(map_, map_size_);
  map_ = nullptr;
  map_size_ = 0;
}

SafetensorsFile::~SafetensorsFile() { release(); }

SafetensorsFile::SafetensorsFile(SafetensorsFile&& o) noexcept
    : path_(std::move(o.path_)),
      map_(o.map_),
      map_size_(o.map_size_),
      tensors_(std::move(o.tensors_)),
      index_(std::move(o.index_)),
      metadata_(std::move(o.metadata_)) {
  o.map_ = nullptr;
  o.map_size_ = 0;
}

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& o) noexcept {
  if (this != &o) {
    release();
    path_ = std::move(o.path_);
    map_ = o.map_;
    map_size_ = o.map_size_;
    tensors_ = std::move(o.tensors_);
    index_ = std::move(o.index_);
    metadata_ = std::move(o.metadata_);
    o.map_ = nullptr;
    o.map_size_ = 0;
  }
  return *this;
}

bool SafetensorsFile::has(const std::string& name) const { return index_.count(name) != 0; }

const StTensorInfo& SafetensorsFile::get(const std::string& name) const {
  auto it = index_.find(name);
  MU_CHECK(it != index_.end(), "safetensors file '%s' has no tensor '%s' (it holds %zu tensors)", path_.c_str(),
           name.c_str(), tensors_.size());
  return tensors_[it->second];
}

Tensor SafetensorsFile::tensor(const std::string& name) const {
  const StTensorInfo& t = get(name);
  MU_CHECK(reinterpret_cast<uintptr_t>(t.data) % dtype_size(t.dtype) == 0,
           "safetensors file '%s': tensor '%s' (%s) is not aligned to its %zu-byte elements in the file; "
           "use read_f32 or copy it",
           path_.c_str(), name.c_str(), dtype_name(t.dtype), dtype_size(t.dtype));
  // const_cast: Tensor is a mutable view by design; this one points at PROT_READ memory.
  return Tensor(const_cast<void*>(t.data), t.dtype, Device::CPU, t.shape);
}

void SafetensorsFile::read_f32(const std::string& name, Tensor dst) const {
  const StTensorInfo& t = get(name);
  MU_CHECK(dst.device == Device::CPU && dst.dtype == DType::F32,
           "safetensors file '%s': tensor '%s': read_f32 needs a CPU F32 destination, got %s", path_.c_str(),
           name.c_str(), dst.str().c_str());
  MU_CHECK(dst.numel() == t.shape.numel(),
           "safetensors file '%s': tensor '%s' has shape %s (%lld elements) but the destination is %s", path_.c_str(),
           name.c_str(), t.shape.str().c_str(), static_cast<long long>(t.shape.numel()), dst.str().c_str());
  const size_t n = static_cast<size_t>(t.shape.numel());
  if (n == 0) return;
  MU_CHECK(dst.data != nullptr, "read_f32: destination for tensor '%s' has no data", name.c_str());
  const size_t esize = dtype_size(t.dtype);
  if (reinterpret_cast<uintptr_t>(t.data) % esize == 0) {
    convert_to_f32(dst.f32(), t.data, t.dtype, n);
    return;
  }
  // Unaligned source: bounce through an aligned buffer (typed loads need alignment).
  constexpr size_t kChunk = 1 << 14;  // elements
  std::vector<uint64_t> buf(kChunk);  // 8-byte aligned, fits the widest dtype
  const char* src = static_cast<const char*>(t.data);
  for (size_t i = 0; i < n; i += kChunk) {
    size_t m = std::min(kChunk, n - i);
    std::memcpy(buf.data(), src + i * esize, m * esize);
    convert_to_f32(dst.f32() + i, buf.data(), t.dtype, m);
  }
}

// ---- SafetensorsWriter ----------------------------------------------------------------

void SafetensorsWriter::check_new_name(const std::string& name) const {
  MU_CHECK(!name.empty(), "SafetensorsWriter: empty tensor name");
  MU_CHECK(name != "__metadata__", "SafetensorsWriter: \"__metadata__\" is reserved and cannot name a tensor");
  for (const Entry& e : entries_)
    MU_CHECK(e.name != name, "SafetensorsWriter: tensor '%s' added twice", name.c_str());
}

static void check_src(const char* what, const std::string& name, const Tensor& t) {
  MU_CHECK(t.device == Device::CPU, "SafetensorsWriter::%s('%s'): tensor must be on the CPU, got %s", what,
           name.c_str(), t.str().c_str());
  for (int i = 0; i < t.shape.ndim; i++)
    MU_CHECK(t.shape.d[i] >= 0, "SafetensorsWriter::%s('%s'): negative dim in shape %s", what, name.c_str(),
             t.shape.str().c_str());
  MU_CHECK(t.data != nullptr || t.numel() == 0, "SafetensorsWriter::%s('%s'): tensor %s has no data", what,
           name.c_str(), t.str().c_str());
}

void SafetensorsWriter::add(const std::string& name, const Tensor& t) {
  check_new_name(name);
  check_src("add", name, t);
  entries_.push_back({name, t, t.dtype});
}

void SafetensorsWriter::add_f32_as(const std::string& name, const Tensor& f32_src, DType stored) {
  check_new_name(name);
  check_src("add_f32_as", name, f32_src);
  MU_CHECK(f32_src.dtype == DType::F32, "SafetensorsWriter::add_f32_as('%s'): source must be F32, got %s",
           name.c_str(), f32_src.str().c_str());
  MU_CHECK(stored == DType::F32 || stored == DType::BF16 || stored == DType::F16 || stored == DType::F64,
           "SafetensorsWriter::add_f32_as('%s'): cannot store float32 as %s (F32, BF16, F16 or F64)", name.c_str(),
           dtype_name(stored));
  entries_.push_back({name, f32_src, stored});
}

void SafetensorsWriter::set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }

void SafetensorsWriter::write(const std::string& path) const {
  // ordered_json keeps metadata first and tensors in add() order, which is easier to read.
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata_.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& kv : metadata_) m[kv.first] = kv.second;
    h["__metadata__"] = m;
  }
  uint64_t offset = 0;
  for (const Entry& e : entries_) {
    uint64_t nb = static_cast<uint64_t>(e.src.numel()) * dtype_size(e.stored);
    nlohmann::ordered_json j = nlohmann::ordered_json::object();
    j["dtype"] = dtype_name(e.stored);
    j["shape"] = e.src.shape.vec();
    j["data_offsets"] = {offset, offset + nb};
    h[e.name] = j;
    offset += nb;
  }
  std::string header;
  try {
    header = h.dump();
  } catch (const nlohmann::json::exception& ex) {  // e.g. a name that is not valid UTF-8
    MU_FAIL("cannot write safetensors file '%s': %s", path.c_str(), ex.what());
  }
  // Pad with spaces so the data buffer starts at a multiple of 8 (as the reference does).
  header.append((8 - header.size() % 8) % 8, ' ');
  const uint64_t n = header.size();

  AtomicFile f(path);
  f.write(&n, 8);  // little-endian host
  f.write(header.data(), header.size());
  std::vector<uint64_t> buf;  // conversion scratch, 8-byte aligned
  constexpr size_t kChunk = 1 << 20;  // elements per conversion step
  for (const Entry& e : entries_) {
    const size_t numel = static_cast<size_t>(e.src.numel());
    if (numel == 0) continue;
    if (e.stored == e.src.dtype) {
      f.write(e.src.data, e.src.nbytes());
      continue;
    }
    const size_t esize = dtype_size(e.stored);
    buf.resize(kChunk * esize / 8 + 1);
    const float* src = e.src.f32();
    for (size_t i = 0; i < numel; i += kChunk) {
      size_t m = std::min(kChunk, numel - i);
      convert_from_f32(buf.data(), e.stored, src + i, m);
      f.write(buf.data(), m * esize);
    }
  }
  f.commit();
}

}  // namespace mu
