#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/common/random.h"
#include "core/io/npy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/io/zeros_npz.h"

namespace mia::io {
namespace {

using ::testing::HasSubstr;

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

constexpr char kPython[] = "/usr/bin/python3";

// Test files ---------------------------------------------------------------

// A fresh folder for the running test under MIA_TEST_TMPDIR (set by ctest)
// or GoogleTest's temporary folder; removed when the test passes, kept for
// inspection when it fails.
class ScratchDir {
 public:
  ScratchDir() {
    const char* env = std::getenv("MIA_TEST_TMPDIR");
    std::string base = env != nullptr && env[0] != '\0' ? env : testing::TempDir();
    if (!base.empty() && base.back() == '/') base.pop_back();
    const testing::TestInfo* info = testing::UnitTest::GetInstance()->current_test_info();
    path_ =
        absl::StrCat(base, "/npz_test_", info->test_suite_name(), "_", info->name(), "_", getpid());
    const std::string command = absl::StrCat("rm -rf '", path_, "' && mkdir -p '", path_, "'");
    EXPECT_EQ(std::system(command.c_str()), 0) << command;
  }
  ~ScratchDir() {
    if (!testing::Test::HasFailure()) {
      // Best effort: a leftover folder only costs disk space.
      if (std::system(absl::StrCat("rm -rf '", path_, "'").c_str()) != 0) return;
    }
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

// Runs a command; true when it exits 0.
bool RunCommand(const std::string& command) {
  const int rc = std::system(command.c_str());
  return rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0;
}

// NumPy is a test dependency (python3-numpy): its absence is a failure, not a skip.
bool RequireNumPy() {
  const bool ok = access(kPython, X_OK) == 0 &&
                  RunCommand(absl::StrCat(kPython, " -c 'import numpy' >/dev/null 2>&1"));
  if (!ok) {
    ADD_FAILURE() << kPython
                  << " with numpy is required by the interop tests; run scripts/install-deps.sh";
  }
  return ok;
}

// Zip building by hand, for hostile archives ------------------------------

void Put16(std::string* out, uint32_t v) {
  out->push_back(static_cast<char>(v & 0xFF));
  out->push_back(static_cast<char>((v >> 8) & 0xFF));
}
void Put32(std::string* out, uint32_t v) {
  Put16(out, v & 0xFFFF);
  Put16(out, v >> 16);
}
void Put64(std::string* out, uint64_t v) {
  Put32(out, static_cast<uint32_t>(v));
  Put32(out, static_cast<uint32_t>(v >> 32));
}
void Set16(std::string* out, size_t at, uint32_t v) {
  (*out)[at] = static_cast<char>(v & 0xFF);
  (*out)[at + 1] = static_cast<char>((v >> 8) & 0xFF);
}
void Set32(std::string* out, size_t at, uint32_t v) {
  Set16(out, at, v & 0xFFFF);
  Set16(out, at + 2, v >> 16);
}
uint32_t Get32(const std::string& b, size_t at) {
  uint32_t v = 0;
  for (int k = 3; k >= 0; --k) v = (v << 8) | static_cast<uint8_t>(b[at + k]);
  return v;
}

uint32_t Crc(const std::string& data) {
  return static_cast<uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size())));
}

std::string RawDeflate(const std::string& data) {
  z_stream zs;
  std::memset(&zs, 0, sizeof(zs));
  EXPECT_EQ(deflateInit2(&zs, 9, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&zs, data.size()) + 16, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

// One member of a hand-built archive. Fields left unset are derived from
// `content` (the uncompressed .npy bytes).
struct ZipMember {
  ZipMember(std::string name_in, std::string content_in, bool deflate_in = false)
      : name(std::move(name_in)), content(std::move(content_in)), deflate(deflate_in) {}

  std::string name;
  std::string content;
  bool deflate;
  uint16_t flags = 0;
  int method = -1;               // -1: 0 or 8 per `deflate`
  int64_t crc = -1;              // -1: CRC of content
  int64_t declared_size = -1;    // -1: content size
  std::string payload_override;  // raw bytes to store instead of the compressed content
  bool zip64_local = false;      // sizes in a ZIP64 extra of the local header
  bool zip64_central = false;    // sizes and offset in a ZIP64 extra of the central entry
};

struct Layout {
  std::string bytes;
  std::vector<size_t> data_offsets;  // where each member's payload starts
  size_t central_offset = 0;
  size_t end_offset = 0;  // classic end record
};

Layout BuildZip(const std::vector<ZipMember>& members, bool zip64_end = false) {
  Layout layout;
  std::string& out = layout.bytes;
  std::string central;
  for (const ZipMember& m : members) {
    const std::string payload = !m.payload_override.empty() ? m.payload_override
                                : m.deflate                 ? RawDeflate(m.content)
                                                            : m.content;
    const uint32_t method = m.method >= 0 ? m.method : (m.deflate ? 8 : 0);
    const uint32_t crc = m.crc >= 0 ? static_cast<uint32_t>(m.crc) : Crc(m.content);
    const uint64_t size = m.declared_size >= 0 ? m.declared_size : m.content.size();
    const uint64_t offset = out.size();

    std::string local_extra;
    if (m.zip64_local) {
      Put16(&local_extra, 1);
      Put16(&local_extra, 16);
      Put64(&local_extra, size);
      Put64(&local_extra, payload.size());
    }
    Put32(&out, 0x04034b50);
    Put16(&out, m.zip64_local ? 45 : 20);
    Put16(&out, m.flags);
    Put16(&out, method);
    Put32(&out, 0);  // time, date
    Put32(&out, crc);
    Put32(&out, m.zip64_local ? 0xFFFFFFFF : static_cast<uint32_t>(payload.size()));
    Put32(&out, m.zip64_local ? 0xFFFFFFFF : static_cast<uint32_t>(size));
    Put16(&out, m.name.size());
    Put16(&out, local_extra.size());
    out += m.name + local_extra;
    layout.data_offsets.push_back(out.size());
    out += payload;

    std::string central_extra;
    if (m.zip64_central) {
      Put16(&central_extra, 1);
      Put16(&central_extra, 24);
      Put64(&central_extra, size);
      Put64(&central_extra, payload.size());
      Put64(&central_extra, offset);
    }
    Put32(&central, 0x02014b50);
    Put16(&central, 45);
    Put16(&central, m.zip64_central ? 45 : 20);
    Put16(&central, m.flags);
    Put16(&central, method);
    Put32(&central, 0);
    Put32(&central, crc);
    Put32(&central, m.zip64_central ? 0xFFFFFFFF : static_cast<uint32_t>(payload.size()));
    Put32(&central, m.zip64_central ? 0xFFFFFFFF : static_cast<uint32_t>(size));
    Put16(&central, m.name.size());
    Put16(&central, central_extra.size());
    Put16(&central, 0);
    Put16(&central, 0);
    Put16(&central, 0);
    Put32(&central, 0);
    Put32(&central, m.zip64_central ? 0xFFFFFFFF : static_cast<uint32_t>(offset));
    central += m.name + central_extra;
  }
  layout.central_offset = out.size();
  out += central;
  if (zip64_end) {
    const uint64_t record = out.size();
    Put32(&out, 0x06064b50);
    Put64(&out, 44);
    Put16(&out, 45);
    Put16(&out, 45);
    Put32(&out, 0);
    Put32(&out, 0);
    Put64(&out, members.size());
    Put64(&out, members.size());
    Put64(&out, central.size());
    Put64(&out, layout.central_offset);
    Put32(&out, 0x07064b50);
    Put32(&out, 0);
    Put64(&out, record);
    Put32(&out, 1);
  }
  layout.end_offset = out.size();
  Put32(&out, 0x06054b50);
  Put32(&out, 0);
  Put16(&out, zip64_end ? 0xFFFF : members.size());
  Put16(&out, zip64_end ? 0xFFFF : members.size());
  Put32(&out, zip64_end ? 0xFFFFFFFF : static_cast<uint32_t>(central.size()));
  Put32(&out, zip64_end ? 0xFFFFFFFF : static_cast<uint32_t>(layout.central_offset));
  Put16(&out, 0);
  return layout;
}

std::string SmallNpy() { return SerializeNpy(NpyArray::FromDouble({3}, {1.0, 2.0, 3.0})); }

absl::Status ParseError(const std::string& bytes, const ReadLimits& limits = {}) {
  return ParseNpz(bytes, "bad.npz", limits).status();
}

// Asserts an InvalidArgument error naming the archive and containing `what`.
void ExpectError(const std::string& bytes, const std::string& what,
                 absl::StatusCode code = absl::StatusCode::kInvalidArgument) {
  const absl::Status s = ParseError(bytes);
  EXPECT_EQ(s.code(), code) << s;
  EXPECT_THAT(s.message(), HasSubstr("bad.npz: ")) << s;
  EXPECT_THAT(s.message(), HasSubstr(what)) << s;
}

NpyMap SampleArrays() {
  NpyMap arrays;
  arrays["scores"] = NpyArray::FromDouble({2, 3}, {0.5, -1.25, 3.0, 1e-300, 7.0, -0.0});
  arrays["labels"] = NpyArray::FromBool({4}, {1, 0, 0, 1});
  arrays["ids"] = NpyArray::FromInt64({3}, {INT64_MIN, 0, INT64_MAX});
  arrays["name"] = NpyArray::FromString("target-model");
  arrays["logits"] = NpyArray::FromFloat({2, 2}, {1.5f, 2.5f, -3.5f, 4.5f});
  return arrays;
}

void ExpectSameMaps(const NpyMap& a, const NpyMap& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, array] : a) {
    auto it = b.find(name);
    ASSERT_NE(it, b.end()) << name;
    EXPECT_EQ(array.dtype, it->second.dtype) << name;
    EXPECT_EQ(array.item_size, it->second.item_size) << name;
    EXPECT_EQ(array.shape, it->second.shape) << name;
    EXPECT_EQ(array.data, it->second.data) << name;
  }
}

// Round trips ---------------------------------------------------------------

TEST(Npz, WriteReadRoundTrip) {
  const ScratchDir scratch;
  const std::string& dir = scratch.path();
  const NpyMap arrays = SampleArrays();
  for (bool compress : {false, true}) {
    const std::string path = absl::StrCat(dir, compress ? "/packed.npz" : "/plain.npz");
    ASSERT_TRUE(WriteNpz(path, arrays, compress).ok());
    EXPECT_FALSE(Exists(absl::StrCat(path, ".tmp.", getpid())));
    absl::StatusOr<NpyMap> read = ReadNpz(path);
    ASSERT_TRUE(read.ok()) << read.status();
    ExpectSameMaps(arrays, *read);
    absl::StatusOr<NpyMap> via = ReadArrays(path);
    ASSERT_TRUE(via.ok()) << via.status();
    ExpectSameMaps(arrays, *via);
    // Writing again replaces the file in place.
    ASSERT_TRUE(WriteNpz(path, {{"x", NpyArray::FromInt64({1}, {5})}}, compress).ok());
    EXPECT_EQ(ReadNpz(path)->size(), 1u);
  }
  const std::string stored = ReadFile(dir + "/plain.npz");
  EXPECT_EQ(stored.substr(0, 4), "PK\x03\x04");
}

// Members decoded on several threads (ReadNpz's `threads`) give the same
// arrays as one thread, byte for byte, for stored and deflated archives with
// members large enough that the mapped input is handed back as it is read; and
// a corrupt archive gives the same first error (in member order) either way.
TEST(Npz, ParallelReadGivesTheSameArraysAsSerial) {
  const ScratchDir scratch;
  const std::string& dir = scratch.path();
  NpyMap arrays = SampleArrays();
  Rng rng(11);
  std::vector<float> big(3 << 20);  // 12 MiB: several release chunks
  for (float& v : big) v = static_cast<float>(rng.Normal());
  arrays["big"] = NpyArray::FromFloat({3, 1 << 20}, big);
  std::vector<int64_t> mid(300000);
  for (int64_t& v : mid) v = static_cast<int64_t>(rng.UniformInt(1000));
  arrays["mid"] = NpyArray::FromInt64({300000}, mid);
  for (bool compress : {false, true}) {
    const std::string path = absl::StrCat(dir, compress ? "/packed.npz" : "/plain.npz");
    ASSERT_TRUE(WriteNpz(path, arrays, compress).ok());
    const NpyMap serial = Get(ReadNpz(path, {}, 1));
    ExpectSameMaps(arrays, serial);
    for (int threads : {2, 3, 8}) {
      SCOPED_TRACE(absl::StrCat(compress ? "deflated" : "stored", ", threads ", threads));
      ExpectSameMaps(serial, Get(ReadNpz(path, {}, threads)));
      ExpectSameMaps(serial, Get(ReadArrays(path, {}, threads)));
    }
  }
  // Corrupt the last byte of every member's data: each member fails its CRC
  // (or its stream); the error reported is the first member's, as serially.
  const std::string valid = ReadFile(dir + "/packed.npz");
  std::string bytes = valid;
  size_t at = 0;
  while (Get32(bytes, at) == 0x04034b50) {
    const size_t name_len = static_cast<unsigned char>(bytes[at + 26]) |
                            (static_cast<size_t>(static_cast<unsigned char>(bytes[at + 27])) << 8);
    const size_t size = Get32(bytes, at + 18);
    const size_t data = at + 30 + name_len;
    bytes[data + size - 1] = static_cast<char>(bytes[data + size - 1] ^ 0x55);
    at = data + size;
  }
  WriteFile(dir + "/bad.npz", bytes);
  const absl::Status serial = ReadNpz(dir + "/bad.npz", {}, 1).status();
  ASSERT_FALSE(serial.ok());
  EXPECT_THAT(serial.message(), HasSubstr("member 'big.npy'")) << serial;
  for (int threads : {2, 8}) {
    EXPECT_EQ(ReadNpz(dir + "/bad.npz", {}, threads).status(), serial) << threads;
  }
}

TEST(Npz, EmptyArchiveAndEmptyArrays) {
  const ScratchDir scratch;
  const std::string& dir = scratch.path();
  ASSERT_TRUE(WriteNpz(dir + "/none.npz", {}, false).ok());
  absl::StatusOr<NpyMap> none = ReadNpz(dir + "/none.npz");
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->empty());
  NpyMap arrays;
  arrays["empty"] = NpyArray::FromFloat({0, 4}, {});
  arrays["scalar"] = NpyArray::FromDouble({}, {42.0});
  for (bool compress : {false, true}) {
    ASSERT_TRUE(WriteNpz(dir + "/e.npz", arrays, compress).ok());
    absl::StatusOr<NpyMap> read = ReadNpz(dir + "/e.npz");
    ASSERT_TRUE(read.ok()) << read.status();
    ExpectSameMaps(arrays, *read);
  }
}

