"""The query orchestrator: POST /_query in both request forms (the README's and the
sources/q one), its backends (text, vector, sql, fetch), RRF fusion and ranking profiles
checked arithmetically from the returned features, grouped results, custom profiles,
errors; GET /_query/capabilities and /_query/profiles."""
import json
import time

import pytest

from conftest import unique_topic
from embed_server import EmbedServer
from http_util import create_topic, curl_json, http, module_api_server, produce_json, wait_count
from conftest import wait_for


@pytest.fixture(scope="module")
def emb():
    e = EmbedServer(dims=32)
    yield e
    e.close()


@pytest.fixture(scope="module")
def srv(request, tmp_path_factory, emb):
    yield from module_api_server(request, tmp_path_factory, "query",
                                 {"CHRONIK_RERANKER_ENDPOINT": emb.url + "/rerank", "CHRONIK_RERANKER_MODEL": "rr-test"})


def wait_indexed(srv, topic, n, vector=True, text=True):
    def ok():
        if vector:
            st = http(srv, "GET", "/_vector/%s/stats" % topic).body
            if st.get("total_vectors") != n:
                return False
        if text:
            r = http(srv, "POST", "/%s/_search" % topic, {"size": 0, "track_total_hits": True})
            if r.status != 200 or r.body["hits"]["total"]["value"] != n:
                return False
        return True

    wait_for(ok, 30, 0.05, "%s: %d records indexed" % (topic, n))


def query(srv, body, status=200):
    r = http(srv, "POST", "/_query", body)
    assert r.status == status, "POST /_query %r -> %r" % (body, r)
    return r.body


DEFAULT_W = {"rrf_score": 100, "source_count": 10, "freshness": 5, "text_rank": 3, "vector_rank": 3,
             "sql_rank": 3, "text_score": 1, "vector_score": 1}


def check_arithmetic(res, weights=DEFAULT_W, boost=(1, 1.2)):
    """final_score = sum(weight * feature), times the boost when source_count > 1; and
    rrf_score = sum over the backends that found it of 1 / (60 + rank), rank 0-based (the
    rank comes back from the *_rank features, 1 / (1 + rank))."""
    for h in res["results"]:
        f = h["features"]
        want = sum(weights.get(k, 0) * v for k, v in f.items())
        if f["source_count"] > boost[0]:
            want *= boost[1]
        assert h["final_score"] == pytest.approx(want, rel=1e-9, abs=1e-12), h
        rrf = 0.0
        n = 0
        for b in ("text_rank", "vector_rank", "sql_rank"):
            if f[b] > 0:
                rank = round(1 / f[b] - 1)
                rrf += 1.0 / (60 + rank)
                n += 1
        if f["rrf_score"] and n == f["source_count"]:
            assert f["rrf_score"] == pytest.approx(rrf, rel=1e-9), h
    scores = [h["final_score"] for h in res["results"]]
    assert scores == sorted(scores, reverse=True)


def test_readme_multi_modal_verbatim(srv):
    for t in ("orders", "support-tickets", "incidents"):
        create_topic(srv, t, 3, {"searchable": "true", "vector.enabled": "true"}, columnar=False)
    produce_json(srv, "orders", [{"order": i, "text": s} for i, s in enumerate([
        "Order 1 payment failed in Germany: card declined",
        "Order 2 shipped to Spain",
        "Order 3 payment failure, EU region, retry scheduled",
        "Order 4 delivered in Canada"])])
    produce_json(srv, "support-tickets", [{"ticket": i, "text": s} for i, s in enumerate([
        "Customer in France cannot pay: payment failures since Monday",
        "Password reset email never arrives"])])
    produce_json(srv, "incidents", [{"id": i, "text": s} for i, s in enumerate([
        "EU payment gateway returning 502 errors",
        "Disk full on log server"])])
    for t, n in (("orders", 4), ("support-tickets", 2), ("incidents", 2)):
        wait_indexed(srv, t, n)
    res = curl_json(srv, """curl -X POST http://localhost:6092/_query \\
  -d '{
    "query": "payment failures in EU",
    "topics": ["orders", "support-tickets", "incidents"],
    "backends": ["search", "vector"],
    "k": 20
  }'""")
    assert set(res) >= {"query_id", "results", "stats"}, res
    assert len(res["query_id"]) == 36
    st = res["stats"]
    assert {(b["backend"], b["topic"]) for b in st["backends"]} == {
        (b, t) for b in ("text", "vector") for t in ("orders", "support-tickets", "incidents")}, st
    assert st["ranked"] == len(res["results"]) == 8  # every record of the three topics
    keys = [(h["topic"], h["partition"], h["offset"]) for h in res["results"]]
    assert len(set(keys)) == len(keys)
    top = res["results"][0]
    assert top["features"]["source_count"] == 2 and top["topic"] in ("orders", "support-tickets", "incidents")
    check_arithmetic(res)


