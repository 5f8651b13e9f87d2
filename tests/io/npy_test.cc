#include "core/io/npy.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/common/random.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mia::io {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// The value of `result`, or a recorded failure and T() (dereferencing a failed
// StatusOr would abort the whole test binary).
template <typename T>
T Get(absl::StatusOr<T> result) {
  if (!result.ok()) {
    ADD_FAILURE() << result.status();
    return T();
  }
  return *std::move(result);
}

template <typename T>
NpyArray Make(DType dtype, std::vector<int64_t> shape, const std::vector<T>& values) {
  NpyArray array;
  array.dtype = dtype;
  array.item_size = sizeof(T);
  array.shape = std::move(shape);
  array.data.resize(values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(array.data.data(), values.data(), array.data.size());
  return array;
}

// A .npy image with a hand-written header dict (padded like NumPy) and raw data.
std::string Npy(const std::string& dict, const std::string& data, int major = 1) {
  std::string header = dict;
  const size_t preamble = major == 1 ? 10 : 12;
  while ((preamble + header.size() + 1) % 64 != 0) header.push_back(' ');
  header.push_back('\n');
  std::string out("\x93NUMPY", 6);
  out.push_back(static_cast<char>(major));
  out.push_back(0);
  const size_t len = header.size();
  out.push_back(static_cast<char>(len & 0xFF));
  out.push_back(static_cast<char>((len >> 8) & 0xFF));
  if (major != 1) {
    out.push_back(static_cast<char>((len >> 16) & 0xFF));
    out.push_back(static_cast<char>((len >> 24) & 0xFF));
  }
  return out + header + data;
}

template <typename T>
std::string Bytes(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

std::string BigEndianBytes(const std::string& little, size_t unit) {
  std::string out = little;
  for (size_t i = 0; i + unit <= out.size(); i += unit) {
    for (size_t a = i, b = i + unit - 1; a < b; ++a, --b) std::swap(out[a], out[b]);
  }
  return out;
}

void ExpectSameArray(const NpyArray& a, const NpyArray& b) {
  EXPECT_EQ(a.dtype, b.dtype);
  EXPECT_EQ(a.item_size, b.item_size);
  EXPECT_EQ(a.shape, b.shape);
  EXPECT_EQ(a.data, b.data);
}

void ExpectRoundTrip(const NpyArray& array) {
  const std::string bytes = SerializeNpy(array);
  // Version 1.0, data aligned to 64 bytes as NumPy writes it.
  ASSERT_GE(bytes.size(), 10u);
  EXPECT_EQ(bytes[6], 1);
  const size_t header_len = static_cast<uint8_t>(bytes[8]) | (static_cast<uint8_t>(bytes[9]) << 8);
  EXPECT_EQ((10 + header_len) % 64, 0u);
  EXPECT_EQ(bytes[10 + header_len - 1], '\n');
  absl::StatusOr<NpyArray> parsed = ParseNpy(bytes, "rt.npy");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ExpectSameArray(*parsed, array);
}

TEST(NpyRoundTrip, EveryDType) {
  ExpectRoundTrip(NpyArray::FromBool({4}, {1, 0, 1, 1}));
  ExpectRoundTrip(Make<int8_t>(DType::kInt8, {3}, {-128, 0, 127}));
  ExpectRoundTrip(Make<int16_t>(DType::kInt16, {2}, {-32768, 32767}));
  ExpectRoundTrip(Make<int32_t>(DType::kInt32, {2, 2}, {INT32_MIN, -1, 0, INT32_MAX}));
  ExpectRoundTrip(NpyArray::FromInt64({3}, {INT64_MIN, 0, INT64_MAX}));
  ExpectRoundTrip(Make<uint8_t>(DType::kUInt8, {3}, {0, 7, 255}));
  ExpectRoundTrip(Make<uint16_t>(DType::kUInt16, {2}, {0, 65535}));
  ExpectRoundTrip(Make<uint32_t>(DType::kUInt32, {2}, {0, UINT32_MAX}));
  ExpectRoundTrip(Make<uint64_t>(DType::kUInt64, {2}, {0, UINT64_MAX}));
  ExpectRoundTrip(Make<uint16_t>(DType::kFloat16, {3}, {0x3C00, 0xC000, 0x7C00}));
  ExpectRoundTrip(NpyArray::FromFloat({2, 1}, {1.5f, -0.0f}));
  ExpectRoundTrip(NpyArray::FromDouble({1, 2, 2}, {0.1, -1e300, 5e-324, 3.0}));
  ExpectRoundTrip(NpyArray::FromString("hello"));
}

TEST(NpyRoundTrip, ScalarEmptyAndStrings) {
  const NpyArray scalar = NpyArray::FromDouble({}, {2.5});
  ExpectRoundTrip(scalar);
  EXPECT_EQ(scalar.num_elements(), 1);
  EXPECT_THAT(SerializeNpy(scalar), HasSubstr("'shape': ()"));

  const NpyArray empty = NpyArray::FromFloat({0}, {});
  ExpectRoundTrip(empty);
  EXPECT_EQ(empty.num_elements(), 0);
  ExpectRoundTrip(NpyArray::FromInt64({2, 0, 3}, {}));

  // Unicode beyond ASCII survives FromString / ToString.
  const std::string text = "na\xC3\xAFve \xE2\x82\xAC \xF0\x9F\x98\x80";
  const NpyArray unicode = NpyArray::FromString(text);
  EXPECT_EQ(unicode.dtype, DType::kUnicode);
  EXPECT_EQ(unicode.item_size, 4u * 9);
  ExpectRoundTrip(unicode);
  absl::StatusOr<std::string> back = ParseNpy(SerializeNpy(unicode), "u.npy")->ToString("u");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, text);

  // NumPy gives '' the dtype <U1.
  const NpyArray blank = NpyArray::FromString("");
  EXPECT_EQ(blank.item_size, 4u);
  EXPECT_EQ(Get(blank.ToString("blank")), "");
}

TEST(NpySerialize, HeaderAsNumPyWritesIt) {
  const std::string bytes = SerializeNpy(NpyArray::FromDouble({2, 3}, std::vector<double>(6)));
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  EXPECT_THAT(bytes, HasSubstr("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }"));
  EXPECT_EQ(bytes.size(), 128u + 48u);
  EXPECT_THAT(SerializeNpy(NpyArray::FromBool({1}, {1})), HasSubstr("'descr': '|b1'"));
  EXPECT_THAT(SerializeNpy(NpyArray::FromString("abc")), HasSubstr("'descr': '<U3'"));
  EXPECT_THAT(SerializeNpy(NpyArray::FromInt64({5}, std::vector<int64_t>(5))),
              HasSubstr("'shape': (5,)"));
}

TEST(NpyParse, HeaderVariants) {
  const std::string data = Bytes<double>({1.0, 2.0, 3.0});
  for (const std::string& dict : {
           std::string("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }"),
           std::string("{'shape': (3,), 'descr': '<f8', 'fortran_order': False}"),
           std::string("{\"fortran_order\":False,\"shape\":(3,),\"descr\":\"<f8\"}"),
           std::string("  {  'descr' :  '<f8' ,  'fortran_order' : False , 'shape' : ( 3 , ) , }"),
           std::string("{'descr': '<f8', 'fortran_order': False, 'shape': (3L,)}"),
           std::string("{'descr': '=f8', 'fortran_order': False, 'shape': (3,)}"),
       }) {
    for (int major : {1, 2, 3}) {
      absl::StatusOr<NpyArray> a = ParseNpy(Npy(dict, data, major), "v.npy");
      ASSERT_TRUE(a.ok()) << dict << " v" << major << ": " << a.status();
      EXPECT_EQ(a->shape, std::vector<int64_t>{3});
      EXPECT_EQ(Get(a->ToDouble("v")), (std::vector<double>{1.0, 2.0, 3.0}));
    }
  }
  // One-byte types take any byte-order character.
  for (const char* descr : {"|i1", "<i1", "i1"}) {
    absl::StatusOr<NpyArray> a = ParseNpy(
        Npy(absl::StrCat("{'descr': '", descr, "', 'fortran_order': False, 'shape': (2,)}"),
            std::string("\xFF\x05", 2)),
        "i1.npy");
    ASSERT_TRUE(a.ok()) << descr << ": " << a.status();
    EXPECT_EQ(Get(a->ToInt64("i1")), (std::vector<int64_t>{-1, 5}));
  }
}

TEST(NpyParse, BigEndianToNative) {
  const std::string f8 = BigEndianBytes(Bytes<double>({1.0, -2.5, 1e300}), 8);
  absl::StatusOr<NpyArray> a =
      ParseNpy(Npy("{'descr': '>f8', 'fortran_order': False, 'shape': (3,), }", f8), "be.npy");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(Get(a->ToDouble("be")), (std::vector<double>{1.0, -2.5, 1e300}));

  const std::string i4 = BigEndianBytes(Bytes<int32_t>({1, -2, 70000}), 4);
  a = ParseNpy(Npy("{'descr': '>i4', 'fortran_order': False, 'shape': (3,), }", i4), "be.npy");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(Get(a->ToInt64("be")), (std::vector<int64_t>{1, -2, 70000}));

  const std::string f2 = BigEndianBytes(Bytes<uint16_t>({0x3C00, 0xC100}), 2);
  a = ParseNpy(Npy("{'descr': '>f2', 'fortran_order': False, 'shape': (2,), }", f2), "be.npy");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(Get(a->ToDouble("be")), (std::vector<double>{1.0, -2.5}));

  const std::string u = BigEndianBytes(Bytes<uint32_t>({'o', 'k', 0}), 4);
  a = ParseNpy(Npy("{'descr': '>U3', 'fortran_order': False, 'shape': (), }", u), "be.npy");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(Get(a->ToString("be")), "ok");
}

TEST(NpyParse, FortranOrderToC) {
  // C order 0..5 of shape (2, 3) is stored column by column: 0 3 1 4 2 5.
  absl::StatusOr<NpyArray> a =
      ParseNpy(Npy("{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3), }",
                   Bytes<int32_t>({0, 3, 1, 4, 2, 5})),
               "f.npy");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(Get(a->ToInt64("f")), (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));

  // Shape (2, 3, 4): element (i, j, k) = 12i + 4j + k sits at Fortran index i + 2j + 6k.
  std::vector<int32_t> fortran(24);
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 3; ++j) {
      for (int k = 0; k < 4; ++k) fortran[i + 2 * j + 6 * k] = 12 * i + 4 * j + k;
    }
  }
  a = ParseNpy(Npy("{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3, 4), }", Bytes(fortran)),
               "f.npy");
  ASSERT_TRUE(a.ok()) << a.status();
  std::vector<int64_t> expected(24);
  for (int i = 0; i < 24; ++i) expected[i] = i;
  EXPECT_EQ(Get(a->ToInt64("f")), expected);

  // Big-endian and Fortran together.
  a = ParseNpy(Npy("{'descr': '>f8', 'fortran_order': True, 'shape': (2, 2), }",
                   BigEndianBytes(Bytes<double>({1, 3, 2, 4}), 8)),
               "f.npy");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(Get(a->ToDouble("f")), (std::vector<double>{1, 2, 3, 4}));
}

