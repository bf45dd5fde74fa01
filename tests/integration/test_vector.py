"""Vector search over topics (vector.enabled=true): the built-in local model and the HTTP
providers (a test embedding server speaking the OpenAI and the external contracts), the
/_vector routes with their filters and errors, the README's examples verbatim, provider
failures, kill -9 and restart, retention."""
import json
import random
import shutil

import pytest

import kafka_raw as raw
from conftest import unique_topic, wait_for
from embed_server import EmbedServer, bag_vector
from http_util import create_topic, curl_json, http, module_api_server, produce_json, wait_http
from numbered import NumberedSender, kill9_under_load


@pytest.fixture(scope="module")
def emb():
    e = EmbedServer(dims=16)
    yield e
    e.close()


@pytest.fixture(scope="module")
def srv(request, tmp_path_factory):
    yield from module_api_server(request, tmp_path_factory, "vector", None)


def vtopic(srv, name, partitions=1, config=None):
    cfg = {"vector.enabled": "true"}
    cfg.update(config or {})
    create_topic(srv, name, partitions, cfg, columnar=False)


def ext_config(emb, **kw):
    c = {"vector.provider": "external", "vector.endpoint": emb.url + "/embed"}
    c.update(kw)
    return c


def stats(srv, topic):
    r = http(srv, "GET", "/_vector/%s/stats" % topic)
    assert r.status == 200, r
    return r.body


def wait_vectors(srv, topic, n, timeout=30.0):
    seen = []

    def ok():
        s = stats(srv, topic)
        seen.append(s.get("total_vectors"))
        return s.get("total_vectors") == n and s.get("lag") == 0

    wait_for(ok, timeout, 0.05, "%s: %d vectors (last %r)" % (topic, n, seen[-3:]))


def vsearch(srv, topic, body, status=200, route="search"):
    r = http(srv, "POST", "/_vector/%s/%s" % (topic, route), body)
    assert r.status == status, "POST /_vector/%s/%s %r -> %r" % (topic, route, body, r)
    return r.body


def keyed(res):
    return [(h["partition"], h["offset"]) for h in res["results"]]


# ---------------------------------------------------------------- README, local model

INCIDENTS = [
    "Postgres connection pool exhausted: too many clients already, requests time out",
    "OOM killer terminated the postgres process on db-2 after memory spike",
    "TLS certificate for api.example.com expires in 3 days",
    "Disk usage on kafka-broker-1 at 95 percent",
    "Payment webhook retries failing with HTTP 502 from the gateway",
    "Login page returns blank screen for Safari users",
    "Redis eviction storm after cache key explosion",
    "Nightly backup job exceeded its window by two hours",
]


def test_readme_ai_examples_verbatim(srv):
    """The upstream README's "AI and Agent Memory" examples, as written, on the built-in
    local model (no key, no network)."""
    t = "incidents"
    vtopic(srv, t, 3, {"searchable": "true"})
    produce_json(srv, t, [{"id": i, "text": s} for i, s in enumerate(INCIDENTS)])
    wait_vectors(srv, t, len(INCIDENTS))
    st = stats(srv, t)
    assert st["embedding_provider"] == "local" and st["dimensions"] == 512, st
    assert st["distance_metric"] == "cosine" and sum(p["vector_count"] for p in st["partitions"]) == 8

    res = curl_json(srv, """curl -X POST http://localhost:6092/_vector/incidents/search \\
  -d '{"query": "database connection pool exhausted", "k": 10}'""")
    assert res["count"] == len(res["results"]) == len(INCIDENTS), res
    assert res["total_vectors"] == len(INCIDENTS)
    scores = [h["score"] for h in res["results"]]
    assert scores == sorted(scores, reverse=True) and -1.0001 <= scores[-1] <= scores[0] <= 1.0001
    by_key = {}
    for p in produce_positions(srv, t):
        by_key[(p["partition"], p["offset"])] = p["id"]
    assert by_key[keyed(res)[0]] == 0, res  # the connection pool incident

    res = curl_json(srv, """curl -X POST http://localhost:6092/_vector/incidents/hybrid \\
  -d '{"query": "OOM kill postgres", "k": 10, "vector_weight": 0.7}'""")
    assert res["fusion_method"] == "rrf" and res["count"] == len(res["results"]) <= 10, res
    top = res["results"][0]
    assert by_key[(top["partition"], top["offset"])] == 1, res  # the OOM incident
    assert "vector_rank" in top and "text_rank" in top, top
    # RRF arithmetic: 0.7/(60+vr) + 0.5/(60+tr)
    for h in res["results"]:
        want = 0.7 / (60 + h["vector_rank"]) if "vector_rank" in h else 0.0
        want += 0.5 / (60 + h["text_rank"]) if "text_rank" in h else 0.0
        assert abs(h["score"] - want) < 1e-9, h
    assert res["text_results_count"] >= 2 and res["vector_results_count"] == len(INCIDENTS)


