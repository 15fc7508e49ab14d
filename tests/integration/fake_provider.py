"""A local stand-in for a generation provider, for the integration tests.

FakeProvider runs a ThreadingHTTPServer on 127.0.0.1:<free port> in a
thread, records every request (path, method, headers, JSON body, arrival and
answer times) and answers according to the path:

  /ok        200 {"result_image_path": "https://cdn.example.test/<n>.png",
                  "echo": <request body>}
  /fail500   500 text/plain "upstream exploded"
  /slow      sleeps slow_s (5 s), then answers like /ok
  /notjson   200 text/plain "hello"
  /array     200 [1, 2, 3]
  /hold      waits until release() (at most 60 s), then answers like /ok
  /gate      waits until gate_size requests reached /gate (at most
             gate_timeout_s), then answers like /ok
  /switch/<name>  behaves as modes[<name>] ("ok", "fail500", "hold", ...;
             default "ok"), so a test can change a provider's behaviour
  anything else: 404

Requests are served concurrently: a sleeping /slow or /hold blocks nobody.
"""
import itertools
import json
import threading
import time

import localserver


class FakeProvider:
    def __init__(self, slow_s=5.0, gate_size=2, gate_timeout_s=10.0):
        self.slow_s = slow_s
        self.gate_size = gate_size
        self.gate_timeout_s = gate_timeout_s
        self.modes = {}
        self._lock = threading.Lock()
        self._records = []
        self._counter = itertools.count(1)
        self._released = threading.Event()
        self._gate = threading.Condition()
        self._gate_arrivals = 0
        self._closing = threading.Event()
        provider = self

        self.server, self.port = localserver.serve(provider._handle)

    # ---------------------------------------------------------------- API
    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def close(self):
        self._closing.set()
        self._released.set()
        with self._gate:
            self._gate.notify_all()
        self.server.shutdown()
        self.server.server_close()

    def release(self):
        """Lets every waiting and future /hold request answer."""
        self._released.set()

    def hold(self):
        """Future /hold requests wait again."""
        self._released.clear()

    def reset_gate(self, size=2):
        with self._gate:
            self.gate_size = size
            self._gate_arrivals = 0

    def records(self, path=None, marker=None):
        """Copies of the recorded requests, optionally only those on path
        and/or whose JSON body has "marker" == marker."""
        with self._lock:
            out = [dict(r) for r in self._records]
        if path is not None:
            out = [r for r in out if r["path"] == path]
        if marker is not None:
            out = [r for r in out if isinstance(r["body"], dict)
                   and r["body"].get("marker") == marker]
        return out

    def wait_for(self, count, timeout=20.0, **filters):
        """Waits until at least count matching requests arrived; returns
        them."""
        deadline = time.monotonic() + timeout
        while True:
            recs = self.records(**filters)
            if len(recs) >= count:
                return recs
            if time.monotonic() > deadline:
                raise AssertionError(
                    "fake provider saw %d requests matching %r, wanted %d"
                    % (len(recs), filters, count))
            time.sleep(0.02)

    # ---------------------------------------------------------------- serve
    def _handle(self, h):
        raw = localserver.read_body(h)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = h.path.split("?", 1)[0]
        rec = {"path": path, "method": h.command,
               "headers": {k.lower(): v for k, v in h.headers.items()},
               "raw": raw, "body": body, "arrived": time.monotonic(),
               "answered": None}
        with self._lock:
            self._records.append(rec)
        behaviour = path.lstrip("/")
        if path.startswith("/switch/"):
            behaviour = self.modes.get(path[len("/switch/"):], "ok")
        try:
            self._behave(h, behaviour, body, rec)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _answer(self, h, rec, status, ctype, payload):
        data = payload if isinstance(payload, bytes) else payload.encode()
        with self._lock:
            rec["answered"] = time.monotonic()
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
        h.wfile.flush()

    def _ok(self, h, rec, body):
        n = next(self._counter)
        self._answer(h, rec, 200, "application/json", json.dumps(
            {"result_image_path": "https://cdn.example.test/%d.png" % n,
             "echo": body}))

    def _behave(self, h, behaviour, body, rec):
        if behaviour == "ok":
            self._ok(h, rec, body)
        elif behaviour == "fail500":
            self._answer(h, rec, 500, "text/plain", "upstream exploded")
        elif behaviour == "slow":
            self._closing.wait(self.slow_s)
            self._ok(h, rec, body)
        elif behaviour == "notjson":
            self._answer(h, rec, 200, "text/plain", "hello")
        elif behaviour == "array":
            self._answer(h, rec, 200, "application/json", "[1, 2, 3]")
        elif behaviour == "hold":
            self._released.wait(60.0)
            self._ok(h, rec, body)
        elif behaviour == "gate":
            with self._gate:
                self._gate_arrivals += 1
                self._gate.notify_all()
                self._gate.wait_for(
                    lambda: self._gate_arrivals >= self.gate_size
                    or self._closing.is_set(), self.gate_timeout_s)
            self._ok(h, rec, body)
        else:
            self._answer(h, rec, 404, "application/json",
                         json.dumps({"detail": "no such fake path"}))