TEST(NpyConvert, Float16ByHand) {
  const NpyArray half =
      Make<uint16_t>(DType::kFloat16, {9},
                     {0x0000, 0x8000, 0x3C00, 0xC000, 0x3555, 0x7BFF, 0x0001, 0x03FF, 0xFC00});
  absl::StatusOr<std::vector<double>> d = half.ToDouble("h");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ((*d)[0], 0.0);
  EXPECT_TRUE(std::signbit((*d)[1]));
  EXPECT_EQ((*d)[2], 1.0);
  EXPECT_EQ((*d)[3], -2.0);
  EXPECT_EQ((*d)[4], 0.333251953125);
  EXPECT_EQ((*d)[5], 65504.0);
  EXPECT_EQ((*d)[6], std::ldexp(1.0, -24));
  EXPECT_EQ((*d)[7], std::ldexp(1023.0, -24));
  EXPECT_EQ((*d)[8], -std::numeric_limits<double>::infinity());
  const NpyArray nan = Make<uint16_t>(DType::kFloat16, {1}, {0x7E00});
  EXPECT_TRUE(std::isnan((Get(nan.ToFloat("n")))[0]));
}

TEST(NpyConvert, ToDoubleEveryType) {
  const std::vector<double> want = {0, 1, 2};
  std::vector<NpyArray> arrays = {
      Make<int8_t>(DType::kInt8, {3}, {0, 1, 2}),
      Make<int16_t>(DType::kInt16, {3}, {0, 1, 2}),
      Make<int32_t>(DType::kInt32, {3}, {0, 1, 2}),
      Make<int64_t>(DType::kInt64, {3}, {0, 1, 2}),
      Make<uint8_t>(DType::kUInt8, {3}, {0, 1, 2}),
      Make<uint16_t>(DType::kUInt16, {3}, {0, 1, 2}),
      Make<uint32_t>(DType::kUInt32, {3}, {0, 1, 2}),
      Make<uint64_t>(DType::kUInt64, {3}, {0, 1, 2}),
      Make<uint16_t>(DType::kFloat16, {3}, {0x0000, 0x3C00, 0x4000}),
      Make<float>(DType::kFloat32, {3}, {0, 1, 2}),
      Make<double>(DType::kFloat64, {3}, {0, 1, 2}),
  };
  for (const NpyArray& a : arrays) {
    absl::StatusOr<std::vector<double>> d = a.ToDouble("x");
    ASSERT_TRUE(d.ok()) << DTypeName(a.dtype) << ": " << d.status();
    EXPECT_EQ(*d, want) << DTypeName(a.dtype);
    absl::StatusOr<std::vector<float>> f = a.ToFloat("x");
    ASSERT_TRUE(f.ok()) << DTypeName(a.dtype);
    EXPECT_EQ(*f, (std::vector<float>{0, 1, 2})) << DTypeName(a.dtype);
  }
  EXPECT_EQ(Get(NpyArray::FromBool({2}, {1, 0}).ToDouble("b")), (std::vector<double>{1, 0}));
  EXPECT_EQ(Get(Make<int8_t>(DType::kInt8, {1}, {-5}).ToDouble("x")), std::vector<double>{-5});
  EXPECT_EQ(Get(Make<int64_t>(DType::kInt64, {1}, {INT64_MIN}).ToDouble("x")),
            std::vector<double>{-9223372036854775808.0});

  absl::Status s = NpyArray::FromString("abc").ToDouble("labels").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("array 'labels'"));
  EXPECT_THAT(s.message(), HasSubstr("unicode"));
}

