"""Local imitations of the generation services of examples/providers/, for
the preset integration tests (test_presets.py).

Each class runs a ThreadingHTTPServer on 127.0.0.1:<free port> in a daemon
thread and speaks one protocol, as its public API documentation describes
it:

  AsyncJobsService  the asynchronous Firefly-style jobs API
                    POST /v3/images/generate-async -> 202 {jobId, statusUrl,
                    cancelUrl}; GET /v3/status/<jobId> -> {status: pending|
                    running|succeeded|failed|cancelled, result: {outputs:
                    [{seed, image: {url}}]}}; PUT /v3/cancel/<jobId>
  ReplicateService  POST /v1/models/<owner>/<name>/predictions {"input":..}
                    -> 201 prediction {id, status, urls: {get, cancel}};
                    GET /v1/predictions/<id>; POST /v1/predictions/<id>/cancel
  FalService        POST /<owner>/<app>[/<subpath>] -> {request_id,
                    status_url, response_url, cancel_url}; GET
                    .../requests/<id>/status -> IN_QUEUE|IN_PROGRESS|
                    COMPLETED; GET .../requests/<id> (the result); PUT
                    .../requests/<id>/cancel
  RunPodService     POST /v2/<endpoint>/run {"input":..} -> {id, status};
                    GET /v2/<endpoint>/status/<id> -> IN_QUEUE|IN_PROGRESS|
                    COMPLETED|FAILED|CANCELLED, output, error; POST
                    /v2/<endpoint>/cancel/<id>
  ComfyUIService    POST /prompt {"prompt": <graph>} -> {prompt_id, number,
                    node_errors}; GET /history/<id> -> {} until done, then
                    {id: {prompt, outputs, status: {status_str, completed,
                    messages}}}; POST /queue {"delete": [ids]}; GET /view

Every status, result and cancel URL handed out points back at the imitation
itself, and every file URL is served by it (GET /files/<name>.png, a small
PNG whose bytes differ per job, so a test can check a downloaded artifact's
SHA-256 against file_bytes(url)).

Behaviour of the jobs (read when a job is submitted, so a test sets it
first):
  polls_to_finish    the job is finished at its N-th status poll (default 2)
  seconds_to_finish  when not None, the job is finished T seconds after it
                     was submitted instead
  outcome            "succeed", "fail" or "hold" (never finishes; for cancel
                     tests)
  required_headers   {name: value} every API request must carry, else 401
                     (file downloads excepted: they are signed CDN links)
  submit_delay_s     how long an accepted submission waits before it is
                     answered (the job exists from its arrival)
  busy_polls         the first N status polls of a job are answered 503
                     {"detail": "Service Unavailable"} with Retry-After: 0
                     (they do not count as polls of the job)

Every request is recorded (method, path, query, lower-cased headers, raw and
JSON body, time) with the kind the imitation saw in it ("submit", "status",
"result", "cancel", "file", "other") and the job it concerns, so a test can
ask e.g. records(kind="status", job=<id>).

Only the Python standard library is used.
"""
import hashlib
import itertools
import json
import random
import string
import threading
import time
import traceback
import urllib.parse
import uuid

import localserver
from localserver import png_bytes


# ------------------------------------------------------------------ files

def sha256(data):
    return hashlib.sha256(data).hexdigest()


def _now_iso():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + \
        ".%06dZ" % int((t % 1) * 1e6)


class _Reply(Exception):
    """Raised by a route to answer at once."""

    def __init__(self, status, payload, ctype="application/json",
                 headers=None):
        super().__init__(status)
        self.status = status
        self.payload = payload
        self.ctype = ctype
        self.headers = headers or {}


# ------------------------------------------------------------------ jobs

