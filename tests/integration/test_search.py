"""Full-text search over topics (searchable=true): the Elasticsearch-style /_search and
/{index}/_search, fed through the Kafka protocol by real clients; the README example
verbatim; every DSL clause and error; restart, kill -9 and rebuild; retention."""
import json
import random
import shutil
import time

import pytest
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

import kafka_raw as raw
from conftest import kp_admin, unique_topic, wait_for
from http_util import (create_topic, curl_json, expect, http, module_api_server, produce_json, raw_producer,
                       topic_info, wait_http)
from numbered import NumberedSender, kill9_under_load


@pytest.fixture(scope="module")
def srv(request, tmp_path_factory):
    yield from module_api_server(request, tmp_path_factory, "search", None)


def search(srv, index, body, status=200):
    path = "/%s/_search" % index if index else "/_search"
    r = http(srv, "POST", path, body)
    assert r.status == status, "POST %s %r -> %r" % (path, body, r)
    return r.body


def hits(res):
    return res["hits"]["hits"]


def values(res, field):
    return [h["_source"]["value"].get(field) for h in hits(res)]


def total(res):
    return res["hits"]["total"]["value"]


def wait_total(srv, index, n, timeout=20.0, query=None):
    body = {"query": query or {"match_all": {}}, "size": 0, "track_total_hits": True}
    seen = []

    def ok():
        r = http(srv, "POST", "/%s/_search" % index, body)
        if r.status == 404:
            seen.append("404")
            return False
        assert r.status == 200, r
        seen.append(total(r.body))
        return total(r.body) == n

    wait_for(ok, timeout, 0.05, "%s: %d docs searchable (last totals %r)" % (index, n, seen[-5:]))


def searchable_topic(srv, name, partitions=1, config=None):
    cfg = {"searchable": "true"}
    cfg.update(config or {})
    create_topic(srv, name, partitions, cfg, columnar=False)


DOCS = [
    {"id": 1, "title": "Login timeout error on mobile", "body": "Users see a timeout error when they log in",
     "status": "open", "priority": 3, "created": "2024-05-01T10:00:00Z", "tags": ["auth", "mobile"]},
    {"id": 2, "title": "Payment failed", "body": "The card payment failed with error 502", "status": "closed",
     "priority": 1, "created": "2024-05-02T11:00:00Z", "tags": ["payments"], "user": {"name": "Ann", "tier": "gold"}},
    {"id": 3, "title": "Slow dashboard", "body": "The dashboard is slow to load in the morning", "status": "open",
     "priority": 2, "created": "2024-05-03T09:30:00Z", "tags": ["ui"]},
    {"id": 4, "title": "Cannot reset password", "body": "Password reset email never arrives; login impossible",
     "status": "pending", "priority": 3, "created": "2024-05-04T08:00:00Z", "tags": ["auth", "email"],
     "user": {"name": "Bob", "tier": "silver"}},
    {"id": 5, "title": "Quick brown fox", "body": "the quick brown fox jumps over the lazy dog", "status": "open",
     "priority": 5, "created": "2024-05-05T00:00:00Z", "active": True},
    {"id": 6, "title": "Lazy dog", "body": "a lazy brown dog sleeps; the fox is quick", "status": "closed",
     "priority": 4, "created": "2024-06-01T00:00:00Z", "active": False},
]


@pytest.fixture(scope="module")
def tickets(srv):
    t = unique_topic("tickets")
    searchable_topic(srv, t, 2)
    produce_json(srv, t, DOCS, partition=lambda i: i % 2)
    wait_total(srv, t, len(DOCS))
    return t


def ids(res):
    return [h["_source"]["value"]["id"] for h in hits(res)]


# ---------------------------------------------------------------- README and shapes

def test_readme_real_time_search_verbatim(srv):
    """The upstream README's "Real-Time Search" example, run as written."""
    t = "support-tickets"
    searchable_topic(srv, t, 3)
    produce_json(srv, t, [
        {"ticket": 101, "text": "Customer reports a login timeout error after the update"},
        {"ticket": 102, "text": "Refund requested for a duplicate charge"},
        {"ticket": 103, "text": "Timeout when exporting reports"},
        {"ticket": 104, "text": "Error: login page shows a blank screen"},
    ])
    wait_total(srv, t, 4)
    cmd = """curl -X POST http://localhost:6092/_search \\
  -d '{"index": "support-tickets", "query": {"match": {"_all": "login timeout error"}}}'"""
    res = curl_json(srv, cmd)
    assert set(res) >= {"took", "timed_out", "_shards", "hits"}, res
    got = [h["_source"]["value"]["ticket"] for h in res["hits"]["hits"]]
    assert got[0] == 101, res          # all three words
    assert set(got) == {101, 103, 104}, res  # any of them; 102 has none
    for h in res["hits"]["hits"]:
        assert h["_index"] == "support-tickets"
        src = h["_source"]
        assert set(src) >= {"topic", "partition", "offset", "timestamp", "value"}, h
        assert h["_id"] == "%s-%d-%d" % (t, src["partition"], src["offset"])
        assert isinstance(h["_score"], float) and h["_score"] > 0
    scores = [h["_score"] for h in res["hits"]["hits"]]
    assert scores == sorted(scores, reverse=True)
    assert res["hits"]["max_score"] == scores[0]
    assert res["hits"]["total"] == {"value": 3, "relation": "eq"}


