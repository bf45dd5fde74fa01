"""The optional metrics listener: Prometheus text with request counters and per-partition
offsets, /health and /ready, 404 for anything else."""
import urllib.error
import urllib.request

import kafka_raw as kr
from conftest import _make_server, free_ports, unique_topic


def get(port, path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""


def test_metrics_listener(tmp_path_factory):
    (mport,) = free_ports(1)
    srv = _make_server(tmp_path_factory, "metrics", extra_env={"CHRONIK_METRICS_PORT": str(mport)})
    srv.start()
    try:
        topic = unique_topic("m")
        with kr.Conn(srv.host, srv.kafka_port) as c:
            for _ in range(3):
                err, _ = kr.produce_v3(c, topic, 1, kr.build_batch([(None, b"a", []), (None, b"b", [])]))
                assert err == 0
        status, text = get(mport, "/metrics")
        assert status == 200
        assert 'chronik_log_end_offset{topic="%s",partition="1"} 6' % topic in text
        assert 'chronik_high_watermark{topic="%s",partition="1"} 6' % topic in text
        produced = [l for l in text.splitlines() if l.startswith("chronik_produce_requests_total ")]
        assert produced and int(produced[0].split()[1]) >= 3
        assert get(mport, "/health") == (200, "OK")
        assert get(mport, "/ready") == (200, "OK")
        assert get(mport, "/nothing")[0] == 404
    finally:
        srv.stop()