class Job:
    """One submitted job and its life: polls seen, outcome, files."""

    def __init__(self, service, job_id, body, path):
        self.id = job_id
        self.service = service
        self.body = body            # the submission's JSON body
        self.path = path            # the submission's path
        self.created = time.monotonic()
        self.polls = 0
        self.outcome = service.outcome
        self.polls_to_finish = service.polls_to_finish
        self.seconds_to_finish = service.seconds_to_finish
        self.cancelled = False
        self.cancel_requests = 0
        self.busy_polls = service.busy_polls
        self.file_urls = []
        self.last_status = None     # the last status answer (JSON)
        self.result_answer = None   # the last result answer (JSON)
        self.extra = {}

    @property
    def finished(self):
        if self.cancelled or self.outcome == "hold":
            return False
        if self.seconds_to_finish is not None:
            return time.monotonic() - self.created >= self.seconds_to_finish
        return self.polls >= self.polls_to_finish

    @property
    def state(self):
        """cancelled, running, succeeded or failed."""
        if self.cancelled:
            return "cancelled"
        if not self.finished:
            return "running"
        return "failed" if self.outcome == "fail" else "succeeded"


# ------------------------------------------------------------------ base

class FakeService:
    """Common server, recording and job bookkeeping; subclasses implement
    route(h, rec) for their protocol."""

    name = "service"
    unauthorized_body = {"detail": "Unauthorized"}

    def __init__(self, polls_to_finish=2, seconds_to_finish=None,
                 outcome="succeed", required_headers=None,
                 submit_delay_s=0.0, busy_polls=0):
        self.polls_to_finish = polls_to_finish
        self.busy_polls = busy_polls
        self.submit_delay_s = submit_delay_s
        self.seconds_to_finish = seconds_to_finish
        self.outcome = outcome
        self.required_headers = dict(required_headers or {})
        self.fail_message = "%s fake: the model crashed (CUDA out of " \
            "memory)" % self.name
        self._lock = threading.Lock()
        self._records = []
        self._jobs = {}             # id -> Job, in submission order
        self._files = {}            # path -> (bytes, content type)
        self._counter = itertools.count(1)
        service = self

        self.server, self.port = localserver.serve(service._handle)

    # ---------------------------------------------------------------- API
    @property
    def base_url(self):
        return "http://127.0.0.1:%d" % self.port

    def url(self, path):
        return self.base_url + path

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def configure(self, **settings):
        """Sets polls_to_finish, seconds_to_finish, outcome, ... for the
        jobs submitted from now on."""
        for k, v in settings.items():
            if not hasattr(self, k):
                raise AttributeError(k)
            setattr(self, k, v)

    def jobs(self):
        with self._lock:
            return list(self._jobs.values())

    def job(self, job_id):
        with self._lock:
            return self._jobs[job_id]

    def records(self, kind=None, job=None, method=None, path=None):
        """Copies of the recorded requests, filtered."""
        with self._lock:
            out = [dict(r) for r in self._records]
        if kind is not None:
            out = [r for r in out if r["kind"] == kind]
        if job is not None:
            out = [r for r in out if r["job"] == job]
        if method is not None:
            out = [r for r in out if r["method"] == method]
        if path is not None:
            out = [r for r in out if r["path"] == path]
        return out

    def wait_for(self, count, timeout=20.0, **filters):
        """Waits until at least count matching requests arrived."""
        deadline = time.monotonic() + timeout
        while True:
            recs = self.records(**filters)
            if len(recs) >= count:
                return recs
            if time.monotonic() > deadline:
                raise AssertionError(
                    "%s imitation saw %d requests matching %r, wanted %d; "
                    "all: %s" % (self.name, len(recs), filters, count,
                                 [(r["method"], r["path"], r["kind"])
                                  for r in self.records()]))
            time.sleep(0.02)

    def wait_for_job(self, after=0, timeout=20.0):
        """The first job submitted after the first `after` jobs."""
        deadline = time.monotonic() + timeout
        while True:
            jobs = self.jobs()
            if len(jobs) > after:
                return jobs[after]
            if time.monotonic() > deadline:
                raise AssertionError("%s imitation got no new job"
                                     % self.name)
            time.sleep(0.02)

    def file_bytes(self, url):
        """The bytes served at one of this imitation's file URLs."""
        path = urllib.parse.urlsplit(url).path
        return self._files[path][0]

    # ------------------------------------------------------------ helpers
    def new_file(self, job, name, seed=None):
        """Registers a PNG for job under /files/<name>.png; returns its
        URL."""
        data = png_bytes(seed=seed if seed is not None else
                         "%s/%s" % (job.id, name))
        path = "/files/%s.png" % name
        with self._lock:
            self._files[path] = (data, "image/png")
        url = self.url(path)
        job.file_urls.append(url)
        return url

    def add_job(self, job):
        with self._lock:
            self._jobs[job.id] = job
        return job

    def find_job(self, job_id):
        with self._lock:
            return self._jobs.get(job_id)

    def poll(self, job):
        """Counts a status poll of job, or answers 503 while the job has
        busy polls left."""
        with self._lock:
            if job.busy_polls > 0:
                job.busy_polls -= 1
                busy = True
            else:
                job.polls += 1
                busy = False
        if busy:
            raise _Reply(503, {"detail": "Service Unavailable"},
                         headers={"Retry-After": "0"})

    # ------------------------------------------------------------- serve
    def _handle(self, h):
        raw = localserver.read_body(h)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        split = urllib.parse.urlsplit(h.path)
        rec = {"method": h.command, "path": urllib.parse.unquote(split.path),
               "raw_path": split.path,
               "query": urllib.parse.parse_qs(split.query),
               "headers": {k.lower(): v for k, v in h.headers.items()},
               "raw": raw, "body": body, "time": time.monotonic(),
               "kind": "other", "job": None, "status": None,
               "answer": None}
        with self._lock:
            self._records.append(rec)
        try:
            try:
                if rec["path"].startswith("/files/"):
                    self._serve_file(rec)
                if not self._authorized(rec):
                    raise _Reply(401, self.unauthorized_body)
                self.route(rec)
                raise _Reply(404, {"detail": "Not Found"})
            except _Reply as r:
                if rec["kind"] == "submit" and rec["job"] and \
                        self.submit_delay_s:
                    time.sleep(self.submit_delay_s)
                self._answer(h, rec, r.status, r.payload, r.ctype,
                             r.headers)
            except Exception:       # a bug of the imitation: say so
                self._answer(h, rec, 500, traceback.format_exc(),
                             "text/plain")
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _authorized(self, rec):
        for k, v in self.required_headers.items():
            if rec["headers"].get(k.lower()) != v:
                return False
        return True

    def _serve_file(self, rec):
        rec["kind"] = "file"
        with self._lock:
            f = self._files.get(rec["path"])
        if f is None or rec["method"] != "GET":
            raise _Reply(404, b"no such file", "text/plain")
        raise _Reply(200, f[0], f[1])

    def _answer(self, h, rec, status, payload, ctype, headers=None):
        if isinstance(payload, (bytes, bytearray)):
            data = bytes(payload)
        elif isinstance(payload, str):
            data = payload.encode()
        elif payload is None:
            data = b""
        else:
            data = json.dumps(payload).encode()
        with self._lock:
            rec["status"] = status
            rec["answer"] = payload if not isinstance(payload, bytes) \
                else None
        h.send_response(status)
        if data or ctype != "application/json":
            h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(data)
        h.wfile.flush()

    def route(self, rec):
        raise NotImplementedError

    @staticmethod
    def _tag(rec, kind, job=None):
        rec["kind"] = kind
        rec["job"] = job