def test_response_shape_and_match_all(srv, tickets):
    res = search(srv, tickets, {})
    assert res["timed_out"] is False and isinstance(res["took"], int)
    assert res["_shards"] == {"total": 1, "successful": 1, "skipped": 0, "failed": 0}
    assert total(res) == len(DOCS) and len(hits(res)) == len(DOCS)
    res = search(srv, tickets, {"query": {"match_all": {}}, "size": 2})
    assert len(hits(res)) == 2 and total(res) == len(DOCS)
    # GET with a body, and GET with ?q=
    r = http(srv, "GET", "/%s/_search" % tickets, {"query": {"match": {"title": "payment"}}})
    assert r.status == 200 and ids(r.body) == [2], r
    r = http(srv, "GET", "/%s/_search?q=title:dashboard" % tickets)
    assert r.status == 200 and ids(r.body) == [3], r


# ---------------------------------------------------------------- clauses

def test_match_operator_and_minimum_should_match(srv, tickets):
    assert set(ids(search(srv, tickets, {"query": {"match": {"body": "login timeout"}}}))) == {1, 4}
    res = search(srv, tickets, {"query": {"match": {"body": {"query": "timeout error", "operator": "and"}}}})
    assert ids(res) == [1]
    res = search(srv, tickets, {"query": {"match": {"body": {"query": "quick brown fox lazy cat",
                                                                  "minimum_should_match": 4}}}})
    assert set(ids(res)) == {5, 6}
    # stemming: "loads" finds "load", "payments" finds "payment"
    assert ids(search(srv, tickets, {"query": {"match": {"body": "loads"}}})) == [3]
    assert ids(search(srv, tickets, {"query": {"match": {"title": "payments"}}})) == [2]
    # nested fields flatten with dots
    assert ids(search(srv, tickets, {"query": {"match": {"user.name": "ann"}}})) == [2]


def test_match_phrase_and_slop(srv, tickets):
    assert ids(search(srv, tickets, {"query": {"match_phrase": {"body": "quick brown fox"}}})) == [5]
    assert ids(search(srv, tickets, {"query": {"match_phrase": {"body": "brown quick"}}})) == []
    res = search(srv, tickets, {"query": {"match_phrase": {"body": {"query": "lazy dog", "slop": 0}}}})
    assert ids(res) == [5]
    res = search(srv, tickets, {"query": {"match_phrase": {"body": {"query": "lazy dog", "slop": 1}}}})
    assert set(ids(res)) == {5, 6}


def test_multi_match_with_boosts(srv, tickets):
    q = {"multi_match": {"query": "lazy", "fields": ["title^5", "body"]}}
    res = search(srv, tickets, {"query": q})
    assert ids(res)[0] == 6 and set(ids(res)) == {5, 6}
    q = {"multi_match": {"query": "lazy", "fields": ["title", "body^5"], "type": "most_fields"}}
    assert set(ids(search(srv, tickets, {"query": q}))) == {5, 6}


def test_bool_must_should_must_not_filter(srv, tickets):
    q = {"bool": {"must": [{"match": {"_all": "error"}}], "must_not": [{"term": {"status": "closed"}}]}}
    assert ids(search(srv, tickets, {"query": q})) == [1]
    q = {"bool": {"filter": [{"term": {"status": "open"}}]}}
    res = search(srv, tickets, {"query": q})
    assert set(ids(res)) == {1, 3, 5}
    assert all(h["_score"] == 0.0 for h in hits(res)), "filter must not score"
    q = {"bool": {"should": [{"match": {"title": "fox"}}, {"match": {"title": "dog"}}], "minimum_should_match": 1}}
    assert set(ids(search(srv, tickets, {"query": q}))) == {5, 6}
    q = {"bool": {"must": {"match": {"body": "brown"}}, "filter": {"range": {"priority": {"gte": 5}}}}}
    assert ids(search(srv, tickets, {"query": q})) == [5]


