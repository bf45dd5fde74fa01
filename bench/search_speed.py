#!/usr/bin/python3
"""Search speed: indexing, index size, query latency, QPS and produce->searchable latency
of Chronik's search, next to Xapian and SQLite FTS5 measured in the same run on the same
synthetic corpus (bench/search_corpus.py) and the same queries.

    /usr/bin/python3 bench/search_speed.py [--docs 1000000 | --quick] [--systems xapian,fts5,chronik]
        [--server-binary BUILD/chronik-server | --url http://H:6092 --bootstrap H:9092]

What is measured (all on 127.0.0.1, one process for the baselines, so they pay Python's
binding overhead per query as Chronik pays HTTP + JSON):

  indexing   Xapian: WritableDatabase (glass) + TermGenerator, Stem("english") STEM_SOME,
             positions on, add_document per text, one commit at the end, with
             XAPIAN_FLUSH_THRESHOLD=100000 unless set (the bulk-load setting; Xapian's
             default of 10000 halves its rate here); docs/s over build + commit; size = the
             database folder as built, and after xapian-compact (not timed). Note that
             STEM_SOME indexes each word twice: as is, with positions, and stemmed (Z...).
             FTS5: fts5(text, tokenize='porter unicode61', content='') -- contentless, so
             no copy of the text, like Xapian (no document data) and Chronik (the log is the
             store); one transaction, executemany; size = the database file.
             Chronik: a topic with searchable=true, every document produced as JSON
             {"id","text"} with confluent-kafka (acks=all, linger.ms=5); docs/s = N over
             first produce -> match_all total == N. Then the index settles (no in-memory
             segment and no merge queued or running, "merging" in GET /topics/{topic}, for
             3 s), as the baselines' indexes are complete when they are queried; size = the
             segment files COMMIT lists once every doc is committed (the server commits
             every second here), and <data>/search/<topic>/ again at the end of the run.
             Chronik, index build (measured last, like the baselines' build: the documents
             are there before the clock starts): the same documents produced to a second
             topic with searchable=false; then AlterConfigs searchable=true; docs/s = N over
             that call -> match_all total == N, and -> the topic's COMMIT covers N records
             (everything on disk).
  latency    per query set (1, 2, 3 terms x uniform / by corpus frequency), top 10,
             sequential, after a few warm-up queries: p50/p99 wall time per query. Xapian:
             QueryParser (default OR, same stemmer) + Enquire.get_mset(0, 10); FTS5: OR of
             quoted terms, ORDER BY rank LIMIT 10; Chronik: POST /<topic>/_search
             {"query":{"match":{"text":q}},"size":10,"track_total_hits":false,
             "_source":false} on one keep-alive connection (includes HTTP and JSON both
             ways; ids and scores, as the baselines return); the same from a C client
             (BUILD/bench/chronik-query-bench, --query-bench), since Python's http.client
             alone costs ~0.1 ms a request; then every set again without "_source":false
             (each hit's record read back from the log). A set stops early
             when it has used --set-budget seconds (the count run is printed).
  QPS        Chronik: --clients threads (8), each with its own keep-alive connection,
             queries from all sets interleaved, --qps-seconds (10).
  freshness  Chronik: one probe document every --probe-interval-ms (20) with a unique token,
             acks=all; a poller searches for every unacknowledged-or-unseen token every
             ~5 ms; latency = delivery report -> first search that returns it.
"""
import argparse
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import json

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import search_corpus  # noqa: E402
from search_quality import (XapianIndex, Fts5Index, ChronikServer, ChronikClient, ChronikError,  # noqa: E402
                            Http, dir_size, hit_source_value, short)

SET_NAMES = ["uniform-1", "uniform-2", "uniform-3", "freq-1", "freq-2", "freq-3"]