TEST(NpyConvert, ToInt64) {
  EXPECT_EQ(Get(Make<uint64_t>(DType::kUInt64, {2}, {0, uint64_t{INT64_MAX}}).ToInt64("u")),
            (std::vector<int64_t>{0, INT64_MAX}));
  absl::Status s =
      Make<uint64_t>(DType::kUInt64, {3}, {1, 2, uint64_t{INT64_MAX} + 1}).ToInt64("ids").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("array 'ids'"));
  EXPECT_THAT(s.message(), HasSubstr("element 2"));
  EXPECT_THAT(s.message(), HasSubstr("INT64_MAX"));
  EXPECT_THAT(s.message(), Not(HasSubstr("9223372036854775808")));  // no values in messages

  for (const NpyArray& a : {NpyArray::FromDouble({1}, {1.0}), NpyArray::FromFloat({1}, {1.0f}),
                            Make<uint16_t>(DType::kFloat16, {1}, {0x3C00})}) {
    s = a.ToInt64("labels").status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(s.message(), HasSubstr("float"));
    EXPECT_THAT(s.message(), HasSubstr("'labels'"));
  }
  EXPECT_EQ(Get(NpyArray::FromBool({3}, {0, 1, 1}).ToInt64("b")), (std::vector<int64_t>{0, 1, 1}));
  EXPECT_EQ(Get(Make<int16_t>(DType::kInt16, {2}, {-7, 300}).ToInt64("i")),
            (std::vector<int64_t>{-7, 300}));
}