def test_term_terms_keyword_and_bool_fields(srv, tickets):
    assert set(ids(search(srv, tickets, {"query": {"term": {"status.keyword": "pending"}}}))) == {4}
    assert ids(search(srv, tickets, {"query": {"term": {"title.keyword": "Slow dashboard"}}})) == [3]
    assert ids(search(srv, tickets, {"query": {"term": {"title.keyword": "slow dashboard"}}})) == []
    assert set(ids(search(srv, tickets, {"query": {"terms": {"tags": ["payments", "ui"]}}}))) == {2, 3}
    assert ids(search(srv, tickets, {"query": {"term": {"active": True}}})) == [5]
    assert ids(search(srv, tickets, {"query": {"term": {"priority": 1}}})) == [2]


def test_range_numbers_dates_and_timestamp(srv, tickets):
    q = {"range": {"priority": {"gte": 2, "lt": 4}}}
    assert set(ids(search(srv, tickets, {"query": q}))) == {1, 3, 4}
    q = {"range": {"priority": {"gt": 3}}}
    assert set(ids(search(srv, tickets, {"query": q}))) == {5, 6}
    q = {"range": {"created": {"gte": "2024-05-02", "lte": "2024-05-04T08:00:00Z"}}}
    assert set(ids(search(srv, tickets, {"query": q}))) == {2, 3, 4}
    q = {"range": {"created": {"gt": "2024-05-31"}}}
    assert ids(search(srv, tickets, {"query": q})) == [6]
    now = int(time.time() * 1000)
    q = {"range": {"_timestamp": {"gte": now - 3600 * 1000, "lte": now + 60000}}}
    assert total(search(srv, tickets, {"query": q})) == len(DOCS)
    q = {"range": {"_timestamp": {"lt": now - 3600 * 1000}}}
    assert total(search(srv, tickets, {"query": q})) == 0


def test_exists_prefix_query_string(srv, tickets):
    assert set(ids(search(srv, tickets, {"query": {"exists": {"field": "user"}}}))) == {2, 4}
    assert set(ids(search(srv, tickets, {"query": {"exists": {"field": "active"}}}))) == {5, 6}
    assert set(ids(search(srv, tickets, {"query": {"prefix": {"title": "pas"}}}))) == {4}
    assert set(ids(search(srv, tickets, {"query": {"prefix": {"status.keyword": "clo"}}}))) == {2, 6}
    qs = lambda q: set(ids(search(srv, tickets, {"query": {"query_string": {"query": q}}})))
    assert qs("login AND timeout") == {1}
    assert qs("fox OR payment") == {2, 5, 6}
    assert qs("fox NOT lazy") == set()
    assert qs("brown -sleeps") == {5}
    assert qs('"quick brown fox"') == {5}
    assert qs("status:pending") == {4}
    assert qs("(dashboard OR password) AND status:open") == {3}


def test_from_size_sort_source_highlight_total(srv, tickets):
    res = search(srv, tickets, {"sort": [{"priority": "desc"}], "size": 3})
    assert ids(res) == [5, 6, 1] or ids(res) == [5, 6, 4]
    assert [h["sort"][0] for h in hits(res)] == [5, 4, 3]
    res = search(srv, tickets, {"sort": [{"priority": {"order": "asc"}}, {"id": "asc"}], "from": 2, "size": 2})
    assert ids(res) == [1, 4]
    res = search(srv, tickets, {"query": {"match": {"title": "payment"}}, "_source": ["title", "user.name"]})
    assert hits(res)[0]["_source"]["value"] == {"title": "Payment failed", "user": {"name": "Ann"}}
    res = search(srv, tickets, {"query": {"match": {"title": "payment"}}, "_source": False})
    assert "_source" not in hits(res)[0]
    res = search(srv, tickets, {"query": {"match": {"body": "timeout"}},
                                "highlight": {"fields": {"body": {}}}})
    assert hits(res)[0]["highlight"]["body"] == ["Users see a <em>timeout</em> error when they log in"]
    res = search(srv, tickets, {"query": {"match": {"body": "dog"}}, "track_total_hits": False})
    assert "total" not in res["hits"] and set(ids(res)) == {5, 6}
    res = search(srv, tickets, {"query": {"match_all": {}}, "track_total_hits": 3, "size": 1})
    assert res["hits"]["total"] == {"value": 3, "relation": "gte"}


# ---------------------------------------------------------------- errors

