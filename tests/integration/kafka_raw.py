"""Minimal raw Kafka wire-protocol client built with `struct`, for tests that need to send
exactly what they want (malformed frames, corrupted CRCs) or APIs the Debian client
libraries lack (DeleteRecords, IncrementalAlterConfigs, DescribeCluster)."""
import socket
import struct
import time

# API keys
PRODUCE, FETCH, LIST_OFFSETS, METADATA = 0, 1, 2, 3
API_VERSIONS = 18
CREATE_TOPICS, DELETE_TOPICS, DELETE_RECORDS = 19, 20, 21
DESCRIBE_CONFIGS, ALTER_CONFIGS = 32, 33
CREATE_PARTITIONS = 37
OFFSET_COMMIT, OFFSET_FETCH, FIND_COORDINATOR, OFFSET_DELETE = 8, 9, 10, 47
INCREMENTAL_ALTER_CONFIGS = 44
DESCRIBE_CLUSTER = 60

# error codes
NONE = 0
OFFSET_OUT_OF_RANGE = 1
CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
MESSAGE_TOO_LARGE = 10
UNSUPPORTED_VERSION = 35
INVALID_REQUEST = 42
INVALID_CONFIG = 40


# ------------------------------------------------------------------ encoders
def i8(v): return struct.pack(">b", v)
def i16(v): return struct.pack(">h", v)
def i32(v): return struct.pack(">i", v)
def i64(v): return struct.pack(">q", v)
def boolean(v): return b"\x01" if v else b"\x00"


def string(s):
    if s is None:
        return i16(-1)
    b = s.encode() if isinstance(s, str) else s
    return i16(len(b)) + b


def kbytes(b):
    if b is None:
        return i32(-1)
    return i32(len(b)) + bytes(b)


def array(items, enc=lambda x: x):
    if items is None:
        return i32(-1)
    return i32(len(items)) + b"".join(enc(x) for x in items)


def uvarint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def compact_string(s):
    if s is None:
        return uvarint(0)
    b = s.encode() if isinstance(s, str) else s
    return uvarint(len(b) + 1) + b


def compact_array(items, enc=lambda x: x):
    if items is None:
        return uvarint(0)
    return uvarint(len(items) + 1) + b"".join(enc(x) for x in items)


TAGS_NONE = b"\x00"


def request_header(api_key, api_version, corr, client_id="chronik-raw", flexible=False):
    h = i16(api_key) + i16(api_version) + i32(corr) + string(client_id)
    if flexible:
        h += TAGS_NONE
    return h


def frame(payload):
    return i32(len(payload)) + payload


# ------------------------------------------------------------------ decoder
class Reader:
    def __init__(self, data):
        self.d = bytes(data)
        self.p = 0

    def _take(self, n):
        if self.p + n > len(self.d):
            raise ValueError("response truncated at %d (+%d of %d)" % (self.p, n, len(self.d)))
        b = self.d[self.p:self.p + n]
        self.p += n
        return b

    def i8(self): return struct.unpack(">b", self._take(1))[0]
    def i16(self): return struct.unpack(">h", self._take(2))[0]
    def i32(self): return struct.unpack(">i", self._take(4))[0]
    def i64(self): return struct.unpack(">q", self._take(8))[0]
    def boolean(self): return self._take(1) != b"\x00"

    def string(self):
        n = self.i16()
        return None if n < 0 else self._take(n).decode()

    def bytes(self):
        n = self.i32()
        return None if n < 0 else self._take(n)

    def array(self, fn):
        n = self.i32()
        return None if n < 0 else [fn(self) for _ in range(n)]

    def uvarint(self):
        shift = v = 0
        while True:
            b = self._take(1)[0]
            v |= (b & 0x7F) << shift
            if not b & 0x80:
                return v
            shift += 7

    def compact_string(self):
        n = self.uvarint()
        return None if n == 0 else self._take(n - 1).decode()

    def compact_array(self, fn):
        n = self.uvarint()
        return None if n == 0 else [fn(self) for _ in range(n - 1)]

    def tags(self):
        for _ in range(self.uvarint()):
            self.uvarint()
            self._take(self.uvarint())

    def remaining(self):
        return len(self.d) - self.p


# ------------------------------------------------------------------ connection
class Closed(Exception):
    pass


