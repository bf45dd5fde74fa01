"""SQL over topics (POST /_sql and friends on the unified HTTP API, embedded DuckDB).

Tables of a columnar topic t: t (each record exactly once), t_hot (recent rows in memory),
t_cold (Parquet files). Most tests share one server that writes hot rows to Parquet after
1 s (CHRONIK_COLUMNAR_FLUSH_INTERVAL_MS=1000), so both tables take part; tests that need
other settings, restarts or kills start servers of their own.
"""
import base64
import json
import random
import shutil
import threading
import time
from decimal import Decimal

import pytest

from conftest import ck_admin, kp_admin, unique_topic, wait_for
from http_util import (b64, count, create_topic, curl, curl_json, expect, high_watermarks, http,
                       json_producer, module_api_server, not_yet, produce_json, raw_producer, rows, scalar,
                       sql, sql_name, sql_resp, timed, topic_info, tuples, wait_count, wait_http)
from numbered import NumberedSender, kill9_under_load

SYSTEM_COLUMNS = [
    ("_topic", "VARCHAR"), ("_partition", "INTEGER"), ("_offset", "BIGINT"), ("_timestamp", "TIMESTAMP"),
    ("_timestamp_type", "TINYINT"), ("_key", "BLOB"), ("_value", "BLOB"), ("_headers", "MAP(VARCHAR, BLOB)"),
]
BIG_LIMIT = 1000000


@pytest.fixture(scope="module")
def srv(request, tmp_path_factory):
    yield from module_api_server(request, tmp_path_factory, "sql", {"CHRONIK_COLUMNAR_FLUSH_INTERVAL_MS": "1000"})


def describe(srv, table):
    r = http(srv, "GET", "/_sql/describe/" + table)
    body = expect(r, 200)
    assert body["table"] == table, r
    return [(c["name"], c["data_type"]) for c in body["columns"]]


def typed_columns(srv, table):
    cols = describe(srv, table)
    assert cols[:len(SYSTEM_COLUMNS)] == SYSTEM_COLUMNS, cols
    return dict(cols[len(SYSTEM_COLUMNS):])


def send_raw(srv, topic, values, partition=0, **kw):
    p = raw_producer(srv, **kw)
    try:
        futs = [p.send(topic, value=v, partition=partition) for v in values]
        p.flush(30)
        return [f.get(timeout=30) for f in futs]
    finally:
        p.close(10)


# --------------------------------------------------------------------------- README
README_CREATE = """curl -X POST http://localhost:6092/topics \\
  -H "Content-Type: application/json" \\
  -d '{"name": "orders", "partitions": 3, "config": {"columnar.enabled": "true"}}'"""
README_Q_GROUP = """curl -X POST http://localhost:6092/_sql \\
  -d '{"query": "SELECT city, COUNT(*) as cnt, AVG(amount) FROM orders GROUP BY city ORDER BY cnt DESC LIMIT 10"}'"""
README_Q_HOT = """curl -X POST http://localhost:6092/_sql \\
  -d '{"query": "SELECT * FROM orders_hot WHERE amount > 100 LIMIT 10"}'"""
README_Q_COLD = """curl -X POST http://localhost:6092/_sql \\
  -d '{"query": "SELECT * FROM orders_cold WHERE _partition = 0 LIMIT 10"}'"""
README_OPS_QUERY = """curl -X POST http://localhost:6092/_sql \\
  -d '{"query": "SELECT city, COUNT(*), AVG(amount) FROM orders GROUP BY city"}'"""


def test_readme_sql_api(srv):
    """README "SQL API": the curl commands verbatim; results checked against what was sent."""
    created = curl_json(srv, README_CREATE)
    assert created.get("name") == "orders", created
    assert created["partitions"] == 3, created
    assert created["capabilities"]["columnar"]["enabled"] is True, created
    assert created["config"]["columnar.enabled"] == "true", created

    cities = ["Berlin"] * 12 + ["Paris"] * 8 + ["Tokyo"] * 5 + ["Lima"] * 2
    orders = [{"user_id": 1000 + i, "amount": round(20.0 + (i * 37 % 23) * 7.25, 2), "city": c}
              for i, c in enumerate(cities)]
    random.Random(7).shuffle(orders)
    from kafka import KafkaProducer
    producer = KafkaProducer(bootstrap_servers=srv.bootstrap, value_serializer=lambda v: json.dumps(v).encode(),
                             acks="all")
    futs = [producer.send("orders", o, partition=i % 3) for i, o in enumerate(orders)]
    producer.flush(30)
    metas = [f.get(30) for f in futs]
    producer.close(10)
    by_pos = {(m.partition, m.offset): o for m, o in zip(metas, orders)}

    # "Recent data": the rows are in orders_hot right after the acks (for ~1 s here)
    def hot_rows():
        out = curl_json(srv, README_Q_HOT)
        if "rows" not in out:
            # before the first record is visible, orders_hot has no column `amount` yet
            assert out.get("error_type") == "QueryError" and "amount" in out.get("error", ""), out
            return None
        return out if out["rows"] else None

    hot = wait_for(hot_rows, 10, 0.02, "rows in orders_hot")
    assert hot["row_count"] == len(hot["rows"]) <= 10
    for row in hot["rows"]:
        assert row["amount"] > 100, row
        assert row["_topic"] == "orders"
        sent = by_pos[(row["_partition"], row["_offset"])]
        assert json.loads(base64.b64decode(row["_value"])) == sent, row
        assert (row["user_id"], row["city"], row["amount"]) == (sent["user_id"], sent["city"], sent["amount"])
    assert {"_topic", "_partition", "_offset", "_timestamp", "_key", "_value", "user_id", "amount",
            "city"} <= set(hot["columns"]), hot["columns"]

    # the GROUP BY query once everything is visible
    wait_count(srv, "orders", len(orders))
    expected = {}
    for o in orders:
        expected.setdefault(o["city"], []).append(o["amount"])

    def check_group(out):
        assert out["columns"][:2] == ["city", "cnt"] and len(out["columns"]) == 3, out
        avg_col = out["columns"][2]
        assert [(r["city"], r["cnt"]) for r in out["rows"]] == [
            ("Berlin", 12), ("Paris", 8), ("Tokyo", 5), ("Lima", 2)], out
        for r in out["rows"]:
            amounts = expected[r["city"]]
            assert r[avg_col] == pytest.approx(sum(amounts) / len(amounts)), r
        assert out["truncated"] is False

    check_group(curl_json(srv, README_Q_GROUP))

    # "Historical data": once the hot rows went to Parquet (after ~1 s here)
    def cold_rows():
        out = curl_json(srv, README_Q_COLD)
        assert "rows" in out, out
        return out if out["rows"] else None

    cold = wait_for(cold_rows, 20, 0.1, "rows in orders_cold")
    assert cold["row_count"] == len(cold["rows"]) <= 10
    for row in cold["rows"]:
        assert row["_partition"] == 0, row
        sent = by_pos[(0, row["_offset"])]
        assert (row["user_id"], row["city"], row["amount"]) == (sent["user_id"], sent["city"], sent["amount"])
        assert json.loads(base64.b64decode(row["_value"])) == sent
    # eventually everything is cold: hot + cold == unified, and partition 0 is complete in cold
    wait_count(srv, "orders_cold", len(orders))
    assert count(srv, "orders_hot") == 0
    assert count(srv, "orders") == len(orders)
    assert count(srv, "orders_cold", "WHERE _partition = 0") == sum(1 for (p, _o) in by_pos if p == 0)
    check_group(curl_json(srv, README_Q_GROUP))  # the same answer from Parquet