def es_error(r, status, etype):
    assert r.status == status, r
    body = r.body
    assert isinstance(body, dict) and body.get("status") == status, r
    assert body["error"]["type"] == etype, r
    assert isinstance(body["error"]["reason"], str) and body["error"]["reason"], r


def test_errors(srv, tickets):
    es_error(http(srv, "POST", "/no-such-index-xyz/_search", {}), 404, "index_not_found_exception")
    assert "no such index [no-such-index-xyz]" in http(srv, "POST", "/no-such-index-xyz/_search", {}).body[
        "error"]["reason"]
    es_error(http(srv, "POST", "/_search", {"index": "nope-nope"}), 404, "index_not_found_exception")
    es_error(http(srv, "POST", "/%s/_search" % tickets, {"query": {"no_such_clause": {}}}), 400,
             "parsing_exception")
    es_error(http(srv, "POST", "/%s/_search" % tickets, {"query": {"match": {"a": "b"}, "term": {"c": "d"}}}), 400,
             "parsing_exception")
    assert http(srv, "POST", "/%s/_search" % tickets, {"size": "ten"}).status == 400
    es_error(http(srv, "POST", "/%s/_search" % tickets, b"{not json"), 400, "parse_exception")
    r = http(srv, "POST", "/%s/_search" % tickets, {"query": {"range": {"priority": {"gte": "abc"}}}})
    assert r.status == 400, r
    # the server keeps serving
    assert total(search(srv, tickets, {})) == len(DOCS)


def test_search_all_indexes_and_wildcards(srv, tickets):
    other = unique_topic("tickets-b")
    searchable_topic(srv, other, 1)
    produce_json(srv, other, [{"title": "unicorn sighting"}])
    wait_total(srv, other, 1)
    res = search(srv, None, {"query": {"match": {"title": "unicorn"}}})
    assert [h["_index"] for h in hits(res)] == [other]
    res = search(srv, "%s,%s" % (tickets, other), {"query": {"match_all": {}}, "size": 100})
    assert total(res) == len(DOCS) + 1
    res = search(srv, tickets.split("-")[0] + "*", {"query": {"match": {"title": "unicorn"}}})
    assert len(hits(res)) == 1


def test_plain_text_values_keys_and_unicode(srv):
    t = unique_topic("plain")
    searchable_topic(srv, t, 1)
    p = raw_producer(srv)
    for k, v in [(b"user-42", "Grüße aus Köln, STRASSE".encode()), (None, b"not { json at all"),
                 (b"k", "東京タワー 観光".encode()), (None, b"\xff\xfe invalid utf8 word")]:
        p.send(t, key=k, value=v)
    p.flush(30)
    p.close(10)
    wait_total(srv, t, 4)
    m = lambda f, q: [h["_source"]["offset"] for h in hits(search(srv, t, {"query": {"match": {f: q}}}))]
    assert m("_value", "strasse") == [0] and m("value", "köln") == [0]
    assert m("_all", "json") == [1]
    assert m("_key", "user") == [0]
    assert m("_value", "東") == [2]
    assert m("_value", "invalid") == [3]
    assert search(srv, t, {"query": {"match": {"_value": "json"}}})["hits"]["hits"][0]["_source"]["value"] == \
        "not { json at all"


# ---------------------------------------------------------------- configs

def test_source_of_records_in_big_compressed_and_plain_batches(srv):
    """_source reads a hit's record alone from an uncompressed batch (small records, one
    over 4 KB, one over 200 KB, in the middle of batches of hundreds), and reads the batch
    whole when it is compressed: every hit's value, key and timestamp must be the record's."""
    from confluent_kafka import Producer
    t = unique_topic("srcread")
    searchable_topic(srv, t, 1)
    sent = {}
    for codec in ("none", "gzip", "lz4"):
        pr = Producer({"bootstrap.servers": srv.bootstrap, "acks": "all", "linger.ms": 100,
                       "compression.type": codec, "batch.size": 4000000})
        for i in range(600):
            if i == 300:
                pad = "x" * 5000
            elif i == 450:
                pad = "y " * 110000
            else:
                pad = "z%d" % i
            tok = "tok%s%d" % (codec, i)
            v = json.dumps({"i": i, "codec": codec, "tok": tok, "pad": pad})
            key = ("k-%s-%d" % (codec, i)).encode()
            pr.produce(t, v.encode(), key=key, timestamp=1700000000000 + i)
            sent[tok] = (v, key.decode(), 1700000000000 + i)
        assert pr.flush(30) == 0
    wait_total(srv, t, len(sent))
    for tok in ["toknone0", "toknone1", "toknone299", "toknone300", "toknone450", "toknone599",
                "tokgzip7", "tokgzip300", "toklz4450", "toklz4598"]:
        res = search(srv, t, {"query": {"term": {"tok": tok}}})
        assert total(res) == 1, tok
        src = hits(res)[0]["_source"]
        v, key, ts = sent[tok]
        assert src["value"] == json.loads(v), tok
        assert src["key"] == key and src["timestamp"] == ts, tok
    # many hits at once, across batches and codecs
    res = search(srv, t, {"query": {"terms": {"tok": list(sent)[::37]}}, "size": 100})
    assert len(hits(res)) == len(list(sent)[::37])
    for h in hits(res):
        assert h["_source"]["value"] == json.loads(sent[h["_source"]["value"]["tok"]][0])


