"""kcat 1.7.1 (librdkafka 2.0.2) against chronik-server."""
import json
import shutil
import subprocess
import time

import pytest
from confluent_kafka import Producer

from conftest import ck_admin, unique_topic
from confluent_kafka.admin import NewTopic

pytestmark = pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat not installed (scripts/setup.sh)")


def kcat(server, *args, input=None, timeout=30):
    cmd = ["kcat", "-b", server.bootstrap, "-X", "socket.timeout.ms=10000", "-X", "enable.idempotence=false"] \
        + list(args)
    r = subprocess.run(cmd, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    assert r.returncode == 0, "kcat %s failed (%d): %s" % (" ".join(args), r.returncode, r.stderr.decode("utf-8", "replace"))
    return r.stdout


def kcat_consume_json(server, topic, partition, *extra):
    out = kcat(server, "-C", "-t", topic, "-p", str(partition), "-e", "-J", *extra)
    return [json.loads(line) for line in out.decode().splitlines() if line.strip()]


def create(server, topic, partitions=1, config=None):
    admin = ck_admin(server)  # keep a reference: the futures fail if the client is destroyed
    fs = admin.create_topics([NewTopic(topic, partitions, 1, config=config or {})], request_timeout=15)
    fs[topic].result(timeout=20)


def test_produce_consume_keys_headers_nulls(server):
    topic = unique_topic("kc-rt")
    create(server, topic, 1)
    lines = b"k1:hello\nk2:world\nk3:\nk4:with:colons\n"
    kcat(server, "-P", "-t", topic, "-p", "0", "-K:", "-Z", "-H", "src=kcat", "-H", "n=1", input=lines)
    recs = kcat_consume_json(server, topic, 0, "-o", "beginning")
    assert [r["offset"] for r in recs] == [0, 1, 2, 3]
    assert [r["key"] for r in recs] == ["k1", "k2", "k3", "k4"]
    assert [r["payload"] for r in recs] == ["hello", "world", None, "with:colons"]  # -Z: empty -> NULL
    for r in recs:
        assert r["headers"] == ["src", "kcat", "n", "1"] or r["headers"] == {"src": "kcat", "n": "1"}, r["headers"]
        assert r["tstype"] == "create"
        assert abs(r["ts"] - time.time() * 1000) < 120_000
    # the same through the -f formatter (%S = -1 for NULL)
    out = kcat(server, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-f", "%o|%k|%S|%h\n").decode()
    assert out.splitlines() == ["0|k1|5|src=kcat,n=1", "1|k2|5|src=kcat,n=1", "2|k3|-1|src=kcat,n=1",
                                "3|k4|11|src=kcat,n=1"]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compression(server, codec):
    topic = unique_topic("kc-" + codec)
    create(server, topic, 1)
    msgs = ["%s line %d %s" % (codec, i, "x" * (i % 50)) for i in range(300)]
    kcat(server, "-P", "-t", topic, "-p", "0", "-X", "compression.codec=%s" % codec, "-X", "linger.ms=50",
         input=("\n".join(msgs) + "\n").encode())
    out = kcat(server, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-f", "%o %s\n").decode()
    assert out.splitlines() == ["%d %s" % (i, m) for i, m in enumerate(msgs)]


def test_metadata_listing(server):
    topic = unique_topic("kc-md")
    create(server, topic, 3)
    md = json.loads(kcat(server, "-L", "-J"))
    assert len(md["brokers"]) == 1
    assert md["brokers"][0]["name"].startswith(server.bootstrap)
    bid = md["brokers"][0]["id"]
    assert md["controllerid"] == bid
    topics = {t["topic"]: t for t in md["topics"]}
    assert topic in topics
    parts = sorted(topics[topic]["partitions"], key=lambda p: p["partition"])
    assert [p["partition"] for p in parts] == [0, 1, 2]
    assert all(p["leader"] == bid for p in parts)
    # text output too
    txt = kcat(server, "-L").decode()
    assert 'topic "%s" with 3 partitions' % topic in txt
    assert "broker %d at %s" % (bid, server.bootstrap) in txt


def test_offsets_and_time_queries(server):
    topic = unique_topic("kc-off")
    create(server, topic, 1)
    base = int(time.time() * 1000) - 3_600_000
    p = Producer({"bootstrap.servers": server.bootstrap, "enable.idempotence": False, "acks": "all"})
    for i in range(10):
        p.produce(topic, value=b"m%d" % i, partition=0, timestamp=base + i * 1000)
    assert p.flush(30) == 0

    def values(*o):
        out = kcat(server, "-C", "-t", topic, "-p", "0", "-e", "-f", "%o:%s\n", *o).decode()
        return out.splitlines()

    assert values("-o", "beginning") == ["%d:m%d" % (i, i) for i in range(10)]
    assert values("-o", "7") == ["7:m7", "8:m8", "9:m9"]
    assert values("-o", "-2") == ["8:m8", "9:m9"]
    assert values("-o", "s@%d" % (base + 4500)) == ["%d:m%d" % (i, i) for i in range(5, 10)]
    assert values("-o", "s@%d" % (base + 3000)) == ["%d:m%d" % (i, i) for i in range(3, 10)]
    assert values("-o", "beginning", "-o", "e@%d" % (base + 2000)) == ["0:m0", "1:m1"]
    # -Q: offset for a timestamp
    q = kcat(server, "-Q", "-t", "%s:0:%d" % (topic, base + 6500)).decode()
    assert "offset 7" in q, q