def test_readme_operational_analytics(own):
    """README "Operational Analytics": produce with kafka-python to the auto-created topic
    'orders' (CHRONIK_DEFAULT_COLUMNAR=true), then the curl query verbatim."""
    s = own("opsanalytics", CHRONIK_DEFAULT_COLUMNAR="true")
    from kafka import KafkaProducer
    producer = KafkaProducer(bootstrap_servers=s.bootstrap, value_serializer=lambda v: json.dumps(v).encode())
    # Produce events from your application (any Kafka client)
    producer.send('orders', {'user_id': 42, 'amount': 99.50, 'city': 'Berlin'})
    producer.flush(30)
    producer.close(10)

    last = []

    def answered():
        rc, out, err = curl(s, README_OPS_QUERY)
        last[:] = [rc, out, err]
        if rc != 0:
            return None
        try:
            body = json.loads(out)
        except ValueError:
            return None
        return body if body.get("rows") else None

    try:
        body = wait_for(answered, 15, 0.05, "the README query to answer")
    except AssertionError:
        raise AssertionError("curl never got rows; last: %r" % (last,))
    assert len(body["columns"]) == 3 and body["columns"][0] == "city", body
    assert [[r[c] for c in body["columns"]] for r in body["rows"]] == [["Berlin", 1, 99.5]], body
    info = topic_info(s, "orders")
    assert info["capabilities"]["columnar"]["enabled"] is True
    assert info["config"]["columnar.enabled"] == "true"


# --------------------------------------------------------------------------- typing
def test_type_inference_and_widening(srv):
    t = unique_topic("types")
    st = sql_name(t)
    create_topic(srv, t, 1)
    r1 = (b'{"i": 1, "f": 1.5, "b": true, "s": "gr\\u00fc\\u00dfe \xe2\x9c\x93", "o": {"k": [1, 2]}, '
          b'"a": [1, "two", null], "n": null, "w1": 1, "w2": 42, "w3": true, "nl": null, '
          b'"big": 9007199254740993, "neg": -7, "e": 1e3, "z": 0.0, "huge": 18446744073709551616}')
    send_raw(srv, t, [r1])
    wait_count(srv, st, 1)
    # the first row goes to Parquet (after ~1 s) before the widening record arrives
    wait_count(srv, st + "_cold", 1)
    cols = typed_columns(srv, st)
    assert cols == {"i": "BIGINT", "f": "DOUBLE", "b": "BOOLEAN", "s": "VARCHAR", "o": "VARCHAR", "a": "VARCHAR",
                    "n": "VARCHAR", "w1": "BIGINT", "w2": "BIGINT", "w3": "BOOLEAN", "nl": "VARCHAR",
                    "big": "BIGINT", "neg": "BIGINT", "e": "DOUBLE", "z": "DOUBLE", "huge": "DOUBLE"}, cols
    for tab in (st + "_hot", st + "_cold"):
        assert typed_columns(srv, tab) == cols
    row = rows(srv, "SELECT * EXCLUDE (_headers) FROM %s" % st)[0]
    assert (row["i"], row["f"], row["b"], row["s"]) == (1, 1.5, True, "gr\u00fc\u00dfe \u2713"), row
    assert json.loads(row["o"]) == {"k": [1, 2]} and json.loads(row["a"]) == [1, "two", None], row
    assert row["n"] is None and row["nl"] is None, row
    assert (row["w1"], row["w2"], row["w3"]) == (1, 42, True), row
    assert row["big"] == 9007199254740993 and row["neg"] == -7, row
    assert row["e"] == 1000.0 and row["z"] == 0.0 and row["huge"] == 18446744073709551616.0, row

    r2 = (b'{"i": 2, "f": 2.25, "b": false, "s": "y", "o": {}, "a": [], "n": null, "w1": 2.5, "w2": "str", '
          b'"w3": 7, "nl": 5, "big": -1, "neg": 0, "e": 2, "z": -0.5}')
    r3 = b'{"f": "text", "b": 1, "o": 5, "i": 3}'
    send_raw(srv, t, [r2, r3])
    wait_count(srv, st, 3)
    cols = typed_columns(srv, st)
    assert cols == {"i": "BIGINT", "f": "VARCHAR", "b": "VARCHAR", "s": "VARCHAR", "o": "VARCHAR", "a": "VARCHAR",
                    "n": "VARCHAR", "w1": "DOUBLE", "w2": "VARCHAR", "w3": "VARCHAR", "nl": "BIGINT",
                    "big": "BIGINT", "neg": "BIGINT", "e": "DOUBLE", "z": "DOUBLE", "huge": "DOUBLE"}, cols
    assert typed_columns(srv, st + "_hot") == cols and typed_columns(srv, st + "_cold") == cols
    q = "SELECT _offset, i, f, b, s, o, a, n, w1, w2, w3, nl, big, e, z FROM %s ORDER BY _offset"
    got = tuples(srv, q % st)
    assert got[0][:4] == (0, 1, "1.5", "true"), got
    assert got[1][:4] == (1, 2, "2.25", "false"), got
    assert got[2][:4] == (2, 3, "text", "1"), got
    assert [g[4] for g in got] == ["gr\u00fc\u00dfe \u2713", "y", None]
    assert json.loads(got[0][5]) == {"k": [1, 2]} and json.loads(got[1][5]) == {} and got[2][5] == "5", got
    assert json.loads(got[1][6]) == [] and got[2][6] is None
    assert [g[7] for g in got] == [None, None, None]
    assert [g[8] for g in got] == [1.0, 2.5, None]
    assert [g[9] for g in got] == ["42", "str", None]
    assert [g[10] for g in got] == ["true", "7", None]
    assert [g[11] for g in got] == [None, 5, None]
    assert [g[12] for g in got] == [9007199254740993, -1, None]
    assert [g[13] for g in got] == [1000.0, 2.0, None]
    assert [g[14] for g in got] == [0.0, -0.5, None]
    # hot and cold tables together give the same rows as the unified table
    union = tuples(srv, ("SELECT * FROM (" + q.replace(" ORDER BY _offset", "") + " UNION ALL " +
                         q.replace(" ORDER BY _offset", "") + ") ORDER BY _offset") % (st + "_hot", st + "_cold"))
    assert union == got
    # typed columns are usable as such
    assert scalar(srv, "SELECT sum(w1) AS s FROM %s" % st) == 3.5
    assert scalar(srv, "SELECT count(*) AS n FROM %s WHERE w2 = '42'" % st) == 1
    schema = topic_info(srv, t)["capabilities"]["columnar"]["json_schema"]
    fields = dict(f.rstrip("?").split(":") for f in schema.split(","))
    assert fields["i"] == "int64" and fields["w1"] == "float64" and fields["w2"] == "string", schema
    assert fields["nl"] == "int64" and fields["e"] == "float64", schema


