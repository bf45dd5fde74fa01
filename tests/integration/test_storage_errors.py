"""A full disk: the partition refuses writes with KAFKA_STORAGE_ERROR instead of
acknowledging what is not durable, the server stays up, and what was acknowledged
before stays readable (also after a restart)."""
import os
import subprocess
import time

import pytest

import kafka_raw as kr
from conftest import ChronikServer, unique_topic

KAFKA_STORAGE_ERROR = 56


@pytest.fixture
def tiny_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_gives_storage_error_and_keeps_acknowledged_data(tiny_disk, tmp_path):
    srv = ChronikServer(tiny_disk / "data", tmp_path / "logs", name="diskfull")
    srv.start()
    topic = unique_topic("full")
    acked = []  # (offset, value)
    errors = []
    try:
        with kr.Conn(srv.host, srv.kafka_port) as c:
            kr.api_versions(c)
            for i in range(2000):
                value = b"%06d" % i + b"x" * 4000
                err, base = kr.produce_v3(c, topic, 0, kr.build_batch([(None, value, [])]))
                if err == 0:
                    acked.append((base, value[:6]))
                else:
                    errors.append(err)
                    if len(errors) >= 3:
                        break
            assert acked, "nothing could be written at all"
            assert errors and set(errors) == {KAFKA_STORAGE_ERROR}, errors
            # the partition stays refused, the server stays up and serves reads
            assert kr.api_versions(c)[0] == 0
        from confluent_kafka import Consumer, TopicPartition
        def read_all():
            cons = Consumer({"bootstrap.servers": srv.bootstrap, "group.id": "diskfull",
                             "enable.auto.commit": False})
            cons.assign([TopicPartition(topic, 0, 0)])
            got = {}
            deadline = time.monotonic() + 30
            while len(got) < len(acked) and time.monotonic() < deadline:
                for m in cons.consume(500, 1.0):
                    if not m.error():
                        got[m.offset()] = m.value()[:6]
            cons.close()
            return got
        got = read_all()
        for off, v in acked:
            assert got.get(off) == v, "acknowledged offset %d lost" % off
        # after a restart everything acknowledged is still there at its offset
        srv.kill9()
        srv.start()
        got = read_all()
        for off, v in acked:
            assert got.get(off) == v, "acknowledged offset %d lost after restart" % off
    finally:
        if srv.alive():
            srv.kill9()
