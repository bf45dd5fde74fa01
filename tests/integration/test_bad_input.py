"""Malformed and hostile input on the Kafka port, with raw sockets.

The server must never crash, hang other clients or allocate what a client claims; after
each case it still serves a normal client, and data written before is intact."""
import random
import socket
import struct
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

import kafka_raw as raw
from conftest import ck_admin, unique_topic

BASE_TOPIC = unique_topic("bad-base")
BASE_COUNT = 25


def connect(server, timeout=10):
    return raw.Conn(server.host, server.kafka_port, timeout=timeout)


def end_offset(server, topic, partition=0):
    with connect(server) as c:
        err, off = raw.list_offsets_v1(c, topic, partition, -1)
        assert err == 0
        return off


def closed_or_response(conn, corr, timeout=5.0):
    """After a bad request the server may either close the connection or answer with an
    error response. Returns ("closed", None) or ("response", body_after_correlation_id)."""
    conn.sock.settimeout(timeout)
    try:
        head = conn._recv_exact(4)
    except (raw.Closed, ConnectionResetError, BrokenPipeError):
        return "closed", None
    except socket.timeout:
        pytest.fail("server neither answered nor closed the connection within %.0f s" % timeout)
    (size,) = struct.unpack(">i", head)
    assert 4 <= size < 64 * 1024 * 1024, "bad response size %d" % size
    body = conn._recv_exact(size)
    (got,) = struct.unpack(">i", body[:4])
    assert got == corr, "response correlation id %d, expected %d" % (got, corr)
    return "response", body[4:]


@pytest.fixture(scope="module", autouse=True)
def baseline(server):
    admin = ck_admin(server)  # keep a reference: the futures fail if the client is destroyed
    fs = admin.create_topics([NewTopic(BASE_TOPIC, 1, 1)], request_timeout=15)
    fs[BASE_TOPIC].result(timeout=20)
    p = Producer({"bootstrap.servers": server.bootstrap, "enable.idempotence": False, "acks": "all"})
    for i in range(BASE_COUNT):
        p.produce(BASE_TOPIC, key=b"k%d" % i, value=b"base-%d" % i, partition=0)
    assert p.flush(30) == 0
    assert end_offset(server, BASE_TOPIC) == BASE_COUNT
    yield


@pytest.fixture(autouse=True)
def still_serving(server):
    yield
    assert server.alive(), "chronik-server died (exit code %r)" % server.proc.returncode
    with connect(server, timeout=5) as c:
        err, keys = raw.api_versions(c)
    assert err == 0 and raw.PRODUCE in keys, "server does not answer ApiVersions after the bad input"


# ------------------------------------------------------------------ framing
def test_truncated_size_prefix_then_disconnect(server):
    with connect(server) as c:
        c.send(b"\x00\x00")


def test_truncated_frame_then_disconnect(server):
    req = raw.request_header(raw.METADATA, 1, 1) + raw.i32(-1)
    with connect(server) as c:
        c.send(raw.i32(len(req) + 100) + req)   # claims 100 more bytes than are ever sent


