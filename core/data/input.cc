// Reading input files: whole-file reads with size limits, transparent gzip
// (detected by its magic bytes, not by the file name), and the small checks
// every loader shares.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "core/common/file_util.h"
#include "core/data/internal.h"

namespace mia::data::internal {
namespace {

// zlib counts input and output in 32-bit uInt; feed it at most this much at once.
constexpr uint64_t kZlibChunk = uint64_t{1} << 30;

// A failed system call is not bad input: EACCES is PERMISSION_DENIED, EIO
// UNKNOWN and so on (FileErrnoStatus, after absl::ErrnoToStatus).
absl::Status ErrnoError(const std::string& path, absl::string_view what, int err) {
  return FileErrnoStatus(err, path, what);
}

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

bool HasGzipMagic(absl::string_view bytes) {
  return bytes.size() >= 2 && static_cast<uint8_t>(bytes[0]) == 0x1f &&
         static_cast<uint8_t>(bytes[1]) == 0x8b;
}

absl::Status ReadWholeFile(const std::string& path, uint64_t max_bytes, std::string* out) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer (refused below).
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT || err == ENOTDIR) {
      return absl::NotFoundError(absl::StrCat(path, ": no such file"));
    }
    return ErrnoError(path, "open", err);
  }
  struct FdCloser {
    int fd;
    ~FdCloser() { close(fd); }
  } closer{fd};
  struct stat st;
  if (fstat(fd, &st) != 0) return ErrnoError(path, "stat", errno);
  if (S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": is a folder, expected a file"));
  }
  // A FIFO or a device could block or never end.
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size > max_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        path, ": file is ", size, " bytes, above the LoadLimits max_bytes of ", max_bytes));
  }
  out->resize(size);
  uint64_t done = 0;
  while (done < size) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(size - done, kZlibChunk));
    const ssize_t got = read(fd, out->data() + done, want);
    if (got < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(path, absl::StrCat("read at offset ", done), errno);
    }
    if (got == 0) break;  // the file shrank while we read it
    done += static_cast<uint64_t>(got);
  }
  out->resize(done);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> Gunzip(absl::string_view compressed, const std::string& path,
                                   uint64_t max_bytes) {
  z_stream zs;
  std::memset(&zs, 0, sizeof(zs));
  // 16 + MAX_WBITS: gzip wrapper only (header, CRC-32 and length are checked).
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
    return absl::ResourceExhaustedError(absl::StrCat(path, ": cannot start zlib"));
  }
  struct Ender {
    z_stream* zs;
    ~Ender() { inflateEnd(zs); }
  } ender{&zs};

  // The gzip trailer holds the last member's length mod 2^32: a good first
  // guess for the output size that avoids most regrowth. It is only trusted up
  // to a plausible compression ratio, because a truncated or hostile file ends
  // in arbitrary bytes and must not make us allocate gigabytes up front.
  const uint64_t in_size = compressed.size();
  uint64_t guess = 4 * in_size + 4096;
  if (in_size >= 18) {
    const auto* tail = reinterpret_cast<const uint8_t*>(compressed.data() + in_size - 4);
    const uint64_t isize = uint64_t{tail[0]} | (uint64_t{tail[1]} << 8) |
                           (uint64_t{tail[2]} << 16) | (uint64_t{tail[3]} << 24);
    guess = std::max(guess, std::min(isize + 1, 64 * in_size));
  }
  // One byte above the limit shows whether the output exceeds it.
  const uint64_t cap = max_bytes == UINT64_MAX ? max_bytes : max_bytes + 1;
  std::string out;
  out.resize(static_cast<size_t>(std::min(guess, cap)));

  uint64_t in_pos = 0;   // compressed bytes consumed
  uint64_t out_pos = 0;  // decompressed bytes produced
  auto exceeded = [&]() {
    return absl::ResourceExhaustedError(absl::StrCat(
        path, ": decompresses to more than the LoadLimits max_bytes of ", max_bytes, " bytes"));
  };
  while (true) {
    if (out_pos == out.size()) {
      if (out.size() >= cap) return exceeded();
      out.resize(static_cast<size_t>(std::min<uint64_t>(cap, 2 * out.size())));
    }
    const uint64_t in_avail = std::min<uint64_t>(compressed.size() - in_pos, kZlibChunk);
    const uint64_t out_avail = std::min<uint64_t>(out.size() - out_pos, kZlibChunk);
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data() + in_pos));
    zs.avail_in = static_cast<uInt>(in_avail);
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + out_pos);
    zs.avail_out = static_cast<uInt>(out_avail);
    const int rc = inflate(&zs, Z_NO_FLUSH);
    in_pos += in_avail - zs.avail_in;
    out_pos += out_avail - zs.avail_out;
    if (rc == Z_STREAM_END) {
      if (in_pos == compressed.size()) break;
      // Concatenated gzip members form one stream (as gunzip reads them).
      if (!HasGzipMagic(compressed.substr(in_pos))) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": trailing bytes after the gzip stream at compressed offset ", in_pos));
      }
      if (inflateReset(&zs) != Z_OK) {
        return absl::InternalError(absl::StrCat(path, ": zlib reset failed"));
      }
      continue;
    }
    if (rc == Z_NEED_DICT || rc == Z_DATA_ERROR) {
      // zlib's messages describe the stream structure ("incorrect data check",
      // "invalid block type"), never the data.
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": corrupt gzip stream near compressed offset ", in_pos, " (",
                       zs.msg != nullptr ? zs.msg : "data error", ")"));
    }
    if (rc == Z_MEM_ERROR) {
      return absl::ResourceExhaustedError(absl::StrCat(path, ": zlib is out of memory"));
    }
    if (rc == Z_BUF_ERROR || rc == Z_OK) {
      // No progress possible: either the output is full (grow it above) or the
      // input ended before the stream did.
      if (in_pos == compressed.size() && zs.avail_out > 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": gzip stream truncated at compressed offset ", in_pos));
      }
      continue;
    }
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": gzip stream error ", rc, " near compressed offset ", in_pos));
  }
  if (out_pos > max_bytes) return exceeded();
  out.resize(static_cast<size_t>(out_pos));
  return out;
}

