#!/usr/bin/python3
"""Search quality on the Vaswani (NPL) test collection: Chronik's BM25 against Xapian and
SQLite FTS5, same documents, same queries, same metrics, in one run.

    /usr/bin/python3 bench/search_quality.py [DATASET_DIR] [--systems xapian,fts5,chronik]
        [--server-binary BUILD/chronik-server | --url http://127.0.0.1:6092 --bootstrap 127.0.0.1:9092]

DATASET_DIR holds doc-text.trec, query-text.trec and qrels (default: ../shared/datasets/vaswani
next to the repository). Metrics (trec_eval's definitions, binary relevance from qrels,
averaged over every query that has judgements; a query a system answers with nothing
scores 0, as `trec_eval -c`):

  - nDCG@10 (ndcg_cut_10): DCG = sum over ranks i=1..10 of rel_i / log2(i + 1), divided
    by the DCG of the ideal ranking (all judged-relevant documents first);
  - MAP (map): sum of precision@rank over the ranks of the relevant retrieved documents
    (ranking cut at 1000), divided by the number of relevant documents;
  - R@100 (recall_100): relevant documents in the top 100 over relevant documents.

Rankings are ordered as trec_eval orders them: score descending, ties by docno descending
(string order). Queries are lower-cased before they go to any system (the collection's
queries are upper-case; Xapian's QueryParser neither stems capitalised words with STEM_SOME
nor leaves upper-case AND/OR/NOT alone); documents are already lower-case.

Systems:
  xapian   python3-xapian: TermGenerator + Stem("english") (STEM_SOME), QueryParser with
           the same stemmer, default operator OR; xapian.BM25Weight() with Xapian's
           defaults k1=1, k2=0, k3=1, b=0.5, min_normlen=0.5.
  xapian12 the same with BM25Weight(1.2, 0, 1, 0.75, 0.5), i.e. the k1/b Chronik uses.
  fts5     Python's sqlite3, fts5(text, tokenize='porter unicode61'), bm25() with its
           fixed k1=1.2, b=0.75; the query is an OR of the query's words, each quoted.
  chronik  a searchable topic (every document produced as {"docno","text"} with
           kafka-python, acks=all), POST /<topic>/_search {"query":{"match":{"text":q}},
           "size":1000}.
"""
import argparse
import http.client
import json
import math
import os
import re
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def log(msg):
    sys.stderr.write("%s search-quality: %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


# --------------------------------------------------------------------------- data
def read_trec_docs(path):
    """[(docno, text)] from <DOC><DOCNO>n</DOCNO> text </DOC>."""
    with open(path, encoding="utf-8", errors="replace") as f:
        data = f.read()
    docs = []
    for m in re.finditer(r"<DOC>\s*<DOCNO>\s*(.*?)\s*</DOCNO>(.*?)</DOC>", data, re.S):
        docs.append((m.group(1), " ".join(m.group(2).split())))
    return docs


def read_trec_queries(path):
    """[(qid, text)] from <top><num>n</num><title> text </title></top>; text lower-cased."""
    with open(path, encoding="utf-8", errors="replace") as f:
        data = f.read()
    out = []
    for m in re.finditer(r"<top>.*?<num>\s*(.*?)\s*</num>.*?<title>(.*?)</title>.*?</top>", data, re.S):
        out.append((m.group(1), " ".join(m.group(2).split()).lower()))
    return out


def read_qrels(path):
    """{qid: set(docno)} of the judgements with relevance > 0."""
    rel = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 4:
                continue
            qid, _, docno, r = parts[:4]
            rel.setdefault(qid, set())
            if int(r) > 0:
                rel[qid].add(docno)
    return rel


def words(text):
    return re.findall(r"[0-9a-z]+", text.lower())


# --------------------------------------------------------------------------- metrics
def trec_order(ranking, depth=1000):
    """ranking: [(docno, score)] -> docnos sorted as trec_eval does (score desc, then docno
    desc as strings), duplicates dropped (first kept), cut at depth."""
    seen = set()
    uniq = []
    for d, s in ranking:
        if d not in seen:
            seen.add(d)
            uniq.append((d, float(s)))
    uniq.sort(key=lambda x: x[0], reverse=True)
    uniq.sort(key=lambda x: x[1], reverse=True)  # stable: ties keep docno-descending order
    return [d for d, _ in uniq[:depth]]


def ndcg_at(ranked, relevant, k=10):
    dcg = 0.0
    for i, d in enumerate(ranked[:k]):
        if d in relevant:
            dcg += 1.0 / math.log2(i + 2)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    return dcg / ideal if ideal > 0 else 0.0


def average_precision(ranked, relevant):
    if not relevant:
        return 0.0
    hits = 0
    total = 0.0
    for i, d in enumerate(ranked):
        if d in relevant:
            hits += 1
            total += hits / (i + 1.0)
    return total / len(relevant)


def recall_at(ranked, relevant, k=100):
    if not relevant:
        return 0.0
    return len(set(ranked[:k]) & relevant) / float(len(relevant))


def evaluate(run, qrels):
    """run: {qid: [(docno, score)]}. Means over the queries that have relevant documents."""
    qids = sorted(q for q in qrels if qrels[q])
    n, m, r = 0.0, 0.0, 0.0
    per_query = {}
    for q in qids:
        ranked = trec_order(run.get(q, []))
        per_query[q] = ndcg_at(ranked, qrels[q], 10)
        n += per_query[q]
        m += average_precision(ranked, qrels[q])
        r += recall_at(ranked, qrels[q], 100)
    k = float(len(qids)) or 1.0
    return {"ndcg10": n / k, "map": m / k, "r100": r / k, "queries": len(qids), "ndcg10_q": per_query}


def paired_p(a, b, rounds=100000, seed=7):
    """Two-sided paired randomization test of mean(a - b) over the queries both have:
    the share of random sign flips of the per-query differences whose mean is at least
    as far from 0 as the observed one."""
    d = [a[q] - b[q] for q in sorted(a) if q in b]
    if not d:
        return 1.0
    obs = abs(sum(d)) - 1e-12
    rng = random.Random(seed)
    hits = 0
    for _ in range(rounds):
        if abs(sum(x if rng.random() < 0.5 else -x for x in d)) >= obs:
            hits += 1
    return hits / float(rounds)


def _self_test_metrics():
    rel = {"a", "b"}
    # a at rank 1, b at rank 3: AP = (1/1 + 2/3) / 2
    ranked = ["a", "x", "b"]
    assert abs(average_precision(ranked, rel) - (1 + 2 / 3.0) / 2) < 1e-12
    idcg = 1 + 1 / math.log2(3)
    assert abs(ndcg_at(ranked, rel) - (1 + 1 / math.log2(4)) / idcg) < 1e-12
    assert recall_at(ranked, rel, 2) == 0.5
    assert trec_order([("1", 1.0), ("2", 1.0), ("3", 2.0)]) == ["3", "2", "1"]
    same = {str(i): i / 20.0 for i in range(20)}
    assert paired_p(same, dict(same), rounds=200) == 1.0
    # 20 queries all better by 0.5: only the all-positive and all-negative flips tie
    assert paired_p({q: v + 0.5 for q, v in same.items()}, same, rounds=2000) < 0.01


# --------------------------------------------------------------------------- Xapian
class XapianIndex:
    """An on-disk Xapian database: TermGenerator with the English stemmer (STEM_SOME,
    positions on), one document per text, document id = position in the input + 1."""

    def __init__(self, path, stem="english"):
        import xapian
        self.xapian = xapian
        self.path = path
        self.stem = xapian.Stem(stem) if stem else xapian.Stem()
        self.db = None

    def build(self, texts, data=None):
        """texts: iterable of strings; data: optional list of per-document data strings."""
        xapian = self.xapian
        db = xapian.WritableDatabase(self.path, xapian.DB_CREATE_OR_OVERWRITE)
        tg = xapian.TermGenerator()
        tg.set_stemmer(self.stem)
        tg.set_stemming_strategy(xapian.TermGenerator.STEM_SOME)
        n = 0
        for i, text in enumerate(texts):
            doc = xapian.Document()
            tg.set_document(doc)
            tg.index_text(text)
            if data is not None:
                doc.set_data(data[i])
            db.add_document(doc)  # a fresh database: ids 1, 2, ...
            n += 1
        db.commit()
        db.close()
        self.db = xapian.Database(self.path)
        return n

    def open(self):
        self.db = self.xapian.Database(self.path)

    def searcher(self, weight=None):
        xapian = self.xapian
        qp = xapian.QueryParser()
        qp.set_stemmer(self.stem)
        qp.set_stemming_strategy(xapian.QueryParser.STEM_SOME)
        qp.set_default_op(xapian.Query.OP_OR)
        qp.set_database(self.db)
        enq = xapian.Enquire(self.db)
        enq.set_weighting_scheme(weight if weight is not None else xapian.BM25Weight())

        def search(q, k):
            enq.set_query(qp.parse_query(q))
            ms = enq.get_mset(0, k)
            return [(m.docid, m.weight) for m in ms]

        return search


# --------------------------------------------------------------------------- FTS5
def fts5_match(q):
    """An FTS5 MATCH string: the query's words, each quoted, joined by OR ('' if none)."""
    ws = re.findall(r"\w+", q.lower())
    return " OR ".join('"%s"' % w.replace('"', '""') for w in ws)


class Fts5Index:
    """fts5(text, tokenize='porter unicode61'); rowid = position in the input + 1.
    contentless=True stores no copy of the text (the index only, like Xapian and Chronik)."""

    def __init__(self, path, contentless=False):
        self.path = path
        self.contentless = contentless
        self.con = None

    def build(self, texts):
        if os.path.exists(self.path):
            os.unlink(self.path)
        con = sqlite3.connect(self.path, isolation_level=None)
        opts = ", content=''" if self.contentless else ""
        con.execute("CREATE VIRTUAL TABLE docs USING fts5(text, tokenize='porter unicode61'%s)" % opts)
        con.execute("BEGIN")
        con.executemany("INSERT INTO docs(rowid, text) VALUES (?, ?)",
                        ((i + 1, t) for i, t in enumerate(texts)))
        con.execute("COMMIT")
        n = con.execute("SELECT count(*) FROM docs").fetchone()[0] if not self.contentless else None
        con.close()
        self.open()
        return n

    def open(self):
        self.con = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)

    def searcher(self):
        cur = self.con.cursor()
        sql = "SELECT rowid, rank FROM docs WHERE docs MATCH ? ORDER BY rank LIMIT ?"

        def search(q, k):
            m = fts5_match(q)
            if not m:
                return []
            # bm25() is negative (better = smaller); the score reported is -rank.
            return [(r, -s) for r, s in cur.execute(sql, (m, k))]

        return search