# ------------------------------------------------------------------ Firefly

class AsyncJobsService(FakeService):
    """The asynchronous Firefly-style jobs API
    (/work/shared/reference/async-jobs-api.txt)."""

    name = "async-jobs"
    unauthorized_body = {"error_code": "unauthorized",
                         "message": "Oauth token is not valid"}

    def route(self, rec):
        m, path = rec["method"], rec["path"]
        if m == "POST" and path.startswith(("/v3/", "/v4/")) and \
                path.endswith("-async"):
            self._submit(rec)
        if path.startswith("/v3/status/"):
            self._status(rec, path[len("/v3/status/"):])
        if path.startswith("/v3/cancel/"):
            self._cancel(rec, path[len("/v3/cancel/"):])

    def _submit(self, rec):
        self._tag(rec, "submit")
        body = rec["body"]
        if not isinstance(body, dict):
            raise _Reply(400, {"error_code": "validation_error",
                               "message": "request body must be JSON"})
        if rec["path"].endswith("/images/generate-async") and \
                not isinstance(body.get("prompt"), str):
            raise _Reply(400, {"error_code": "validation_error",
                               "message": "prompt is required"})
        job_id = "urn:ff:jobs:kilnfake:%s" % uuid.uuid4()
        rec["job"] = job_id
        self.add_job(Job(self, job_id, body, rec["path"]))
        raise _Reply(202, {"jobId": job_id,
                           "statusUrl": self.url("/v3/status/" + job_id),
                           "cancelUrl": self.url("/v3/cancel/" + job_id)})

    def _status(self, rec, job_id):
        self._tag(rec, "status", job_id)
        job = self.find_job(job_id)
        if rec["method"] != "GET":
            raise _Reply(405, {"error_code": "method_not_allowed"})
        if job is None:
            raise _Reply(404, {"error_code": "not_found",
                               "message": "job %s not found" % job_id})
        self.poll(job)
        state = job.state
        if state == "running":
            ans = {"jobId": job_id,
                   "status": "pending" if job.polls <= 1 else "running"}
        elif state == "cancelled":
            ans = {"jobId": job_id, "status": "cancelled",
                   "error_code": "job_cancelled",
                   "message": "the job was cancelled"}
        elif state == "failed":
            ans = {"jobId": job_id, "status": "failed",
                   "error_code": "internal_error",
                   "message": self.fail_message}
        else:
            if job.result_answer is None:
                n = job.body.get("numVariations", 1)
                n = n if isinstance(n, int) and 1 <= n <= 4 else 1
                size = job.body.get("size") or {}
                outputs = []
                for i in range(n):
                    url = self.new_file(job, "ff-%d-%d"
                                        % (next(self._counter), i))
                    outputs.append({"seed": 1000 + i,
                                    "image": {"url": url}})
                job.result_answer = {
                    "size": {"width": size.get("width", 2048),
                             "height": size.get("height", 2048)},
                    "outputs": outputs,
                    "contentClass": job.body.get("contentClass", "photo")}
            ans = {"jobId": job_id, "status": "succeeded",
                   "result": job.result_answer}
        job.last_status = ans
        raise _Reply(200, ans)

    def _cancel(self, rec, job_id):
        self._tag(rec, "cancel", job_id)
        job = self.find_job(job_id)
        if rec["method"] != "PUT":
            raise _Reply(405, {"error_code": "method_not_allowed"})
        if job is None:
            raise _Reply(404, {"error_code": "not_found",
                               "message": "job %s not found" % job_id})
        with self._lock:
            job.cancel_requests += 1
            if job.state == "running":
                job.cancelled = True
        raise _Reply(200, {"jobId": job_id, "status": "cancel_pending"})


