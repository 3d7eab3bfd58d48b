// safetensors reader/writer and the atomic file helpers. Expected bytes are worked out by
// hand from the format spec and the IEEE layouts, never produced by the code under test;
// malformed files are assembled byte by byte so every reader check is exercised.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/fileio.h"
#include "core/safetensors.h"
#include "core/tensor.h"

using namespace mu;

namespace {

// A fresh directory under /tmp, removed with everything in it at the end of the test.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/mu_test_safetensors_XXXXXX";
    char* d = mkdtemp(tmpl);
    if (d == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = d;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }
  std::vector<std::string> list() const {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(path_)) names.push_back(e.path().filename().string());
    return names;
  }

 private:
  std::string path_;
};

std::string bytes_of(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

void put_raw(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// The 8-byte little-endian length, assembled byte by byte (independent of host order).
std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; i++) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

// A safetensors file from its parts: length field (the JSON's size unless given), JSON, data.
std::string make_file(const std::string& header_json, const std::string& data, int64_t length_field = -1) {
  uint64_t n = length_field < 0 ? header_json.size() : static_cast<uint64_t>(length_field);
  return le64(n) + header_json + data;
}

std::string hex_bytes(std::initializer_list<int> b) {
  std::string s;
  for (int v : b) s.push_back(static_cast<char>(v));
  return s;
}

// Opening `path` must throw mu::Error whose message contains every one of `needles`.
void expect_open_error(const std::string& path, std::initializer_list<std::string> needles) {
  try {
    SafetensorsFile f(path);
    ADD_FAILURE() << "opening " << path << " did not throw";
  } catch (const Error& e) {
    std::string msg = e.what();
    for (const std::string& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "missing '" << n << "' in: " << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "opening " << path << " threw a non-mu::Error: " << e.what();
  }
}

template <class T>
std::vector<T> span_of(const Tensor& t) {
  const T* p = static_cast<const T*>(t.data);
  return std::vector<T>(p, p + t.numel());
}

}  // namespace

// ---- round trips ------------------------------------------------------------------------

TEST(Safetensors, RoundTripDtypesShapesMetadata) {
  TempDir dir;
  // Awkward shapes (3x5, 7) and every dtype the engine stores. The order keeps each tensor
  // aligned to its element size (8-byte ones first, 1-byte last).
  HostTensor f64(DType::F64, {2, 3});
  HostTensor f32(DType::F32, {3, 5});
  HostTensor i32(DType::I32, {7});
  HostTensor i64(DType::I64, {2});
  HostTensor scalar(DType::F32, {});
  HostTensor empty(DType::F32, {0, 4});
  HostTensor bf(DType::BF16, {1, 3, 2});
  HostTensor u8(DType::U8, {5});
  for (int i = 0; i < 6; i++) static_cast<double*>(f64.t().data)[i] = 0.5 * i - 1.25;
  for (int i = 0; i < 15; i++) f32.f32()[i] = static_cast<float>(i) * 0.25f - 2.0f;
  for (int i = 0; i < 7; i++) i32.t().i32()[i] = -3 + i * 1000;
  static_cast<int64_t*>(i64.t().data)[0] = int64_t(1) << 40;
  static_cast<int64_t*>(i64.t().data)[1] = -7;
  scalar.f32()[0] = 42.5f;
  for (int i = 0; i < 6; i++) bf.t().bf()[i].bits = static_cast<uint16_t>(0x3f80 + i);
  for (int i = 0; i < 5; i++) static_cast<uint8_t*>(u8.t().data)[i] = static_cast<uint8_t>(250 + i);

  SafetensorsWriter w;
  w.add("f64", f64);
  w.add("layers.0.f32", f32);
  w.add("i32", i32);
  w.add("i64", i64);
  w.add("scalar", scalar);
  w.add("empty", empty);
  w.add("bf16", bf);
  w.add("u8", u8);
  w.set_metadata("format", "mu");
  w.set_metadata("config", "{\"hidden_size\": 64}");
  const std::string path = dir.file("rt.safetensors");
  w.write(path);

  // The data buffer starts at a multiple of 8 and the header padding is spaces.
  const std::string raw = bytes_of(path);
  ASSERT_GE(raw.size(), 8u);
  uint64_t n = 0;
  for (int i = 0; i < 8; i++) n |= static_cast<uint64_t>(static_cast<uint8_t>(raw[i])) << (8 * i);
  EXPECT_EQ((8 + n) % 8, 0u);
  EXPECT_EQ(raw[8], '{');
  size_t close = raw.find_last_of('}', 8 + n - 1);
  for (size_t i = close + 1; i < 8 + n; i++) EXPECT_EQ(raw[i], ' ');
  // 48 + 60 + 28 + 16 + 4 + 0 + 12 + 5 data bytes
  EXPECT_EQ(raw.size(), 8 + n + 173);

  SafetensorsFile f(path);
  EXPECT_EQ(f.path(), path);
  ASSERT_EQ(f.tensors().size(), 8u);
  // tensors() is in offset order, which is add() order here (empty sits between two others)
  const char* order[] = {"f64", "layers.0.f32", "i32", "i64", "scalar", "empty", "bf16", "u8"};
  for (int i = 0; i < 8; i++) EXPECT_EQ(f.tensors()[i].name, order[i]);
  EXPECT_EQ(f.metadata().size(), 2u);
  EXPECT_EQ(f.metadata().at("format"), "mu");
  EXPECT_EQ(f.metadata().at("config"), "{\"hidden_size\": 64}");

  EXPECT_EQ(f.tensor("f64").shape, Shape({2, 3}));
  EXPECT_EQ(f.tensor("f64").dtype, DType::F64);
  EXPECT_EQ(span_of<double>(f.tensor("f64")), (std::vector<double>{-1.25, -0.75, -0.25, 0.25, 0.75, 1.25}));
  Tensor t32 = f.tensor("layers.0.f32");
  EXPECT_EQ(t32.shape, Shape({3, 5}));
  EXPECT_EQ(t32.device, Device::CPU);
  EXPECT_EQ(std::memcmp(t32.data, f32.t().data, 60), 0);
  EXPECT_EQ(span_of<int32_t>(f.tensor("i32")), (std::vector<int32_t>{-3, 997, 1997, 2997, 3997, 4997, 5997}));
  EXPECT_EQ(span_of<int64_t>(f.tensor("i64")), (std::vector<int64_t>{int64_t(1) << 40, -7}));
  Tensor s = f.tensor("scalar");
  EXPECT_EQ(s.ndim(), 0);
  EXPECT_EQ(s.numel(), 1);
  EXPECT_EQ(s.f32()[0], 42.5f);
  EXPECT_EQ(f.get("empty").nbytes, 0u);
  EXPECT_EQ(f.get("empty").shape, Shape({0, 4}));
  EXPECT_EQ(f.get("bf16").shape, Shape({1, 3, 2}));
  EXPECT_EQ(f.get("bf16").dtype, DType::BF16);
  EXPECT_EQ(std::memcmp(f.get("bf16").data, bf.t().data, 12), 0);
  EXPECT_EQ(span_of<uint8_t>(f.tensor("u8")), (std::vector<uint8_t>{250, 251, 252, 253, 254}));
  EXPECT_TRUE(f.has("u8"));
  EXPECT_FALSE(f.has("u9"));

  // No temp file is left beside the result.
  EXPECT_EQ(dir.list(), std::vector<std::string>{"rt.safetensors"});

  // Moving keeps views valid (the mapping does not move).
  const void* before = f.get("u8").data;
  SafetensorsFile g(std::move(f));
  EXPECT_EQ(g.get("u8").data, before);
  EXPECT_EQ(span_of<uint8_t>(g.tensor("u8")).back(), 254);
}

TEST(Safetensors, EmptyWriterAndZeroTensorsFile) {
  TempDir dir;
  SafetensorsWriter w;
  w.write(dir.file("none.safetensors"));
  SafetensorsFile f(dir.file("none.safetensors"));
  EXPECT_TRUE(f.tensors().empty());
  EXPECT_TRUE(f.metadata().empty());
  // "{}" padded to 8 bytes: 8 (length) + 8 (header), no data.
  EXPECT_EQ(bytes_of(dir.file("none.safetensors")), le64(8) + "{}      ");
}

TEST(Safetensors, AddF32AsConvertsOnWrite) {
  TempDir dir;
  HostTensor src = HostTensor::f32({4});
  const float v[4] = {0.1f, -2.5f, 1.0f, 65504.0f};
  std::memcpy(src.f32(), v, sizeof v);
  SafetensorsWriter w;
  w.add_f32_as("as_bf16", src, DType::BF16);
  w.add_f32_as("as_f16", src, DType::F16);
  w.add_f32_as("as_f32", src, DType::F32);
  w.write(dir.file("conv.safetensors"));
  SafetensorsFile f(dir.file("conv.safetensors"));
  // bf16 by hand: 0.1f = 0x3dcccccd rounds up to 0x3dcd; -2.5 = 0xc0200000 -> 0xc020;
  // 65504 = 0x477fe000 -> 0x4780 (the dropped 0xe000 is above half, rounds up).
  Tensor b = f.tensor("as_bf16");
  ASSERT_EQ(b.dtype, DType::BF16);
  const uint16_t want_bf[4] = {0x3dcd, 0xc020, 0x3f80, 0x4780};
  for (int i = 0; i < 4; i++) EXPECT_EQ(b.bf()[i].bits, want_bf[i]) << i;
  // f16 by hand: 0.1 -> 0x2e66, -2.5 -> 0xc100, 1.0 -> 0x3c00, 65504 (largest half) -> 0x7bff.
  const uint16_t want_f16[4] = {0x2e66, 0xc100, 0x3c00, 0x7bff};
  const uint16_t* h = static_cast<const uint16_t*>(f.get("as_f16").data);
  for (int i = 0; i < 4; i++) EXPECT_EQ(h[i], want_f16[i]) << i;
  EXPECT_EQ(std::memcmp(f.get("as_f32").data, v, 16), 0);
}

// ---- hand-built files ---------------------------------------------------------------------

TEST(Safetensors, HandBuiltBytesReadBack) {
  TempDir dir;
  // F32 [1.0, -2.0] = 00 00 80 3f | 00 00 00 c0. The 54-byte JSON is padded with two
  // spaces (allowed) so that 8 + 56 puts the data at offset 64, aligned.
  std::string json = "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}  ";
  ASSERT_EQ(json.size(), 56u);
  const std::string data = hex_bytes({0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0});
  put_raw(dir.file("hand.safetensors"), make_file(json, data));
  // The same without padding: the data lands at offset 62, unaligned; read_f32 still works.
  put_raw(dir.file("hand_unpadded.safetensors"), make_file(json.substr(0, 54), data));
  {
    SafetensorsFile u(dir.file("hand_unpadded.safetensors"));
    HostTensor out = HostTensor::f32({2});
    u.read_f32("x", out);
    EXPECT_EQ(out.f32()[0], 1.0f);
    EXPECT_EQ(out.f32()[1], -2.0f);
    EXPECT_THROW(u.tensor("x"), Error);
  }
  SafetensorsFile f(dir.file("hand.safetensors"));
  Tensor x = f.tensor("x");
  ASSERT_EQ(x.shape, Shape({2}));
  EXPECT_EQ(x.f32()[0], 1.0f);
  EXPECT_EQ(x.f32()[1], -2.0f);
  HostTensor out = HostTensor::f32({2});
  f.read_f32("x", out);
  EXPECT_EQ(out.f32()[0], 1.0f);
  EXPECT_EQ(out.f32()[1], -2.0f);
}

TEST(Safetensors, ReadF32FromEveryDtype) {
  TempDir dir;
  // Each tensor holds values exactly representable in float32 (so comparisons are exact).
  std::string data;
  // BF16 [1.0, -2.5, 0.1015625]: 0x3f80, 0xc020, 0x3dd0, little-endian.
  data += hex_bytes({0x80, 0x3f, 0x20, 0xc0, 0xd0, 0x3d});  // [0, 6)
  // F16 [1.0, -2.0, 65504, 2^-24]: 0x3c00, 0xc000, 0x7bff, 0x0001.
  data += hex_bytes({0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b, 0x01, 0x00});  // [6, 14)
  data += hex_bytes({0, 0});  // gap (allowed), so the I32 below starts at 16 (aligned)
  // I32 [-1, 16777216]: ff ff ff ff | 00 00 00 01.
  data += hex_bytes({0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01});  // [16, 24)
  // F64 [0.5, -3.0]: 0x3fe0000000000000, 0xc008000000000000.
  data += hex_bytes({0, 0, 0, 0, 0, 0, 0xe0, 0x3f, 0, 0, 0, 0, 0, 0, 0x08, 0xc0});  // [24, 40)
  // U8 [0, 255]
  data += hex_bytes({0x00, 0xff});  // [40, 42)
  std::string json =
      "{\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[0,6]},"
      "\"h\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[6,14]},"
      "\"i\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[16,24]},"
      "\"d\":{\"dtype\":\"F64\",\"shape\":[1,2],\"data_offsets\":[24,40]},"
      "\"u\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[40,42]}}";
  json.append((8 - json.size() % 8) % 8, ' ');  // data at a multiple of 8: every view aligned
  put_raw(dir.file("all.safetensors"), make_file(json, data));
  SafetensorsFile f(dir.file("all.safetensors"));

  auto read = [&](const char* name, int64_t n) {
    HostTensor out = HostTensor::f32({n});
    f.read_f32(name, out);
    return std::vector<float>(out.f32(), out.f32() + n);
  };
  EXPECT_EQ(read("b", 3), (std::vector<float>{1.0f, -2.5f, 0.1015625f}));
  EXPECT_EQ(read("h", 4), (std::vector<float>{1.0f, -2.0f, 65504.0f, std::ldexp(1.0f, -24)}));
  EXPECT_EQ(read("i", 2), (std::vector<float>{-1.0f, 16777216.0f}));
  EXPECT_EQ(read("d", 2), (std::vector<float>{0.5f, -3.0f}));
  EXPECT_EQ(read("u", 2), (std::vector<float>{0.0f, 255.0f}));
  // Wrong element count: the error names the file and the tensor.
  HostTensor wrong = HostTensor::f32({3});
  try {
    f.read_f32("h", wrong);
    ADD_FAILURE() << "shape mismatch accepted";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("all.safetensors"), std::string::npos) << m;
    EXPECT_NE(m.find("'h'"), std::string::npos) << m;
  }
  HostTensor not_f32(DType::BF16, {4});
  EXPECT_THROW(f.read_f32("h", not_f32), Error);
}

