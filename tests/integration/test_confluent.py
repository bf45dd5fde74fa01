"""confluent-kafka 1.7 / librdkafka 2.0.2 (Debian) against chronik-server.

Consumers use assign() with explicit offsets; group.id is set (librdkafka wants one) but
nothing is ever committed (consumer groups are not implemented yet)."""
import time

import pytest
from confluent_kafka import (OFFSET_BEGINNING, TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME,
                             Consumer, KafkaError, KafkaException, Producer, TopicPartition)
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic

import kafka_raw as raw
from conftest import ck_admin, unique_topic, wait_for


def mk_producer(server, **conf):
    c = {"bootstrap.servers": server.bootstrap, "enable.idempotence": False, "linger.ms": 5,
         "message.timeout.ms": 20000, "socket.timeout.ms": 10000}
    c.update(conf)
    return Producer(c)


def produce_all(p, topic, msgs, partition=0):
    """msgs: list of dicts for Producer.produce. Returns delivery reports [(err, msg)] in order."""
    reports = {}

    def dr(i):
        return lambda err, msg: reports.__setitem__(i, (err, msg))

    for i, m in enumerate(msgs):
        kw = dict(m)
        kw.setdefault("partition", partition)
        p.produce(topic, on_delivery=dr(i), **kw)
        p.poll(0)
    left = p.flush(30)
    assert left == 0, "%d messages still undelivered after flush" % left
    assert len(reports) == len(msgs)
    return [reports[i] for i in range(len(msgs))]


def consume(server, topic, partition, count, start=OFFSET_BEGINNING, timeout=20.0):
    c = Consumer({"bootstrap.servers": server.bootstrap, "group.id": "chronik-it-unused",
                  "enable.auto.commit": False, "enable.auto.offset.store": False,
                  "auto.offset.reset": "earliest", "socket.timeout.ms": 10000,
                  "fetch.message.max.bytes": 4 * 1024 * 1024})
    try:
        c.assign([TopicPartition(topic, partition, start)])
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(m.error())
            out.append(m)
        assert len(out) >= count, "consumed %d of %d from %s[%d]" % (len(out), count, topic, partition)
        return out
    finally:
        c.close()


def create(server, topic, partitions=1, config=None):
    a = ck_admin(server)
    fs = a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1,
                                   config=config or {})], operation_timeout=10, request_timeout=15)
    fs[topic].result(timeout=20)


def describe(server, topic):
    a = ck_admin(server)
    res = a.describe_configs([ConfigResource("topic", topic)], request_timeout=15)
    entries = list(res.values())[0].result(timeout=20)
    return {k: v.value for k, v in entries.items()}


def list_topic_names(server):
    return set(ck_admin(server).list_topics(timeout=10).topics)


# ------------------------------------------------------------------ produce / consume
@pytest.mark.parametrize("acks", ["all", "1"])
def test_produce_acks_delivery_offsets(server, acks):
    topic = unique_topic("ck-acks" + acks)
    create(server, topic, 1)
    p = mk_producer(server, acks=acks)
    reps = produce_all(p, topic, [{"key": b"k%d" % i, "value": b"v%d" % i} for i in range(50)])
    assert [e for e, _ in reps] == [None] * 50
    assert [m.offset() for _, m in reps] == list(range(50))
    assert all(m.partition() == 0 for _, m in reps)
    got = consume(server, topic, 0, 50)
    assert [(m.offset(), m.key(), m.value()) for m in got[:50]] == \
        [(i, b"k%d" % i, b"v%d" % i) for i in range(50)]


def test_produce_acks_0(server):
    topic = unique_topic("ck-acks0")
    create(server, topic, 1)
    p = mk_producer(server, acks="0")
    reps = produce_all(p, topic, [{"value": b"fire-and-forget-%d" % i} for i in range(30)])
    assert [e for e, _ in reps] == [None] * 30   # no broker response with acks=0
    got = consume(server, topic, 0, 30)
    assert sorted(m.value() for m in got[:30]) == sorted(b"fire-and-forget-%d" % i for i in range(30))
    # the connection is still in sync after acks=0 requests: an acks=all produce works
    p2 = mk_producer(server, acks="all")
    reps = produce_all(p2, topic, [{"value": b"after"}])
    assert reps[0][0] is None and reps[0][1].offset() == 30