def test_schema_evolution(srv):
    t = unique_topic("evo")
    st = sql_name(t)
    create_topic(srv, t, 1)
    send_raw(srv, t, [b'{"a": 1}', b'{"a": 2, "b": "x"}'])
    wait_count(srv, st, 2)
    assert typed_columns(srv, st) == {"a": "BIGINT", "b": "VARCHAR"}
    wait_count(srv, st + "_cold", 2)  # the first rows are in Parquet before the new fields come
    send_raw(srv, t, [b'{"c": true}', b'{"a": 4, "d": 1.5}', b'{"A": 5, "_offset": 999, "": 1, "e": null}'])
    wait_count(srv, st, 5)
    cols = typed_columns(srv, st)
    # "A" is column a; "_offset" (a system column's name) and "" are skipped; "e" (only null) is VARCHAR
    assert cols == {"a": "BIGINT", "b": "VARCHAR", "c": "BOOLEAN", "d": "DOUBLE", "e": "VARCHAR"}, cols
    got = tuples(srv, "SELECT _offset, a, b, c, d FROM %s ORDER BY _offset" % st)
    assert got == [(0, 1, None, None, None), (1, 2, "x", None, None), (2, None, None, True, None),
                   (3, 4, None, None, 1.5), (4, 5, None, None, None)], got
    # the same through the hot and cold tables
    hot_cold = tuples(srv, "SELECT * FROM (SELECT _offset, a, b, c, d FROM %s_hot UNION ALL "
                           "SELECT _offset, a, b, c, d FROM %s_cold) ORDER BY _offset" % (st, st))
    assert hot_cold == got
    # a new column appears after more data went cold, with NULLs for all earlier rows
    wait_count(srv, st + "_cold", 5)
    send_raw(srv, t, [b'{"late": "z", "a": 6}'])
    wait_count(srv, st, 6)
    assert typed_columns(srv, st)["late"] == "VARCHAR"
    assert tuples(srv, "SELECT _offset, late FROM %s ORDER BY _offset" % st) == [
        (0, None), (1, None), (2, None), (3, None), (4, None), (5, "z")]
    assert scalar(srv, "SELECT sum(a) AS s FROM %s" % st) == 18


def test_group_by_on_rows_just_made_visible(srv):
    """Each record brings a new field (a new column); the first GROUP BY answers that see the
    record must give its value (a query racing the worker's append must not read garbage)."""
    t = unique_topic("fresh")
    st = sql_name(t)
    create_topic(srv, t, 1)
    wait_count(srv, st, 0)
    p = json_producer(srv, linger_ms=0)
    wrong = []
    try:
        for i in range(100):
            f = "f%d" % i
            city = ["Berlin", "Paris", "Tokyo"][i % 3]
            p.send(t, {f: city, "n": i}, partition=0).get(30)
            table = st + "_hot" if i % 2 == 0 else st
            q = "SELECT %s AS city, count(*) AS c FROM %s WHERE %s IS NOT NULL GROUP BY %s" % (f, table, f, f)
            deadline = time.monotonic() + 10
            while True:
                r = sql_resp(srv, q)
                if r.status == 200 and r.body["rows"]:
                    break
                assert r.status == 200 or not_yet(r), r
                assert time.monotonic() < deadline, "record %d not visible in %s within 10 s: %r" % (i, table, r)
                time.sleep(0.005)
            if r.body["rows"] != [{"city": city, "c": 1}]:
                wrong.append((i, table, r.body["rows"]))
    finally:
        p.close(10)
    assert not wrong, "%d of 100 first answers were wrong (iteration, table, rows): %r" % (len(wrong), wrong[:10])
    # and later answers are right
    assert tuples(srv, "SELECT f0, f1, f2 FROM %s WHERE n < 3 ORDER BY n" % st) == [
        ("Berlin", None, None), (None, "Paris", None), (None, None, "Tokyo")]