# --------------------------------------------------------------------------- Chronik
class ChronikError(RuntimeError):
    pass


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def dir_size(path):
    total = 0
    for dp, _, fns in os.walk(path):
        for fn in fns:
            try:
                total += os.lstat(os.path.join(dp, fn)).st_size
            except OSError:
                pass
    return total


def _die_with_parent():
    """In the child before exec: SIGTERM when the benchmark process dies (even by SIGKILL),
    so a killed run leaves no server behind (Linux prctl PR_SET_PDEATHSIG)."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


class ChronikServer:
    """chronik-server start on free loopback ports with a fresh data folder (as the
    integration tests start it); stop() sends SIGTERM, then SIGKILL after 15 s."""

    def __init__(self, binary, workdir, extra_env=None, name="search"):
        self.binary = os.path.abspath(binary)
        self.workdir = workdir
        self.data_dir = os.path.join(workdir, "data-" + name)
        self.log_path = os.path.join(workdir, "server-%s.log" % name)
        self.kafka_port = free_port()
        self.api_port = free_port()
        self.extra_env = dict(extra_env or {})
        self.proc = None

    @property
    def bootstrap(self):
        return "127.0.0.1:%d" % self.kafka_port

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.api_port

    def start(self, timeout=30.0):
        if not os.access(self.binary, os.X_OK):
            raise ChronikError("server binary %s is missing or not executable" % self.binary)
        os.makedirs(self.data_dir, exist_ok=True)
        env = dict(os.environ)
        env.update({
            "CHRONIK_DATA_DIR": self.data_dir,
            "CHRONIK_KAFKA_PORT": str(self.kafka_port),
            "CHRONIK_BIND": "127.0.0.1",
            "CHRONIK_ADVERTISED_ADDR": self.bootstrap,
            "CHRONIK_UNIFIED_API_BIND": "127.0.0.1",
            "CHRONIK_UNIFIED_API_PORT": str(self.api_port),
            "CHRONIK_METRICS_PORT": "0",
            "CHRONIK_LOG_LEVEL": os.environ.get("CHRONIK_BENCH_LOG_LEVEL", "info"),
        })
        env.update(self.extra_env)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.binary, "start"], env=env, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT, cwd=self.data_dir,
                                     preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise ChronikError("chronik-server exited with code %s at start; log %s:\n%s" % (
                    self.proc.returncode, self.log_path, self.tail()))
            try:
                st, _ = Http(self.url, timeout=2).request("GET", "/health")
                if st == 200:
                    break
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise ChronikError("chronik-server did not answer GET /health within %.0f s; log:\n%s"
                                   % (timeout, self.tail()))
            time.sleep(0.05)
        log("chronik-server pid %d: kafka %s, http %s, data %s" % (
            self.proc.pid, self.bootstrap, self.url, self.data_dir))
        return self

    def tail(self, n=3000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode("utf-8", "replace")
        except OSError:
            return "(no log)"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                log("chronik-server ignored SIGTERM for 15 s; killing it")
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        self.proc = None


class Http:
    """One keep-alive HTTP/1.1 connection; JSON in, (status, parsed JSON or raw bytes) out.
    Reconnects once when the server closed an idle connection."""

    def __init__(self, url, timeout=60.0):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port or 80
        self.timeout = timeout
        self.conn = None

    def _connect(self):
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        self.conn.connect()
        self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def request(self, method, path, body=None):
        data = None
        headers = {}
        if body is not None:
            data = json.dumps(body).encode() if not isinstance(body, bytes) else body
            headers["Content-Type"] = "application/json"
        for attempt in (0, 1):
            if self.conn is None:
                self._connect()
            try:
                self.conn.request(method, path, body=data, headers=headers)
                r = self.conn.getresponse()
                raw = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.close()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
                    http.client.CannotSendRequest, http.client.BadStatusLine):
                self.close()
                if attempt:
                    raise
        parsed = raw
        if raw[:1] in (b"{", b"["):
            try:
                parsed = json.loads(raw)
            except ValueError:
                pass
        return r.status, parsed

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def short(body, n=400):
    s = body.decode("utf-8", "replace") if isinstance(body, bytes) else json.dumps(body)
    s = s or "(empty body)"
    return s if len(s) <= n else s[:n] + "..."


def hit_source_value(hit):
    """The record's JSON value of a hit: _source.value when the hit is a topic hit
    ({"topic","partition","offset","timestamp","key","value"}), else _source itself. A value
    that arrives as a JSON string is parsed."""
    src = hit.get("_source") or {}
    if isinstance(src, dict) and "value" in src and ("offset" in src or "partition" in src or "topic" in src):
        v = src["value"]
        if isinstance(v, str):
            try:
                v = json.loads(v)
            except ValueError:
                pass
        return v if isinstance(v, dict) else {"value": v}
    return src if isinstance(src, dict) else {}


def hits_total(body):
    t = body.get("hits", {}).get("total")
    if isinstance(t, dict):
        return t.get("value")
    return t


class ChronikClient:
    def __init__(self, url, bootstrap=None, timeout=60.0):
        self.url = url
        self.bootstrap = bootstrap
        self.http = Http(url, timeout)

    def create_topic(self, name, partitions, extra_config=None):
        cfg = {"searchable": "true"}
        cfg.update(extra_config or {})
        st, body = self.http.request("POST", "/topics", {"name": name, "partitions": partitions, "config": cfg})
        if st == 409:
            raise ChronikError("topic %s already exists (use a fresh server or another --topic)" % name)
        if st not in (200, 201):
            raise ChronikError("POST /topics %s -> %d %s" % (name, st, short(body)))

    def search(self, topic, body):
        return self.http.request("POST", "/%s/_search" % urllib.parse.quote(topic, safe=""), body)

    def wait_searchable(self, topic, n, timeout, error_grace=15.0, what="documents"):
        """Polls match_all (size 0, track_total_hits) until hits.total.value == n. Raises
        ChronikError at the timeout, or when the same non-200 answer lasts error_grace s
        (e.g. no /_search route)."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        err_since = None
        last = None
        q = {"query": {"match_all": {}}, "size": 0, "track_total_hits": True}
        while True:
            try:
                st, body = self.search(topic, q)
            except (OSError, http.client.HTTPException) as e:
                st, body = -1, repr(e).encode()
            now = time.monotonic()
            if st == 200 and isinstance(body, dict):
                err_since = None
                last = hits_total(body)
                if last == n:
                    return now - t0
                if isinstance(last, int) and last > n:
                    raise ChronikError("POST /%s/_search match_all says %d %s, expected %d" % (topic, last, what, n))
            else:
                last = "%d %s" % (st, short(body))
                if err_since is None:
                    err_since = now
                elif now - err_since > error_grace:
                    raise ChronikError("POST /%s/_search keeps failing for %.0f s: %s (is /_search "
                                       "implemented and the topic searchable?)" % (topic, error_grace, last))
            if now > deadline:
                raise ChronikError("POST /%s/_search: total did not reach %d within %.0f s (last: %s)"
                                   % (topic, n, timeout, last))
            time.sleep(0.05 if now - t0 < 5 else 0.2)

    def match(self, topic, field, q, size, source=None, track_total_hits=None):
        body = {"query": {"match": {field: q}}, "size": size}
        if source is not None:
            body["_source"] = source
        if track_total_hits is not None:
            body["track_total_hits"] = track_total_hits
        st, resp = self.search(topic, body)
        if st != 200 or not isinstance(resp, dict):
            raise ChronikError("POST /%s/_search %s -> %d %s" % (topic, json.dumps(body)[:200], st, short(resp)))
        return resp