def test_client_disconnects_mid_request(server):
    topic = unique_topic("bad-mid")
    with connect(server) as c:  # create the topic (auto-create via produce) with one record
        err, _ = raw.produce_v3(c, topic, 0, raw.build_batch([(None, b"first", None)]))
        assert err == 0
    batch = raw.build_batch([(b"k", b"v" * 1000, None)] * 5)
    body = (raw.string(None) + raw.i16(-1) + raw.i32(10000) +
            raw.array([raw.string(topic) + raw.array([raw.i32(0) + raw.kbytes(batch)])]))
    frame = raw.frame(raw.request_header(raw.PRODUCE, 3, 7) + body)
    for cut in (5, 30, len(frame) // 2, len(frame) - 1):
        with connect(server) as c:
            c.send(frame[:cut])
    assert end_offset(server, topic) == 1, "a half-sent produce request was appended"


@pytest.mark.parametrize("size", [-1, -2147483648, 0, 1, 3])
def test_negative_or_tiny_size_closes(server, size):
    with connect(server) as c:
        c.send(raw.i32(size) + b"\x00" * 8)
        closed, data = c.wait_closed(5)
    assert closed, "server kept the connection open after frame size %d" % size
    assert data == b"", "server answered a frame of size %d" % size


@pytest.mark.parametrize("size", [100 * 1024 * 1024 + 1, 1 << 30, 0x7FFFFFFF])
def test_oversized_frame_closes_without_allocating(server, size):
    rss_before = server.rss_kib()
    with connect(server) as c:
        c.send(raw.i32(size) + raw.request_header(raw.PRODUCE, 3, 1) + b"\x00" * 4096)
        closed, _ = c.wait_closed(5)
    assert closed, "server kept the connection open after a %d-byte frame header" % size
    grown = server.rss_kib() - rss_before
    assert grown < 32 * 1024, "RSS grew by %d KiB after a %d-byte frame header" % (grown, size)


def test_many_oversized_frames_in_parallel(server):
    rss_before = server.rss_kib()
    conns = [connect(server) for _ in range(20)]
    try:
        for c in conns:
            c.send(raw.i32(99 * 1024 * 1024))   # below the limit: server may wait for the body
        time.sleep(0.2)
        grown = server.rss_kib() - rss_before
        assert grown < 64 * 1024, "RSS grew by %d KiB for 20 unfulfilled 99 MiB frame headers" % grown
    finally:
        for c in conns:
            c.close()


def test_garbage_bytes(server):
    rnd = random.Random(1234)
    for i in range(20):
        junk = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(1, 2048)))
        with connect(server) as c:
            try:
                c.send(junk)
                if i % 2 == 0:
                    c.wait_closed(0.3)
            except (ConnectionResetError, BrokenPipeError):
                pass
    # a complete frame of garbage after a well-formed size
    for i in range(10):
        junk = bytes(rnd.getrandbits(8) for _ in range(200))
        with connect(server) as c:
            c.send(raw.i32(len(junk)) + junk)
            # either an error response (any correlation id) or a close; never a hang forever
            c.sock.settimeout(5)
            try:
                c.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                pass
            except socket.timeout:
                pytest.fail("no response and no close for a garbage frame")


# ------------------------------------------------------------------ header level
@pytest.mark.parametrize("api_key", [999, 32767, -1, 10000])
def test_unknown_api_key(server, api_key):
    with connect(server) as c:
        c.send(raw.frame(raw.request_header(api_key, 0, 4242) + b"\x00" * 16))
        kind, _body = closed_or_response(c, 4242)
    assert kind in ("closed", "response")


def test_api_versions_too_new_gets_v0_unsupported_version(server):
    with connect(server) as c:
        # a future ApiVersions version (flexible header, as a new client would send)
        body = raw.compact_string("chronik-test") + raw.compact_string("1.0") + raw.TAGS_NONE
        c.send(raw.frame(raw.request_header(raw.API_VERSIONS, 99, 77, flexible=True) + body))
        r = raw.Reader(c.recv_frame())
        assert r.i32() == 77
        err, keys = raw.parse_api_versions_v0(r)
        assert err == raw.UNSUPPORTED_VERSION, "error code %d, expected 35 UNSUPPORTED_VERSION" % err
        assert raw.API_VERSIONS in keys and keys[raw.API_VERSIONS][0] == 0 and keys[raw.API_VERSIONS][1] >= 2
        for k in (raw.PRODUCE, raw.FETCH, raw.LIST_OFFSETS, raw.METADATA, raw.CREATE_TOPICS,
                  raw.DELETE_TOPICS, raw.DELETE_RECORDS, raw.DESCRIBE_CONFIGS, raw.ALTER_CONFIGS,
                  raw.CREATE_PARTITIONS, raw.INCREMENTAL_ALTER_CONFIGS, raw.DESCRIBE_CLUSTER):
            assert k in keys, "api key %d missing from the supported ranges" % k
            assert 0 <= keys[k][0] <= keys[k][1]
        # the connection stays usable: the client retries with a supported version
        err, keys2 = raw.api_versions(c, 0)
        assert err == 0 and keys2 == keys


