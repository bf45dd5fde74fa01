"""Consumer groups (classic protocol) with real clients: three members over six
partitions; joins, leaves and a killed member rebalance so that every partition has
exactly one owner; consumption resumes from committed offsets; admin describe/list/delete."""
import subprocess
import sys
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from conftest import ck_admin, unique_topic, wait_for

PARTS = 6

# A group member in its own process, so that it can be killed for real.
VICTIM = """
import sys
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2], "client.id": "victim",
              "session.timeout.ms": 6000, "heartbeat.interval.ms": 500, "enable.auto.commit": False})
said = []
def on_assign(c, parts):
    if parts and not said:
        said.append(1)
        print("assigned", flush=True)
c.subscribe([sys.argv[3]], on_assign=on_assign)
while True:
    c.poll(0.2)
"""


def make_topic(srv, parts=PARTS):
    t = unique_topic("grp")
    admin = ck_admin(srv)
    admin.create_topics([NewTopic(t, parts, 1)])[t].result(20)
    return t


def produce(srv, topic, n, start=0):
    p = Producer({"bootstrap.servers": srv.bootstrap, "acks": "all"})
    for i in range(start, start + n):
        p.produce(topic, str(i).encode(), partition=i % PARTS)
    assert p.flush(20) == 0


class Member(threading.Thread):
    """A confluent-kafka group member that polls in its own thread and records its
    assignment and what it consumed."""

    def __init__(self, srv, group, topic, name, commit=True):
        super().__init__(daemon=True)
        self.c = Consumer({"bootstrap.servers": srv.bootstrap, "group.id": group,
                           "client.id": name, "enable.auto.commit": False,
                           "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
                           "heartbeat.interval.ms": 500, "topic.metadata.refresh.interval.ms": 1000})
        self.topic, self.commit = topic, commit
        self.stop_evt = threading.Event()
        self.assigned = set()
        self.seen = []
        self.commit_errors = []
        self.lock = threading.Lock()
        self.c.subscribe([topic], on_assign=self._assign, on_revoke=self._revoke)

    def _assign(self, c, parts):
        with self.lock:
            self.assigned = {p.partition for p in parts}

    def _revoke(self, c, parts):
        with self.lock:
            self.assigned = set()

    def run(self):
        while not self.stop_evt.is_set():
            m = self.c.poll(0.2)
            if m is None or m.error():
                continue
            with self.lock:
                self.seen.append(int(m.value()))
            if self.commit:
                try:
                    self.c.commit(message=m, asynchronous=False)
                except KafkaException as e:
                    # a commit racing a rebalance is refused (REBALANCE_IN_PROGRESS,
                    # ILLEGAL_GENERATION...): the next owner re-reads from the last commit
                    with self.lock:
                        self.commit_errors.append(e.args[0].code())

    def finish(self, close=True):
        self.stop_evt.set()
        self.join(10)
        if close:
            self.c.close()


def owners(members):
    out = {}
    for m in members:
        with m.lock:
            for p in m.assigned:
                out.setdefault(p, []).append(m)
    return out


def balanced(members):
    o = owners(members)
    return sorted(o) == list(range(PARTS)) and all(len(v) == 1 for v in o.values())


def test_three_members_rebalance_and_resume(server):
    topic = make_topic(server)
    group = unique_topic("g")
    ms = [Member(server, group, topic, "m%d" % i) for i in range(3)]
    for m in ms:
        m.start()
    wait_for(lambda: balanced(ms), 30, 0.1, "3 members to share 6 partitions")
    produce(server, topic, 60)
    wait_for(lambda: sum(len(m.seen) for m in ms) >= 60, 30, 0.1, "60 records consumed")
    # a 4th member joins: still one owner per partition
    m4 = Member(server, group, topic, "m3")
    m4.start()
    ms.append(m4)
    wait_for(lambda: balanced(ms) and all(m.assigned for m in ms), 30, 0.1, "rebalance after a join")
    everyone = list(ms)
    # one leaves cleanly
    ms[0].finish()
    ms = ms[1:]
    wait_for(lambda: balanced(ms), 30, 0.1, "rebalance after a leave")
    produce(server, topic, 60, start=60)
    wait_for(lambda: len({v for m in everyone for v in m.seen}) >= 120, 30, 0.1, "records after rebalance")
    # a member in another process is killed (SIGKILL): it never leaves, its session expires
    victim = subprocess.Popen([sys.executable, "-c", VICTIM, server.bootstrap, group, topic],
                              stdout=subprocess.PIPE, text=True)
    assert victim.stdout.readline().strip() == "assigned"
    wait_for(lambda: not balanced(ms), 30, 0.1, "the outside member to take partitions")
    victim.kill()
    victim.wait(10)
    wait_for(lambda: balanced(ms), 40, 0.2, "rebalance after a session expiry")
    produce(server, topic, 60, start=120)
    wait_for(lambda: len({v for m in everyone for v in m.seen}) >= 180, 30, 0.1, "all records")
    for m in ms:
        m.finish()
    assert {v for m in everyone for v in m.seen} == set(range(180))


