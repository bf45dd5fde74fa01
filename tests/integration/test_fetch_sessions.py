"""Fetch over the raw protocol: incremental fetch sessions (KIP-227) as Java clients use
them, long-poll (max_wait_ms/min_bytes), and the byte limits (KIP-74)."""
import time

import kafka_raw as kr
from conftest import unique_topic

FETCH_SESSION_ID_NOT_FOUND = 70
INVALID_FETCH_SESSION_EPOCH = 71


def fetch_v7(conn, session_id, epoch, parts, forgotten=(), max_wait=0, min_bytes=1,
             max_bytes=10 << 20, part_max=1 << 20):
    """parts: [(topic, partition, offset)]; forgotten: [(topic, partition)].
    Returns (error, session_id, {(topic, partition): (err, hw, records_bytes)})."""
    by_topic = {}
    for t, p, off in parts:
        by_topic.setdefault(t, []).append(kr.i32(p) + kr.i64(off) + kr.i64(-1) + kr.i32(part_max))
    forg = {}
    for t, p in forgotten:
        forg.setdefault(t, []).append(kr.i32(p))
    body = (kr.i32(-1) + kr.i32(max_wait) + kr.i32(min_bytes) + kr.i32(max_bytes) + kr.i8(0) +
            kr.i32(session_id) + kr.i32(epoch) +
            kr.array([kr.string(t) + kr.array(ps) for t, ps in by_topic.items()]) +
            kr.array([kr.string(t) + kr.array(ps) for t, ps in forg.items()]))
    r = conn.request(kr.FETCH, 7, body)
    r.i32()  # throttle
    err = r.i16()
    sid = r.i32()
    out = {}
    def part(r, topic):
        p = r.i32(); e = r.i16(); hw = r.i64(); r.i64(); r.i64()
        r.array(lambda r: (r.i64(), r.i64()))
        recs = r.bytes()
        out[(topic, p)] = (e, hw, recs or b"")
    def topic(r):
        t = r.string()
        r.array(lambda r: part(r, t))
    r.array(topic)
    return err, sid, out


def produce(conn, topic, partition, values):
    err, base = kr.produce_v3(conn, topic, partition, kr.build_batch([(None, v, []) for v in values]))
    assert err == 0
    return base


def test_incremental_fetch_session(server):
    t = unique_topic("sess")
    with kr.Conn(server.host, server.kafka_port) as c:
        produce(c, t, 0, [b"a0", b"a1", b"a2"])
        produce(c, t, 1, [b"b0", b"b1", b"b2"])
        # epoch 0 opens a session and answers every partition
        err, sid, out = fetch_v7(c, 0, 0, [(t, 0, 0), (t, 1, 0)])
        assert err == 0 and sid != 0
        assert set(out) == {(t, 0), (t, 1)}
        assert out[(t, 0)][1] == 3 and b"a2" in out[(t, 0)][2]
        # the client moves its offsets: changed partitions are always answered
        err, sid2, out = fetch_v7(c, sid, 1, [(t, 0, 3), (t, 1, 3)])
        assert err == 0 and sid2 == sid and set(out) == {(t, 0), (t, 1)}
        assert out[(t, 0)][2] == b"" and out[(t, 1)][2] == b""
        # nothing changed: a long poll ends empty, with no partition in the reply
        t0 = time.monotonic()
        err, _, out = fetch_v7(c, sid, 2, [], max_wait=300)
        assert err == 0 and out == {}
        assert time.monotonic() - t0 >= 0.25, "max_wait_ms was not honoured"
        # new data in partition 1 only: only partition 1 comes back
        produce(c, t, 1, [b"b3"])
        err, _, out = fetch_v7(c, sid, 3, [], max_wait=2000)
        assert err == 0 and set(out) == {(t, 1)} and b"b3" in out[(t, 1)][2]
        # a wrong epoch is refused
        err, _, out = fetch_v7(c, sid, 9, [])
        assert err == INVALID_FETCH_SESSION_EPOCH and out == {}
        # forgetting partition 1: its new data is no longer sent
        err, _, out = fetch_v7(c, sid, 4, [], forgotten=[(t, 1)])
        assert err == 0
        produce(c, t, 1, [b"b4"])
        produce(c, t, 0, [b"a3"])
        err, _, out = fetch_v7(c, sid, 5, [], max_wait=2000)
        assert err == 0 and set(out) == {(t, 0)} and b"a3" in out[(t, 0)][2]
        # epoch -1 closes the session; the id is then unknown
        err, sid3, out = fetch_v7(c, sid, -1, [(t, 0, 0)])
        assert err == 0 and sid3 == 0 and (t, 0) in out
        err, _, _ = fetch_v7(c, sid, 6, [])
        assert err == FETCH_SESSION_ID_NOT_FOUND