@pytest.mark.parametrize("api_key", [raw.METADATA, raw.PRODUCE, raw.FETCH])
def test_unsupported_version_of_known_api(server, api_key):
    with connect(server) as c:
        c.send(raw.frame(raw.request_header(api_key, 200, 55) + b"\x00" * 32))
        kind, _ = closed_or_response(c, 55)
    assert kind in ("closed", "response")


def test_valid_header_truncated_body(server):
    # Metadata v1 claiming 5 topic names that are not there
    with connect(server) as c:
        c.send(raw.frame(raw.request_header(raw.METADATA, 1, 9) + raw.i32(5)))
        closed_or_response(c, 9)
    # Metadata v1 with a topic name longer than the frame
    with connect(server) as c:
        c.send(raw.frame(raw.request_header(raw.METADATA, 1, 10) + raw.i32(1) + raw.i16(500) + b"abc"))
        closed_or_response(c, 10)
    # Produce whose records length runs past the end of the frame: nothing appended
    before = end_offset(server, BASE_TOPIC)
    batch = raw.build_batch([(None, b"should-not-appear", None)])
    body = (raw.string(None) + raw.i16(-1) + raw.i32(10000) +
            raw.array([raw.string(BASE_TOPIC) + raw.array([raw.i32(0) + raw.i32(len(batch) + 1000) + batch])]))
    with connect(server) as c:
        c.send(raw.frame(raw.request_header(raw.PRODUCE, 3, 11) + body))
        kind, resp = closed_or_response(c, 11)
    if kind == "response":  # then it must carry an error for the partition
        r = raw.Reader(resp)
        topics = r.array(lambda r: (r.string(), r.array(lambda r: (r.i32(), r.i16(), r.i64(), r.i64()))))
        assert topics and topics[0][1] and topics[0][1][0][1] != 0, "truncated produce answered %r" % (topics,)
    # a header whose client_id length runs past the frame
    with connect(server) as c:
        c.send(raw.frame(raw.i16(raw.METADATA) + raw.i16(1) + raw.i32(12) + raw.i16(1000) + b"x"))
        closed_or_response(c, 12)
    # a frame shorter than the fixed request header
    with connect(server) as c:
        c.send(raw.frame(raw.i16(raw.METADATA) + raw.i16(1) + b"\x00"))
        closed, _ = c.wait_closed(5)
        assert closed
    assert end_offset(server, BASE_TOPIC) == before, "truncated produce request appended data"


def test_batch_length_mismatch_is_rejected(server):
    topic = unique_topic("bad-len")
    with connect(server) as c:
        err, _ = raw.produce_v3(c, topic, 0, raw.build_batch([(None, b"ok", None)]))
        assert err == 0
        batch = bytearray(raw.build_batch([(None, b"x" * 100, None)]))
        struct.pack_into(">i", batch, 8, struct.unpack_from(">i", batch, 8)[0] + 50)  # batchLength too big
        err, _ = raw.produce_v3(c, topic, 0, bytes(batch))
        assert err != 0, "a record batch with a wrong length field was accepted"
        assert raw.list_offsets_v1(c, topic, 0, -1) == (0, 1)