def produce_json_kafka_python(bootstrap, topic, records, timeout=300.0):
    """records: iterable of (key bytes or None, dict). kafka-python, acks=all; returns the
    seconds from the first send to the last acknowledgement."""
    from kafka import KafkaProducer
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, batch_size=256 * 1024,
                      max_request_size=8 * 1024 * 1024, request_timeout_ms=30000,
                      value_serializer=lambda v: json.dumps(v, separators=(",", ":")).encode())
    t0 = time.monotonic()
    futs = [p.send(topic, key=k, value=v) for k, v in records]
    p.flush(timeout=timeout)
    for f in futs:
        f.get(timeout=max(1.0, timeout - (time.monotonic() - t0)))
    el = time.monotonic() - t0
    p.close(timeout=10)
    return el


class ChronikSystem:
    """Indexes the collection into a searchable topic and answers queries over HTTP."""

    def __init__(self, args, workdir):
        self.args = args
        self.server = None
        if args.url:
            self.client = ChronikClient(args.url, args.bootstrap, timeout=args.request_timeout)
        else:
            if not args.server_binary:
                raise ChronikError("chronik: give --server-binary PATH or --url URL --bootstrap HOST:PORT")
            # commits every second, so that index_size() finds the committed segments
            self.server = ChronikServer(args.server_binary, workdir, name="quality",
                                        extra_env={"CHRONIK_SEARCH_FLUSH_INTERVAL_MS": "1000"}).start()
            self.client = ChronikClient(self.server.url, self.server.bootstrap, timeout=args.request_timeout)
        if not self.client.bootstrap:
            raise ChronikError("chronik: --url needs --bootstrap HOST:PORT (Kafka) too")

    def index(self, docs):
        a = self.args
        self.ndocs = len(docs)
        topic = a.topic
        extra = dict(kv.split("=", 1) for kv in a.topic_config)
        self.client.create_topic(topic, a.partitions, extra)
        t0 = time.monotonic()
        ack = produce_json_kafka_python(self.client.bootstrap, topic,
                                        ((d.encode(), {"docno": d, "text": t}) for d, t in docs))
        log("chronik: %d documents produced and acknowledged in %.1f s" % (len(docs), ack))
        self.client.wait_searchable(topic, len(docs), a.index_timeout, error_grace=a.error_grace)
        return time.monotonic() - t0

    source_filter = ["docno"]

    def query(self, q, k):
        resp = self.client.match(self.args.topic, "text", q, k, source=self.source_filter)
        hits = resp.get("hits", {}).get("hits", [])
        if hits and self.source_filter is not None and hit_source_value(hits[0]).get("docno") is None:
            # The filter may apply to the hit's wrapper ({"topic",...,"value"}) rather than to
            # the record's fields; ask for the whole _source from now on.
            log("chronik: _source %s gave no docno (%s); asking without a _source filter" % (
                json.dumps(self.source_filter), short(hits[0], 200)))
            self.source_filter = None
            return self.query(q, k)
        out = []
        for h in hits:
            d = hit_source_value(h).get("docno")
            if d is None:
                raise ChronikError("hit without docno in _source(.value): %s" % short(h))
            out.append((str(d), h.get("_score") or 0.0))
        return out

    def index_size(self):
        """Bytes of the segments COMMIT lists once it covers every document (None when the
        server is not ours)."""
        if not self.server:
            return None
        path = os.path.join(self.server.data_dir, "search", self.args.topic, "COMMIT")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with open(path) as f:
                    c = json.load(f)
                if sum(c["partitions"]) >= self.ndocs:
                    return sum(sg["bytes"] for sg in c["segments"])
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.5)
        return None

    def close(self):
        self.client.http.close()
        if self.server is not None:
            self.server.stop()