def test_non_json_values_keys_headers_timestamps(srv):
    t = unique_topic("raw")
    st = sql_name(t)
    create_topic(srv, t, 1)
    base_ts = int(time.time() * 1000) - 3600 * 1000
    recs = [
        (b"k0", "plain text \u00e9".encode(), [("h", b"v1"), ("dup", b"1"), ("dup", b"2"), ("empty", b"")]),
        (None, bytes(range(256)), []),
        (b"\x00\xff", b"[1, 2, 3]", [("bin", b"\x00\x01\xfe")]),
        (b"k3", b'"just a string"', []),
        (b"tomb", None, []),
        (b"k5", b'{"x": 1}', [("h", b"other")]),
        (b"k6", b'{"x": 2', []),
        (b"k7", b"", []),
        (b"k8", b'  {"x": 3}  ', []),
        (b"", b'{"x": 4}\n', []),
        (b"k10", b"null", []),
        (b"k11", b"42", []),
    ]
    p = raw_producer(srv)
    futs = [p.send(t, key=k, value=v, headers=h, partition=0, timestamp_ms=base_ts + i)
            for i, (k, v, h) in enumerate(recs)]
    p.flush(30)
    offs = [f.get(30).offset for f in futs]
    p.close(10)
    assert offs == list(range(len(recs)))
    wait_count(srv, st, len(recs))
    assert typed_columns(srv, st) == {"x": "BIGINT"}
    got = rows(srv, "SELECT _offset, _key, _value, _timestamp, _timestamp_type, x, _headers, _topic, _partition "
                    "FROM %s ORDER BY _offset" % st)
    assert len(got) == len(recs)
    xs = [None, None, None, None, None, 1, None, None, 3, 4, None, None]
    for i, ((k, v, h), row) in enumerate(zip(recs, got)):
        assert row["_offset"] == i and row["_topic"] == t and row["_partition"] == 0, row
        assert row["_key"] == (None if k is None else b64(k)), row
        assert row["_value"] == (None if v is None else b64(v)), row
        assert row["_timestamp"] == base_ts + i, row
        assert row["_timestamp_type"] == 0, row
        assert row["x"] == xs[i], row
        want_headers = {hk: b64(hv) for hk, hv in h}  # a repeated key keeps its last value
        if want_headers:
            assert row["_headers"] == want_headers, row
        else:
            assert row["_headers"] in ({}, None), row
    assert scalar(srv, "SELECT decode(_value) AS v FROM %s WHERE _offset = 0" % st) == "plain text \u00e9"
    assert scalar(srv, "SELECT decode(_value) AS v FROM %s WHERE _offset = 3" % st) == '"just a string"'
    assert scalar(srv, "SELECT _headers['h'] AS v FROM %s WHERE _offset = 0" % st) == b64(b"v1")
    assert scalar(srv, "SELECT decode(_headers['h']) AS v FROM %s WHERE _offset = 5" % st) == "other"
    assert scalar(srv, "SELECT _headers['nope'] AS v FROM %s WHERE _offset = 0" % st) is None
    assert scalar(srv, "SELECT count(*) AS n FROM %s WHERE _value IS NULL" % st) == 1
    assert scalar(srv, "SELECT count(*) AS n FROM %s WHERE _key IS NULL" % st) == 1
    assert scalar(srv, "SELECT octet_length(_value) AS n FROM %s WHERE _offset = 1" % st) == 256
    assert scalar(srv, "SELECT epoch_ms(_timestamp) AS n FROM %s WHERE _offset = 2" % st) == base_ts + 2
    # the same after the rows went to Parquet
    wait_count(srv, st + "_cold", len(recs))
    again = rows(srv, "SELECT _offset, _key, _value, _timestamp, _timestamp_type, x, _headers, _topic, _partition "
                      "FROM %s ORDER BY _offset" % st)
    assert again == got


# --------------------------------------------------------------------------- hot / cold
def test_hot_cold_boundary_no_duplicates_no_gaps(own):
    s = own("hotcold", CHRONIK_HOT_BUFFER_MAX_RECORDS="50", CHRONIK_COLUMNAR_FLUSH_INTERVAL_MS="300")
    t = unique_topic("hc")
    st = sql_name(t)
    create_topic(s, t, 3)
    wait_count(s, st, 0)
    total = 3000
    from confluent_kafka import Producer
    state = {"sent": 0, "acked": 0, "errors": []}
    lock = threading.Lock()
    done = threading.Event()

    def on_dr(err, msg):
        with lock:
            if err is None:
                state["acked"] += 1
            else:
                state["errors"].append(str(err))

    def produce():
        p = Producer({"bootstrap.servers": s.bootstrap, "acks": "all", "linger.ms": 5})
        try:
            rnd = random.Random(3)
            i = 0
            while i < total:
                burst = min(rnd.randint(20, 200), total - i)
                for _ in range(burst):
                    with lock:
                        state["sent"] = i + 1
                    p.produce(t, json.dumps({"n": i}).encode(), partition=i % 3, on_delivery=on_dr)
                    i += 1
                p.flush(30)
                time.sleep(rnd.uniform(0.0, 0.15))
            p.flush(30)
        finally:
            done.set()

    th = threading.Thread(target=produce, daemon=True)
    th.start()
    checks = 0
    q_counts = "SELECT count(*) AS c, count(DISTINCT (_partition, _offset)) AS d FROM %s" % st
    q_parts = ("SELECT _partition AS p, count(*) AS c, min(_offset) AS lo, max(_offset) AS hi FROM %s "
               "GROUP BY _partition ORDER BY _partition" % st)
    q_split = ("SELECT (SELECT count(*) FROM %s_hot) AS h, (SELECT count(*) FROM %s_cold) AS k, "
               "(SELECT count(*) FROM %s) AS a" % (st, st, st))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        b = sql(s, q_counts)["rows"][0]
        with lock:
            sent = state["sent"]
        assert b["c"] == b["d"], "duplicate rows in %s: %r (check %d)" % (st, b, checks)
        assert b["c"] <= sent, "%d rows visible but only %d records sent" % (b["c"], sent)
        for r in rows(s, q_parts):
            assert r["lo"] == 0 and r["c"] == r["hi"] + 1, "gap in partition %d: %r (check %d)" % (
                r["p"], r, checks)
        sp = rows(s, q_split)[0]
        assert sp["h"] + sp["k"] == sp["a"], "hot + cold != unified in one query: %r" % sp
        checks += 1
        if done.is_set() and b["c"] == total:
            break
    th.join(30)
    assert not state["errors"], state["errors"][:5]
    assert state["acked"] == total
    assert checks >= 10, "only %d checks while producing" % checks
    assert count(s, st) == total
    assert scalar(s, "SELECT count(DISTINCT (_partition, _offset)) AS d FROM %s" % st) == total
    assert scalar(s, "SELECT sum(n) AS s FROM %s" % st) == total * (total - 1) // 2
    cold = count(s, st + "_cold")
    assert cold > 0
    assert count(s, st + "_hot") + cold == total
    wait_count(s, st + "_cold", total)  # after the flush interval everything is in Parquet
    assert count(s, st + "_hot") == 0
    assert tuples(s, "SELECT _partition, count(*), max(_offset) FROM %s GROUP BY 1 ORDER BY 1" % st) == [
        (0, 1000, 999), (1, 1000, 999), (2, 1000, 999)]
    col = topic_info(s, t)["capabilities"]["columnar"]
    assert col["cold_files"] >= 6 and col["cold_rows"] == total and col["hot_rows"] == 0, col