def test_enable_later_backfills_and_alias(srv):
    t = unique_topic("later")
    create_topic(srv, t, 2, columnar=False)
    produce_json(srv, t, [{"msg": "backfilled record %d" % i} for i in range(50)])
    assert http(srv, "POST", "/%s/_search" % t, {}).status == 404
    a = kp_admin(srv)
    try:
        a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, t, configs={"searchable.enabled": "true"})])
    finally:
        a.close()
    wait_total(srv, t, 50)
    assert total(search(srv, t, {"query": {"match": {"msg": "backfilled"}}})) == 50
    caps = topic_info(srv, t)["capabilities"]["searchable"]
    assert caps["enabled"] is True and caps["status"] == "ok" and caps["lag"] == 0, caps
    assert caps["index"]["merging"] in (True, False) and caps["index"]["segments_memory"] >= 0, caps
    assert caps["index"]["docs"] == 50 and [p["visible_offset"] for p in caps["partitions"]] == [
        p["high_watermark"] for p in caps["partitions"]], caps
    # Kafka CreateTopics with the config
    t2 = unique_topic("kcreate")
    a = kp_admin(srv)
    try:
        a.create_topics([NewTopic(t2, 1, 1, topic_configs={"searchable": "true", "searchable.language": "german",
                                                            "searchable.stopwords": "false"})])
    finally:
        a.close()
    produce_json(srv, t2, [{"text": "Die Häuser sind schön"}])
    wait_total(srv, t2, 1)
    assert total(search(srv, t2, {"query": {"match": {"text": "haus"}}})) == 1
    assert total(search(srv, t2, {"query": {"match": {"text": "die"}}})) == 1
    r = http(srv, "POST", "/topics", {"name": unique_topic("badlang"), "config": {"searchable": "true",
                                                                                  "searchable.language": "klingon"}})
    assert r.status == 400, r


def test_default_searchable_env(own):
    s = own("srchdefault", CHRONIK_DEFAULT_SEARCHABLE="true")
    t = unique_topic("auto")
    produce_json(s, t, [{"text": "auto created and searchable"}])  # auto-created by the producer
    wait_total(s, t, 1)
    assert total(search(s, t, {"query": {"match": {"text": "searchable"}}})) == 1


# ---------------------------------------------------------------- durability

def all_docs(srv, index, hw):
    """Every doc as (partition, offset, value), read in windows of offsets."""
    out = []
    for p, end in sorted(hw.items()):
        for lo in range(0, end + 1, 5000):
            q = {"bool": {"filter": [{"term": {"_partition": p}}, {"range": {"_offset": {"gte": lo, "lt": lo + 5000}}}]}}
            res = search(srv, index, {"query": q, "size": 5000, "sort": [{"_offset": "asc"}]})
            out += [(h["_source"]["partition"], h["_source"]["offset"], h["_source"]["value"]) for h in hits(res)]
    return out


QUERIES = [{"match": {"_all": "3 5 8 13 21 34 55 89 144 233"}}, {"match": {"_value": "12"}},
           {"bool": {"must": {"match": {"_all": "1 2 3 4 5 6 7 8 9"}}, "filter": {"range": {"_offset": {"gte": 1}}}}},
           {"range": {"_offset": {"gte": 10, "lte": 40}}}]


def query_results(srv, index):
    """Totals and (id, score) of every hit, in a segmentation-independent order (equal
    scores tie-break by segment order)."""
    out = []
    for q in QUERIES:
        res = search(srv, index, {"query": q, "size": 500, "track_total_hits": True})
        assert len(hits(res)) == total(res) < 500
        out.append((total(res), sorted((h["_id"], round(h["_score"], 4)) for h in hits(res))))
    return out