def test_headers_and_timestamps(server):
    topic = unique_topic("ck-hdr")
    create(server, topic, 1)
    ts = int(time.time() * 1000) - 86_400_000
    msgs = [
        {"key": b"a", "value": b"1", "headers": [("h1", b"v1"), ("h2", b"")], "timestamp": ts},
        {"key": b"b", "value": None, "headers": [("only", b"\x00\x01")], "timestamp": ts + 5},
        {"key": None, "value": b"3", "timestamp": ts + 10},
    ]
    p = mk_producer(server, acks="all")
    reps = produce_all(p, topic, msgs)
    assert [m.offset() for _, m in reps] == [0, 1, 2]
    got = consume(server, topic, 0, 3)
    assert [m.headers() for m in got[:3]] == [[("h1", b"v1"), ("h2", b"")], [("only", b"\x00\x01")], None]
    assert [m.timestamp() for m in got[:3]] == [(TIMESTAMP_CREATE_TIME, ts), (TIMESTAMP_CREATE_TIME, ts + 5),
                                                (TIMESTAMP_CREATE_TIME, ts + 10)]
    assert [m.value() for m in got[:3]] == [b"1", None, b"3"]
    assert [m.key() for m in got[:3]] == [b"a", b"b", None]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compression_codecs(server, codec):
    topic = unique_topic("ck-" + codec)
    create(server, topic, 1)
    vals = [(b"%s payload %05d " % (codec.encode(), i)) * 30 for i in range(500)]
    p = mk_producer(server, acks="all", **{"compression.type": codec, "linger.ms": 20})
    reps = produce_all(p, topic, [{"value": v, "key": b"%d" % i, "headers": [("i", b"%d" % i)]}
                                  for i, v in enumerate(vals)])
    assert [e for e, _ in reps] == [None] * 500
    assert [m.offset() for _, m in reps] == list(range(500))
    got = consume(server, topic, 0, 500)
    assert [m.value() for m in got[:500]] == vals
    assert [m.headers() for m in got[:500]] == [[("i", b"%d" % i)] for i in range(500)]
    # read from the middle of a compressed batch: exactly that offset comes first
    mid = consume(server, topic, 0, 1, start=250)
    assert mid[0].offset() == 250 and mid[0].value() == vals[250]


def test_log_append_time_topic(server):
    topic = unique_topic("ck-lat")
    create(server, topic, 1, {"message.timestamp.type": "LogAppendTime"})
    old_ts = 1_000_000_000_000  # 2001
    before = int(time.time() * 1000)
    p = mk_producer(server, acks="all")
    reps = produce_all(p, topic, [{"value": b"x%d" % i, "timestamp": old_ts + i} for i in range(5)])
    after = int(time.time() * 1000)
    assert [e for e, _ in reps] == [None] * 5
    # librdkafka updates the delivery report with the broker's LogAppendTime (Produce v2+)
    for _, m in reps:
        ttype, ts = m.timestamp()
        assert ttype == TIMESTAMP_LOG_APPEND_TIME and before - 1000 <= ts <= after + 1000, m.timestamp()
    got = consume(server, topic, 0, 5)
    for m in got[:5]:
        ttype, ts = m.timestamp()
        assert ttype == TIMESTAMP_LOG_APPEND_TIME, "timestamp type %d, expected 2 (LogAppendTime)" % ttype
        assert before - 1000 <= ts <= after + 1000, "timestamp %d not broker time [%d, %d]" % (ts, before, after)


def test_max_message_bytes(server):
    limit = 20_000
    topic = unique_topic("ck-max")
    create(server, topic, 1, {"max.message.bytes": str(limit)})
    p = mk_producer(server, acks="all", **{"message.max.bytes": 10_000_000, "linger.ms": 0,
                                           "batch.num.messages": 1, "retries": 0})
    reps = produce_all(p, topic, [{"value": b"n" * (limit - 200)}])
    assert reps[0][0] is None and reps[0][1].offset() == 0
    reps = produce_all(p, topic, [{"value": b"o" * (limit + 1)}])
    assert reps[0][0] is not None and reps[0][0].code() == KafkaError.MSG_SIZE_TOO_LARGE, reps[0][0]
    reps = produce_all(p, topic, [{"value": b"ok"}])
    assert reps[0][0] is None and reps[0][1].offset() == 1, "rejected message must not take an offset"
    got = consume(server, topic, 0, 2)
    assert [(m.offset(), len(m.value())) for m in got[:2]] == [(0, limit - 200), (1, 2)]


