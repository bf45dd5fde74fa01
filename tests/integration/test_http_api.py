"""The unified HTTP API (CHRONIK_UNIFIED_API_PORT): /health, /metrics, the topic API and its
consistency with the Kafka protocol, error statuses, content types, keep-alive, many
concurrent clients and malformed requests."""
import http.client as httpclient
import json
import re
import socket
import threading
import time

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

from conftest import kp_admin, unique_topic, wait_for
from http_util import (count, create_topic, curl, expect, http, produce_json, rows, scalar, sql, sql_name, sql_resp,
                       topic_info, tuples, wait_count, wait_http)


@pytest.fixture(scope="module")
def api(server):
    wait_http(server)
    return server


def kafka_topics(srv):
    a = kp_admin(srv)
    try:
        return set(a.list_topics())
    finally:
        a.close()


def kafka_configs(srv, topic):
    a = kp_admin(srv)
    try:
        res = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        a.close()
    resources = [r for resp in res for r in resp.resources]
    assert len(resources) == 1 and resources[0][0] == 0, resources
    return {e[0]: e[1] for e in resources[0][4]}


def table_names(srv):
    return {t["name"] for t in expect(http(srv, "GET", "/_sql/tables"), 200)["tables"]}


def metric_samples(text):
    """[(name, {label: value}, value)] of a Prometheus text exposition."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$', line)
        assert m, "malformed metrics line %r" % line
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out.append((m.group(1), labels, float(m.group(4))))
    return out


def find(samples, name, **labels):
    return [v for n, l, v in samples if n == name and all(l.get(k) == str(x) for k, x in labels.items())]


# --------------------------------------------------------------------------- health, metrics
def test_health(api):
    r = http(api, "GET", "/health")
    body = expect(r, 200)
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    assert set(body) == {"status", "version", "sql_enabled", "vector_enabled", "search_enabled", "admin_enabled"}, body
    assert body["status"] == "ok"
    assert isinstance(body["version"], str) and re.match(r"^\d+\.\d+\.\d+", body["version"]), body
    assert (body["sql_enabled"], body["vector_enabled"], body["search_enabled"], body["admin_enabled"]) == (
        True, True, True, False), body


def test_metrics(api):
    t = unique_topic("met")
    create_topic(api, t, 2)
    produce_json(api, t, [{"n": i} for i in range(7)], partition=lambda i: i % 2)
    wait_count(api, sql_name(t), 7)
    c = KafkaConsumer(bootstrap_servers=api.bootstrap, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest", request_timeout_ms=15000)
    try:
        c.assign([TopicPartition(t, 0)])
        c.seek_to_beginning(TopicPartition(t, 0))
        got = []
        deadline = time.monotonic() + 15
        while len(got) < 4 and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=500).values():
                got.extend(recs)
        assert len(got) == 4
    finally:
        c.close()
    for _ in range(3):
        expect(http(api, "GET", "/health"), 200)
    http(api, "GET", "/no/such/path")

    def lag_zero():
        r = http(api, "GET", "/metrics")
        s = metric_samples(r.raw.decode())
        lags = [find(s, "chronik_indexer_lag_records", capability="columnar", topic=t, partition=p) for p in (0, 1)]
        return (r, s) if lags == [[0.0], [0.0]] else None

    r, s = wait_for(lag_zero, 10, 0.1, "chronik_indexer_lag_records of %s at 0" % t)
    assert r.status == 200
    assert r.headers.get("content-type", "").startswith("text/plain"), r.headers
    names = {n for n, _l, _v in s}
    for name in ("chronik_produce_requests_total", "chronik_fetch_requests_total", "chronik_log_end_offset",
                 "chronik_indexer_lag_records", "chronik_http_requests_total",
                 "chronik_http_request_duration_seconds_bucket", "search_api_requests_total"):
        assert name in names, "%s missing from /metrics" % name
    assert find(s, "chronik_produce_requests_total")[0] >= 1
    assert find(s, "chronik_fetch_requests_total")[0] >= 1
    assert find(s, "chronik_log_end_offset", topic=t, partition=0) == [4.0]
    assert find(s, "chronik_log_end_offset", topic=t, partition=1) == [3.0]
    health_ok = find(s, "chronik_http_requests_total", method="GET", route="/health", status=200)
    assert health_ok and health_ok[0] >= 3, [x for x in s if x[0] == "chronik_http_requests_total"]
    assert find(s, "chronik_http_requests_total", method="POST", route="/topics", status=201)
    assert any(v >= 1 for n, l, v in s if n == "chronik_http_requests_total" and l.get("status") == "404")
    assert any(l.get("route") == "/_sql" for n, l, v in s if n == "chronik_http_request_duration_seconds_bucket")
    assert find(s, "search_api_requests_total", method="GET", endpoint="/health", status=200)


# --------------------------------------------------------------------------- topics
def test_topics_crud_and_kafka_consistency(api):
    t = unique_topic("crud")
    r = http(api, "POST", "/topics", {"name": t, "partitions": 2,
                                      "config": {"columnar.enabled": "true", "retention.ms": "3600000"}})
    d = expect(r, 201)
    assert (d["name"], d["partitions"], d["replication_factor"]) == (t, 2, 1), d
    assert isinstance(d["topic_id"], str) and d["topic_id"], d
    assert d["config"]["columnar.enabled"] == "true" and d["config"]["retention.ms"] == "3600000", d
    col = d["capabilities"]["columnar"]
    assert col["enabled"] is True and col["tables"] == [sql_name(t), sql_name(t) + "_hot", sql_name(t) + "_cold"], d
    assert d["capabilities"]["searchable"]["enabled"] is False and d["capabilities"]["vector"]["enabled"] is False
    assert [p["partition"] for p in d["partition_info"]] == [0, 1], d

    # Kafka sees the topic and its configs
    assert t in kafka_topics(api)
    cfg = kafka_configs(api, t)
    assert cfg["columnar.enabled"] == "true" and cfg["retention.ms"] == "3600000", cfg

    # the tables exist and are empty
    wait_count(api, sql_name(t), 0)
    assert {sql_name(t), sql_name(t) + "_hot", sql_name(t) + "_cold"} <= table_names(api)

    produce_json(api, t, [{"n": i} for i in range(5)], partition=lambda i: i % 2)
    wait_count(api, sql_name(t), 5)

    # GET /topics: explicit configs only
    listed = {x["name"]: x for x in expect(http(api, "GET", "/topics"), 200)["topics"]}
    assert t in listed, listed.keys()
    x = listed[t]
    assert (x["partitions"], x["replication_factor"], x["topic_id"]) == (2, 1, d["topic_id"]), x
    assert x["config"] == {"columnar.enabled": "true", "retention.ms": "3600000"}, x
    assert x["capabilities"]["columnar"]["enabled"] is True, x

    # GET /topics/{name}: all effective configs, capability status, partition info
    def caught_up():
        info = topic_info(api, t)
        return info if info["capabilities"]["columnar"].get("lag") == 0 else None

    info = wait_for(caught_up, 10, 0.1, "columnar lag 0")
    assert info["config"]["cleanup.policy"] == "delete" and info["config"]["retention.ms"] == "3600000", info
    col = info["capabilities"]["columnar"]
    assert col["status"] == "ok", col
    assert [(p["partition"], p["visible_offset"], p["high_watermark"], p["lag"]) for p in col["partitions"]] == [
        (0, 3, 3, 0), (1, 2, 2, 0)], col
    # the row statistics follow within about a second
    wait_for(lambda: (lambda c: c["hot_rows"] + c["cold_rows"] == 5)(topic_info(api, t)["capabilities"]["columnar"]),
             10, 0.1, "hot_rows + cold_rows == 5")
    assert isinstance(col["cold_files"], int) and isinstance(col["cold_bytes"], int), col
    assert "n:int64" in col["json_schema"], col
    pi = {p["partition"]: p for p in info["partition_info"]}
    assert (pi[0]["log_start_offset"], pi[0]["log_end_offset"], pi[0]["high_watermark"]) == (0, 3, 3), pi
    assert (pi[1]["log_end_offset"], pi[1]["high_watermark"], pi[1]["leader"]) == (2, 2, 1), pi
    assert pi[0]["size_bytes"] > 0, pi

    # config changes: PUT, PATCH, POST; null resets to the default
    d = expect(http(api, "PUT", "/topics/%s/config" % t, {"config": {"retention.ms": "7200000"}}), 200)
    assert d["config"]["retention.ms"] == "7200000" and d["config"]["columnar.enabled"] == "true", d
    assert kafka_configs(api, t)["retention.ms"] == "7200000"
    d = expect(http(api, "PATCH", "/topics/%s/config" % t, {"config": {"retention.ms": None}}), 200)
    assert d["config"]["retention.ms"] == "604800000", d
    assert kafka_configs(api, t)["retention.ms"] == "604800000"
    assert "retention.ms" not in {x["name"]: x for x in http(api, "GET", "/topics").body["topics"]}[t]["config"]
    d = expect(http(api, "POST", "/topics/%s/config" % t, {"config": {"retention.bytes": 1048576}}), 200)
    assert d["config"]["retention.bytes"] == "1048576", d
    assert d["config"]["columnar.enabled"] == "true"
    assert count(api, sql_name(t)) == 5  # columnar unaffected by other config changes

    # delete over HTTP: gone from HTTP, Kafka metadata and SQL
    d = expect(http(api, "DELETE", "/topics/" + t), 200)
    assert d == {"name": t, "deleted": True}, d
    expect(http(api, "GET", "/topics/" + t), 404, "TopicNotFound")
    assert t not in {x["name"] for x in http(api, "GET", "/topics").body["topics"]}
    wait_for(lambda: t not in kafka_topics(api), 10, 0.2, "Kafka metadata without the deleted topic")
    wait_for(lambda: sql_name(t) not in table_names(api), 10, 0.1, "SQL tables of the deleted topic gone")
    expect(sql_resp(api, "SELECT count(*) FROM %s" % sql_name(t)), 400, "QueryError")
    expect(http(api, "DELETE", "/topics/" + t), 404, "TopicNotFound")


def test_topic_created_by_kafka_appears_over_http(api):
    t = unique_topic("kc")
    a = kp_admin(api)
    try:
        a.create_topics([NewTopic(t, 4, 1, topic_configs={"columnar.enabled": "true"})], timeout_ms=15000)
    finally:
        a.close()
    listed = {x["name"]: x for x in expect(http(api, "GET", "/topics"), 200)["topics"]}
    assert t in listed
    assert listed[t]["partitions"] == 4 and listed[t]["config"] == {"columnar.enabled": "true"}, listed[t]
    info = topic_info(api, t)
    assert [p["partition"] for p in info["partition_info"]] == [0, 1, 2, 3]
    assert info["capabilities"]["columnar"]["enabled"] is True
    produce_json(api, t, [{"p": i} for i in range(8)], partition=lambda i: i % 4)
    wait_count(api, sql_name(t), 8)
    assert tuples(api, "SELECT _partition, count(*) FROM %s GROUP BY 1 ORDER BY 1" % sql_name(t)) == [
        (0, 2), (1, 2), (2, 2), (3, 2)]
    # an auto-created topic (produce to an unknown name) is listed too, without columnar
    auto = unique_topic("auto")
    produce_json(api, auto, [{"a": 1}])
    info = topic_info(api, auto)
    assert info["partitions"] == 3 and info["capabilities"]["columnar"]["enabled"] is False, info


def test_create_variants(api):
    # bool / number config values are accepted and stored as strings
    t = unique_topic("var")
    d = expect(http(api, "POST", "/topics", {"name": t, "config": {"columnar.enabled": True, "retention.ms": 3600000}}),
               201)
    assert d["partitions"] == 3, d  # the server default (CHRONIK_DEFAULT_PARTITIONS)
    assert d["config"]["columnar.enabled"] == "true" and d["config"]["retention.ms"] == "3600000", d
    # replication_factor 1 is fine
    t2 = unique_topic("var")
    d = expect(http(api, "POST", "/topics", {"name": t2, "partitions": 1, "replication_factor": 1}), 201)
    assert d["replication_factor"] == 1 and d["capabilities"]["columnar"]["enabled"] is False
    # without Content-Type (raw http.client), and with curl -d (form content type)
    t3 = unique_topic("var")
    st, _h, body = raw_request(api, "POST", "/topics", json.dumps({"name": t3, "partitions": 1}).encode())
    assert st == 201, body
    assert json.loads(body)["name"] == t3
    t4 = unique_topic("var")
    rc, out, err = curl(api, "curl -s -X POST http://localhost:6092/topics -d '{\"name\": \"%s\", \"partitions\": 2}'"
                        % t4)
    assert rc == 0 and json.loads(out)["partitions"] == 2, (rc, out, err)
    for name in (t3, t4):
        assert name in kafka_topics(api)


# --------------------------------------------------------------------------- errors
def test_topic_errors(api):
    t = unique_topic("err")
    create_topic(api, t, 1)
    expect(http(api, "POST", "/topics", {"name": t}), 409, "TopicAlreadyExists")
    expect(http(api, "POST", "/topics", {"name": t, "partitions": 5}), 409, "TopicAlreadyExists")
    n = unique_topic("err")
    cases = [
        ({"name": n, "config": {"columnar.enabled": "maybe"}}, 400, "InvalidConfig"),
        ({"name": n, "config": {"no.such.config": "1"}}, 400, "InvalidConfig"),
        ({"name": n, "config": {"retention.ms": "soon"}}, 400, "InvalidConfig"),
        ({"name": n, "config": {"columnar.compression": "brotli"}}, 400, "InvalidConfig"),
        ({"name": "bad name!"}, 400, "InvalidTopic"),
        ({"name": "x" * 300}, 400, "InvalidTopic"),
        ({"name": ".."}, 400, "InvalidTopic"),
        ({"name": n, "replication_factor": 3}, 400, "InvalidReplicationFactor"),
        ({"partitions": 3}, 422, "InvalidRequest"),
        ({"name": 5}, 422, "InvalidRequest"),
        ({"name": n, "partitions": 0}, 422, "InvalidRequest"),
        ({"name": n, "partitions": -1}, 422, "InvalidRequest"),
        ({"name": n, "partitions": "3"}, 422, "InvalidRequest"),
        ({"name": n, "partitions": 1.5}, 422, "InvalidRequest"),
        ({"name": n, "config": "columnar.enabled=true"}, 422, "InvalidRequest"),
        ({"name": n, "config": ["columnar.enabled"]}, 422, "InvalidRequest"),
        ([n], 422, "InvalidRequest"),
    ]
    for body, status, etype in cases:
        r = http(api, "POST", "/topics", body)
        assert r.status == status and r.error_type == etype, "POST /topics %r -> %r" % (body, r)
    expect(http(api, "POST", "/topics", '{"name": "x",'), 400, "InvalidJson")
    expect(http(api, "POST", "/topics", "not json at all"), 400, "InvalidJson")
    # none of the failed creations made a topic
    names = {x["name"] for x in http(api, "GET", "/topics").body["topics"]}
    assert n not in names and "bad name!" not in names and n not in kafka_topics(api)

    expect(http(api, "GET", "/topics/no-such-topic-x"), 404, "TopicNotFound")
    expect(http(api, "DELETE", "/topics/no-such-topic-x"), 404, "TopicNotFound")
    expect(http(api, "PUT", "/topics/no-such-topic-x/config", {"config": {"retention.ms": "1"}}), 404,
           "TopicNotFound")
    expect(http(api, "PUT", "/topics/%s/config" % t, {"config": {"columnar.enabled": "maybe"}}), 400, "InvalidConfig")
    expect(http(api, "PUT", "/topics/%s/config" % t, {"config": {"no.such.config": "1"}}), 400, "InvalidConfig")
    expect(http(api, "PUT", "/topics/%s/config" % t, {"config": "x"}), 422, "InvalidRequest")
    expect(http(api, "PUT", "/topics/%s/config" % t, {"config": ["retention.ms"]}), 422, "InvalidRequest")
    expect(http(api, "PUT", "/topics/%s/config" % t, [1]), 422, "InvalidRequest")
    expect(http(api, "PUT", "/topics/%s/config" % t, "{"), 400, "InvalidJson")
    # the failed changes changed nothing
    info = topic_info(api, t)
    assert info["config"]["columnar.enabled"] == "true" and info["config"]["retention.ms"] == "604800000", info
    # a bare map of changes (no "config" wrapper) is accepted too
    d = expect(http(api, "PUT", "/topics/%s/config" % t, {"retention.ms": "3600000"}), 200)
    assert d["config"]["retention.ms"] == "3600000", d


def test_sql_errors(api):
    t = unique_topic("sqlerr")
    create_topic(api, t, 1)
    wait_count(api, sql_name(t), 0)
    cases = [
        ({}, 422, "InvalidRequest"),
        ({"query": 5}, 422, "InvalidRequest"),
        ({"query": None}, 422, "InvalidRequest"),
        ({"query": ["SELECT 1"]}, 422, "InvalidRequest"),
        ({"query": "SELECT 1", "limit": "x"}, 422, "InvalidRequest"),
        ({"query": "SELECT 1", "timeout_secs": "x"}, 422, "InvalidRequest"),
        ({"sql": "SELECT 1"}, 422, "InvalidRequest"),
        ({"query": "SELEKT 1"}, 400, "QueryError"),
        ({"query": "SELECT * FROM no_such_table_x"}, 400, "QueryError"),
        ({"query": "SELECT no_such_column FROM %s" % sql_name(t)}, 400, "QueryError"),
        ({"query": "SELECT 1/0::INTEGER, error('boom')"}, 400, "QueryError"),
        ({"query": "DROP VIEW %s" % sql_name(t)}, 400, "QueryError"),
    ]
    for body, status, etype in cases:
        r = http(api, "POST", "/_sql", body)
        assert r.status == status and r.error_type == etype, "POST /_sql %r -> %r" % (body, r)
    r = http(api, "POST", "/_sql", '{"query": "SELECT 1"')
    expect(r, 400, "InvalidJson")
    expect(http(api, "POST", "/_sql", b"\xff\xfe{}"), 400, "InvalidJson")
    expect(http(api, "POST", "/_sql", ""), 400, "InvalidJson")
    # a topic without columnar: the message says so
    plain = unique_topic("plain")
    create_topic(api, plain, 1, columnar=False)
    r = sql_resp(api, "SELECT * FROM %s" % sql_name(plain))
    expect(r, 400, "QueryError")
    assert "columnar.enabled" in r.body["error"], r

    # explain
    b = expect(http(api, "POST", "/_sql/explain", {"query": "SELECT count(*) FROM %s" % sql_name(t)}), 200)
    assert isinstance(b["logical_plan"], str) and b["logical_plan"], b
    assert "physical_plan" in b and b["physical_plan"] is None, b
    b = expect(http(api, "POST", "/_sql/explain", {"query": "SELECT count(*) FROM %s" % sql_name(t),
                                                   "physical": True}), 200)
    assert isinstance(b["logical_plan"], str) and isinstance(b["physical_plan"], str) and b["physical_plan"], b
    expect(http(api, "POST", "/_sql/explain", {"query": "SELEKT"}), 400, "ExplainError")
    expect(http(api, "POST", "/_sql/explain", {}), 422, "InvalidRequest")
    expect(http(api, "POST", "/_sql/explain", "{"), 400, "InvalidJson")

    # tables and describe
    tabs = expect(http(api, "GET", "/_sql/tables"), 200)["tables"]
    mine = sorted((x["name"], x["table_type"], x["topic"]) for x in tabs if x["topic"] == t)
    st = sql_name(t)
    assert mine == sorted([(st, "TOPIC", t), (st + "_hot", "HOT", t), (st + "_cold", "COLD", t)]), mine
    assert not [x for x in tabs if x["topic"] == plain]
    for name, kind in ((st, "TOPIC"), (st + "_hot", "HOT"), (st + "_cold", "COLD")):
        d = expect(http(api, "GET", "/_sql/describe/" + name), 200)
        assert (d["table"], d["topic"], d["table_type"]) == (name, t, kind), d
        assert [c["name"] for c in d["columns"]][:8] == ["_topic", "_partition", "_offset", "_timestamp",
                                                        "_timestamp_type", "_key", "_value", "_headers"], d
        assert all(isinstance(c["nullable"], bool) and isinstance(c["data_type"], str) for c in d["columns"]), d
    expect(http(api, "GET", "/_sql/describe/no_such_table_x"), 404, "TableNotFound")
    expect(http(api, "GET", "/_sql/describe/" + sql_name(plain)), 404, "TableNotFound")
    # explain of an unknown table is an ExplainError like any other explain failure
    expect(http(api, "POST", "/_sql/explain", {"query": "SELECT * FROM no_such_table_x"}), 400, "ExplainError")


def test_unknown_paths_and_methods(api):
    for method, path in (("GET", "/nope/x/y"), ("GET", "/topics/a/b/c"), ("POST", "/_sql/nope"),
                         ("GET", "/health/x"), ("DELETE", "/x/y")):
        r = http(api, method, path)
        assert r.status == 404 and r.raw == b"", "%s %s -> %r" % (method, path, r)
    for method, path in (("DELETE", "/health"), ("POST", "/health"), ("GET", "/_sql"), ("PUT", "/_sql"),
                         ("PUT", "/topics"), ("DELETE", "/topics"), ("POST", "/_sql/tables"),
                         ("DELETE", "/_sql/describe/x"), ("GET", "/topics/x/config"), ("PUT", "/topics/x"),
                         ("POST", "/metrics"),
                         # a one-segment path is an index (PUT/DELETE /{index}), as upstream
                         ("GET", "/nope"), ("POST", "/nope")):
        r = http(api, method, path, b"{}" if method in ("POST", "PUT") else None)
        assert r.status == 405, "%s %s -> %r" % (method, path, r)
    expect(http(api, "GET", "/health"), 200)


def test_body_size_limit(api):
    limit = 16 * 1024 * 1024
    # just under the limit: accepted (a query padded with a comment)
    pad = limit - 1000
    body = json.dumps({"query": "SELECT 1 AS x -- " + "p" * pad}).encode()
    assert len(body) < limit
    st, _h, raw = raw_request(api, "POST", "/_sql", body, {"Content-Type": "application/json"}, timeout=60)
    assert st == 200 and json.loads(raw)["rows"] == [{"x": 1}], (st, raw[:300])
    # announced over the limit: 413 without the body being read
    with socket.create_connection(("127.0.0.1", api.api_port), timeout=10) as s:
        s.sendall(b"POST /_sql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % (limit + 1))
        resp = recv_response_head(s)
    assert resp.startswith(b"HTTP/1.1 413") or resp.startswith(b"HTTP/1.0 413"), resp[:200]
    # really sent over the limit
    big = b'{"query": "SELECT 1 -- ' + b"p" * (limit + 10) + b'"}'
    status = send_big(api, big)
    assert status == 413, status
    expect(http(api, "GET", "/health"), 200)


def send_big(srv, body):
    """POST body; returns the response status (the server may stop reading once it knows)."""
    s = socket.create_connection(("127.0.0.1", srv.api_port), timeout=20)
    try:
        s.sendall(b"POST /_sql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                  % len(body))
        try:
            s.sendall(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        head = recv_response_head(s)
        m = re.match(rb"HTTP/1\.[01] (\d{3})", head)
        assert m, head[:200]
        return int(m.group(1))
    finally:
        s.close()


def recv_response_head(s):
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    return data


# --------------------------------------------------------------------------- content types
def raw_request(srv, method, path, body=None, headers=None, timeout=30):
    """http.client without any default headers (urllib adds a Content-Type)."""
    c = httpclient.HTTPConnection("127.0.0.1", srv.api_port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def test_json_body_with_any_content_type(api):
    body = json.dumps({"query": "SELECT 40 + 2 AS x"}).encode()
    for headers in ({}, {"Content-Type": "application/x-www-form-urlencoded"}, {"Content-Type": "text/plain"},
                    {"Content-Type": "application/json; charset=utf-8"}):
        st, _h, raw = raw_request(api, "POST", "/_sql", body, headers)
        assert st == 200, (headers, st, raw)
        assert json.loads(raw)["rows"] == [{"x": 42}], raw
    # curl -d (application/x-www-form-urlencoded), as in the README
    rc, out, err = curl(api, """curl -s -X POST http://localhost:6092/_sql -d '{"query": "SELECT 7 AS y"}'""")
    assert rc == 0, err
    assert json.loads(out)["rows"] == [{"y": 7}], out


