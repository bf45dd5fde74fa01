#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/, committed).

Usage: make_corpus.py [OUT_DIR]      (default: the corpus/ folder next to this script)

  corpus/request/  inputs of fuzz_request: int16 api key, int16 api version, request
                   header, body -- valid ApiVersions, Metadata, Produce (v2 batches of
                   every codec available here, legacy magic 0/1 sets), Fetch, ListOffsets,
                   CreateTopics requests
  corpus/records/  inputs of fuzz_records: the records field alone

Standard library only; lz4, zstandard and snappy seeds are added when those Python
modules are installed. Output is deterministic (fixed timestamps, sorted names)."""
import gzip
import os
import struct
import sys
import zlib


# ---------------------------------------------------------------- primitives
def i8(v): return struct.pack(">b", v)
def i16(v): return struct.pack(">h", v)
def i32(v): return struct.pack(">i", v)
def i64(v): return struct.pack(">q", v)
def u32(v): return struct.pack(">I", v)


def uvarint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def varint(v):  # zig-zag, 64-bit
    return uvarint((v << 1) ^ (v >> 63) if v < 0 else v << 1)


def string(s):
    if s is None:
        return i16(-1)
    b = s.encode()
    return i16(len(b)) + b


def cstring(s):  # compact
    if s is None:
        return uvarint(0)
    b = s.encode()
    return uvarint(len(b) + 1) + b


def kbytes(b):
    return i32(-1) if b is None else i32(len(b)) + b


def cbytes(b):
    return uvarint(0) if b is None else uvarint(len(b) + 1) + b


def array(items):
    return i32(len(items)) + b"".join(items)


def carray(items):
    return uvarint(len(items) + 1) + b"".join(items)


TAGS = b"\x00"


def _crc32c_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_T = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _T[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


# ---------------------------------------------------------------- records
TS = 1700000000000


def record(i, key, value, headers=()):
    body = (i8(0) + varint(i) + varint(i)
            + (varint(-1) if key is None else varint(len(key)) + key)
            + (varint(-1) if value is None else varint(len(value)) + value)
            + varint(len(headers))
            + b"".join(varint(len(k)) + k + (varint(-1) if v is None else varint(len(v)) + v)
                       for k, v in headers))
    return varint(len(body)) + body


def batch(recs, codec=0, compress=None, attrs=0, base_offset=0):
    raw = b"".join(record(i, *r) for i, r in enumerate(recs))
    payload = compress(raw) if compress else raw
    n = len(recs)
    after_crc = (i16(codec | attrs) + i32(n - 1) + i64(TS) + i64(TS + n - 1)
                 + i64(-1) + i16(-1) + i32(-1) + i32(n) + payload)
    head = i64(base_offset) + i32(4 + 1 + 4 + len(after_crc)) + i32(-1) + i8(2)
    return head + u32(crc32c(after_crc)) + after_crc


def legacy_msg(magic, offset, key, value, attrs=0, ts=TS):
    body = i8(magic) + i8(attrs) + (i64(ts) if magic == 1 else b"") + kbytes(key) + kbytes(value)
    crc = zlib.crc32(body) & 0xFFFFFFFF
    return i64(offset) + i32(4 + len(body)) + u32(crc) + body


def legacy_set(magic, kvs, base=0):
    return b"".join(legacy_msg(magic, base + i, k, v) for i, (k, v) in enumerate(kvs))


def gz(b):
    return gzip.compress(b, mtime=0)


RECS = [(b"k0", b"hello"), (None, b"v" * 40, [(b"h", b"x"), (b"n", None)]), (b"k2", None)]
KVS = [(b"k0", b"hello"), (None, b"world"), (b"k2", None)]


def record_seeds():
    s = {
        "v2_plain": batch(RECS),
        "v2_gzip": batch(RECS, 1, gz),
        "v2_two_batches": batch(RECS) + batch(RECS[:1], base_offset=3),
        "v2_empty_values": batch([(None, b"")] * 4),
        "v2_log_append_time": batch(RECS, attrs=0x08),
        "legacy_v0": legacy_set(0, KVS),
        "legacy_v1": legacy_set(1, KVS),
        "legacy_v1_gzip": legacy_msg(1, 2, None, gz(legacy_set(1, KVS)), attrs=1),
        "legacy_v0_gzip": legacy_msg(0, 2, None, gz(legacy_set(0, KVS)), attrs=1),
    }
    try:
        import lz4.frame
        s["v2_lz4"] = batch(RECS, 3, lambda b: lz4.frame.compress(b, content_checksum=False))
        s["legacy_v1_lz4"] = legacy_msg(1, 2, None, lz4.frame.compress(legacy_set(1, KVS)),
                                        attrs=3)
    except ImportError:
        pass
    try:
        import zstandard
        s["v2_zstd"] = batch(RECS, 4, zstandard.ZstdCompressor().compress)
    except ImportError:
        pass
    try:
        import snappy
        s["v2_snappy"] = batch(RECS, 2, snappy.compress)
        s["legacy_v1_snappy"] = legacy_msg(1, 2, None, snappy.compress(legacy_set(1, KVS)),
                                           attrs=2)
    except ImportError:
        pass
    return s


# ---------------------------------------------------------------- requests
def req(key, ver, body, flexible_header):
    hdr = i16(key) + i16(ver) + i32(7) + string("seed")
    if flexible_header:
        hdr += TAGS
    return i16(key) + i16(ver) + hdr + body


def produce(ver, records):
    if ver >= 9:
        part = i32(0) + cbytes(records) + TAGS
        topic = cstring("t") + carray([part]) + TAGS
        return cstring(None) + i16(-1) + i32(30000) + carray([topic]) + TAGS
    part = i32(0) + kbytes(records)
    topic = string("t") + array([part])
    txn = string(None) if ver >= 3 else b""
    return txn + i16(1) + i32(30000) + array([topic])


def request_seeds(recs):
    s = {
        "api_versions_v0": req(18, 0, b"", False),
        "api_versions_v3": req(18, 3, cstring("seed-client") + cstring("1.0") + TAGS, True),
        "metadata_v1": req(3, 1, array([string("t")]), False),
        "metadata_v1_all": req(3, 1, i32(-1), False),
        "metadata_v9": req(3, 9, carray([cstring("t") + TAGS]) + b"\x01\x00\x00" + TAGS, True),
        "metadata_v12": req(3, 12, carray([b"\x00" * 16 + cstring("t") + TAGS]) + b"\x01\x00"
                            + TAGS, True),
        "produce_v3": req(0, 3, produce(3, recs["v2_plain"]), False),
        "produce_v3_gzip": req(0, 3, produce(3, recs["v2_gzip"]), False),
        "produce_v9": req(0, 9, produce(9, recs["v2_two_batches"]), True),
        "produce_v2_legacy_v1": req(0, 2, produce(2, recs["legacy_v1"]), False),
        "produce_v0_legacy_v0": req(0, 0, produce(0, recs["legacy_v0"]), False),
        "produce_v2_legacy_gzip": req(0, 2, produce(2, recs["legacy_v1_gzip"]), False),
        "fetch_v4": req(1, 4, i32(-1) + i32(500) + i32(1) + i32(1 << 20) + i8(0)
                        + array([string("t") + array([i32(0) + i64(0) + i32(1 << 20)])]),
                        False),
        "list_offsets_v1": req(2, 1, i32(-1) + array([string("t") + array([i32(0) + i64(-2)])]),
                               False),
        "create_topics_v5": req(19, 5, carray([cstring("t") + i32(3) + i16(1) + carray([])
                                               + carray([cstring("retention.ms")
                                                         + cstring("1000") + TAGS]) + TAGS])
                                + i32(10000) + b"\x00" + TAGS, True),
    }
    for name in ("v2_lz4", "v2_zstd", "v2_snappy"):
        if name in recs:
            s["produce_v3_" + name[3:]] = req(0, 3, produce(3, recs[name]), False)
    return s


def write_dir(path, seeds):
    os.makedirs(path, exist_ok=True)
    for name in sorted(seeds):
        with open(os.path.join(path, name), "wb") as f:
            f.write(seeds[name])


def main(argv):
    out = argv[1] if len(argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                     "corpus")
    recs = record_seeds()
    write_dir(os.path.join(out, "records"), recs)
    write_dir(os.path.join(out, "request"), request_seeds(recs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