def test_sources_form_all_backends_grouped_and_explained(srv, emb):
    t = unique_topic("qsrc")
    create_topic(srv, t, 1, {"searchable": "true", "vector.enabled": "true", "vector.provider": "external",
                             "vector.endpoint": emb.url + "/embed"}, columnar=True)
    produce_json(srv, t, [{"n": i, "text": "kiwi %s" % ("mango" if i % 3 == 0 else "pear")} for i in range(12)])
    wait_indexed(srv, t, 12)
    table = "".join(c if c.isalnum() else "_" for c in t)
    wait_count(srv, table, 12)
    body = {"sources": [{"topic": t, "modes": ["text", "vector", "sql", "fetch"]}],
            "q": {"text": "mango", "sql": "SELECT _partition, _offset FROM %s WHERE n >= 9 ORDER BY n DESC" % table,
                  "fetch": {"offset": 10, "partition": 0}},
            "k": 5, "explain": True}
    res = query(srv, body)
    backs = {b["backend"]: b for b in res["stats"]["backends"]}
    assert set(backs) == {"text", "vector", "sql", "fetch"}, res["stats"]
    assert backs["text"]["candidates"] == 4 and backs["sql"]["candidates"] == 3, backs
    assert backs["fetch"]["candidates"] == 2, backs  # offsets 10 and 11
    assert len(res["results"]) == 5
    for h in res["results"]:
        assert h["explanation"].startswith("score="), h
    check_arithmetic(res)
    # offset 9: a mango (text, vector) and in the SQL result: three sources
    f9 = [h for h in res["results"] if h["offset"] == 9]
    assert f9 and f9[0]["features"]["source_count"] == 3, res["results"]
    g = query(srv, dict(body, result_format="grouped", explain=False))
    assert g["results"] == [] and list(g["grouped_results"]) == [t] and len(g["grouped_results"][t]) == 5
    # a timestamp filter that excludes everything leaves nothing from text and vector
    empty = query(srv, dict(body, filters={"timestamp_lte": "2000-01-01T00:00:00Z"}))
    backs = {b["backend"]: b for b in empty["stats"]["backends"]}
    assert backs["text"]["candidates"] == 0 and backs["vector"]["candidates"] == 0, backs


def test_profiles_builtin_and_custom(srv):
    r = http(srv, "GET", "/_query/profiles")
    assert r.status == 200
    names = [p["name"] for p in r.body]
    assert names[:3] == ["default", "freshness", "relevance"], r.body
    assert r.body[0]["weights"]["rrf_score"] == 100
    prof = srv.data_dir / "profiles"
    prof.mkdir(exist_ok=True)
    (prof / "onlyrrf.json").write_text(json.dumps({"name": "onlyrrf", "weights": {"rrf_score": 1000},
                                                   "boosts": [{"feature": "source_count", "op": "gte",
                                                               "threshold": 2, "multiplier": 3}]}))
    r = http(srv, "GET", "/_query/profiles")
    assert "onlyrrf" in [p["name"] for p in r.body], r.body
    res = query(srv, {"query": "payment", "topics": ["orders"], "backends": ["search", "vector"], "k": 4,
                      "rank": {"profile": "onlyrrf"}})
    check_arithmetic(res, {"rrf_score": 1000}, (1, 3))
    # an unknown profile falls back to the default
    res = query(srv, {"query": "payment", "topics": ["orders"], "k": 4, "rank": {"profile": "nope"}})
    check_arithmetic(res)


def test_capabilities_and_errors(srv):
    r = http(srv, "GET", "/_query/capabilities")
    assert r.status == 200 and isinstance(r.body, list)
    caps = {c["topic"]: c for c in r.body}
    assert caps["orders"] == {"topic": "orders", "text_search": True, "vector_search": True, "sql_query": False,
                              "fetch": True}, caps["orders"]
    for body in ({"sources": []}, {"topics": []}, {}, {"sources": [{"topic": "no-such-topic", "modes": ["text"]}],
                                                       "q": {"text": "x"}},
                 {"sources": [{"topic": "orders", "modes": ["sql"]}], "q": {"text": "x"}},
                 {"query": "x", "topics": ["orders"], "k": 0}):
        r = http(srv, "POST", "/_query", body)
        assert r.status == 400 and r.body["type"] == "planning_error", (body, r)
    r = http(srv, "POST", "/_query", "{oops")
    assert r.status == 400, r
    # unknown topics among known ones are skipped with a warning
    res = query(srv, {"query": "payment", "topics": ["orders", "no-such-topic"], "k": 3})
    assert any("no-such-topic" in w for w in res["warnings"]), res