class Conn:
    def __init__(self, host, port, timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.corr = 0

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def _recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise Closed("connection closed by server after %d/%d bytes" % (len(buf), n))
            buf += chunk
        return bytes(buf)

    def recv_frame(self):
        (size,) = struct.unpack(">i", self._recv_exact(4))
        if size < 4 or size > 256 * 1024 * 1024:
            raise ValueError("bad response frame size %d" % size)
        return self._recv_exact(size)

    def request(self, api_key, api_version, body, flexible=False, response_flexible=None):
        """Send a request and return a Reader positioned after the response header."""
        self.corr += 1
        corr = self.corr
        self.send(frame(request_header(api_key, api_version, corr, flexible=flexible) + body))
        r = Reader(self.recv_frame())
        got = r.i32()
        if got != corr:
            raise ValueError("correlation id mismatch: sent %d got %d" % (corr, got))
        if response_flexible is None:
            response_flexible = flexible and api_key != API_VERSIONS
        if response_flexible:
            r.tags()
        return r

    def wait_closed(self, timeout=5.0):
        """True if the server closes the connection (EOF/RST) within timeout; any bytes
        received before the close are returned as the second element."""
        self.sock.settimeout(0.2)
        deadline = time.monotonic() + timeout
        got = bytearray()
        while time.monotonic() < deadline:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                return True, bytes(got)
            if not chunk:
                return True, bytes(got)
            got += chunk
        return False, bytes(got)


# ------------------------------------------------------------------ APIs
def api_versions(conn, version=0):
    """ApiVersions v0..v2 (non-flexible). Returns (error_code, {api_key: (min, max)})."""
    r = conn.request(API_VERSIONS, version, b"")
    return parse_api_versions_v0(r)


def parse_api_versions_v0(r):
    err = r.i16()
    keys = r.array(lambda r: (r.i16(), r.i16(), r.i16()))
    return err, {k: (lo, hi) for k, lo, hi in (keys or [])}


def api_versions_ok(host, port):
    try:
        with Conn(host, port, timeout=3) as c:
            err, keys = api_versions(c)
            return err == 0 and API_VERSIONS in keys
    except (Closed, ValueError, OSError):
        return False


def produce_v3(conn, topic, partition, records, acks=-1, timeout_ms=10000):
    """Produce v3 with one partition's records (a v2 record batch, raw bytes).
    Returns (error_code, base_offset)."""
    body = (string(None) + i16(acks) + i32(timeout_ms) +
            array([string(topic) + array([i32(partition) + kbytes(records)])]))
    r = conn.request(PRODUCE, 3, body)
    topics = r.array(lambda r: (r.string(), r.array(lambda r: (r.i32(), r.i16(), r.i64(), r.i64()))))
    assert topics and topics[0][0] == topic, topics
    part, err, base, _log_append = topics[0][1][0]
    assert part == partition
    return err, base


def list_offsets_v1(conn, topic, partition, timestamp):
    """ListOffsets v1: timestamp -1 = latest, -2 = earliest. Returns (error_code, offset)."""
    body = i32(-1) + array([string(topic) + array([i32(partition) + i64(timestamp)])])
    r = conn.request(LIST_OFFSETS, 1, body)
    topics = r.array(lambda r: (r.string(), r.array(lambda r: (r.i32(), r.i16(), r.i64(), r.i64()))))
    _p, err, _ts, off = topics[0][1][0]
    return err, off


def delete_records_v1(conn, topic, partitions_offsets, timeout_ms=10000):
    """DeleteRecords v1. partitions_offsets: {partition: offset}. Returns {partition: (low_wm, err)}."""
    body = array([string(topic) + array([i32(p) + i64(o) for p, o in sorted(partitions_offsets.items())])]) \
        + i32(timeout_ms)
    r = conn.request(DELETE_RECORDS, 1, body)
    r.i32()  # throttle
    topics = r.array(lambda r: (r.string(), r.array(lambda r: (r.i32(), r.i64(), r.i16()))))
    assert topics[0][0] == topic, topics
    return {p: (lw, err) for p, lw, err in topics[0][1]}


def incremental_alter_configs_v0(conn, resource_name, ops, validate_only=False, resource_type=2):
    """IncrementalAlterConfigs v0. ops: [(name, op, value)] with op 0=SET 1=DELETE 2=APPEND 3=SUBTRACT.
    Returns [(error_code, error_message, resource_type, resource_name)]."""
    cfgs = [string(n) + i8(op) + string(v) for n, op, v in ops]
    body = array([i8(resource_type) + string(resource_name) + array(cfgs)]) + boolean(validate_only)
    r = conn.request(INCREMENTAL_ALTER_CONFIGS, 0, body)
    r.i32()
    return r.array(lambda r: (r.i16(), r.string(), r.i8(), r.string()))


def describe_configs_v1(conn, resource_name, keys=None, resource_type=2):
    """DescribeConfigs v1 -> (error_code, {name: value})."""
    body = array([i8(resource_type) + string(resource_name) +
                  (array(keys, string) if keys is not None else i32(-1))]) + boolean(False)
    r = conn.request(DESCRIBE_CONFIGS, 1, body)
    r.i32()

    def entry(r):
        name, value = r.string(), r.string()
        r.boolean(); r.i8(); r.boolean()
        r.array(lambda r: (r.string(), r.string(), r.i8()))
        return name, value

    res = r.array(lambda r: (r.i16(), r.string(), r.i8(), r.string(), r.array(entry)))
    err, _msg, _t, _n, entries = res[0]
    return err, dict(entries or [])


def describe_cluster_v0(conn):
    """DescribeCluster v0 (flexible). Returns dict."""
    body = boolean(False) + TAGS_NONE
    r = conn.request(DESCRIBE_CLUSTER, 0, body, flexible=True)
    out = {"throttle": r.i32(), "error_code": r.i16(), "error_message": r.compact_string(),
           "cluster_id": r.compact_string(), "controller_id": r.i32()}

    def broker(r):
        b = (r.i32(), r.compact_string(), r.i32(), r.compact_string())
        r.tags()
        return b

    out["brokers"] = r.compact_array(broker)
    out["cluster_authorized_operations"] = r.i32()
    r.tags()
    return out


def build_batch(records, base_timestamp=None, compression=0):
    """A v2 record batch (bytes) built with kafka-python's builder.
    records: [(key, value, headers)], headers = [(str, bytes)]."""
    from kafka.record.default_records import DefaultRecordBatchBuilder
    b = DefaultRecordBatchBuilder(magic=2, compression_type=compression, is_transactional=False,
                                  producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                  batch_size=1 << 30)
    ts = base_timestamp if base_timestamp is not None else int(time.time() * 1000)
    for i, (k, v, h) in enumerate(records):
        b.append(i, timestamp=ts + i, key=k, value=v, headers=h or [])
    return bytes(b.build())


# ------------------------------------------------------------------ idempotent producer
INIT_PRODUCER_ID = 22
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47
TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53


def init_producer_id_v1(conn, transactional_id=None, txn_timeout_ms=60000):
    """InitProducerId v1 (non-flexible). Returns (error_code, producer_id, producer_epoch)."""
    r = conn.request(INIT_PRODUCER_ID, 1, string(transactional_id) + i32(txn_timeout_ms))
    r.i32()  # throttle
    return r.i16(), r.i64(), r.i16()


def init_producer_id_v3(conn, producer_id=-1, producer_epoch=-1, transactional_id=None,
                        txn_timeout_ms=60000):
    """InitProducerId v3 (flexible, KIP-360 re-init). Returns (error_code, producer_id, epoch)."""
    body = compact_string(transactional_id) + i32(txn_timeout_ms) + i64(producer_id) + \
        i16(producer_epoch) + TAGS_NONE
    r = conn.request(INIT_PRODUCER_ID, 3, body, flexible=True)
    r.i32()
    out = (r.i16(), r.i64(), r.i16())
    r.tags()
    return out


def build_idempotent_batch(records, producer_id, producer_epoch, base_sequence,
                           base_timestamp=None, compression=0):
    """Like build_batch, with the idempotent producer's id, epoch and base sequence."""
    from kafka.record.default_records import DefaultRecordBatchBuilder
    b = DefaultRecordBatchBuilder(magic=2, compression_type=compression, is_transactional=False,
                                  producer_id=producer_id, producer_epoch=producer_epoch,
                                  base_sequence=base_sequence, batch_size=1 << 30)
    ts = base_timestamp if base_timestamp is not None else int(time.time() * 1000)
    for i, (k, v, h) in enumerate(records):
        b.append(i, timestamp=ts + i, key=k, value=v, headers=h or [])
    return bytes(b.build())