TEST(Npz, NpyDirectory) {
  const ScratchDir scratch;
  const std::string& dir = scratch.path();
  const std::string folder = dir + "/arrays";
  ASSERT_EQ(mkdir(folder.c_str(), 0755), 0);
  const NpyMap arrays = SampleArrays();
  for (const auto& [name, array] : arrays) {
    ASSERT_TRUE(WriteNpy(absl::StrCat(folder, "/", name, ".npy"), array).ok());
  }
  WriteFile(folder + "/README.txt", "not an array");
  absl::StatusOr<NpyMap> read = ReadNpyDir(folder);
  ASSERT_TRUE(read.ok()) << read.status();
  ExpectSameMaps(arrays, *read);
  absl::StatusOr<NpyMap> via = ReadArrays(folder + "/");
  ASSERT_TRUE(via.ok()) << via.status();
  ExpectSameMaps(arrays, *via);

  // A broken file is named in the error.
  WriteFile(folder + "/broken.npy", "\x93NUMPY garbage");
  const absl::Status s = ReadNpyDir(folder).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("broken.npy"));

  ReadLimits few;
  few.max_members = 2;
  EXPECT_EQ(ReadNpyDir(folder, few).status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(Npz, MissingPathsAreNotFound) {
  const ScratchDir scratch;
  const std::string& dir = scratch.path();
  for (const absl::Status& s :
       {ReadNpz(dir + "/nope.npz").status(), ReadNpyDir(dir + "/nope").status(),
        ReadArrays(dir + "/nope.npz").status()}) {
    EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
    EXPECT_THAT(s.message(), HasSubstr(dir + "/nope"));
  }
  EXPECT_EQ(ReadNpz(dir).status().code(), absl::StatusCode::kInvalidArgument);  // a folder
  // A FIFO is refused at once: opening it must not wait for a writer.
  ASSERT_EQ(mkfifo((dir + "/fifo.npz").c_str(), 0600), 0);
  const absl::Status fifo = ReadNpz(dir + "/fifo.npz").status();
  EXPECT_EQ(fifo.code(), absl::StatusCode::kInvalidArgument) << fifo;
  EXPECT_THAT(fifo.message(), HasSubstr("not a regular file"));
  EXPECT_EQ(WriteNpz(dir + "/no/such/dir.npz", SampleArrays(), false).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(WriteNpy(dir + "/no/such/dir.npy", NpyArray::FromInt64({1}, {1})).code(),
            absl::StatusCode::kNotFound);
}

// The code ReadNpz gives `path` as a user without root's override of file
// permissions (a child process; as root it drops to nobody first).
int CodeReadingAsAnUnprivilegedUser(const std::string& path) {
  const pid_t child = fork();
  if (child == 0) {
    if (geteuid() == 0 && setuid(65534) != 0) _exit(100);
    _exit(static_cast<int>(ReadNpz(path).status().code()));
  }
  int wstatus = 0;
  if (child < 0 || waitpid(child, &wstatus, 0) != child || !WIFEXITED(wstatus)) return -1;
  return WEXITSTATUS(wstatus);
}

// Issue 10: every errno became INVALID_ARGUMENT; an unreadable file is a
// permission problem, not bad input (and the CLI's exit code says so).
TEST(Npz, UnreadableFileIsPermissionDenied) {
  const ScratchDir scratch;
  const std::string path = scratch.path() + "/locked.npz";
  ASSERT_TRUE(WriteNpz(path, SampleArrays(), false).ok());
  ASSERT_EQ(chmod(path.c_str(), 0), 0);
  EXPECT_EQ(CodeReadingAsAnUnprivilegedUser(path),
            static_cast<int>(absl::StatusCode::kPermissionDenied));
}

TEST(Npz, WriterRefusesInconsistentArrays) {
  const ScratchDir scratch;
  const std::string& dir = scratch.path();
  NpyMap arrays;
  arrays["bad"] = NpyArray::FromDouble({5}, {1.0});
  const absl::Status s = WriteNpz(dir + "/bad.npz", arrays, true);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("'bad'"));
  EXPECT_FALSE(Exists(dir + "/bad.npz"));
  EXPECT_FALSE(WriteNpy(dir + "/bad.npy", arrays["bad"]).ok());
}

// Interop with NumPy -------------------------------------------------------

constexpr char kMakeScript[] = R"PY(
import os, sys
import numpy as np
out = sys.argv[1]
arrays = {
    'f32': np.array([[1.5, -2.25, 0.375], [np.inf, -0.0, 65504.0]], dtype=np.float32),
    'f64': np.array([0.1, -1e300, 5e-324, 3.141592653589793], dtype=np.float64),
    'f64be': np.array([1.0, -2.5, 1e300, 0.1], dtype='>f8'),
    'fortran': np.asfortranarray(np.arange(24, dtype=np.int32).reshape(2, 3, 4)),
    'fortran_f8': np.asfortranarray(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])),
    'flags': np.array([True, False, True, True]),
    'i64': np.array([-2**63, 2**63 - 1, 0, -1], dtype=np.int64),
    'u8': np.array([0, 255, 7], dtype=np.uint8),
    'f16': np.array([1.0, -2.0, 0.5, 65504.0, 2.0**-24, np.inf], dtype=np.float16),
    'text': np.array(['hello', 'ab', ''], dtype='<U5'),
    'name': np.array('model'),
    'scalar': np.array(2.5),
    'empty': np.zeros((0, 3), dtype=np.float32),
    'i4be': np.array([1, -2, 70000], dtype='>i4'),
}
assert arrays['fortran'].flags.f_contiguous and not arrays['fortran'].flags.c_contiguous
np.savez(os.path.join(out, 'plain.npz'), **arrays)
np.savez_compressed(os.path.join(out, 'packed.npz'), **arrays)
folder = os.path.join(out, 'dir')
os.makedirs(folder, exist_ok=True)
for key, value in arrays.items():
    np.save(os.path.join(folder, key + '.npy'), value)
)PY";