TEST(Safetensors, UnalignedTensorsFromMixedDtypes) {
  // An odd-length BF16 tensor before an F32 one puts the F32 data at offset 6: the writer
  // keeps add() order, so the reader must cope (read_f32) or refuse (tensor()).
  TempDir dir;
  HostTensor b(DType::BF16, {3});
  HostTensor x = HostTensor::f32({2});
  x.f32()[0] = 1.0f;
  x.f32()[1] = -2.0f;
  SafetensorsWriter w;
  w.add("b", b);
  w.add("x", x);
  w.write(dir.file("mixed.safetensors"));
  SafetensorsFile f(dir.file("mixed.safetensors"));
  EXPECT_EQ(f.get("x").offset, 6u);
  try {
    f.tensor("x");
    ADD_FAILURE() << "misaligned view was returned";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("'x'"), std::string::npos) << m;
    EXPECT_NE(m.find("aligned"), std::string::npos) << m;
  }
  HostTensor out = HostTensor::f32({2});
  f.read_f32("x", out);
  EXPECT_EQ(out.f32()[0], 1.0f);
  EXPECT_EQ(out.f32()[1], -2.0f);
}

TEST(Safetensors, GetMissingTensorNamesFileAndTensor) {
  TempDir dir;
  SafetensorsWriter w;
  w.write(dir.file("e.safetensors"));
  SafetensorsFile f(dir.file("e.safetensors"));
  try {
    f.get("model.norm.weight");
    ADD_FAILURE() << "no throw";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("e.safetensors"), std::string::npos) << m;
    EXPECT_NE(m.find("model.norm.weight"), std::string::npos) << m;
  }
  HostTensor out = HostTensor::f32({1});
  EXPECT_THROW(f.read_f32("nope", out), Error);
}