def produce_positions(srv, topic):
    """Every record's (partition, offset, id) read back through SQL-free means: the
    /_vector search of each text finds its own record first."""
    out = []
    r = http(srv, "GET", "/topics/" + topic)
    for p in r.body["partition_info"]:
        for off in range(p["high_watermark"]):
            out.append({"partition": p["partition"], "offset": off})
    # the ids come from the records themselves, fetched with a consumer
    from kafka import KafkaConsumer, TopicPartition
    c = KafkaConsumer(bootstrap_servers=srv.bootstrap, enable_auto_commit=False, consumer_timeout_ms=3000)
    try:
        tps = [TopicPartition(topic, p["partition"]) for p in r.body["partition_info"]]
        c.assign(tps)
        c.seek_to_beginning()
        ids = {}
        while len(ids) < len(out):
            batch = c.poll(timeout_ms=2000)
            if not batch:
                break
            for tp, msgs in batch.items():
                for m in msgs:
                    ids[(tp.partition, m.offset)] = json.loads(m.value)["id"]
    finally:
        c.close()
    for o in out:
        o["id"] = ids[(o["partition"], o["offset"])]
    return out


# ---------------------------------------------------------------- HTTP providers

def test_external_provider_search_filters_and_shapes(srv, emb):
    t = unique_topic("vext")
    vtopic(srv, t, 3, ext_config(emb))
    texts = ["alpha bravo %d" % i if i % 2 else "charlie delta %d" % i for i in range(60)]
    ts0 = 1_700_000_000_000
    from kafka import KafkaProducer
    p = KafkaProducer(bootstrap_servers=srv.bootstrap, acks="all")
    meta = []
    for i, s in enumerate(texts):
        meta.append(p.send(t, s.encode(), partition=i % 3, timestamp_ms=ts0 + i * 1000))
    p.flush(30)
    meta = [m.get(timeout=30) for m in meta]
    p.close()
    where = {i: (m.partition, m.offset) for i, m in enumerate(meta)}
    wait_vectors(srv, t, len(texts))
    assert stats(srv, t)["dimensions"] == 16 and stats(srv, t)["embedding_provider"] == "external"
    cap = http(srv, "GET", "/topics/" + t).body["capabilities"]["vector"]
    assert cap["enabled"] is True and cap["status"] == "ok" and cap["lag"] == 0, cap
    assert cap["index"] == {"vectors": 60, "dimensions": 16, "provider": "external", "model": "",
                            "metric": "cosine"}, cap
    assert set(emb.texts_seen()) >= set(texts)

    # the record with the same words comes first, with cosine ~1
    res = vsearch(srv, t, {"query": "charlie delta 10", "k": 5})
    assert keyed(res)[0] == where[10] and res["results"][0]["score"] > 0.999, res
    assert set(res) >= {"results", "count", "total_vectors", "execution_time_ms"}, res
    h = res["results"][0]
    assert h["topic"] == t and h["timestamp"] == ts0 + 10 * 1000, h
    assert [h["text_preview"] for h in res["results"]][0] == "charlie delta 10", res
    # no reranker is configured here: "rerank" changes nothing
    rr = vsearch(srv, t, {"query": "charlie delta 10", "k": 5, "rerank": True})
    assert "reranked" not in rr and keyed(rr) == keyed(res), rr
    # the same by vector
    res2 = vsearch(srv, t, {"vector": bag_vector("charlie delta 10", 16), "k": 5}, route="search_by_vector")
    assert keyed(res2)[0] == where[10] and res2["results"][0]["score"] > 0.999, res2

    # exact search: the scores are the best cosines computed here from the same vectors
    qv = bag_vector("alpha bravo 7", 16)
    cos = sorted((sum(x * y for x, y in zip(qv, bag_vector(s, 16))) for s in texts), reverse=True)
    ex = vsearch(srv, t, {"query": "alpha bravo 7", "k": 10, "exact": True})
    assert [round(h["score"], 4) for h in ex["results"]] == [round(c, 4) for c in cos[:10]], ex
    wide = vsearch(srv, t, {"query": "alpha bravo 7", "k": 10, "ef_search": 500})
    assert [round(h["score"], 4) for h in wide["results"]] == [round(c, 4) for c in cos[:10]], wide
    # filters: partitions, offsets, timestamps; top level and under "filters"
    q = {"query": "alpha bravo", "k": 100}
    for f in ({"partitions": [1]}, {"filters": {"partitions": [1]}}):
        res = vsearch(srv, t, dict(q, **f))
        assert res["count"] == 20 and {p for p, _ in keyed(res)} == {1}, res
    res = vsearch(srv, t, dict(q, partitions=[0, 2], min_offset=3, max_offset=5))
    assert sorted(keyed(res)) == sorted((p, o) for p in (0, 2) for o in (3, 4, 5)), res
    res = vsearch(srv, t, dict(q, filters={"min_timestamp": ts0 + 10_000, "max_timestamp": ts0 + 19_000}))
    assert sorted(keyed(res)) == sorted(where[i] for i in range(10, 20)), res
    iso = vsearch(srv, t, dict(q, filters={"min_timestamp": "2023-11-14T22:13:30Z", "max_timestamp": ts0 + 19_000}))
    assert sorted(keyed(iso)) == sorted(where[i] for i in range(10, 20)), iso
    res = vsearch(srv, t, dict(q, min_offset=100))
    assert res["count"] == 0 and res["results"] == []

    # errors
    r = http(srv, "POST", "/_vector/%s/search_by_vector" % t, {"vector": [0.5] * 15})
    assert r.status == 400 and "16" in r.body["error"], r
    for body in ({}, {"query": ""}, {"query": 7}, {"query": "x", "k": 0}, {"query": "x", "k": "3"},
                 {"query": "x", "exact": "yes"}, {"query": "x", "ef_search": -1},
                 {"query": "x", "partitions": "1"}, {"query": "x", "min_timestamp": "yesterday"}):
        r = http(srv, "POST", "/_vector/%s/search" % t, body)
        assert r.status == 400 and r.body["error_type"] == "InvalidRequest", (body, r)
    r = http(srv, "POST", "/_vector/%s/search" % t, "{not json")
    assert r.status == 400, r
    r = http(srv, "POST", "/_vector/no-such-topic/search", {"query": "x"})
    assert r.status == 404 and r.body["error_type"] == "NotFound", r
    r = http(srv, "POST", "/_vector/%s/search_by_vector" % t, {"vector": [1, "a"]})
    assert r.status == 400, r
    st = http(srv, "GET", "/_vector/no-such-topic/stats")
    assert st.status == 200 and st.body["total_vectors"] == 0
    tl = http(srv, "GET", "/_vector/topics").body
    assert t in tl["topics"] and tl["count"] == len(tl["topics"])
    # the server keeps serving
    assert vsearch(srv, t, {"query": "charlie delta 10", "k": 1})["count"] == 1


