// Test helper: an .npz archive of deflated all-zero arrays of any declared
// shape, built without ever holding the decoded bytes: a few megabytes that
// declare gigabytes, as a hostile upload would. The archive is valid (CRCs
// and sizes agree), so only a check of the declared sizes can refuse it
// before decoding.
#ifndef MIA_TESTS_IO_ZEROS_NPZ_H_
#define MIA_TESTS_IO_ZEROS_NPZ_H_

#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace mia::testdata {

struct ZeroArray {
  std::string name;   // array name (member name without .npy)
  std::string descr;  // NumPy descr, e.g. "|b1", "<f4"
  int item_size = 1;  // bytes per element of descr
  std::vector<int64_t> shape;
};

namespace zeros_internal {

inline void Put16(std::string* out, uint32_t v) {
  out->push_back(static_cast<char>(v & 0xFF));
  out->push_back(static_cast<char>((v >> 8) & 0xFF));
}
inline void Put32(std::string* out, uint32_t v) {
  Put16(out, v & 0xFFFF);
  Put16(out, v >> 16);
}

// Raw deflate of `header` followed by `zeros` zero bytes. Each 1 MiB of
// zeros is compressed after a full flush, which resets the compressor, so
// every such block compresses to the same bytes: compressed once, repeated.
inline std::string DeflateHeaderAndZeros(const std::string& header, uint64_t zeros, uint32_t* crc) {
  constexpr uint64_t kBlock = uint64_t{1} << 20;
  z_stream zs;
  std::memset(&zs, 0, sizeof(zs));
  deflateInit2(&zs, 9, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  std::string out;
  std::vector<unsigned char> buffer(2 * kBlock);
  auto run = [&](const void* data, uInt size, int flush) {
    std::string piece;
    zs.next_in = static_cast<Bytef*>(const_cast<void*>(data));
    zs.avail_in = size;
    do {
      zs.next_out = buffer.data();
      zs.avail_out = static_cast<uInt>(buffer.size());
      deflate(&zs, flush);
      piece.append(reinterpret_cast<char*>(buffer.data()), buffer.size() - zs.avail_out);
    } while (zs.avail_in > 0 || zs.avail_out == 0);
    return piece;
  };
  out += run(header.data(), static_cast<uInt>(header.size()), Z_FULL_FLUSH);
  const std::vector<char> block(kBlock, 0);
  const std::string one = run(block.data(), kBlock, Z_FULL_FLUSH);
  for (uint64_t i = 0; i < zeros / kBlock; ++i) out += one;
  out += run(block.data(), static_cast<uInt>(zeros % kBlock), Z_FINISH);
  deflateEnd(&zs);

  uLong c =
      crc32(0L, reinterpret_cast<const Bytef*>(header.data()), static_cast<uInt>(header.size()));
  const uLong block_crc = crc32(0L, reinterpret_cast<const Bytef*>(block.data()), kBlock);
  for (uint64_t i = 0; i < zeros / kBlock; ++i) c = crc32_combine(c, block_crc, kBlock);
  const uLong rest =
      crc32(0L, reinterpret_cast<const Bytef*>(block.data()), static_cast<uInt>(zeros % kBlock));
  c = crc32_combine(c, rest, static_cast<z_off_t>(zeros % kBlock));
  *crc = static_cast<uint32_t>(c);
  return out;
}

}  // namespace zeros_internal

// The archive's bytes. Each member's decoded size must stay below 4 GiB (no
// ZIP64 here).
inline std::string ZerosNpz(const std::vector<ZeroArray>& arrays) {
  using zeros_internal::Put16;
  using zeros_internal::Put32;
  std::string out, central;
  for (const ZeroArray& a : arrays) {
    std::string dims = absl::StrJoin(a.shape, ", ");
    if (a.shape.size() == 1) dims += ",";
    std::string dict =
        absl::StrCat("{'descr': '", a.descr, "', 'fortran_order': False, 'shape': (", dims, "), }");
    while ((10 + dict.size() + 1) % 64 != 0) dict.push_back(' ');
    dict.push_back('\n');
    std::string npy("\x93NUMPY\x01\x00", 8);
    Put16(&npy, static_cast<uint32_t>(dict.size()));
    npy += dict;
    uint64_t elements = 1;
    for (int64_t d : a.shape) elements *= static_cast<uint64_t>(d);
    const uint64_t data_bytes = elements * static_cast<uint64_t>(a.item_size);
    uint32_t crc = 0;
    const std::string payload = zeros_internal::DeflateHeaderAndZeros(npy, data_bytes, &crc);
    const uint64_t size = npy.size() + data_bytes;
    const std::string name = a.name + ".npy";
    const uint32_t offset = static_cast<uint32_t>(out.size());
    for (std::string* h : {&out, &central}) {
      const bool is_central = h == &central;
      Put32(h, is_central ? 0x02014b50 : 0x04034b50);
      if (is_central) Put16(h, 20);
      Put16(h, 20);
      Put16(h, 0);  // flags
      Put16(h, 8);  // deflated
      Put32(h, 0);  // time, date
      Put32(h, crc);
      Put32(h, static_cast<uint32_t>(payload.size()));
      Put32(h, static_cast<uint32_t>(size));
      Put16(h, static_cast<uint32_t>(name.size()));
      Put16(h, 0);  // extra
      if (is_central) {
        Put16(h, 0);  // comment
        Put16(h, 0);  // disk
        Put16(h, 0);  // internal attributes
        Put32(h, 0);  // external attributes
        Put32(h, offset);
      }
      *h += name;
      if (!is_central) *h += payload;
    }
  }
  const uint32_t central_offset = static_cast<uint32_t>(out.size());
  out += central;
  Put32(&out, 0x06054b50);
  Put32(&out, 0);
  Put16(&out, static_cast<uint32_t>(arrays.size()));
  Put16(&out, static_cast<uint32_t>(arrays.size()));
  Put32(&out, static_cast<uint32_t>(central.size()));
  Put32(&out, central_offset);
  Put16(&out, 0);
  return out;
}

// keep [4, 1e8] bool and signals [4, 1e8] float32: 2 GB declared, about 2 MB
// on disk.
inline std::string HugeZerosBundle() {
  return ZerosNpz({{"keep", "|b1", 1, {4, 100'000'000}}, {"signals", "<f4", 4, {4, 100'000'000}}});
}

}  // namespace mia::testdata

#endif  // MIA_TESTS_IO_ZEROS_NPZ_H_
