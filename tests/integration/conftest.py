"""Shared fixtures for Chronik integration tests.

Each test module gets its own server (scope=module) on free loopback ports with a
temporary data directory; tests that restart or kill the broker use `fresh_server`
(one server per test).

Server binary: $CHRONIK_SERVER_BIN, default <repo>/build/chronik-server.
Run: /usr/bin/python3 -m pytest -q tests/integration
"""
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER_BIN = Path(os.environ.get("CHRONIK_SERVER_BIN", REPO_ROOT / "build" / "chronik-server"))
START_TIMEOUT = float(os.environ.get("CHRONIK_TEST_START_TIMEOUT", "20"))
STOP_TIMEOUT = 20.0


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1 (bound to port 0, held until all are picked)."""
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def unique_topic(prefix="t"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


class ChronikServer:
    """A chronik-server child process. start()/stop()/kill9()/restart()."""

    def __init__(self, data_dir, log_dir, extra_env=None, name="chronik"):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.kafka_port, self.api_port = free_ports(2)
        self.host = "127.0.0.1"
        self.extra_env = dict(extra_env or {})
        self.proc = None
        self.starts = 0
        self.log_path = None
        self._log_file = None

    # ------------------------------------------------------------------ props
    @property
    def bootstrap(self):
        return "%s:%d" % (self.host, self.kafka_port)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def env(self):
        env = dict(os.environ)
        env.update({
            "CHRONIK_DATA_DIR": str(self.data_dir),
            "CHRONIK_KAFKA_PORT": str(self.kafka_port),
            "CHRONIK_BIND": self.host,
            "CHRONIK_ADVERTISED_ADDR": self.bootstrap,
            "CHRONIK_ADVERTISE": self.bootstrap,
            "CHRONIK_UNIFIED_API_PORT": str(self.api_port),
            "CHRONIK_METRICS_PORT": "0",
            "CHRONIK_WAL_PROFILE": "low",
            "CHRONIK_DEFAULT_PARTITIONS": "3",
            "CHRONIK_LOG_LEVEL": os.environ.get("CHRONIK_TEST_LOG_LEVEL", "info"),
        })
        env.update(self.extra_env)
        return env

    # -------------------------------------------------------------- lifecycle
    def start(self, timeout=START_TIMEOUT):
        assert self.proc is None or self.proc.poll() is not None, "server already running"
        if not SERVER_BIN.exists():
            pytest.fail("server binary %s does not exist (build it with `make`, or set "
                        "CHRONIK_SERVER_BIN)" % SERVER_BIN, pytrace=False)
        self.starts += 1
        self.log_path = self.log_dir / ("%s.%d.stderr.log" % (self.name, self.starts))
        self._log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen([str(SERVER_BIN), "start"], env=self.env(),
                                     stdin=subprocess.DEVNULL, stdout=self._log_file,
                                     stderr=subprocess.STDOUT, cwd=str(self.data_dir))
        deadline = time.monotonic() + timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                pytest.fail("chronik-server exited with code %s before accepting connections on %s\n"
                            "--- server output ---\n%s" % (rc, self.bootstrap, self.output()),
                            pytrace=False)
            try:
                with socket.create_connection((self.host, self.kafka_port), timeout=0.5):
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                out = self.output()
                self.kill9()
                pytest.fail("chronik-server did not accept connections on %s within %.0f s\n"
                            "--- server output ---\n%s" % (self.bootstrap, timeout, out),
                            pytrace=False)
            time.sleep(0.05)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=STOP_TIMEOUT, check=True):
        """SIGTERM, wait, and (check=True) assert a clean exit 0."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                self._close_log()
                if check:
                    pytest.fail("chronik-server did not exit within %.0f s of SIGTERM\n--- output ---\n%s"
                                % (timeout, self.output()), pytrace=False)
                return self.proc.returncode
        self._close_log()
        rc = self.proc.returncode
        if check:
            assert rc == 0, "chronik-server exit code after SIGTERM: %r (expected 0)\n--- output ---\n%s" % (
                rc, self.output())
        return rc

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._close_log()

    def restart(self):
        self.stop()
        return self.start()

    def _close_log(self):
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    # ---------------------------------------------------------------- helpers
    def output(self, tail=8000):
        """The tail of this run's server output (all runs' logs are in log_dir)."""
        if not self.log_path or not self.log_path.exists():
            return "(no output)"
        data = self.log_path.read_bytes()
        return data[-tail:].decode("utf-8", "replace")

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def wait_ready(self, timeout=10):
        """Wait until an ApiVersions round trip works (after start)."""
        from kafka_raw import api_versions_ok
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                if api_versions_ok(self.host, self.kafka_port):
                    return
            except OSError as e:
                last = e
            time.sleep(0.1)
        pytest.fail("ApiVersions does not work on %s (%r)\n%s" % (self.bootstrap, last, self.output()),
                    pytrace=False)


def _make_server(tmp_path_factory, name, extra_env=None):
    base = tmp_path_factory.mktemp(name)
    return ChronikServer(base / "data", base / "logs", extra_env=extra_env, name=name)


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    """One server per test module; stopped with SIGTERM (asserting exit 0) at the end."""
    srv = _make_server(tmp_path_factory, request.module.__name__.split(".")[-1])
    srv.start()
    request.module._chronik_servers = [srv]
    yield srv
    if srv.alive():
        srv.stop()
    else:
        srv.kill9()


@pytest.fixture
def fresh_server(request, tmp_path_factory):
    """A server of its own for a test that restarts or kills the broker."""
    srv = _make_server(tmp_path_factory, request.node.name[:40].replace("[", "_").replace("]", "_"))
    srv.start()
    request.node._chronik_servers = [srv]
    yield srv
    if srv.alive():
        srv.stop()
    else:
        srv.kill9()


@pytest.fixture
def own(request, tmp_path_factory):
    """own(name, **env) starts a server of the test's own (HTTP API up); all are stopped
    (exit 0 asserted) at the end of the test."""
    from http_util import start_server, stop_servers
    made = []

    def make(name, **env):
        s = start_server(request, tmp_path_factory, name, env)
        made.append(s)
        return s

    yield make
    stop_servers(made)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the tail of the server output to the report."""
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        servers = getattr(item, "_chronik_servers", None) or getattr(item.module, "_chronik_servers", None) or []
        for srv in servers:
            rep.sections.append(("chronik-server output (%s, tail)" % srv.name, srv.output(4000)))


# ---------------------------------------------------------------------- client helpers
def kp_admin(server, **kw):
    from kafka.admin import KafkaAdminClient
    return KafkaAdminClient(bootstrap_servers=server.bootstrap, request_timeout_ms=15000,
                            client_id="chronik-it-admin", **kw)


def ck_admin(server):
    from confluent_kafka.admin import AdminClient
    return AdminClient({"bootstrap.servers": server.bootstrap, "socket.timeout.ms": 10000})


def wait_for(pred, timeout=10.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %.1f s waiting for %s (last=%r)" % (timeout, what, last))
