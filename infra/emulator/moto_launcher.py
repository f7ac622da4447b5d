"""Starts moto in server mode, with narrow fixes for chaos experiments.

Stock moto 5.2.5 slows down as a queue fills, which is exactly what chaos
experiments and benchmarks do to it:

1. SQS `SendMessage` (which SNS fan-out and EventBridge delivery also go
   through) reads one setting, `ContentBasedDeduplication`, through
   `Queue.attributes`, a property that computes *every* attribute, among them
   three counts that walk the whole queue.
2. `ReceiveMessage` checks each returned message against the retention period,
   which it reads through `get_queue_attributes`, so the same walk happens once
   per returned message.
3. EventBridge delivery compiles the same JSONPath expressions with
   `jsonpath_ng.ext.parse` (a PLY parser build) several times per event and
   target.

The fixes (none of them with MOTO_STOCK=1): `Queue.attributes` becomes a read-only mapping that computes an
attribute when it is read (reading all of them costs what it did before), and
`jsonpath_ng.ext.parse` is memoised. Neither changes what moto answers; the
self-test below compares the mapping with the stock property on queues of
every kind.

One more fix is about correctness, not speed. SQS hands out a FIFO queue's
messages of one group only while none of that group is in flight. moto checks
that against a snapshot taken when `ReceiveMessage` starts, and a long poll
keeps its snapshot while it waits: two consumers polling one FIFO queue at
once can each take a message of the same group, so an order's cancellation is
handled beside its placement. The fix lets one `ReceiveMessage` at a time run
on a FIFO queue (standard queues are untouched); the self-test shows the
stock race and its absence.

The server keeps connections alive. moto serves on werkzeug's development
server, which answers every request with `Connection: close`, so each SDK
call of the services opened a TCP connection of its own (18 % of their CPU
in a profile, BENCHMARKS.md). The launcher's request handler answers
HTTP/1.1 requests on the same connection instead: it reads the whole request
body before calling moto (so nothing of it is left to be taken for the next
request), buffers moto's answer and sends it with its `Content-Length`. A
request with a chunked body, or an HTTP/1.0 request without keep-alive, is
answered as werkzeug does and the connection closed. An idle connection is
closed after `IDLE_TIMEOUT_SECONDS`, longer than the AWS SDK's own pool keeps
one. The self-test sends several requests on one connection and checks that
the server accepted one.

They are applied only to the pinned version whose code was read: the launcher
checks moto's version and a hash of the source of every function the fixes
stand in for, and refuses to start (exit status 3) when either differs, rather
than patch code it does not know. `MOTO_STOCK=1` (or `--stock`) runs moto
unchanged.

    python moto_launcher.py [--stock] -H 127.0.0.1 -p 4566   # serve
    python moto_launcher.py --verify                          # check, self-test, exit
"""

import functools
import hashlib
import inspect
import io
import json
import os
import sys
import threading
import time
from collections.abc import Mapping

PINNED_VERSION = "5.2.5"

# sha256 of inspect.getsource() of the code the fixes replace or rely on, as
# read in moto 5.2.5. A moto upgrade changes these and stops the launcher.
EXPECTED_SOURCES = {
    "moto.sqs.models.Queue.attributes": "40cb990b121628d535cecbcd0e0d333984024633b70a097489ae8611e1a59338",
    "moto.sqs.models.SQSBackend.send_message": "bf161af09a9e6b860e3dd5d8f58ccc802623caa86883fab9b2ffb333f8f70330",
    "moto.sqs.models.SQSBackend.is_message_valid_based_on_retention_period": "cca23b94a5f3af9d9c5af1c09ee5e615017bdf6bd032301cb321c06c7e595d4b",
    "moto.sqs.models.SQSBackend.get_queue_attributes": "58417223da457b5a0aac5ccc31b6646ed9b22c3b276a0f0d9fd5f3f13bd797ec",
    "moto.events.utils.EventTemplateParser.parse": "40a5a46a321811bb2643aaabb7b45c37f75644fcce9cb95524e729a43f0d97d7",
    "moto.sqs.models.SQSBackend.receive_message": "065f3e5e7d2144089ce3b5d16d9306243ccd2f3ee11b44beb851292fadb7652f",
    "moto.server.main": "c9725ea408aa207ad45ed4232cca8507a78fce8f17cba8292e3da4cabe1031d5",
}

# How long the server keeps an idle connection: past the AWS SDK's pool idle
# timeout (90 s), so the client, not the server, closes an idle one and never
# sends a request on a connection the server is closing.
IDLE_TIMEOUT_SECONDS = 120


