"""A background confluent-kafka producer of numbered records (value = the number, sent to
partition number % partitions), remembering every acknowledgement as (partition,
offset, number). The crash and idempotence tests kill the broker under it."""
import threading

from confluent_kafka import Producer


class NumberedSender(threading.Thread):
    def __init__(self, bootstrap, topic, partitions, **conf):
        super().__init__(daemon=True)
        self.topic, self.partitions = topic, partitions
        self.stop_evt = threading.Event()
        self.acked = []   # (partition, offset, number)
        self.failed = []  # (number, error): delivery failures, reported by the tests
        self.fatal = []   # fatal client errors (idempotence violations)
        self.sent = 0
        self.lock = threading.Lock()
        settings = {
            "bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": False,
            "retry.backoff.ms": 50, "request.timeout.ms": 5000, "socket.timeout.ms": 5000,
            "reconnect.backoff.ms": 20, "reconnect.backoff.max.ms": 200,
            "linger.ms": 2, "queue.buffering.max.messages": 20000,
            "max.in.flight.requests.per.connection": 5, "error_cb": self._err,
        }
        settings.update(conf)
        self.p = Producer(settings)

    def _err(self, err):
        if err.fatal():
            with self.lock:
                self.fatal.append(str(err))

    def _dr(self, err, msg):
        n = int(msg.value())
        with self.lock:
            if err is None:
                self.acked.append((msg.partition(), msg.offset(), n))
            else:
                self.failed.append((n, str(err)))

    def acked_count(self):
        with self.lock:
            return len(self.acked)

    def run(self, flush_timeout=40):
        n = 0
        while not self.stop_evt.is_set():
            try:
                self.p.produce(self.topic, value=str(n).encode(), partition=n % self.partitions,
                               on_delivery=self._dr)
                n += 1
                self.sent = n
            except BufferError:
                self.p.poll(0.05)
                continue
            self.p.poll(0)
            if n % 20 == 0:
                self.p.poll(0.01)  # keeps the rate bounded (<= ~2000 records/s)
        self.p.flush(flush_timeout)


def kill9_under_load(srv, sender, acks_before, acks_after, ready=None, ready_what="", jitter=0.4):
    """Starts sender, waits for acks_before acknowledgements (and ready(), if given), kills
    the server with SIGKILL at a random instant within jitter seconds, restarts it, waits
    for acks_after more acknowledgements, then stops the sender."""
    import random
    import time

    from conftest import wait_for
    from http_util import wait_http
    sender.start()
    try:
        wait_for(lambda: sender.acked_count() > acks_before, 20, 0.02, "acks before the kill")
        if ready:
            wait_for(ready, 20, 0.02, ready_what)
        time.sleep(random.uniform(0.0, jitter))
        srv.kill9()
        time.sleep(0.2)
        srv.start()
        wait_http(srv)
        before = sender.acked_count()
        wait_for(lambda: sender.acked_count() > before + acks_after, 20, 0.02, "acks after the restart")
    finally:
        sender.stop_evt.set()
        sender.join(45)
