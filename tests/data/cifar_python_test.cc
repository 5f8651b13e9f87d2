// CIFAR's python version (pickled batches, as torchvision downloads them and
// Privacy Meter's data_dir holds them): files written here by python3's
// pickle and numpy must load to exactly what the binary version of the same
// images loads to; a hand-made Python 2 style file too; corrupt and hostile
// files are refused with the file and a byte offset, never a crash.
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/data/loaders.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/data/test_util.h"

namespace mia::data {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using testing_util::Get;
using testing_util::TestDir;
using testing_util::WriteFile;
using std::string_literals::operator""s;

// Batch b (1..5) holds images labelled {b, 9 - b}, test_batch one labelled 0;
// pixel i of record r is (r * 7 + i) mod 256, in both versions.
std::string BinaryRecords(const std::vector<uint8_t>& labels) {
  std::string out;
  for (size_t r = 0; r < labels.size(); ++r) {
    out.push_back(static_cast<char>(labels[r]));
    for (int i = 0; i < 3072; ++i) out.push_back(static_cast<char>(static_cast<uint8_t>(r * 7 + i)));
  }
  return out;
}

void WriteBinarySet(const std::string& dir) {
  for (int b = 1; b <= 5; ++b) {
    WriteFile(absl::StrCat(dir, "/data_batch_", b, ".bin"),
              BinaryRecords({static_cast<uint8_t>(b), static_cast<uint8_t>(9 - b)}));
  }
  WriteFile(dir + "/test_batch.bin", BinaryRecords({0}));
}

// The same images pickled by python3 and numpy at `protocol`, with bytes keys
// as the real files load (b'data', b'labels', b'batch_label', b'filenames').
void WritePythonSet(const std::string& dir, int protocol) {
  std::filesystem::create_directories(dir);
  const std::string script = dir + "/write.py";
  WriteFile(script,
            "import os, pickle, sys\n"
            "import numpy as np\n"
            "d, proto = sys.argv[1], int(sys.argv[2])\n"
            "def batch(name, labels):\n"
            "    n = len(labels)\n"
            "    data = np.array([[(r * 7 + i) % 256 for i in range(3072)] for r in range(n)],\n"
            "                    dtype=np.uint8)\n"
            "    obj = {b'batch_label': b'training batch', b'labels': labels, b'data': data,\n"
            "           b'filenames': [b'img_%d.png' % k for k in range(n)]}\n"
            "    with open(os.path.join(d, name), 'wb') as f:\n"
            "        pickle.dump(obj, f, protocol=proto)\n"
            "for b in range(1, 6):\n"
            "    batch('data_batch_%d' % b, [b, 9 - b])\n"
            "batch('test_batch', [0])\n");
  const std::string cmd =
      absl::StrCat("/usr/bin/python3 ", script, " ", dir, " ", protocol, " 2>&1");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::filesystem::remove(script);
}

DataSource Cifar10(const std::string& path, const std::string& split) {
  DataSource source;
  source.format = "cifar10";
  source.path = path;
  source.split = split;
  return source;
}

TEST(CifarPythonTest, PicklesLoadAsTheBinaryVersion) {
  TestDir dir;
  WriteBinarySet(dir / "bin");
  const Dataset expected = Get(LoadDataset(Cifar10(dir / "bin", "all")));
  ASSERT_EQ(expected.size(), 11);
  for (int protocol : {2, 4}) {
    // Privacy Meter's layout: data_dir/cifar10/cifar-10-batches-py.
    const std::string root = dir / absl::StrCat("pm", protocol);
    WritePythonSet(root + "/cifar10/cifar-10-batches-py", protocol);
    for (const std::string& path : {root, root + "/cifar10/cifar-10-batches-py"}) {
      const Dataset got = Get(LoadDataset(Cifar10(path, "all")));
      EXPECT_EQ(got.labels, expected.labels) << protocol << " " << path;
      EXPECT_EQ(got.features, expected.features) << protocol << " " << path;
      EXPECT_EQ(got.sample_shape, expected.sample_shape);
      EXPECT_EQ(got.num_classes, 10);
    }
    EXPECT_EQ(Get(LoadDataset(Cifar10(root, "train"))).size(), 10);
    EXPECT_EQ(Get(LoadDataset(Cifar10(root, "test"))).labels, std::vector<int64_t>{0});
  }
  // data_dir holding both versions: the binary one is read.
  WriteBinarySet(dir / "both/cifar-10-batches-bin");
  WritePythonSet(dir / "both/cifar-10-batches-py", 2);
  EXPECT_THAT(Get(LoadDataset(Cifar10(dir / "both", "all"))).name,
              HasSubstr("cifar10:" + (dir / "both")));
  // Neither: the error says what was looked for.
  std::filesystem::create_directories(dir / "empty");
  const absl::Status none = LoadDataset(Cifar10(dir / "empty", "train")).status();
  EXPECT_EQ(none.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(none.message(), AllOf(HasSubstr("data_batch_1.bin"), HasSubstr("cifar-10-batches-py"),
                                    HasSubstr("cifar10/cifar-10-batches-bin")));
}

// A Python 2 cPickle file (protocol 2), as the CIFAR-10 archive holds: str
// keys and the pixel bytes as BINSTRING, numpy's dtype with int flags.
std::string Le32(uint32_t v) {
  std::string out;
  for (int b = 0; b < 4; ++b) out.push_back(static_cast<char>(v >> (8 * b)));
  return out;
}

std::string Python2Batch(const std::string& pixels, uint32_t rows, const std::string& labels_ops,
                         const std::string& global = "cnumpy.core.multiarray\n_reconstruct\n") {
  // Adjacent literals keep hex escapes from running into the next letter;
  // ""s keeps the NUL bytes.
  std::string p = "\x80\x02}q\x01("s;
  p += "U\x06" "labelsq\x02]q\x03("s + labels_ops + "e";
  p += "U\x04" "dataq\x04"s + global + "q\x05" "cnumpy\nndarray\nq\x06K\x00\x85U\x01" "b\x87R"s;
  p += "(K\x01J"s + Le32(rows) + "M\x00\x0c\x86"s;  // version 1, shape (rows, 3072)
  p += "cnumpy\ndtype\nU\x02u1K\x00K\x01\x87R(K\x03U\x01|NNNJ"s + Le32(0xffffffff) + "J" +
       Le32(0xffffffff) + "K\x00tb"s;  // dtype and its state
  p += "\x89T"s + Le32(static_cast<uint32_t>(pixels.size())) + pixels + "tb";
  p += "u.";
  return p;
}

std::string Pixels(int rows) {
  std::string out;
  for (int r = 0; r < rows; ++r) {
    for (int i = 0; i < 3072; ++i) out.push_back(static_cast<char>(static_cast<uint8_t>(r * 7 + i)));
  }
  return out;
}

void WritePython2Set(const std::string& dir) {
  for (int b = 1; b <= 5; ++b) {
    WriteFile(absl::StrCat(dir, "/data_batch_", b),
              Python2Batch(Pixels(2), 2,
                           absl::StrCat("K", std::string(1, static_cast<char>(b)), "K",
                                        std::string(1, static_cast<char>(9 - b)))));
  }
  WriteFile(dir + "/test_batch", Python2Batch(Pixels(1), 1, std::string("K\x00", 2)));
}

TEST(CifarPythonTest, Python2PicklesLoad) {
  TestDir dir;
  WriteBinarySet(dir / "bin");
  WritePython2Set(dir / "py");
  const Dataset expected = Get(LoadDataset(Cifar10(dir / "bin", "all")));
  const Dataset got = Get(LoadDataset(Cifar10(dir / "py", "all")));
  EXPECT_EQ(got.labels, expected.labels);
  EXPECT_EQ(got.features, expected.features);
}

absl::Status LoadWithBatch1(const TestDir& dir, const std::string& bytes) {
  WriteFile(dir / "py/data_batch_1", bytes);
  return LoadDataset(Cifar10(dir / "py", "train")).status();
}

TEST(CifarPythonTest, CorruptAndHostileFilesAreRefused) {
  TestDir dir;
  WritePython2Set(dir / "py");
  const std::string good =
      Python2Batch(Pixels(2), 2, absl::StrCat("K", std::string(1, '\x01'), "K", "\x08"));
  ASSERT_TRUE(LoadWithBatch1(dir, good).ok());
  // Every truncation: an error naming the file, never a crash.
  for (size_t cut = 0; cut < good.size(); cut += (cut < 200 || cut > good.size() - 200) ? 1 : 997) {
    const absl::Status s = LoadWithBatch1(dir, good.substr(0, cut));
    ASSERT_FALSE(s.ok()) << cut;
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << cut;
    EXPECT_THAT(s.message(), HasSubstr("data_batch_1")) << cut;
  }
  // A function it does not allow (what a general unpickler would call).
  const std::string hostile = Python2Batch(Pixels(2), 2, "K\x01K\x02", "cos\nsystem\n");
  absl::Status s = LoadWithBatch1(dir, hostile);
  EXPECT_THAT(s.message(), AllOf(HasSubstr("does not allow"),
                                 HasSubstr(absl::StrCat("at offset ", hostile.find("\x87R") + 1))));
  // An opcode outside the layout, named with its offset.
  s = LoadWithBatch1(dir, "\x80\x02I1\n.");
  EXPECT_THAT(s.message(), AllOf(HasSubstr("opcode 0x49 is not supported"), HasSubstr("at offset 2")));
  s = LoadWithBatch1(dir, "\x80\x05}.");
  EXPECT_THAT(s.message(), HasSubstr("pickle protocol 5"));
  // A length past the end of the file.
  s = LoadWithBatch1(dir, "\x80\x02T" + Le32(0xffffffff) + "abc");
  EXPECT_THAT(s.message(), AllOf(HasSubstr("runs past the end"), HasSubstr("at offset 2")));
  // A memo index never stored; popping an empty stack; no STOP.
  EXPECT_THAT(LoadWithBatch1(dir, "\x80\x02h\x07.").message(), HasSubstr("unknown memo index"));
  EXPECT_THAT(LoadWithBatch1(dir, "\x80\x02.").message(), HasSubstr("empty stack"));
  EXPECT_THAT(LoadWithBatch1(dir, "\x80\x02}").message(), HasSubstr("no STOP"));
  // Not the layout: a list, a wrong shape, a label out of range, too few labels.
  EXPECT_THAT(LoadWithBatch1(dir, "\x80\x02].").message(), HasSubstr("not a dict"));
  EXPECT_THAT(LoadWithBatch1(dir, Python2Batch(Pixels(2), 3, "K\x01K\x02K\x03")).message(),
              HasSubstr("'data' holds 6144 bytes"));
  s = LoadWithBatch1(dir, Python2Batch(Pixels(2), 2, "K\x01K\x0a"));
  EXPECT_THAT(s.message(), HasSubstr("'labels' entry 1 is not an integer in 0..9"));
  EXPECT_THAT(LoadWithBatch1(dir, Python2Batch(Pixels(2), 2, "K\x01")).message(),
              HasSubstr("'labels' has 1 entries for 2 images"));
  // Deep nesting costs no stack: 2 million nested lists, refused by the limits.
  std::string deep = "\x80\x02";
  for (int k = 0; k < 2'000'000; ++k) deep += "]";
  EXPECT_THAT(LoadWithBatch1(dir, deep + ".").message(), HasSubstr("more than"));
  // 500,000 lists, each appended into the one below it: one nested value.
  const std::string nested =
      "\x80\x02" + std::string(500'000, ']') + std::string(499'999, 'a') + ".";
  EXPECT_THAT(LoadWithBatch1(dir, nested).message(), HasSubstr("not a dict"));
}

}  // namespace
}  // namespace mia::data
