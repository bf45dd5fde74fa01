#!/usr/bin/python3
"""Vector search latency through Chronik's API, with the built-in local model:

  freshness   produce -> findable: a probe record with a unique sentence is produced
              (confluent-kafka, acks=all) every --probe-interval-ms while a background
              producer keeps a moderate load (--load docs/s of Vaswani abstracts); the
              time from the delivery report to the first /_vector search (filtered to
              the probe's partition and offset) that returns it;
  search      POST /_vector/{topic}/search latency p50/p99 (query embedding included),
              and /search_by_vector (no embedding);
  _query      POST /_query over three topics (text + vector backends), p50/p99.

  bench/vector_speed.py --server-binary build/chronik-server
"""
import argparse
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import search_quality as sq  # noqa: E402


def log(msg):
    print(time.strftime("%H:%M:%S ") + "vector-speed: " + msg, file=sys.stderr, flush=True)


def pct(xs, p):
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


def wait_vectors(client, topic, n, timeout=900.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        st, body = client.http.request("GET", "/_vector/%s/stats" % topic)
        if st == 200 and body.get("total_vectors", 0) >= n and body.get("lag") == 0:
            return time.monotonic() - t0
        time.sleep(0.1)
    raise sq.ChronikError("%s: vectors did not reach %d" % (topic, n))


def timed(client, method, path, bodies):
    out = []
    for b in bodies:
        t0 = time.perf_counter()
        st, resp = client.http.request(method, path, b)
        el = (time.perf_counter() - t0) * 1000
        if st != 200:
            raise sq.ChronikError("%s %s -> %d %s" % (method, path, st, sq.short(resp)))
        out.append(el)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", nargs="?")
    ap.add_argument("--server-binary", required=True)
    ap.add_argument("--docs", type=int, default=3000, help="abstracts per topic (3 topics)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--probes", type=int, default=200)
    ap.add_argument("--probe-interval-ms", type=float, default=50.0)
    ap.add_argument("--load", type=float, default=50.0, help="background docs/s during the probes")
    ap.add_argument("--workdir")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ds = sq.find_dataset(a.dataset)
    docs = sq.read_trec_docs(os.path.join(ds, "doc-text.trec"))
    queries = [q for _, q in sq.read_trec_queries(os.path.join(ds, "query-text.trec"))]
    own = a.workdir is None
    workdir = a.workdir or tempfile.mkdtemp(prefix="chronik-vector-speed-")
    server = sq.ChronikServer(a.server_binary, workdir, name="vspeed").start()
    res = {}
    try:
        client = sq.ChronikClient(server.url, server.bootstrap, timeout=120)
        topics = ["vs-orders", "vs-tickets", "vs-incidents"]
        for i, t in enumerate(topics):
            client.create_topic(t, 3, {"vector.enabled": "true"})
            part = docs[i * a.docs:(i + 1) * a.docs]
            sq.produce_json_kafka_python(client.bootstrap, t, ((d.encode(), {"docno": d, "text": x}) for d, x in part))
        t0 = time.monotonic()
        for t in topics:
            wait_vectors(client, t, a.docs)
        log("3 x %d abstracts embedded and indexed (%.1f s after the last produce)" % (a.docs, time.monotonic() - t0))

        rng = random.Random(7)
        qs = [queries[rng.randrange(len(queries))].lower() for _ in range(a.queries)]
        res["search"] = timed(client, "POST", "/_vector/%s/search" % topics[0], [{"query": q, "k": 10} for q in qs])
        # search_by_vector: random unit vectors of the model's dimension
        dims = client.http.request("GET", "/_vector/%s/stats" % topics[0])[1]["dimensions"]
        vecs = []
        for _ in range(a.queries):
            v = [rng.gauss(0, 1) for _ in range(dims)]
            n = sum(x * x for x in v) ** 0.5
            vecs.append([x / n for x in v])
        res["by_vector"] = timed(client, "POST", "/_vector/%s/search_by_vector" % topics[0],
                                 [{"vector": v, "k": 10} for v in vecs])
        res["query"] = timed(client, "POST", "/_query", [{"query": q, "topics": topics, "backends": ["search", "vector"],
                                                          "k": 10} for q in qs])
        for k in ("search", "by_vector", "query"):
            log("%s: p50 %.2f ms, p99 %.2f ms (%d)" % (k, pct(res[k], 50), pct(res[k], 99), len(res[k])))

        # freshness under a moderate background load
        from confluent_kafka import Producer
        stop = threading.Event()

        def background():
            p = Producer({"bootstrap.servers": client.bootstrap, "linger.ms": 5})
            i = 0
            while not stop.is_set():
                d, x = docs[(3 * a.docs + i) % len(docs)]
                p.produce(topics[1], json.dumps({"docno": d, "text": x}).encode())
                p.poll(0)
                i += 1
                time.sleep(1.0 / a.load)
            p.flush(10)

        bg = threading.Thread(target=background, daemon=True)
        bg.start()
        p = Producer({"bootstrap.servers": client.bootstrap, "acks": "all", "linger.ms": 0})
        lat = []
        missing = 0
        for i in range(a.probes):
            sentence = "probe %d: the %s %s reported a %s fault" % (
                i, rng.choice(["north", "south", "east", "west"]), rng.choice(["pump", "valve", "relay", "sensor"]),
                rng.choice(["thermal", "voltage", "pressure", "timing"]))
            got = {}
            ev = threading.Event()

            def dr(err, msg):
                got["p"], got["o"], got["t"] = msg.partition(), msg.offset(), time.monotonic()
                ev.set()

            p.produce(topics[1], json.dumps({"docno": "probe", "text": sentence}).encode(), on_delivery=dr)
            while not ev.is_set():
                p.poll(0.001)
            body = {"query": sentence, "k": 1, "partitions": [got["p"]], "min_offset": got["o"], "max_offset": got["o"]}
            deadline = got["t"] + 10
            seen = None
            while time.monotonic() < deadline:
                st, r = client.http.request("POST", "/_vector/%s/search" % topics[1], body)
                if st == 200 and r["count"] == 1:
                    seen = time.monotonic()
                    break
                time.sleep(0.002)
            if seen is None:
                missing += 1
            else:
                lat.append((seen - got["t"]) * 1000)
            time.sleep(a.probe_interval_ms / 1000.0)
        stop.set()
        bg.join(15)
        res["fresh"] = lat
        log("produce -> findable: p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d probes, %d never seen)" % (
            pct(lat, 50), pct(lat, 99), max(lat) if lat else float("nan"), len(lat), missing))
    finally:
        server.stop()
        if own:
            shutil.rmtree(workdir, ignore_errors=True)
    print("")
    print("### Vector latency (built-in model, 3 topics x %d Vaswani abstracts, 3 partitions each)" % a.docs)
    print("")
    print("| Figure | p50 ms | p99 ms | n |")
    print("|---|---|---|---|")
    names = {"search": "/_vector/{topic}/search (embedding the query included), k 10",
             "by_vector": "/_vector/{topic}/search_by_vector, k 10",
             "query": "/_query over 3 topics, text + vector, k 10",
             "fresh": "produce -> findable (acks=all delivery report -> first search returning it; %.0f docs/s of "
                      "background load)" % a.load}
    for k in ("search", "by_vector", "query", "fresh"):
        print("| %s | %.2f | %.2f | %d |" % (names[k], pct(res[k], 50), pct(res[k], 99), len(res[k])))
    print("RESULT search_p50=%.3f search_p99=%.3f by_vector_p50=%.3f query_p50=%.3f query_p99=%.3f fresh_p50=%.1f "
          "fresh_p99=%.1f" % (pct(res["search"], 50), pct(res["search"], 99), pct(res["by_vector"], 50),
                              pct(res["query"], 50), pct(res["query"], 99), pct(res["fresh"], 50),
                              pct(res["fresh"], 99)), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
