"""kafka-python 2.0.2 (Debian python3-kafka) against chronik-server.

No consumer groups yet: every consumer uses group_id=None + assign()."""
import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic
from kafka.errors import (InvalidConfigurationError, KafkaError, MessageSizeTooLargeError,
                          TopicAlreadyExistsError)

from conftest import kp_admin, unique_topic, wait_for


def producer(server, **kw):
    kw.setdefault("request_timeout_ms", 15000)
    kw.setdefault("max_block_ms", 15000)
    kw.setdefault("acks", "all")
    return KafkaProducer(bootstrap_servers=server.bootstrap, client_id="chronik-it-kp", **kw)


def consumer(server, **kw):
    kw.setdefault("request_timeout_ms", 15000)
    return KafkaConsumer(bootstrap_servers=server.bootstrap, group_id=None, enable_auto_commit=False,
                         auto_offset_reset="earliest", client_id="chronik-it-kc", **kw)


def read_partition(server, topic, partition, count, timeout=20.0, **kw):
    """Read `count` records from the start of one partition (assign, no group)."""
    c = consumer(server, **kw)
    try:
        tp = TopicPartition(topic, partition)
        c.assign([tp])
        c.seek_to_beginning(tp)
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=500).values():
                out.extend(recs)
        assert len(out) >= count, "read %d of %d records from %s[%d]" % (len(out), count, topic, partition)
        return out
    finally:
        c.close()


def create_topic(server, topic, partitions=1, configs=None):
    a = kp_admin(server)
    try:
        a.create_topics([NewTopic(topic, partitions, 1, topic_configs=configs or {})], timeout_ms=15000)
    finally:
        a.close()


def describe(server, topic):
    a = kp_admin(server)
    try:
        res = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        a.close()
    resources = [r for resp in res for r in resp.resources]
    assert len(resources) == 1, resources
    err, _msg, _rtype, name, entries = resources[0][:5]
    assert err == 0, "DescribeConfigs error %d for %s" % (err, topic)
    assert name == topic
    return {e[0]: e[1] for e in entries}


# ------------------------------------------------------------------ round trips
def test_round_trip_keys_nulls_headers_timestamps(server):
    topic = unique_topic("kp-rt")
    create_topic(server, topic, 1)
    base_ts = int(time.time() * 1000) - 3_600_000
    msgs = [
        (b"k0", b"v0", [("h1", b"x")], base_ts),
        (b"k1", None, [], base_ts + 1),                     # null value (tombstone)
        (None, b"no-key", [("a", b""), ("b", b"\x00\xff")], base_ts + 2),
        (b"k3", b"", [("dup", b"1"), ("dup", b"2")], base_ts + 3),
        (b"\x00bin", bytes(range(256)), [], base_ts + 4),
    ]
    p = producer(server)
    try:
        futs = [p.send(topic, key=k, value=v, headers=h, partition=0, timestamp_ms=ts) for k, v, h, ts in msgs]
        p.flush(20)
        metas = [f.get(timeout=20) for f in futs]
    finally:
        p.close(10)
    assert [m.offset for m in metas] == list(range(len(msgs)))
    recs = read_partition(server, topic, 0, len(msgs))
    assert [r.offset for r in recs] == list(range(len(msgs)))
    for r, (k, v, h, ts) in zip(recs, msgs):
        assert r.key == k
        assert r.value == v
        assert list(r.headers) == h
        assert r.timestamp == ts
        assert r.timestamp_type == 0  # CreateTime


def test_auto_create_on_produce_default_partitions(server):
    topic = unique_topic("kp-auto")
    p = producer(server)
    try:
        md = p.send(topic, b"hello").get(timeout=20)
        parts = p.partitions_for(topic)
    finally:
        p.close(10)
    assert md.topic == topic and md.offset == 0
    assert parts == {0, 1, 2}  # CHRONIK_DEFAULT_PARTITIONS=3


def test_magic1_producer_and_consumer_api_0_10_0(server):
    """The upstream README example: KafkaProducer(..., api_version=(0, 10, 0))."""
    topic = unique_topic("kp-v010")
    create_topic(server, topic, 1)
    ts0 = int(time.time() * 1000) - 10_000
    p = producer(server, api_version=(0, 10, 0))
    try:
        futs = [p.send(topic, key=b"key-%d" % i, value=b"value-%d" % i, partition=0, timestamp_ms=ts0 + i)
                for i in range(10)]
        p.flush(20)
        offs = [f.get(timeout=20).offset for f in futs]
    finally:
        p.close(10)
    assert offs == list(range(10))
    recs = read_partition(server, topic, 0, 10, api_version=(0, 10, 0))
    assert [(r.offset, r.key, r.value, r.timestamp) for r in recs[:10]] == \
        [(i, b"key-%d" % i, b"value-%d" % i, ts0 + i) for i in range(10)]
    # and a modern consumer reads the same (converted) records
    recs2 = read_partition(server, topic, 0, 10)
    assert [(r.offset, r.key, r.value) for r in recs2[:10]] == [(i, b"key-%d" % i, b"value-%d" % i) for i in range(10)]