# --------------------------------------------------------------------------- connections
def test_keep_alive(api):
    c = httpclient.HTTPConnection("127.0.0.1", api.api_port, timeout=30)
    try:
        sock = None
        reqs = [("GET", "/health", None, 200), ("POST", "/_sql", b'{"query": "SELECT 1 AS a"}', 200),
                ("GET", "/topics", None, 200), ("GET", "/nope/x/y", None, 404),
                ("POST", "/_sql", b'{"query": "SELEKT"}', 400), ("POST", "/_sql", b'{"query": ', 400),
                ("DELETE", "/health", None, 405), ("GET", "/metrics", None, 200),
                ("POST", "/_sql", b'{"query": "SELECT 2 AS a"}', 200)]
        for method, path, body, status in reqs * 2:
            c.request(method, path, body=body)
            r = c.getresponse()
            data = r.read()
            assert r.status == status, (method, path, r.status, data[:300])
            assert (r.getheader("Connection") or "").lower() != "close", (method, path, r.getheaders())
            assert c.sock is not None, "the server closed the connection after %s %s" % (method, path)
            if sock is None:
                sock = c.sock
            assert c.sock is sock, "a new connection was opened for %s %s" % (method, path)
            if path == "/_sql" and status == 200:
                assert json.loads(data)["rows"][0]["a"] in (1, 2)
    finally:
        c.close()