def test_long_poll_wakes_on_new_data(server):
    t = unique_topic("poll")
    with kr.Conn(server.host, server.kafka_port) as c, kr.Conn(server.host, server.kafka_port) as p:
        produce(p, t, 0, [b"x"])
        # sessionless fetch (epoch -1) at the end of the log, waiting up to 10 s
        c.corr += 1
        body = (kr.i32(-1) + kr.i32(10000) + kr.i32(1) + kr.i32(1 << 20) + kr.i8(0) + kr.i32(0) + kr.i32(-1) +
                kr.array([kr.string(t) + kr.array([kr.i32(0) + kr.i64(1) + kr.i64(-1) + kr.i32(1 << 20)])]) +
                kr.array([]))
        t0 = time.monotonic()
        c.send(kr.frame(kr.request_header(kr.FETCH, 7, c.corr) + body))
        time.sleep(0.3)
        produce(p, t, 0, [b"wake-up"])
        r = kr.Reader(c.recv_frame())
        assert r.i32() == c.corr
        waited = time.monotonic() - t0
        assert b"wake-up" in r.d
        assert waited < 5, "the fetch did not wake on new data (%.2f s)" % waited


def test_byte_limits(server):
    t = unique_topic("limits")
    with kr.Conn(server.host, server.kafka_port) as c:
        for i in range(10):
            produce(c, t, 0, [b"%d" % i + b"y" * 999])
        # a partition limit smaller than one batch still returns that first batch (KIP-74)
        err, _, out = fetch_v7(c, 0, -1, [(t, 0, 0)], part_max=10)
        assert err == 0 and out[(t, 0)][0] == 0
        first = out[(t, 0)][2]
        assert b"0yyy" in first and b"1yyy" not in first
        # a limit of about three batches returns whole batches only
        err, _, out = fetch_v7(c, 0, -1, [(t, 0, 0)], part_max=3500)
        recs = out[(t, 0)][2]
        assert b"2yyy" in recs and b"4yyy" not in recs and len(recs) <= 3500


def test_large_reply_read_slowly_arrives_intact(server):
    """A reply of several MiB written in many partial writes (the reader is slow and its
    receive buffer small): every batch arrives whole, with a valid CRC, in offset order."""
    import socket
    import struct
    from kafka.record.util import calc_crc32c
    t = unique_topic("slow")
    with kr.Conn(server.host, server.kafka_port) as p:
        for i in range(40):
            produce(p, t, 0, [b"%04d-%03d-" % (i, j) + b"z" * 1000 for j in range(100)])
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    s.connect((server.host, server.kafka_port))
    c = kr.Conn.__new__(kr.Conn)
    c.sock, c.corr = s, 0
    body = (kr.i32(-1) + kr.i32(0) + kr.i32(1) + kr.i32(64 << 20) + kr.i8(0) +
            kr.array([kr.string(t) + kr.array([kr.i32(0) + kr.i64(0) + kr.i32(64 << 20)])]))
    c.send(kr.frame(kr.request_header(kr.FETCH, 4, 1) + body))
    time.sleep(0.5)
    buf = bytearray()
    while len(buf) < 4 or len(buf) < 4 + struct.unpack(">i", bytes(buf[:4]))[0]:
        chunk = s.recv(3000)
        assert chunk, "connection closed mid-reply"
        buf += chunk
        time.sleep(0.0005)
    s.close()
    r = kr.Reader(bytes(buf[4:]))
    assert r.i32() == 1
    r.i32()  # throttle
    topics = r.array(lambda r: (r.string(), r.array(
        lambda r: (r.i32(), r.i16(), r.i64(), r.i64(), r.array(lambda r: (r.i64(), r.i64())), r.bytes()))))
    (_, parts), = topics
    (_, err, hw, _, _, recs), = parts
    assert err == 0 and hw == 4000
    assert len(recs) > 4_000_000
    pos, expect_base, batches = 0, 0, 0
    while pos < len(recs):
        base, length = struct.unpack(">qi", recs[pos:pos + 12])
        batch = recs[pos:pos + 12 + length]
        assert len(batch) == 12 + length, "truncated batch at %d" % pos
        (crc,) = struct.unpack(">I", batch[17:21])
        assert crc == calc_crc32c(batch[21:]), "bad CRC in batch at offset %d" % base
        assert base == expect_base
        expect_base += 100
        batches += 1
        pos += 12 + length
    assert batches == 40