TEST(Safetensors, WriterRejectsBadInput) {
  HostTensor t = HostTensor::f32({2});
  SafetensorsWriter w;
  w.add("a", t);
  EXPECT_THROW(w.add("a", t), Error);             // duplicate
  EXPECT_THROW(w.add("__metadata__", t), Error);  // reserved
  EXPECT_THROW(w.add("", t), Error);
  Tensor dev(t.t().data, DType::F32, Device::CUDA, Shape{2});
  EXPECT_THROW(w.add("gpu", dev), Error);
  HostTensor i(DType::I32, {2});
  EXPECT_THROW(w.add_f32_as("i", i, DType::BF16), Error);  // source must be F32
  EXPECT_THROW(w.add_f32_as("j", t, DType::I32), Error);   // no float -> int storage
  EXPECT_EQ(w.size(), 1u);
  // A directory that does not exist: the error names the path.
  try {
    w.write("/nonexistent_dir_for_mu_test/x.safetensors");
    ADD_FAILURE() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent_dir_for_mu_test/x.safetensors"), std::string::npos);
  }
}

// ---- malformed files: every reader check ----------------------------------------------------

TEST(Safetensors, RejectsMalformedFiles) {
  TempDir dir;
  // Each case: file name, bytes, substrings the message must contain (besides the file name).
  struct Case {
    const char* file;
    std::string bytes;
    std::vector<std::string> needles;
  };
  const std::string ok8 = std::string(8, '\0');
  auto entry = [](const std::string& name, const std::string& body) { return "\"" + name + "\":{" + body + "}"; };
  const std::vector<Case> cases = {
      {"short.st", std::string("\x01\x02\x03\x04\x05", 5), {"shorter than"}},
      {"zero_bytes.st", "", {"shorter than"}},
      {"hdr_zero.st", le64(0) + "{}", {"header length is 0"}},
      {"hdr_past_end.st", make_file("{}", "", 100), {"past the end"}},
      {"hdr_huge.st", make_file("{}", "", 200000000), {"100000000"}},
      {"not_json.st", make_file("{\"a\": ", ""), {"JSON"}},
      {"not_object.st", make_file("[1, 2]", ""), {"object", "array"}},
      {"bad_utf8.st", make_file("{\"bad\xff\":{}}", ""), {"JSON"}},
      {"dup_key.st",
       make_file("{" + entry("dup_t", "\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]") + "," +
                     entry("dup_t", "\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]") + "}",
                 "ab"),
       {"dup_t", "twice"}},
      {"entry_not_obj.st", make_file("{\"t_notobj\": [1]}", ""), {"t_notobj", "object"}},
      {"no_dtype.st", make_file("{" + entry("t_nodtype", "\"shape\":[1],\"data_offsets\":[0,4]") + "}", ok8),
       {"t_nodtype", "dtype"}},
      {"no_shape.st", make_file("{" + entry("t_noshape", "\"dtype\":\"F32\",\"data_offsets\":[0,4]") + "}", ok8),
       {"t_noshape", "shape"}},
      {"no_offsets.st", make_file("{" + entry("t_nooff", "\"dtype\":\"F32\",\"shape\":[1]") + "}", ok8),
       {"t_nooff", "data_offsets"}},
      {"dtype_int.st",
       make_file("{" + entry("t_dtypeint", "\"dtype\":5,\"shape\":[1],\"data_offsets\":[0,4]") + "}", ok8),
       {"t_dtypeint", "dtype", "string"}},
      {"shape_str.st",
       make_file("{" + entry("t_shapestr", "\"dtype\":\"F32\",\"shape\":\"2\",\"data_offsets\":[0,4]") + "}", ok8),
       {"t_shapestr", "shape", "array"}},
      {"shape_float.st",
       make_file("{" + entry("t_shapefl", "\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]") + "}", ok8),
       {"t_shapefl", "shape[0]", "integer"}},
      {"offsets_one.st",
       make_file("{" + entry("t_off1", "\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]") + "}", ok8),
       {"t_off1", "data_offsets"}},
      {"offsets_str.st",
       make_file("{" + entry("t_offstr", "\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\"0\",\"4\"]") + "}",
                 ok8),
       {"t_offstr", "data_offsets"}},
      {"offsets_neg.st",
       make_file("{" + entry("t_offneg", "\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]") + "}", ok8),
       {"t_offneg", "data_offsets", "non-negative"}},
      {"f8.st",
       make_file("{" + entry("t_f8", "\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]") + "}", ok8),
       {"t_f8", "F8_E4M3", "unsupported"}},
      {"neg_dim.st",
       make_file("{" + entry("t_negdim", "\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,4]") + "}", ok8),
       {"t_negdim", "negative"}},
      {"seven_dims.st",
       make_file("{" + entry("t_7d", "\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1],\"data_offsets\":[0,1]") + "}",
                 ok8),
       {"t_7d", "7 dims"}},
      {"end_lt_begin.st",
       make_file("{" + entry("t_rev", "\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,2]") + "}", ok8),
       {"t_rev", "end 2 < begin 4"}},
      {"size_mismatch.st",
       make_file("{" + entry("t_size", "\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]") + "}", ok8),
       {"t_size", "span 8 bytes", "needs 12"}},
      // 2^30 * 2^30 * 2^30 * 4 bytes overflows u64; it must not wrap into a small count.
      {"overflow.st",
       make_file("{" +
                     entry("t_ovf",
                           "\"dtype\":\"F32\",\"shape\":[1073741824,1073741824,1073741824],\"data_offsets\":[0,0]") +
                     "}",
                 ok8),
       {"t_ovf", "overflow"}},
      // 2^62 * 4 wraps to exactly 0 in u64: a naive check would accept [0, 0].
      {"overflow_to_zero.st",
       make_file("{" + entry("t_ovf0", "\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,0]") +
                     "}",
                 ok8),
       {"t_ovf0", "overflow"}},
      {"past_data.st",
       make_file("{" + entry("t_past", "\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]") + "}", ok8),
       {"t_past", "past the end of the data"}},
      {"empty_past_data.st",
       make_file("{" + entry("t_emptypast", "\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[64,64]") + "}", ok8),
       {"t_emptypast", "past the end of the data"}},
      {"overlap.st",
       make_file("{" + entry("t_first", "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]") + "," +
                     entry("t_second", "\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]") + "}",
                 ok8),
       {"t_first", "t_second", "overlaps"}},
      {"meta_not_str.st", make_file("{\"__metadata__\":{\"step_key\":5}}", ""), {"__metadata__", "step_key", "string"}},
      {"meta_not_obj.st", make_file("{\"__metadata__\":[\"a\"]}", ""), {"__metadata__", "object"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.file);
    const std::string path = dir.file(c.file);
    put_raw(path, c.bytes);
    std::vector<std::string> needles = c.needles;
    needles.push_back(path);
    try {
      SafetensorsFile f(path);
      ADD_FAILURE() << "accepted malformed file " << c.file;
    } catch (const Error& e) {
      std::string msg = e.what();
      for (const std::string& n : needles)
        EXPECT_NE(msg.find(n), std::string::npos) << "missing '" << n << "' in: " << msg;
    } catch (const std::exception& e) {
      ADD_FAILURE() << c.file << " threw a non-mu::Error: " << e.what();
    }
  }
}

TEST(Safetensors, AcceptsEdgeCasesOfTheFormat) {
  TempDir dir;
  // Zero-size tensors anywhere (even at the very end of the buffer, even sharing an offset
  // with a real tensor), extra fields, gaps, trailing bytes, space padding, an empty header.
  std::string json =
      "{\"__metadata__\":{},"
      "\"z0\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
      "\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2],\"extra\":true},"
      "\"z1\":{\"dtype\":\"BF16\",\"shape\":[3,0,2],\"data_offsets\":[1,1]},"
      "\"b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[4,5]},"
      "\"z2\":{\"dtype\":\"I64\",\"shape\":[1073741824,0,4096],\"data_offsets\":[6,6]}}    ";
  put_raw(dir.file("edge.st"), make_file(json, "xy..zQ"));
  SafetensorsFile f(dir.file("edge.st"));
  EXPECT_EQ(f.tensors().size(), 5u);
  EXPECT_EQ(f.get("z1").nbytes, 0u);
  EXPECT_EQ(f.get("z2").shape.numel(), 0);
  EXPECT_EQ(f.tensor("a").numel(), 2);
  EXPECT_EQ(static_cast<const char*>(f.get("b").data)[0], 'z');
  HostTensor none = HostTensor::f32({0});
  f.read_f32("z1", none);  // nothing to do, must not throw

  put_raw(dir.file("empty_hdr.st"), make_file("{}", ""));
  EXPECT_TRUE(SafetensorsFile(dir.file("empty_hdr.st")).tensors().empty());
}

TEST(Safetensors, RejectsMissingFileAndDirectory) {
  TempDir dir;
  expect_open_error(dir.file("missing.safetensors"), {dir.file("missing.safetensors"), "No such file"});
  expect_open_error(dir.path(), {dir.path(), "directory"});
}

TEST(Safetensors, RejectsUnreadableFile) {
  TempDir dir;
  if (geteuid() == 0) {
    GTEST_SKIP() << "running as root: permission bits are not enforced, cannot test EACCES";
  }
  const std::string p = dir.file("locked.safetensors");
  put_raw(p, make_file("{}", ""));
  ASSERT_EQ(chmod(p.c_str(), 0), 0);
  expect_open_error(p, {p, "Permission denied"});
}

// ---- fileio ----------------------------------------------------------------------------------

TEST(FileIO, AtomicFileWithoutCommitLeavesOldFileAndNoTemp) {
  TempDir dir;
  const std::string p = dir.file("ckpt.bin");
  put_raw(p, "old contents");
  {
    AtomicFile f(p);
    EXPECT_TRUE(file_exists(f.temp_path()));
    f.write("new contents that must never appear", 35);
    EXPECT_EQ(bytes_of(p), "old contents");  // nothing visible before commit
  }  // destroyed without commit
  EXPECT_EQ(bytes_of(p), "old contents");
  EXPECT_EQ(dir.list(), std::vector<std::string>{"ckpt.bin"});

  // An exception between writes unwinds the same way.
  try {
    AtomicFile f(p);
    f.write("partial", 7);
    throw Error("simulated failure mid-write");
  } catch (const Error&) {
  }
  EXPECT_EQ(bytes_of(p), "old contents");
  EXPECT_EQ(dir.list(), std::vector<std::string>{"ckpt.bin"});
}

TEST(FileIO, AtomicFileCommitReplaces) {
  TempDir dir;
  const std::string p = dir.file("out.bin");
  put_raw(p, "old");
  {
    AtomicFile f(p);
    EXPECT_EQ(f.temp_path(), p + ".tmp." + std::to_string(getpid()));
    f.write("ab", 2);
    f.write("cde", 3);
    EXPECT_EQ(f.bytes_written(), 5u);
    f.commit();
    EXPECT_THROW(f.write("x", 1), Error);  // the file is closed
    EXPECT_THROW(f.commit(), Error);
  }
  EXPECT_EQ(bytes_of(p), "abcde");
  EXPECT_EQ(dir.list(), std::vector<std::string>{"out.bin"});

  write_file_atomic(p, "xyz", 3);
  EXPECT_EQ(read_text_file(p), "xyz");
  write_file_atomic(dir.file("empty.bin"), nullptr, 0);
  EXPECT_EQ(read_text_file(dir.file("empty.bin")), "");
}

TEST(FileIO, ErrorsNameThePath) {
  TempDir dir;
  const std::string missing = dir.file("no_such_config.json");
  EXPECT_FALSE(file_exists(missing));
  EXPECT_TRUE(file_exists(dir.path()));
  try {
    read_text_file(missing);
    ADD_FAILURE() << "no throw";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find(missing), std::string::npos) << m;
    EXPECT_NE(m.find("No such file"), std::string::npos) << m;
  }
  try {
    read_text_file(dir.path());
    ADD_FAILURE() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("directory"), std::string::npos) << e.what();
  }
  // Writing into a missing directory fails cleanly and creates nothing.
  EXPECT_THROW(write_file_atomic(dir.file("sub/x.bin"), "a", 1), Error);
  EXPECT_TRUE(dir.list().empty());
  EXPECT_EQ(dir_name("a/b/c.st"), "a/b");
  EXPECT_EQ(dir_name("c.st"), ".");
  EXPECT_EQ(dir_name("/c.st"), "/");
  fsync_dir(dir.path());
  fsync_dir("");
  EXPECT_THROW(fsync_dir(dir.file("nope")), Error);
}
