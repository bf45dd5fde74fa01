"""Data and topic configs survive a clean restart (SIGTERM) and a crash (SIGKILL)."""
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import ConfigResource, NewTopic

from conftest import ck_admin, unique_topic


def produce(server, topic, msgs):
    """msgs: [(partition, key, value, headers, ts)] -> [(partition, offset)] (acks=all)."""
    p = Producer({"bootstrap.servers": server.bootstrap, "enable.idempotence": False, "acks": "all",
                  "linger.ms": 5, "message.timeout.ms": 20000})
    reps = {}
    for i, (part, k, v, h, ts) in enumerate(msgs):
        kw = {"headers": h} if h is not None else {}
        p.produce(topic, key=k, value=v, partition=part, timestamp=ts or 0, **kw,
                  on_delivery=lambda err, m, i=i: reps.__setitem__(i, (err, m.partition(), m.offset())))
        p.poll(0)
    assert p.flush(30) == 0
    assert all(reps[i][0] is None for i in range(len(msgs))), [reps[i][0] for i in range(len(msgs)) if reps[i][0]]
    return [(reps[i][1], reps[i][2]) for i in range(len(msgs))]


def read_all(server, topic, partitions, timeout=20.0):
    """All records of the given partitions, as {(partition, offset): (key, value, headers, ts)}."""
    c = Consumer({"bootstrap.servers": server.bootstrap, "group.id": "chronik-it-unused",
                  "enable.auto.commit": False, "enable.partition.eof": True,
                  "socket.timeout.ms": 10000})
    try:
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        out = {}
        eof = set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(sum(1 for (pp, _o) in out if pp == p) >= ends[p] for p in partitions) and \
                    eof >= {p for p in partitions if ends[p] == 0}:
                break
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                    continue
                raise AssertionError("consume error: %s" % m.error())
            out[(m.partition(), m.offset())] = (m.key(), m.value(), m.headers(), m.timestamp()[1])
        return out, ends
    finally:
        c.close()


def describe(server, topic):
    admin = ck_admin(server)  # keep a reference while waiting
    res = admin.describe_configs([ConfigResource("topic", topic)], request_timeout=15)
    return {k: v.value for k, v in list(res.values())[0].result(timeout=20).items()}


def _fill(server):
    topic = unique_topic("persist")
    admin = ck_admin(server)  # keep a reference: the futures fail if the client is destroyed
    fs = admin.create_topics([NewTopic(topic, 3, 1, config={
        "retention.ms": "123456789", "max.message.bytes": "777777",
        "message.timestamp.type": "CreateTime"})], request_timeout=15)
    fs[topic].result(timeout=20)
    auto = unique_topic("persist-auto")  # auto-created by produce
    base = int(time.time() * 1000) - 50_000
    msgs = [(i % 3, b"key-%d" % i, (b"value-%d-" % i) * (1 + i % 7), [("i", b"%d" % i)], base + i)
            for i in range(300)]
    msgs.append((1, b"tomb", None, None, base + 999))
    acked = produce(server, topic, msgs)
    produce(server, auto, [(0, None, b"auto-%d" % i, None, base + i) for i in range(5)])
    expected = {po: (m[1], m[2], m[3], m[4]) for po, m in zip(acked, msgs)}
    return topic, auto, expected


def _check(server, topic, auto, expected):
    got, ends = read_all(server, topic, [0, 1, 2])
    assert ends == {0: 100, 1: 101, 2: 100}
    assert got == expected
    got_auto, ends_auto = read_all(server, auto, [0])
    assert ends_auto[0] == 5
    assert [got_auto[(0, i)][1] for i in range(5)] == [b"auto-%d" % i for i in range(5)]
    cfg = describe(server, topic)
    assert cfg["retention.ms"] == "123456789"
    assert cfg["max.message.bytes"] == "777777"
    md = ck_admin(server).list_topics(timeout=10)
    assert len(md.topics[topic].partitions) == 3


def test_sigterm_restart_keeps_data_and_configs(fresh_server):
    topic, auto, expected = _fill(fresh_server)
    _check(fresh_server, topic, auto, expected)
    fresh_server.restart()   # asserts exit code 0 on SIGTERM
    _check(fresh_server, topic, auto, expected)
    # appends continue at the next offsets after a restart
    assert produce(fresh_server, topic, [(0, None, b"after-restart", None, None)]) == [(0, 100)]
    # configs altered after the first restart persist across a second one
    admin = ck_admin(fresh_server)  # keep a reference: the futures fail if the client is destroyed
    fs = admin.alter_configs([ConfigResource("topic", topic, set_config={
        "retention.ms": "987654321", "max.message.bytes": "777777"})], request_timeout=15)
    list(fs.values())[0].result(timeout=20)
    fresh_server.restart()
    assert describe(fresh_server, topic)["retention.ms"] == "987654321"
    got, ends = read_all(fresh_server, topic, [0])
    assert ends[0] == 101 and got[(0, 100)][1] == b"after-restart"


def test_kill9_restart_keeps_acknowledged_data(fresh_server):
    topic, auto, expected = _fill(fresh_server)
    fresh_server.kill9()
    fresh_server.start()
    _check(fresh_server, topic, auto, expected)
    assert produce(fresh_server, topic, [(2, None, b"after-crash", None, None)]) == [(2, 100)]
    fresh_server.kill9()
    fresh_server.start()
    got, ends = read_all(fresh_server, topic, [2])
    assert ends[2] == 101 and got[(2, 100)][1] == b"after-crash"


def test_deleted_topic_stays_deleted_after_restart(fresh_server):
    keep, gone = unique_topic("keep"), unique_topic("gone")
    a = ck_admin(fresh_server)
    fs = a.create_topics([NewTopic(keep, 1, 1), NewTopic(gone, 2, 1)], request_timeout=15)
    [f.result(timeout=20) for f in fs.values()]
    produce(fresh_server, gone, [(0, None, b"x", None, None)])
    a.delete_topics([gone], request_timeout=15)[gone].result(timeout=20)
    fresh_server.restart()
    names = set(ck_admin(fresh_server).list_topics(timeout=10).topics)
    assert keep in names
    assert gone not in names
