"""Helpers for the tests of the unified HTTP API (port CHRONIK_UNIFIED_API_PORT): requests
through urllib (no proxies), SQL shortcuts, the real curl binary for README examples, and
JSON producers."""
import base64
import json
import os
import subprocess
import time
import urllib.error
import urllib.request

from conftest import _make_server, wait_for

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


class Resp:
    """status, headers (lower-case names), raw (bytes), body (parsed JSON, else the raw bytes)."""

    def __init__(self, method, path, status, headers, raw):
        self.method, self.path, self.status, self.headers, self.raw = method, path, status, headers, raw
        self.body = raw
        if raw[:1] in (b"{", b"["):
            try:
                self.body = json.loads(raw)
            except ValueError:
                pass

    def __repr__(self):
        return "<%s %s -> %d %r>" % (self.method, self.path, self.status, self.raw[:1500])

    @property
    def error_type(self):
        return self.body.get("error_type") if isinstance(self.body, dict) else None


def http(srv, method, path, body=None, headers=None, timeout=60):
    """One request. body: dict/list (sent as JSON with Content-Type application/json unless
    headers say otherwise), str or bytes (sent as is). Returns a Resp (also for 4xx/5xx)."""
    headers = dict(headers or {})
    data = None
    if isinstance(body, (dict, list)):
        data = json.dumps(body).encode()
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
    elif isinstance(body, str):
        data = body.encode()
    elif body is not None:
        data = bytes(body)
    url = "http://127.0.0.1:%d%s" % (srv.api_port, path)
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with _OPENER.open(req, timeout=timeout) as r:
            status, hdrs, raw = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, hdrs, raw = e.code, e.headers, e.read()
    return Resp(method, path, status, {k.lower(): v for k, v in hdrs.items()}, raw)


def expect(resp, status, error_type=None):
    """Asserts the status (and for errors the JSON error body); returns the parsed body."""
    assert resp.status == status, "expected %d, got %r" % (status, resp)
    if error_type is not None:
        assert isinstance(resp.body, dict), resp
        assert resp.body.get("error_type") == error_type, "expected error_type %s: %r" % (error_type, resp)
        assert isinstance(resp.body.get("error"), str) and resp.body["error"], resp
    return resp.body


def sql_resp(srv, query, timeout=60, **fields):
    body = dict(fields)
    body["query"] = query
    return http(srv, "POST", "/_sql", body, timeout=timeout)


def sql(srv, query, **fields):
    """POST /_sql, asserting 200 and the response shape; returns the parsed body."""
    r = sql_resp(srv, query, **fields)
    assert r.status == 200, "POST /_sql %r -> %r" % (query, r)
    b = r.body
    assert isinstance(b, dict) and set(b) >= {"columns", "rows", "row_count", "execution_time_ms", "truncated"}, r
    assert b["row_count"] == len(b["rows"]), r
    assert isinstance(b["truncated"], bool) and isinstance(b["execution_time_ms"], int), r
    for row in b["rows"]:
        assert sorted(row) == sorted(b["columns"]), "row keys %r != columns %r" % (list(row), b["columns"])
    return b


def rows(srv, query, **fields):
    return sql(srv, query, **fields)["rows"]


def tuples(srv, query, **fields):
    """Rows as tuples in column order."""
    b = sql(srv, query, **fields)
    return [tuple(r[c] for c in b["columns"]) for r in b["rows"]]


def scalar(srv, query, **fields):
    b = sql(srv, query, **fields)
    assert len(b["rows"]) == 1, b
    return b["rows"][0][b["columns"][0]]


def count(srv, table, where=""):
    return scalar(srv, "SELECT count(*) AS n FROM %s %s" % (table, where))


def not_yet(resp):
    """A 400 saying that a table or column does not exist (yet): the SQL tables of a topic
    appear shortly after it is created or columnar is enabled, typed columns with the first
    record that has the field."""
    return resp.status == 400 and resp.error_type == "QueryError" and (
        "does not exist" in resp.body.get("error", "") or "not found" in resp.body.get("error", ""))


def wait_count(srv, table, n, timeout=20.0, where=""):
    """Waits until SELECT count(*) FROM table == n; tolerates the table not existing yet."""
    seen = []
    q = "SELECT count(*) AS n FROM %s %s" % (table, where)
    deadline = time.monotonic() + timeout
    while True:
        r = sql_resp(srv, q)
        if r.status == 200:
            c = r.body["rows"][0]["n"]
            seen.append(c)
            if c == n:
                return
        elif not_yet(r):
            seen.append("no table")
        else:
            raise AssertionError("POST /_sql %r -> %r" % (q, r))
        if time.monotonic() > deadline:
            raise AssertionError("count(*) of %s %s did not reach %d within %.0f s (last counts %r)" % (
                table, where, n, timeout, seen[-5:]))
        time.sleep(0.1)