# --------------------------------------------------------------------------- durability
def _all_rows(srv, st):
    got = tuples(srv, "SELECT _partition, _offset, decode(_value) FROM %s ORDER BY 1, 2" % st, limit=BIG_LIMIT)
    return [(p, o, v) for p, o, v in got]


def test_kill9_during_ingestion_then_clean_restart(own):
    s = own("sqlkill9", CHRONIK_COLUMNAR_FLUSH_INTERVAL_MS="500")
    t = unique_topic("k9")
    st = sql_name(t)
    create_topic(s, t, 3)
    sender = NumberedSender(s.bootstrap, t, 3, **{"retries": 1000, "message.timeout.ms": 25000})
    kill9_under_load(s, sender, 400, 200)
    assert not sender.is_alive()
    acked = list(sender.acked)
    hw = high_watermarks(s, t)
    wait_count(s, st, sum(hw.values()), timeout=30)
    got = _all_rows(s, st)
    assert len(got) == sum(hw.values())
    pos = [(p, o) for p, o, _v in got]
    assert len(set(pos)) == len(pos), "duplicate (partition, offset) rows after kill -9"
    for p, n in hw.items():
        assert sorted(o for pp, o in pos if pp == p) == list(range(n)), "partition %d: rows != offsets 0..%d" % (
            p, n - 1)
    stored = {(p, o): v for p, o, v in got}
    assert len(got) >= len(acked)
    missing = [(p, o, n) for p, o, n in acked if (p, o) not in stored]
    wrong = [(p, o, n, stored[(p, o)]) for p, o, n in acked if (p, o) in stored and stored[(p, o)] != str(n)]
    assert not missing, "acknowledged records missing from SQL after kill -9: %r" % missing[:10]
    assert not wrong, "acknowledged records with other values in SQL: %r" % wrong[:10]

    # a clean restart keeps exactly the same rows (also once everything went to Parquet)
    s.stop()
    s.start()
    wait_http(s)
    wait_count(s, st, len(got), timeout=30)
    assert _all_rows(s, st) == got
    wait_count(s, st + "_hot", 0, timeout=20)
    assert count(s, st) == len(got)
    assert _all_rows(s, st) == got


def test_rebuild_after_deleting_columnar_folder(own):
    s = own("sqlrebuild", CHRONIK_COLUMNAR_FLUSH_INTERVAL_MS="300")
    t = unique_topic("rb")
    st = sql_name(t)
    create_topic(s, t, 3)
    p = raw_producer(s)
    base_ts = int(time.time() * 1000) - 60000
    futs = [p.send(t, key=str(i).encode(), value=json.dumps({"n": i, "s": "v%d" % i}).encode(), partition=i % 3,
                   headers=[("i", str(i).encode())], timestamp_ms=base_ts + i) for i in range(300)]
    p.flush(30)
    [f.get(30) for f in futs]
    wait_count(s, st + "_cold", 300)
    futs = [p.send(t, value=json.dumps({"n": i, "extra": True}).encode(), partition=i % 3) for i in range(300, 330)]
    p.flush(30)
    [f.get(30) for f in futs]
    p.close(10)
    wait_count(s, st, 330)
    q = ("SELECT _partition, _offset, _timestamp, _key, _value, _headers, n, s, extra FROM %s "
         "ORDER BY _partition, _offset" % st)
    before = tuples(s, q, limit=BIG_LIMIT)
    cols = describe(s, st)
    s.stop()
    folder = s.data_dir / "columnar" / t
    assert folder.is_dir(), "no columnar folder %s/columnar/%s" % ("<data>", t)
    shutil.rmtree(folder)
    s.start()
    wait_http(s)
    wait_count(s, st, 330, timeout=30)
    assert tuples(s, q, limit=BIG_LIMIT) == before
    assert describe(s, st) == cols
    wait_count(s, st + "_cold", 330, timeout=20)
    assert tuples(s, q, limit=BIG_LIMIT) == before


# --------------------------------------------------------------------------- backfill
@pytest.mark.parametrize("how", ["http_put", "kafka_python_alter_configs", "confluent_alter_configs"])
def test_backfill_when_columnar_is_enabled_later(srv, how):
    t = unique_topic("bf")
    st = sql_name(t)
    create_topic(srv, t, 3, columnar=False)
    produce_json(srv, t, [{"n": i} for i in range(500)], partition=lambda i: i % 3)
    r = sql_resp(srv, "SELECT count(*) FROM %s" % st)
    expect(r, 400, "QueryError")
    tables = {x["name"] for x in expect(http(srv, "GET", "/_sql/tables"), 200)["tables"]}
    assert st not in tables
    assert topic_info(srv, t)["capabilities"]["columnar"]["enabled"] is False

    if how == "http_put":
        body = expect(http(srv, "PUT", "/topics/%s/config" % t, {"config": {"columnar.enabled": "true"}}), 200)
        assert body["config"]["columnar.enabled"] == "true"
        assert body["capabilities"]["columnar"]["enabled"] is True
    elif how == "kafka_python_alter_configs":
        from kafka.admin import ConfigResource, ConfigResourceType
        a = kp_admin(srv)
        try:
            res = a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, t, configs={"columnar.enabled": "true"})])
        finally:
            a.close()
        errs = [r[0] for r in res.resources]
        assert errs == [0], res
    else:
        from confluent_kafka.admin import ConfigResource
        a = ck_admin(srv)
        fs = a.alter_configs([ConfigResource("topic", t, set_config={"columnar.enabled": "true"})],
                             request_timeout=15)
        for f in fs.values():
            f.result(timeout=20)

    wait_count(srv, st, 500, timeout=30)
    assert scalar(srv, "SELECT sum(n) AS s FROM %s" % st) == 500 * 499 // 2
    assert scalar(srv, "SELECT count(DISTINCT (_partition, _offset)) AS d FROM %s" % st) == 500
    assert typed_columns(srv, st) == {"n": "BIGINT"}
    info = topic_info(srv, t)
    assert info["config"]["columnar.enabled"] == "true"
    wait_for(lambda: topic_info(srv, t)["capabilities"]["columnar"].get("lag") == 0, 10, 0.1, "lag 0")
    # new records keep coming in after the backfill
    produce_json(srv, t, [{"n": i} for i in range(500, 510)], partition=0)
    wait_count(srv, st, 510)

    if how == "http_put":
        # disabling drops the tables and the folder
        body = expect(http(srv, "PUT", "/topics/%s/config" % t, {"config": {"columnar.enabled": "false"}}), 200)
        assert body["capabilities"]["columnar"]["enabled"] is False
        wait_for(lambda: st not in {x["name"] for x in http(srv, "GET", "/_sql/tables").body["tables"]}, 10, 0.1,
                 "tables gone after disabling")
        expect(sql_resp(srv, "SELECT count(*) FROM %s" % st), 400, "QueryError")
        wait_for(lambda: not (srv.data_dir / "columnar" / t).exists(), 10, 0.1, "columnar folder removed")


