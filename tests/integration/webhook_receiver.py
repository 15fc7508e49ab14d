"""A local webhook receiver for the webhook integration tests
(test_webhooks.py).

WebhookReceiver runs a threaded HTTP server on 127.0.0.1 (localserver.serve),
records every request and verifies its Standard Webhooks signatures against
the secrets it was given ("whsec_<base64 key>", in a list: a signature's
"key index" is the position of the secret that verifies it).  stop() and
start() take it away and bring it back on the same port: meanwhile kilnd's
connections are refused.

Paths (segments after the listed ones are ignored, so tests can tag their
URLs, e.g. /ok/api-1; so is a query string):

  /ok              200 "ok"
  /fail/N          500 "fail <k> of N" for the first N requests of each
                   webhook-id, then 200 "ok"
  /slow/S          waits S seconds, then 200 "ok"
  /slowfirst/S     the first request of each webhook-id waits S seconds
                   (then 200); later ones answer 200 at once
  /gone            410 "gone"
  /retry-after/S   the first request of each webhook-id: 503 with
                   "Retry-After: S"; later ones 200
  /redirect        302 with Location: <redirect_to> (set it to another
                   receiver's /ok), which must never be followed
  /big             200 with a 1 MB text body ("x" * 2**20)
  /status/CODE     CODE, always
  anything else    404

A wait ends early, without an answer, when kilnd hangs up (a timeout, a
kill) or the receiver stops.  Every answer says "Connection: close", so each
attempt comes on a new connection and a stopped receiver really refuses the
next one.

Each request gives a record (a dict):
  seq, arrived / arrived_wall (time.monotonic() / time.time()), method,
  path, behaviour (the first segment: "ok", "fail", ...), headers (lower-case
  names), raw (bytes), json (the parsed body or None), id (webhook-id),
  timestamp (webhook-timestamp as an int, or None), signatures (the
  "v1,..." items of webhook-signature), sig_keys (for each signature, the
  index of the secret that verifies it, or None), verified (there is at
  least one signature and every one verifies), problems (other ways the
  request breaks the contract: not a POST, no JSON body, body id !=
  webhook-id, timestamp more than 30 s off, a Content-Type other than
  application/json, a User-Agent not starting with kilnd-webhooks/, an
  Authorization header), schema_error (None, or why the body is not a
  WebhookEvent of openapi.yaml), attempt (1-based count of this webhook-id's
  requests on this path behaviour), status (the status sent, None if none
  was), answered (when the answer was sent), client_closed (when kilnd hung
  up before the answer).

The receiver also counts the requests being served at once: inflight and
max_inflight (a request counts from its arrival until just before its answer
is written, so kilnd cannot start another on the strength of it before).
"""
import base64
import hashlib
import hmac
import itertools
import json
import re
import select
import socket
import threading
import time

import kilnlib
import localserver

BIG_BODY = b"x" * (1 << 20)
MSG_ID_RE = re.compile(r"^msg_[0-9a-f]{32}$")
# jsonschema's RefResolver keeps a scope stack: one validation at a time
_SCHEMA_LOCK = threading.Lock()


def secret_key(secret):
    """The HMAC key of a "whsec_<base64>" secret."""
    assert secret.startswith("whsec_"), secret
    return base64.b64decode(secret[len("whsec_"):], validate=True)


def new_secret(seed):
    """A valid secret whose 32-byte key depends on seed."""
    key = hashlib.sha256(("kiln-webhook-test-" + str(seed)).encode())
    return "whsec_" + base64.b64encode(key.digest()).decode()


