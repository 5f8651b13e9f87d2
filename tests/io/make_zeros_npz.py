#!/usr/bin/env python3
"""Writes an .npz of deflated zeros declaring keep and signals of [4, 1e8].

Usage: make_zeros_npz.py OUT.npz. About 2 MB on disk and 2 GB decoded, with
correct CRCs and sizes: the hostile upload of issue 9 (item 8), for the shell
tests (tests/io/zeros_npz.h builds the same in C++). Standard library only.
"""
import struct, sys, zlib
def member(name, descr, item, shape):
    d = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (descr, ", ".join(map(str, shape)))
    d += " " * ((64 - (11 + len(d)) % 64) % 64) + "\n"
    header = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(d)) + d.encode()
    size = item
    for s in shape:
        size *= s
    block = bytes(1 << 20)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    # After a full flush the compressor starts afresh: every zero block compresses alike.
    data = c.compress(header) + c.flush(zlib.Z_FULL_FLUSH)
    one = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    data += one * (size // len(block) - 1) + c.compress(bytes(size % len(block))) + c.flush()
    crc = zlib.crc32(header)
    for _ in range(size // len(block)):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(bytes(size % len(block)), crc)
    return name + ".npy", data, crc, len(header) + size
out, central = b"", b""
for name, data, crc, size in [member("keep", "|b1", 1, (4, 10**8)), member("signals", "<f4", 4, (4, 10**8))]:
    n = name.encode()
    central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014b50, 20, 20, 0, 8, 0, 0, crc, len(data), size, len(n), 0, 0, 0, 0, 0, len(out)) + n
    out += struct.pack("<IHHHHHIIIHH", 0x04034b50, 20, 0, 8, 0, 0, crc, len(data), size, len(n), 0) + n + data
out += central + struct.pack("<IHHHHIIH", 0x06054b50, 0, 0, 2, 2, len(central), len(out), 0)
open(sys.argv[1], "wb").write(out)