def test_watermarks_and_offsets_for_times(server):
    topic = unique_topic("ck-wm")
    create(server, topic, 1)
    base = int(time.time() * 1000) - 100_000
    p = mk_producer(server, acks="all")
    produce_all(p, topic, [{"value": b"%d" % i, "timestamp": base + 100 * i} for i in range(20)])
    c = Consumer({"bootstrap.servers": server.bootstrap, "group.id": "chronik-it-unused",
                  "enable.auto.commit": False})
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 20)
        res = c.offsets_for_times([TopicPartition(topic, 0, base + 1050)], timeout=10)
        assert res[0].offset == 11 and res[0].error is None
    finally:
        c.close()


# ------------------------------------------------------------------ admin
def test_admin_create_validate_only_and_errors(server):
    a = ck_admin(server)
    t = unique_topic("ck-valonly")
    fs = a.create_topics([NewTopic(t, num_partitions=2, replication_factor=1,
                                   config={"retention.ms": "60000"})],
                         validate_only=True, request_timeout=15)
    assert fs[t].result(timeout=20) is None
    assert t not in list_topic_names(server), "validate_only must not create the topic"

    bad = unique_topic("ck-compact")
    fs = a.create_topics([NewTopic(bad, 1, 1, config={"cleanup.policy": "compact"})], request_timeout=15)
    with pytest.raises(KafkaException) as ei:
        fs[bad].result(timeout=20)
    assert ei.value.args[0].code() == KafkaError.INVALID_CONFIG

    unk = unique_topic("ck-unknown-key")
    fs = a.create_topics([NewTopic(unk, 1, 1, config={"bogus.key": "1"})], request_timeout=15)
    with pytest.raises(KafkaException) as ei:
        fs[unk].result(timeout=20)
    assert ei.value.args[0].code() == KafkaError.INVALID_CONFIG

    badpart = unique_topic("ck-zero-parts")
    fs = a.create_topics([NewTopic(badpart, 0, 1)], request_timeout=15)
    with pytest.raises(KafkaException) as ei:
        fs[badpart].result(timeout=20)
    assert ei.value.args[0].code() == KafkaError.INVALID_PARTITIONS

    names = list_topic_names(server)
    assert bad not in names and unk not in names and badpart not in names


def test_admin_create_describe_alter_partitions_delete(server):
    a = ck_admin(server)
    t = unique_topic("ck-admin")
    create(server, t, 2, {"retention.ms": "3600000", "message.timestamp.type": "CreateTime",
                          "columnar.enabled": "false", "searchable": "false"})
    md = a.list_topics(topic=t, timeout=10)
    assert sorted(md.topics[t].partitions) == [0, 1]
    assert md.topics[t].error is None
    assert len(md.brokers) == 1
    broker = list(md.brokers.values())[0]
    assert (broker.host, broker.port) == (server.host, server.kafka_port)

    cfg = describe(server, t)
    assert cfg["retention.ms"] == "3600000"
    assert cfg["message.timestamp.type"] == "CreateTime"

    # topic already exists
    fs = a.create_topics([NewTopic(t, 2, 1)], request_timeout=15)
    with pytest.raises(KafkaException) as ei:
        fs[t].result(timeout=20)
    assert ei.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS

    fs = a.alter_configs([ConfigResource("topic", t, set_config={"retention.ms": "86400000",
                                                                  "retention.bytes": "1073741824"})],
                         request_timeout=15)
    list(fs.values())[0].result(timeout=20)
    cfg = describe(server, t)
    assert cfg["retention.ms"] == "86400000" and cfg["retention.bytes"] == "1073741824"

    fs = a.alter_configs([ConfigResource("topic", t, set_config={"cleanup.policy": "compact"})],
                         request_timeout=15)
    with pytest.raises(KafkaException) as ei:
        list(fs.values())[0].result(timeout=20)
    assert ei.value.args[0].code() == KafkaError.INVALID_CONFIG

    fs = a.create_partitions([NewPartitions(t, 4)], request_timeout=15)
    fs[t].result(timeout=20)
    wait_for(lambda: sorted(a.list_topics(topic=t, timeout=10).topics[t].partitions) == [0, 1, 2, 3],
             10, 0.2, "4 partitions")
    p = mk_producer(server, acks="all")
    reps = produce_all(p, t, [{"value": b"p3"}], partition=3)
    assert reps[0][0] is None and reps[0][1].offset() == 0

    fs = a.delete_topics([t], operation_timeout=10, request_timeout=15)
    fs[t].result(timeout=20)
    wait_for(lambda: t not in list_topic_names(server), 10, 0.2, "deleted topic gone")
    # deleting again: unknown topic
    fs = a.delete_topics([t], request_timeout=15)
    with pytest.raises(KafkaException) as ei:
        fs[t].result(timeout=20)
    assert ei.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_admin_incremental_alter_configs(server):
    if not hasattr(AdminClient, "incremental_alter_configs"):
        pytest.skip("confluent-kafka %s has no AdminClient.incremental_alter_configs (added in 2.2); "
                    "covered by test_raw_incremental_alter_configs" % __import__("confluent_kafka").version()[0])


