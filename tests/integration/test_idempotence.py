"""Idempotent producer (KIP-98): InitProducerId, sequence checks on Produce, producer state
that survives restarts (snapshots + log replay), and librdkafka's idempotent producer
across SIGKILLs: every acknowledged record is stored exactly once, at its offset, in order.
"""
import os
import random
import time

import pytest

import kafka_raw as kr
from conftest import ck_admin, unique_topic, wait_for
from numbered import NumberedSender


def rec(i):
    return (b"k%d" % i, b"v%d" % i, [])


def batch(pid, epoch, seq, n=3):
    return kr.build_idempotent_batch([rec(seq + i) for i in range(n)], pid, epoch, seq)


def log_end(c, topic, p=0):
    err, off = kr.list_offsets_v1(c, topic, p, -1)
    assert err == 0
    return off


def test_raw_sequences(server):
    topic = unique_topic("idem")
    with kr.Conn(server.host, server.kafka_port) as c:
        err, keys = kr.api_versions(c)
        assert err == 0 and keys[kr.INIT_PRODUCER_ID] == (0, 5)
        err, pid, epoch = kr.init_producer_id_v1(c)
        assert (err, epoch) == (0, 0) and pid >= 0
        err2, pid2, _ = kr.init_producer_id_v1(c)
        assert err2 == 0 and pid2 != pid, "every InitProducerId without an id gets a new one"

        b0 = batch(pid, 0, 0)
        assert kr.produce_v3(c, topic, 0, b0) == (0, 0)
        assert log_end(c, topic) == 3
        # the same batch again: the original offset, nothing appended
        assert kr.produce_v3(c, topic, 0, b0) == (0, 0)
        assert log_end(c, topic) == 3
        b1 = batch(pid, 0, 3, n=2)
        assert kr.produce_v3(c, topic, 0, b1) == (0, 3)
        # an older batch within the last five is still a duplicate
        assert kr.produce_v3(c, topic, 0, b0) == (0, 0)
        assert kr.produce_v3(c, topic, 0, b1) == (0, 3)
        assert log_end(c, topic) == 5
        # a gap
        err, _ = kr.produce_v3(c, topic, 0, batch(pid, 0, 10))
        assert err == kr.OUT_OF_ORDER_SEQUENCE_NUMBER
        # a sequence overlapping but not equal to a remembered batch
        err, _ = kr.produce_v3(c, topic, 0, batch(pid, 0, 1))
        assert err == kr.OUT_OF_ORDER_SEQUENCE_NUMBER
        # epoch older than the remembered one
        err, _ = kr.produce_v3(c, topic, 0, batch(pid, -1, 5))
        assert err == kr.INVALID_PRODUCER_EPOCH
        assert log_end(c, topic) == 5

        # KIP-360: bump the epoch, same id; the old epoch is then stale
        err, pid_b, ep_b = kr.init_producer_id_v3(c, pid, 0)
        assert (err, pid_b, ep_b) == (0, pid, 1)
        # the new epoch must start at sequence 0
        err, _ = kr.produce_v3(c, topic, 0, batch(pid, 1, 5))
        assert err == kr.OUT_OF_ORDER_SEQUENCE_NUMBER
        assert kr.produce_v3(c, topic, 0, batch(pid, 1, 0)) == (0, 5)
        err, _ = kr.produce_v3(c, topic, 0, batch(pid, 0, 5))
        assert err == kr.INVALID_PRODUCER_EPOCH
        # re-init with an epoch older than the broker's: fenced (INVALID_PRODUCER_EPOCH in v3)
        err, _, _ = kr.init_producer_id_v3(c, pid, 0)
        assert err == kr.INVALID_PRODUCER_EPOCH
        # an id the broker knows nothing of: a new id
        err, pid_n, ep_n = kr.init_producer_id_v3(c, 987654321, 3)
        assert err == 0 and pid_n not in (pid, 987654321) and ep_n == 0
        # epoch exhausted: a bump would reach 32767, so a new id instead
        pid_x = pid_n
        assert kr.produce_v3(c, topic + "-x", 0, batch(pid_x, 32766, 0)) == (0, 0)
        err, pid_y, ep_y = kr.init_producer_id_v3(c, pid_x, 32766)
        assert err == 0 and pid_y != pid_x and ep_y == 0
        # transactions are not supported yet
        err, pid_t, _ = kr.init_producer_id_v1(c, transactional_id="txn-1")
        assert (err, pid_t) == (kr.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, -1)

        # other partitions have their own state
        assert kr.produce_v3(c, topic, 1, batch(pid, 1, 7)) == (0, 0)  # unknown there: any seq
        assert kr.produce_v3(c, topic, 1, batch(pid, 1, 7)) == (0, 0)
        assert log_end(c, topic, 1) == 3

        # several batches in one request: checked in order, answered as a whole
        two = batch(pid2, 0, 0, n=2) + batch(pid2, 0, 2, n=2)
        assert kr.produce_v3(c, topic, 2, two) == (0, 0)
        assert kr.produce_v3(c, topic, 2, two) == (0, 0)
        assert log_end(c, topic, 2) == 4
        gap = batch(pid2, 0, 4, n=1) + batch(pid2, 0, 9, n=1)
        err, _ = kr.produce_v3(c, topic, 2, gap)
        assert err == kr.OUT_OF_ORDER_SEQUENCE_NUMBER
        assert log_end(c, topic, 2) == 4, "nothing of a refused request is appended"
        # non-idempotent batches are untouched
        plain = kr.build_batch([rec(1)])
        assert kr.produce_v3(c, topic, 2, plain) == (0, 4)
        assert kr.produce_v3(c, topic, 2, plain) == (0, 5)