def b64(data):
    return base64.b64encode(data).decode()


def sql_name(topic):
    return "".join(c if (c.isascii() and (c.isalnum() or c == "_")) else "_" for c in topic)


def wait_http(srv, timeout=15.0):
    def up():
        try:
            return http(srv, "GET", "/health", timeout=2).status == 200
        except OSError:
            return False

    wait_for(up, timeout, 0.05, "GET /health on port %d" % srv.api_port)


def start_server(request, tmp_path_factory, name, env=None):
    """A server of a test's own with extra env; registered for the failure report and
    stopped (SIGTERM, exit code 0 asserted) by stop_servers()."""
    srv = _make_server(tmp_path_factory, name, env)
    srv.start()
    wait_http(srv)
    node = request.node
    servers = getattr(node, "_chronik_servers", None)
    if servers is None:
        servers = node._chronik_servers = []
    servers.append(srv)
    return srv


def module_api_server(request, tmp_path_factory, name, env=None):
    """Generator for a module-scoped fixture: a server of the module's own with extra env,
    its HTTP API up; stopped (exit code 0 asserted) when the module is done."""
    s = _make_server(tmp_path_factory, name, env)
    s.start()
    request.module._chronik_servers = [s]
    wait_http(s)
    yield s
    stop_servers([s])


def stop_servers(servers):
    for s in servers:
        if s.alive():
            s.stop()
        else:
            s.kill9()


def create_topic(srv, name, partitions=3, config=None, columnar=True):
    cfg = dict(config or {})
    if columnar:
        cfg.setdefault("columnar.enabled", "true")
    body = {"name": name, "partitions": partitions}
    if cfg:
        body["config"] = cfg
    r = http(srv, "POST", "/topics", body)
    assert r.status == 201, "POST /topics %r -> %r" % (body, r)
    return r.body


def topic_info(srv, name):
    r = http(srv, "GET", "/topics/" + name)
    assert r.status == 200, r
    return r.body


def high_watermarks(srv, name):
    return {p["partition"]: p["high_watermark"] for p in topic_info(srv, name)["partition_info"]}


def json_producer(srv, **kw):
    from kafka import KafkaProducer
    kw.setdefault("acks", "all")
    kw.setdefault("request_timeout_ms", 15000)
    kw.setdefault("max_block_ms", 15000)
    return KafkaProducer(bootstrap_servers=srv.bootstrap, value_serializer=lambda v: json.dumps(v).encode(), **kw)


def raw_producer(srv, **kw):
    from kafka import KafkaProducer
    kw.setdefault("acks", "all")
    kw.setdefault("request_timeout_ms", 15000)
    kw.setdefault("max_block_ms", 15000)
    return KafkaProducer(bootstrap_servers=srv.bootstrap, **kw)


def produce_json(srv, topic, values, partition=None, **kw):
    """Sends JSON values (partition: None, an int, or a function of the index); waits for
    every ack; returns the RecordMetadata list."""
    p = json_producer(srv, **kw)
    try:
        futs = []
        for i, v in enumerate(values):
            part = partition(i) if callable(partition) else partition
            futs.append(p.send(topic, v, partition=part))
        p.flush(30)
        return [f.get(timeout=30) for f in futs]
    finally:
        p.close(10)


def curl(srv, command, timeout=60):
    """Runs a README curl command verbatim (bash), only localhost:6092 replaced by the test
    server's address. Returns (exit code, stdout bytes, stderr bytes)."""
    cmd = command.replace("localhost:6092", "127.0.0.1:%d" % srv.api_port)
    env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARS}
    p = subprocess.run(["bash", "-c", cmd], capture_output=True, timeout=timeout, env=env)
    return p.returncode, p.stdout, p.stderr


def curl_json(srv, command, timeout=60):
    rc, out, err = curl(srv, command, timeout)
    assert rc == 0, "curl exit %d: %s\n%s" % (rc, err.decode(errors="replace")[-2000:], command)
    try:
        return json.loads(out)
    except ValueError:
        raise AssertionError("curl output is not JSON: %r\n(command: %s)" % (out[:2000], command))


def timed(fn, *a, **kw):
    t0 = time.monotonic()
    res = fn(*a, **kw)
    return res, time.monotonic() - t0