def sign(secret, msg_id, timestamp, body):
    """The v1 signature (base64) of body as Standard Webhooks defines it."""
    if isinstance(body, str):
        body = body.encode()
    mac = hmac.new(secret_key(secret),
                   ("%s.%s." % (msg_id, timestamp)).encode() + body,
                   hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


class WebhookReceiver:
    def __init__(self, secrets=(), redirect_to=None, name="receiver"):
        self.secrets = list(secrets)
        self.redirect_to = redirect_to or "http://127.0.0.1:9/ok"
        self.name = name
        self._lock = threading.Lock()
        self._records = []
        self._seq = itertools.count(1)
        self._counts = {}               # (behaviour, webhook-id) -> n
        self._conns = set()
        self._closing = threading.Event()
        self.inflight = 0
        self.max_inflight = 0
        # load openapi.yaml now, not during the first (timed) request
        try:
            with _SCHEMA_LOCK:
                kilnlib.assert_schema({}, "WebhookEvent")
        except AssertionError:
            pass
        self.server, self.port = localserver.serve(self._handle)
        self._handler_class = self.server.RequestHandlerClass

    # ------------------------------------------------------------ set-up
    def url(self, path="/ok"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    @property
    def running(self):
        return self.server is not None

    def stop(self):
        """Goes away: closes the listening socket and every connection (a
        request being held gets no answer).  Records are kept."""
        if self.server is None:
            return
        self._closing.set()
        server, self.server = self.server, None
        server.shutdown()
        server.server_close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def start(self):
        """Comes back on the same port."""
        if self.server is not None:
            return
        last = None
        for _ in range(50):
            try:
                server = localserver.QuietServer(("127.0.0.1", self.port),
                                                 self._handler_class)
                break
            except OSError as e:         # the port is still held
                last = e
                time.sleep(0.05)
        else:
            raise RuntimeError("cannot listen on 127.0.0.1:%d again: %s"
                               % (self.port, last))
        self._closing.clear()
        threading.Thread(target=server.serve_forever,
                         kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        self.server = server

    close = stop

    # ------------------------------------------------------------ records
    def records(self, path=None, behaviour=None, job_id=None, event=None,
                msg_id=None, status=None):
        """Copies of the records, filtered: path is a prefix of the path;
        job_id and event are the payload's; status the status sent."""
        with self._lock:
            out = [dict(r) for r in self._records]
        if path is not None:
            out = [r for r in out if r["path"].startswith(path)]
        if behaviour is not None:
            out = [r for r in out if r["behaviour"] == behaviour]
        if job_id is not None:
            out = [r for r in out if isinstance(r["json"], dict)
                   and r["json"].get("job_id") == job_id]
        if event is not None:
            out = [r for r in out if isinstance(r["json"], dict)
                   and r["json"].get("event") == event]
        if msg_id is not None:
            out = [r for r in out if r["id"] == msg_id]
        if status is not None:
            out = [r for r in out if r["status"] == status]
        return out

    def wait_for(self, count, timeout=20.0, what=None, **filters):
        """Waits until at least count records match filters; returns
        them."""
        deadline = time.monotonic() + timeout
        while True:
            recs = self.records(**filters)
            if len(recs) >= count:
                return recs
            if time.monotonic() > deadline:
                raise AssertionError(
                    "%s got %d requests matching %r, wanted %d%s: %s"
                    % (self.name, len(recs), filters, count,
                       (" (" + what + ")") if what else "",
                       [(r["path"], r["id"], r["status"]) for r in recs]))
            time.sleep(0.02)

    def answered_2xx(self):
        """webhook-id -> how many of its requests were answered 2xx."""
        out = {}
        for r in self.records():
            if r["status"] is not None and 200 <= r["status"] < 300:
                out[r["id"]] = out.get(r["id"], 0) + 1
        return out

    # ------------------------------------------------------------ checks
    def _verify(self, rec):
        h = rec["headers"]
        sig_header = h.get("webhook-signature") or ""
        rec["signatures"] = sig_header.split()
        keys = []
        for item in rec["signatures"]:
            version, _, sig = item.partition(",")
            found = None
            if version == "v1" and rec["id"] and \
                    rec["timestamp"] is not None:
                for i, secret in enumerate(self.secrets):
                    want = sign(secret, rec["id"], h["webhook-timestamp"],
                                rec["raw"])
                    if hmac.compare_digest(want, sig):
                        found = i
                        break
            keys.append(found)
        rec["sig_keys"] = keys
        rec["verified"] = bool(keys) and None not in keys

    def _check(self, rec):
        h = rec["headers"]
        problems = rec["problems"]
        if rec["method"] != "POST":
            problems.append("method %s" % rec["method"])
        if not (rec["id"] and MSG_ID_RE.match(rec["id"])):
            problems.append("webhook-id %r" % rec["id"])
        ts = h.get("webhook-timestamp")
        if ts is None or not re.match(r"^[0-9]+$", ts):
            problems.append("webhook-timestamp %r" % ts)
        elif abs(int(ts) - time.time()) > 30:
            problems.append("webhook-timestamp %s is %.0f s off" %
                            (ts, int(ts) - time.time()))
        if (h.get("content-type") or "").split(";")[0].strip() != \
                "application/json":
            problems.append("content-type %r" % h.get("content-type"))
        if not (h.get("user-agent") or "").startswith("kilnd-webhooks/"):
            problems.append("user-agent %r" % h.get("user-agent"))
        if "authorization" in h:
            problems.append("an Authorization header was sent")
        body = rec["json"]
        if not isinstance(body, dict):
            problems.append("the body is not a JSON object")
            return
        if body.get("id") != rec["id"]:
            problems.append("body id %r != webhook-id %r"
                            % (body.get("id"), rec["id"]))
        try:
            with _SCHEMA_LOCK:
                kilnlib.assert_schema(body, "WebhookEvent")
        except AssertionError as e:
            rec["schema_error"] = str(e)

    # ------------------------------------------------------------ serving
    def _handle(self, h):
        conn = h.connection
        with self._lock:
            self._conns.add(conn)
        try:
            self._serve(h)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            with self._lock:
                self._conns.discard(conn)

    def _serve(self, h):
        raw = localserver.read_body(h)
        path = h.path.split("?", 1)[0]
        parts = path.strip("/").split("/")
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in h.headers.items()}
        ts = headers.get("webhook-timestamp")
        rec = {"seq": None, "arrived": time.monotonic(),
               "arrived_wall": time.time(), "method": h.command,
               "path": path, "behaviour": parts[0], "headers": headers,
               "raw": raw, "json": body, "id": headers.get("webhook-id"),
               "timestamp": int(ts) if ts and ts.isdigit() else None,
               "signatures": [], "sig_keys": [], "verified": False,
               "problems": [], "schema_error": None, "attempt": None,
               "status": None, "answered": None, "client_closed": None}
        self._verify(rec)
        self._check(rec)
        with self._lock:
            rec["seq"] = next(self._seq)
            key = (rec["behaviour"], rec["id"])
            self._counts[key] = self._counts.get(key, 0) + 1
            rec["attempt"] = self._counts[key]
            self._records.append(rec)
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
        left = [False]

        def leave():
            if not left[0]:
                left[0] = True
                with self._lock:
                    self.inflight -= 1
        try:
            self._route(h, parts, rec, leave)
        finally:
            leave()

    def _peer_closed(self, h):
        sock = h.connection
        try:
            r, _, _ = select.select([sock], [], [], 0)
            if not r:
                return False
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _wait(self, h, rec, seconds):
        """Waits seconds; False (no answer is to be sent) when kilnd hung
        up or the receiver stopped meanwhile."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self._closing.is_set():
                return False
            if self._peer_closed(h):
                with self._lock:
                    rec["client_closed"] = time.monotonic()
                return False
            time.sleep(0.01)
        return True

    def _send(self, h, rec, leave, status, data=b"ok", headers=None):
        if isinstance(data, str):
            data = data.encode()
        leave()
        with self._lock:
            rec["status"] = status
            rec["answered"] = time.monotonic()
        h.close_connection = True
        h.send_response(status)
        h.send_header("Content-Type", "text/plain")
        h.send_header("Content-Length", str(len(data)))
        h.send_header("Connection", "close")
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)
        h.wfile.flush()

    @staticmethod
    def _number(parts, i, default):
        try:
            return float(parts[i])
        except (IndexError, ValueError):
            return default

    def _route(self, h, parts, rec, leave):
        what, n = parts[0], rec["attempt"]
        if what == "ok":
            self._send(h, rec, leave, 200)
        elif what == "fail":
            limit = int(self._number(parts, 1, 1))
            if n <= limit:
                self._send(h, rec, leave, 500,
                           "fail %d of %d" % (n, limit))
            else:
                self._send(h, rec, leave, 200)
        elif what in ("slow", "slowfirst"):
            if what == "slow" or n == 1:
                if not self._wait(h, rec, self._number(parts, 1, 3.0)):
                    return
            self._send(h, rec, leave, 200)
        elif what == "gone":
            self._send(h, rec, leave, 410, "gone")
        elif what == "retry-after":
            if n == 1:
                self._send(h, rec, leave, 503, "busy", headers={
                    "Retry-After": parts[1] if len(parts) > 1 else "1"})
            else:
                self._send(h, rec, leave, 200)
        elif what == "redirect":
            self._send(h, rec, leave, 302, "moved",
                       headers={"Location": self.redirect_to})
        elif what == "big":
            self._send(h, rec, leave, 200, BIG_BODY)
        elif what == "status":
            self._send(h, rec, leave, int(self._number(parts, 1, 200)),
                       "status")
        else:
            self._send(h, rec, leave, 404, "no such receiver path")