def _codec_available(codec):
    from kafka import codec as kc
    return {"gzip": kc.has_gzip, "snappy": kc.has_snappy, "lz4": kc.has_lz4, "zstd": kc.has_zstd}[codec]()


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compression(server, codec):
    if not _codec_available(codec):
        pytest.skip("python module for %s missing (Debian python3-%s; run scripts/setup.sh)" % (
            codec, {"snappy": "snappy", "lz4": "lz4", "zstd": "zstandard", "gzip": "?"}[codec]))
    topic = unique_topic("kp-" + codec)
    create_topic(server, topic, 1)
    extra = {"api_version": (2, 1, 0)} if codec == "zstd" else {}  # kafka-python: zstd needs >= 2.1
    values = [(b"%s-record-%04d " % (codec.encode(), i)) * 20 for i in range(200)]
    p = producer(server, compression_type=codec, linger_ms=50, batch_size=64 * 1024, **extra)
    try:
        futs = [p.send(topic, key=b"%d" % i, value=v, partition=0) for i, v in enumerate(values)]
        p.flush(20)
        offs = [f.get(timeout=20).offset for f in futs]
    finally:
        p.close(10)
    assert offs == list(range(200))
    recs = read_partition(server, topic, 0, 200, **extra)
    assert [r.value for r in recs[:200]] == values
    assert [r.key for r in recs[:200]] == [b"%d" % i for i in range(200)]


def test_compressed_magic1(server):
    """Compressed message sets in the old (magic 1) format."""
    topic = unique_topic("kp-gz-v010")
    create_topic(server, topic, 1)
    p = producer(server, api_version=(0, 10, 0), compression_type="gzip", linger_ms=50)
    try:
        futs = [p.send(topic, value=b"m1-%d" % i, partition=0) for i in range(50)]
        p.flush(20)
        offs = [f.get(timeout=20).offset for f in futs]
    finally:
        p.close(10)
    assert offs == list(range(50))
    recs = read_partition(server, topic, 0, 50)
    assert [(r.offset, r.value) for r in recs[:50]] == [(i, b"m1-%d" % i) for i in range(50)]


# ------------------------------------------------------------------ admin
def test_admin_create_describe_alter_delete(server):
    topic = unique_topic("kp-admin")
    create_topic(server, topic, 2, {"retention.ms": "3600000", "segment.bytes": "1048576",
                                    "max.message.bytes": "500000"})
    cfg = describe(server, topic)
    assert cfg["retention.ms"] == "3600000"
    assert cfg["segment.bytes"] == "1048576"
    assert cfg["max.message.bytes"] == "500000"
    assert "cleanup.policy" in cfg

    a = kp_admin(server)
    try:
        # creating it again fails
        with pytest.raises(TopicAlreadyExistsError):
            a.create_topics([NewTopic(topic, 2, 1)], timeout_ms=15000)
        # AlterConfigs (non-incremental: sets the given keys)
        res = a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                              configs={"retention.ms": "7200000"})])
        errs = [r[0] for resp in (res if isinstance(res, list) else [res]) for r in resp.resources]
        assert errs == [0]
    finally:
        a.close()
    assert describe(server, topic)["retention.ms"] == "7200000"

    # listed, then deleted
    c = consumer(server)
    try:
        assert topic in c.topics()
    finally:
        c.close()
    a = kp_admin(server)
    try:
        a.delete_topics([topic], timeout_ms=15000)
    finally:
        a.close()
    c = consumer(server)
    try:
        wait_for(lambda: topic not in c.topics(), 10, 0.2, "deleted topic to disappear from metadata")
    finally:
        c.close()


@pytest.mark.parametrize("configs", [
    {"cleanup.policy": "compact"},
    {"retention.ms": "not-a-number"},
    {"no.such.config.key": "1"},
    {"message.timestamp.type": "WallClockTime"},
    {"max.message.bytes": "-5"},
])
def test_admin_create_invalid_config(server, configs):
    topic = unique_topic("kp-bad")
    a = kp_admin(server)
    try:
        with pytest.raises(InvalidConfigurationError):
            a.create_topics([NewTopic(topic, 1, 1, topic_configs=configs)], timeout_ms=15000)
    finally:
        a.close()
    c = consumer(server)
    try:
        # (KafkaConsumer.topics() asks for all topics, so nothing is auto-created here)
        assert topic not in c.topics()
    finally:
        c.close()