# ------------------------------------------------------------------ Replicate

class ReplicateService(FakeService):
    """Replicate's predictions API (https://replicate.com/docs/reference/http).
    output_style: "list" (a list of file URLs, as image models answer) or
    "string" (one URL)."""

    name = "replicate"
    unauthorized_body = {"title": "Unauthenticated",
                         "detail": "You did not pass a valid authentication "
                                   "token", "status": 401}

    def __init__(self, output_style="list", **kw):
        self.output_style = output_style
        super().__init__(**kw)

    def route(self, rec):
        m, parts = rec["method"], rec["path"].strip("/").split("/")
        if m == "POST" and len(parts) == 5 and parts[:2] == ["v1", "models"] \
                and parts[4] == "predictions":
            self._submit(rec, parts[2] + "/" + parts[3])
        if len(parts) == 3 and parts[:2] == ["v1", "predictions"]:
            self._get(rec, parts[2])
        if len(parts) == 4 and parts[:2] == ["v1", "predictions"] and \
                parts[3] == "cancel":
            self._cancel(rec, parts[2])

    def _prediction(self, job):
        p = job.extra["prediction"]
        state = job.state
        if state == "running":
            p["status"] = "starting" if job.polls <= 1 else "processing"
            if p["status"] == "processing" and p["started_at"] is None:
                p["started_at"] = _now_iso()
            p["logs"] = "" if job.polls <= 1 else "step 1/4\n"
        elif p["completed_at"] is None:
            p["completed_at"] = _now_iso()
            p["started_at"] = p["started_at"] or p["completed_at"]
            p["metrics"] = {"predict_time": 0.42, "total_time": 0.57}
            if state == "cancelled":
                p["status"] = "canceled"
            elif state == "failed":
                p["status"] = "failed"
                p["error"] = self.fail_message
                p["logs"] = "step 1/4\nTraceback (most recent call last):\n"
            else:
                p["status"] = "succeeded"
                p["logs"] = "step 1/4\nstep 4/4\n"
                n = job.body["input"].get("num_outputs", 1)
                n = n if isinstance(n, int) and 1 <= n <= 4 else 1
                urls = [self.new_file(job, "out-%s-%d" % (job.id, i))
                        for i in range(n)]
                if job.extra["output_style"] == "string":
                    p["output"] = urls[0]
                else:
                    p["output"] = urls
        return json.loads(json.dumps(p))

    def _submit(self, rec, model):
        self._tag(rec, "submit")
        body = rec["body"]
        if not isinstance(body, dict) or not isinstance(body.get("input"),
                                                        dict):
            raise _Reply(422, {"title": "Input validation failed",
                               "detail": "- input is required",
                               "status": 422})
        job_id = "".join(random.choice(string.ascii_lowercase +
                                       string.digits) for _ in range(26))
        rec["job"] = job_id
        job = Job(self, job_id, body, rec["path"])
        job.extra["output_style"] = self.output_style
        job.extra["prediction"] = {
            "id": job_id, "model": model,
            "version": hashlib.sha256(model.encode()).hexdigest(),
            "input": body["input"], "logs": "", "output": None,
            "data_removed": False, "error": None, "status": "starting",
            "created_at": _now_iso(), "started_at": None,
            "completed_at": None,
            "urls": {"cancel": self.url("/v1/predictions/%s/cancel"
                                        % job_id),
                     "get": self.url("/v1/predictions/%s" % job_id),
                     "stream": self.url("/v1/stream/%s" % job_id),
                     "web": "https://replicate.com/p/%s" % job_id}}
        self.add_job(job)
        raise _Reply(201, self._prediction(job))

    def _get(self, rec, job_id):
        self._tag(rec, "status", job_id)
        job = self.find_job(job_id)
        if rec["method"] != "GET":
            raise _Reply(405, {"detail": "Method Not Allowed"})
        if job is None:
            raise _Reply(404, {"title": "Not found",
                               "detail": "Not found.", "status": 404})
        self.poll(job)
        ans = self._prediction(job)
        job.last_status = ans
        raise _Reply(200, ans)

    def _cancel(self, rec, job_id):
        self._tag(rec, "cancel", job_id)
        job = self.find_job(job_id)
        if rec["method"] != "POST":
            raise _Reply(405, {"detail": "Method Not Allowed"})
        if job is None:
            raise _Reply(404, {"title": "Not found",
                               "detail": "Not found.", "status": 404})
        with self._lock:
            job.cancel_requests += 1
            if job.state == "running":
                job.cancelled = True
        raise _Reply(200, self._prediction(job))