def log(msg):
    sys.stderr.write("%s search-speed: %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def pct(xs, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))
    return s[k]


def ms(x):
    return "%.3f" % (x * 1e3)


def time_queries(search, queries, budget, warmup=20):
    """Runs search(q) for each query in order (after warm-up on the last ones); returns
    the per-query seconds, stopping once budget seconds are used."""
    for q in queries[-warmup:]:
        search(q)
    lat = []
    t_end = time.monotonic() + budget
    pc = time.perf_counter
    for q in queries:
        t0 = pc()
        search(q)
        lat.append(pc() - t0)
        if time.monotonic() > t_end:
            break
    return lat


# --------------------------------------------------------------------------- Chronik
def produce_confluent(bootstrap, topic, values, timeout):
    """values: iterable of bytes. Returns (first produce time, seconds to the last ack)."""
    from confluent_kafka import Producer
    errors = []

    def dr(err, msg):
        if err is not None:
            errors.append(err)

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "batch.size": 1000000,
                  "queue.buffering.max.messages": 500000, "queue.buffering.max.kbytes": 1048576,
                  "compression.type": "none", "enable.idempotence": False,
                  "message.timeout.ms": int(timeout * 1000)})
    t0 = time.monotonic()
    n = 0
    for v in values:
        while True:
            try:
                p.produce(topic, v, on_delivery=dr)
                break
            except BufferError:
                p.poll(0.05)
        n += 1
        if n % 10000 == 0:
            p.poll(0)
    left = p.flush(timeout)
    el = time.monotonic() - t0
    if left:
        raise ChronikError("%d records not acknowledged within %.0f s" % (left, timeout))
    if errors:
        raise ChronikError("%d delivery errors, first: %s" % (len(errors), errors[0]))
    return t0, el


def chronik_qps(url, topic, queries, clients, seconds, timeout):
    stop = time.monotonic() + seconds
    counts = [0] * clients
    lats = [[] for _ in range(clients)]
    errs = []

    def worker(i):
        h = Http(url, timeout)
        k = i
        body = {"query": {"match": {"text": ""}}, "size": 10, "track_total_hits": False}
        path = "/%s/_search" % topic
        try:
            while time.monotonic() < stop:
                body["query"]["match"]["text"] = queries[k % len(queries)]
                k += clients
                t0 = time.perf_counter()
                st, resp = h.request("POST", path, body)
                if st != 200:
                    errs.append("%d %s" % (st, short(resp)))
                    return
                lats[i].append(time.perf_counter() - t0)
                counts[i] += 1
        except Exception as e:  # noqa: BLE001 - reported below
            errs.append(repr(e))
        finally:
            h.close()

    ths = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    t0 = time.monotonic()
    for t in ths:
        t.start()
    for t in ths:
        t.join(seconds + timeout + 5)
    el = time.monotonic() - t0
    if errs:
        raise ChronikError("QPS run: %s" % errs[0])
    all_l = [x for l in lats for x in l]
    return sum(counts) / el, all_l


def chronik_freshness(client, bootstrap, topic, probes, interval, timeout):
    from confluent_kafka import Producer
    rng = random.Random(7)
    letters = "bcdfghjklmnpqrtvwxz"
    lock = threading.Lock()
    acked = {}   # token -> ack time
    seen = {}    # token -> first time seen in a search
    pending = []  # tokens produced, not yet seen
    done = threading.Event()
    errors = []

    def poller():
        h = Http(client.url, 30)
        try:
            while not done.is_set() or pending:
                with lock:
                    toks = list(pending)
                if not toks:
                    time.sleep(0.002)
                    continue
                body = {"query": {"match": {"text": " ".join(toks)}}, "size": len(toks), "track_total_hits": False}
                st, resp = h.request("POST", "/%s/_search" % topic, body)
                now = time.monotonic()
                if st != 200:
                    errors.append("%d %s" % (st, short(resp)))
                    return
                with lock:
                    for hit in resp.get("hits", {}).get("hits", []):
                        tok = hit_source_value(hit).get("probe")
                        if tok in pending:
                            seen[tok] = now
                            pending.remove(tok)
                if done.is_set() and time.monotonic() > deadline[0]:
                    return
                time.sleep(0.005)
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))
        finally:
            h.close()

    deadline = [float("inf")]
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0,
                  "enable.idempotence": False, "message.timeout.ms": 30000})
    th = threading.Thread(target=poller, daemon=True)
    th.start()
    next_t = time.monotonic()
    try:
        for i in range(probes):
            if errors:
                break
            tok = "zq" + "".join(rng.choice(letters) for _ in range(10))
            val = json.dumps({"id": "probe-%d" % i, "text": "probe %s" % tok, "probe": tok}).encode()

            def dr(err, msg, tok=tok):
                if err is None:
                    acked[tok] = time.monotonic()
                else:
                    errors.append("probe delivery: %s" % err)

            with lock:
                pending.append(tok)
            p.produce(topic, val, on_delivery=dr)
            if p.flush(30):
                errors.append("probe %d not acknowledged within 30 s" % i)
                break
            next_t += interval
            d = next_t - time.monotonic()
            if d > 0:
                time.sleep(d)
    finally:
        deadline[0] = time.monotonic() + timeout
        done.set()
        th.join(timeout + 35)
    if errors:
        raise ChronikError("freshness probes: %s" % errors[0])
    lat = [max(0.0, seen[t] - acked[t]) for t in seen if t in acked]
    missing = probes - len(lat)
    return lat, missing