TEST(NpyConvert, ToBool) {
  EXPECT_EQ(Get(NpyArray::FromBool({3}, {1, 0, 1}).ToBool("m")), (std::vector<uint8_t>{1, 0, 1}));
  EXPECT_EQ(Get(NpyArray::FromInt64({3}, {0, 1, 1}).ToBool("m")), (std::vector<uint8_t>{0, 1, 1}));
  EXPECT_EQ(Get(Make<uint8_t>(DType::kUInt8, {2}, {1, 0}).ToBool("m")),
            (std::vector<uint8_t>{1, 0}));

  absl::Status s = NpyArray::FromInt64({4}, {0, 1, 1, 2}).ToBool("members").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("array 'members'"));
  EXPECT_THAT(s.message(), HasSubstr("element 3"));
  EXPECT_THAT(s.message(), HasSubstr("not 0 or 1"));

  // A bool array whose byte is 77 (a corrupt file): refused without echoing it.
  NpyArray corrupt = NpyArray::FromBool({2}, {1, 1});
  corrupt.data[1] = 77;
  s = corrupt.ToBool("members").status();
  EXPECT_THAT(s.message(), HasSubstr("element 1"));
  EXPECT_THAT(s.message(), Not(HasSubstr("77")));
  EXPECT_FALSE(corrupt.ToDouble("members").ok());

  EXPECT_FALSE(NpyArray::FromDouble({1}, {1.0}).ToBool("m").ok());
  EXPECT_FALSE(Make<int8_t>(DType::kInt8, {1}, {-1}).ToBool("m").ok());
}

