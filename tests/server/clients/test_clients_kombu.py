"""kombu's Redis transport and Celery against `kvdb serve`, as their users run them.

kombu keeps a queue in a list (LPUSH, BRPOP over several keys), its bindings in sets,
unacknowledged messages in a hash plus a sorted set (restored on close), and uses
pub/sub for fanout. Celery runs on kombu: a task is sent, an in-process worker
(celery.contrib.testing.worker.start_worker, solo pool) runs it, and the result comes
back through the Redis result backend (SET + PUBLISH, read with SUBSCRIBE)."""
import time

import pytest


kombu = pytest.importorskip("kombu")
from kombu import Connection, Exchange, Queue  # noqa: E402

TIMEOUT = 10
pytestmark = pytest.mark.timeout(60)   # pytest-timeout (the test extra): no test here hangs the run


def connect(target):
    # polling_interval: how long BRPOP blocks per round
    return Connection(target.url, connect_timeout=TIMEOUT, transport_options={"polling_interval": 1})


def test_simple_queue_round_trip(target):
    with connect(target) as conn:
        q = conn.SimpleQueue("kq")
        sent = [{"n": i, "body": "x" * i, "tags": ["a", i]} for i in range(8)]
        for m in sent:
            q.put(m)
        assert q.qsize() == 8
        got = []
        for _ in sent:
            msg = q.get(block=True, timeout=TIMEOUT)
            got.append(msg.payload)
            msg.ack()
        assert got == sent
        with pytest.raises(q.Empty):
            q.get(block=True, timeout=0.5)
        q.close()


def test_unacked_message_is_restored_when_the_consumer_goes_away(target):
    with connect(target) as conn:
        q = conn.SimpleQueue("restore")
        q.put({"job": 1})
        q.put({"job": 2})
        msg = q.get(timeout=TIMEOUT)
        assert msg.payload == {"job": 1}
        # never acked: the consumer closes (as a worker that stops does)
        q.close()
    with connect(target) as conn:
        q = conn.SimpleQueue("restore")
        got = sorted(q.get(timeout=TIMEOUT).payload["job"] for _ in range(2))
        assert got == [1, 2]
        q.close()


def test_reject_requeue_and_priorities(target):
    with connect(target) as conn:
        # on kombu's Redis transport a lower number is served first (0 is the highest)
        q = conn.SimpleQueue("prio", queue_opts={"max_priority": 9})
        q.put({"p": "low"}, priority=9)
        q.put({"p": "high"}, priority=0)
        first = q.get(timeout=TIMEOUT)
        assert first.payload == {"p": "high"}
        first.requeue()
        again = q.get(timeout=TIMEOUT)
        assert again.payload == {"p": "high"}
        again.ack()
        last = q.get(timeout=TIMEOUT)
        assert last.payload == {"p": "low"}
        last.reject()
        with pytest.raises(q.Empty):
            q.get(timeout=0.5)
        q.close()


def test_producer_consumer_with_a_direct_exchange(target):
    exchange = Exchange("tasks", type="direct")
    queue = Queue("work", exchange, routing_key="work")
    received = []
    with connect(target) as conn:
        producer = conn.Producer(serializer="json")
        for i in range(5):
            producer.publish({"i": i}, exchange=exchange, routing_key="work", declare=[queue])

        def on_message(body, message):
            received.append(body["i"])
            message.ack()

        with conn.Consumer(queue, callbacks=[on_message]):
            deadline = time.monotonic() + TIMEOUT
            while len(received) < 5 and time.monotonic() < deadline:
                try:
                    conn.drain_events(timeout=1)
                except TimeoutError:
                    pass
    assert received == [0, 1, 2, 3, 4]


# -- Celery ----------------------------------------------------------------------------


def bounded_worker_class():
    """celery's TestWorkController waits for the worker without a timeout: one that waits
    TIMEOUT seconds, then stops the worker thread and fails."""
    from celery.contrib.testing.worker import TestWorkController

    class BoundedWorkController(TestWorkController):
        __test__ = False

        def ensure_started(self):
            if not self._on_started.wait(TIMEOUT):
                self.stop(in_sighandler=False)
                raise RuntimeError(f"the Celery worker was not ready within {TIMEOUT} s")

    return BoundedWorkController


def test_celery_task_round_trip(target):
    celery = pytest.importorskip("celery")
    from celery.contrib.testing.worker import start_worker

    app = celery.Celery(f"kvdb_test_{target.name}", broker=target.url, backend=target.url)
    app.conf.update(broker_connection_retry_on_startup=False, broker_connection_retry=False,
                    broker_connection_max_retries=1, broker_transport_options={"polling_interval": 1},
                    result_backend_transport_options={"socket_timeout": TIMEOUT}, redis_socket_timeout=TIMEOUT,
                    result_expires=600, task_acks_late=True, worker_hijack_root_logger=False)

    @app.task(name=f"kvdb_test.{target.name}.mul")
    def mul(a, b):
        return a * b

    @app.task(name=f"kvdb_test.{target.name}.boom")
    def boom():
        raise ValueError("task failed on purpose")

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=TIMEOUT,
                      WorkController=bounded_worker_class()):
        results = [mul.delay(i, 7) for i in range(5)]
        assert [res.get(timeout=TIMEOUT) for res in results] == [0, 7, 14, 21, 28]
        failing = boom.delay()
        with pytest.raises(ValueError, match="on purpose"):
            failing.get(timeout=TIMEOUT)
        assert failing.state == "FAILURE"
        group = celery.group(mul.s(i, i) for i in range(4))()
        assert group.get(timeout=TIMEOUT) == [0, 1, 4, 9]