def test_many_concurrent_clients(api):
    t = unique_topic("conc")
    create_topic(api, t, 3)
    produce_json(api, t, [{"n": i} for i in range(30)], partition=lambda i: i % 3)
    wait_count(api, sql_name(t), 30)
    errors = []
    done = []
    start = threading.Barrier(50)

    def client(k):
        try:
            start.wait(30)
            for i in range(10):
                if i % 2:
                    b = sql(api, "SELECT %d AS k, %d AS i, %d * 1000 + %d AS v" % (k, i, k, i))
                    assert b["rows"] == [{"k": k, "i": i, "v": k * 1000 + i}], b
                else:
                    b = sql(api, "SELECT count(*) AS n, sum(n) AS s FROM %s WHERE n >= %d" % (sql_name(t), i))
                    assert b["rows"] == [{"n": 30 - i, "s": sum(range(i, 30))}], b
            done.append(k)
        except Exception as e:  # reported below
            errors.append((k, repr(e)[:500]))

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(50)]
    t0 = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not errors, "%d of 50 clients failed, e.g. %r" % (len(errors), errors[:3])
    assert len(done) == 50
    print("50 clients x 10 queries in %.1f s" % (time.monotonic() - t0))
    expect(http(api, "GET", "/health"), 200)


def check_response(data):
    """None if data is one well-formed HTTP/1.x response (status >= 400), else what is wrong."""
    m = re.match(rb"HTTP/1\.[01] (\d{3}) [^\r\n]*\r\n((?:[^\r\n]+\r\n)*)\r\n", data)
    if not m:
        return "not an HTTP response: %r" % data[:200]
    if int(m.group(1)) < 400:
        return "status %s for a malformed request" % m.group(1).decode()
    headers = dict(re.findall(rb"([^:\r\n]+):[ \t]*([^\r\n]*)\r\n", m.group(2)))
    headers = {k.lower(): v for k, v in headers.items()}
    body = data[m.end():]
    if b"content-length" in headers and len(body) != int(headers[b"content-length"]):
        return "Content-Length %s but %d bytes follow the header: %r" % (
            headers[b"content-length"].decode(), len(body), data[:400])
    return None