def test_committed_offsets_resume_after_restart(fresh_server):
    srv = fresh_server
    topic = make_topic(srv)
    group = unique_topic("g")
    produce(srv, topic, 30)
    m = Member(srv, group, topic, "a")
    m.start()
    wait_for(lambda: len(m.seen) >= 30, 30, 0.1, "first 30 consumed and committed")
    m.finish()
    srv.kill9()
    srv.start()
    produce(srv, topic, 30, start=30)
    m2 = Member(srv, group, topic, "b")
    m2.start()
    wait_for(lambda: len(m2.seen) >= 30, 30, 0.1, "the next 30")
    time.sleep(1)
    m2.finish()
    # nothing committed before the crash is delivered again
    assert sorted(m2.seen) == list(range(30, 60))


def test_admin_describe_list_delete(server):
    from confluent_kafka.admin import AdminClient
    topic = make_topic(server)
    group = unique_topic("g")
    m = Member(server, group, topic, "solo")
    m.start()
    wait_for(lambda: len(m.assigned) == PARTS, 30, 0.1, "assignment")
    admin = ck_admin(server)
    listed = admin.list_groups(timeout=10)
    mine = [g for g in listed if g.id == group]
    assert mine and mine[0].state == "Stable" and len(mine[0].members) == 1
    assert mine[0].members[0].client_id == "solo"
    m.finish()
    wait_for(lambda: [g for g in admin.list_groups(group=group, timeout=10) if g.state in ("Empty", "Dead")],
             20, 0.2, "group empty after leave")


def test_kafka_python_group(server):
    from kafka import KafkaConsumer
    topic = make_topic(server)
    produce(server, topic, 20)
    c = KafkaConsumer(topic, bootstrap_servers=server.bootstrap, group_id=unique_topic("kp"),
                      auto_offset_reset="earliest", consumer_timeout_ms=15000)
    got = set()
    for msg in c:
        got.add(int(msg.value))
        if len(got) == 20:
            break
    c.commit()
    c.close()
    assert got == set(range(20))


STATIC = """
import sys
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2], "client.id": "static",
              "group.instance.id": "instance-1", "session.timeout.ms": 10000,
              "heartbeat.interval.ms": 500, "enable.auto.commit": False})
def on_assign(c, parts):
    print("assigned", ",".join(str(p.partition) for p in parts), flush=True)
c.subscribe([sys.argv[3]], on_assign=on_assign)
while True:
    c.poll(0.2)
"""


def test_static_member_rejoins_without_rebalance(server):
    topic = make_topic(server)
    group = unique_topic("static")
    dyn = Member(server, group, topic, "dynamic", commit=False)
    changes = []
    orig = dyn._assign
    def counting(c, parts):
        changes.append(sorted(p.partition for p in parts))
        orig(c, parts)
    dyn.c.subscribe([topic], on_assign=counting, on_revoke=dyn._revoke)
    dyn.start()
    first = subprocess.Popen([sys.executable, "-c", STATIC, server.bootstrap, group, topic],
                             stdout=subprocess.PIPE, text=True)
    try:
        line = first.stdout.readline().split()
        while line and line[0] == "assigned" and (len(line) < 2 or not line[1]):
            line = first.stdout.readline().split()
        static_parts = line[1]
        wait_for(lambda: balanced([dyn]) is False and len(dyn.assigned) == PARTS - len(static_parts.split(",")),
                 30, 0.1, "the two members to share the partitions")
        n_changes = len(changes)
        first.kill()  # no LeaveGroup: a static member's session outlives the process
        first.wait(10)
        second = subprocess.Popen([sys.executable, "-c", STATIC, server.bootstrap, group, topic],
                                  stdout=subprocess.PIPE, text=True)
        try:
            line = second.stdout.readline().split()
            assert line[0] == "assigned" and line[1] == static_parts, line
            time.sleep(2)
            assert len(changes) == n_changes, "the other member was rebalanced: %r" % changes
        finally:
            second.kill()
            second.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
        dyn.finish()