def test_admin_alter_invalid_config(server):
    topic = unique_topic("kp-badalter")
    create_topic(server, topic, 1, {"retention.ms": "3600000"})
    a = kp_admin(server)
    try:
        res = a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                              configs={"retention.ms": "soon"})])
        errs = [r[0] for resp in (res if isinstance(res, list) else [res]) for r in resp.resources]
    finally:
        a.close()
    assert errs == [40], "expected INVALID_CONFIG (40), got %r" % errs
    assert describe(server, topic)["retention.ms"] == "3600000"


def test_admin_create_partitions(server):
    topic = unique_topic("kp-parts")
    create_topic(server, topic, 2)
    a = kp_admin(server)
    try:
        a.create_partitions({topic: NewPartitions(total_count=5)}, timeout_ms=15000)
        # shrinking is not allowed
        with pytest.raises(KafkaError):
            a.create_partitions({topic: NewPartitions(total_count=3)}, timeout_ms=15000)
    finally:
        a.close()
    c = consumer(server)
    try:
        # topics() refreshes the metadata of all topics
        wait_for(lambda: c.topics() and c.partitions_for_topic(topic) == {0, 1, 2, 3, 4},
                 10, 0.2, "5 partitions in metadata")
    finally:
        c.close()
    # the new partition works
    p = producer(server)
    try:
        md = p.send(topic, b"in-p4", partition=4).get(timeout=20)
    finally:
        p.close(10)
    assert (md.partition, md.offset) == (4, 0)
    assert read_partition(server, topic, 4, 1)[0].value == b"in-p4"


# ------------------------------------------------------------------ limits
def test_max_message_bytes(server):
    limit = 20_000
    topic = unique_topic("kp-max")
    create_topic(server, topic, 1, {"max.message.bytes": str(limit)})
    # client-side limit set high so the broker is the one to decide
    p = producer(server, max_request_size=10 * 1024 * 1024, linger_ms=0, retries=0)
    try:
        near = b"n" * (limit - 200)   # one record, batch overhead < 200 bytes
        md = p.send(topic, near, partition=0).get(timeout=20)
        assert md.offset == 0
        with pytest.raises(MessageSizeTooLargeError):
            p.send(topic, b"o" * (limit + 1), partition=0).get(timeout=20)
        with pytest.raises(MessageSizeTooLargeError):
            p.send(topic, b"O" * (limit * 4), partition=0).get(timeout=20)
        md2 = p.send(topic, b"small", partition=0).get(timeout=20)
    finally:
        p.close(10)
    assert md2.offset == 1, "a rejected record must not take an offset"
    recs = read_partition(server, topic, 0, 2, max_partition_fetch_bytes=1024 * 1024)
    assert [(r.offset, len(r.value)) for r in recs[:2]] == [(0, limit - 200), (1, 5)]


# ------------------------------------------------------------------ offsets
def test_offsets_for_times_and_beginning_end(server):
    topic = unique_topic("kp-times")
    create_topic(server, topic, 2)
    base = int(time.time() * 1000) - 600_000
    p = producer(server)
    try:
        futs = [p.send(topic, b"t%d" % i, partition=0, timestamp_ms=base + i * 1000) for i in range(10)]
        futs += [p.send(topic, b"p1-%d" % i, partition=1, timestamp_ms=base + i * 1000) for i in range(3)]
        p.flush(20)
        [f.get(timeout=20) for f in futs]
    finally:
        p.close(10)
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    c = consumer(server)
    try:
        assert c.beginning_offsets([tp0, tp1]) == {tp0: 0, tp1: 0}
        assert c.end_offsets([tp0, tp1]) == {tp0: 10, tp1: 3}
        got = c.offsets_for_times({tp0: base + 2500, tp1: base})
        assert got[tp0].offset == 3 and got[tp0].timestamp == base + 3000
        assert got[tp1].offset == 0 and got[tp1].timestamp == base
        exact = c.offsets_for_times({tp0: base + 7000})
        assert exact[tp0].offset == 7 and exact[tp0].timestamp == base + 7000
        assert c.offsets_for_times({tp0: base + 60_000})[tp0] is None  # after the last record
        assert c.offsets_for_times({tp0: 0})[tp0].offset == 0
    finally:
        c.close()