def exchange(srv, payload, shut_wr=False, timeout=10):
    """Sends payload on a new connection and reads until the server closes it.
    Returns (data, closed); closed False means nothing within timeout after the last byte."""
    s = socket.create_connection(("127.0.0.1", srv.api_port), timeout=timeout)
    data = b""
    try:
        try:
            s.sendall(payload)
            if shut_wr:
                s.shutdown(socket.SHUT_WR)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return data, True
                data += chunk
        except (BrokenPipeError, ConnectionResetError):
            return data, True
        except socket.timeout:
            return data, False
    finally:
        s.close()


MALFORMED = [
    ("NUL bytes and garbage", b"\x00\x01\x02GARBAGE\r\n\r\n"),
    ("not HTTP", b"NOT AN HTTP REQUEST\r\n\r\n"),
    ("method only", b"GET\r\n\r\n"),
    ("HTTP/9.9", b"GET / HTTP/9.9\r\n\r\n"),
    ("Content-Length abc", b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"),
    ("Content-Length -5", b"POST /_sql HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"),
    ("header without colon", b"GET /health HTTP/1.1\r\nBad Header Without Colon\r\n\r\n"),
    ("200 KB header", b"GET /health HTTP/1.1\r\nX-Long: " + b"a" * 200000 + b"\r\n\r\n"),
    ("100 KB path", b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\n\r\n"),
    ("5000 headers", b"GET /health HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(5000)) + b"\r\n"),
    ("bad chunk size", b"POST /_sql HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n0\r\n\r\n"),
    ("all byte values", bytes(range(256)) * 64),
]


def test_malformed_requests_do_not_break_the_server(api):
    """Each malformed request gets a well-formed error response or a close, promptly (10 s),
    and the server keeps serving."""
    problems = []
    for what, payload in MALFORMED:
        data, closed = exchange(api, payload)
        if not closed and b"\r\n\r\n" not in data:
            problems.append("%s: neither a response nor a close within 10 s (got %r)" % (what, data[:200]))
        elif data:
            why = check_response(data)
            if why:
                problems.append("%s: %s" % (what, why))
        expect(http(api, "GET", "/health"), 200)
    # a truncated body, then EOF
    data, closed = exchange(api, b"POST /_sql HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"query\"", True)
    if not closed:
        problems.append("truncated body + EOF: no close within 10 s")
    # a client that connects and sends nothing does not block others
    idle = socket.create_connection(("127.0.0.1", api.api_port), timeout=10)
    try:
        expect(http(api, "GET", "/health"), 200)
        assert scalar(api, "SELECT 1 AS x") == 1
    finally:
        idle.close()
    assert rows(api, "SELECT 2 AS y") == [{"y": 2}]
    assert not problems, "\n".join(problems)


def test_conflicting_content_length_is_rejected(api):
    """Two different Content-Length headers: 400 and close (RFC 9112 section 6.3), not a
    guess at the body length (request smuggling)."""
    data, closed = exchange(api, b"POST /_sql HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n"
                                 b"\r\n12345", timeout=5)
    assert data.startswith(b"HTTP/1.1 400") and closed, "got %r (closed: %s)" % (data[:300], closed)