def snapshots(srv, topic, p=0):
    d = srv.data_dir / "log" / ("%s-%d" % (topic, p))
    return sorted(f.name for f in d.glob("*.snapshot"))


def test_state_survives_restart(fresh_server):
    srv = fresh_server
    topic = unique_topic("idem-restart")
    with kr.Conn(srv.host, srv.kafka_port) as c:
        err, pid, _ = kr.init_producer_id_v1(c)
        assert err == 0
        b0 = batch(pid, 0, 0)
        assert kr.produce_v3(c, topic, 0, b0) == (0, 0)
    # after a crash (no snapshot): replay of the log from its start
    srv.kill9()
    srv.start()
    with kr.Conn(srv.host, srv.kafka_port) as c:
        assert kr.produce_v3(c, topic, 0, b0) == (0, 0)
        assert log_end(c, topic) == 3
        b1 = batch(pid, 0, 3)
        assert kr.produce_v3(c, topic, 0, b1) == (0, 3)
    # a clean stop writes a snapshot at the log end
    srv.stop()
    assert snapshots(srv, topic) == ["%020d.snapshot" % 6]
    srv.start()
    with kr.Conn(srv.host, srv.kafka_port) as c:
        assert kr.produce_v3(c, topic, 0, b1) == (0, 3)
        b2 = batch(pid, 0, 6)
        assert kr.produce_v3(c, topic, 0, b2) == (0, 6)
        # the new allocator block: ids are never handed out twice
        err, pid_after, _ = kr.init_producer_id_v1(c)
        assert err == 0 and pid_after > pid
    # a crash after the snapshot: snapshot + replay of what came after it
    srv.kill9()
    srv.start()
    with kr.Conn(srv.host, srv.kafka_port) as c:
        assert kr.produce_v3(c, topic, 0, b2) == (0, 6)
        assert kr.produce_v3(c, topic, 0, b1) == (0, 3)
        assert kr.produce_v3(c, topic, 0, b0) == (0, 0)
        assert log_end(c, topic) == 9
        err, _ = kr.produce_v3(c, topic, 0, batch(pid, 0, 12))
        assert err == kr.OUT_OF_ORDER_SEQUENCE_NUMBER
        assert kr.produce_v3(c, topic, 0, batch(pid, 0, 9)) == (0, 9)