TEST(NpyConvert, ToString) {
  EXPECT_EQ(Get(NpyArray::FromString("target").ToString("name")), "target");
  // A 1-element <U5 array holding "ab" (NUL padded).
  const NpyArray padded = Make<uint32_t>(DType::kUnicode, {1}, {'a', 'b', 0, 0, 0});
  NpyArray fixed = padded;
  fixed.item_size = 20;
  EXPECT_EQ(Get(fixed.ToString("p")), "ab");

  NpyArray two = Make<uint32_t>(DType::kUnicode, {2}, {'a', 'b'});
  two.item_size = 4;
  absl::Status s = two.ToString("names").status();
  EXPECT_THAT(s.message(), HasSubstr("holds 2 strings"));
  s = NpyArray::FromDouble({}, {1.0}).ToString("name").status();
  EXPECT_THAT(s.message(), HasSubstr("float64"));
  NpyArray bad = Make<uint32_t>(DType::kUnicode, {}, {'a', 0xD800});
  bad.item_size = 8;
  s = bad.ToString("name").status();
  EXPECT_THAT(s.message(), HasSubstr("character 1"));
}

TEST(NpyConvert, ToStringsAndFromStrings) {
  // A 1-d array of texts: <U{longest}, shorter ones NUL padded, any Unicode.
  const std::vector<std::string> texts = {"na\xC3\xAFve", "", "\xF0\x9F\x98\x80 ok", "abc"};
  const NpyArray a = NpyArray::FromStrings(texts);
  EXPECT_EQ(a.dtype, DType::kUnicode);
  EXPECT_EQ(a.shape, std::vector<int64_t>{4});
  EXPECT_EQ(a.item_size, 4u * 5);
  ExpectRoundTrip(a);
  EXPECT_THAT(SerializeNpy(a), HasSubstr("'descr': '<U5'"));
  EXPECT_EQ(Get(ParseNpy(SerializeNpy(a), "t.npy")->ToStrings("texts")), texts);
  // Any shape, in C order; an empty list is <U1 with no element.
  NpyArray grid = Make<uint32_t>(DType::kUnicode, {2, 2}, {'a', 0, 'b', 'c', 'd', 0, 0, 0});
  grid.item_size = 8;
  EXPECT_EQ(Get(grid.ToStrings("g")), (std::vector<std::string>{"a", "bc", "d", ""}));
  EXPECT_TRUE(Get(NpyArray::FromStrings({}).ToStrings("e")).empty());
  // Errors name the element and the character.
  NpyArray bad = Make<uint32_t>(DType::kUnicode, {2}, {'a', 'b', 'c', 0x110000});
  bad.item_size = 8;
  EXPECT_THAT(bad.ToStrings("texts").status().message(),
              AllOf(HasSubstr("texts"), HasSubstr("element 1: character 1")));
  EXPECT_THAT(NpyArray::FromDouble({1}, {1.0}).ToStrings("texts").status().message(),
              HasSubstr("expected strings"));
}