def test_raw_incremental_alter_configs(server):
    t = unique_topic("ck-incr")
    create(server, t, 1, {"retention.ms": "3600000", "segment.bytes": "1048576"})
    with raw.Conn(server.host, server.kafka_port) as c:
        res = raw.incremental_alter_configs_v0(c, t, [("retention.ms", 0, "7200000"),
                                                     ("max.message.bytes", 0, "300000")])
        assert [(e, n) for e, _m, _t, n in res] == [(0, t)]
        err, cfg = raw.describe_configs_v1(c, t)
        assert err == 0
        assert cfg["retention.ms"] == "7200000"
        assert cfg["max.message.bytes"] == "300000"
        assert cfg["segment.bytes"] == "1048576", "incremental alter must keep other keys"
        # DELETE reverts to the default
        res = raw.incremental_alter_configs_v0(c, t, [("segment.bytes", 1, None)])
        assert res[0][0] == 0
        err, cfg = raw.describe_configs_v1(c, t, ["segment.bytes"])
        assert err == 0 and cfg.get("segment.bytes") != "1048576"
        # bad value and unknown key are rejected, nothing changes
        res = raw.incremental_alter_configs_v0(c, t, [("retention.ms", 0, "abc")])
        assert res[0][0] == raw.INVALID_CONFIG
        res = raw.incremental_alter_configs_v0(c, t, [("no.such.key", 0, "1")])
        assert res[0][0] == raw.INVALID_CONFIG
        # validate_only changes nothing
        res = raw.incremental_alter_configs_v0(c, t, [("retention.ms", 0, "1000")], validate_only=True)
        assert res[0][0] == 0
        err, cfg = raw.describe_configs_v1(c, t, ["retention.ms"])
        assert cfg["retention.ms"] == "7200000"


def test_delete_records(server):
    """confluent-kafka 1.7 has no AdminClient.delete_records: DeleteRecords v1 on the wire."""
    t = unique_topic("ck-delrec")
    create(server, t, 2)
    p = mk_producer(server, acks="all")
    produce_all(p, t, [{"value": b"r%d" % i} for i in range(10)], partition=0)
    produce_all(p, t, [{"value": b"q%d" % i} for i in range(3)], partition=1)
    with raw.Conn(server.host, server.kafka_port) as c:
        res = raw.delete_records_v1(c, t, {0: 4})
        assert res == {0: (4, 0)}
        # -1 = up to the high watermark
        res = raw.delete_records_v1(c, t, {1: -1})
        assert res == {1: (3, 0)}
        # beyond the high watermark: OFFSET_OUT_OF_RANGE
        res = raw.delete_records_v1(c, t, {0: 11})
        assert res[0][1] == raw.OFFSET_OUT_OF_RANGE
        assert raw.list_offsets_v1(c, t, 0, -2) == (0, 4)
        assert raw.list_offsets_v1(c, t, 0, -1) == (0, 10)
        assert raw.list_offsets_v1(c, t, 1, -2) == (0, 3)
    cons = Consumer({"bootstrap.servers": server.bootstrap, "group.id": "chronik-it-unused"})
    try:
        assert cons.get_watermark_offsets(TopicPartition(t, 0), timeout=10) == (4, 10)
    finally:
        cons.close()
    got = consume(server, t, 0, 6)
    assert [(m.offset(), m.value()) for m in got[:6]] == [(i, b"r%d" % i) for i in range(4, 10)]


def test_raw_describe_cluster(server):
    with raw.Conn(server.host, server.kafka_port) as c:
        err, keys = raw.api_versions(c)
        assert err == 0
        assert raw.DESCRIBE_CLUSTER in keys, "DescribeCluster not advertised in ApiVersions"
        out = raw.describe_cluster_v0(c)
    assert out["error_code"] == 0
    assert out["cluster_id"]
    assert len(out["brokers"]) == 1
    bid, host, port, _rack = out["brokers"][0]
    assert (host, port) == (server.host, server.kafka_port)
    assert out["controller_id"] == bid