# --------------------------------------------------------------------------- safety
def test_forbidden_statements_change_nothing(srv, tmp_path):
    t = unique_topic("ro")
    st = sql_name(t)
    create_topic(srv, t, 1)
    produce_json(srv, t, [{"n": i} for i in range(10)], partition=0)
    wait_count(srv, st, 10)
    out_csv = tmp_path / "x.csv"
    out_parquet = srv.data_dir / "columnar" / "evil.parquet"
    in_csv = tmp_path / "in.csv"
    in_csv.write_text("_topic,_partition,_offset\nx,0,99\n")
    db_file = tmp_path / "evil.db"
    export_dir = tmp_path / "export"
    hot0 = "__ck_hot_%s_0" % st
    tables_before = http(srv, "GET", "/_sql/tables").body
    threads_before = scalar(srv, "SELECT current_setting('threads') AS v")
    statements = [
        "INSERT INTO %s (_offset) VALUES (1)" % st,
        "INSERT INTO %s (_offset) VALUES (1)" % hot0,
        "INSERT INTO %s_hot SELECT * FROM %s_hot" % (st, st),
        "UPDATE %s SET _offset = 5" % hot0,
        "UPDATE %s_hot SET n = 5" % st,
        "DELETE FROM %s" % hot0,
        "DELETE FROM %s_hot" % st,
        "CREATE TABLE evil AS SELECT 1 AS x",
        "CREATE VIEW evil AS SELECT 1 AS x",
        "CREATE TEMP TABLE evil (x INT)",
        "CREATE MACRO evil(a) AS a + 1",
        "CREATE SEQUENCE evil",
        "CREATE OR REPLACE VIEW %s AS SELECT 1 AS x" % st,
        "DROP VIEW %s" % st,
        "DROP VIEW %s_cold" % st,
        "DROP TABLE %s" % hot0,
        "DROP TABLE IF EXISTS %s" % hot0,
        "ALTER VIEW %s RENAME TO evil" % st,
        "ALTER TABLE %s ADD COLUMN evil INT" % hot0,
        "COPY (SELECT 1 AS x) TO '%s'" % out_csv,
        "COPY %s_hot TO '%s'" % (st, out_csv),
        "COPY (SELECT 1 AS x) TO '%s' (FORMAT parquet)" % out_parquet,
        "COPY %s FROM '%s'" % (hot0, in_csv),
        "ATTACH ':memory:' AS evil",
        "ATTACH '%s' AS evil" % db_file,
        "DETACH memory",
        "DETACH DATABASE IF EXISTS evil",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET threads = 1",
        "SET GLOBAL threads = 1",
        "SET enable_external_access = true",
        "RESET threads",
        "PRAGMA threads = 1",
        "PRAGMA version",
        "CALL pragma_version()",
        "EXPORT DATABASE '%s'" % export_dir,
        "IMPORT DATABASE '%s'" % export_dir,
        "CHECKPOINT",
        "BEGIN TRANSACTION",
        "VACUUM",
        "USE evil",
        "SELECT 1; SELECT 2",
        "SELECT 1; DROP VIEW %s" % st,
        "SELECT count(*) FROM %s; DELETE FROM %s" % (st, hot0),
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_csv_auto('/etc/passwd')",
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT * FROM read_blob('/etc/hostname')",
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM read_csv('%s')" % in_csv,
        "SELECT * FROM glob('/etc/*')",
        "",
        "   ",
        "-- only a comment",
    ]
    for q in statements:
        r = sql_resp(srv, q)
        assert r.status == 400 and r.error_type == "QueryError", "statement %r: %r" % (q, r)
    for q in statements[:19]:
        r = http(srv, "POST", "/_sql/explain", {"query": q})
        assert r.status == 400 and r.error_type == "ExplainError", "explain %r: %r" % (q, r)
    # nothing changed
    assert count(srv, st) == 10
    assert count(srv, st + "_hot") + count(srv, st + "_cold") == 10
    assert tuples(srv, "SELECT _offset, n FROM %s ORDER BY _offset" % st) == [(i, i) for i in range(10)]
    assert http(srv, "GET", "/_sql/tables").body == tables_before
    assert typed_columns(srv, st) == {"n": "BIGINT"}
    assert scalar(srv, "SELECT current_setting('threads') AS v") == threads_before
    expect(sql_resp(srv, "SELECT * FROM evil"), 400, "QueryError")
    for f in (out_csv, out_parquet, db_file, export_dir):
        assert not f.exists(), "%s was created" % f.name
    # the connection pool still works normally afterwards
    produce_json(srv, t, [{"n": 10}], partition=0)
    wait_count(srv, st, 11)


