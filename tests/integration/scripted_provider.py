"""A local provider whose answers are scripted per request, for the engine
integration tests (test_engine.py).

ScriptedProvider runs a ThreadingHTTPServer on 127.0.0.1:<free port> in a
thread and records every request it receives: path, method, headers, body,
arrival time (time.monotonic() and time.time()), when the answer was sent,
and, for answers that wait (delay_s / hold), when kilnd closed the
connection before the answer ("client_closed").

Three kinds of routes:

  * scripted paths: script(path, [Reply, Reply, ...]) answers the n-th
    request on path with the n-th Reply (the last one repeats).  A Reply
    has a status, a JSON body (default {"ok": true, "n": <n>, "echo":
    <request body>}) or raw bytes, extra headers (e.g. Retry-After), and
    may wait delay_s seconds or hold until release() (or until kilnd hangs
    up) before answering.

  * job services: job_service(name, ...) is a minimal async job API under
    /jobs/<name>/:
        POST|PUT /jobs/<name>/submit   -> {"id", "status_url", "cancel_url",
                                           "result_url"}
        GET      /jobs/<name>/<id>/status
                 -> {"id", "status": "running"} for the first `polls`
                    polls (or until duration_s after the submission), then
                    {"id", "status": "succeeded"|"failed", "output": {...},
                     "error": "..."}; status_faults={n: Reply} answers the
                    n-th poll of each job with that Reply instead
        any      /jobs/<name>/<id>/cancel  -> recorded, 200 {"cancelled": true}
        GET      /jobs/<name>/<id>/result  -> {"output": {...}} (scriptable)
    Each job remembers its submission, its polls and its cancel calls.

  * files: add_file(path, data, content_type) serves bytes (a PNG).

Anything else answers 404.
"""
import itertools
import json
import select
import socket
import threading
import time

import localserver
from localserver import png_bytes  # noqa: F401 (tests import it here)


class Reply:
    """One scripted answer.

    status: HTTP status.  json: the JSON body (None: the default echo
    body).  body: raw bytes/str instead of JSON.  headers: extra headers.
    delay_s: wait this long before answering.  hold: wait until the
    provider's release() (at most hold_max_s).  close: hang up without an
    answer."""

    def __init__(self, status=200, json=None, body=None, headers=None,
                 content_type=None, delay_s=0.0, hold=False,
                 hold_max_s=30.0, close=False):
        self.status = status
        self.json = json
        self.body = body
        self.headers = dict(headers or {})
        self.content_type = content_type
        self.delay_s = delay_s
        self.hold = hold
        self.hold_max_s = hold_max_s
        self.close = close

    def __repr__(self):
        return "Reply(%d%s%s)" % (self.status,
                                  ", delay %.1fs" % self.delay_s
                                  if self.delay_s else "",
                                  ", hold" if self.hold else "")


class Job:
    def __init__(self, service, job_id, n, record, outcome, polls,
                 duration_s):
        self.service = service
        self.id = job_id
        self.n = n                      # 1-based index within the service
        self.submission = record        # the submit request's record
        self.body = record["body"]
        self.submitted = record["arrived"]
        self.submitted_wall = record["arrived_wall"]
        self.outcome = outcome          # "succeeded" or "failed"
        self.polls_needed = polls
        self.duration_s = duration_s
        self.polls = []                 # records of status polls
        self.cancels = []               # records of cancel calls
        self.result_fetches = []
        self.finished_answered = None   # monotonic time of the first
                                        # terminal status answer

    @property
    def marker(self):
        return self.body.get("marker") if isinstance(self.body, dict) \
            else None

    def is_done(self, now):
        if self.duration_s is not None:
            return now - self.submitted >= self.duration_s
        return len(self.polls) > self.polls_needed


class JobService:
    def __init__(self, provider, name, polls=2, duration_s=None,
                 outcomes=("succeeded",), error="the GPU caught fire",
                 output=None, submit_delay_s=0.0, result_script=None,
                 status_faults=None):
        self.provider = provider
        self.name = name
        self.polls = polls
        self.duration_s = duration_s
        self.outcomes = list(outcomes)  # per job, in order; last repeats
        self.error = error
        self.output = output            # fn(job) -> dict, or a dict
        self.submit_delay_s = submit_delay_s
        self.result_script = list(result_script or [])
        # {n: Reply}: the n-th status poll of every job (1-based) gets
        # that answer instead (e.g. a 503 or a 404)
        self.status_faults = dict(status_faults or {})
        self.jobs = {}
        self.order = []
        self._counter = itertools.count(1)

    def url(self, tail=""):
        return self.provider.url("/jobs/%s%s" % (self.name, tail))

    @property
    def submit_url(self):
        return self.url("/submit")

    def job_list(self):
        with self.provider._lock:
            return [self.jobs[i] for i in self.order]

    def output_of(self, job):
        if callable(self.output):
            return self.output(job)
        if self.output is not None:
            return json.loads(json.dumps(self.output))
        return {"job_id": job.id, "images": [
            {"url": "https://cdn.example.test/%s.png" % job.id}],
            "echo": job.body}