def test_snapshot_above_log_end_is_discarded(fresh_server):
    """A snapshot newer than the recovered log (the crash took the tail it covered) must
    not be used: its offsets are reused by new batches."""
    srv = fresh_server
    topic = unique_topic("idem-future")
    with kr.Conn(srv.host, srv.kafka_port) as c:
        err, pid, _ = kr.init_producer_id_v1(c)
        b0 = batch(pid, 0, 0)
        assert kr.produce_v3(c, topic, 0, b0) == (0, 0)
    srv.stop()
    d = srv.data_dir / "log" / ("%s-0" % topic)
    good = d / ("%020d.snapshot" % 3)
    assert good.exists()
    fake = d / ("%020d.snapshot" % 1000)
    fake.write_bytes(good.read_bytes())
    srv.start()
    assert not fake.exists()
    with kr.Conn(srv.host, srv.kafka_port) as c:
        assert kr.produce_v3(c, topic, 0, b0) == (0, 0)
        assert kr.produce_v3(c, topic, 0, batch(pid, 0, 3)) == (0, 3)


# ---------------------------------------------------------------------- librdkafka
KILLS = 3
PARTITIONS = 3


def test_librdkafka_exactly_once_across_sigkills(fresh_server):
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
    from confluent_kafka.admin import NewTopic

    seed = int(os.environ.get("CHRONIK_CRASH_SEED", random.randrange(1 << 30)))
    rnd = random.Random(seed)
    print("seed=%d (set CHRONIK_CRASH_SEED to replay)" % seed)
    srv = fresh_server
    topic = unique_topic("idem-crash")
    admin = ck_admin(srv)
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)], request_timeout=15)[topic].result(timeout=20)

    t0 = time.monotonic()
    sender = NumberedSender(srv.bootstrap, topic, PARTITIONS, **{"enable.idempotence": True, "message.timeout.ms": 30000})
    sender.start()
    try:
        for k in range(KILLS):
            before = sender.acked_count()
            wait_for(lambda: sender.acked_count() > before + 20 or sender.fatal, 15, 0.02,
                     "acks from broker incarnation %d" % (k + 1))
            assert not sender.fatal, sender.fatal
            time.sleep(rnd.uniform(0.0, 1.0))
            srv.kill9()
            time.sleep(rnd.uniform(0.0, 0.5))
            srv.start()
        before = sender.acked_count()
        wait_for(lambda: sender.acked_count() > before + 100 or sender.fatal, 15, 0.02,
                 "acks after the last restart")
    finally:
        sender.stop_evt.set()
        sender.join(40)
    assert not sender.is_alive(), "producer did not finish flushing"
    assert not sender.fatal, "librdkafka raised a fatal idempotence error: %r" % sender.fatal

    acked = list(sender.acked)
    assert len(acked) >= 200, "only %d records acknowledged" % len(acked)
    c = Consumer({"bootstrap.servers": srv.bootstrap, "group.id": "chronik-it-unused",
                  "enable.auto.commit": False, "socket.timeout.ms": 10000})
    stored = {}
    try:
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(PARTITIONS)}
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        deadline = time.monotonic() + 20
        while sum(ends.values()) > len(stored) and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise AssertionError("consume error %s" % m.error())
            stored[(m.partition(), m.offset())] = int(m.value())
    finally:
        c.close()
    assert len(stored) == sum(ends.values())

    where = {}
    for (p, o), n in stored.items():
        assert n % PARTITIONS == p and n < sender.sent
        assert n not in where, "number %d stored twice: %r and %r (seed %d)" % (n, where[n], (p, o), seed)
        where[n] = (p, o)
    for p, o, n in acked:
        assert where.get(n) == (p, o), "acknowledged %d at %d/%d, stored at %r (seed %d)" % (
            n, p, o, where.get(n), seed)
    for p in range(PARTITIONS):
        nums = [stored[k] for k in sorted(k for k in stored if k[0] == p)]
        assert nums == sorted(nums), "partition %d out of order (seed %d)" % (p, seed)
    print("acked=%d stored=%d failed=%d elapsed=%.1fs" % (
        len(acked), len(stored), len(sender.failed), time.monotonic() - t0))
    assert time.monotonic() - t0 < 60, "test took too long"