# ------------------------------------------------------------------ fal.ai

class FalService(FakeService):
    """fal.ai's queue API (https://docs.fal.ai/model-endpoints/queue).

    fail_style: how a failed request shows. "result" (what fal documents):
    the status says COMPLETED and GET of the response URL answers the error
    (HTTP 422 with a "detail" list). "status": the status says FAILED with
    an "error" text."""

    name = "fal"

    def __init__(self, fail_style="result", **kw):
        self.fail_style = fail_style
        super().__init__(**kw)

    def route(self, rec):
        m, parts = rec["method"], rec["path"].strip("/").split("/")
        if "requests" in parts:
            i = parts.index("requests")
            app = "/".join(parts[:i])
            rest = parts[i + 1:]
            if len(rest) == 2 and rest[1] == "status":
                self._status(rec, app, rest[0])
            if len(rest) == 1:
                self._result(rec, app, rest[0])
            if len(rest) == 2 and rest[1] == "cancel":
                self._cancel(rec, app, rest[0])
        elif m == "POST" and len(parts) >= 2:
            self._submit(rec, "/".join(parts[:2]))

    def _urls(self, app, rid):
        base = self.url("/%s/requests/%s" % (app, rid))
        return {"response_url": base, "status_url": base + "/status",
                "cancel_url": base + "/cancel"}

    def _job(self, rec, app, rid, kind, method):
        self._tag(rec, kind, rid)
        job = self.find_job(rid)
        if rec["method"] != method:
            raise _Reply(405, {"detail": "Method Not Allowed"})
        if job is None or job.extra["app"] != app:
            raise _Reply(404, {"detail": "Request not found"})
        return job

    def _submit(self, rec, app):
        self._tag(rec, "submit")
        body = rec["body"]
        if not isinstance(body, dict):
            raise _Reply(422, {"detail": [{"loc": ["body"],
                                           "msg": "field required",
                                           "type": "value_error.missing"}]})
        rid = str(uuid.uuid4())
        rec["job"] = rid
        job = Job(self, rid, body, rec["path"])
        job.extra["app"] = app
        job.extra["fail_style"] = self.fail_style
        self.add_job(job)
        ans = {"status": "IN_QUEUE", "request_id": rid, "queue_position": 0}
        ans.update(self._urls(app, rid))
        raise _Reply(200, ans)

    def _status(self, rec, app, rid):
        job = self._job(rec, app, rid, "status", "GET")
        self.poll(job)
        state = job.state
        ans = {"request_id": rid}
        ans.update(self._urls(app, rid))
        if state == "running":
            if job.polls <= 1:
                ans.update(status="IN_QUEUE", queue_position=0)
            else:
                ans.update(status="IN_PROGRESS", logs=None)
        elif state == "failed" and job.extra["fail_style"] == "status":
            ans.update(status="FAILED", error=self.fail_message)
        else:
            ans.update(status="COMPLETED", logs=None,
                       metrics={"inference_time": 0.31})
        job.last_status = ans
        raise _Reply(200, ans)

    def _result(self, rec, app, rid):
        job = self._job(rec, app, rid, "result", "GET")
        state = job.state
        if state == "running":
            raise _Reply(400, {"detail": "Request is still in progress"})
        if state == "cancelled":
            raise _Reply(400, {"detail": "Request was cancelled"})
        if state == "failed":
            raise _Reply(422, {"detail": [{
                "loc": ["body", "prompt"], "msg": self.fail_message,
                "type": "content_policy_violation"}]})
        if job.result_answer is None:
            n = job.body.get("num_images", 1)
            n = n if isinstance(n, int) and 1 <= n <= 4 else 1
            images = [{"url": self.new_file(job, "fal-%s-%d" % (rid, i)),
                       "width": 1024, "height": 768,
                       "content_type": "image/png"} for i in range(n)]
            job.result_answer = {
                "images": images, "timings": {"inference": 0.31},
                "seed": 424242, "has_nsfw_concepts": [False] * n,
                "prompt": job.body.get("prompt", "")}
        raise _Reply(200, job.result_answer)

    def _cancel(self, rec, app, rid):
        job = self._job(rec, app, rid, "cancel", "PUT")
        with self._lock:
            job.cancel_requests += 1
            if job.state != "running":
                raise _Reply(400, {"status": "ALREADY_COMPLETED"})
            job.cancelled = True
        raise _Reply(202, {"status": "CANCELLATION_REQUESTED"})


