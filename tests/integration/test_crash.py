"""Acknowledged writes survive repeated SIGKILLs (and clean SIGTERM stops) of the broker.

A confluent-kafka producer (acks=all, enable.idempotence=false, retries allowed) sends
numbered records (value = the number) to a 3-partition topic from a background thread
while the test SIGKILLs the broker at random moments (>= 3 times) and restarts it.
Every delivery report without error gives (partition, offset, number); afterwards every
acknowledged number must be found exactly at its acknowledged (partition, offset).

Records that were retried after a crash without an acknowledgement reaching the client
may appear twice (no idempotent producer yet): duplicates of numbers are allowed, but an
acknowledged (partition, offset) must hold exactly the acknowledged number.
"""
import os
import random
import time

import pytest

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import NewTopic

from conftest import ck_admin, unique_topic, wait_for
from numbered import NumberedSender

KILLS = 4
PARTITIONS = 3


@pytest.mark.parametrize("how", ["sigkill", "sigterm"])
def test_acked_records_survive_sigkill(fresh_server, how):
    """With "sigterm" the same run stops the broker cleanly under load each time: it must
    finish its in-flight requests, fsync and exit 0 (checked by stop())."""
    seed = int(os.environ.get("CHRONIK_CRASH_SEED", random.randrange(1 << 30)))
    rnd = random.Random(seed)
    print("test_crash seed=%d (set CHRONIK_CRASH_SEED to replay)" % seed)
    srv = fresh_server
    topic = unique_topic("crash")
    admin = ck_admin(srv)  # keep a reference: the futures fail if the client is destroyed
    fs = admin.create_topics([NewTopic(topic, PARTITIONS, 1)], request_timeout=15)
    fs[topic].result(timeout=20)

    t0 = time.monotonic()
    sender = NumberedSender(srv.bootstrap, topic, PARTITIONS, **{"retries": 1000, "message.timeout.ms": 25000})
    sender.start()
    try:
        for k in range(KILLS):
            # let some records be acknowledged by this incarnation, then a random extra delay
            before = sender.acked_count()
            wait_for(lambda: sender.acked_count() > before + 20, 20, 0.02,
                     "acks from broker incarnation %d" % (k + 1))
            time.sleep(rnd.uniform(0.0, 1.5))
            if how == "sigkill":
                srv.kill9()
            else:
                srv.stop()  # asserts exit code 0
            time.sleep(rnd.uniform(0.0, 0.5))  # broker down for a random while
            srv.start()
        before = sender.acked_count()
        wait_for(lambda: sender.acked_count() > before + 100, 20, 0.02, "acks after the last restart")
    finally:
        sender.stop_evt.set()
        sender.join(45)
    assert not sender.is_alive(), "producer did not finish flushing"
    assert srv.starts == KILLS + 1

    acked = list(sender.acked)
    assert len(acked) >= 200, "only %d records acknowledged" % len(acked)
    by_pos = {}
    for part, off, n in acked:
        assert off >= 0
        prev = by_pos.setdefault((part, off), n)
        assert prev == n, "two acknowledged records at partition %d offset %d: numbers %d and %d" % (
            part, off, prev, n)

    # read everything back
    c = Consumer({"bootstrap.servers": srv.bootstrap, "group.id": "chronik-it-unused",
                  "enable.auto.commit": False, "socket.timeout.ms": 10000,
                  "fetch.message.max.bytes": 4 * 1024 * 1024})
    stored = {}
    try:
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(PARTITIONS)}
        for p in range(PARTITIONS):
            max_acked = max((o for (pp, o) in by_pos if pp == p), default=-1)
            assert ends[p] > max_acked, "partition %d: high watermark %d but offset %d was acknowledged" % (
                p, ends[p], max_acked)
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        deadline = time.monotonic() + 30
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

    missing = [(p, o, n) for (p, o), n in by_pos.items() if (p, o) not in stored]
    wrong = [(p, o, n, stored[(p, o)]) for (p, o), n in by_pos.items() if (p, o) in stored and stored[(p, o)] != n]
    assert not missing, "%d acknowledged records missing after crashes (seed %d), e.g. %r" % (
        len(missing), seed, sorted(missing)[:10])
    assert not wrong, "%d acknowledged offsets hold another number (seed %d), e.g. (p, off, acked, stored) %r" % (
        len(wrong), seed, sorted(wrong)[:10])
    # every stored record is a number that was sent, in its partition
    assert all(n % PARTITIONS == p and n < sender.sent for (p, _o), n in stored.items())
    dups = len(stored) - len(set(stored.values()))
    print("acked=%d stored=%d duplicates(retries, allowed)=%d delivery-failures=%d elapsed=%.1fs" % (
        len(acked), len(stored), dups, len(sender.failed), time.monotonic() - t0))
    assert time.monotonic() - t0 < 90, "crash test took too long"