def test_linear_fusion(srv, emb):
    t = unique_topic("vlin")
    vtopic(srv, t, 1, ext_config(emb, searchable="true"))
    produce_json(srv, t, [{"text": "red green %d" % i} for i in range(20)] + [{"text": "blue"}])
    wait_vectors(srv, t, 21)
    res = vsearch(srv, t, {"query": "red green 3", "k": 5, "fusion": "linear", "alpha": 1.0}, route="hybrid")
    assert res["fusion_method"] == "linear"
    # alpha 1: pure vector order, min-max normalised: the best is 1.0
    assert res["results"][0]["score"] == pytest.approx(1.0) and res["results"][0]["offset"] == 3, res
    r = http(srv, "POST", "/_vector/%s/hybrid" % t, {"query": "x", "fusion": "max"})
    assert r.status == 400, r
    r = http(srv, "POST", "/_vector/%s/hybrid" % t, {"query": "x", "fusion": "linear", "alpha": 2})
    assert r.status == 400, r


def test_openai_provider_contract(own, emb):
    s = own("vopenai", OPENAI_API_KEY="sk-test-123", CHRONIK_EMBEDDING_ENDPOINT=emb.url)
    t = unique_topic("voai")
    vtopic(s, t, 1, {"vector.model": "tiny-embed"})
    produce_json(s, t, [{"text": "kilo lima %d" % i} for i in range(10)])
    wait_vectors(s, t, 10)
    st = stats(s, t)
    assert st["embedding_provider"] == "openai" and st["embedding_model"] == "tiny-embed", st
    reqs = [r for r in emb.requests if r[0] == "/v1/embeddings"]
    assert reqs, emb.requests[-3:]
    path, headers, raw_body = reqs[-1]
    assert {k.lower(): v for k, v in headers.items()}["authorization"] == "Bearer sk-test-123"
    body = json.loads(raw_body)
    assert body["model"] == "tiny-embed" and isinstance(body["input"], list)
    # the answers come in reverse order: the server puts them back by "index"
    res = vsearch(s, t, {"query": "kilo lima 7", "k": 1})
    assert res["results"][0]["offset"] == 7 and res["results"][0]["score"] > 0.999, res