def test_slow_backend_times_out_alone(srv):
    """The backends run at once: a vector backend whose provider answers after 3 s is cut at
    timeout_ms and reported timed_out, while the text backend's results come back."""
    slow = EmbedServer(dims=16)
    try:
        t = unique_topic("qslow")
        create_topic(srv, t, 1, {"searchable": "true", "vector.enabled": "true", "vector.provider": "external",
                                 "vector.endpoint": slow.url + "/embed"})
        produce_json(srv, t, [{"text": "durian %d" % i} for i in range(6)])
        wait_indexed(srv, t, 6)
        body = {"sources": [{"topic": t, "modes": ["text", "vector"]}], "q": {"text": "durian"}, "k": 3,
                "timeout_ms": 300}
        res = query(srv, body)
        backs = {b["backend"]: b for b in res["stats"]["backends"]}
        assert not backs["vector"]["timed_out"] and backs["vector"]["candidates"] == 6, backs
        slow.delay_s = 3.0
        t0 = time.monotonic()
        res = query(srv, body)
        took = time.monotonic() - t0
        backs = {b["backend"]: b for b in res["stats"]["backends"]}
        assert backs["vector"]["timed_out"] and backs["vector"]["candidates"] == 0, backs
        assert not backs["text"]["timed_out"] and backs["text"]["candidates"] == 6, backs
        assert [h["features"]["source_count"] for h in res["results"]] == [1, 1, 1], res
        assert all(h["features"]["vector_rank"] == 0 for h in res["results"]), res
        # answered at the deadline, not when the provider answered
        assert took < 2.5, took
        # a late backend's thread does not disturb the next requests
        slow.delay_s = 0
        res = query(srv, dict(body, timeout_ms=5000))
        backs = {b["backend"]: b for b in res["stats"]["backends"]}
        assert backs["vector"]["candidates"] == 6 and not backs["vector"]["timed_out"], backs
    finally:
        slow.close()


def test_text_preview_and_rerank(srv, emb):
    """Results carry text_preview (the first 100 characters of the embedded text); with
    "rerank": true the 5k best go to the reranker (the test server scores "prio N" as N) and
    the answer follows its order, on /_vector search and hybrid and on /_query. A failing
    reranker leaves the order as it was."""
    t = unique_topic("qrr")
    create_topic(srv, t, 1, {"searchable": "true", "vector.enabled": "true", "vector.provider": "external",
                             "vector.endpoint": emb.url + "/embed"})
    prios = [(i * 5) % 12 for i in range(12)]  # a permutation of 0..11
    texts = ["lychee prio %d" % p for p in prios]
    texts[prios.index(0)] += " " + "\u00fc" * 150  # a long, non-ASCII text: cut at 100 characters
    produce_json(srv, t, texts)
    wait_indexed(srv, t, 12)
    by_off = dict(enumerate(texts))
    best = sorted(range(12), key=lambda o: -prios[o])[:3]

    def check_previews(results):
        for h in results:
            assert h["text_preview"] == by_off[h["offset"]][:100], h

    emb.requests.clear()
    for route in ("search", "hybrid"):
        plain = http(srv, "POST", "/_vector/%s/%s" % (t, route), {"query": "lychee", "k": 3}).body
        assert "reranked" not in plain and len(plain["results"]) == 3, plain
        assert all("rerank_score" not in h for h in plain["results"])
        check_previews(plain["results"])
        r = http(srv, "POST", "/_vector/%s/%s" % (t, route), {"query": "lychee", "k": 3, "rerank": True}).body
        assert r["reranked"] is True and r["count"] == 3, r
        assert [h["offset"] for h in r["results"]] == best, (route, r)
        assert [h["rerank_score"] for h in r["results"]] == [11, 10, 9], r
        check_previews(r["results"])
    ask = [json.loads(raw) for path, _h, raw in emb.requests if path == "/rerank"]
    assert len(ask) == 2 and ask[0]["query"] == "lychee" and ask[0]["model"] == "rr-test", ask
    # all 12 records went to the reranker (5k = 15 asked), with their full texts
    assert sorted(ask[0]["documents"]) == sorted(texts) and ask[0]["top_n"] == 12, ask[0]
    body = {"sources": [{"topic": t, "modes": ["text", "vector"]}], "q": {"text": "lychee"}, "k": 3, "rerank": True}
    res = query(srv, body)
    assert res["stats"].get("reranked") is True and "warnings" not in res, res
    assert [h["offset"] for h in res["results"]] == best and res["stats"]["ranked"] == 3, res
    check_previews(res["results"])
    g = query(srv, dict(body, result_format="grouped"))
    assert [h["offset"] for h in g["grouped_results"][t]] == best, g
    # TEI's answer shape
    emb.rerank_bare = True
    try:
        res = query(srv, body)
        assert [h["offset"] for h in res["results"]] == best, res
    finally:
        emb.rerank_bare = False
    # the reranker fails (past its retries): the fused order stays, and /_query says why
    plain = query(srv, dict(body, rerank=False))
    emb.rerank_fail = 100
    try:
        res = query(srv, body)
        assert "reranked" not in res["stats"], res
        assert any("rerank skipped" in w and "503" in w for w in res["warnings"]), res
        assert [h["offset"] for h in res["results"]] == [h["offset"] for h in plain["results"]]
        check_arithmetic(res)
        r = http(srv, "POST", "/_vector/%s/search" % t, {"query": "lychee", "k": 3, "rerank": True})
        assert r.status == 200 and "reranked" not in r.body and len(r.body["results"]) == 3, r
    finally:
        emb.rerank_fail = 0
    r = http(srv, "POST", "/_vector/%s/search" % t, {"query": "lychee", "rerank": "yes"})
    assert r.status == 400 and r.body["error_type"] == "InvalidRequest", r