# ------------------------------------------------------------------ RunPod

class RunPodService(FakeService):
    """RunPod serverless queue endpoints
    (https://docs.runpod.io/serverless/endpoints/operation-reference).
    Accepts "Authorization: Bearer <key>" as required_headers say."""

    name = "runpod"
    unauthorized_body = {"error": "Unauthorized"}

    def route(self, rec):
        parts = rec["path"].strip("/").split("/")
        if len(parts) == 3 and parts[0] == "v2" and parts[2] == "run":
            self._submit(rec, parts[1])
        if len(parts) == 4 and parts[0] == "v2" and parts[2] == "status":
            self._status(rec, parts[1], parts[3])
        if len(parts) == 4 and parts[0] == "v2" and parts[2] == "cancel":
            self._cancel(rec, parts[1], parts[3])

    def _job(self, rec, endpoint, job_id, kind, method):
        self._tag(rec, kind, job_id)
        job = self.find_job(job_id)
        if rec["method"] != method:
            raise _Reply(405, {"error": "Method Not Allowed"})
        if job is None or job.extra["endpoint"] != endpoint:
            raise _Reply(404, {"error": "request does not exist"})
        return job

    def _submit(self, rec, endpoint):
        self._tag(rec, "submit")
        if rec["method"] != "POST":
            raise _Reply(405, {"error": "Method Not Allowed"})
        body = rec["body"]
        if not isinstance(body, dict) or not isinstance(body.get("input"),
                                                        dict):
            raise _Reply(400, {"error": "the request body must hold an "
                                        "\"input\" object"})
        job_id = "%s-u1" % uuid.uuid4()
        rec["job"] = job_id
        job = Job(self, job_id, body, rec["path"])
        job.extra["endpoint"] = endpoint
        self.add_job(job)
        raise _Reply(200, {"id": job_id, "status": "IN_QUEUE"})

    def _status(self, rec, endpoint, job_id):
        job = self._job(rec, endpoint, job_id, "status", "GET")
        self.poll(job)
        state = job.state
        if state == "running":
            ans = {"id": job_id, "status": "IN_QUEUE"} if job.polls <= 1 \
                else {"delayTime": 812, "id": job_id,
                      "status": "IN_PROGRESS", "workerId": "fakeworker01"}
        elif state == "cancelled":
            ans = {"id": job_id, "status": "CANCELLED"}
        elif state == "failed":
            ans = {"delayTime": 812, "executionTime": 1503,
                   "error": self.fail_message, "id": job_id,
                   "status": "FAILED", "workerId": "fakeworker01"}
        else:
            if job.result_answer is None:
                url = self.new_file(job, "runpod-%s" % job_id)
                job.result_answer = {"image_url": url, "seed": 31337,
                                     "echo": job.body["input"]}
            ans = {"delayTime": 812, "executionTime": 1503, "id": job_id,
                   "output": job.result_answer, "status": "COMPLETED",
                   "workerId": "fakeworker01"}
        job.last_status = ans
        raise _Reply(200, ans)

    def _cancel(self, rec, endpoint, job_id):
        job = self._job(rec, endpoint, job_id, "cancel", "POST")
        with self._lock:
            job.cancel_requests += 1
            if job.state == "running":
                job.cancelled = True
        raise _Reply(200, {"id": job_id, "status": "CANCELLED"})