def test_provider_failures_are_retried_and_lose_nothing(own, emb):
    s = own("vfail")
    t = unique_topic("vfail")
    vtopic(s, t, 2, ext_config(emb, **{"vector.max_retries": "1"}))
    emb.fail_next = 6  # more than one request's retries: the indexer stops and comes back
    produce_json(s, t, [{"text": "mike november %d" % i} for i in range(40)])

    def errored():
        st = stats(s, t)
        return st["errors"] >= 1 and st["last_error"] and "injected failure" in st["last_error"]

    wait_for(errored, 20, 0.05, "the provider failure in the stats")
    wait_vectors(s, t, 40, timeout=60)
    st = stats(s, t)
    assert st["last_error"] is None and st["embedded"] >= 40, st
    for i in (0, 17, 39):
        res = vsearch(s, t, {"query": "mike november %d" % i, "k": 1})
        assert res["results"][0]["score"] > 0.999, res


def test_provider_timeouts_are_retried_and_lose_nothing(own):
    """A provider slower than vector.timeout_ms: each request is cut at the timeout and
    retried; the lag and the error show; once it answers in time every record is there."""
    slow = EmbedServer(dims=256)
    try:
        s = own("vslow")
        t = unique_topic("vslow")
        vtopic(s, t, 1, ext_config(slow, **{"vector.timeout_ms": "300", "vector.max_retries": "1"}))
        slow.delay_s = 1.5
        produce_json(s, t, [{"text": "oscar papa %d" % i} for i in range(20)])

        def timed_out():
            st = stats(s, t)
            return st["errors"] >= 1 and st["last_error"] and "Timeout" in st["last_error"] and st["lag"] > 0

        wait_for(timed_out, 20, 0.05, "the provider timeout in the stats")
        assert stats(s, t)["total_vectors"] == 0
        slow.delay_s = 0
        wait_vectors(s, t, 20, timeout=60)
        for i in (0, 13, 19):
            res = vsearch(s, t, {"query": "oscar papa %d" % i, "k": 1})
            h = res["results"][0]
            assert h["offset"] == i and h["text_preview"] == "oscar papa %d" % i and h["score"] > 0.999, res
        r = http(s, "POST", "/topics", {"name": unique_topic("vbadto"), "partitions": 1,
                                        "config": {"vector.enabled": "true", "vector.timeout_ms": "5"}})
        assert r.status == 400, r
    finally:
        slow.close()