class ScriptedProvider:
    def __init__(self):
        self._lock = threading.Lock()
        self._records = []
        self._seq = itertools.count(1)
        self._scripts = {}
        self._script_pos = {}
        self._files = {}
        self.services = {}
        self._release = threading.Event()
        self._closing = threading.Event()
        self.inflight = {}              # path -> requests being served now
        self.max_inflight = {}          # path -> most at once
        self.total_inflight = 0         # all paths together
        self.max_total_inflight = 0
        provider = self

        self.server, self.port = localserver.serve(provider._handle)

    # ------------------------------------------------------------ set-up
    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def close(self):
        self._closing.set()
        self._release.set()
        self.server.shutdown()
        self.server.server_close()

    def script(self, path, replies):
        """Answers the requests on path with replies, in order; the last
        one repeats.  Resets the position."""
        if isinstance(replies, Reply):
            replies = [replies]
        with self._lock:
            self._scripts[path] = list(replies)
            self._script_pos[path] = 0

    def add_file(self, path, data, content_type="image/png"):
        with self._lock:
            self._files[path] = (data, content_type)

    def job_service(self, name, **kw):
        svc = JobService(self, name, **kw)
        with self._lock:
            self.services[name] = svc
        return svc

    def release(self):
        """Lets held requests (Reply(hold=True)) answer, now and later."""
        self._release.set()

    def hold(self):
        self._release.clear()

    # ------------------------------------------------------------ records
    def records(self, path=None, prefix=None, marker=None, method=None):
        with self._lock:
            out = [dict(r) for r in self._records]
        if path is not None:
            out = [r for r in out if r["path"] == path]
        if prefix is not None:
            out = [r for r in out if r["path"].startswith(prefix)]
        if method is not None:
            out = [r for r in out if r["method"] == method]
        if marker is not None:
            out = [r for r in out if isinstance(r["body"], dict)
                   and r["body"].get("marker") == marker]
        return out

    def wait_for(self, count, timeout=20.0, what=None, **filters):
        deadline = time.monotonic() + timeout
        while True:
            recs = self.records(**filters)
            if len(recs) >= count:
                return recs
            if time.monotonic() > deadline:
                raise AssertionError(
                    "scripted provider saw %d requests matching %r, wanted"
                    " %d%s" % (len(recs), filters, count,
                               (" (" + what + ")") if what else ""))
            time.sleep(0.01)

    def peak(self, path):
        with self._lock:
            return self.max_inflight.get(path, 0)

    # ------------------------------------------------------------ serving
    def _handle(self, h):
        raw = localserver.read_body(h)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = h.path.split("?", 1)[0]
        rec = {"seq": next(self._seq), "path": path, "method": h.command,
               "headers": {k.lower(): v for k, v in h.headers.items()},
               "raw": raw, "body": body, "arrived": time.monotonic(),
               "arrived_wall": time.time(), "answered": None,
               "status": None, "client_closed": None}
        with self._lock:
            self._records.append(rec)
            n = self.inflight.get(path, 0) + 1
            self.inflight[path] = n
            if n > self.max_inflight.get(path, 0):
                self.max_inflight[path] = n
            self.total_inflight += 1
            self.max_total_inflight = max(self.max_total_inflight,
                                          self.total_inflight)
        done = [False]

        def leave():
            # Counted out before the answer is written: kilnd cannot start
            # another request on the strength of this one before that.
            if not done[0]:
                done[0] = True
                with self._lock:
                    self.inflight[path] -= 1
                    self.total_inflight -= 1
        try:
            self._route(h, path, body, rec, leave)
        except (BrokenPipeError, ConnectionResetError):
            with self._lock:
                if rec["client_closed"] is None:
                    rec["client_closed"] = time.monotonic()
        finally:
            leave()

    def _peer_closed(self, h):
        """True when kilnd has closed the connection (EOF or reset)."""
        sock = h.connection
        try:
            r, _, _ = select.select([sock], [], [], 0)
            if not r:
                return False
            data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            return data == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _wait(self, h, rec, seconds=None, event=None):
        """Waits seconds (or until event is set); returns False when kilnd
        hung up meanwhile (recorded in rec["client_closed"])."""
        deadline = time.monotonic() + (seconds if seconds is not None
                                       else 3600)
        while time.monotonic() < deadline:
            if event is not None and event.is_set():
                return True
            if self._closing.is_set():
                return False
            if self._peer_closed(h):
                with self._lock:
                    rec["client_closed"] = time.monotonic()
                return False
            time.sleep(0.01)
        return event is None

    def _send(self, h, rec, leave, status, payload, ctype="application/json",
              headers=None):
        data = payload if isinstance(payload, bytes) else payload.encode()
        leave()
        closed = self._peer_closed(h)
        with self._lock:
            if closed and rec["client_closed"] is None:
                rec["client_closed"] = time.monotonic()
            rec["answered"] = time.monotonic()
            rec["status"] = status
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)
        h.wfile.flush()

    def _send_json(self, h, rec, leave, status, obj, headers=None):
        self._send(h, rec, leave, status, json.dumps(obj),
                   headers=headers)

    def _play(self, h, rec, leave, reply, n, body):
        if reply.delay_s and not self._wait(h, rec, seconds=reply.delay_s):
            return
        if reply.hold and not self._wait(h, rec, seconds=reply.hold_max_s,
                                         event=self._release):
            return
        if reply.close:
            leave()
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if reply.body is not None:
            data = reply.body
            ctype = reply.content_type or "text/plain"
        else:
            obj = reply.json if reply.json is not None else \
                {"ok": True, "n": n, "echo": body}
            data = json.dumps(obj)
            ctype = reply.content_type or "application/json"
        self._send(h, rec, leave, reply.status, data, ctype, reply.headers)

    def _route(self, h, path, body, rec, leave):
        with self._lock:
            script = self._scripts.get(path)
            if script is not None:
                pos = self._script_pos[path]
                self._script_pos[path] = pos + 1
                reply = script[min(pos, len(script) - 1)]
            file_ = self._files.get(path)
        if script is not None:
            self._play(h, rec, leave, reply, pos + 1, body)
            return
        if file_ is not None:
            self._send(h, rec, leave, 200, file_[0], file_[1])
            return
        parts = path.strip("/").split("/")
        if len(parts) >= 3 and parts[0] == "jobs" and \
                parts[1] in self.services:
            self._job_route(h, self.services[parts[1]], parts[2:], body,
                            rec, leave)
            return
        self._send_json(h, rec, leave, 404, {"detail": "no such path"})

    # ------------------------------------------------------------ jobs
    def _job_route(self, h, svc, rest, body, rec, leave):
        if rest == ["submit"]:
            if svc.submit_delay_s and \
                    not self._wait(h, rec, seconds=svc.submit_delay_s):
                return
            with self._lock:
                n = next(svc._counter)
                job_id = "%s-%d" % (svc.name, n)
                outcome = svc.outcomes[min(n - 1, len(svc.outcomes) - 1)]
                job = Job(svc, job_id, n, rec, outcome, svc.polls,
                          svc.duration_s)
                svc.jobs[job_id] = job
                svc.order.append(job_id)
                rec["job_id"] = job_id
            self._send_json(h, rec, leave, 200, {
                "id": job_id,
                "status_url": svc.url("/%s/status" % job_id),
                "cancel_url": svc.url("/%s/cancel" % job_id),
                "result_url": svc.url("/%s/result" % job_id)})
            return
        with self._lock:
            job = svc.jobs.get(rest[0]) if len(rest) == 2 else None
        if job is None:
            self._send_json(h, rec, leave, 404, {"detail": "no such job"})
            return
        rec["job_id"] = job.id
        what = rest[1]
        if what == "cancel":
            with self._lock:
                job.cancels.append(rec)
            self._send_json(h, rec, leave, 200, {"id": job.id,
                                                 "cancelled": True})
            return
        if what == "result":
            with self._lock:
                job.result_fetches.append(rec)
                k = len(job.result_fetches) - 1
                script = svc.result_script
                reply = script[min(k, len(script) - 1)] if script else None
            if reply is not None and reply.status != 200:
                self._play(h, rec, leave, reply, k + 1, body)
                return
            self._send_json(h, rec, leave, 200,
                            {"id": job.id, "output": svc.output_of(job)})
            return
        if what != "status" or h.command != "GET":
            self._send_json(h, rec, leave, 404, {"detail": "no such route"})
            return
        now = time.monotonic()
        with self._lock:
            job.polls.append(rec)
            fault = svc.status_faults.get(len(job.polls))
        if fault is not None:
            rec["job_status"] = "fault %d" % fault.status
            self._play(h, rec, leave, fault, len(job.polls), body)
            return
        with self._lock:
            done = job.is_done(now)
            if done and job.finished_answered is None:
                job.finished_answered = now
        if job.cancels:
            answer = {"id": job.id, "status": "cancelled"}
        elif not done:
            answer = {"id": job.id, "status": "running",
                      "progress": len(job.polls)}
        elif job.outcome == "succeeded":
            answer = {"id": job.id, "status": "succeeded",
                      "output": svc.output_of(job)}
        else:
            answer = {"id": job.id, "status": job.outcome,
                      "error": svc.error}
        rec["job_status"] = answer["status"]
        self._send_json(h, rec, leave, 200, answer)
