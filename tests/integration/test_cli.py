"""The command line: version, help, settings validated at start with a clear message,
and a TOML config file that environment variables and flags override."""
import os
import subprocess

import kafka_raw as kr
from conftest import SERVER_BIN, ChronikServer, free_ports


def run(args, env=None, timeout=10):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([str(SERVER_BIN)] + args, env=e, capture_output=True, text=True, timeout=timeout)


def test_version_and_help():
    r = run(["version"])
    assert r.returncode == 0 and r.stdout.startswith("chronik-server ")
    r = run(["--help"])
    assert r.returncode == 0
    for word in ("start", "CHRONIK_DATA_DIR", "CHRONIK_KAFKA_PORT", "CHRONIK_WAL_PROFILE", "--config"):
        assert word in r.stdout


def test_bad_settings_are_refused_with_a_message(tmp_path):
    cases = [
        ({"CHRONIK_KAFKA_PORT": "abc"}, [], "CHRONIK_KAFKA_PORT"),
        ({"CHRONIK_WAL_PROFILE": "turbo"}, [], "WAL profile"),
        ({"CHRONIK_DEFAULT_PARTITIONS": "0"}, [], "CHRONIK_DEFAULT_PARTITIONS"),
        ({"CHRONIK_LOG_LEVEL": "loud"}, [], "log level"),
        ({"CHRONIK_ADVERTISED_ADDR": "host:notaport"}, [], "HOST:PORT"),
        ({}, ["--kafka-port", "70000"], "--kafka-port"),
        ({}, ["--no-such-flag"], "unknown flag"),
    ]
    for env, flags, needle in cases:
        env = dict(env, CHRONIK_DATA_DIR=str(tmp_path / "d"))
        r = run(["start"] + flags, env=env)
        assert r.returncode == 2, (env, flags, r.stderr)
        assert needle in r.stderr, (needle, r.stderr)
    bad = tmp_path / "bad.toml"
    bad.write_text('kafka_port = "unterminated\n')
    r = run(["start", "-c", str(bad)], env={"CHRONIK_DATA_DIR": str(tmp_path / "d")})
    assert r.returncode == 2 and "bad.toml" in r.stderr


def test_config_file_and_precedence(tmp_path):
    file_port, env_port = free_ports(2)
    cfg = tmp_path / "chronik.toml"
    cfg.write_text('kafka_port = %d\ndefault_partitions = 5\nwal_profile = "medium"\n' % file_port)
    srv = ChronikServer(tmp_path / "data", tmp_path / "logs", name="cli")
    srv.kafka_port = file_port
    # the file's port is used when the environment does not set one
    env = srv.env()
    for k in ("CHRONIK_KAFKA_PORT", "CHRONIK_WAL_PROFILE", "CHRONIK_DEFAULT_PARTITIONS"):
        del env[k]
    p = subprocess.Popen([str(SERVER_BIN), "start", "--config", str(cfg)], env=env,
                         stderr=subprocess.PIPE, text=True)
    try:
        srv.wait_ready()
        with kr.Conn("127.0.0.1", file_port) as c:
            assert kr.api_versions(c)[0] == 0
    finally:
        p.terminate()
        assert p.wait(20) == 0
    assert "WAL profile medium" in p.stderr.read()
    # the environment wins over the file
    env["CHRONIK_KAFKA_PORT"] = str(env_port)
    p = subprocess.Popen([str(SERVER_BIN), "start", "-c", str(cfg)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        srv.kafka_port = env_port
        srv.wait_ready()
    finally:
        p.terminate()
        assert p.wait(20) == 0


def test_second_server_on_the_same_data_dir_is_refused(server):
    r = run(["start"], env={"CHRONIK_DATA_DIR": str(server.data_dir),
                            "CHRONIK_KAFKA_PORT": str(free_ports(1)[0])})
    assert r.returncode != 0 and "in use" in r.stderr