# ---------------------------------------------------------------- crash safety, retention

def own_hits(srv, topic, acked):
    """For each acked (partition, offset, number): the search filtered to that one record
    finds it, with its own vector (cosine 1)."""
    out = []
    for p, o, num in acked:
        res = vsearch(srv, topic, {"vector": bag_vector(str(num), 16), "k": 1, "partitions": [p],
                                   "min_offset": o, "max_offset": o}, route="search_by_vector")
        out.append([(h["partition"], h["offset"], round(h["score"], 4)) for h in res["results"]])
    return out


def open_results(srv, topic, numbers):
    """Unfiltered top-5 lists (ties broken by partition and offset)."""
    out = []
    for n in numbers:
        res = vsearch(srv, topic, {"vector": bag_vector("%d" % n, 16), "k": 5}, route="search_by_vector")
        out.append([(h["partition"], h["offset"], round(h["score"], 4)) for h in res["results"]])
    return out


def test_kill9_during_indexing_equals_rebuild(own, emb):
    s = own("vkill9", CHRONIK_VECTOR_COMMIT_INTERVAL_MS="100")
    t = unique_topic("vk9")
    vtopic(s, t, 3, ext_config(emb))
    folder = s.data_dir / "vector" / t
    sender = NumberedSender(s.bootstrap, t, 3, **{"retries": 1000, "message.timeout.ms": 25000})
    kill9_under_load(s, sender, 300, 200, lambda: (folder / "CHECKPOINT").exists(), "a vector checkpoint")
    hw = {p["partition"]: p["high_watermark"] for p in http(s, "GET", "/topics/" + t).body["partition_info"]}
    n = sum(hw.values())
    wait_vectors(s, t, n)
    st = stats(s, t)
    assert sum(p["vector_count"] for p in st["partitions"]) == n == st["total_vectors"], st
    sample = random.Random(5).sample(sorted(sender.acked), 60)
    assert all(h == [(p, o, 1.0)] for (p, o, _n), h in zip(sample, own_hits(s, t, sample))), "acked record missing"
    nums = [num for _p, _o, num in sample[:15]]
    got = open_results(s, t, nums)
    # a clean restart keeps the same index; deleting the folder rebuilds an equal one
    s.stop()
    s.start()
    wait_http(s)
    wait_vectors(s, t, n)
    assert open_results(s, t, nums) == got
    s.stop()
    shutil.rmtree(folder)
    s.start()
    wait_http(s)
    wait_vectors(s, t, n)
    assert open_results(s, t, nums) == got
    assert stats(s, t)["total_vectors"] == n


def produce_then_trim(srv, t, words, n, upto):
    """n records "words i" into partition 0, all embedded; then the log start moved to upto
    (DeleteRecords) and the vectors below it gone."""
    produce_json(srv, t, [{"text": "%s %d" % (words, i)} for i in range(n)], partition=0)
    wait_vectors(srv, t, n)
    with raw.Conn(srv.host, srv.kafka_port) as c:
        assert raw.delete_records_v1(c, t, {0: upto}) == {0: (upto, 0)}
    wait_vectors(srv, t, n - upto)


def test_retention_drops_vectors(srv, emb):
    t = unique_topic("vret")
    vtopic(srv, t, 1, ext_config(emb))
    produce_then_trim(srv, t, "oscar papa", 20, 15)
    res = vsearch(srv, t, {"query": "oscar papa", "k": 50})
    assert sorted(o for _p, o in keyed(res)) == list(range(15, 20)), res