absl::StatusOr<InputFile> ReadInput(const std::string& path, uint64_t max_bytes) {
  InputFile file;
  file.path = path;
  absl::Status read = ReadWholeFile(path, max_bytes, &file.bytes);
  if (!read.ok()) return read;
  if (HasGzipMagic(file.bytes)) {
    absl::StatusOr<std::string> plain = Gunzip(file.bytes, path, max_bytes);
    if (!plain.ok()) return plain.status();
    file.bytes = *std::move(plain);
    file.gzipped = true;
  }
  return file;
}

absl::StatusOr<std::string> FindFile(const std::string& folder, const std::string& name) {
  const std::string plain = absl::StrCat(folder, "/", name);
  if (Exists(plain)) return plain;
  const std::string gz = plain + ".gz";
  if (Exists(gz)) return gz;
  return absl::NotFoundError(absl::StrCat(plain, ": no such file (nor ", name, ".gz)"));
}

std::string At(const InputFile& file, uint64_t offset) {
  return file.gzipped ? absl::StrCat(" at offset ", offset, " of the decompressed data")
                      : absl::StrCat(" at offset ", offset);
}

absl::Status CheckSize(absl::string_view what, uint64_t rows, uint64_t numel,
                       const LoadLimits& limits) {
  if (rows > static_cast<uint64_t>(std::max<int64_t>(limits.max_rows, 0))) {
    return absl::ResourceExhaustedError(absl::StrCat(
        what, ": ", rows, " examples, above the LoadLimits max_rows of ", limits.max_rows));
  }
  uint64_t bytes;
  if (__builtin_mul_overflow(rows, numel, &bytes) ||
      __builtin_mul_overflow(bytes, uint64_t{sizeof(float)}, &bytes) || bytes > limits.max_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat(what, ": ", rows, " examples of ", numel,
                     " features need more than the LoadLimits max_bytes of ", limits.max_bytes));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> SplitParts(const DataSource& source) {
  if (source.split == "train") return std::vector<std::string>{"train"};
  if (source.split == "test") return std::vector<std::string>{"test"};
  if (source.split == "all") return std::vector<std::string>{"train", "test"};
  return absl::InvalidArgumentError(
      absl::StrCat("dataset format ", source.format, ": unknown split '",
                   absl::CHexEscape(source.split), "' (expected train, test or all)"));
}

absl::Status CheckNoSplit(const DataSource& source) {
  if (source.split == "train" || source.split == "all") return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("dataset format ", source.format, " is one file without a test split; split '",
                   absl::CHexEscape(source.split),
                   "' is not available (use train or all, and let the audit split the rows)"));
}

const float* ByteToUnitTable() {
  static const std::vector<float> table = [] {
    std::vector<float> t(256);
    for (int b = 0; b < 256; ++b) t[b] = static_cast<float>(b) / 255.0f;
    return t;
  }();
  return table.data();
}

}  // namespace mia::data::internal