class Report:
    def __init__(self):
        self.rows = {}     # (system, metric) -> value
        self.notes = []
        self.failures = []


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, help="documents (1,000,000; --quick 100,000)")
    ap.add_argument("--quick", action="store_true", help="100,000 documents (unless --docs is given)")
    ap.add_argument("--seed", type=int, default=search_corpus.DEFAULTS["seed"])
    ap.add_argument("--systems", default="xapian,fts5,chronik")
    ap.add_argument("--server-binary")
    ap.add_argument("--url")
    ap.add_argument("--bootstrap")
    ap.add_argument("--topic", default="bench-search")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--queries", type=int, default=1000, help="queries per set (1000)")
    ap.add_argument("--set-budget", type=float, default=30.0, help="max seconds per system and query set")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--qps-seconds", type=float, default=10.0)
    ap.add_argument("--probes", type=int, default=200)
    ap.add_argument("--probe-interval-ms", type=float, default=20.0)
    ap.add_argument("--index-timeout", type=float, default=None, help="s until all docs searchable (N/2000 + 120)")
    ap.add_argument("--error-grace", type=float, default=15.0)
    ap.add_argument("--request-timeout", type=float, default=60.0)
    ap.add_argument("--query-bench", help="chronik-query-bench binary (default: bench/ next to "
                    "--server-binary; the C-client latency is skipped without it)")
    ap.add_argument("--workdir")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    if a.docs is None:
        a.docs = 100000 if a.quick else 1000000
    systems = [s.strip() for s in a.systems.split(",") if s.strip()]
    for s in systems:
        if s not in ("xapian", "fts5", "chronik"):
            sys.exit("search-speed: unknown system %r" % s)
    if a.index_timeout is None:
        a.index_timeout = a.docs / 2000.0 + 120

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks (stop the server)
    os.environ.setdefault("XAPIAN_FLUSH_THRESHOLD", "100000")  # read when a database is opened
    own_tmp = a.workdir is None
    workdir = a.workdir or tempfile.mkdtemp(prefix="chronik-search-speed-")
    os.makedirs(workdir, exist_ok=True)

    corpus = search_corpus.Corpus(docs=a.docs, seed=a.seed)
    t0 = time.monotonic()
    texts = list(corpus.docs())
    qsets = corpus.queries(a.queries)
    log("corpus: %s; %d words, %d distinct; generated in %.1f s" % (
        corpus.describe(), corpus.tokens, len(corpus.counts), time.monotonic() - t0))

    res = {}  # system -> dict
    failures = []
    try:
        if "xapian" in systems:
            import xapian
            r = res["xapian"] = {}
            idx = XapianIndex(os.path.join(workdir, "xapian"))
            log("xapian: indexing %d docs" % a.docs)
            t0 = time.monotonic()
            idx.build(texts)
            el = time.monotonic() - t0
            r.update(index_s=el, docs_s=a.docs / el, size=dir_size(idx.path))
            try:  # as built, B-tree blocks are part-full; xapian-compact packs them (not timed)
                xapian.Database(idx.path).compact(idx.path + "-compact")
                r["size_compact"] = dir_size(idx.path + "-compact")
            except (AttributeError, xapian.Error) as e:
                log("xapian: compact failed: %s" % e)
            log("xapian: %.0f docs/s, %.1f MB (compacted %s)" % (
                r["docs_s"], r["size"] / 1e6, _fmt_size(r.get("size_compact"))))
            search = idx.searcher(xapian.BM25Weight())
            for name in SET_NAMES:
                r[name] = time_queries(lambda q: search(q, 10), qsets[name], a.set_budget)
                log("xapian %s: p50 %s ms p99 %s ms (%d queries)" % (
                    name, ms(pct(r[name], 50)), ms(pct(r[name], 99)), len(r[name])))
            idx.db.close()
        if "fts5" in systems:
            r = res["fts5"] = {}
            idx = Fts5Index(os.path.join(workdir, "fts5.db"), contentless=True)
            log("fts5: indexing %d docs" % a.docs)
            t0 = time.monotonic()
            idx.build(texts)
            el = time.monotonic() - t0
            r.update(index_s=el, docs_s=a.docs / el, size=os.path.getsize(idx.path))
            log("fts5: %.0f docs/s, %.1f MB" % (r["docs_s"], r["size"] / 1e6))
            search = idx.searcher()
            for name in SET_NAMES:
                r[name] = time_queries(lambda q: search(q, 10), qsets[name], a.set_budget)
                log("fts5 %s: p50 %s ms p99 %s ms (%d queries)" % (
                    name, ms(pct(r[name], 50)), ms(pct(r[name], 99)), len(r[name])))
            idx.con.close()
        if "chronik" in systems:
            r = res["chronik"] = {}
            server = None
            try:
                if a.url:
                    if not a.bootstrap:
                        raise ChronikError("--url needs --bootstrap")
                    client = ChronikClient(a.url, a.bootstrap, a.request_timeout)
                else:
                    if not a.server_binary:
                        raise ChronikError("give --server-binary PATH or --url/--bootstrap")
                    # commits every second, so the size below is the committed index's
                    server = ChronikServer(a.server_binary, workdir, name="speed",
                                           extra_env={"CHRONIK_SEARCH_FLUSH_INTERVAL_MS": "1000"}).start()
                    client = ChronikClient(server.url, server.bootstrap, a.request_timeout)
                client.create_topic(a.topic, a.partitions)
                log("chronik: producing %d docs to %s (%d partitions)" % (a.docs, a.topic, a.partitions))
                t_first, ack_s = produce_confluent(
                    client.bootstrap, a.topic,
                    (json.dumps({"id": i, "text": t}).encode() for i, t in enumerate(texts)), a.index_timeout)
                r["produce_s"] = ack_s
                log("chronik: all acknowledged after %.1f s; waiting until searchable" % ack_s)
                client.wait_searchable(a.topic, a.docs, a.index_timeout, error_grace=a.error_grace)
                el = time.monotonic() - t_first
                r.update(index_s=el, docs_s=a.docs / el)
                sdir = os.path.join(server.data_dir, "search", a.topic) if server else None
                settle_s = wait_settled(client, a.topic)
                log("chronik: index settled %.1f s after all were searchable (no in-memory segment, "
                    "no merge queued or running, for 3 s)" % settle_s)
                r["size"] = committed_size(sdir, a.docs) if sdir else None
                log("chronik: searchable after %.1f s: %.0f docs/s, index %s" % (
                    el, r["docs_s"], "-" if r["size"] is None else "%.1f MB" % (r["size"] / 1e6)))
                # ids and scores only, as the baselines return; then with each hit's
                # _source read back from the log
                for name in SET_NAMES:
                    def search(q):
                        client.match(a.topic, "text", q, 10, source=False, track_total_hits=False)
                    r[name] = time_queries(search, qsets[name], a.set_budget)
                    log("chronik %s: p50 %s ms p99 %s ms (%d queries)" % (
                        name, ms(pct(r[name], 50)), ms(pct(r[name], 99)), len(r[name])))
                # the same ids-and-scores queries from a C client (one keep-alive connection):
                # Python's http.client alone costs ~0.1 ms a request
                qb = a.query_bench or (os.path.join(os.path.dirname(a.server_binary), "bench", "chronik-query-bench")
                                       if a.server_binary else None)
                if qb and os.access(qb, os.X_OK):
                    hostport = client.url.split("//", 1)[1].rstrip("/")
                    for name in SET_NAMES:
                        qf = os.path.join(workdir, "queries-%s.txt" % name)
                        with open(qf, "w") as f:
                            f.write("\n".join(qsets[name]) + "\n")
                        out = subprocess.run([qb, hostport, a.topic, qf, "--budget", str(a.set_budget)],
                                             capture_output=True, text=True, timeout=a.set_budget + 120)
                        if out.returncode != 0:
                            raise ChronikError("chronik-query-bench %s: %s" % (name, out.stderr.strip()[:300]))
                        r[name + "+c"] = [x / 1000.0 for x in json.loads(out.stdout)["ms"]]
                        log("chronik %s, C client: p50 %s ms p99 %s ms (%d queries)" % (
                            name, ms(pct(r[name + "+c"], 50)), ms(pct(r[name + "+c"], 99)), len(r[name + "+c"])))
                else:
                    log("chronik: no chronik-query-bench (%s): the C-client latency is skipped" % qb)
                for name in SET_NAMES:
                    def search_src(q):
                        client.match(a.topic, "text", q, 10, track_total_hits=False)
                    r[name + "+src"] = time_queries(search_src, qsets[name], a.set_budget)
                    log("chronik %s with _source: p50 %s ms p99 %s ms (%d queries)" % (
                        name, ms(pct(r[name + "+src"], 50)), ms(pct(r[name + "+src"], 99)), len(r[name + "+src"])))
                # the round trip with no search work: HTTP, JSON both ways, request parsing
                def empty(_q):
                    st, resp = client.search(a.topic, {"query": {"match_none": {}}, "size": 10,
                                                       "track_total_hits": False})
                    if st != 200:
                        raise ChronikError("match_none -> %d %s" % (st, short(resp)))
                r["empty"] = time_queries(empty, list(range(1000)), a.set_budget)
                log("chronik empty round trip (match_none): p50 %s ms p99 %s ms" % (
                    ms(pct(r["empty"], 50)), ms(pct(r["empty"], 99))))
                mixed = [q for grp in zip(*(qsets[n] for n in SET_NAMES)) for q in grp]
                qps, qlat = chronik_qps(client.url, a.topic, mixed, a.clients, a.qps_seconds, a.request_timeout)
                r.update(qps=qps, qps_lat=qlat)
                log("chronik: %.0f queries/s with %d clients (p50 %s ms, p99 %s ms)" % (
                    qps, a.clients, ms(pct(qlat, 50)), ms(pct(qlat, 99))))
                flat, missing = chronik_freshness(client, client.bootstrap, a.topic, a.probes,
                                                  a.probe_interval_ms / 1000.0, 30.0)
                if not flat:
                    raise ChronikError("no probe became searchable (%d missing)" % missing)
                r.update(fresh=flat, fresh_missing=missing)
                log("chronik: produce->searchable p50 %s ms p99 %s ms (%d probes, %d missing)" % (
                    ms(pct(flat, 50)), ms(pct(flat, 99)), len(flat), missing))
                if sdir:
                    r["size_end"] = dir_size(sdir)
                # the index build alone, as the baselines are timed: the documents are in
                # the log already (a second topic, not searchable while they are produced);
                # then searchable=true -> every doc searchable, and -> committed to disk
                t2 = a.topic + "-build"
                client.create_topic(t2, a.partitions, {"searchable": "false"})
                log("chronik: producing %d docs to %s (not searchable)" % (a.docs, t2))
                _t, ack2 = produce_confluent(
                    client.bootstrap, t2,
                    (json.dumps({"id": i, "text": t}).encode() for i, t in enumerate(texts)), a.index_timeout)
                time.sleep(2.0)
                log("chronik: produced in %.1f s; enabling searchable" % ack2)
                from confluent_kafka.admin import AdminClient, ConfigResource
                adm = AdminClient({"bootstrap.servers": client.bootstrap})
                t_on = time.monotonic()
                for _k, fut in adm.alter_configs([ConfigResource("topic", t2, set_config={"searchable": "true"})]).items():
                    fut.result(30)
                client.wait_searchable(t2, a.docs, a.index_timeout, error_grace=a.error_grace)
                b_s = time.monotonic() - t_on
                r.update(build_s=b_s, build_docs_s=a.docs / b_s)
                if server:
                    c_s = committed_after(os.path.join(server.data_dir, "search", t2), a.docs, t_on, a.index_timeout)
                    if c_s is not None:
                        r.update(build_commit_s=c_s, build_commit_docs_s=a.docs / c_s)
                log("chronik: index build from the log: searchable after %.1f s (%.0f docs/s), committed after %s s" % (
                    b_s, r["build_docs_s"], "%.1f" % r["build_commit_s"] if "build_commit_s" in r else "-"))
            except (ChronikError, OSError) as e:
                log("chronik FAILED: %s" % e)
                failures.append(("chronik", str(e)))
            finally:
                if server is not None:
                    server.stop()
    finally:
        if own_tmp and not a.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log("work folder kept: %s" % workdir)

    print_report(a, corpus, res, failures)
    return 1 if failures else 0