def test_kill9_during_indexing_equals_rebuild(own):
    # commits every 200 ms, so the kill lands between, or inside, flushes and merges
    s = own("srchkill9", CHRONIK_SEARCH_FLUSH_INTERVAL_MS="200")
    t = unique_topic("sk9")
    searchable_topic(s, t, 3, {"searchable.refresh.ms": "100"})
    folder = s.data_dir / "search" / t
    sender = NumberedSender(s.bootstrap, t, 3, **{"retries": 1000, "message.timeout.ms": 25000})
    kill9_under_load(s, sender, 500, 300, lambda: len(list(folder.glob("seg_*.cks"))) >= 3,
                     "committed segments", jitter=0.5)
    hw = {p["partition"]: p["high_watermark"] for p in topic_info(s, t)["partition_info"]}
    n = sum(hw.values())
    wait_total(s, t, n, timeout=30)
    commit = json.loads((folder / "COMMIT").read_text())
    assert commit["segments"] and sum(commit["partitions"]) > 0, commit
    docs = all_docs(s, t, hw)
    assert len(docs) == n
    pos = [(p, o) for p, o, _v in docs]
    assert len(set(pos)) == n, "duplicate (partition, offset) docs after kill -9"
    for p, cnt in hw.items():
        assert sorted(o for pp, o in pos if pp == p) == list(range(cnt))
    acked = {(p, o): v for p, o, v in sender.acked}
    stored = {(p, o): v for p, o, v in docs}
    assert all(stored.get(k) == v for k, v in acked.items()), "acknowledged records missing or wrong"
    before = query_results(s, t)
    # a clean restart keeps the same index; deleting the folder rebuilds the same one
    s.stop()
    s.start()
    wait_http(s)
    wait_total(s, t, n)
    assert query_results(s, t) == before
    s.stop()
    shutil.rmtree(s.data_dir / "search" / t)
    s.start()
    wait_http(s)
    wait_total(s, t, n, timeout=30)
    assert query_results(s, t) == before
    assert all_docs(s, t, hw) == docs


def test_parallel_indexing_lanes_equal_one_lane(own):
    """Big batches are cut across indexing threads (3 here, so the cuts are uneven); the
    index must hold every record once, count every word right, and rank exactly as an
    index built again by one thread."""
    from confluent_kafka import Producer
    s = own("srchlanes", CHRONIK_SEARCH_INDEX_THREADS="3")
    t = unique_topic("lanes")
    searchable_topic(s, t, 2)
    rnd = random.Random(11)
    vocab = ["w%d" % i for i in range(300)]
    n = 12000
    values = []
    for i in range(n):
        words = [vocab[min(int(rnd.paretovariate(1.1)) - 1, 299)] for _ in range(rnd.randint(3, 12))]
        values.append({"i": i, "text": " ".join(words)})
    pr = Producer({"bootstrap.servers": s.bootstrap, "acks": "all", "linger.ms": 200,
                   "batch.num.messages": 5000, "batch.size": 4000000})
    for i, v in enumerate(values):
        pr.produce(t, json.dumps(v).encode(), partition=i % 2)
    assert pr.flush(30) == 0
    wait_total(s, t, n, timeout=30)
    hw = {p["partition"]: p["high_watermark"] for p in topic_info(s, t)["partition_info"]}
    assert sum(hw.values()) == n
    docs = all_docs(s, t, hw)
    assert len({(p, o) for p, o, _v in docs}) == n
    for w in ["w0", "w1", "w7", "w42", "w299"]:
        want = sum(1 for v in values if w in v["text"].split())
        res = search(s, t, {"query": {"match": {"text": w}}, "size": 0, "track_total_hits": True})
        assert total(res) == want, (w, total(res), want)
    # every hit compared (totals below the size), so ties at a cut cannot differ
    queries = [{"match": {"text": "w50 w60 w70 w80"}}, {"match": {"text": "w100 w299"}},
               {"match_phrase": {"text": "w2 w3"}}]

    def ranked():
        out = []
        for q in queries:
            res = search(s, t, {"query": q, "size": 1000, "track_total_hits": True})
            assert 0 < total(res) == len(hits(res)) < 1000, (q, total(res))
            out.append((total(res), sorted((h["_id"], round(h["_score"], 4)) for h in hits(res))))
        return out
    before = ranked()
    s.stop()
    shutil.rmtree(s.data_dir / "search" / t)
    s.extra_env["CHRONIK_SEARCH_INDEX_THREADS"] = "1"
    s.start()
    wait_http(s)
    wait_total(s, t, n, timeout=30)
    assert ranked() == before


