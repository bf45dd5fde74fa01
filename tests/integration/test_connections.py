"""Connection handling: many clients at once, pipelined requests answered in order,
idle connections closed, and a request larger than the limit refused before allocation."""
import resource
import socket
import struct
import time

import pytest

import kafka_raw as kr
from conftest import _make_server, unique_topic, wait_for


def _raise_fd_limit(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(n, soft)), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def test_thousand_connections_held_open(server):
    limit = _raise_fd_limit(2300)
    n = 1000 if limit >= 1100 else limit - 100
    conns = []
    try:
        for _ in range(n):
            conns.append(kr.Conn(server.host, server.kafka_port, timeout=20))
        # every connection gets its own answer, sent on all of them before reading any
        for c in conns:
            c.corr += 1
            c.send(kr.frame(kr.request_header(kr.API_VERSIONS, 0, c.corr) + b""))
        for c in conns:
            r = kr.Reader(c.recv_frame())
            assert r.i32() == c.corr
            err, keys = kr.parse_api_versions_v0(r)
            assert err == 0 and kr.PRODUCE in keys
        # and a normal client works while they are all open
        topic = unique_topic("many")
        from confluent_kafka import Producer
        p = Producer({"bootstrap.servers": server.bootstrap, "acks": "all"})
        p.produce(topic, b"still-serving")
        assert p.flush(20) == 0
    finally:
        for c in conns:
            c.close()
    assert n >= 1000, "the test machine allows only %d descriptors" % limit


def test_pipelined_requests_answered_in_order(server):
    topic = unique_topic("pipe")
    with kr.Conn(server.host, server.kafka_port) as c:
        # create the topic first
        kr.api_versions(c)
        batch = kr.build_batch([(None, b"v%d" % i, []) for i in range(3)])
        err, _ = kr.produce_v3(c, topic, 0, batch)  # auto-creates
        assert err == 0
        frames = []
        expect = []
        for i in range(60):
            corr = 1000 + i
            if i % 3 == 0:   # produce acks=-1: answered only after an fsync
                body = (kr.string(None) + kr.i16(-1) + kr.i32(10000) +
                        kr.array([kr.string(topic) + kr.array([kr.i32(0) + kr.kbytes(batch)])]))
                frames.append(kr.frame(kr.request_header(kr.PRODUCE, 3, corr) + body))
            elif i % 3 == 1:  # metadata: answered at once
                frames.append(kr.frame(kr.request_header(kr.METADATA, 1, corr) + kr.array([kr.string(topic)])))
            else:
                frames.append(kr.frame(kr.request_header(kr.API_VERSIONS, 0, corr)))
            expect.append(corr)
        c.send(b"".join(frames))
        got = []
        for _ in expect:
            r = kr.Reader(c.recv_frame())
            got.append(r.i32())
        assert got == expect


def test_idle_connections_are_closed(tmp_path_factory):
    srv = _make_server(tmp_path_factory, "idle", extra_env={"CHRONIK_CONNECTIONS_MAX_IDLE_MS": "1000"})
    srv.start()
    try:
        with kr.Conn(srv.host, srv.kafka_port) as idle, kr.Conn(srv.host, srv.kafka_port) as busy:
            kr.api_versions(idle)
            closed = False
            deadline = time.monotonic() + 6
            while not closed and time.monotonic() < deadline:
                # the busy connection makes a request every 0.3 s and must stay open
                assert kr.api_versions(busy)[0] == 0
                closed, _ = idle.wait_closed(timeout=0.3)
            assert closed, "an idle connection stayed open past connections.max.idle.ms"
            for _ in range(5):
                time.sleep(0.3)
                assert kr.api_versions(busy)[0] == 0
    finally:
        srv.stop()


def test_request_over_the_size_limit_is_refused_before_reading_it(tmp_path_factory):
    srv = _make_server(tmp_path_factory, "limit", extra_env={"CHRONIK_SOCKET_REQUEST_MAX_BYTES": "1048576"})
    srv.start()
    try:
        with kr.Conn(srv.host, srv.kafka_port) as c:
            # announce 2 MiB but send only the header: the server must close at once,
            # without waiting for (or allocating) the body
            c.send(struct.pack(">i", 2 * 1024 * 1024) + kr.request_header(kr.API_VERSIONS, 0, 1))
            closed, data = c.wait_closed(timeout=5)
            assert closed and data == b""
        # a request just under the limit is served
        topic = unique_topic("limit")
        with kr.Conn(srv.host, srv.kafka_port) as c:
            kr.api_versions(c)
            big = kr.build_batch([(None, b"x" * (700 * 1024), [])])
            err, base = kr.produce_v3(c, topic, 0, big)
            assert err == 0 and base == 0
    finally:
        srv.stop()