template <typename T>
std::vector<T> Values(const NpyArray& a) {
  std::vector<T> out(a.data.size() / sizeof(T));
  if (!out.empty()) std::memcpy(out.data(), a.data.data(), a.data.size());
  return out;
}

void ExpectNumPyArrays(const NpyMap& m, const std::string& what) {
  SCOPED_TRACE(what);
  ASSERT_EQ(m.size(), 14u);
  const NpyArray& f32 = m.at("f32");
  EXPECT_EQ(f32.dtype, DType::kFloat32);
  EXPECT_EQ(f32.shape, (std::vector<int64_t>{2, 3}));
  const std::vector<float> f = Get(f32.ToFloat("f32"));
  EXPECT_EQ(f, (std::vector<float>{1.5f, -2.25f, 0.375f, std::numeric_limits<float>::infinity(),
                                   -0.0f, 65504.0f}));
  EXPECT_TRUE(std::signbit(f[4]));

  EXPECT_EQ(Get(m.at("f64").ToDouble("f64")),
            (std::vector<double>{0.1, -1e300, 5e-324, 3.141592653589793}));
  EXPECT_EQ(m.at("f64be").dtype, DType::kFloat64);
  EXPECT_EQ(Get(m.at("f64be").ToDouble("f64be")), (std::vector<double>{1.0, -2.5, 1e300, 0.1}));

  const NpyArray& fortran = m.at("fortran");
  EXPECT_EQ(fortran.dtype, DType::kInt32);
  EXPECT_EQ(fortran.shape, (std::vector<int64_t>{2, 3, 4}));
  std::vector<int32_t> iota(24);
  for (int i = 0; i < 24; ++i) iota[i] = i;
  EXPECT_EQ(Values<int32_t>(fortran), iota);
  EXPECT_EQ(Get(m.at("fortran_f8").ToDouble("fortran_f8")),
            (std::vector<double>{1.0, 2.0, 3.0, 4.0, 5.0, 6.0}));

  EXPECT_EQ(m.at("flags").dtype, DType::kBool);
  EXPECT_EQ(Get(m.at("flags").ToBool("flags")), (std::vector<uint8_t>{1, 0, 1, 1}));
  EXPECT_EQ(Get(m.at("i64").ToInt64("i64")), (std::vector<int64_t>{INT64_MIN, INT64_MAX, 0, -1}));
  EXPECT_EQ(m.at("u8").dtype, DType::kUInt8);
  EXPECT_EQ(Values<uint8_t>(m.at("u8")), (std::vector<uint8_t>{0, 255, 7}));
  EXPECT_EQ(m.at("f16").dtype, DType::kFloat16);
  EXPECT_EQ(Get(m.at("f16").ToDouble("f16")),
            (std::vector<double>{1.0, -2.0, 0.5, 65504.0, std::ldexp(1.0, -24),
                                 std::numeric_limits<double>::infinity()}));

  const NpyArray& text = m.at("text");
  EXPECT_EQ(text.dtype, DType::kUnicode);
  EXPECT_EQ(text.item_size, 20u);
  EXPECT_EQ(text.shape, std::vector<int64_t>{3});
  EXPECT_EQ(Values<uint32_t>(text),
            (std::vector<uint32_t>{'h', 'e', 'l', 'l', 'o', 'a', 'b', 0, 0, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(Get(m.at("name").ToString("name")), "model");
  EXPECT_TRUE(m.at("name").shape.empty());
  EXPECT_TRUE(m.at("scalar").shape.empty());
  EXPECT_EQ(Get(m.at("scalar").ToDouble("scalar")), std::vector<double>{2.5});
  EXPECT_EQ(m.at("empty").shape, (std::vector<int64_t>{0, 3}));
  EXPECT_TRUE(m.at("empty").data.empty());
  EXPECT_EQ(Get(m.at("i4be").ToInt64("i4be")), (std::vector<int64_t>{1, -2, 70000}));
}

TEST(NpzInterop, ReadsWhatNumPyWrites) {
  if (!RequireNumPy()) return;
  const ScratchDir scratch;
  const std::string& dir = scratch.path();
  WriteFile(dir + "/make.py", kMakeScript);
  ASSERT_TRUE(RunCommand(absl::StrCat(kPython, " '", dir, "/make.py' '", dir, "'")));
  for (const char* file : {"/plain.npz", "/packed.npz"}) {
    absl::StatusOr<NpyMap> m = ReadNpz(dir + file);
    ASSERT_TRUE(m.ok()) << m.status();
    ExpectNumPyArrays(*m, file);
  }
  absl::StatusOr<NpyMap> folder = ReadNpyDir(dir + "/dir");
  ASSERT_TRUE(folder.ok()) << folder.status();
  ExpectNumPyArrays(*folder, "dir");
  folder = ReadArrays(dir + "/dir");
  ASSERT_TRUE(folder.ok()) << folder.status();
  ExpectNumPyArrays(*folder, "ReadArrays(dir)");
}

constexpr char kCheckScript[] = R"PY(
import sys
import numpy as np

def check(z):
    want = ['f64', 'f32', 'i64', 'b', 'name', 'scalar', 'empty',
            'i8', 'i16', 'i32', 'u16', 'u32', 'u64', 'f16']
    assert sorted(z.keys()) == sorted(want), list(z.keys())
    def same(key, dtype, shape, values):
        a = z[key]
        assert a.dtype == np.dtype(dtype), (key, a.dtype)
        assert a.shape == shape, (key, a.shape)
        assert np.array_equal(a, np.array(values, dtype=dtype).reshape(shape)), key
    same('f64', '<f8', (2, 2), [0.1, -1e300, 5e-324, 3.141592653589793])
    same('f32', '<f4', (3,), [1.5, -0.375, 65504.0])
    same('i64', '<i8', (3,), [-2**63, 0, 2**63 - 1])
    same('b', '|b1', (2, 2), [True, False, False, True])
    same('scalar', '<f8', (), 2.5)
    same('empty', '<f4', (0, 5), [])
    same('i8', '|i1', (2,), [-128, 127])
    same('i16', '<i2', (2,), [-32768, 32767])
    same('i32', '<i4', (2,), [-2**31, 2**31 - 1])
    same('u16', '<u2', (2,), [0, 65535])
    same('u32', '<u4', (2,), [0, 2**32 - 1])
    same('u64', '<u8', (2,), [0, 2**64 - 1])
    same('f16', '<f2', (3,), [1.0, -2.0, 0.5])
    n = z['name']
    assert n.dtype == np.dtype('<U12') and n.shape == () and str(n) == 'target-model', n

for path in sys.argv[1:3]:
    with np.load(path) as z:
        check({k: z[k] for k in z.files})
one = np.load(sys.argv[3])
assert one.dtype == np.float64 and one.shape == (2, 2) and one[1, 0] == 5e-324, one
print('numpy check ok')
)PY";

TEST(NpzInterop, NumPyReadsWhatWeWrite) {
  if (!RequireNumPy()) return;
  const ScratchDir scratch;
  const std::string& dir = scratch.path();
  NpyMap arrays;
  arrays["f64"] = NpyArray::FromDouble({2, 2}, {0.1, -1e300, 5e-324, 3.141592653589793});
  arrays["f32"] = NpyArray::FromFloat({3}, {1.5f, -0.375f, 65504.0f});
  arrays["i64"] = NpyArray::FromInt64({3}, {INT64_MIN, 0, INT64_MAX});
  arrays["b"] = NpyArray::FromBool({2, 2}, {1, 0, 0, 1});
  arrays["name"] = NpyArray::FromString("target-model");
  arrays["scalar"] = NpyArray::FromDouble({}, {2.5});
  arrays["empty"] = NpyArray::FromFloat({0, 5}, {});
  auto make = [](DType dtype, size_t size, const std::vector<uint64_t>& raw) {
    NpyArray a;
    a.dtype = dtype;
    a.item_size = size;
    a.shape = {static_cast<int64_t>(raw.size())};
    for (uint64_t v : raw) {
      for (size_t k = 0; k < size; ++k) a.data.push_back(static_cast<uint8_t>(v >> (8 * k)));
    }
    return a;
  };
  arrays["i8"] = make(DType::kInt8, 1, {0x80, 0x7F});
  arrays["i16"] = make(DType::kInt16, 2, {0x8000, 0x7FFF});
  arrays["i32"] = make(DType::kInt32, 4, {0x80000000, 0x7FFFFFFF});
  arrays["u16"] = make(DType::kUInt16, 2, {0, 0xFFFF});
  arrays["u32"] = make(DType::kUInt32, 4, {0, 0xFFFFFFFF});
  arrays["u64"] = make(DType::kUInt64, 8, {0, UINT64_MAX});
  arrays["f16"] = make(DType::kFloat16, 2, {0x3C00, 0xC000, 0x3800});
  ASSERT_TRUE(WriteNpz(dir + "/stored.npz", arrays, false).ok());
  ASSERT_TRUE(WriteNpz(dir + "/deflated.npz", arrays, true).ok());
  ASSERT_TRUE(WriteNpy(dir + "/one.npy", arrays["f64"]).ok());
  WriteFile(dir + "/check.py", kCheckScript);
  EXPECT_TRUE(RunCommand(absl::StrCat(kPython, " '", dir, "/check.py' '", dir, "/stored.npz' '",
                                      dir, "/deflated.npz' '", dir, "/one.npy'")))
      << "numpy could not read or verify the archives written by WriteNpz";
}

// Hand-built archives ------------------------------------------------------

TEST(NpzZip, HandBuiltArchivesParse) {
  for (bool deflate : {false, true}) {
    // Plain.
    Layout z = BuildZip({{"a.npy", SmallNpy(), deflate}});
    absl::StatusOr<NpyMap> m = ParseNpz(z.bytes, "ok.npz");
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(Get(m->at("a").ToDouble("a")), (std::vector<double>{1, 2, 3}));

    // ZIP64 everywhere: local and central extras, ZIP64 end record and locator.
    ZipMember zip64{"b.npy", SmallNpy(), deflate};
    zip64.zip64_local = true;
    zip64.zip64_central = true;
    z = BuildZip({{"a.npy", SmallNpy(), deflate}, zip64}, /*zip64_end=*/true);
    m = ParseNpz(z.bytes, "ok.npz");
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->size(), 2u);
    EXPECT_EQ(Get(m->at("b").ToDouble("b")), (std::vector<double>{1, 2, 3}));

    // A trailing archive comment is fine.
    std::string commented = BuildZip({{"a.npy", SmallNpy(), deflate}}).bytes;
    Set16(&commented, commented.size() - 2, 7);
    commented += "comment";
    EXPECT_TRUE(ParseNpz(commented, "ok.npz").ok());
  }
  // A streamed member: data-descriptor flag, zero CRC and sizes in the local header.
  Layout z = BuildZip({{"a.npy", SmallNpy()}});
  Set16(&z.bytes, 6, 0x0008);
  Set32(&z.bytes, 14, 0);
  Set32(&z.bytes, 18, 0);
  Set32(&z.bytes, 22, 0);
  Set16(&z.bytes, z.central_offset + 8, 0x0008);
  EXPECT_TRUE(ParseNpz(z.bytes, "ok.npz").ok()) << ParseNpz(z.bytes, "ok.npz").status();
}

TEST(NpzZip, TruncationAtEveryLength) {
  const NpyMap arrays = SampleArrays();
  const ScratchDir scratch;
  const std::string& dir = scratch.path();
  for (bool compress : {false, true}) {
    const std::string path = dir + "/t.npz";
    ASSERT_TRUE(WriteNpz(path, arrays, compress).ok());
    const std::string valid = ReadFile(path);
    ASSERT_TRUE(ParseNpz(valid, "t.npz").ok());
    for (size_t len = 0; len < valid.size(); ++len) {
      const absl::Status s = ParseNpz(valid.substr(0, len), "t.npz").status();
      EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << "length " << len << ": " << s;
      EXPECT_THAT(s.message(), HasSubstr("t.npz: ")) << len;
    }
    // And through the file reader, at a few lengths.
    for (size_t len : {size_t{0}, size_t{21}, valid.size() / 2, valid.size() - 1}) {
      WriteFile(path, valid.substr(0, len));
      EXPECT_EQ(ReadNpz(path).status().code(), absl::StatusCode::kInvalidArgument) << len;
    }
  }
}

TEST(NpzZip, SingleByteCorruptionNeverCrashes) {
  const NpyMap arrays = SampleArrays();
  const ScratchDir scratch;
  const std::string& dir = scratch.path();
  Rng rng(0x5EED);
  for (bool compress : {false, true}) {
    ASSERT_TRUE(WriteNpz(dir + "/c.npz", arrays, compress).ok());
    const std::string valid = ReadFile(dir + "/c.npz");
    int errors = 0;
    for (int trial = 0; trial < 4000; ++trial) {
      std::string bytes = valid;
      const size_t at = rng.UniformInt(bytes.size());
      bytes[at] = static_cast<char>(bytes[at] ^ (1 + rng.UniformInt(255)));
      absl::StatusOr<NpyMap> m = ParseNpz(bytes, "c.npz");
      if (!m.ok()) {
        ++errors;
        EXPECT_THAT(m.status().message(), HasSubstr("c.npz")) << m.status();
      }
    }
    EXPECT_GT(errors, 2000) << "compress=" << compress;
  }
}

TEST(NpzZip, CorruptMemberDataIsACrcError) {
  const NpyMap arrays = SampleArrays();
  const ScratchDir scratch;
  const std::string& dir = scratch.path();
  ASSERT_TRUE(WriteNpz(dir + "/c.npz", arrays, false).ok());
  const std::string valid = ReadFile(dir + "/c.npz");
  // The first member ("ids.npy": the map is sorted) starts at 0; its data
  // follows the 30-byte local header and the name. Every byte of it, header
  // or array, is covered by the CRC.
  const std::string first = "ids.npy";
  ASSERT_EQ(valid.substr(30, first.size()), first);
  const size_t data = 30 + first.size();
  const size_t size = Get32(valid, 18);
  Rng rng(7);
  for (size_t at = data; at < data + size; at += 1 + rng.UniformInt(5)) {
    std::string bytes = valid;
    bytes[at] = static_cast<char>(bytes[at] ^ (1 + rng.UniformInt(255)));
    const absl::Status s = ParseError(bytes);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(s.message(), HasSubstr("member 'ids.npy': CRC-32 mismatch")) << at << ": " << s;
    EXPECT_THAT(s.message(), HasSubstr(absl::StrCat("at offset ", data))) << s;
  }
}

TEST(NpzZip, BadNpyInsideMember) {
  ExpectError(BuildZip({{"a.npy", "PK not a numpy array"}}).bytes,
              "member 'a.npy': not a .npy image (bad magic");
  std::string object = SerializeNpy(NpyArray::FromInt64({1}, {1}));
  const size_t at = object.find("<i8");
  ASSERT_NE(at, std::string::npos);
  object.replace(at, 3, "|O ");
  ExpectError(BuildZip({{"obj.npy", object}}).bytes, "member 'obj.npy': object arrays");
}

TEST(NpzZip, RefusedMembers) {
  ZipMember bzip{"a.npy", SmallNpy()};
  bzip.method = 12;
  ExpectError(BuildZip({bzip}).bytes, "member 'a.npy': unsupported compression method 12 (bzip2)");
  ZipMember lzma{"a.npy", SmallNpy()};
  lzma.method = 14;
  ExpectError(BuildZip({lzma}).bytes, "unsupported compression method 14 (LZMA)");

  ZipMember encrypted{"secret.npy", SmallNpy()};
  encrypted.flags = 0x0001;
  ExpectError(BuildZip({encrypted}).bytes, "member 'secret.npy': member is encrypted");

  ExpectError(BuildZip({{"notes.txt", "hello"}}).bytes, "member 'notes.txt': is not a .npy file");
  ExpectError(BuildZip({{"dir/", ""}}).bytes, "member 'dir/': is not a .npy file");

  ExpectError(BuildZip({{"a.npy", SmallNpy()}, {"a.npy", SmallNpy()}}).bytes,
              "member 'a.npy': duplicate member name");

  ZipMember liar{"a.npy", SmallNpy()};
  liar.declared_size = 5;
  ExpectError(BuildZip({liar}).bytes, "stored member has compressed size");
}

TEST(NpzZip, DeflateBombs) {
  // 50 MB of zeros in one uint8 array compresses to about 50 KB.
  NpyArray zeros;
  zeros.dtype = DType::kUInt8;
  zeros.item_size = 1;
  zeros.shape = {50'000'000};
  zeros.data.assign(50'000'000, 0);
  const ScratchDir scratch;
  const std::string& dir = scratch.path();
  ASSERT_TRUE(WriteNpz(dir + "/bomb.npz", {{"zeros", zeros}}, true).ok());
  const std::string archive = ReadFile(dir + "/bomb.npz");
  ASSERT_LT(archive.size(), 1u << 20);
  ReadLimits limits;
  limits.max_array_bytes = 1 << 20;
  absl::Status s = ReadNpz(dir + "/bomb.npz", limits).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_THAT(s.message(), HasSubstr("member 'zeros.npy': declared size 50000128 bytes"));

  // The same stream under a central directory that declares 1000 bytes:
  // inflating stops at the declared size instead of producing 50 MB.
  ZipMember lying{"zeros.npy", std::string(1000, '\0'), true};
  lying.payload_override = RawDeflate(SerializeNpy(zeros));
  s = ParseNpz(BuildZip({lying}).bytes, "bomb.npz", limits).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(s.message(), HasSubstr("member 'zeros.npy': deflate stream inflates to more than "
                                     "the declared 1000 bytes"));

  // Total limit across members.
  ReadLimits total;
  total.max_total_bytes = 40;
  s = ParseNpz(BuildZip({{"a.npy", SmallNpy()}, {"b.npy", SmallNpy()}}).bytes, "t.npz", total)
          .status();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_THAT(s.message(), HasSubstr("member 'b.npy'"));

  // A file larger than any archive the limits allow is refused before reading.
  ReadLimits tiny;
  tiny.max_total_bytes = 1000;
  tiny.max_members = 1;
  WriteFile(dir + "/huge.npz", std::string(3 << 20, 'x'));
  s = ReadNpz(dir + "/huge.npz", tiny).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
}

TEST(NpzZip, BrokenDeflateStreams) {
  ZipMember truncated{"a.npy", SmallNpy(), true};
  truncated.payload_override = RawDeflate(SmallNpy());
  truncated.payload_override.resize(truncated.payload_override.size() / 2);
  Layout z = BuildZip({truncated});
  ExpectError(z.bytes, absl::StrCat("member 'a.npy': truncated deflate stream at offset ",
                                    z.data_offsets[0] + truncated.payload_override.size()));

  ZipMember trailing{"a.npy", SmallNpy(), true};
  trailing.payload_override = RawDeflate(SmallNpy()) + "junk";
  ExpectError(BuildZip({trailing}).bytes, "4 bytes of compressed data follow the end");

  ZipMember garbage{"a.npy", SmallNpy(), true};
  garbage.payload_override = std::string(40, '\xFF');
  ExpectError(BuildZip({garbage}).bytes, "member 'a.npy': corrupt deflate stream");

  ZipMember shorter{"a.npy", SmallNpy(), true};
  shorter.declared_size = SmallNpy().size() + 10;
  ExpectError(BuildZip({shorter}).bytes, "not the declared");
}

// Members of 1 MB and more are inflated whole by libdeflate first; a stream
// it does not take goes to zlib, which names the problem as for small members.
TEST(NpzZip, BrokenLargeDeflateStreams) {
  std::vector<float> values(400'000);
  uint64_t state = 7;
  for (float& v : values) v = static_cast<float>(SplitMix64(state) % 100000) * 0.37f;
  const std::string big = SerializeNpy(NpyArray::FromFloat({400'000}, values));
  ASSERT_GT(big.size(), 1u << 20);

  const Layout good = BuildZip({{"a.npy", big, true}});
  absl::StatusOr<NpyMap> read = ParseNpz(good.bytes, "good.npz", ReadLimits{});
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(SerializeNpy(read->at("a")), big);

  ZipMember truncated{"a.npy", big, true};
  truncated.payload_override = RawDeflate(big);
  truncated.payload_override.resize(truncated.payload_override.size() / 2);
  Layout z = BuildZip({truncated});
  ExpectError(z.bytes, absl::StrCat("member 'a.npy': truncated deflate stream at offset ",
                                    z.data_offsets[0] + truncated.payload_override.size()));

  ZipMember trailing{"a.npy", big, true};
  trailing.payload_override = RawDeflate(big) + "junk";
  ExpectError(BuildZip({trailing}).bytes, "4 bytes of compressed data follow the end");

  ZipMember flipped{"a.npy", big, true};
  flipped.payload_override = RawDeflate(big);
  flipped.payload_override[flipped.payload_override.size() / 3] ^= 0x55;
  const absl::Status s = ParseError(BuildZip({flipped}).bytes);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(s.message(), HasSubstr("member 'a.npy'")) << s;

  ZipMember shorter{"a.npy", big, true};
  shorter.declared_size = big.size() + 10;
  ExpectError(BuildZip({shorter}).bytes, "not the declared");

  ZipMember longer{"a.npy", big, true};
  longer.declared_size = big.size() - 10;
  ExpectError(BuildZip({longer}).bytes, "inflates to more than the declared");
}

TEST(NpzZip, BrokenStructure) {
  const Layout good = BuildZip({{"a.npy", SmallNpy()}, {"b.npy", SmallNpy(), true}});
  ASSERT_TRUE(ParseNpz(good.bytes, "bad.npz").ok());

  std::string no_end = good.bytes;
  no_end[good.end_offset] = 'X';
  ExpectError(no_end, "end of central directory record not found");
  ExpectError("just some text that is not a zip archive at all", "end of central directory");
  ExpectError("", "end of central directory record not found");

  std::string far = good.bytes;
  Set32(&far, good.end_offset + 16, 0x7FFFFFF0);
  ExpectError(far, "central directory (offset 2147483632");
  ExpectError(far, "lies outside the archive");

  std::string big_dir = good.bytes;
  Set32(&big_dir, good.end_offset + 12, 0xFFFFFF);
  ExpectError(big_dir, "lies outside the archive");

  std::string many = good.bytes;
  Set16(&many, good.end_offset + 8, 3);
  Set16(&many, good.end_offset + 10, 3);
  ExpectError(many, "cannot hold 3 entries");

  std::string local_far = good.bytes;
  Set32(&local_far, good.central_offset + 42, 0x1000000);
  ExpectError(local_far, "member 'a.npy': local header offset 16777216 is outside");

  std::string renamed = good.bytes;
  renamed[30] = 'z';
  ExpectError(renamed, "member 'a.npy': local header names a different member");

  std::string method = good.bytes;
  Set16(&method, 8, 8);
  ExpectError(method, "member 'a.npy': local header method 8 differs");

  std::string crc = good.bytes;
  Set32(&crc, 14, 1234);
  ExpectError(crc, "local header CRC-32 differs");

  std::string sig = good.bytes;
  sig[good.central_offset] = 'Q';
  ExpectError(sig, "bad signature of central directory entry 0");

  ZipMember needs64{"a.npy", SmallNpy()};
  needs64.zip64_local = true;
  std::string no_extra = BuildZip({needs64}).bytes;
  Set16(&no_extra, 28, 0);  // drop the extra field: its 20 bytes now count as data
  ExpectError(no_extra, "ZIP64 extra field is missing");

  ReadLimits one;
  one.max_members = 1;
  const absl::Status s = ParseNpz(good.bytes, "bad.npz", one).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_THAT(s.message(), HasSubstr("2 members, above the limit of 1"));
}

TEST(NpzZip, OverlappingMembers) {
  // Member "a.npy" stores bytes that are themselves a complete local header
  // and data for "b.npy"; the central directory lists both.
  const std::string inner_npy = SmallNpy();
  std::string inner;
  Put32(&inner, 0x04034b50);
  Put16(&inner, 20);
  Put16(&inner, 0);
  Put16(&inner, 0);
  Put32(&inner, 0);
  Put32(&inner, Crc(inner_npy));
  Put32(&inner, inner_npy.size());
  Put32(&inner, inner_npy.size());
  Put16(&inner, 5);
  Put16(&inner, 0);
  inner += "b.npy" + inner_npy;
  Layout outer = BuildZip({{"a.npy", inner}});
  // Append a central entry for b.npy pointing inside a.npy's data.
  std::string& bytes = outer.bytes;
  std::string central = bytes.substr(outer.central_offset, outer.end_offset - outer.central_offset);
  std::string entry;
  Put32(&entry, 0x02014b50);
  Put16(&entry, 20);
  Put16(&entry, 20);
  Put16(&entry, 0);
  Put16(&entry, 0);
  Put32(&entry, 0);
  Put32(&entry, Crc(inner_npy));
  Put32(&entry, inner_npy.size());
  Put32(&entry, inner_npy.size());
  Put16(&entry, 5);
  Put32(&entry, 0);
  Put16(&entry, 0);
  Put16(&entry, 0);
  Put32(&entry, 0);
  Put32(&entry, outer.data_offsets[0]);
  entry += "b.npy";
  central += entry;
  std::string archive = bytes.substr(0, outer.central_offset) + central;
  Put32(&archive, 0x06054b50);
  Put32(&archive, 0);
  Put16(&archive, 2);
  Put16(&archive, 2);
  Put32(&archive, central.size());
  Put32(&archive, outer.central_offset);
  Put16(&archive, 0);
  ExpectError(archive, "member 'b.npy': overlaps member 'a.npy'");
}

TEST(NpzZip, NamesInMessagesAreEscaped) {
  const absl::Status s = ParseError(BuildZip({{"evil\n\x1b[31m.txt", "x"}}).bytes);
  EXPECT_THAT(s.message(), HasSubstr("member 'evil\\n\\x1b[31m.txt'"));
  EXPECT_EQ(s.message().find('\n'), absl::string_view::npos);
}

// Declared sizes ----------------------------------------------------------

void ExpectInfosMatch(const NpyMap& arrays, const NpyInfoMap& infos) {
  ASSERT_EQ(arrays.size(), infos.size());
  for (const auto& [name, array] : arrays) {
    auto it = infos.find(name);
    ASSERT_NE(it, infos.end()) << name;
    EXPECT_EQ(it->second.dtype, array.dtype) << name;
    EXPECT_EQ(it->second.item_size, array.item_size) << name;
    EXPECT_EQ(it->second.shape, array.shape) << name;
    EXPECT_EQ(it->second.data_bytes, array.data.size()) << name;
  }
}

TEST(NpzInfos, AgreeWithWhatReadArraysDecodes) {
  const ScratchDir scratch;
  const std::string& dir = scratch.path();
  const NpyMap arrays = SampleArrays();
  for (bool compress : {false, true}) {
    const std::string path = absl::StrCat(dir, compress ? "/packed.npz" : "/plain.npz");
    ASSERT_TRUE(WriteNpz(path, arrays, compress).ok());
    ExpectInfosMatch(arrays, Get(ReadArrayInfos(path)));
  }
  const std::string folder = dir + "/arrays";
  ASSERT_EQ(mkdir(folder.c_str(), 0755), 0);
  for (const auto& [name, array] : arrays) {
    ASSERT_TRUE(WriteNpy(absl::StrCat(folder, "/", name, ".npy"), array).ok());
  }
  ExpectInfosMatch(arrays, Get(ReadArrayInfos(folder)));
  EXPECT_EQ(ReadArrayInfos(dir + "/nope.npz").status().code(), absl::StatusCode::kNotFound);
}

// A header longer than the first read (NumPy pads, and format 2.0 allows
// long ones) is read again in full.
TEST(NpzInfos, LongHeaders) {
  const ScratchDir scratch;
  std::string dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }";
  dict.append(9000 - dict.size(), ' ');
  dict.push_back('\n');
  std::string npy("\x93NUMPY\x02\x00", 8);
  Put32(&npy, static_cast<uint32_t>(dict.size()));
  npy += dict + std::string(24, '\0');
  const std::string path = scratch.path() + "/long.npz";
  WriteFile(path, BuildZip({ZipMember("x.npy", npy, /*deflate=*/true)}).bytes);
  const NpyInfoMap infos = Get(ReadArrayInfos(path));
  ASSERT_EQ(infos.count("x"), 1u);
  EXPECT_EQ(infos.at("x").shape, std::vector<int64_t>{3});
  EXPECT_EQ(infos.at("x").data_bytes, 24u);
  ExpectInfosMatch(Get(ReadNpz(path)), infos);
}

// One header cap (1 MiB, preamble and dict) for every reader: a header one
// byte over it is refused by ReadArrays and by ReadArrayInfos, in an archive
// (stored or deflated) and in a folder, with the same message; one exactly
// at the cap is read by both.
TEST(NpzInfos, HeaderCapIsTheSameForEveryReader) {
  constexpr size_t kCap = size_t{1} << 20;
  auto npy_with_header = [](size_t header_bytes) {
    std::string dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }";
    dict.append(header_bytes - 12 - dict.size() - 1, ' ');
    dict.push_back('\n');
    std::string npy("\x93NUMPY\x02\x00", 8);
    Put32(&npy, static_cast<uint32_t>(dict.size()));
    return npy + dict + std::string(24, '\0');
  };
  const ScratchDir scratch;
  const std::string& dir = scratch.path();
  for (size_t header : {kCap, kCap + 1}) {
    const std::string npy = npy_with_header(header);
    std::vector<std::string> paths;
    for (bool deflate : {false, true}) {
      const std::string path =
          absl::StrCat(dir, "/h", header, deflate ? "_deflated" : "_stored", ".npz");
      WriteFile(path, BuildZip({ZipMember("x.npy", npy, deflate)}).bytes);
      paths.push_back(path);
    }
    const std::string folder = absl::StrCat(dir, "/h", header);
    ASSERT_EQ(mkdir(folder.c_str(), 0755), 0);
    WriteFile(folder + "/x.npy", npy);
    paths.push_back(folder);
    for (const std::string& path : paths) {
      SCOPED_TRACE(path);
      const absl::StatusOr<NpyMap> full = ReadArrays(path);
      const absl::StatusOr<NpyInfoMap> infos = ReadArrayInfos(path);
      if (header == kCap) {
        ASSERT_TRUE(full.ok()) << full.status();
        ExpectInfosMatch(*full, Get(infos));
        continue;
      }
      ASSERT_FALSE(full.ok());
      ASSERT_FALSE(infos.ok());
      EXPECT_EQ(full.status(), infos.status());
      EXPECT_EQ(full.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(full.status().message(),
                  HasSubstr("header of 1048577 bytes is above the limit of 1048576 bytes at "
                            "offset 8"));
    }
  }
}

TEST(NpzInfos, HeaderThatDisagreesWithItsMemberIsRefused) {
  const ScratchDir scratch;
  // Declares 3 doubles; the member holds 2.
  std::string npy = SmallNpy();
  npy.resize(npy.size() - 8);
  const std::string path = scratch.path() + "/short.npz";
  WriteFile(path, BuildZip({ZipMember("x.npy", npy, /*deflate=*/true)}).bytes);
  const absl::Status s = ReadArrayInfos(path).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(s.message(), HasSubstr("member 'x.npy'"));
  EXPECT_THAT(s.message(), HasSubstr("header declares 24 bytes of array data"));
}

// The attack of the review: a few megabytes of deflated zeros declaring
// [4, 1e8] arrays. The declared pass reads the shapes without decoding; the
// limits refuse it from the headers alone.
TEST(NpzInfos, DeflatedZerosDeclaringGigabytesAreSizedWithoutDecoding) {
  const ScratchDir scratch;
  const std::string path = scratch.path() + "/huge.npz";
  const std::string archive = testdata::HugeZerosBundle();
  ASSERT_LT(archive.size(), 8u << 20);
  WriteFile(path, archive);

  const NpyInfoMap infos = Get(ReadArrayInfos(path));
  ASSERT_EQ(infos.size(), 2u);
  EXPECT_EQ(infos.at("keep").shape, (std::vector<int64_t>{4, 100'000'000}));
  EXPECT_EQ(infos.at("keep").dtype, DType::kBool);
  EXPECT_EQ(infos.at("keep").data_bytes, 400'000'000u);
  EXPECT_EQ(infos.at("signals").data_bytes, 1'600'000'000u);

  ReadLimits per_array;
  per_array.max_array_bytes = uint64_t{1} << 30;
  absl::Status s = ReadArrayInfos(path, per_array).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_THAT(s.message(), HasSubstr("member 'signals.npy'"));
  EXPECT_THAT(s.message(), HasSubstr("ReadLimits::max_array_bytes"));

  ReadLimits total;
  total.max_total_bytes = 1'000'000'000;
  s = ReadArrayInfos(path, total).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_THAT(s.message(), HasSubstr("ReadLimits::max_total_bytes"));
}

// The helper's archives are real: a smaller one decodes to zeros with every
// CRC and size right, so a refusal of the large one is the limits' doing.
TEST(NpzInfos, ZerosArchivesDecode) {
  const ScratchDir scratch;
  const std::string path = scratch.path() + "/zeros.npz";
  WriteFile(path, testdata::ZerosNpz(
                      {{"keep", "|b1", 1, {2, 3'000'000}}, {"signals", "<f4", 4, {2, 1'500'001}}}));
  const NpyMap arrays = Get(ReadNpz(path));
  ASSERT_EQ(arrays.size(), 2u);
  EXPECT_EQ(arrays.at("keep").data.size(), 6'000'000u);
  EXPECT_EQ(arrays.at("signals").data.size(), 12'000'008u);
  for (const auto& [name, array] : arrays) {
    EXPECT_TRUE(std::all_of(array.data.begin(), array.data.end(), [](uint8_t b) { return b == 0; }))
        << name;
  }
  ExpectInfosMatch(arrays, Get(ReadArrayInfos(path)));
}

}  // namespace
}  // namespace mia::io