def test_vector_field_choices(srv, emb):
    """vector.field picks the text: a JSON path, the key, or the value (for a JSON value,
    its string fields; for a plain value, the value itself); records with nothing to
    embed are skipped, not stuck."""
    from kafka import KafkaProducer
    cases = {"$.msg.body": ([(b"k1", {"msg": {"body": "quebec romeo path"}, "other": "x"}),
                             (b"k2", {"msg": {"title": "no body here"}})], ["quebec romeo path"], 1),
             "key": ([(b"sierra tango key", {"v": 1})], ["sierra tango key"], 1),
             "value": ([(None, {"a": "uniform", "b": {"c": "victor"}, "n": 5})], ["uniform\nvictor"], 1)}
    for field, (records, want_texts, n) in cases.items():
        t = unique_topic("vfield")
        vtopic(srv, t, 1, ext_config(emb, **{"vector.field": field}))
        p = KafkaProducer(bootstrap_servers=srv.bootstrap, acks="all")
        for k, v in records:
            p.send(t, json.dumps(v).encode(), key=k)
        p.send(t, b"plain text value")  # for $.path and key: nothing to embed (no JSON / no key)
        p.flush(30)
        p.close()
        extra = 1 if field == "value" else 0
        wait_vectors(srv, t, n + extra)
        seen = emb.texts_seen()
        for w in want_texts:
            assert w in seen, (field, w, seen[-5:])
        st = stats(srv, t)
        assert st["lag"] == 0, st


def test_retention_survives_restart_with_snapshot(own, emb):
    """A clean stop snapshots the graphs with their deleted vectors; the count after the
    restart is still the live one."""
    s = own("vretsnap")
    t = unique_topic("vrs")
    vtopic(s, t, 1, ext_config(emb))
    produce_then_trim(s, t, "uniform whiskey", 30, 12)
    s.stop()
    assert (s.data_dir / "vector" / t / "p0.hnsw").exists()
    s.start()
    wait_http(s)
    wait_vectors(s, t, 18)
    res = vsearch(s, t, {"query": "uniform whiskey", "k": 50})
    assert sorted(o for _p, o in keyed(res)) == list(range(12, 30)), res


def test_delete_index_and_backfill(srv, emb):
    """DELETE /_vector/{t}/index clears the vectors (one partition or all); POST
    /_vector/{t}/backfill embeds every record again from the log."""
    t = unique_topic("vbf")
    vtopic(srv, t, 2, ext_config(emb))
    produce_json(srv, t, [{"text": "xray yankee %d" % i} for i in range(20)], partition=lambda i: i % 2)
    wait_vectors(srv, t, 20)
    before = len(emb.texts_seen())
    r = http(srv, "DELETE", "/_vector/%s/index" % t, {"partition": 1})
    assert r.status == 200 and r.body == {"topic": t, "partition": 1, "vectors_cleared": 10,
                                          "snapshots_deleted": True}, r
    st = stats(srv, t)
    assert [p["vector_count"] for p in st["partitions"]] == [10, 0], st
    res = vsearch(srv, t, {"query": "xray yankee", "k": 50})
    assert {p for p, _o in keyed(res)} == {0}, res
    # new records still come in
    produce_json(srv, t, [{"text": "zulu %d" % i} for i in range(4)], partition=1)
    wait_for(lambda: stats(srv, t)["partitions"][1]["vector_count"] == 4, 20, 0.05, "new vectors")
    r = http(srv, "POST", "/_vector/%s/backfill" % t, {})
    assert r.status == 200 and r.body["complete"] is True, r
    assert r.body["vectors_generated"] == 24 and r.body["vectors_cleared"] == 14, r.body
    st = stats(srv, t)
    assert [p["vector_count"] for p in st["partitions"]] == [10, 14] and st["lag"] == 0, st
    assert len(emb.texts_seen()) >= before + 24
    res = vsearch(srv, t, {"query": "xray yankee 7", "k": 1})
    assert res["results"][0]["score"] > 0.999 and res["results"][0]["partition"] == 1, res
    # errors
    assert http(srv, "DELETE", "/_vector/%s/index" % t, {"partition": 9}).status == 400
    assert http(srv, "DELETE", "/_vector/%s/index" % t, {"partition": "x"}).status == 400
    assert http(srv, "POST", "/_vector/no-such-topic/backfill", {}).status == 404
    r = http(srv, "DELETE", "/_vector/%s/index" % t)
    assert r.status == 200 and r.body["vectors_cleared"] == 24 and r.body["partition"] is None, r
    assert stats(srv, t)["total_vectors"] == 0
