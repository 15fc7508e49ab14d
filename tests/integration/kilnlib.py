"""Shared helpers for Kiln's integration tests.

Every test file starts its own kilnd (KilnServer) on a free 127.0.0.1 port
with a temporary data dir, speaks HTTP to it with http.client, and stops it
at the end.  Only the Python standard library is used, plus Debian's
python3-yaml and python3-jsonschema for the OpenAPI checks.

Environment:
  KILND         path of the kilnd binary (default: ../../build/kilnd)
  KILN_OPENAPI  path of openapi.yaml (default: ../../openapi.yaml); schema
                checks are skipped only when that file does not exist.
"""
import atexit
import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))

SECRET = "kiln-integration-test-secret-7f3a9c2e"
HEALTH_TIMEOUT_S = 10.0
DEFAULT_WAIT_S = 20.0
STOP_GRACE_S = 5.0

WF_STATUSES = ("PENDING", "RUNNING", "PAUSED", "COMPLETED", "FAILED",
               "CANCELLED")
STEP_STATUSES = ("PENDING", "READY", "RUNNING", "COMPLETED", "FAILED",
                 "SKIPPED", "CANCELLED")
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")

WORKFLOW_FIELDS = (
    "id", "name", "description", "status", "total_steps", "completed_steps",
    "progress", "current_step", "final_step_id", "final_step_result",
    "canvas_task_id", "config", "suppress_subtask_events", "origin_instance",
    "origin_zone", "origin_tenant_id", "origin_reference", "webhook_url",
    "error_message", "errors", "started_at", "completed_at", "created_at",
    "updated_at", "is_deleted", "deleted_at", "steps")
STEP_FIELDS = (
    "id", "step_id", "task_type", "config", "provider_config",
    "active_provider_capabilities", "fallback_provider_type",
    "fallback_provider_config", "fallback_provider_capabilities",
    "dependencies", "input_mappings", "status", "task_id", "result",
    "error_message", "started_at", "completed_at", "retry_count",
    "max_retries", "created_at", "updated_at", "provider")

TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
UUID_RE = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# The reference example ("Fashion Image Pipeline") of the upstream API.
FASHION_PIPELINE = {
    "description": "Generate and refine fashion images",
    "name": "Fashion Image Pipeline",
    "origin_instance": "api-prod",
    "steps": [
        {
            "config": {"height": 1024,
                       "prompt": "fashion model wearing elegant dress",
                       "width": 1024},
            "id": "generate",
            "task_type": "GENERATION",
        },
        {
            "config": {"upscale_factor": 2.0},
            "depends_on": ["generate"],
            "id": "refine",
            "input_mappings": [{"from_field": "result_image_path",
                                "from_step": "generate",
                                "to_field": "base_image_url"}],
            "task_type": "REFINE",
        },
    ],
}


def fashion_pipeline(**overrides):
    body = json.loads(json.dumps(FASHION_PIPELINE))
    body.update(overrides)
    return body


def simple_workflow(name="wf", origin_instance="it", steps=None, **extra):
    """A small valid CreateWorkflow body (one dryrun GENERATION step)."""
    body = {"name": name, "origin_instance": origin_instance,
            "steps": steps or [{"id": "only", "task_type": "GENERATION",
                                "config": {"prompt": "p"}}]}
    body.update(extra)
    return body


# ------------------------------------------------------------------ basics