def test_timeout(srv, own):
    slow = "SELECT count(*) FROM range(100000000000) a"
    r, dt = timed(sql_resp, srv, slow, timeout_secs=1)
    expect(r, 504, "Timeout")
    assert dt < 10, "the 1 s timeout took %.1f s" % dt
    assert scalar(srv, "SELECT 41 + 1 AS x") == 42

    # other queries are answered while a slow one runs
    res = {}
    th = threading.Thread(target=lambda: res.setdefault("r", sql_resp(srv, slow, timeout_secs=3)))
    th.start()
    time.sleep(0.3)
    try:
        for i in range(5):
            v, dt = timed(scalar, srv, "SELECT %d AS x" % i)
            assert v == i and dt < 2.5, "a trivial query took %.1f s while a slow one ran" % dt
    finally:
        th.join(20)
    expect(res["r"], 504, "Timeout")

    # the server default comes from CHRONIK_QUERY_TIMEOUT_SECS
    s2 = own("sqltimeout", CHRONIK_QUERY_TIMEOUT_SECS="1")
    r, dt = timed(sql_resp, s2, slow)
    expect(r, 504, "Timeout")
    assert dt < 10
    assert scalar(s2, "SELECT 7 AS x") == 7


def test_limit_and_truncated(srv):
    t = unique_topic("lim")
    st = sql_name(t)
    create_topic(srv, t, 1)
    produce_json(srv, t, [{"n": i} for i in range(25)], partition=0)
    wait_count(srv, st, 25)
    b = sql(srv, "SELECT n FROM %s ORDER BY n" % st, limit=10)
    assert (b["row_count"], b["truncated"]) == (10, True) and [r["n"] for r in b["rows"]] == list(range(10))
    b = sql(srv, "SELECT n FROM %s ORDER BY n" % st, limit=25)
    assert (b["row_count"], b["truncated"]) == (25, False)
    b = sql(srv, "SELECT n FROM %s ORDER BY n" % st, limit=100)
    assert (b["row_count"], b["truncated"]) == (25, False)
    b = sql(srv, "SELECT n FROM %s ORDER BY n LIMIT 5" % st, limit=10)
    assert (b["row_count"], b["truncated"]) == (5, False)
    b = sql(srv, "SELECT n FROM %s ORDER BY n" % st, limit=1)
    assert (b["row_count"], b["truncated"], b["rows"]) == (1, True, [{"n": 0}])
    # default limit 1000
    b = sql(srv, "SELECT range AS i FROM range(1500)")
    assert (b["row_count"], b["truncated"]) == (1000, True)
    assert b["rows"][-1] == {"i": 999}
    b = sql(srv, "SELECT range AS i FROM range(1000)")
    assert (b["row_count"], b["truncated"]) == (1000, False)
    b = sql(srv, "SELECT range AS i FROM range(5000)", limit=5000)
    assert (b["row_count"], b["truncated"]) == (5000, False)
    b = sql(srv, "SELECT 1 AS x WHERE false")
    assert (b["row_count"], b["truncated"], b["rows"], b["columns"]) == (0, False, [], ["x"])
    for bad in ({"limit": -1}, {"limit": "10"}, {"limit": 1.5}, {"timeout_secs": "x"}, {"timeout_secs": 0}):
        expect(http(srv, "POST", "/_sql", dict(query="SELECT 1", **bad)), 422, "InvalidRequest")


def test_read_your_writes_min_offsets(srv):
    t = unique_topic("ryw")
    st = sql_name(t)
    create_topic(srv, t, 3)
    from confluent_kafka import Producer
    # a steady load on another columnar topic keeps the indexer busy, so that visibility
    # lags the acks by up to a few tens of ms: without min_offsets a query right after the
    # ack would often miss the record
    load_topic = unique_topic("ryw-load")
    create_topic(srv, load_topic, 3)
    stop = threading.Event()

    def load():
        lp = Producer({"bootstrap.servers": srv.bootstrap, "linger.ms": 5})
        while not stop.is_set():
            for k in range(50):
                lp.produce(load_topic, json.dumps({"x": k, "pad": "y" * 200}).encode())
            lp.poll(0)
            time.sleep(0.05)
        lp.flush(10)

    th = threading.Thread(target=load, daemon=True)
    th.start()
    wait_for(lambda: topic_info(srv, load_topic)["capabilities"]["columnar"].get("hot_rows", 0) > 0, 10, 0.05,
             "the load topic being indexed")
    try:
        _read_your_writes(srv, t, st)
    finally:
        stop.set()
        th.join(20)


def _read_your_writes(srv, t, st):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": srv.bootstrap, "acks": "all", "linger.ms": 0})
    reports = []

    def dr(err, msg):
        reports.append((err, msg.partition(), msg.offset()))

    forms = ["topic", "nested", "flat"]
    for i in range(30):
        part = i % 3
        reports.clear()
        p.produce(t, json.dumps({"i": i}).encode(), partition=part, on_delivery=dr)
        assert p.flush(20) == 0
        err, part2, off = reports[0]
        assert err is None and part2 == part
        form = forms[i % 3]
        q = "SELECT i FROM %s WHERE _partition = %d AND _offset = %d" % (st, part, off)
        if form == "topic":
            extra = {"min_offsets": {str(part): off}, "topic": t}
        elif form == "nested":
            extra = {"min_offsets": {t: {str(part): off}}}
        else:
            extra = {"min_offsets": {str(part): off}}
        got = rows(srv, q, **extra)
        assert got == [{"i": i}], "record %d (partition %d offset %d) not visible with min_offsets (%s form): %r" % (
            i, part, off, form, got)
    # an offset far in the future: 504 after timeout_secs
    r, dt = timed(sql_resp, srv, "SELECT count(*) FROM %s" % st, timeout_secs=1, topic=t,
                  min_offsets={"0": 10 ** 9})
    expect(r, 504, "Timeout")
    assert dt < 10
    r = sql_resp(srv, "SELECT count(*) FROM %s" % st, timeout_secs=1, min_offsets={t: {"1": 10 ** 9}})
    expect(r, 504, "Timeout")
    expect(sql_resp(srv, "SELECT 1", min_offsets=5), 422, "InvalidRequest")


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compression_codecs(srv, codec):
    import kafka.codec as kc
    have = {"gzip": kc.has_gzip, "snappy": kc.has_snappy, "lz4": kc.has_lz4, "zstd": kc.has_zstd}[codec]
    if not have():
        pytest.skip("kafka-python cannot compress with %s here (its python module is missing)" % codec)
    t = unique_topic("cz-" + codec)
    st = sql_name(t)
    create_topic(srv, t, 2)
    values = [{"codec": codec, "i": i, "pad": "x" * (i % 50), "f": i / 4} for i in range(300)]
    produce_json(srv, t, values, partition=lambda i: i % 2, compression_type=codec, linger_ms=50,
                 batch_size=16384)
    wait_count(srv, st, 300)
    got = rows(srv, "SELECT i, codec, pad, f, decode(_value) AS raw FROM %s ORDER BY i" % st, limit=BIG_LIMIT)
    assert [r["i"] for r in got] == list(range(300))
    for r, v in zip(got, values):
        assert (r["codec"], r["pad"], r["f"]) == (v["codec"], v["pad"], v["f"]), r
        assert json.loads(r["raw"]) == v