def test_older_segment_format_is_rebuilt(own):
    """Segments of another format version (an upgrade) are not read: the index is rebuilt
    from the log at start, says so, and answers as before."""
    s = own("srchfmt", CHRONIK_SEARCH_FLUSH_INTERVAL_MS="100")
    t = unique_topic("fmt")
    searchable_topic(s, t, 1)
    produce_json(s, t, DOCS)
    wait_total(s, t, len(DOCS))
    folder = s.data_dir / "search" / t
    wait_for(lambda: (folder / "COMMIT").exists() and
             sum(json.loads((folder / "COMMIT").read_text())["partitions"]) == len(DOCS), 20, 0.05,
             "the commit covering every doc")
    q = {"query": {"match": {"body": "lazy brown dog"}}}
    before = sorted((h["_id"], round(h["_score"], 4)) for h in hits(search(s, t, q)))
    s.stop()
    segs = list(folder.glob("seg_*.cks"))
    assert segs
    for f in segs:
        b = bytearray(f.read_bytes())
        assert b[:4] == b"CKSG"
        b[4] = 1  # the previous format version
        f.write_bytes(bytes(b))
    s.start()
    wait_http(s)
    wait_total(s, t, len(DOCS))
    assert sorted((h["_id"], round(h["_score"], 4)) for h in hits(search(s, t, q))) == before
    assert "has format version 1" in s.log_path.read_text()


def test_flushes_merge_on_disk_and_stats_say_so(own):
    """Ten flushed segments of one level merge into one in the background; the topic's
    index stats count the flushes and the merge, show "merging" until it is done, and
    the merged index answers every query."""
    s = own("srchmerge", CHRONIK_SEARCH_FLUSH_INTERVAL_MS="100")
    t = unique_topic("merge")
    searchable_topic(s, t, 1, {"searchable.refresh.ms": "50"})

    def index():
        return topic_info(s, t)["capabilities"]["searchable"]["index"]

    for i in range(12):
        before = index()["flushes"]
        produce_json(s, t, [{"n": i, "text": "round %d word%d common" % (i, j)} for j in range(20)])
        wait_total(s, t, 20 * (i + 1))
        wait_for(lambda: index()["flushes"] > before, 20, 0.02, "a flush after round %d" % i)
    wait_for(lambda: (lambda x: x["merges"] >= 1 and not x["merging"] and x["segments_memory"] == 0)(index()),
             30, 0.05, "the merge to finish")
    x = index()
    assert x["docs"] == 240 and x["flushes"] >= 12, x
    assert x["segments_disk"] <= x["flushes"] - 9, x  # ten became one
    commit = json.loads((s.data_dir / "search" / t / "COMMIT").read_text())
    assert len(commit["segments"]) == x["segments_disk"] and any(sg["level"] >= 1 for sg in commit["segments"])
    assert total(search(s, t, {"query": {"match": {"text": "common"}}, "track_total_hits": True})) == 240
    res = search(s, t, {"query": {"match": {"text": "word7 round"}}, "size": 30, "track_total_hits": True})
    assert total(res) == 240 and {h["_source"]["value"]["n"] for h in hits(res)[:12]} == set(range(12))


def test_retention_drops_old_docs(srv):
    t = unique_topic("ret")
    searchable_topic(srv, t, 1)
    produce_json(srv, t, [{"text": "retained %d" % i} for i in range(20)], partition=0)
    wait_total(srv, t, 20)
    with raw.Conn(srv.host, srv.kafka_port) as c:
        assert raw.delete_records_v1(c, t, {0: 15}) == {0: (15, 0)}
    wait_total(srv, t, 5)
    res = search(srv, t, {"query": {"match": {"text": "retained"}}, "size": 50})
    assert sorted(h["_source"]["offset"] for h in hits(res)) == list(range(15, 20))


# ---------------------------------------------------------------- REST-created indexes