def committed_size(sdir, ndocs, timeout=120.0):
    """Bytes of the segments COMMIT lists, once COMMIT covers every doc and merges have
    settled (the same size twice, 2 s apart); None if that does not happen in time."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            with open(os.path.join(sdir, "COMMIT")) as f:
                c = json.load(f)
        except (OSError, ValueError):
            c = None
        if c and sum(c["partitions"]) >= ndocs:
            size = sum(sg["bytes"] for sg in c["segments"])
            if size == last:
                return size
            last = size
        time.sleep(2.0)
    return last


def committed_after(sdir, ndocs, t0, timeout):
    """Seconds from t0 until the folder's COMMIT covers ndocs records (None at the timeout)."""
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        try:
            with open(os.path.join(sdir, "COMMIT")) as f:
                if sum(json.load(f)["partitions"]) >= ndocs:
                    return time.monotonic() - t0
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    return None


def wait_settled(client, topic, timeout=120.0):
    """Waits until the topic's index has no in-memory segment and no merge queued or running,
    unchanged for 3 s (GET /topics/{topic}), like a baseline whose index is built and
    committed before it is queried. Returns the seconds waited."""
    t0 = time.monotonic()
    last, since = None, time.monotonic()
    while time.monotonic() - t0 < timeout:
        st, body = client.http.request("GET", "/topics/" + topic)
        idx = (((body or {}).get("capabilities") or {}).get("searchable") or {}).get("index") \
            if st == 200 and isinstance(body, dict) else None
        key = (idx.get("segments_memory"), idx.get("segments_disk"), idx.get("merges"),
               idx.get("merging")) if idx else None
        if key != last:
            last, since = key, time.monotonic()
        elif key and key[0] == 0 and not key[3] and time.monotonic() - since >= 3.0:
            break
        time.sleep(0.25)
    return time.monotonic() - t0


