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