def test_two_groups_on_one_topic_are_independent(server):
    topic = make_topic(server)
    produce(server, topic, 12)
    a = Member(server, unique_topic("ga"), topic, "a")
    b = Member(server, unique_topic("gb"), topic, "b")
    a.start()
    b.start()
    wait_for(lambda: len(set(a.seen)) == 12 and len(set(b.seen)) == 12, 30, 0.1, "both groups read all")
    a.finish()
    b.finish()


def test_kafka_python_admin_describe_list_offsets_delete(server):
    from conftest import kp_admin
    from kafka.errors import GroupIdNotFoundError, NonEmptyGroupError
    topic = make_topic(server)
    produce(server, topic, 12)
    group = unique_topic("kpa")
    m = Member(server, group, topic, "described")
    m.start()
    wait_for(lambda: len(set(m.seen)) == 12 and len(m.assigned) == PARTS, 30, 0.1, "member consumed all")
    admin = kp_admin(server)
    try:
        (desc,) = admin.describe_consumer_groups([group])
        assert desc.state == "Stable" and desc.protocol_type == "consumer"
        assert len(desc.members) == 1 and desc.members[0].client_id == "described"
        assert (group, "consumer") in admin.list_consumer_groups()
        offs = admin.list_consumer_group_offsets(group)
        assert sum(o.offset for o in offs.values()) == 12
        # a group with a member cannot be deleted
        res = dict(admin.delete_consumer_groups([group]))
        # kafka-python gives the error class for a failed group, NoError for a deleted one
        is_err = lambda x, cls: x is cls or isinstance(x, cls)
        assert is_err(res[group], NonEmptyGroupError), res
        m.finish()
        wait_for(lambda: admin.describe_consumer_groups([group])[0].state == "Empty", 20, 0.2, "empty group")
        res = dict(admin.delete_consumer_groups([group, "no-such-group"]))
        assert getattr(res[group], "errno", None) == 0, res
        assert is_err(res["no-such-group"], GroupIdNotFoundError), res
        assert admin.list_consumer_group_offsets(group) == {}
        assert admin.describe_consumer_groups([group])[0].state == "Dead"
    finally:
        admin.close()
        if m.is_alive():
            m.finish()


def test_kafka_python_three_members_share_six_partitions(server):
    from kafka import KafkaConsumer
    topic = make_topic(server)
    group = unique_topic("kp3")
    produce(server, topic, 60)
    stop = threading.Event()
    state = {}
    seen = set()
    lock = threading.Lock()

    def run(name):
        c = KafkaConsumer(topic, bootstrap_servers=server.bootstrap, group_id=group, client_id=name,
                          auto_offset_reset="earliest", enable_auto_commit=False,
                          session_timeout_ms=10000, heartbeat_interval_ms=500)
        try:
            while not stop.is_set():
                recs = c.poll(timeout_ms=200)
                with lock:
                    for msgs in recs.values():
                        seen.update(int(m.value) for m in msgs)
                    state[name] = {tp.partition for tp in c.assignment()}
                if recs:
                    try:
                        c.commit()
                    except Exception:  # a commit racing a rebalance is refused; retried next poll
                        pass
        finally:
            c.close()

    threads = [threading.Thread(target=run, args=("kp%d" % i,), daemon=True) for i in range(3)]
    for t in threads:
        t.start()

    def shared():
        with lock:
            parts = [p for s in state.values() for p in s]
            return len(state) == 3 and all(state.values()) and sorted(parts) == list(range(PARTS))
    try:
        wait_for(shared, 40, 0.2, "3 kafka-python members to own 2 partitions each")
        wait_for(lambda: len(seen) == 60, 30, 0.2, "all records consumed")
    finally:
        stop.set()
        for t in threads:
            t.join(15)
