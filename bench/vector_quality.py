#!/usr/bin/python3
"""Vector and hybrid retrieval quality on the Vaswani collection, through Chronik's API.

Every document is produced as {"docno","text"} into one topic with searchable=true and
vector.enabled=true (the built-in local model), through the Kafka protocol; each query
(lower-cased) then runs as
  bm25          POST /{topic}/_search            match on text, size 1000
  vector        POST /_vector/{topic}/search     k 1000
  rrf 0.5/0.5   POST /_vector/{topic}/hybrid     vector_weight 0.5, text_weight 0.5 (defaults)
  rrf 0.3/0.7   ... vector_weight 0.3, text_weight 0.7
  linear a=X    ... "fusion": "linear", "alpha": X   (for each X of --alphas)
and nDCG@10, MAP and Recall@100 are computed as trec_eval does (bench/search_quality.py's
metrics). The embedding throughput of the indexing (documents/s from the first produce to
every vector in) is printed too.

  bench/vector_quality.py [DATASET] --server-binary build/chronik-server
"""
import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import search_quality as sq  # noqa: E402


def log(msg):
    print(time.strftime("%H:%M:%S ") + "vector-quality: " + msg, file=sys.stderr, flush=True)


def docno_map(bootstrap, topic, n, timeout=120.0):
    """(partition, offset) -> docno, read back with a consumer."""
    from kafka import KafkaConsumer
    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                      enable_auto_commit=False, consumer_timeout_ms=5000, max_poll_records=5000)
    out = {}
    t0 = time.monotonic()
    try:
        while len(out) < n and time.monotonic() - t0 < timeout:
            for m in c:
                out[(m.partition, m.offset)] = json.loads(m.value)["docno"]
                if len(out) >= n:
                    break
    finally:
        c.close()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", nargs="?")
    ap.add_argument("--server-binary", required=True)
    ap.add_argument("--topic", default="vaswani")
    ap.add_argument("--partitions", type=int, default=1)
    ap.add_argument("--alphas", default="0.1,0.2,0.3,0.5")
    ap.add_argument("--depth", type=int, default=1000)
    ap.add_argument("--index-timeout", type=float, default=1800.0)
    ap.add_argument("--workdir")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ds = sq.find_dataset(a.dataset)
    docs = sq.read_trec_docs(os.path.join(ds, "doc-text.trec"))
    queries = sq.read_trec_queries(os.path.join(ds, "query-text.trec"))
    qrels = sq.read_qrels(os.path.join(ds, "qrels"))
    log("%s: %d documents, %d queries" % (ds, len(docs), len(queries)))
    own = a.workdir is None
    workdir = a.workdir or tempfile.mkdtemp(prefix="chronik-vector-quality-")
    server = sq.ChronikServer(a.server_binary, workdir, name="vquality").start()
    runs = {}
    try:
        client = sq.ChronikClient(server.url, server.bootstrap, timeout=120)
        client.create_topic(a.topic, a.partitions, {"vector.enabled": "true"})
        t0 = time.monotonic()
        ack = sq.produce_json_kafka_python(client.bootstrap, a.topic,
                                           ((d.encode(), {"docno": d, "text": t}) for d, t in docs))
        log("produced and acknowledged in %.1f s" % ack)
        client.wait_searchable(a.topic, len(docs), a.index_timeout)
        while True:
            st, body = client.http.request("GET", "/_vector/%s/stats" % a.topic)
            if st == 200 and body.get("total_vectors") == len(docs) and body.get("lag") == 0:
                break
            if time.monotonic() - t0 > a.index_timeout:
                raise sq.ChronikError("vectors did not reach %d: %s" % (len(docs), sq.short(body)))
            time.sleep(0.2)
        embed_s = time.monotonic() - t0
        log("all %d documents embedded and indexed %.1f s after the first produce (%.0f docs/s)" % (
            len(docs), embed_s, len(docs) / embed_s))
        where = docno_map(client.bootstrap, a.topic, len(docs))
        if len(where) != len(docs):
            raise sq.ChronikError("read back %d of %d records" % (len(where), len(docs)))

        def vec_route(route, body):
            st, resp = client.http.request("POST", "/_vector/%s/%s" % (a.topic, route), body)
            if st != 200:
                raise sq.ChronikError("POST /_vector/%s/%s -> %d %s" % (a.topic, route, st, sq.short(resp)))
            return [(where[(h["partition"], h["offset"])], h["score"]) for h in resp["results"]]

        # recall@10 of the graph search (default ef_search) against an exact scan of the
        # same vectors, over the queries
        rec = []
        for qid, q in queries:
            g = {d for d, _ in vec_route("search", {"query": q, "k": 10})}
            e = {d for d, _ in vec_route("search", {"query": q, "k": 10, "exact": True})}
            rec.append(len(g & e) / float(len(e) or 1))
        recall10 = sum(rec) / len(rec)
        log("HNSW recall@10 against exact search (default ef_search 50): %.4f" % recall10)
        systems = [("bm25", None), ("vector", ("search", {})),
                   ("rrf 0.5/0.5", ("hybrid", {})),
                   ("rrf 0.3/0.7", ("hybrid", {"vector_weight": 0.3, "text_weight": 0.7}))]
        for x in a.alphas.split(","):
            systems.append(("linear alpha %s" % x.strip(), ("hybrid", {"fusion": "linear", "alpha": float(x)})))
        client_bm25 = sq.ChronikSystem.__new__(sq.ChronikSystem)
        client_bm25.args = argparse.Namespace(topic=a.topic)
        client_bm25.client = client
        client_bm25.source_filter = ["docno"]
        for name, how in systems:
            t1 = time.monotonic()
            run = {}
            for qid, q in queries:
                if how is None:
                    run[qid] = client_bm25.query(q, a.depth)
                else:
                    route, extra = how
                    run[qid] = vec_route(route, dict({"query": q, "k": a.depth}, **extra))
            ev = sq.evaluate(run, qrels)
            runs[name] = ev
            log("%-16s nDCG@10 %.4f  MAP %.4f  R@100 %.4f  (%d queries in %.1f s)" % (
                name, ev["ndcg10"], ev["map"], ev["r100"], len(queries), time.monotonic() - t1))
    finally:
        server.stop()
        if own and not a.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print("")
    print("### Vector and hybrid quality: Vaswani (NPL), %d documents, %d queries" % (len(docs), len(queries)))
    print("")
    print("| Retrieval | nDCG@10 | MAP | R@100 | nDCG@10 vs BM25 |")
    print("|---|---|---|---|---|")
    base = runs["bm25"]["ndcg10"]
    for name, ev in runs.items():
        print("| %s | %.4f | %.4f | %.4f | %+.4f |" % (name, ev["ndcg10"], ev["map"], ev["r100"], ev["ndcg10"] - base))
    print("")
    print("Built-in local model (USE-lite, 512 dims, cosine), HNSW m 16, ef_construction 200, "
          "ef_search 50 (each hybrid side asks for 3 k); embedding and indexing %.0f docs/s. "
          "Recall@10 of the HNSW search against an exact scan of the same vectors: %.4f." % (
              len(docs) / embed_s, recall10))
    for name, ev in runs.items():
        print("RESULT system=%s ndcg10=%.4f map=%.4f r100=%.4f" % (name.replace(" ", "_"), ev["ndcg10"], ev["map"],
                                                                    ev["r100"]), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