def test_json_encoding_of_sql_types(srv):
    q = ("SELECT 123.45::DECIMAL(10,2) AS dec, (-0.05)::DECIMAL(4,2) AS dneg, "
         "12345678901234567890.0123456789::DECIMAL(38,10) AS dbig, "
         "DATE '2024-02-29' AS d, TIMESTAMP '2024-01-02 03:04:05.678' AS ts, "
         "TIMESTAMP '1969-12-31 23:59:59.999' AS tsneg, [1, 2, 3] AS l, [] :: INTEGER[] AS le, "
         "[[1], [2, 3]] AS ll, ['a', NULL] AS ls, {'a': 1, 'b': 'x'} AS st, {'n': {'m': [true]}} AS stn, "
         "MAP {'k': 1, 'j': 2} AS m, 'hi'::BLOB AS bl, '\\x00\\xFF'::BLOB AS bl2, NULL AS n, "
         "170141183460469231731687303715884105727::HUGEINT AS h, "
         "(-170141183460469231731687303715884105727)::HUGEINT AS hn, "
         "1.5::DOUBLE AS dbl, 0.1::DOUBLE AS dbl2, 2.5::FLOAT AS fl, true AS bt, false AS bf, "
         "'str \"q\" \\ \u00e9' AS s, "
         "(-5)::TINYINT AS ti, 9223372036854775807::BIGINT AS bmax, 18446744073709551615::UBIGINT AS ubmax, "
         "NULL::INTEGER AS ni")
    r = http(srv, "POST", "/_sql", {"query": q})
    assert r.status == 200, r
    body = json.loads(r.raw, parse_float=Decimal)
    assert body["columns"] == ["dec", "dneg", "dbig", "d", "ts", "tsneg", "l", "le", "ll", "ls", "st", "stn", "m",
                               "bl", "bl2", "n", "h", "hn", "dbl", "dbl2", "fl", "bt", "bf", "s", "ti", "bmax",
                               "ubmax", "ni"], body
    row = body["rows"][0]
    assert row["dec"] == Decimal("123.45") and row["dneg"] == Decimal("-0.05"), row
    assert row["dbig"] == Decimal("12345678901234567890.0123456789"), row
    assert row["d"] == "2024-02-29"
    assert row["ts"] == 1704164645678 and row["tsneg"] == -1, row
    assert row["l"] == [1, 2, 3] and row["le"] == [] and row["ll"] == [[1], [2, 3]] and row["ls"] == ["a", None]
    assert row["st"] == {"a": 1, "b": "x"} and row["stn"] == {"n": {"m": [True]}}
    assert row["m"] == {"k": 1, "j": 2}
    assert row["bl"] == b64(b"hi") and row["bl2"] == b64(b"\x00\xff"), row
    assert row["n"] is None and row["ni"] is None
    assert row["h"] == 170141183460469231731687303715884105727 and row["hn"] == -170141183460469231731687303715884105727
    assert row["dbl"] == Decimal("1.5") and float(row["dbl2"]) == 0.1 and float(row["fl"]) == 2.5, row
    assert row["bt"] is True and row["bf"] is False
    assert row["s"] == 'str "q" \\ \u00e9'
    assert row["ti"] == -5 and row["bmax"] == 9223372036854775807 and row["ubmax"] == 18446744073709551615


def test_sanitized_topic_names_and_join(srv):
    logs, users = "e2e-logs", "a.b"
    create_topic(srv, logs, 2)
    create_topic(srv, users, 1)
    produce_json(srv, users, [{"user_id": 1, "name": "alice"}, {"user_id": 2, "name": "bob"}], partition=0)
    produce_json(srv, logs, [{"user_id": 1, "msg": "login"}, {"user_id": 2, "msg": "logout"},
                             {"user_id": 1, "msg": "view"}, {"user_id": 3, "msg": "anon"}], partition=lambda i: i % 2)
    wait_count(srv, "e2e_logs", 4)
    wait_count(srv, "a_b", 2)
    got = tuples(srv, "SELECT l.msg, u.name, l._topic, u._topic FROM e2e_logs l JOIN a_b u ON l.user_id = u.user_id "
                      "ORDER BY l.msg")
    assert got == [("login", "alice", logs, users), ("logout", "bob", logs, users), ("view", "alice", logs, users)]
    got = tuples(srv, "SELECT u.name, count(l._offset) FROM a_b u LEFT JOIN "
                      "(SELECT * FROM e2e_logs_hot UNION ALL SELECT * FROM e2e_logs_cold) l USING (user_id) "
                      "GROUP BY u.name ORDER BY u.name")
    assert got == [("alice", 2), ("bob", 1)], got
    tables = {(x["name"], x["table_type"], x["topic"]) for x in http(srv, "GET", "/_sql/tables").body["tables"]}
    assert {("e2e_logs", "TOPIC", logs), ("e2e_logs_hot", "HOT", logs), ("e2e_logs_cold", "COLD", logs),
            ("a_b", "TOPIC", users), ("a_b_hot", "HOT", users), ("a_b_cold", "COLD", users)} <= tables
    d = expect(http(srv, "GET", "/_sql/describe/e2e_logs_cold"), 200)
    assert (d["table"], d["topic"], d["table_type"]) == ("e2e_logs_cold", logs, "COLD")
    assert topic_info(srv, users)["capabilities"]["columnar"]["tables"] == ["a_b", "a_b_hot", "a_b_cold"]
    # table names are case-insensitive, as in SQL
    assert count(srv, "E2E_LOGS") == 4
    expect(http(srv, "GET", "/_sql/describe/E2E_Logs"), 200)