def test_corrupted_crc_rejected_with_corrupt_message(server):
    topic = unique_topic("bad-crc")
    with connect(server) as c:
        good = raw.build_batch([(b"k", b"good-%d" % i, [("h", b"v")]) for i in range(3)])
        err, base = raw.produce_v3(c, topic, 0, good)
        assert (err, base) == (0, 0)
        bad = bytearray(raw.build_batch([(b"k", b"tampered-%d" % i, None) for i in range(3)]))
        bad[-1] ^= 0xFF            # flip the last byte of the last value: CRC no longer matches
        err, _ = raw.produce_v3(c, topic, 0, bytes(bad))
        assert err == raw.CORRUPT_MESSAGE, "produce of a batch with a bad CRC: error %d, expected 2" % err
        bad2 = bytearray(good)
        bad2[17] ^= 0x01           # corrupt the CRC field itself (bytes 17..20)
        err, _ = raw.produce_v3(c, topic, 0, bytes(bad2))
        assert err == raw.CORRUPT_MESSAGE
        assert raw.list_offsets_v1(c, topic, 0, -1) == (0, 3), "corrupted batch was appended"
        err, base = raw.produce_v3(c, topic, 0, good)
        assert (err, base) == (0, 3)
    cons = Consumer({"bootstrap.servers": server.bootstrap, "group.id": "chronik-it-unused",
                     "enable.auto.commit": False, "check.crcs": True})
    try:
        cons.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        vals = []
        deadline = time.monotonic() + 20
        while len(vals) < 6 and time.monotonic() < deadline:
            m = cons.poll(0.5)
            if m is not None and not m.error():
                vals.append(m.value())
    finally:
        cons.close()
    assert vals == [b"good-%d" % i for i in range(3)] * 2


# ------------------------------------------------------------------ protocol edge cases
def test_byte_by_byte_request(server):
    req = raw.frame(raw.request_header(raw.API_VERSIONS, 0, 31))
    with connect(server) as c:
        for b in req:
            c.send(bytes([b]))
            time.sleep(0.002)
        r = raw.Reader(c.recv_frame())
        assert r.i32() == 31
        err, keys = raw.parse_api_versions_v0(r)
        assert err == 0 and raw.PRODUCE in keys


def test_pipelined_requests_answered_in_order(server):
    with connect(server) as c:
        reqs = b""
        for corr in range(100, 110):
            if corr % 2:
                reqs += raw.frame(raw.request_header(raw.API_VERSIONS, 0, corr))
            else:
                reqs += raw.frame(raw.request_header(raw.METADATA, 1, corr) + raw.array([raw.string(BASE_TOPIC)]))
        c.send(reqs)
        got = [struct.unpack(">i", c.recv_frame()[:4])[0] for _ in range(10)]
    assert got == list(range(100, 110))


def test_idle_half_open_connections_do_not_block_others(server):
    idle = [connect(server) for _ in range(50)]
    try:
        for c in idle[::2]:
            c.send(raw.i32(64))  # a frame header and then nothing
        t0 = time.monotonic()
        with connect(server, timeout=5) as c:
            err, _ = raw.api_versions(c)
        assert err == 0 and time.monotonic() - t0 < 3
    finally:
        for c in idle:
            c.close()


# ------------------------------------------------------------------ afterwards (keep last)
def test_zz_normal_client_works_and_data_intact(server):
    assert server.alive()
    c = Consumer({"bootstrap.servers": server.bootstrap, "group.id": "chronik-it-unused",
                  "enable.auto.commit": False, "socket.timeout.ms": 10000})
    out = []
    try:
        assert c.get_watermark_offsets(TopicPartition(BASE_TOPIC, 0), timeout=10) == (0, BASE_COUNT)
        c.assign([TopicPartition(BASE_TOPIC, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + 20
        while len(out) < BASE_COUNT and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                out.append((m.offset(), m.key(), m.value()))
    finally:
        c.close()
    assert out == [(i, b"k%d" % i, b"base-%d" % i) for i in range(BASE_COUNT)]
    p = Producer({"bootstrap.servers": server.bootstrap, "enable.idempotence": False, "acks": "all"})
    res = []
    p.produce(BASE_TOPIC, value=b"after", partition=0, on_delivery=lambda e, m: res.append((e, m.offset())))
    assert p.flush(20) == 0
    assert res == [(None, BASE_COUNT)]