class StaleFix(Exception):
    """The installed moto is not the code these fixes were written for."""


def _sources():
    import moto.server
    from moto.events.utils import EventTemplateParser
    from moto.sqs.models import Queue, SQSBackend

    return {
        "moto.sqs.models.Queue.attributes": Queue.attributes.fget,
        "moto.sqs.models.SQSBackend.send_message": SQSBackend.send_message,
        "moto.sqs.models.SQSBackend.is_message_valid_based_on_retention_period": SQSBackend.is_message_valid_based_on_retention_period,
        "moto.sqs.models.SQSBackend.get_queue_attributes": SQSBackend.get_queue_attributes,
        "moto.events.utils.EventTemplateParser.parse": EventTemplateParser.parse,
        "moto.sqs.models.SQSBackend.receive_message": SQSBackend.receive_message,
        # It passes the module's `MotoRequestHandler` to werkzeug, which the
        # keep-alive handler replaces.
        "moto.server.main": moto.server.main,
    }


def source_hashes():
    return {
        name: hashlib.sha256(inspect.getsource(fn).encode()).hexdigest()
        for name, fn in _sources().items()
    }


def check_pinned():
    """Raises StaleFix unless moto is the version and code the fixes know."""
    import moto

    if moto.__version__ != PINNED_VERSION:
        raise StaleFix(
            f"moto {moto.__version__} is installed; the fixes were written for {PINNED_VERSION}"
        )
    changed = [
        name
        for name, digest in source_hashes().items()
        if EXPECTED_SOURCES.get(name) != digest
    ]
    if changed:
        raise StaleFix("moto's source changed in: " + ", ".join(changed))


class QueueAttributes(Mapping):
    """A queue's attributes, each computed when it is read.

    The same names and values as stock `Queue.attributes`: every base
    attribute (`Policy` and `RedrivePolicy` may be None), the FIFO ones on a
    FIFO queue, the KMS ones when a key is set, `RedrivePolicy` as JSON, and
    booleans as "true"/"false".
    """

    def __init__(self, queue):
        self._queue = queue

    def _names(self):
        q = self._queue
        names = list(q.BASE_ATTRIBUTES)
        if q.fifo_queue:
            names += q.FIFO_ATTRIBUTES
        if q.kms_master_key_id:
            names += q.KMS_ATTRIBUTES
        return names

    def __getitem__(self, name):
        from moto.core.utils import camelcase_to_underscores

        if name not in self._names():
            raise KeyError(name)
        q = self._queue
        if name == "RedrivePolicy" and q.redrive_policy:
            return json.dumps(q.redrive_policy)
        value = getattr(q, camelcase_to_underscores(name))
        if isinstance(value, bool):
            return str(value).lower()
        return value

    def __iter__(self):
        return iter(self._names())

    def __len__(self):
        return len(self._names())


def one_receive_at_a_time_on_fifo_queues(receive):
    """Wraps `SQSBackend.receive_message` so that FIFO receives take turns."""
    locks = {}
    guard = threading.Lock()

    @functools.wraps(receive)
    def receive_message(self, queue_name, *args, **kwargs):
        queue = self.get_queue(queue_name)
        if not queue.fifo_queue:
            return receive(self, queue_name, *args, **kwargs)
        with guard:
            lock = locks.setdefault(queue.queue_arn, threading.Lock())
        with lock:
            return receive(self, queue_name, *args, **kwargs)

    receive_message.stock = receive
    receive_message.locks = locks
    return receive_message