def _fmt_size(n):
    return "-" if n is None else "%.1f MB" % (n / 1e6)


def _ratio(x, y):
    if x is None or y is None or y == 0:
        return "-"
    return "%.2f" % (x / y)


def print_report(a, corpus, res, failures):
    try:
        import xapian
        xv = xapian.version_string()
    except ImportError:
        xv = "?"
    names = {"xapian": "Xapian %s" % xv, "fts5": "SQLite %s FTS5" % sqlite3.sqlite_version, "chronik": "Chronik"}
    ok = [s for s in ("xapian", "fts5", "chronik") if s in res and "docs_s" in res[s]]
    base = [s for s in ok if s != "chronik"]
    print("")
    print("### Search speed: %d synthetic documents" % a.docs)
    print("")
    print("Corpus: %s (bench/search_corpus.py); %d words, %d distinct." % (
        corpus.describe(), corpus.tokens, len(corpus.counts)))
    print("")
    print("| System | Indexing | Index size | Chronik / this: docs/s (index build; end to end), size |")
    print("|---|---|---|---|")
    c = res.get("chronik", {})
    for s in ok:
        r = res[s]
        extra = ""
        if s == "chronik":
            if r.get("build_docs_s"):
                commit = ("; committed to disk after %.1f s, %.0f docs/s" % (r["build_commit_s"], r["build_commit_docs_s"])
                          if r.get("build_commit_s") else "")
                print("| %s, index build | %.0f docs/s (%.1f s) | %s | documents already in the log (%d partitions): "
                      "searchable=true -> all searchable%s |" % (
                          names[s], r["build_docs_s"], r["build_s"], _fmt_size(r.get("size")), a.partitions, commit))
            extra = "first produce -> all searchable (%d partitions; all acked after %.1f s)" % (
                a.partitions, r.get("produce_s", 0))
            if r.get("size_end") is not None:
                extra += "; size at the end %s" % _fmt_size(r["size_end"])
            print("| %s, end to end | %.0f docs/s (%.1f s) | %s | %s |" % (names[s], r["docs_s"], r["index_s"],
                                                                        _fmt_size(r.get("size")), extra))
        else:
            rat = "%s; %s, %s" % (_ratio(c.get("build_docs_s"), r["docs_s"]), _ratio(c.get("docs_s"), r["docs_s"]),
                                  _ratio(c.get("size"), r["size"])) if "docs_s" in c else "-"
            size = _fmt_size(r["size"])
            if r.get("size_compact") is not None:
                size += " (%s after xapian-compact)" % _fmt_size(r["size_compact"])
            if s == "xapian":
                size += "; XAPIAN_FLUSH_THRESHOLD=%s" % os.environ.get("XAPIAN_FLUSH_THRESHOLD")
            print("| %s | %.0f docs/s (%.1f s) | %s | %s |" % (names[s], r["docs_s"], r["index_s"], size, rat))
    print("")
    print("Xapian: TermGenerator + Stem(english) STEM_SOME, positions, BM25Weight() defaults; FTS5: "
          "tokenize='porter unicode61', contentless (content=''), one transaction; Chronik: topic with "
          "searchable=true, JSON {\"id\",\"text\"} produced with confluent-kafka, acks=all. Sizes as built.")
    print("")
    print("Query latency, top 10, one client, sequential (ms, p50 / p99; n = queries timed). "
          "Chronik's figures include HTTP and JSON both ways; the baselines run in-process through "
          "their Python bindings. The baselines return doc ids and scores; so do the Chronik columns "
          "(`_source: false`): first from Python's http.client (like the baselines, a Python caller), "
          "then from a C client (bench/chronik-query-bench.c, one keep-alive connection), as Python's "
          "client alone costs about 0.1 ms a request. The ratios compare like with like (ids and "
          "scores): Python client; C client. The last column has Chronik (Python client) with every "
          "hit's `_source` read back from the log.")
    print("")
    src = "chronik" in ok and any(c.get(n + "+src") for n in SET_NAMES)
    cc = "chronik" in ok and any(c.get(n + "+c") for n in SET_NAMES)
    hdr = "| Query set | " + " | ".join(names[s] for s in ok)
    if cc:
        hdr += " | Chronik, C client"
    if "chronik" in ok and base:
        hdr += " | " + " | ".join("Chronik / %s p50, p99" % names[s].split()[0] for s in base)
    if src:
        hdr += " | Chronik with _source"
    print(hdr + " |")
    print("|---" * (1 + len(ok) + (1 if cc else 0) + (len(base) if "chronik" in ok else 0) + (1 if src else 0)) + "|")
    for name in SET_NAMES:
        cells = []
        for s in ok:
            l = res[s].get(name)
            cells.append("%s / %s (n=%d)" % (ms(pct(l, 50)), ms(pct(l, 99)), len(l)) if l else "-")
        if cc:
            l = c.get(name + "+c")
            cells.append("%s / %s (n=%d)" % (ms(pct(l, 50)), ms(pct(l, 99)), len(l)) if l else "-")
        if "chronik" in ok and c.get(name):
            for s in base:
                l = res[s].get(name)
                cell = "-"
                if l:
                    cell = "%s, %s" % (_ratio(pct(c[name], 50), pct(l, 50)), _ratio(pct(c[name], 99), pct(l, 99)))
                    if c.get(name + "+c"):
                        cell += "; %s, %s" % (_ratio(pct(c[name + "+c"], 50), pct(l, 50)),
                                              _ratio(pct(c[name + "+c"], 99), pct(l, 99)))
                cells.append(cell)
        elif "chronik" in ok:
            cells += ["-"] * len(base)
        if src:
            l = c.get(name + "+src")
            cells.append("%s / %s (n=%d)" % (ms(pct(l, 50)), ms(pct(l, 99)), len(l)) if l else "-")
        print("| %s | %s |" % (name, " | ".join(cells)))
    if c.get("qps"):
        print("")
        if c.get("empty"):
            print("Chronik's round trip without search work (`match_none`, same client): p50 %s ms, "
                  "p99 %s ms; most of Chronik's uniform-set latency is this HTTP/JSON cost." % (
                      ms(pct(c["empty"], 50)), ms(pct(c["empty"], 99))))
            print()
        print("Chronik throughput: %.0f queries/s with %d concurrent HTTP clients (keep-alive, all sets "
              "interleaved, %.0f s; p50 %s ms, p99 %s ms; the clients are Python threads on the same machine)."
              % (c["qps"], a.clients, a.qps_seconds, ms(pct(c["qps_lat"], 50)), ms(pct(c["qps_lat"], 99))))
    if c.get("fresh"):
        f = c["fresh"]
        print("")
        print("Chronik produce -> searchable: p50 %s ms, p99 %s ms, max %s ms (%d probes every %.0f ms, "
              "acks=all, delivery report -> first search returning it, polled every ~5 ms; %d never seen)."
              % (ms(pct(f, 50)), ms(pct(f, 99)), ms(max(f)), len(f), a.probe_interval_ms, c["fresh_missing"]))
    for s, err in failures:
        print("")
        print("%s FAILED: %s" % (names.get(s, s), err))
    print("")
    for s in ok:
        r = res[s]
        kv = ["docs_s=%.0f" % r["docs_s"], "size=%s" % r.get("size")]
        if r.get("build_docs_s"):
            kv.append("build_docs_s=%.0f" % r["build_docs_s"])
        if r.get("build_commit_docs_s"):
            kv.append("build_commit_docs_s=%.0f" % r["build_commit_docs_s"])
        for name in SET_NAMES:
            if r.get(name):
                kv.append("%s_p50_ms=%s %s_p99_ms=%s" % (name, ms(pct(r[name], 50)), name, ms(pct(r[name], 99))))
            if r.get(name + "+src"):
                kv.append("%s_source_p50_ms=%s" % (name, ms(pct(r[name + "+src"], 50))))
            if r.get(name + "+c"):
                kv.append("%s_c_p50_ms=%s %s_c_p99_ms=%s" % (name, ms(pct(r[name + "+c"], 50)),
                                                             name, ms(pct(r[name + "+c"], 99))))
        if r.get("qps"):
            kv.append("qps=%.0f" % r["qps"])
        if r.get("fresh"):
            kv.append("fresh_p50_ms=%s fresh_p99_ms=%s" % (ms(pct(r["fresh"], 50)), ms(pct(r["fresh"], 99))))
        sys.stderr.write("RESULT system=%s %s\n" % (s, " ".join(kv)))


if __name__ == "__main__":
    sys.exit(main())