def test_rest_index_crud_and_search(srv, tickets):
    name = "products-" + unique_topic("x")[-6:]
    m = {"mappings": {"properties": {"sku": {"type": "keyword"}, "name": {"type": "text"},
                                     "price": {"type": "long"}}}}
    assert expect(http(srv, "PUT", "/" + name, m), 200) == {"acknowledged": True, "shards_acknowledged": True,
                                                            "index": name}
    es_error(http(srv, "PUT", "/" + name, m), 400, "resource_already_exists_exception")
    assert expect(http(srv, "GET", "/%s/_mapping" % name), 200) == {name: m}
    r = http(srv, "PUT", "/%s/_doc/1" % name, {"sku": "AB-1", "name": "Red running shoes", "price": 90})
    b = expect(r, 201)
    assert b["_index"] == name and b["_id"] == "1" and b["_version"] == 1 and b["result"] == "created", b
    assert b["_primary_term"] == 1 and b["_shards"]["failed"] == 0, b
    b = expect(http(srv, "PUT", "/%s/_doc/1" % name, {"sku": "AB-1", "name": "Red trail shoes", "price": 95}), 200)
    assert b["_version"] == 2 and b["result"] == "updated", b
    b = expect(http(srv, "POST", "/%s/_doc" % name, {"sku": "CD-2", "name": "Blue shoes", "price": 40}), 201)
    gen_id = b["_id"]
    assert len(gen_id) == 20, b
    got = expect(http(srv, "GET", "/%s/_doc/1" % name), 200)
    assert got["found"] is True and got["_version"] == 2 and got["_source"]["name"] == "Red trail shoes", got
    res = search(srv, name, {"query": {"match": {"name": "shoes"}}})
    assert sorted(h["_id"] for h in hits(res)) == sorted(["1", gen_id]), res
    assert {h["_source"]["sku"] for h in hits(res)} == {"AB-1", "CD-2"}
    assert [h["_id"] for h in hits(search(srv, name, {"query": {"term": {"sku": "AB-1"}}}))] == ["1"]
    assert [h["_id"] for h in hits(search(srv, name, {"query": {"match": {"name": "running"}}}))] == []
    assert [h["_id"] for h in hits(search(srv, name, {"query": {"range": {"price": {"lt": 50}}}}))] == [gen_id]
    cat = expect(http(srv, "GET", "/_cat/indices"), 200)
    mine = [c for c in cat if c["index"] == name]
    assert len(mine) == 1 and mine[0]["docs.count"] == "2", cat
    assert set(mine[0]) == {"health", "status", "index", "uuid", "pri", "rep", "docs.count", "docs.deleted",
                            "store.size", "pri.store.size"}
    assert tickets not in [c["index"] for c in cat]
    b = expect(http(srv, "DELETE", "/%s/_doc/1" % name), 200)
    assert b["result"] == "deleted" and b["_version"] == 3, b
    r = http(srv, "GET", "/%s/_doc/1" % name)
    assert r.status == 404 and r.body["found"] is False, r
    assert http(srv, "DELETE", "/%s/_doc/1" % name).status == 404
    assert [h["_id"] for h in hits(search(srv, name, {"query": {"match": {"name": "shoes"}}}))] == [gen_id]
    # /_search spans topics and REST indexes
    res = search(srv, None, {"query": {"match": {"_all": "shoes"}}})
    assert name in {h["_index"] for h in hits(res)}
    assert expect(http(srv, "DELETE", "/" + name), 200) == {"acknowledged": True}
    es_error(http(srv, "POST", "/%s/_search" % name, {}), 404, "index_not_found_exception")
    es_error(http(srv, "DELETE", "/" + name), 404, "index_not_found_exception")


def test_rest_index_errors(srv, tickets):
    es_error(http(srv, "PUT", "/Bad*Name", {}), 400, "invalid_index_name_exception")
    es_error(http(srv, "PUT", "/badmap", {"mappings": {"properties": {"f": {"type": "nope"}}}}), 400,
             "mapper_parsing_exception")
    es_error(http(srv, "PUT", "/" + tickets, {}), 400, "resource_already_exists_exception")
    es_error(http(srv, "PUT", "/%s/_doc/1" % tickets, {"a": 1}), 404, "index_not_found_exception")
    es_error(http(srv, "GET", "/%s/_mapping" % tickets), 404, "index_not_found_exception")
    es_error(http(srv, "DELETE", "/" + tickets), 404, "index_not_found_exception")
    assert http(srv, "PUT", "/autoidx/_doc/a", b"[1,2]").status == 400
    es_error(http(srv, "PUT", "/autoidx/_doc/a", b"{broken"), 400, "parse_exception")
    # auto-created by the first document, as in Elasticsearch
    assert http(srv, "PUT", "/autoidx/_doc/a", {"t": "hello world"}).status == 201
    assert [h["_id"] for h in hits(search(srv, "autoidx", {"query": {"match": {"t": "hello"}}}))] == ["a"]


def test_rest_index_survives_kill9(own):
    s = own("restk9")
    for i in range(50):
        assert http(s, "PUT", "/notes/_doc/n%d" % i, {"text": "note number %d" % i, "n": i}).status == 201
    assert http(s, "DELETE", "/notes/_doc/n7").status == 200
    s.kill9()
    s.start()
    wait_http(s)
    assert http(s, "GET", "/notes/_doc/n7").status == 404
    assert expect(http(s, "GET", "/notes/_doc/n8"), 200)["_source"] == {"text": "note number 8", "n": 8}
    assert total(search(s, "notes", {"query": {"match": {"text": "note"}}, "track_total_hits": True})) == 49