def keep_alive_handler():
    """moto's request handler, answering HTTP/1.1 requests on the same connection."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.exceptions import InternalServerError

    class KeepAliveRequestHandler(MotoRequestHandler):
        protocol_version = "HTTP/1.1"
        # A socket timeout: an idle connection ends after this.
        timeout = IDLE_TIMEOUT_SECONDS

        def run_wsgi(self):
            length = self.headers.get("Content-Length", "0")
            chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
            if chunked or not length.isdigit():
                # werkzeug's own way, which closes the connection.
                self.close_connection = True
                return super().run_wsgi()
            if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = self.rfile.read(int(length))
            if len(body) < int(length):
                self.close_connection = True
                return None
            self.environ = environ = self.make_environ()
            environ["wsgi.input"] = io.BytesIO(body)
            environ["wsgi.input_terminated"] = True
            status, headers, content = self._call(environ)
            code, _, reason = status.partition(" ")
            code = int(code)
            self.send_response(code, reason)
            for name, value in headers:
                if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(name, value)
            bodiless = self.command == "HEAD" or 100 <= code < 200 or code in (204, 304)
            if not bodiless:
                self.send_header("Content-Length", str(len(content)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if not bodiless:
                self.wfile.write(content)
            self.wfile.flush()
            return None

        def _call(self, environ):
            """Runs the application; returns its status, headers and whole body."""
            answer = {}

            def start_response(status, headers, exc_info=None):
                if exc_info and answer:
                    raise exc_info[1].with_traceback(exc_info[2])
                answer["status"], answer["headers"] = status, headers
                return chunks.append

            chunks = []
            try:
                result = self.server.app(environ, start_response)
                try:
                    chunks.extend(result)
                finally:
                    if hasattr(result, "close"):
                        result.close()
            except Exception:
                if self.server.passthrough_errors:
                    raise
                import traceback

                self.log_error("Error on request:\n%s", traceback.format_exc())
                self.close_connection = True
                answer.clear()
                chunks = []
                chunks.extend(InternalServerError()(environ, start_response))
            return answer["status"], answer["headers"], b"".join(chunks)

        def log_error(self, format, *args):
            # An idle connection timing out is how keep-alive ends, not an error.
            if not format.startswith("Request timed out"):
                super().log_error(format, *args)

    return KeepAliveRequestHandler


def serve_with_keep_alive():
    """Makes `moto.server.main` serve with the keep-alive handler."""
    import moto.server

    moto.server.MotoRequestHandler = keep_alive_handler()


def apply_fixes():
    import jsonpath_ng.ext
    from moto.sqs.models import Queue, SQSBackend

    check_pinned()
    Queue.stock_attributes = Queue.attributes
    Queue.attributes = property(QueueAttributes)
    SQSBackend.receive_message = one_receive_at_a_time_on_fifo_queues(SQSBackend.receive_message)
    # EventTemplateParser.parse imports `parse` from the module at each call,
    # so replacing the module attribute is enough. Parsed expressions hold no
    # per-call state.
    jsonpath_ng.ext.parse = functools.lru_cache(maxsize=512)(jsonpath_ng.ext.parse)
    serve_with_keep_alive()


def self_test():
    """Compares the fixed attributes with the stock property on every kind of queue."""
    from moto.sqs.models import sqs_backends

    # The registry, not a fresh backend: redrive policies look DLQs up there.
    backend = sqs_backends["123456789012"]["us-east-1"]
    dlq = backend.create_queue("self-test-dlq")
    backend.create_queue(
        "self-test",
        tags=None,
        RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq.queue_arn, "maxReceiveCount": 5}),
        Policy=json.dumps({"Version": "2012-10-17", "Statement": []}),
        VisibilityTimeout="7",
    )
    backend.create_queue("self-test.fifo", tags=None, FifoQueue="true", ContentBasedDeduplication="true")
    backend.create_queue("self-test-kms", tags=None, KmsMasterKeyId="alias/aws/sqs")
    backend.send_message("self-test", "one")
    backend.send_message("self-test", "two", delay_seconds=30)
    backend.receive_message("self-test", 1, 0, 5)
    backend.send_message("self-test.fifo", "three", group_id="g")
    for queue in backend.queues.values():
        fixed = dict(queue.attributes)
        stock = queue.stock_attributes
        if fixed != stock:
            raise AssertionError(f"{queue.name}: fixed {fixed} != stock {stock}")
        one = backend.get_queue_attributes(queue.name, ["MessageRetentionPeriod", "VisibilityTimeout"])
        if one != {k: stock[k] for k in ("MessageRetentionPeriod", "VisibilityTimeout")}:
            raise AssertionError(f"{queue.name}: get_queue_attributes gave {one}")
    import jsonpath_ng.ext

    first = jsonpath_ng.ext.parse("$.detail")
    if jsonpath_ng.ext.parse("$.detail") is not first:
        raise AssertionError("jsonpath_ng.ext.parse is not memoised")
    if [m.value for m in first.find({"detail": {"a": 1}})] != [{"a": 1}]:
        raise AssertionError("a memoised JSONPath expression finds nothing")
    from moto.sqs.models import SQSBackend

    fixed = SQSBackend.receive_message

    def both_long_polling(queue):
        return len(queue._messages_lock._waiters) >= 2

    def one_polling_one_waiting(queue):
        lock = fixed.locks.get(queue.queue_arn)
        return len(queue._messages_lock._waiters) == 1 and lock is not None and lock.locked()

    if fifo_receives(fixed.stock, both_long_polling) != ["second"]:
        raise AssertionError("stock moto no longer shows the FIFO race: review the fix")
    if fifo_receives(fixed, one_polling_one_waiting) != []:
        raise AssertionError("a FIFO group was handed to two consumers at once")
    keep_alive_self_test()


def keep_alive_self_test():
    """Several requests on one connection are answered on it, bodies and
    all, by a server that accepted that one connection; an HTTP/1.0 client
    still gets its connection closed."""
    import http.client
    import socket

    import logging

    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    accepted = []

    class Counting(keep_alive_handler()):
        def setup(self):
            accepted.append(self.client_address)
            super().setup()

    def app(environ, start_response):
        # Reads no body: the handler must not leave it for the next request.
        if environ["PATH_INFO"] == "/chunked":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return iter([b"one ", b"two"])
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Counting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        sock = None
        for i, path in enumerate(["/", "/", "/chunked", "/", "/"]):
            conn.request("POST", path, body=b"x" * (i * 1000), headers={"Content-Type": "text/plain"})
            response = conn.getresponse()
            body = response.read()
            want = b"one two" if path == "/chunked" else b"ok"
            if body != want or response.status != 200:
                raise AssertionError(f"request {i}: {response.status} {body!r}")
            if response.getheader("Connection", "").lower() == "close":
                raise AssertionError(f"request {i} was answered with Connection: close")
            sock = sock or conn.sock
            if conn.sock is not sock:
                raise AssertionError(f"request {i} went out on a new connection")
        conn.close()
        if len(accepted) != 1:
            raise AssertionError(f"five requests took {len(accepted)} connections")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as old:
            old.sendall(b"GET / HTTP/1.0\r\n\r\n")
            answer = b""
            while chunk := old.recv(4096):
                answer += chunk
        if not answer.startswith(b"HTTP/1.1 200") or not answer.endswith(b"ok"):
            raise AssertionError(f"an HTTP/1.0 request got {answer!r}")
    finally:
        server.shutdown()
        server.server_close()


def until(what, condition, deadline=5.0):
    """Waits for `condition()` to hold, at most `deadline` seconds."""
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def fifo_receives(receive_message, both_inside):
    """Two consumers long-poll one FIFO queue; two messages of one group
    arrive one after the other, the first staying in flight. Returns what the
    consumer that did not get the first message got: nothing on SQS.

    `both_inside(queue)` says when both consumers are in place: both
    long-polling (stock), or one long-polling and one waiting for its turn."""
    from moto.sqs.models import sqs_backends

    backend = sqs_backends["123456789012"]["us-east-1"]
    name = f"self-test-{time.monotonic_ns()}.fifo"
    queue = backend.create_queue(name, tags=None, FifoQueue="true", ContentBasedDeduplication="true")
    got = {}

    def consume(who):
        got[who] = [m.body for m in receive_message(backend, name, 10, 2, 30)]

    consumers = [threading.Thread(target=consume, args=(who,)) for who in ("a", "b")]
    for c in consumers:
        c.start()
    until("both consumers to be in place", lambda: both_inside(queue))
    backend.send_message(name, "first", group_id="g")
    until("one consumer to get the first message", lambda: len(got) == 1)
    backend.send_message(name, "second", group_id="g")
    for c in consumers:
        c.join(timeout=10)
    if len(got) != 2:
        raise AssertionError(f"a consumer never returned: {got}")
    return [bodies for bodies in got.values() if "first" not in bodies][0]


def main(argv):
    stock = os.environ.get("MOTO_STOCK", "") not in ("", "0") or "--stock" in argv
    argv = [a for a in argv if a != "--stock"]
    if "--print-hashes" in argv:
        print(json.dumps(source_hashes(), indent=4))
        return 0
    try:
        if "--verify" in argv:
            apply_fixes()
            self_test()
            print(f"moto {PINNED_VERSION}: fixes apply and match stock behaviour")
            return 0
        if not stock:
            apply_fixes()
    except StaleFix as e:
        print(
            f"moto_launcher: {e}; refusing to patch unknown code. "
            "Run stock moto with MOTO_STOCK=1, or update the fixes.",
            file=sys.stderr,
        )
        return 3
    print(f"moto_launcher: {'stock moto' if stock else 'moto with the backlog fixes'}", flush=True)
    if not stock and os.environ.get("MOTO_ACCESS_LOG", "") in ("", "0"):
        # One log line per request, written under a lock, is a sixth of what
        # moto does under load (a profile in BENCHMARKS.md); errors still show.
        # MOTO_ACCESS_LOG=1 keeps the access log.
        import logging

        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    from moto.server import main as serve

    serve(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