# ------------------------------------------------------------------ ComfyUI

class ComfyUIService(FakeService):
    """A ComfyUI server's HTTP API (server.py routes): /prompt, /history,
    /queue, /interrupt, /view.  Prompts are validated as ComfyUI does at
    its simplest: every node needs class_type and inputs, and the graph
    needs an output node."""

    name = "comfyui"
    OUTPUT_NODES = ("SaveImage", "PreviewImage", "SaveAnimatedWEBP",
                    "SaveAnimatedPNG", "SaveVideo")

    def __init__(self, **kw):
        super().__init__(**kw)
        self._numbers = itertools.count(0)

    def route(self, rec):
        m, path = rec["method"], rec["path"]
        if path.startswith("/api/"):
            path = path[4:]
        if path == "/prompt" and m == "POST":
            self._submit(rec)
        if path.startswith("/history/") and m == "GET":
            self._history(rec, path[len("/history/"):])
        if path == "/queue" and m == "POST":
            self._queue_edit(rec)
        if path == "/queue" and m == "GET":
            self._tag(rec, "other")
            jobs = [j for j in self.jobs() if j.state == "running"]
            raise _Reply(200, {
                "queue_running": [[j.extra["number"], j.id] for j in
                                  jobs[:1]],
                "queue_pending": [[j.extra["number"], j.id] for j in
                                  jobs[1:]]})
        if path == "/interrupt" and m == "POST":
            self._tag(rec, "other")
            raise _Reply(200, None)
        if path == "/view" and m == "GET":
            self._view(rec)

    def _bad(self, etype, message, details=""):
        raise _Reply(400, {"error": {"type": etype, "message": message,
                                     "details": details, "extra_info": {}},
                           "node_errors": {}})

    def _submit(self, rec):
        self._tag(rec, "submit")
        body = rec["body"]
        if not isinstance(body, dict) or "prompt" not in body:
            self._bad("no_prompt", "No prompt provided")
        graph = body["prompt"]
        if not isinstance(graph, dict):
            self._bad("invalid_prompt", "Invalid prompt")
        outputs = []
        for node_id, node in graph.items():
            if not isinstance(node, dict) or \
                    not isinstance(node.get("class_type"), str):
                self._bad("invalid_prompt",
                          "Cannot execute because a node is missing the "
                          "class_type property.", "Node ID '#%s'" % node_id)
            if not isinstance(node.get("inputs"), dict):
                self._bad("invalid_prompt", "Invalid prompt",
                          "Node ID '#%s' has no inputs" % node_id)
            if node["class_type"] in self.OUTPUT_NODES:
                outputs.append(node_id)
        if not outputs:
            self._bad("prompt_no_outputs", "Prompt has no outputs")
        pid = str(uuid.uuid4())
        rec["job"] = pid
        job = Job(self, pid, body, rec["path"])
        job.extra["number"] = next(self._numbers)
        job.extra["outputs"] = outputs
        self.add_job(job)
        raise _Reply(200, {"prompt_id": pid, "number": job.extra["number"],
                           "node_errors": {}})

    def _history(self, rec, pid):
        self._tag(rec, "status", pid)
        job = self.find_job(pid)
        if job is None:
            raise _Reply(200, {})
        self.poll(job)
        state = job.state
        if state in ("running", "cancelled"):
            job.last_status = {}
            raise _Reply(200, {})
        if job.result_answer is None:
            graph = job.body["prompt"]
            ts = int(time.time() * 1000)
            msgs = [["execution_start", {"prompt_id": pid, "timestamp": ts}],
                    ["execution_cached", {"nodes": [], "prompt_id": pid,
                                          "timestamp": ts}]]
            outputs = {}
            if state == "failed":
                first = sorted(graph)[0]
                msgs.append(["execution_error", {
                    "prompt_id": pid, "node_id": first,
                    "node_type": graph[first]["class_type"], "executed": [],
                    "exception_message": self.fail_message,
                    "exception_type": "torch.OutOfMemoryError",
                    "traceback": ["  File \"execution.py\", line 323\n"],
                    "current_inputs": {}, "current_outputs": {},
                    "timestamp": ts}])
                status = {"status_str": "error", "completed": False,
                          "messages": msgs}
            else:
                for i, node_id in enumerate(job.extra["outputs"]):
                    prefix = graph[node_id]["inputs"].get("filename_prefix",
                                                          "ComfyUI")
                    fname = "%s_%05d_.png" % (prefix,
                                              next(self._counter))
                    self._add_view_file(job, fname)
                    outputs[node_id] = {"images": [{
                        "filename": fname, "subfolder": "",
                        "type": "output"}]}
                msgs.append(["execution_success", {"prompt_id": pid,
                                                   "timestamp": ts}])
                status = {"status_str": "success", "completed": True,
                          "messages": msgs}
            job.result_answer = {
                pid: {"prompt": [job.extra["number"], pid, graph, {},
                                 job.extra["outputs"]],
                      "outputs": outputs, "status": status,
                      "meta": {n: {"node_id": n, "display_node": n,
                                   "parent_node": None, "real_node_id": n}
                               for n in outputs}}}
        job.last_status = job.result_answer
        raise _Reply(200, job.result_answer)

    def _add_view_file(self, job, fname):
        data = png_bytes(seed="%s/%s" % (job.id, fname))
        with self._lock:
            self._files["/view/" + fname] = (data, "image/png")
        job.file_urls.append(self.url("/view?" + urllib.parse.urlencode(
            {"filename": fname, "subfolder": "", "type": "output"})))

    def file_bytes(self, url):
        split = urllib.parse.urlsplit(url)
        if split.path == "/view":
            q = urllib.parse.parse_qs(split.query)
            return self._files["/view/" + q["filename"][0]][0]
        return super().file_bytes(url)

    def _view(self, rec):
        self._tag(rec, "file")
        name = (rec["query"].get("filename") or [""])[0]
        with self._lock:
            f = self._files.get("/view/" + name)
        if f is None:
            raise _Reply(404, b"404: Not Found", "text/plain")
        raise _Reply(200, f[0], f[1])

    def _queue_edit(self, rec):
        self._tag(rec, "cancel")
        body = rec["body"] if isinstance(rec["body"], dict) else {}
        ids = body.get("delete") or []
        if isinstance(ids, list) and len(ids) == 1:
            rec["job"] = ids[0]
        with self._lock:
            for job in self._jobs.values():
                if job.id in ids or body.get("clear"):
                    job.cancel_requests += 1
                    if job.state == "running":
                        job.cancelled = True
        raise _Reply(200, None)