TEST(NpyConvert, InconsistentArrayIsAnError) {
  NpyArray a = NpyArray::FromDouble({3}, {1, 2});
  absl::Status s = a.ToDouble("x").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("does not match shape"));
  a = NpyArray::FromDouble({2}, {1, 2});
  a.item_size = 4;
  EXPECT_FALSE(a.ToDouble("x").ok());
  a = NpyArray::FromDouble({-1}, {});
  EXPECT_FALSE(a.ToDouble("x").ok());
}

// Error cases -----------------------------------------------------------

absl::Status ParseError(const std::string& bytes, const ReadLimits& limits = {}) {
  return ParseNpy(bytes, "bad.npy", limits).status();
}

void ExpectError(const std::string& bytes, absl::StatusCode code, const std::string& what) {
  const absl::Status s = ParseError(bytes);
  EXPECT_EQ(s.code(), code) << s;
  EXPECT_THAT(s.message(), HasSubstr("bad.npy: ")) << s;
  EXPECT_THAT(s.message(), HasSubstr(what)) << s;
}

std::string Dict(const std::string& descr, const std::string& shape,
                 const char* fortran = "False") {
  return absl::StrCat("{'descr': '", descr, "', 'fortran_order': ", fortran, ", 'shape': ", shape,
                      ", }");
}

TEST(NpyErrors, BadPreamble) {
  ExpectError("", absl::StatusCode::kInvalidArgument, "bad magic");
  ExpectError("PK\x03\x04 not npy", absl::StatusCode::kInvalidArgument, "bad magic");
  ExpectError(std::string("\x93NUMPY", 6), absl::StatusCode::kInvalidArgument, "truncated");
  std::string v = Npy(Dict("<f8", "(0,)"), "");
  v[6] = 4;
  ExpectError(v, absl::StatusCode::kInvalidArgument, "format version 4.0");
  // Header length pointing beyond the data.
  std::string longer = Npy(Dict("<f8", "(0,)"), "");
  longer[9] = 0x7F;
  ExpectError(longer, absl::StatusCode::kInvalidArgument, "runs past the end of the data");
  ExpectError(longer, absl::StatusCode::kInvalidArgument, "at offset 8");
}

TEST(NpyErrors, ShapeAndSize) {
  ExpectError(Npy(Dict("<f8", "(4611686018427387904, 4611686018427387904)"), ""),
              absl::StatusCode::kInvalidArgument, "overflows");
  ExpectError(Npy(Dict("<f8", "(99999999999999999999,)"), ""), absl::StatusCode::kInvalidArgument,
              "does not fit in int64");
  ExpectError(Npy(Dict("<f8", "(1099511627776,)"), ""), absl::StatusCode::kResourceExhausted,
              "above the limit");
  ReadLimits small;
  small.max_array_bytes = 1 << 20;
  const absl::Status s = ParseError(Npy(Dict("<f8", "(131073,)"), ""), small);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  ExpectError(Npy(Dict("<f8", "(3,)"), Bytes<double>({1, 2})), absl::StatusCode::kInvalidArgument,
              "truncated: shape (3,) needs 24 bytes but 16");
  ExpectError(Npy(Dict("<f8", "(1,)"), Bytes<double>({1, 2})), absl::StatusCode::kInvalidArgument,
              "8 unexpected bytes after the array data");
  ExpectError(Npy(Dict("<f8", "(-1,)"), ""), absl::StatusCode::kInvalidArgument,
              "negative dimension");
  ExpectError(Npy(Dict("<f8", "(3)"), Bytes<double>({1, 2, 3})), absl::StatusCode::kInvalidArgument,
              "trailing comma");
  ExpectError(Npy(Dict("<f8", "[3]"), Bytes<double>({1, 2, 3})), absl::StatusCode::kInvalidArgument,
              "'shape' must be a tuple");
  // An empty axis makes the array empty whatever the other axes say.
  absl::StatusOr<NpyArray> empty = ParseNpy(Npy(Dict("<f8", "(0, 1099511627776)"), ""), "e");
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->num_elements(), 0);
}

