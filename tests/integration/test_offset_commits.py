"""Committed offsets for clients that assign partitions themselves (generation -1 commits):
FindCoordinator, OffsetCommit, OffsetFetch, OffsetDelete, durable across kill -9."""
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

import kafka_raw as kr
from conftest import unique_topic


def produce(bootstrap, topic, n, partitions=3):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(n):
        p.produce(topic, b"v%d" % i, partition=i % partitions)
    assert p.flush(20) == 0


def committed(bootstrap, group, topic, parts):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        return {tp.partition: tp.offset for tp in
                c.committed([TopicPartition(topic, p) for p in parts], timeout=15)}
    finally:
        c.close()


def test_confluent_commit_survives_kill9(fresh_server):
    srv = fresh_server
    topic = unique_topic("commit")
    produce(srv.bootstrap, topic, 30)
    c = Consumer({"bootstrap.servers": srv.bootstrap, "group.id": "g-manual", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, 0) for p in range(3)])
    got = 0
    deadline = time.monotonic() + 20
    while got < 30 and time.monotonic() < deadline:
        got += sum(1 for m in c.consume(100, 1.0) if not m.error())
    assert got == 30
    c.commit(offsets=[TopicPartition(topic, 0, 4), TopicPartition(topic, 1, 7)], asynchronous=False)
    c.close()
    assert committed(srv.bootstrap, "g-manual", topic, [0, 1, 2]) == {0: 4, 1: 7, 2: -1001}
    srv.kill9()
    srv.start()
    assert committed(srv.bootstrap, "g-manual", topic, [0, 1, 2]) == {0: 4, 1: 7, 2: -1001}
    # another group is independent
    assert committed(srv.bootstrap, "g-other", topic, [0]) == {0: -1001}
    # a consumer that assigns with the stored offsets resumes from them
    c = Consumer({"bootstrap.servers": srv.bootstrap, "group.id": "g-manual", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, 0)])  # OFFSET_INVALID: use the committed offset
    m = None
    deadline = time.monotonic() + 20
    while m is None and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is not None and m.error():
            m = None
    c.close()
    assert m is not None and m.offset() == 4


def test_kafka_python_commit_and_fetch(server):
    from kafka import KafkaConsumer, TopicPartition as KTP
    from kafka.structs import OffsetAndMetadata
    topic = unique_topic("kpcommit")
    produce(server.bootstrap, topic, 9)
    c = KafkaConsumer(bootstrap_servers=server.bootstrap, group_id="kp-group", enable_auto_commit=False)
    tp = KTP(topic, 2)
    c.assign([tp])
    c.commit({tp: OffsetAndMetadata(3, "checkpoint")})
    assert c.committed(tp) == 3
    c.close()


def test_raw_commit_errors_and_delete(server):
    topic = unique_topic("raw")
    produce(server.bootstrap, topic, 3)
    with kr.Conn(server.host, server.kafka_port) as c:
        # FindCoordinator v1 (group)
        r = c.request(kr.FIND_COORDINATOR, 1, kr.string("g-raw") + kr.i8(0))
        r.i32()
        assert r.i16() == 0
        r.string()
        assert r.i32() == 1  # node id
        # OffsetCommit v2: an unknown partition and a too-long metadata fail alone
        body = (kr.string("g-raw") + kr.i32(-1) + kr.string("") + kr.i64(-1) +
                kr.array([kr.string(topic) + kr.array([
                    kr.i32(0) + kr.i64(2) + kr.string("ok"),
                    kr.i32(99) + kr.i64(1) + kr.string(None),
                    kr.i32(1) + kr.i64(1) + kr.string("x" * 5000)])]))
        r = c.request(kr.OFFSET_COMMIT, 2, body)
        res = r.array(lambda r: (r.string(), r.array(lambda r: (r.i32(), r.i16()))))
        assert res == [(topic, [(0, 0), (99, 3), (1, 12)])]
        # a commit with a generation is refused: no member exists
        body = (kr.string("g-raw") + kr.i32(5) + kr.string("m-1") + kr.i64(-1) +
                kr.array([kr.string(topic) + kr.array([kr.i32(0) + kr.i64(9) + kr.string(None)])]))
        r = c.request(kr.OFFSET_COMMIT, 2, body)
        assert r.array(lambda r: (r.string(), r.array(lambda r: (r.i32(), r.i16()))))[0][1] == [(0, 25)]
        # OffsetFetch v2 with null topics: everything of the group
        r = c.request(kr.OFFSET_FETCH, 2, kr.string("g-raw") + kr.i32(-1))
        res = r.array(lambda r: (r.string(), r.array(lambda r: (r.i32(), r.i64(), r.string(), r.i16()))))
        assert res == [(topic, [(0, 2, "ok", 0)])]
        assert r.i16() == 0
        # OffsetDelete v0, then the offset is gone
        r = c.request(kr.OFFSET_DELETE, 0, kr.string("g-raw") + kr.array([kr.string(topic) + kr.array([kr.i32(0)])]))
        assert r.i16() == 0
        r.i32()
        assert r.array(lambda r: (r.string(), r.array(lambda r: (r.i32(), r.i16())))) == [(topic, [(0, 0)])]
        r = c.request(kr.OFFSET_FETCH, 2, kr.string("g-raw") + kr.i32(-1))
        assert r.array(lambda r: r.string()) == []
        # an unknown group: GROUP_ID_NOT_FOUND
        r = c.request(kr.OFFSET_DELETE, 0, kr.string("nobody") + kr.array([]))
        assert r.i16() == 69