# --------------------------------------------------------------------------- main
def find_dataset(arg):
    cands = [arg] if arg else [os.path.join(ROOT, "..", "shared", "datasets", "vaswani")]
    for c in cands:
        if c and all(os.path.exists(os.path.join(c, f)) for f in ("doc-text.trec", "query-text.trec", "qrels")):
            return os.path.abspath(c)
    sys.exit("search-quality: no Vaswani collection (doc-text.trec, query-text.trec, qrels) in %s; "
             "pass the folder as the first argument" % (cands[0],))


def fmt_mb(n):
    return "-" if n is None else "%.1f MB" % (n / 1e6)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", nargs="?", help="folder with doc-text.trec, query-text.trec, qrels")
    ap.add_argument("--systems", default="xapian,fts5,chronik",
                    help="comma list of xapian, xapian12, fts5, chronik (default xapian,fts5,chronik)")
    ap.add_argument("--server-binary", help="chronik-server to start on free ports (temp data folder)")
    ap.add_argument("--url", help="a running server's HTTP API (nothing is started), e.g. http://127.0.0.1:6092")
    ap.add_argument("--bootstrap", help="with --url: its Kafka address, e.g. 127.0.0.1:9092")
    ap.add_argument("--topic", default="vaswani")
    ap.add_argument("--partitions", type=int, default=1)
    ap.add_argument("--topic-config", action="append", default=[], metavar="KEY=VALUE",
                    help="extra topic config for Chronik, e.g. searchable.stopwords=false (repeatable)")
    ap.add_argument("--index-timeout", type=float, default=180.0, help="s to wait until all docs are searchable")
    ap.add_argument("--error-grace", type=float, default=15.0,
                    help="s of identical /_search errors before giving up")
    ap.add_argument("--request-timeout", type=float, default=60.0)
    ap.add_argument("--workdir", help="folder for indexes and the server's data (default: a temp folder, removed)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--depth", type=int, default=1000)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks (stop the server)
    _self_test_metrics()

    ds = find_dataset(args.dataset)
    docs = read_trec_docs(os.path.join(ds, "doc-text.trec"))
    queries = read_trec_queries(os.path.join(ds, "query-text.trec"))
    qrels = read_qrels(os.path.join(ds, "qrels"))
    log("%s: %d documents, %d queries, %d judged queries" % (ds, len(docs), len(queries), len(qrels)))
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    for s in systems:
        if s not in ("xapian", "xapian12", "fts5", "chronik"):
            sys.exit("search-quality: unknown system %r" % s)

    own_tmp = args.workdir is None
    workdir = args.workdir or tempfile.mkdtemp(prefix="chronik-search-quality-")
    os.makedirs(workdir, exist_ok=True)
    results = []
    failures = []
    texts = [t for _, t in docs]
    docnos = [d for d, _ in docs]
    try:
        for name in systems:
            run = {}
            try:
                if name in ("xapian", "xapian12"):
                    import xapian
                    idx = XapianIndex(os.path.join(workdir, "xapian-" + name))
                    t0 = time.monotonic()
                    idx.build(texts)
                    it = time.monotonic() - t0
                    w = xapian.BM25Weight() if name == "xapian" else xapian.BM25Weight(1.2, 0, 1, 0.75, 0.5)
                    search = idx.searcher(w)
                    size = dir_size(idx.path)
                    t1 = time.monotonic()
                    for qid, q in queries:
                        run[qid] = [(docnos[did - 1], s) for did, s in search(q, args.depth)]
                    qt = time.monotonic() - t1
                elif name == "fts5":
                    idx = Fts5Index(os.path.join(workdir, "fts5.db"))
                    t0 = time.monotonic()
                    idx.build(texts)
                    it = time.monotonic() - t0
                    size = os.path.getsize(idx.path)
                    search = idx.searcher()
                    t1 = time.monotonic()
                    for qid, q in queries:
                        run[qid] = [(docnos[r - 1], s) for r, s in search(q, args.depth)]
                    qt = time.monotonic() - t1
                    idx.con.close()
                else:
                    sysc = ChronikSystem(args, workdir)
                    try:
                        it = sysc.index(docs)
                        size = sysc.index_size()
                        t1 = time.monotonic()
                        for qid, q in queries:
                            run[qid] = sysc.query(q, args.depth)
                        qt = time.monotonic() - t1
                    finally:
                        sysc.close()
            except (ChronikError, OSError, http.client.HTTPException) as e:
                log("%s FAILED: %s" % (name, e))
                failures.append((name, str(e)))
                continue
            ev = evaluate(run, qrels)
            ev.update(system=name, index_s=it, query_s=qt, size=size)
            results.append(ev)
            log("%-8s nDCG@10 %.4f  MAP %.4f  R@100 %.4f  index %.2f s  %d queries %.2f s" % (
                name, ev["ndcg10"], ev["map"], ev["r100"], it, len(queries), qt))
    finally:
        if own_tmp and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        elif args.keep or not own_tmp:
            log("work folder kept: %s" % workdir)

    labels = {
        "xapian": "Xapian %s, BM25Weight() defaults (k1=1, k2=0, k3=1, b=0.5, min_normlen=0.5), Stem(english) STEM_SOME",
        "xapian12": "Xapian, BM25Weight(1.2, 0, 1, 0.75, 0.5), Stem(english) STEM_SOME",
        "fts5": "SQLite %s FTS5 porter unicode61, bm25() (k1=1.2, b=0.75), OR of quoted words" % sqlite3.sqlite_version,
        "chronik": "Chronik match on `text`, %d partition(s)" % args.partitions,
    }
    try:
        import xapian
        labels["xapian"] = labels["xapian"] % xapian.version_string()
    except ImportError:
        labels["xapian"] = labels["xapian"] % ""
    print("")
    print("%-9s %8s %8s %8s %10s %10s %10s" % ("system", "nDCG@10", "MAP", "R@100", "index s", "queries s", "index size"))
    for r in results:
        print("%-9s %8.4f %8.4f %8.4f %10.2f %10.2f %10s" % (
            r["system"], r["ndcg10"], r["map"], r["r100"], r["index_s"], r["query_s"], fmt_mb(r["size"])))
    for name, err in failures:
        print("%-9s FAILED: %s" % (name, err))
    print("")
    print("### Search quality: Vaswani (NPL), %d documents, %d queries, binary qrels" % (len(docs), len(queries)))
    print("")
    print("| System | nDCG@10 | MAP | R@100 | Index time | Index size |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print("| %s | %.4f | %.4f | %.4f | %.2f s | %s |" % (
            labels[r["system"]], r["ndcg10"], r["map"], r["r100"], r["index_s"], fmt_mb(r["size"])))
    for name, err in failures:
        print("| %s | failed: %s | | | | |" % (labels.get(name, name), err.replace("|", "/").splitlines()[0][:200]))
    own = [r for r in results if r["system"] == "chronik"]
    for r in results:
        if own and r is not own[0]:
            print("Chronik - %s: nDCG@10 %+.4f over %d queries, better on %d, worse on %d; paired "
                  "randomization test p = %.2f" % (
                      r["system"], own[0]["ndcg10"] - r["ndcg10"], r["queries"],
                      sum(1 for q, v in own[0]["ndcg10_q"].items() if v > r["ndcg10_q"].get(q, 0.0)),
                      sum(1 for q, v in own[0]["ndcg10_q"].items() if v < r["ndcg10_q"].get(q, 0.0)),
                      paired_p(own[0]["ndcg10_q"], r["ndcg10_q"])))
    print("")
    print("Metrics as trec_eval's ndcg_cut_10, map (depth %d) and recall_100, averaged over all %d judged "
          "queries; queries lower-cased for every system. Chronik's index time runs from the first "
          "produce to all documents searchable." % (args.depth, evaluate({}, qrels)["queries"]))
    for r in results:
        print("RESULT system=%s ndcg10=%.4f map=%.4f r100=%.4f index_s=%.3f size=%s" % (
            r["system"], r["ndcg10"], r["map"], r["r100"], r["index_s"], r["size"]), file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