TEST(NpyErrors, RefusedDescrs) {
  ExpectError(Npy(Dict("|O", "(1,)"), "12345678"), absl::StatusCode::kInvalidArgument,
              "object arrays (descr '|O') are refused");
  ExpectError(Npy(Dict("<c16", "(1,)"), ""), absl::StatusCode::kInvalidArgument,
              "unsupported descr '<c16'");
  ExpectError(Npy(Dict("|S5", "(1,)"), ""), absl::StatusCode::kInvalidArgument,
              "unsupported descr '|S5'");
  ExpectError(Npy(Dict("<f16", "(1,)"), ""), absl::StatusCode::kInvalidArgument,
              "unsupported descr '<f16'");
  ExpectError(Npy(Dict("|f8", "(1,)"), ""), absl::StatusCode::kInvalidArgument,
              "unsupported descr '|f8'");
  ExpectError(Npy(Dict("<M8[ns]", "(1,)"), ""), absl::StatusCode::kInvalidArgument,
              "unsupported descr");
  ExpectError(Npy("{'descr': [('a', '<i4'), ('b', '<f8')], 'fortran_order': False, "
                  "'shape': (1,), }",
                  std::string(12, '\0')),
              absl::StatusCode::kInvalidArgument, "structured dtypes");
}

TEST(NpyErrors, MalformedDict) {
  ExpectError(Npy("{'descr': '<f8', 'fortran_order': False}", ""),
              absl::StatusCode::kInvalidArgument, "no 'shape' key");
  ExpectError(Npy("{'descr': '<f8', 'shape': (0,), 'shape': (0,), 'fortran_order': False}", ""),
              absl::StatusCode::kInvalidArgument, "duplicate key 'shape'");
  ExpectError(Npy("{'descr': '<f8', 'fortran_order': False, 'shape': (0,), 'x': 1}", ""),
              absl::StatusCode::kInvalidArgument, "unexpected key 'x'");
  ExpectError(Npy("{'descr': '<f8', 'fortran_order': 0, 'shape': (0,)}", ""),
              absl::StatusCode::kInvalidArgument, "True or False");
  ExpectError(Npy("{'descr': '<f8', 'fortran_order': False, 'shape': (0,)} junk", ""),
              absl::StatusCode::kInvalidArgument, "unexpected text after the header dict");
  ExpectError(Npy("{'descr': '<f8 'fortran_order': False, 'shape': (0,)}", ""),
              absl::StatusCode::kInvalidArgument, "");
  ExpectError(Npy("{'descr': '<f8', 'fortran_order': False 'shape': (0,)}", ""),
              absl::StatusCode::kInvalidArgument, "expected ',' or '}'");
  ExpectError(Npy("'descr': '<f8'", ""), absl::StatusCode::kInvalidArgument, "must start with '{'");
  ExpectError(Npy("{'descr': '<f\\x38', 'fortran_order': False, 'shape': (0,)}", ""),
              absl::StatusCode::kInvalidArgument, "escape sequences");
}