# ------------------------------------------------------------------ topic config keys
@pytest.mark.parametrize("key,value", [
    ("retention.ms", "-1"),
    ("retention.bytes", "1048576"),
    ("segment.bytes", "16777216"),
    ("segment.ms", "3600000"),
    ("max.message.bytes", "2097152"),
    ("message.timestamp.type", "LogAppendTime"),
    ("cleanup.policy", "delete"),
    ("columnar.enabled", "true"),
    ("searchable", "true"),
    ("searchable.enabled", "true"),
    ("vector.enabled", "false"),
])
def test_topic_config_key_accepted_and_described(server, key, value):
    t = unique_topic("ck-cfg")
    create(server, t, 1, {key: value})
    cfg = describe(server, t)
    if key == "searchable.enabled":  # an alias of `searchable` (spec section 3): either name may be shown
        assert value in (cfg.get(key), cfg.get("searchable")), cfg
    else:
        assert cfg.get(key) == value, cfg


@pytest.mark.parametrize("key,value", [
    ("retention.ms", "-2"),
    ("retention.bytes", "lots"),
    ("segment.bytes", "10"),          # below the minimum (14)
    ("segment.ms", "x"),
    ("message.timestamp.type", "createtime-ish"),
    ("cleanup.policy", "compact"),
    ("cleanup.policy", "delete,compact"),
    ("columnar.enabled", "yes"),      # booleans must be exactly true/false
    ("searchable", "1"),
    ("vector.enabled", "maybe"),
    ("definitely.not.a.config", "1"),
])
def test_topic_config_bad_value_invalid_config(server, key, value):
    t = unique_topic("ck-badcfg")
    a = ck_admin(server)
    fs = a.create_topics([NewTopic(t, 1, 1, config={key: value})], request_timeout=15)
    with pytest.raises(KafkaException) as ei:
        fs[t].result(timeout=20)
    assert ei.value.args[0].code() == KafkaError.INVALID_CONFIG, "%s=%s: %s" % (key, value, ei.value)
    assert t not in list_topic_names(server)


def test_live_tail_consumer_gets_new_records(server):
    """A consumer waiting at the end of a partition receives records produced afterwards
    (Fetch long-poll must be woken by new data, not only time out)."""
    t = unique_topic("ck-tail")
    create(server, t, 1)
    p = mk_producer(server, acks="all")
    produce_all(p, t, [{"value": b"old"}])
    c = Consumer({"bootstrap.servers": server.bootstrap, "group.id": "chronik-it-unused",
                  "enable.auto.commit": False, "fetch.wait.max.ms": 500})
    try:
        c.assign([TopicPartition(t, 0, 1)])   # start at the end (offset 1)
        m = c.poll(1.0)
        assert m is None or m.error(), "a record before anything was produced: %r" % (m.value(),)
        got = []
        for i in range(5):
            t0 = time.monotonic()
            produce_all(p, t, [{"value": b"new-%d" % i}])
            deadline = t0 + 10
            while time.monotonic() < deadline:
                m = c.poll(0.2)
                if m is not None and not m.error():
                    got.append((m.offset(), m.value(), time.monotonic() - t0))
                    break
        assert [(o, v) for o, v, _ in got] == [(1 + i, b"new-%d" % i) for i in range(5)]
        # each record arrives well within one long-poll cycle
        assert max(d for _, _, d in got) < 5.0, got
    finally:
        c.close()


def test_vector_enabled_defaults_to_the_local_model(server):
    """vector.enabled=true needs no provider: the built-in local model is the default. What
    that model cannot give (other dimensions than 512) is INVALID_CONFIG."""
    import os
    if any(os.environ.get(k) for k in ("OPENAI_API_KEY", "CHRONIK_EMBEDDING_ENDPOINT", "CHRONIK_EMBEDDING_PROVIDER")):
        pytest.skip("an embedding provider is configured in the environment")
    t = unique_topic("ck-vec")
    create(server, t, 1, {"vector.enabled": "true"})
    assert describe(server, t)["vector.enabled"] == "true"
    t2 = unique_topic("ck-vec-dims")
    a = ck_admin(server)
    fs = a.create_topics([NewTopic(t2, 1, 1, config={"vector.enabled": "true", "vector.dimensions": "384"})],
                         request_timeout=15)
    with pytest.raises(KafkaException) as ei:
        fs[t2].result(timeout=20)
    assert ei.value.args[0].code() == KafkaError.INVALID_CONFIG


def test_vector_enabled_with_topic_provider_is_accepted(server):
    t2 = unique_topic("ck-vec-ok")
    create(server, t2, 1, {"vector.enabled": "true", "vector.provider": "external",
                           "vector.endpoint": "http://127.0.0.1:9/embed", "vector.dimensions": "8"})
    assert describe(server, t2)["vector.enabled"] == "true"