def free_port():
    """A port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kilnd_path():
    path = os.environ.get("KILND") or os.path.join(REPO, "build", "kilnd")
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise RuntimeError("kilnd binary not found: set KILND (tried %r)"
                           % path)
    return path


def kilnd_env(secret=SECRET, extra=None):
    """Environment for a kilnd process; secret None removes
    KILN_JWT_SECRET so the daemon uses <data-dir>/jwt.secret."""
    env = dict(os.environ)
    env.pop("KILN_JWT_SECRET", None)
    if secret is not None:
        env["KILN_JWT_SECRET"] = secret
    for k, v in (extra or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def run_kilnd(args, env=None, timeout=30, secret=SECRET):
    """Runs kilnd with args to completion; returns CompletedProcess
    (text mode)."""
    return subprocess.run([kilnd_path()] + list(args),
                          env=env if env is not None else kilnd_env(secret),
                          stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)


SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                     "runtime error:", "WARNING: ThreadSanitizer",
                     "ERROR: UndefinedBehaviorSanitizer")


def sanitizer_findings(text):
    return [line for line in text.splitlines()
            if any(m in line for m in SANITIZER_MARKERS)]


# ------------------------------------------------------------------ tokens

def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_DIGESTS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384,
            "HS512": hashlib.sha512}


def make_token(claims=None, secret=SECRET, alg="HS256", header=None,
               ttl=3600, sign_alg=None):
    """A JWT.  Default claims: sub, iat, exp (now+ttl); claims update them,
    a claim set to None is removed.  alg goes in the header; the signature
    uses sign_alg (default alg; "none" means an empty signature)."""
    now = int(time.time())
    payload = {"sub": "integration-test", "iat": now, "exp": now + ttl}
    for k, v in (claims or {}).items():
        if v is None:
            payload.pop(k, None)
        else:
            payload[k] = v
    head = header if header is not None else {"alg": alg, "typ": "JWT"}
    signing_input = (b64url(json.dumps(head, separators=(",", ":"))) + "." +
                     b64url(json.dumps(payload, separators=(",", ":"))))
    sign_alg = sign_alg or alg
    if sign_alg.lower() == "none":
        sig = ""
    elif sign_alg in _DIGESTS:
        key = secret.encode() if isinstance(secret, str) else secret
        sig = b64url(hmac.new(key, signing_input.encode(),
                              _DIGESTS[sign_alg]).digest())
    else:
        sig = b64url(b"not-a-real-signature-" + sign_alg.encode())
    return signing_input + "." + sig


def token_claims(token):
    """Decoded payload of a JWT (no verification)."""
    return json.loads(b64url_decode(token.split(".")[1]))


OPERATOR_TOKEN = make_token()


def tenant_token(tenant, secret=SECRET):
    return make_token({"tenant": tenant}, secret=secret)


# ------------------------------------------------------------------ HTTP

class _NoBody:
    pass


NOBODY = _NoBody()
DEFAULT = object()


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers      # http.client.HTTPMessage (case-insens.)
        self.body = body            # bytes
        self.text = body.decode("utf-8", "replace")
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def header(self, name, default=None):
        return self.headers.get(name, default)

    def __repr__(self):
        return "<HTTP %d %s>" % (self.status, self.text[:2000])


def http_request(port, method, path, body=NOBODY, raw=None, headers=None,
                 content_type="application/json", token=None, timeout=30.0):
    """One request on a fresh connection.  body is JSON-encoded; raw
    (bytes/str) is sent as is; content_type None sends no Content-Type."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    hdrs = {}
    if token:
        hdrs["Authorization"] = "Bearer " + token
    data = None
    if raw is not None:
        data = raw.encode() if isinstance(raw, str) else raw
    elif body is not NOBODY:
        data = json.dumps(body).encode()
    if data is not None and content_type:
        hdrs["Content-Type"] = content_type
    hdrs.update(headers or {})
    try:
        try:
            conn.request(method, path, body=data, headers=hdrs)
        except (BrokenPipeError, ConnectionResetError):
            pass    # the server may answer early (413) and stop reading
        resp = conn.getresponse()
        payload = resp.read()
        return Response(resp.status, resp.headers, payload)
    finally:
        conn.close()