TEST(NpyErrors, TruncationAtEveryLength) {
  const std::string valid = SerializeNpy(NpyArray::FromDouble({2, 2}, {1.0, 2.0, 3.0, 4.0}));
  ASSERT_TRUE(ParseNpy(valid, "t.npy").ok());
  for (size_t len = 0; len < valid.size(); ++len) {
    const absl::Status s = ParseNpy(valid.substr(0, len), "t.npy").status();
    EXPECT_FALSE(s.ok()) << "length " << len;
    EXPECT_THAT(s.message(), HasSubstr("t.npy: ")) << len;
  }
}

TEST(NpyErrors, RandomCorruptionNeverCrashes) {
  const std::string valid = SerializeNpy(NpyArray::FromFloat({2, 3}, {1, 2, 3, 4, 5, 6}));
  Rng rng(20240611);
  int errors = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string bytes = valid;
    const int flips = 1 + static_cast<int>(rng.UniformInt(3));
    for (int f = 0; f < flips; ++f) {
      // Mostly the header, where the parser does its work.
      const size_t at = rng.UniformInt(2) == 0 ? rng.UniformInt(80) : rng.UniformInt(bytes.size());
      bytes[at] = static_cast<char>(rng.UniformInt(256));
    }
    absl::StatusOr<NpyArray> a = ParseNpy(bytes, "c.npy");
    if (!a.ok()) {
      ++errors;
      EXPECT_EQ(a.status().code() == absl::StatusCode::kInvalidArgument ||
                    a.status().code() == absl::StatusCode::kResourceExhausted,
                true)
          << a.status();
    } else {
      EXPECT_EQ(a->data.size(), static_cast<size_t>(a->num_elements()) * a->item_size);
    }
  }
  EXPECT_GT(errors, 100);
}

// ParseNpyBuffer is ParseNpy on a buffer it takes: the same arrays and
// errors, and the array's data is that very buffer (a large member is held
// once while it is read, not twice).
TEST(NpyParseBuffer, SameAsParseNpyWithoutACopy) {
  std::vector<double> values(1000);
  for (size_t i = 0; i < values.size(); ++i) values[i] = 0.5 * static_cast<double>(i) - 7;
  const std::vector<std::string> images = {
      SerializeNpy(Make(DType::kFloat64, {10, 100}, values)),
      Npy("{'descr': '>f8', 'fortran_order': True, 'shape': (2, 2), }",
          BigEndianBytes(Bytes<double>({1, 3, 2, 4}), 8)),
      Npy("{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }", Bytes<int32_t>({1, 2, 3}),
          2)};
  for (const std::string& image : images) {
    const NpyArray want = Get(ParseNpy(image, "a.npy"));
    std::vector<uint8_t> buffer(image.begin(), image.end());
    const NpyArray got = Get(ParseNpyBuffer(std::move(buffer), "a.npy"));
    EXPECT_EQ(got.dtype, want.dtype);
    EXPECT_EQ(got.item_size, want.item_size);
    EXPECT_EQ(got.shape, want.shape);
    EXPECT_EQ(got.data, want.data);
  }
  // Native order, C order: no conversion, so the data is the buffer itself.
  const std::string image = SerializeNpy(Make(DType::kFloat64, {10, 100}, values));
  std::vector<uint8_t> buffer(image.begin(), image.end());
  const uint8_t* storage = buffer.data();
  const NpyArray got = Get(ParseNpyBuffer(std::move(buffer), "a.npy"));
  EXPECT_EQ(got.data.data(), storage);
  EXPECT_EQ(Get(got.ToDouble("a")), values);

  // Errors are ParseNpy's, word for word.
  for (const size_t cut : {size_t{3}, size_t{40}, image.size() - 1}) {
    const std::string part = image.substr(0, cut);
    absl::StatusOr<NpyArray> a = ParseNpy(part, "cut.npy");
    absl::StatusOr<NpyArray> b =
        ParseNpyBuffer(std::vector<uint8_t>(part.begin(), part.end()), "cut.npy");
    ASSERT_FALSE(a.ok());
    EXPECT_EQ(b.status(), a.status()) << cut;
  }
}

}  // namespace
}  // namespace mia::io