def raw_exchange(port, head, body=b"", expect_continue=False, timeout=30.0):
    """Sends head (bytes, ending with CRLFCRLF) and body on a raw socket and
    returns the final Response.  With expect_continue the body is sent only
    after a 100 Continue (or after 3 s without an answer), as curl does."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    buf = b""
    try:
        sock.sendall(head)
        send_body = True
        if expect_continue:
            sock.settimeout(3.0)
            try:
                while b"\r\n\r\n" not in buf:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
            except socket.timeout:
                pass
            sock.settimeout(timeout)
            if buf and not buf.startswith(b"HTTP/1.1 100") and \
                    not buf.startswith(b"HTTP/1.0 100"):
                send_body = False       # final answer before the body
            elif buf:
                buf = buf.split(b"\r\n\r\n", 1)[1]
        if send_body and body:
            try:
                sock.sendall(body)
            except (BrokenPipeError, ConnectionResetError):
                pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            parsed = _parse_response(buf)
            if parsed is not None:
                return parsed
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            buf += chunk
        parsed = _parse_response(buf, eof=True)
        if parsed is None:
            raise AssertionError("no complete HTTP response; got %r"
                                 % buf[:500])
        return parsed
    finally:
        sock.close()


def _parse_response(buf, eof=False):
    while True:
        if b"\r\n\r\n" not in buf:
            return None
        head, rest = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        if 100 <= status < 200:
            buf = rest
            continue
        msg = http.client.HTTPMessage()
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                msg[k.strip()] = v.strip()
        length = msg.get("Content-Length")
        if length is not None:
            if len(rest) < int(length):
                return None
            return Response(status, msg, rest[:int(length)])
        if not eof:
            return None
        return Response(status, msg, rest)


# ------------------------------------------------------------------ OpenAPI

_OPENAPI = {"loaded": False, "doc": None, "validators": {}}


def openapi_path():
    return os.environ.get("KILN_OPENAPI") or os.path.join(REPO,
                                                          "openapi.yaml")


def openapi_doc():
    """The parsed openapi.yaml, or None when the file does not exist."""
    if not _OPENAPI["loaded"]:
        path = openapi_path()
        if os.path.exists(path):
            import yaml
            with open(path, encoding="utf-8") as f:
                _OPENAPI["doc"] = yaml.safe_load(f)
        else:
            sys.stderr.write("note: %s does not exist; OpenAPI schema "
                             "checks skipped\n" % path)
        _OPENAPI["loaded"] = True
    return _OPENAPI["doc"]


def _validator(name):
    if name in _OPENAPI["validators"]:
        return _OPENAPI["validators"][name]
    doc = openapi_doc()
    import jsonschema
    schemas = (doc.get("components") or {}).get("schemas") or {}
    if name not in schemas:
        raise AssertionError("openapi.yaml has no components.schemas.%s"
                             % name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        resolver = jsonschema.RefResolver.from_schema(doc)
        checker = getattr(jsonschema.Draft202012Validator, "FORMAT_CHECKER",
                          None) or jsonschema.draft202012_format_checker
        v = jsonschema.Draft202012Validator(
            {"$ref": "#/components/schemas/" + name}, resolver=resolver,
            format_checker=checker)
    _OPENAPI["validators"][name] = v
    return v


def assert_schema(obj, name):
    """Validates obj against components.schemas[name] of openapi.yaml."""
    if openapi_doc() is None:
        return
    v = _validator(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        errors = sorted(v.iter_errors(obj), key=lambda e: list(e.path))
    if errors:
        lines = ["%s at %s: %s" % (name, "/".join(map(str, e.path)) or "/",
                                   e.message[:300]) for e in errors[:10]]
        raise AssertionError("response does not match the OpenAPI schema:\n"
                             + "\n".join(lines))


def assert_workflow_shape(wf):
    """Every WorkflowPublic/WorkflowStepPublic field is present, timestamps
    are RFC 3339 with milliseconds, ids are lower-case UUIDs, and the whole
    object matches openapi.yaml."""
    assert isinstance(wf, dict), "workflow is not an object: %r" % (wf,)
    missing = [f for f in WORKFLOW_FIELDS if f not in wf]
    assert not missing, "workflow lacks fields %s" % missing
    assert UUID_RE.match(wf["id"]), "workflow id %r" % wf["id"]
    assert wf["status"] in WF_STATUSES, wf["status"]
    for f in ("started_at", "completed_at", "created_at", "updated_at",
              "deleted_at"):
        if wf[f] is not None or f in ("created_at", "updated_at"):
            assert isinstance(wf[f], str) and TIMESTAMP_RE.match(wf[f]), \
                "workflow %s = %r is not RFC 3339 UTC with ms" % (f, wf[f])
    assert isinstance(wf["steps"], list)
    for st in wf["steps"]:
        missing = [f for f in STEP_FIELDS if f not in st]
        assert not missing, "step %r lacks fields %s" % (st.get("step_id"),
                                                         missing)
        assert UUID_RE.match(st["id"]), "step id %r" % st["id"]
        assert st["status"] in STEP_STATUSES, st["status"]
        if st["task_id"] is not None:
            assert UUID_RE.match(st["task_id"]), "task_id %r" % st["task_id"]
        for f in ("started_at", "completed_at", "created_at", "updated_at"):
            if st[f] is not None or f in ("created_at", "updated_at"):
                assert isinstance(st[f], str) and TIMESTAMP_RE.match(st[f]), \
                    "step %s = %r is not RFC 3339 UTC with ms" % (f, st[f])
    assert_schema(wf, "WorkflowPublic")


def steps_by_id(wf):
    return {s["step_id"]: s for s in wf["steps"]}


# ------------------------------------------------------------------ server

_LIVE_SERVERS = []


def _kill_leftovers():
    for s in list(_LIVE_SERVERS):
        try:
            s.stop()
        except Exception:
            pass


atexit.register(_kill_leftovers)


class KilnServer:
    """One kilnd process on 127.0.0.1:<free port>.

    config: a dict written to <tmp>/kilnd.json and passed with --config,
    or None.  secret: KILN_JWT_SECRET (None: not set).  data_dir: default a
    fresh temporary directory, kept across restart()."""

    def __init__(self, config=None, secret=SECRET, data_dir=None, env=None,
                 extra_args=None, name="kilnd"):
        self.tmp = tempfile.mkdtemp(prefix="kiln-it-")
        self.data_dir = data_dir or os.path.join(self.tmp, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self.config = config
        self.config_path = None
        self.secret = secret
        self.env = env or {}
        self.extra_args = list(extra_args or [])
        self.name = name
        self.stderr_path = os.path.join(self.tmp, "kilnd.stderr")
        self.proc = None
        self.port = None
        self.returncodes = []
        self.token = make_token(secret=secret) if secret else None

    # -- lifecycle
    def write_config(self, config):
        self.config = config
        self.config_path = os.path.join(self.tmp, "kilnd.json")
        with open(self.config_path, "w") as f:
            json.dump(config, f)

    def start(self):
        if self.config is not None:
            self.write_config(self.config)
        last_err = None
        for _ in range(3):
            try:
                self._start_once()
                return self
            except _PortInUse as e:
                last_err = e
        raise RuntimeError(str(last_err))

    def _start_once(self):
        self.port = free_port()
        args = [kilnd_path(), "--listen", "127.0.0.1:%d" % self.port,
                "--data-dir", self.data_dir]
        if self.config_path:
            args += ["--config", self.config_path]
        args += self.extra_args
        with open(self.stderr_path, "ab") as log:
            log.write(("==== start %s on port %d\n" % (self.name, self.port))
                      .encode())
        offset = os.path.getsize(self.stderr_path)
        log = open(self.stderr_path, "ab")
        try:
            self.proc = subprocess.Popen(
                args, env=kilnd_env(self.secret, self.env),
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        finally:
            log.close()
        _LIVE_SERVERS.append(self)
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                self.returncodes.append(rc)
                _LIVE_SERVERS.remove(self)
                text = self.log_text(offset)
                self.proc = None
                if "in use" in text.lower():
                    raise _PortInUse(text)
                raise RuntimeError("kilnd exited with %d during start-up; "
                                   "stderr:\n%s" % (rc, text))
            try:
                r = http_request(self.port, "GET", "/healthz", timeout=2)
                if r.status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        text = self.log_text(offset)
        self.stop()
        raise RuntimeError("kilnd did not answer GET /healthz within %.0f s;"
                           " stderr:\n%s" % (HEALTH_TIMEOUT_S, text))

    def stop(self, sig=signal.SIGTERM):
        """Stops kilnd (sig, then SIGKILL after 5 s); returns its exit
        status (None when it was not running)."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            try:
                proc.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self in _LIVE_SERVERS:
            _LIVE_SERVERS.remove(self)
        self.returncodes.append(proc.returncode)
        return proc.returncode

    def kill(self):
        return self.stop(signal.SIGKILL)

    def restart(self):
        self.stop()
        return self.start()

    def cleanup_files(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    # -- logs
    def log_size(self):
        try:
            return os.path.getsize(self.stderr_path)
        except OSError:
            return 0

    def log_text(self, offset=0):
        try:
            with open(self.stderr_path, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def sanitizer_findings(self):
        return sanitizer_findings(self.log_text())

    # -- HTTP
    def request(self, method, path, body=NOBODY, token=DEFAULT, **kw):
        if token is DEFAULT:
            token = self.token
        return http_request(self.port, method, path, body=body, token=token,
                            **kw)

    def create(self, body, start=None, token=DEFAULT, expect=201):
        path = "/api/v1/workflows"
        if start is not None:
            path += "?start=" + ("true" if start else "false")
        r = self.request("POST", path, body, token=token)
        if expect is not None and r.status != expect:
            raise AssertionError("POST %s answered %r, expected %d"
                                 % (path, r, expect))
        return r.json

    def get_wf(self, wf_id, token=DEFAULT):
        r = self.request("GET", "/api/v1/workflows/" + wf_id, token=token)
        if r.status != 200:
            raise AssertionError("GET workflow %s answered %r" % (wf_id, r))
        return r.json

    def action(self, wf_id, verb, token=DEFAULT, query=""):
        return self.request("POST", "/api/v1/workflows/%s/%s%s"
                            % (wf_id, verb, query), token=token)

    def list_wf(self, query="", token=DEFAULT):
        r = self.request("GET", "/api/v1/workflows" + query, token=token)
        if r.status != 200:
            raise AssertionError("GET list%s answered %r" % (query, r))
        return r.json

    def wait_for_status(self, wf_id, statuses, timeout=DEFAULT_WAIT_S,
                        token=DEFAULT):
        """Polls GET until the workflow's status is one of statuses; fails
        at once if it reaches another terminal status."""
        if isinstance(statuses, str):
            statuses = (statuses,)
        deadline = time.monotonic() + timeout
        wf = None
        while True:
            wf = self.get_wf(wf_id, token=token)
            if wf["status"] in statuses:
                return wf
            if wf["status"] in TERMINAL:
                raise AssertionError(
                    "workflow %s reached %s while waiting for %s: %s"
                    % (wf_id, wf["status"], statuses,
                       json.dumps(wf, indent=1)[:4000]))
            if time.monotonic() > deadline:
                raise AssertionError(
                    "workflow %s still %s after %.0f s (wanted %s): %s"
                    % (wf_id, wf["status"], timeout, statuses,
                       json.dumps(wf, indent=1)[:4000]))
            time.sleep(0.05)

    def wait_for_step(self, wf_id, step_id, statuses, timeout=DEFAULT_WAIT_S):
        if isinstance(statuses, str):
            statuses = (statuses,)
        deadline = time.monotonic() + timeout
        while True:
            wf = self.get_wf(wf_id)
            st = steps_by_id(wf)[step_id]
            if st["status"] in statuses:
                return wf
            if time.monotonic() > deadline:
                raise AssertionError(
                    "step %s of %s still %s after %.0f s (wanted %s): %s"
                    % (step_id, wf_id, st["status"], timeout, statuses,
                       json.dumps(wf, indent=1)[:4000]))
            time.sleep(0.05)


class _PortInUse(Exception):
    pass


def wait_until(predicate, timeout=DEFAULT_WAIT_S, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0f s waiting for %s"
                                 % (timeout, what))
        time.sleep(0.05)


# ------------------------------------------------------------------ tests

class KilnTestCase(unittest.TestCase):
    """Base class: prints the stderr of the kilnd processes a failing test
    used, stops class and per-test servers, and fails the class when a
    sanitizer reported something in a kilnd's stderr."""

    class_servers = ()
    maxDiff = None

    @classmethod
    def start_class_server(cls, **kw):
        srv = KilnServer(**kw).start()
        cls.class_servers = tuple(cls.class_servers) + (srv,)
        return srv

    @classmethod
    def tearDownClass(cls):
        findings = []
        for srv in cls.class_servers:
            srv.stop()
            f = srv.sanitizer_findings()
            if f:
                findings.append("%s (%s):\n%s" % (srv.name, srv.stderr_path,
                                                  srv.log_text()[-20000:]))
            else:
                srv.cleanup_files()
        cls.class_servers = ()
        if findings:
            raise AssertionError("sanitizer reports in kilnd stderr:\n"
                                 + "\n".join(findings))

    def _failure_count(self):
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None)
        n = 0
        if result is not None:
            n += len(getattr(result, "failures", ()))
            n += len(getattr(result, "errors", ()))
        # Python < 3.11 keeps the errors of the running test on the outcome
        n += sum(1 for _, exc in getattr(outcome, "errors", ()) if exc)
        return n

    def setUp(self):
        self._test_servers = []
        self._log_marks = {id(s): s.log_size() for s in self.class_servers}
        self._failures_before = self._failure_count()

    def start_server(self, **kw):
        """A kilnd for this test only, stopped at its end."""
        srv = KilnServer(**kw)
        self._test_servers.append(srv)
        self._log_marks[id(srv)] = 0
        srv.start()
        return srv

    def tearDown(self):
        failed = self._failure_count() > self._failures_before
        servers = list(self.class_servers) + self._test_servers
        if failed:
            for srv in servers:
                text = srv.log_text(self._log_marks.get(id(srv), 0))
                sys.stderr.write("\n----- %s stderr (%s) during %s -----\n%s"
                                 "----- end of %s stderr -----\n"
                                 % (srv.name, srv.stderr_path, self.id(),
                                    text[-20000:], srv.name))
        findings = []
        for srv in self._test_servers:
            srv.stop()
            f = srv.sanitizer_findings()
            if f:
                findings.append("%s:\n%s" % (srv.name,
                                             srv.log_text()[-20000:]))
            elif not failed:
                srv.cleanup_files()
        if findings:
            self.fail("sanitizer reports in kilnd stderr:\n"
                      + "\n".join(findings))

    # -- assertions
    def assertStatus(self, resp, status, msg=None):
        if resp.status != status:
            self.fail("expected HTTP %d, got %r%s" % (
                status, resp, (" (" + msg + ")") if msg else ""))

    def assertDetail(self, resp, status, detail):
        self.assertStatus(resp, status)
        self.assertIsInstance(resp.json, dict, resp.text)
        self.assertEqual(resp.json.get("detail"), detail, resp.text)

    def assertConflict(self, resp, wf_id, status_name):
        """409 whose detail names the workflow and its current status."""
        self.assertStatus(resp, 409)
        detail = (resp.json or {}).get("detail")
        self.assertIsInstance(detail, str, resp.text)
        self.assertTrue(detail.startswith("Workflow %s is %s"
                                          % (wf_id, status_name)),
                        "409 detail %r does not start with 'Workflow %s is "
                        "%s'" % (detail, wf_id, status_name))

    def assertValidation(self, resp, expected, exact_count=None):
        """422 with a FastAPI-shaped detail containing, for each
        (loc, type[, msg]) of expected, an item with that loc and type (type
        may be a tuple of allowed types; msg, when given, must be equal, or
        a prefix when it ends with '...')."""
        self.assertStatus(resp, 422)
        body = resp.json
        self.assertIsInstance(body, dict, resp.text)
        detail = body.get("detail")
        self.assertIsInstance(detail, list, resp.text)
        self.assertTrue(detail, "empty detail list")
        assert_schema(body, "HTTPValidationError")
        for item in detail:
            self.assertIsInstance(item.get("loc"), list, resp.text)
            self.assertIsInstance(item.get("type"), str, resp.text)
            self.assertIsInstance(item.get("msg"), str, resp.text)
        for exp in expected:
            loc, typ = list(exp[0]), exp[1]
            msg = exp[2] if len(exp) > 2 else None
            types = typ if isinstance(typ, tuple) else (typ,)
            hits = [d for d in detail if d.get("loc") == loc]
            self.assertTrue(hits, "no error at loc %r in %s"
                            % (loc, json.dumps(detail)))
            hits = [d for d in hits if d.get("type") in types]
            self.assertTrue(hits, "error at loc %r has type %r, expected "
                            "%r" % (loc, [d.get("type") for d in detail
                                          if d.get("loc") == loc], types))
            if msg is not None:
                if msg.endswith("..."):
                    ok = [d for d in hits if d["msg"].startswith(msg[:-3])]
                else:
                    ok = [d for d in hits if d["msg"] == msg]
                self.assertTrue(ok, "error at %r has msg %r, expected %r"
                                % (loc, [d["msg"] for d in hits], msg))
        if exact_count is not None:
            self.assertEqual(len(detail), exact_count, json.dumps(detail))
        return detail


def main():
    unittest.main(verbosity=2)
