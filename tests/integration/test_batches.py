"""Batches: one published template run over many assets.

POST /api/v1/batches (202 at once; every asset checked before anything is
stored; Idempotency-Key; its own body cap), GET one and the list (filters,
pagination, tenants), cancel, retry, the executions list, the scheduler
(concurrency_limit per batch, batch_max_running over all batches, HIGH before
NORMAL before LOW, round robin among equals), continue_on_error false, a
SIGKILL in the middle of a batch, and the batch webhooks (batch.completed,
batch.execution.completed / failed).

The provider is a BatchProvider (batch_provider.py): the templates put the
batch's tag and the asset into each step's request, so every call says which
batch and which asset it is for, and the asset URL's query (do=fail,
do=hold...) or the tag's mode chooses what the call does.  Each test uses
tags of its own.

Groups (one kilnd per class unless said otherwise):
  BatchApiTest         create/get/list/executions/cancel/retry/tenants,
                       continue_on_error, concurrency_limit
  BatchValidationTest  422/404/409/401 answers; nothing stored on a 422
  BatchWebhookTest     the batch events, signed (webhook secret and tenant
                       secret)
  BatchBodyLimitTest   batch_max_body_bytes against max_body_bytes
  BatchSchedulingTest  batch_max_running 1: priorities, round robin, a
                       batch that never started being cancelled
  BatchOwnKilndTest    a kilnd per test: batch_max_running 2, SIGKILL

2xx answers are checked against openapi.yaml's BatchPublic, BatchList,
ExecutionList (and BatchCancelResponse, BatchRetryResponse, BatchEvent,
BatchExecutionEvent) when openapi.yaml has those schemas; the names it
lacks are listed on stderr at the end."""
import atexit
import calendar
import datetime
import itertools
import json
import math
import sys
import time
import urllib.parse

import kilnlib
from kilnlib import (KilnTestCase, NOBODY, TIMESTAMP_RE, UUID_RE,
                     openapi_doc, tenant_token, wait_until)
from batch_provider import BatchProvider, OK_COST, asset_url, output_url
from webhook_receiver import WebhookReceiver, new_secret

BT = "/api/v1/batches"
TP = "/api/v1/templates"
NIL = "00000000-0000-4000-8000-000000000000"

BATCH_STATUSES = ("PENDING", "RUNNING", "COMPLETED", "COMPLETED_WITH_ERRORS",
                  "FAILED", "CANCELLED")
ENDED = ("COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "CANCELLED")
EXEC_STATUSES = ("PENDING", "RUNNING", "SUCCESS", "FAILED", "CANCELLED")
ERROR_CODES = ("INVALID_INPUT", "PROVIDER_REJECTED", "PROVIDER_UNAVAILABLE",
               "GENERATION_FAILED", "DEADLINE_EXCEEDED", "CANCELLED")
COUNT_KEYS = ("total", "pending", "processing", "completed", "failed",
              "cancelled")
BATCH_FIELDS = (
    "id", "status", "name", "template_id", "template_version", "priority",
    "concurrency_limit", "continue_on_error", "asset_input", "inputs",
    "webhook_url", "execution_events", "origin_instance", "origin_zone",
    "origin_reference", "origin_tenant_id", "assets", "timing",
    "estimated_time_remaining_ms", "credit_cost", "links", "created_at",
    "updated_at", "cancelled_at")
TIMING_FIELDS = ("started_at", "completed_at", "elapsed_ms",
                 "mean_execution_ms", "throughput_per_minute")
PERCENTILES = ("p50_execution_ms", "p95_execution_ms")
EXEC_FIELDS = (
    "execution_id", "asset_index", "input_asset", "status", "workflow_id",
    "started_at", "completed_at", "duration_ms", "credit_cost", "runs",
    "previous_workflow_ids")

# ------------------------------------------------------------ schemas

_MISSING_SCHEMAS = set()


def check_schema(obj, name):
    """assert_schema when openapi.yaml has the schema; else remembered
    (and listed at exit)."""
    doc = openapi_doc()
    if doc is None:
        return
    schemas = (doc.get("components") or {}).get("schemas") or {}
    if name not in schemas:
        _MISSING_SCHEMAS.add(name)
        return
    kilnlib.assert_schema(obj, name)


@atexit.register
def _report_missing_schemas():
    if _MISSING_SCHEMAS:
        sys.stderr.write("note: openapi.yaml has no %s; those schema checks "
                         "were skipped\n"
                         % ", ".join(sorted(_MISSING_SCHEMAS)))


# ------------------------------------------------------------ templates

def asset_template(name="batch-asset", **extra):
    """img (asset), tag (required), size and version (defaulted): the step
    sends them all to the provider."""
    body = {
        "name": name,
        "inputs": {"img": {"type": "asset"},
                   "tag": {"type": "string", "required": True},
                   "size": {"type": "integer", "default": 1},
                   "version": {"type": "integer", "default": 1}},
        "steps": [{"id": "gen", "task_type": "BATCH_GEN",
                   "config": {"image": "{{inputs.img}}",
                              "tag": "{{inputs.tag}}",
                              "size": "{{inputs.size}}",
                              "version": "{{inputs.version}}"}}]}
    body.update(extra)
    return body


def url_template(name="batch-url"):
    return {"name": name,
            "inputs": {"src": {"type": "url"},
                       "tag": {"type": "string", "required": True}},
            "steps": [{"id": "gen", "task_type": "BATCH_GEN",
                       "config": {"image": "{{inputs.src}}",
                                  "tag": "{{inputs.tag}}"}}]}


def provider_config(bp, **extra):
    cfg = {"providers": {"bp": {"type": "http", "url": bp.url(),
                                "timeout_s": 30, "connect_timeout_s": 5}},
           "task_types": {"BATCH_GEN": "bp"}}
    cfg.update(extra)
    return cfg


_TAGS = itertools.count(1)


def new_tag(prefix="t"):
    return "%s%d" % (prefix, next(_TAGS))


def assets_for(tag, n, start=0, ids=True, **query):
    return [dict({"url": asset_url(tag, str(i), **query)},
                 **({"asset_id": "%s-%d" % (tag, i)} if ids else {}))
            for i in range(start, start + n)]


def asset_name(url):
    """"3" for https://assets.example.test/<tag>/3.png?..."""
    return urllib.parse.urlsplit(url).path.rsplit("/", 1)[1][:-4]


def parse_ts(text):
    dt = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
    return calendar.timegm(dt.timetuple()) * 1000 + dt.microsecond // 1000


def fmt_ts(ms):
    dt = datetime.datetime.fromtimestamp(ms / 1000.0, datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


def query(**params):
    params = {k: v for k, v in params.items() if v is not None}
    return ("?" + urllib.parse.urlencode(params)) if params else ""


# ------------------------------------------------------------ shapes

def assert_counts(counts, total=None):
    assert isinstance(counts, dict), counts
    assert sorted(counts) == sorted(COUNT_KEYS), counts
    for k in COUNT_KEYS:
        assert isinstance(counts[k], int) and counts[k] >= 0, \
            "assets.%s = %r: %r" % (k, counts[k], counts)
    assert counts["total"] == sum(counts[k] for k in COUNT_KEYS[1:]), \
        "counts do not add up to total: %r" % counts
    if total is not None:
        assert counts["total"] == total, counts


def assert_batch_shape(b, one=True):
    """Every field, well-formed ids, times, counts and links; one: the
    GET-one extras (percentiles, failed_execution_ids)."""
    assert isinstance(b, dict), b
    missing = [f for f in BATCH_FIELDS if f not in b]
    assert not missing, "batch lacks %s: %r" % (missing, b)
    assert UUID_RE.match(b["id"]), b["id"]
    assert UUID_RE.match(b["template_id"]), b["template_id"]
    assert b["status"] in BATCH_STATUSES, b["status"]
    assert b["priority"] in ("HIGH", "NORMAL", "LOW"), b["priority"]
    for f in ("created_at", "updated_at"):
        assert TIMESTAMP_RE.match(b[f]), (f, b[f])
    if b["cancelled_at"] is not None:
        assert TIMESTAMP_RE.match(b["cancelled_at"]), b["cancelled_at"]
    assert_counts(b["assets"])
    timing = b["timing"]
    for f in TIMING_FIELDS:
        assert f in timing, "timing lacks %s: %r" % (f, timing)
    for f in ("started_at", "completed_at"):
        if timing[f] is not None:
            assert TIMESTAMP_RE.match(timing[f]), (f, timing[f])
    base = "/api/v1/batches/" + b["id"]
    assert b["links"] == {"self": base, "status": base,
                          "cancel": base + "/cancel",
                          "executions": base + "/executions",
                          "retry": base + "/retry"}, b["links"]
    if one:
        for f in PERCENTILES:
            assert f in timing, "timing lacks %s: %r" % (f, timing)
        assert isinstance(b.get("failed_execution_ids"), list), b
        assert isinstance(b.get("failed_execution_ids_truncated"), bool), b
    else:
        for f in PERCENTILES:
            assert f not in timing, "a list shows %s: %r" % (f, timing)
        assert "failed_execution_ids" not in b, \
            "a list shows failed_execution_ids"
    check_schema(b, "BatchPublic")


def assert_exec_shape(e):
    missing = [f for f in EXEC_FIELDS if f not in e]
    assert not missing, "execution lacks %s: %r" % (missing, e)
    assert UUID_RE.match(e["execution_id"]), e
    assert e["status"] in EXEC_STATUSES, e
    ia = e["input_asset"]
    assert isinstance(ia, dict) and set(ia) == {"asset_id", "url",
                                                "inputs"}, ia
    assert isinstance(ia["inputs"], dict), ia
    assert isinstance(e["previous_workflow_ids"], list), e
    if e["status"] == "SUCCESS":
        assert isinstance(e.get("outputs"), list), e
    else:
        assert "outputs" not in e, "a %s execution has outputs" % e["status"]
    if e["status"] in ("FAILED", "CANCELLED"):
        err = e.get("error")
        assert isinstance(err, dict) and err.get("code") in ERROR_CODES, e
        assert "message" in err, e
    else:
        assert "error" not in e, "a %s execution has an error" % e["status"]
    if e["status"] == "PENDING":
        assert e["workflow_id"] is None and e["started_at"] is None, e
    elif e["workflow_id"] is not None:
        assert UUID_RE.match(e["workflow_id"]), e
    for f in ("started_at", "completed_at"):
        if e[f] is not None:
            assert TIMESTAMP_RE.match(e[f]), (f, e[f])


# ------------------------------------------------------------ base class

class BatchCase(KilnTestCase):
    """A kilnd (cls.srv) with the BatchProvider (cls.bp) behind task type
    BATCH_GEN, and helpers.  A kilnd that died during a test fails that
    test and is started again (same data dir) for the next one."""

    srv = None
    bp = None
    server_config = {}

    @classmethod
    def setUpClass(cls):
        cls.bp = BatchProvider()
        try:
            cls.srv = cls.start_class_server(
                config=provider_config(cls.bp, **cls.server_config),
                name="kilnd-" + cls.__name__)
        except Exception:
            cls.bp.close()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            if cls.bp is not None:
                cls.bp.close()

    def setUp(self):
        super().setUp()
        if self.srv is not None and not self.srv.running:
            self.srv.stop()
            self.srv.start()
            self._log_marks[id(self.srv)] = self.srv.log_size()

    def tearDown(self):
        died = None
        srv = self.srv
        if srv is not None and srv.proc is not None and \
                srv.proc.poll() is not None:
            died = srv.proc.returncode
        if self.bp is not None:
            self.bp.release_all()
        try:
            super().tearDown()
        finally:
            if died is not None:
                self.fail("kilnd died during this test (exit status %d)"
                          % died)

    # -- requests
    def template(self, body=None, token=kilnlib.DEFAULT, srv=None):
        srv = srv or self.srv
        r = srv.request("POST", TP, body or asset_template(), token=token)
        self.assertStatus(r, 201)
        return r.json["id"]

    def post_batch(self, body, token=kilnlib.DEFAULT, headers=None,
                   srv=None):
        srv = srv or self.srv
        try:
            return srv.request("POST", BT, body, token=token,
                               headers=headers)
        except ConnectionError as e:
            self.fail("kilnd hung up without answering POST %s (%s: %s)"
                      % (BT, type(e).__name__, e))

    def create(self, tid, tag, assets, token=kilnlib.DEFAULT, srv=None,
               inputs=None, headers=None, **extra):
        """POSTs a batch whose shared inputs carry tag; 202 expected."""
        body = {"template_id": tid,
                "inputs": dict({"tag": tag}, **(inputs or {})),
                "assets": assets}
        body.update(extra)
        r = self.post_batch(body, token=token, headers=headers, srv=srv)
        self.assertStatus(r, 202)
        assert_batch_shape(r.json)
        return r.json

    def get(self, bid, token=kilnlib.DEFAULT, srv=None):
        r = (srv or self.srv).request("GET", "%s/%s" % (BT, bid),
                                      token=token)
        self.assertStatus(r, 200)
        assert_batch_shape(r.json)
        return r.json

    def list_batches(self, token=kilnlib.DEFAULT, srv=None, **params):
        r = (srv or self.srv).request("GET", BT + query(**params),
                                      token=token)
        self.assertStatus(r, 200)
        check_schema(r.json, "BatchList")
        for b in r.json["batches"]:
            assert_batch_shape(b, one=False)
        return r.json

    def executions(self, bid, token=kilnlib.DEFAULT, srv=None, **params):
        r = (srv or self.srv).request(
            "GET", "%s/%s/executions%s" % (BT, bid, query(**params)),
            token=token)
        self.assertStatus(r, 200)
        check_schema(r.json, "ExecutionList")
        self.assertEqual(r.json["batch_id"], bid)
        for e in r.json["executions"]:
            assert_exec_shape(e)
        return r.json

    def all_executions(self, bid, srv=None):
        return self.executions(bid, srv=srv, limit=500)["executions"]

    def cancel(self, bid, srv=None):
        return (srv or self.srv).request("POST", "%s/%s/cancel" % (BT, bid))

    def retry(self, bid, body=NOBODY, srv=None):
        return (srv or self.srv).request("POST", "%s/%s/retry" % (BT, bid),
                                         body)

    def wait_ended(self, bid, timeout=20.0, srv=None):
        """Polls GET until the batch has ended (completed_at set, nothing
        pending or processing); returns it."""
        deadline = time.monotonic() + timeout
        while True:
            b = self.get(bid, srv=srv)
            if b["timing"]["completed_at"] is not None and \
                    b["assets"]["pending"] == 0 and \
                    b["assets"]["processing"] == 0:
                self.assertIn(b["status"], ENDED, b)
                return b
            if time.monotonic() > deadline:
                self.fail("batch %s did not end within %.0f s: %s"
                          % (bid, timeout, json.dumps(b, indent=1)))
            time.sleep(0.05)


# ====================================================================
# The API
# ====================================================================

class BatchApiTest(BatchCase):
    """Create, get, list, executions, cancel, retry, tenants,
    continue_on_error and concurrency_limit, on one kilnd."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tid = cls.srv.request("POST", TP, asset_template()).json["id"]

    # ------------------------------------------------------------ create
    def test_create_answers_202_at_once_then_runs_every_asset(self):
        tag = new_tag("create")
        self.bp.set_mode(tag, "hold")
        assets = assets_for(tag, 3)
        assets[1]["inputs"] = {"size": 7}
        del assets[2]["asset_id"]
        b = self.create(self.tid, tag, assets)
        # the answer is the batch as stored, before anything started
        self.assertEqual(b["status"], "PENDING")
        self.assertEqual(b["assets"], {"total": 3, "pending": 3,
                                       "processing": 0, "completed": 0,
                                       "failed": 0, "cancelled": 0})
        self.assertEqual(b["template_id"], self.tid)
        self.assertEqual(b["template_version"], 1)
        self.assertEqual(b["priority"], "NORMAL")
        self.assertEqual(b["concurrency_limit"], 10)
        self.assertIs(b["continue_on_error"], True)
        self.assertIs(b["execution_events"], False)
        self.assertEqual(b["asset_input"], "img")
        self.assertEqual(b["inputs"], {"tag": tag})
        self.assertIsNone(b["timing"]["started_at"])
        self.assertIsNone(b["timing"]["completed_at"])
        self.assertIsNone(b["estimated_time_remaining_ms"])
        self.assertEqual(b["failed_execution_ids"], [])
        self.assertIs(b["failed_execution_ids_truncated"], False)
        self.assertIsNone(b["cancelled_at"])

        self.bp.wait_held(3, tag)
        running = self.get(b["id"])
        self.assertEqual(running["status"], "RUNNING")
        self.assertEqual(running["assets"]["processing"], 3)
        self.assertIsNotNone(running["timing"]["started_at"])
        self.bp.set_mode(tag, "ok")
        done = self.wait_ended(b["id"])
        self.assertEqual(done["status"], "COMPLETED")
        self.assertEqual(done["assets"]["completed"], 3)
        self.assertEqual(done["estimated_time_remaining_ms"], 0)

        # Each asset was called once, with the shared and its own inputs;
        # an input of type asset receives {"url", "asset_id"}.
        calls = {asset_name(r["url"]): r["body"] for r in
                 self.bp.records(tag)}
        self.assertEqual(sorted(calls), ["0", "1", "2"])
        self.assertEqual(calls["0"], {
            "image": {"url": assets[0]["url"], "asset_id": tag + "-0"},
            "tag": tag, "size": 1, "version": 1})
        self.assertEqual(calls["1"]["size"], 7)
        self.assertEqual(calls["1"]["image"],
                         {"url": assets[1]["url"], "asset_id": tag + "-1"})
        self.assertEqual(calls["2"]["image"]["url"], assets[2]["url"])
        self.assertIsNone(calls["2"]["image"].get("asset_id"))

    def test_options_are_echoed(self):
        tag = new_tag("echo")
        b = self.create(self.tid, tag, assets_for(tag, 1), name="nightly",
                        priority="LOW", concurrency_limit=3,
                        continue_on_error=False, execution_events=True,
                        origin_instance="inst-1", origin_zone="eu-1",
                        origin_tenant_id="acme",
                        origin_reference="ref-42", asset_input="img",
                        inputs={"size": 4})
        want = {"name": "nightly", "priority": "LOW", "concurrency_limit": 3,
                "continue_on_error": False, "execution_events": True,
                "webhook_url": None, "origin_instance": "inst-1",
                "origin_zone": "eu-1",
                "origin_tenant_id": "acme", "origin_reference": "ref-42",
                "asset_input": "img", "inputs": {"tag": tag, "size": 4}}
        for k, v in want.items():
            self.assertEqual(b[k], v, k)
        done = self.wait_ended(b["id"])
        for k, v in want.items():
            self.assertEqual(done[k], v, k)
        self.assertEqual(self.bp.records(tag)[0]["body"]["size"], 4)
        # the execution's workflow: the batch's origin fields, its batch,
        # template and version, and no webhook of its own
        [e] = self.all_executions(b["id"])
        wf = self.srv.get_wf(e["workflow_id"])
        for k in ("origin_instance", "origin_zone", "origin_tenant_id",
                  "origin_reference"):
            self.assertEqual(wf[k], want[k], k)
        self.assertEqual(wf.get("batch_id"), b["id"])
        self.assertEqual(wf.get("template_id"), self.tid)
        self.assertEqual(wf.get("template_version"), 1)
        self.assertIsNone(wf["webhook_url"])

    def test_required_input_given_per_asset(self):
        # every asset brings the required input itself: accepted
        tag = new_tag("peraset")
        assets = assets_for(tag, 2)
        for a in assets:
            a["inputs"] = {"tag": tag}
        r = self.post_batch({"template_id": self.tid, "assets": assets})
        self.assertStatus(r, 202)
        self.assertEqual(r.json["inputs"], {})
        self.assertEqual(self.wait_ended(r.json["id"])["status"],
                         "COMPLETED")
        self.assertEqual(len(self.bp.records(tag)), 2)

    def test_url_input_receives_the_url_string(self):
        tid = self.template(url_template())
        tag = new_tag("url")
        b = self.create(tid, tag, assets_for(tag, 2))
        self.assertEqual(b["asset_input"], "src")
        self.assertEqual(self.wait_ended(b["id"])["status"], "COMPLETED")
        got = sorted((r["body"]["image"] for r in self.bp.records(tag)))
        self.assertEqual(got, [asset_url(tag, "0"), asset_url(tag, "1")])

    def test_asset_input_named_when_the_template_has_two(self):
        tpl = asset_template("two-assets")
        tpl["inputs"]["mask"] = {"type": "asset"}
        tpl["steps"][0]["config"]["mask"] = "{{inputs.mask}}"
        tid = self.template(tpl)
        tag = new_tag("named")
        mask = {"url": "https://assets.example.test/mask.png"}
        b = self.create(tid, tag, assets_for(tag, 1), asset_input="img",
                        inputs={"mask": mask})
        self.assertEqual(b["asset_input"], "img")
        self.assertEqual(self.wait_ended(b["id"])["status"], "COMPLETED")
        [rec] = self.bp.records(tag)
        self.assertEqual(rec["body"]["image"]["url"], asset_url(tag, "0"))
        self.assertEqual(rec["body"]["mask"], mask)

    def test_template_version_is_pinned_at_create(self):
        tid = self.template()
        tag = new_tag("pin")
        self.bp.set_mode(tag, "hold")
        b = self.create(tid, tag, assets_for(tag, 3), concurrency_limit=1)
        self.bp.wait_held(1, tag)
        v2 = asset_template()
        v2["inputs"]["version"]["default"] = 2
        r = self.srv.request("PUT", "%s/%s" % (TP, tid), v2)
        self.assertStatus(r, 200)
        self.assertEqual(r.json["version"], 2)
        self.bp.set_mode(tag, "ok")
        done = self.wait_ended(b["id"])
        self.assertEqual(done["template_version"], 1)
        self.assertEqual([r["body"]["version"] for r in
                          self.bp.records(tag)], [1, 1, 1])
        # within a batch, assets start in their order
        self.assertEqual([asset_name(r["url"]) for r in
                          self.bp.records(tag)], ["0", "1", "2"])
        # a batch created now runs version 2
        tag2 = new_tag("pin")
        b2 = self.create(tid, tag2, assets_for(tag2, 1))
        self.assertEqual(b2["template_version"], 2)
        self.wait_ended(b2["id"])
        self.assertEqual(self.bp.records(tag2)[0]["body"]["version"], 2)

    # ------------------------------------------------------------ results
    def test_executions_timing_and_costs_of_a_finished_batch(self):
        tag = new_tag("stats")
        assets = assets_for(tag, 6, do="sleep", ms=30)
        assets[2]["url"] = asset_url(tag, "2", do="fail")
        assets[4]["url"] = asset_url(tag, "4", do="sleep", ms=30, cost=1.5)
        b = self.create(self.tid, tag, assets, concurrency_limit=2)
        done = self.wait_ended(b["id"])
        self.assertEqual(done["status"], "COMPLETED_WITH_ERRORS")
        self.assertEqual(done["assets"], {"total": 6, "pending": 0,
                                          "processing": 0, "completed": 5,
                                          "failed": 1, "cancelled": 0})
        execs = self.executions(b["id"])
        self.assertEqual(execs["pagination"], {"limit": 100, "offset": 0,
                                               "total": 6,
                                               "has_more": False})
        ex = execs["executions"]
        self.assertEqual([e["asset_index"] for e in ex], list(range(6)))
        for i, e in enumerate(ex):
            self.assertEqual(e["input_asset"],
                             {"asset_id": assets[i]["asset_id"],
                              "url": assets[i]["url"], "inputs": {}})
            self.assertEqual(e["runs"], 1)
            self.assertEqual(e["previous_workflow_ids"], [])
            self.assertIsNotNone(e["workflow_id"])
            self.assertIsInstance(e["duration_ms"], int)
            self.assertEqual(parse_ts(e["completed_at"]) -
                             parse_ts(e["started_at"]), e["duration_ms"])
        failed = ex[2]
        self.assertEqual(failed["status"], "FAILED")
        # a 5xx that outlasted the retries (none here): webhooks.md
        self.assertEqual(failed["error"]["code"], "PROVIDER_UNAVAILABLE")
        self.assertIsInstance(failed["error"]["message"], str)
        self.assertIn("500", failed["error"]["message"])
        self.assertIsNone(failed["credit_cost"])
        for i in (0, 1, 3, 4, 5):
            self.assertEqual(ex[i]["status"], "SUCCESS")
            self.assertEqual([o["url"] for o in ex[i]["outputs"]],
                             [output_url(assets[i]["url"])])
        self.assertEqual([e["credit_cost"] for e in ex if e["status"] ==
                          "SUCCESS"], [OK_COST, OK_COST, OK_COST, 1.5,
                                       OK_COST])
        self.assertAlmostEqual(done["credit_cost"], 4 * OK_COST + 1.5)
        self.assertEqual(done["failed_execution_ids"],
                         [failed["execution_id"]])
        self.assertIs(done["failed_execution_ids_truncated"], False)
        # the execution's workflow is a real one
        wf = self.srv.get_wf(ex[0]["workflow_id"])
        self.assertEqual(wf["status"], "COMPLETED")
        wf = self.srv.get_wf(failed["workflow_id"])
        self.assertEqual(wf["status"], "FAILED")

        # timing, from the executions
        t = done["timing"]
        durations = sorted(e["duration_ms"] for e in ex)
        self.assertAlmostEqual(t["mean_execution_ms"],
                               sum(durations) / 6.0, places=3)
        self.assertEqual(t["p50_execution_ms"],
                         durations[math.ceil(0.5 * 6) - 1])
        self.assertEqual(t["p95_execution_ms"],
                         durations[math.ceil(0.95 * 6) - 1])
        elapsed = parse_ts(t["completed_at"]) - parse_ts(t["started_at"])
        self.assertEqual(t["elapsed_ms"], elapsed)
        self.assertGreater(elapsed, 0)
        self.assertAlmostEqual(t["throughput_per_minute"],
                               6 * 60000.0 / elapsed, places=3)
        self.assertLessEqual(parse_ts(t["started_at"]),
                             min(parse_ts(e["started_at"]) for e in ex))
        self.assertGreaterEqual(parse_ts(t["completed_at"]),
                                max(parse_ts(e["completed_at"]) for e in ex))
        self.assertEqual(done["estimated_time_remaining_ms"], 0)

    def test_every_execution_failing_ends_failed(self):
        tag = new_tag("allfail")
        b = self.create(self.tid, tag, assets_for(tag, 3, do="fail"))
        done = self.wait_ended(b["id"])
        self.assertEqual(done["status"], "FAILED")
        self.assertEqual(done["assets"]["failed"], 3)
        ids = [e["execution_id"] for e in self.all_executions(b["id"])]
        self.assertEqual(done["failed_execution_ids"], ids)
        self.assertEqual(done["credit_cost"], 0)

    # ------------------------------------------------------------ list
    def test_executions_filters_and_pagination(self):
        tag = new_tag("execs")
        assets = assets_for(tag, 5)
        assets[1]["asset_id"] = assets[3]["asset_id"] = "shared-id"
        assets[4]["url"] = asset_url(tag, "4", do="fail")
        b = self.create(self.tid, tag, assets)
        bid = b["id"]
        self.wait_ended(bid)
        page = self.executions(bid, limit=2, offset=2)
        self.assertEqual([e["asset_index"] for e in page["executions"]],
                         [2, 3])
        self.assertEqual(page["pagination"], {"limit": 2, "offset": 2,
                                              "total": 5, "has_more": True})
        last = self.executions(bid, limit=2, offset=4)
        self.assertEqual(last["pagination"]["has_more"], False)
        self.assertEqual([e["asset_index"] for e in last["executions"]], [4])
        failed = self.executions(bid, status="FAILED")
        self.assertEqual([e["asset_index"] for e in failed["executions"]],
                         [4])
        self.assertEqual(failed["pagination"]["total"], 1)
        ok = self.executions(bid, status="SUCCESS")
        self.assertEqual([e["asset_index"] for e in ok["executions"]],
                         [0, 1, 2, 3])
        same = self.executions(bid, asset_id="shared-id")
        self.assertEqual([e["asset_index"] for e in same["executions"]],
                         [1, 3])
        self.assertEqual(self.executions(bid, asset_id="nope")["executions"],
                         [])
        self.assertEqual(
            self.executions(bid, limit=500)["pagination"]["limit"], 500)
        # errors
        for params, loc in ((dict(limit=501), ["query", "limit"]),
                            (dict(limit=0), ["query", "limit"]),
                            (dict(offset=-1), ["query", "offset"]),
                            (dict(status="DONE"), ["query", "status"])):
            r = self.srv.request("GET", "%s/%s/executions%s"
                                 % (BT, bid, query(**params)))
            self.assertValidation(r, [(loc, (
                "less_than_equal", "greater_than_equal", "enum",
                "int_parsing"))])
        r = self.srv.request("GET", "%s/%s/executions" % (BT, NIL))
        self.assertDetail(r, 404, "Batch %s not found" % NIL)
        r = self.srv.request("GET", "%s/not-a-uuid/executions" % BT)
        self.assertValidation(r, [(["path", "batch_id"], "uuid_parsing")])

    def test_list_filters_pagination_and_order(self):
        tid = self.template(asset_template("list-filters"))
        tag = new_tag("list")
        made = []
        for i in range(3):
            a = assets_for(tag, 1, start=i, do="fail" if i == 1 else "ok")
            made.append(self.create(tid, tag, a, name="list-%d" % i))
            time.sleep(0.03)
        for b in made:
            self.wait_ended(b["id"])
        ids = [b["id"] for b in made]
        lst = self.list_batches(template_id=tid)
        self.assertEqual([b["id"] for b in lst["batches"]], ids[::-1])
        self.assertEqual(lst["pagination"], {"limit": 50, "offset": 0,
                                             "total": 3, "has_more": False})
        page = self.list_batches(template_id=tid, limit=1, offset=1)
        self.assertEqual([b["id"] for b in page["batches"]], [ids[1]])
        self.assertEqual(page["pagination"], {"limit": 1, "offset": 1,
                                              "total": 3, "has_more": True})
        # the list shows what GET shows (but the GET-one extras)
        one = self.get(ids[1])
        listed = page["batches"][0]
        for k in BATCH_FIELDS:
            if k not in ("timing",):
                self.assertEqual(listed[k], one[k], k)
        self.assertEqual(listed["status"], "FAILED")
        st = self.list_batches(template_id=tid, status="FAILED")
        self.assertEqual([b["id"] for b in st["batches"]], [ids[1]])
        st = self.list_batches(template_id=tid, status="COMPLETED")
        self.assertEqual([b["id"] for b in st["batches"]],
                         [ids[2], ids[0]])
        # created_after / created_before, at midpoints between creations
        c = [parse_ts(b["created_at"]) for b in made]
        self.assertTrue(c[0] < c[1] < c[2], c)
        mid01, mid12 = fmt_ts((c[0] + c[1]) // 2), fmt_ts((c[1] + c[2]) // 2)
        after = self.list_batches(template_id=tid, created_after=mid01)
        self.assertEqual([b["id"] for b in after["batches"]],
                         [ids[2], ids[1]])
        before = self.list_batches(template_id=tid, created_before=mid12)
        self.assertEqual([b["id"] for b in before["batches"]],
                         [ids[1], ids[0]])
        both = self.list_batches(template_id=tid, created_after=mid01,
                                 created_before=mid12)
        self.assertEqual([b["id"] for b in both["batches"]], [ids[1]])
        self.assertEqual(self.list_batches(template_id=NIL)["batches"], [])

    def test_list_errors(self):
        cases = [
            (dict(limit=0), ["query", "limit"]),
            (dict(limit=101), ["query", "limit"]),
            (dict(offset=-1), ["query", "offset"]),
            (dict(status="DONE"), ["query", "status"]),
            (dict(template_id="nope"), ["query", "template_id"]),
            (dict(created_after="yesterday"), ["query", "created_after"]),
            (dict(created_before="2026-11-23"), ["query",
                                                 "created_before"]),
        ]
        for params, loc in cases:
            r = self.srv.request("GET", BT + query(**params))
            self.assertStatus(r, 422, repr(params))
            self.assertIn(loc, [d["loc"] for d in r.json["detail"]],
                          "%r: %s" % (params, r.text))

    def test_list_refuses_impossible_dates(self):
        for bad in ("2026-13-01T00:00:00Z", "2026-11-23T25:00:00Z",
                    "2026-02-30T10:00:00Z"):
            r = self.srv.request("GET", BT + query(created_after=bad))
            self.assertStatus(r, 422, bad)
            self.assertEqual(r.json["detail"][0]["loc"],
                             ["query", "created_after"])

    def test_list_accepts_rfc3339_offsets(self):
        tid = self.template(asset_template("list-offsets"))
        tag = new_tag("offs")
        b = self.create(tid, tag, assets_for(tag, 1))
        self.wait_ended(b["id"])
        c = parse_ts(b["created_at"])
        # the same instants written with a +02:00 offset
        def plus2(ms):
            dt = datetime.datetime.fromtimestamp(
                ms / 1000.0, datetime.timezone(datetime.timedelta(hours=2)))
            return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%03d+02:00" % (
                ms % 1000)
        got = self.list_batches(template_id=tid,
                                created_after=plus2(c - 60000),
                                created_before=plus2(c + 60000))
        self.assertEqual([x["id"] for x in got["batches"]], [b["id"]])
        got = self.list_batches(template_id=tid,
                                created_after=plus2(c + 60000))
        self.assertEqual(got["batches"], [])

    def test_get_unknown_and_bad_ids(self):
        r = self.srv.request("GET", "%s/%s" % (BT, NIL))
        self.assertDetail(r, 404, "Batch %s not found" % NIL)
        r = self.srv.request("GET", BT + "/42")
        self.assertValidation(r, [(["path", "batch_id"], "uuid_parsing")])
        for verb in ("cancel", "retry"):
            r = self.srv.request("POST", "%s/%s/%s" % (BT, NIL, verb))
            self.assertDetail(r, 404, "Batch %s not found" % NIL)
            r = self.srv.request("POST", "%s/xyz/%s" % (BT, verb))
            self.assertValidation(r, [(["path", "batch_id"],
                                       "uuid_parsing")])

    # ------------------------------------------------------------ idem
    def test_idempotency_key(self):
        tid = self.template(asset_template("idem"))
        tag = new_tag("idem")
        body = {"template_id": tid, "inputs": {"tag": tag},
                "assets": assets_for(tag, 2)}
        key = {"Idempotency-Key": "batch-" + tag}
        r1 = self.post_batch(body, headers=key)
        self.assertStatus(r1, 202)
        self.assertIsNone(r1.header("Idempotent-Replayed"))
        r2 = self.post_batch(body, headers=key)
        self.assertStatus(r2, 202)
        self.assertEqual(r2.header("Idempotent-Replayed"), "true")
        self.assertEqual(r2.json["id"], r1.json["id"])
        assert_batch_shape(r2.json)
        # the same body with its keys in another order is the same request
        raw = json.dumps({"assets": body["assets"], "inputs": body["inputs"],
                          "template_id": tid})
        r3 = self.srv.request("POST", BT, raw=raw, headers=key)
        self.assertStatus(r3, 202)
        self.assertEqual(r3.json["id"], r1.json["id"])
        self.assertEqual(r3.header("Idempotent-Replayed"), "true")
        # another body with the key: 409, nothing created
        r4 = self.post_batch(dict(body, name="other"), headers=key)
        self.assertStatus(r4, 409)
        self.assertIn("Idempotency-Key", r4.json["detail"])
        self.wait_ended(r1.json["id"])
        self.assertEqual(self.list_batches(template_id=tid)["pagination"]
                         ["total"], 1)
        self.assertEqual(len(self.bp.records(tag)), 2)
        # another tenant's key space is its own
        token = tenant_token("idem-tenant")
        ttid = self.template(asset_template("idem-t"), token=token)
        r5 = self.post_batch(dict(body, template_id=ttid), headers=key,
                             token=token)
        self.assertStatus(r5, 202)
        self.assertNotEqual(r5.json["id"], r1.json["id"])
        self.assertIsNone(r5.header("Idempotent-Replayed"))
        self.wait_ended(r5.json["id"])

    # ------------------------------------------------------------ cancel
    def test_cancel_running_batch(self):
        tag = new_tag("cancel")
        self.bp.set_mode(tag, "hold")
        b = self.create(self.tid, tag, assets_for(tag, 6),
                        concurrency_limit=2)
        self.bp.wait_held(2, tag)
        r = self.cancel(b["id"])
        self.assertStatus(r, 200)
        check_schema(r.json, "BatchCancelResponse")
        self.assertEqual(r.json, {
            "id": b["id"], "status": "CANCELLED",
            "previous_status": "RUNNING",
            "assets": {"total": 6, "pending": 0, "processing": 2,
                       "completed": 0, "failed": 0, "cancelled": 4}})
        now = self.get(b["id"])
        self.assertEqual(now["status"], "CANCELLED")
        self.assertIsNotNone(now["cancelled_at"])
        self.assertIsNone(now["timing"]["completed_at"])
        # the running ones finish; nothing else starts
        self.bp.set_mode(tag, "ok")
        done = self.wait_ended(b["id"])
        self.assertEqual(done["status"], "CANCELLED")
        self.assertEqual(done["assets"]["completed"], 2)
        self.assertEqual(done["assets"]["cancelled"], 4)
        self.assertEqual(sorted(asset_name(r["url"]) for r in
                                self.bp.records(tag)), ["0", "1"])
        ex = self.all_executions(b["id"])
        self.assertEqual([e["status"] for e in ex],
                         ["SUCCESS"] * 2 + ["CANCELLED"] * 4)
        for e in ex[2:]:
            self.assertEqual(e["error"]["code"], "CANCELLED")
            self.assertIsNone(e["workflow_id"])
            self.assertEqual(e["runs"], 0)
        # an ended batch cannot be cancelled
        r = self.cancel(b["id"])
        self.assertStatus(r, 409)
        self.assertIn("CANCELLED", r.json["detail"])

    def test_cancel_ended_batch_409(self):
        tag = new_tag("cancelended")
        b = self.create(self.tid, tag, assets_for(tag, 1))
        self.wait_ended(b["id"])
        r = self.cancel(b["id"])
        self.assertStatus(r, 409)
        self.assertEqual(r.json["detail"],
                         "Batch %s is COMPLETED; only PENDING or RUNNING "
                         "batches can be cancelled" % b["id"])
        self.assertEqual(self.get(b["id"])["status"], "COMPLETED")

    def test_execution_workflow_cancelled_directly(self):
        tag = new_tag("wfcancel")
        self.bp.set_mode(tag, "hold")
        b = self.create(self.tid, tag, assets_for(tag, 2),
                        concurrency_limit=1)
        self.bp.wait_held(1, tag)
        first = self.all_executions(b["id"])[0]
        self.assertEqual(first["status"], "RUNNING")
        r = self.srv.request("DELETE", "/api/v1/workflows/" +
                             first["workflow_id"])
        self.assertStatus(r, 200)
        self.bp.set_mode(tag, "ok")
        done = self.wait_ended(b["id"])
        ex = self.all_executions(b["id"])
        self.assertEqual([e["status"] for e in ex], ["CANCELLED", "SUCCESS"])
        self.assertEqual(ex[0]["error"]["code"], "CANCELLED")
        self.assertEqual(done["assets"]["cancelled"], 1)
        self.assertEqual(done["status"], "COMPLETED_WITH_ERRORS")

    # ------------------------------------------------------------ retry
    def test_retry_failed_executions(self):
        tag = new_tag("retry")
        self.bp.set_mode(tag, "fail")
        assets = assets_for(tag, 4, do="ok")
        assets[1]["url"] = asset_url(tag, "1")      # the tag's mode: fail
        assets[3]["url"] = asset_url(tag, "3")
        b = self.create(self.tid, tag, assets)
        first = self.wait_ended(b["id"])
        self.assertEqual(first["status"], "COMPLETED_WITH_ERRORS")
        before = {e["asset_index"]: e for e in self.all_executions(b["id"])}
        failed_ids = [before[1]["execution_id"], before[3]["execution_id"]]
        self.assertEqual(first["failed_execution_ids"], failed_ids)

        self.bp.set_mode(tag, "ok")
        r = self.retry(b["id"])
        self.assertStatus(r, 200)
        check_schema(r.json, "BatchRetryResponse")
        self.assertEqual(r.json["id"], b["id"])
        self.assertEqual(r.json["previous_status"], "COMPLETED_WITH_ERRORS")
        self.assertIn(r.json["status"], ("PENDING", "RUNNING"))
        self.assertEqual(r.json["retried"], 2)
        self.assertEqual(r.json["execution_ids"], failed_ids)
        assert_counts(r.json["assets"], total=4)
        self.assertEqual(r.json["assets"]["failed"], 0)
        self.assertEqual(r.json["assets"]["completed"], 2)

        done = self.wait_ended(b["id"])
        self.assertEqual(done["status"], "COMPLETED")
        self.assertEqual(done["assets"]["completed"], 4)
        self.assertEqual(done["failed_execution_ids"], [])
        self.assertAlmostEqual(done["credit_cost"], 4 * OK_COST)
        after = {e["asset_index"]: e for e in self.all_executions(b["id"])}
        for i in (1, 3):
            self.assertEqual(after[i]["execution_id"],
                             before[i]["execution_id"])
            self.assertEqual(after[i]["status"], "SUCCESS")
            self.assertEqual(after[i]["runs"], 2)
            self.assertEqual(after[i]["previous_workflow_ids"],
                             [before[i]["workflow_id"]])
            self.assertNotEqual(after[i]["workflow_id"],
                                before[i]["workflow_id"])
        for i in (0, 2):
            self.assertEqual(after[i], before[i])
        per_url = self.bp.calls_per_url(tag)
        self.assertEqual(per_url[asset_url(tag, "1")], 2)
        self.assertEqual(per_url[assets[0]["url"]], 1)
        # nothing failed: nothing to retry
        r = self.retry(b["id"])
        self.assertStatus(r, 200)
        self.assertEqual((r.json["retried"], r.json["execution_ids"],
                          r.json["status"], r.json["previous_status"]),
                         (0, [], "COMPLETED", "COMPLETED"))

    def test_retry_listed_cancelled_execution_and_refusals(self):
        tag = new_tag("retrylist")
        self.bp.set_mode(tag, "hold")
        b = self.create(self.tid, tag, assets_for(tag, 3),
                        concurrency_limit=1)
        self.bp.wait_held(1, tag)
        self.assertStatus(self.cancel(b["id"]), 200)
        self.bp.set_mode(tag, "ok")
        self.wait_ended(b["id"])
        ex = self.all_executions(b["id"])
        self.assertEqual([e["status"] for e in ex],
                         ["SUCCESS", "CANCELLED", "CANCELLED"])
        ok_id, c1, c2 = [e["execution_id"] for e in ex]
        # a SUCCESS execution cannot be retried; an unknown one is 404;
        # either way nothing changes
        r = self.retry(b["id"], {"execution_ids": [c1, ok_id]})
        self.assertStatus(r, 409)
        self.assertIn(ok_id, r.json["detail"])
        r = self.retry(b["id"], {"execution_ids": [c1, NIL]})
        self.assertStatus(r, 404)
        self.assertIn(NIL, r.json["detail"])
        other = self.create(self.tid, tag, assets_for(tag, 1, start=9))
        other_exec = self.all_executions(other["id"])[0]["execution_id"]
        r = self.retry(b["id"], {"execution_ids": [other_exec]})
        self.assertStatus(r, 404)
        self.assertEqual(self.get(b["id"])["assets"]["cancelled"], 2)
        # default (no list): only FAILED ones, and there are none
        r = self.retry(b["id"], {})
        self.assertStatus(r, 200)
        self.assertEqual(r.json["retried"], 0)
        self.assertEqual(r.json["status"], "CANCELLED")
        # a listed CANCELLED one runs again
        r = self.retry(b["id"], {"execution_ids": [c2]})
        self.assertStatus(r, 200)
        self.assertEqual(r.json["previous_status"], "CANCELLED")
        self.assertEqual(r.json["retried"], 1)
        self.assertEqual(r.json["execution_ids"], [c2])
        done = self.wait_ended(b["id"])
        ex = self.all_executions(b["id"])
        self.assertEqual([e["status"] for e in ex],
                         ["SUCCESS", "CANCELLED", "SUCCESS"])
        self.assertEqual(ex[2]["runs"], 1)
        self.assertEqual(ex[2]["previous_workflow_ids"], [])
        self.assertEqual(done["assets"], {"total": 3, "pending": 0,
                                          "processing": 0, "completed": 2,
                                          "failed": 0, "cancelled": 1})
        self.assertEqual(done["status"], "COMPLETED_WITH_ERRORS")
        self.wait_ended(other["id"])

    def test_resume_of_an_execution_workflow_points_at_retry(self):
        tag = new_tag("resume")
        b = self.create(self.tid, tag, assets_for(tag, 1, do="fail"))
        done = self.wait_ended(b["id"])
        [e] = self.all_executions(b["id"])
        r = self.srv.action(e["workflow_id"], "resume")
        self.assertStatus(r, 409)
        self.assertIn("/api/v1/batches/%s/retry" % b["id"], r.json["detail"])
        self.assertEqual(self.srv.get_wf(e["workflow_id"])["status"],
                         "FAILED")
        self.assertEqual(self.get(b["id"])["assets"], done["assets"])
        self.assertEqual(len(self.bp.records(tag)), 1)

    def test_retry_body_errors(self):
        tag = new_tag("retrybad")
        b = self.create(self.tid, tag, assets_for(tag, 1))
        self.wait_ended(b["id"])
        path = "%s/%s/retry" % (BT, b["id"])
        cases = [({"execution_ids": []}, ["body", "execution_ids"]),
                 ({"execution_ids": ["x"]}, ["body", "execution_ids", 0]),
                 ({"execution_ids": "x"}, ["body", "execution_ids"]),
                 ({"zzz": 1}, ["body", "zzz"]),
                 ([1], ["body"])]
        for body, loc in cases:
            r = self.srv.request("POST", path, body)
            self.assertStatus(r, 422, repr(body))
            self.assertIn(loc, [d["loc"] for d in r.json["detail"]],
                          r.text)
        r = self.srv.request("POST", path, raw="{nope")
        self.assertStatus(r, 422)

    def test_retry_duplicate_ids_counted_once(self):
        tag = new_tag("retrydup")
        self.bp.set_mode(tag, "fail")
        b = self.create(self.tid, tag, [{"url": asset_url(tag, "x")},
                                        {"url": asset_url(tag, "y",
                                                          do="ok")}])
        self.wait_ended(b["id"])
        [fid] = self.get(b["id"])["failed_execution_ids"]
        self.bp.set_mode(tag, "ok")
        r = self.retry(b["id"], {"execution_ids": [fid, fid]})
        if r.status == 200:
            assert_counts(r.json["assets"], total=2)
            self.assertEqual(r.json["assets"]["pending"] +
                             r.json["assets"]["processing"], 1, r.text)
        else:
            self.assertStatus(r, 422)
        done = self.wait_ended(b["id"], timeout=10)
        assert_counts(done["assets"], total=2)
        if r.status == 200:
            self.assertEqual(done["status"], "COMPLETED")
            self.assertEqual(done["assets"]["completed"], 2)

    # ------------------------------------------------------------ stop
    def test_continue_on_error_false_stops_the_batch(self):
        tag = new_tag("stop")
        self.bp.set_mode(tag, "hold")
        assets = assets_for(tag, 6)
        assets[0]["url"] = asset_url(tag, "0", do="fail")
        b = self.create(self.tid, tag, assets, continue_on_error=False,
                        concurrency_limit=3)
        done = self.wait_ended(b["id"])
        self.assertEqual(done["status"], "FAILED")
        self.assertEqual(done["assets"], {"total": 6, "pending": 0,
                                          "processing": 0, "completed": 0,
                                          "failed": 1, "cancelled": 5})
        ex = self.all_executions(b["id"])
        self.assertEqual([e["status"] for e in ex],
                         ["FAILED"] + ["CANCELLED"] * 5)
        self.assertEqual(done["failed_execution_ids"], [ex[0]["execution_id"]])
        # the two that were running: their workflows were cancelled
        for e in ex[1:3]:
            self.assertEqual(e["runs"], 1)
            self.assertEqual(self.srv.get_wf(e["workflow_id"])["status"],
                             "CANCELLED")
            self.assertEqual(e["error"]["code"], "CANCELLED")
        # the pending ones never started
        for e in ex[3:]:
            self.assertIsNone(e["workflow_id"])
            self.assertEqual(e["runs"], 0)
        self.assertTrue(set(asset_name(r["url"]) for r in
                            self.bp.records(tag)) <= {"0", "1", "2"},
                        self.bp.records(tag))
        self.assertEqual(self.cancel(b["id"]).status, 409)

    # ------------------------------------------------------------ limits
    def test_concurrency_limit_per_batch(self):
        ta, tb = new_tag("lima"), new_tag("limb")
        for t in (ta, tb):
            self.bp.set_mode(t, "hold")
        a = self.create(self.tid, ta, assets_for(ta, 7), concurrency_limit=2)
        b = self.create(self.tid, tb, assets_for(tb, 8), concurrency_limit=3)
        self.bp.wait_held(2, ta)
        self.bp.wait_held(3, tb)
        time.sleep(0.3)         # room for a wrong extra start to show
        self.assertEqual(len(self.bp.records(ta)), 2)
        self.assertEqual(len(self.bp.records(tb)), 3)
        self.assertEqual(self.get(a["id"])["assets"]["processing"], 2)
        self.assertEqual(self.get(b["id"])["assets"]["processing"], 3)
        self.assertEqual(self.get(b["id"])["assets"]["pending"], 5)
        for t in (ta, tb):
            self.bp.set_mode(t, "sleep")
        self.assertEqual(self.wait_ended(a["id"])["status"], "COMPLETED")
        self.assertEqual(self.wait_ended(b["id"])["status"], "COMPLETED")
        self.assertEqual(self.bp.max_inflight(ta), 2)
        self.assertEqual(self.bp.max_inflight(tb), 3)
        self.assertEqual(len(self.bp.records(ta)), 7)
        self.assertEqual(len(self.bp.records(tb)), 8)

    # ------------------------------------------------------------ tenants
    def test_tenants_see_only_their_batches(self):
        acme, other = tenant_token("acme-b"), tenant_token("other-b")
        tid = self.template(asset_template("tenant"), token=acme)
        tag = new_tag("tenant")
        b = self.create(tid, tag, assets_for(tag, 1), token=acme)
        self.assertEqual(b["origin_tenant_id"], "acme-b")
        bid = b["id"]
        self.wait_ended(bid)
        self.assertEqual(self.get(bid, token=acme)["id"], bid)
        self.assertEqual(self.executions(bid, token=acme)["pagination"]
                         ["total"], 1)
        for method, path in (("GET", "%s/%s" % (BT, bid)),
                             ("GET", "%s/%s/executions" % (BT, bid)),
                             ("POST", "%s/%s/cancel" % (BT, bid)),
                             ("POST", "%s/%s/retry" % (BT, bid))):
            r = self.srv.request(method, path, token=other)
            self.assertDetail(r, 404, "Batch %s not found" % bid)
        mine = self.list_batches(token=acme)
        self.assertEqual([x["id"] for x in mine["batches"]], [bid])
        self.assertEqual(self.list_batches(token=other)["batches"], [])
        self.assertEqual(self.list_batches(token=other, tenant_id="acme-b")
                         ["batches"], [])
        # the operator sees it, and can filter by tenant
        self.assertEqual([x["id"] for x in
                          self.list_batches(tenant_id="acme-b")["batches"]],
                         [bid])
        # another tenant cannot use acme's template, nor create for acme
        r = self.post_batch({"template_id": tid, "inputs": {"tag": tag},
                             "assets": assets_for(tag, 1)}, token=other)
        self.assertDetail(r, 404, "Template %s not found" % tid)
        r = self.post_batch({"template_id": tid, "inputs": {"tag": tag},
                             "origin_tenant_id": "other-b",
                             "assets": assets_for(tag, 1)}, token=acme)
        self.assertStatus(r, 403)
        # the executions' workflows belong to the tenant too
        wf_id = self.all_executions(bid)[0]["workflow_id"]
        wf = self.srv.get_wf(wf_id, token=acme)
        self.assertEqual(wf["origin_tenant_id"], "acme-b")
        r = self.srv.request("GET", "/api/v1/workflows/" + wf_id,
                             token=other)
        self.assertStatus(r, 404)

    def test_operator_batch_of_a_tenants_template_is_the_tenants(self):
        token = tenant_token("theta")
        tid = self.template(asset_template("theta"), token=token)
        tag = new_tag("theta")
        b = self.create(tid, tag, assets_for(tag, 1))
        self.assertEqual(b["origin_tenant_id"], "theta")
        self.assertEqual(self.get(b["id"], token=token)["id"], b["id"])
        self.wait_ended(b["id"])

    def test_operator_batch_for_a_tenant(self):
        tag = new_tag("optenant")
        b = self.create(self.tid, tag, assets_for(tag, 1),
                        origin_tenant_id="zeta")
        self.assertEqual(self.get(b["id"], token=tenant_token("zeta"))["id"],
                         b["id"])
        r = self.srv.request("GET", "%s/%s" % (BT, b["id"]),
                             token=tenant_token("eta"))
        self.assertStatus(r, 404)
        self.wait_ended(b["id"])


# ====================================================================
# 422s and friends
# ====================================================================

class BatchValidationTest(BatchCase):
    """Bad requests.  Default webhook config (private targets refused).
    Every test checks that a refused request stored no batch and called
    no provider."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tid = cls.srv.request("POST", TP, asset_template()).json["id"]
        cls.url_tid = cls.srv.request("POST", TP,
                                      url_template()).json["id"]

    def setUp(self):
        super().setUp()
        self.tag = new_tag("bad")

    def tearDown(self):
        try:
            try:
                # nothing was stored, nothing ran
                r = self.srv.request("GET", BT)
            except ConnectionError:
                r = None            # it crashed: BatchCase says so
            if r is not None and r.status == 200:
                stored = [b for b in r.json["batches"]
                          if b["inputs"].get("tag") == self.tag]
                self.assertEqual(stored, [], "a refused batch was stored")
            self.assertEqual(self.bp.records(self.tag), [],
                             "a refused batch called the provider")
        finally:
            super().tearDown()

    def body(self, assets=None, tid=None, **extra):
        b = {"template_id": tid or self.tid, "inputs": {"tag": self.tag},
             "assets": assets if assets is not None else
             assets_for(self.tag, 2)}
        b.update(extra)
        return b

    def assertInvalid(self, resp, expected, exact_count=None):
        """assertValidation, and every item has error_code INVALID_INPUT
        and its field (loc after "body", dotted, [i] for indexes)."""
        detail = self.assertValidation(resp, expected, exact_count)
        for d in detail:
            self.assertEqual(d.get("error_code"), "INVALID_INPUT", d)
            field = ""
            for part in d["loc"][1:]:
                if isinstance(part, int):
                    field += "[%d]" % part
                else:
                    field += ("." if field else "") + part
            self.assertEqual(d.get("field"), field, d)
        return detail

    # ------------------------------------------------------------ body
    def test_missing_fields(self):
        r = self.post_batch({})
        self.assertInvalid(r, [(["body", "template_id"], "missing"),
                               (["body", "assets"], "missing")],
                           exact_count=2)

    def test_top_level_fields(self):
        cases = [
            (dict(concurrency_limit=0), ["body", "concurrency_limit"],
             "greater_than_equal"),
            (dict(concurrency_limit=101), ["body", "concurrency_limit"],
             "less_than_equal"),
            (dict(concurrency_limit="3"), ["body", "concurrency_limit"],
             "int_type"),
            (dict(priority="URGENT"), ["body", "priority"], "enum"),
            (dict(continue_on_error="no"), ["body", "continue_on_error"],
             "bool_type"),
            (dict(execution_events=1), ["body", "execution_events"],
             "bool_type"),
            (dict(name=""), ["body", "name"], "string_too_short"),
            (dict(name="n" * 256), ["body", "name"], "string_too_long"),
            (dict(inputs=[]), ["body", "inputs"], "dict_type"),
            (dict(assets={}), ["body", "assets"], "list_type"),
            (dict(unknown=1), ["body", "unknown"], "extra_forbidden"),
            (dict(webhook_url="ftp://x.example.test/"),
             ["body", "webhook_url"], "value_error"),
            (dict(template_id="nope"), ["body", "template_id"],
             ("string_too_short", "uuid_parsing")),
            (dict(template_id="x" * 36), ["body", "template_id"],
             "uuid_parsing"),
        ]
        for extra, loc, typ in cases:
            r = self.post_batch(self.body(**extra))
            self.assertInvalid(r, [(loc, typ)], exact_count=1)

    def test_not_json(self):
        r = self.srv.request("POST", BT, raw="{nope")
        self.assertStatus(r, 422)
        self.assertEqual(r.json["detail"][0]["type"], "json_invalid")

    def test_needs_a_token(self):
        r = self.post_batch(self.body(), token=None)
        self.assertStatus(r, 401)

    def test_asset_count_bounds(self):
        r = self.post_batch(self.body(assets=[]))
        self.assertInvalid(r, [(["body", "assets"], "too_short")],
                           exact_count=1)
        # 100,001 assets (about 5 MB: over max_body_bytes, under the
        # batch cap)
        many = [{"url": "https://a.example.test/%d" % i}
                for i in range(100001)]
        r = self.srv.request("POST", BT,
                             raw=json.dumps(self.body(assets=many)))
        self.assertInvalid(r, [(["body", "assets"], "too_long")],
                           exact_count=1)

    def test_asset_structure(self):
        assets = [{"url": asset_url(self.tag, "0")},
                  {},
                  {"url": ""},
                  {"url": 5, "asset_id": 7},
                  "just-a-string",
                  {"url": asset_url(self.tag, "5"), "asset_id": ""},
                  {"url": asset_url(self.tag, "6"), "extra": True},
                  {"url": asset_url(self.tag, "7"), "inputs": [1]},
                  {"url": "u" * 2049}]
        r = self.post_batch(self.body(assets=assets))
        A = ["body", "assets"]
        self.assertInvalid(r, [
            (A + [1, "url"], "missing"),
            (A + [2, "url"], "string_too_short"),
            (A + [3, "url"], "string_type"),
            (A + [3, "asset_id"], "string_type"),
            (A + [4], ("model_attributes_type", "dict_type")),
            (A + [5, "asset_id"], "string_too_short"),
            (A + [6, "extra"], "extra_forbidden"),
            (A + [7, "inputs"], "dict_type"),
            (A + [8, "url"], "string_too_long"),
        ], exact_count=9)

    def test_at_most_100_errors(self):
        # three errors in each of 60 assets
        assets = [{"asset_id": 5, "inputs": 7} for _ in range(60)]
        r = self.post_batch(self.body(assets=assets))
        detail = self.assertInvalid(r, [(["body", "assets", 0, "url"],
                                         "missing")])
        self.assertLessEqual(len(detail), 100)

    def test_100_errors_in_asset_order(self):
        assets = [{"asset_id": "a%d" % i} for i in range(150)]
        r = self.post_batch(self.body(assets=assets))
        detail = self.assertInvalid(r, [], exact_count=100)
        self.assertEqual([d["loc"] for d in detail],
                         [["body", "assets", i, "url"] for i in range(100)])

    # ------------------------------------------------------------ inputs
    def test_shared_input_error_reported_once(self):
        assets = [{"url": asset_url(self.tag, str(i))} for i in range(3000)]
        r = self.srv.request("POST", BT, raw=json.dumps(self.body(
            assets=assets, inputs={"tag": self.tag, "size": "big"})))
        self.assertInvalid(r, [(["body", "inputs", "size"], "int_type")],
                           exact_count=1)

    def test_missing_required_shared_input(self):
        r = self.post_batch(self.body(inputs={}))
        self.assertInvalid(r, [(["body", "inputs", "tag"], "missing")],
                           exact_count=1)
        r = self.post_batch(self.body(inputs={"tag": self.tag, "nope": 1}))
        self.assertInvalid(r, [(["body", "inputs", "nope"],
                                "extra_forbidden")], exact_count=1)

    def test_bad_url_of_the_first_asset_is_located_at_it(self):
        assets = [{"url": "not a url"}, {"url": asset_url(self.tag, "1")}]
        r = self.post_batch(self.body(tid=self.url_tid, assets=assets))
        self.assertInvalid(r, [(["body", "assets", 0, "url"],
                                "url_parsing")], exact_count=1)

    def test_bad_urls_of_later_assets_are_located_at_each(self):
        assets = assets_for(self.tag, 5, ids=False)
        assets[1]["url"] = "not a url"
        assets[3]["url"] = "mailto:x@example.test"
        r = self.post_batch(self.body(tid=self.url_tid, assets=assets))
        self.assertInvalid(r, [(["body", "assets", 1, "url"],
                                "url_parsing"),
                               (["body", "assets", 3, "url"],
                                "url_parsing")], exact_count=2)

    def test_bad_asset_url_for_an_asset_input(self):
        assets = assets_for(self.tag, 4)
        assets[2]["url"] = "relative/path.png"
        r = self.post_batch(self.body(assets=assets))
        self.assertInvalid(r, [(["body", "assets", 2, "url"],
                                "url_parsing")], exact_count=1)

    def test_bad_override_is_located_at_its_asset(self):
        assets = assets_for(self.tag, 3)
        assets[1]["inputs"] = {"size": "big"}
        r = self.post_batch(self.body(assets=assets))
        self.assertInvalid(r, [(["body", "assets", 1, "inputs", "size"],
                                "int_type")], exact_count=1)

    def test_unknown_override_is_located_at_its_asset(self):
        assets = assets_for(self.tag, 2)
        assets[0]["inputs"] = {"colour": "red"}
        r = self.post_batch(self.body(assets=assets))
        self.assertInvalid(r, [(["body", "assets", 0, "inputs", "colour"],
                                "extra_forbidden")], exact_count=1)

    def test_asset_that_cannot_make_a_workflow_is_refused(self):
        # "note" is optional without a default, and a step uses it: a run
        # without it cannot make its workflow (POST .../run answers 422)
        tpl = asset_template("optional-used")
        tpl["inputs"]["note"] = {"type": "string"}
        tpl["steps"][0]["config"]["note"] = "{{inputs.note}}"
        tid = self.template(tpl)
        r = self.post_batch(self.body(
            tid=tid, assets=[{"url": asset_url(self.tag, "0")}]))
        self.assertStatus(r, 422)
        [d] = r.json["detail"]
        self.assertEqual(d["error_code"], "INVALID_INPUT")
        self.assertIn("{{inputs.note}}", d["msg"])
        self.assertTrue(d["loc"][:3] == ["body", "assets", 0] or
                        d["loc"][:2] == ["body", "inputs"], d)

    def test_every_asset_is_checked_not_only_the_first_of_its_kind(self):
        # 170 uses of "note": a 100,000-byte note grows the step past the
        # 16 MiB substitution cap (POST .../run answers 422); the assets
        # have the same input names, different values
        tpl = asset_template("many-uses")
        tpl["inputs"]["note"] = {"type": "string", "default": ""}
        for i in range(170):
            tpl["steps"][0]["config"]["n%d" % i] = "{{inputs.note}}"
        tid = self.template(tpl)
        assets = [{"url": asset_url(self.tag, "0"),
                   "inputs": {"note": "small"}},
                  {"url": asset_url(self.tag, "1"),
                   "inputs": {"note": "x" * 100000}}]
        r = self.post_batch(self.body(tid=tid, assets=assets))
        self.assertStatus(r, 422)
        locs = [d["loc"][:3] for d in r.json["detail"]]
        self.assertEqual(locs, [["body", "assets", 1]], r.text)

    # ------------------------------------------------------------ asset_input
    def test_asset_input_resolution(self):
        two = asset_template("two-assets")
        two["inputs"]["mask"] = {"type": "asset"}
        two["steps"][0]["config"]["mask"] = "{{inputs.mask}}"
        none = {"name": "no-assets",
                "inputs": {"tag": {"type": "string", "required": True}},
                "steps": [{"id": "gen", "task_type": "BATCH_GEN",
                           "config": {"tag": "{{inputs.tag}}"}}]}
        for tpl in (two, none):
            tid = self.template(tpl)
            r = self.post_batch(self.body(tid=tid))
            d = self.assertInvalid(r, [(["body", "asset_input"],
                                        "value_error")], exact_count=1)
            self.assertIn("asset_input", d[0]["field"])
        r = self.post_batch(self.body(asset_input="nope"))
        self.assertInvalid(r, [(["body", "asset_input"], "value_error")],
                           exact_count=1)
        r = self.post_batch(self.body(asset_input=""))
        self.assertInvalid(r, [(["body", "asset_input"],
                                "string_too_short")], exact_count=1)

    # ------------------------------------------------------------ others
    def test_template_errors(self):
        r = self.post_batch(self.body(tid=NIL))
        self.assertDetail(r, 404, "Template %s not found" % NIL)
        tid = self.template(asset_template("to-archive"))
        self.assertStatus(self.srv.request("DELETE", "%s/%s" % (TP, tid)),
                          200)
        r = self.post_batch(self.body(tid=tid))
        self.assertDetail(r, 409, "Template %s is archived; it cannot run"
                          % tid)
        ttid = self.template(asset_template("theirs"),
                             token=tenant_token("someone"))
        r = self.post_batch(self.body(tid=ttid),
                            token=tenant_token("someone-else"))
        self.assertDetail(r, 404, "Template %s not found" % ttid)

    def test_private_webhook_target_refused(self):
        r = self.post_batch(self.body(
            webhook_url="http://127.0.0.1:9/hook"))
        self.assertInvalid(r, [(["body", "webhook_url"], "value_error")],
                           exact_count=1)

    def test_bad_idempotency_key(self):
        for key in ("has space", "k" * 256):
            r = self.post_batch(self.body(),
                                headers={"Idempotency-Key": key})
            self.assertInvalid(r, [(["header", "Idempotency-Key"],
                                    "value_error")], exact_count=1)


# ====================================================================
# Webhooks
# ====================================================================

SECRET_A = new_secret("batches-a")
SECRET_T = new_secret("batches-tenant")


class BatchWebhookTest(BatchCase):
    """batch.completed and the per-execution events, signed with the
    configured secret (the tenant's for a tenant's batch)."""

    server_config = {"webhooks": {
        "allow_private_networks": True, "jitter": 0,
        "schedule_s": [0, 0.5, 0.5], "timeout_s": 5,
        "connect_timeout_s": 1, "secret": [SECRET_A],
        "tenant_secrets": {"hook-tenant": SECRET_T}}}

    @classmethod
    def setUpClass(cls):
        cls.rcv = WebhookReceiver([SECRET_A, SECRET_T],
                                  name="receiver-batches")
        try:
            super().setUpClass()
        except Exception:
            cls.rcv.close()
            raise
        cls.tid = cls.srv.request("POST", TP, asset_template()).json["id"]

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.rcv.close()

    def events(self, path, count, timeout=10.0):
        recs = self.rcv.wait_for(count, path=path, timeout=timeout)
        time.sleep(0.3)                     # no extra event comes
        recs = self.rcv.records(path=path)
        self.assertEqual(len(recs), count,
                         [r["json"] and r["json"].get("event")
                          for r in recs])
        for r in recs:
            self.assertTrue(r["verified"], "bad signature: %r"
                            % r["headers"])
            self.assertEqual(r["problems"], [])
            self.assertEqual(r["status"], 200)
        return [r["json"] for r in recs]

    def check_common(self, ev, event):
        self.assertEqual(ev["event"], event)
        self.assertEqual(ev["schema_version"], "1")
        self.assertTrue(ev["id"].startswith("msg_"), ev["id"])
        self.assertTrue(TIMESTAMP_RE.match(ev["timestamp"]), ev)

    def test_batch_completed_event(self):
        tag = new_tag("hook")
        path = "/ok/%s/" % tag
        assets = assets_for(tag, 3)
        assets[1]["url"] = asset_url(tag, "1", do="fail")
        b = self.create(self.tid, tag, assets,
                        webhook_url=self.rcv.url(path),
                        origin_reference="order-77")
        self.assertEqual(b["webhook_url"], self.rcv.url(path))
        self.assertIs(b["execution_events"], False)
        done = self.wait_ended(b["id"])
        [ev] = self.events(path, 1)
        self.check_common(ev, "batch.completed")
        check_schema(ev, "BatchEvent")
        self.assertEqual(ev["batch_id"], b["id"])
        self.assertEqual(ev["status"], "COMPLETED_WITH_ERRORS")
        self.assertEqual(ev["template_id"], self.tid)
        self.assertEqual(ev["template_version"], 1)
        self.assertEqual(ev["assets"], done["assets"])
        self.assertEqual(ev["failed_execution_ids"],
                         done["failed_execution_ids"])
        self.assertEqual(len(ev["failed_execution_ids"]), 1)
        self.assertEqual(ev["timing"]["started_at"],
                         done["timing"]["started_at"])
        self.assertEqual(ev["timing"]["completed_at"],
                         done["timing"]["completed_at"])
        self.assertAlmostEqual(ev["credit_cost"], 2 * OK_COST)
        self.assertEqual(ev["origin_reference"], "order-77")
        self.assertEqual(ev["links"], done["links"])
        # the delivery log has it
        r = self.srv.request("GET", "/api/v1/webhook-deliveries/" + ev["id"])
        self.assertStatus(r, 200)
        self.assertEqual(r.json["event"], "batch.completed")
        self.assertEqual(r.json["status"], "delivered")

    def test_execution_events(self):
        tag = new_tag("hookx")
        path = "/ok/%s/" % tag
        assets = assets_for(tag, 3)
        assets[2]["url"] = asset_url(tag, "2", do="fail")
        b = self.create(self.tid, tag, assets,
                        webhook_url=self.rcv.url(path),
                        execution_events=True)
        self.wait_ended(b["id"])
        evs = self.events(path, 4)
        kinds = sorted(e["event"] for e in evs)
        self.assertEqual(kinds, ["batch.completed",
                                 "batch.execution.completed",
                                 "batch.execution.completed",
                                 "batch.execution.failed"])
        # batch.completed happened after every execution event
        evs.sort(key=lambda e: (e["event"] == "batch.completed",
                                e["timestamp"]))
        last = evs.pop()
        self.assertEqual(last["event"], "batch.completed")
        for ev in evs:
            self.assertLessEqual(parse_ts(ev["timestamp"]),
                                 parse_ts(last["timestamp"]))
        listed = {e["execution_id"]: e for e in self.all_executions(b["id"])}
        for ev in evs:
            self.check_common(ev, ev["event"])
            check_schema(ev, "BatchExecutionEvent")
            self.assertEqual(ev["batch_id"], b["id"])
            e = listed[ev["execution_id"]]
            want = "batch.execution.completed" if e["status"] == "SUCCESS" \
                else "batch.execution.failed"
            self.assertEqual(ev["event"], want)
            for k in EXEC_FIELDS + ("outputs", "error"):
                self.assertEqual(ev.get(k), e.get(k), k)

    def test_cancelled_batch_event(self):
        tag = new_tag("hookc")
        path = "/ok/%s/" % tag
        self.bp.set_mode(tag, "hold")
        b = self.create(self.tid, tag, assets_for(tag, 4),
                        concurrency_limit=1, webhook_url=self.rcv.url(path),
                        execution_events=True)
        self.bp.wait_held(1, tag)
        self.assertStatus(self.cancel(b["id"]), 200)
        time.sleep(0.2)
        self.assertEqual(self.rcv.records(path=path), [],
                         "an event before the running execution ended")
        self.bp.set_mode(tag, "ok")
        self.wait_ended(b["id"])
        evs = sorted(self.events(path, 2), key=lambda e: e["event"])
        self.assertEqual([e["event"] for e in evs],
                         ["batch.completed", "batch.execution.completed"])
        evs.reverse()
        self.assertEqual(evs[1]["status"], "CANCELLED")
        self.assertEqual(evs[1]["assets"]["cancelled"], 3)
        self.assertEqual(evs[1]["assets"]["completed"], 1)

    def test_tenant_batch_signed_with_the_tenant_secret(self):
        token = tenant_token("hook-tenant")
        tid = self.template(asset_template("hook-tenant"), token=token)
        tag = new_tag("hookt")
        path = "/ok/%s/" % tag
        b = self.create(tid, tag, assets_for(tag, 1), token=token,
                        webhook_url=self.rcv.url(path))
        self.wait_ended(b["id"])
        self.events(path, 1)
        [rec] = self.rcv.records(path=path)
        self.assertEqual(rec["sig_keys"], [1])
        self.assertEqual(rec["json"]["origin_tenant_id"], "hook-tenant")

    def test_execution_workflows_send_nothing_of_their_own(self):
        tag = new_tag("hookw")
        path, tpl_path = "/ok/%s/" % tag, "/ok/%s-tpl/" % tag
        tid = self.template(asset_template(
            "hook-tpl", webhook_url=self.rcv.url(tpl_path),
            suppress_subtask_events=False))
        b = self.create(tid, tag, assets_for(tag, 2),
                        webhook_url=self.rcv.url(path))
        self.wait_ended(b["id"])
        self.assertEqual([e["event"] for e in self.events(path, 1)],
                         ["batch.completed"])
        self.assertEqual(self.rcv.records(path=tpl_path), [])

    def test_no_webhook_url_no_event(self):
        tag = new_tag("nohook")
        before = len(self.rcv.records())
        b = self.create(self.tid, tag, assets_for(tag, 2),
                        execution_events=True)
        self.wait_ended(b["id"])
        time.sleep(0.3)
        self.assertEqual(len(self.rcv.records()), before)


# ====================================================================
# Body caps
# ====================================================================

class BatchBodyLimitTest(BatchCase):
    """max_body_bytes 64 KiB, batch_max_body_bytes 256 KiB: only POST
    /api/v1/batches gets the bigger cap."""

    server_config = {"max_body_bytes": 65536,
                     "batch_max_body_bytes": 262144}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        tpl = asset_template("body-cap")
        for k in ("note", "note2"):
            tpl["inputs"][k] = {"type": "string", "default": ""}
        cls.tid = cls.srv.request("POST", TP, tpl).json["id"]

    def test_batch_body_over_max_body_bytes_accepted(self):
        tag = new_tag("big")
        body = {"template_id": self.tid,
                "inputs": {"tag": tag, "note": "n" * 75000,
                           "note2": "m" * 75000},
                "assets": assets_for(tag, 1)}
        raw = json.dumps(body)
        self.assertTrue(65536 < len(raw) < 262144)
        r = self.srv.request("POST", BT, raw=raw)
        self.assertStatus(r, 202)
        self.wait_ended(r.json["id"])
        # any other route keeps max_body_bytes
        wf = kilnlib.simple_workflow("big", config={"note": "n" * 150000})
        r = self.srv.request("POST", "/api/v1/workflows",
                             raw=json.dumps(wf))
        self.assertDetail(r, 413,
                          "Request body too large: limit is 65536 bytes")
        r = self.srv.request("POST", TP, raw=json.dumps(
            asset_template("big", description="d" * 150000)))
        self.assertStatus(r, 413)
        r = self.srv.request("POST", "%s/%s/retry" % (BT, NIL),
                             raw=json.dumps({"x": "n" * 150000}))
        self.assertStatus(r, 413)

    def test_batch_body_over_batch_max_body_bytes_refused(self):
        tag = new_tag("huge")
        body = {"template_id": self.tid,
                "inputs": {"tag": tag, "note": "n" * 300000},
                "assets": assets_for(tag, 1)}
        r = self.srv.request("POST", BT, raw=json.dumps(body))
        self.assertDetail(r, 413,
                          "Request body too large: limit is 262144 bytes")
        self.assertEqual(self.bp.records(tag), [])
        self.assertEqual(self.list_batches(template_id=self.tid)
                         ["batches"], [])


# ====================================================================
# Scheduling: batch_max_running 1
# ====================================================================

class BatchSchedulingTest(BatchCase):
    """One execution at a time over all batches: the order of the
    provider's calls is the scheduler's order."""

    server_config = {"batch_max_running": 1}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tid = cls.srv.request("POST", TP, asset_template()).json["id"]

    def tearDown(self):
        try:
            self.assertLessEqual(self.bp.max_inflight(), 1,
                                 "more than batch_max_running ran at once")
        finally:
            super().tearDown()

    def release_in_order(self, count, tags):
        """Releases count held calls one by one, each once it is the only
        one held; returns "<tag>/<asset>" of each call in order."""
        order = []
        for _ in range(count):
            self.bp.wait_held(1)
            held = self.bp.held()
            self.assertEqual(len(held), 1, held)
            rec = self.bp.release_next()
            self.assertIn(rec["tag"], tags)
            order.append("%s/%s" % (rec["tag"], asset_name(rec["url"])))
        return order

    def test_high_before_normal_before_low(self):
        low, norm, high = new_tag("low"), new_tag("norm"), new_tag("high")
        for t in (low, norm, high):
            self.bp.set_mode(t, "hold")
        lb = self.create(self.tid, low, assets_for(low, 3), priority="LOW")
        self.bp.wait_held(1, low)
        nb = self.create(self.tid, norm, assets_for(norm, 3))
        hb = self.create(self.tid, high, assets_for(high, 3),
                         priority="HIGH")
        time.sleep(0.2)
        # the two later batches wait: the only slot is taken
        for b in (nb, hb):
            now = self.get(b["id"])
            self.assertEqual(now["status"], "PENDING")
            self.assertEqual(now["assets"]["pending"], 3)
            self.assertIsNone(now["timing"]["started_at"])
        order = self.release_in_order(9, (low, norm, high))
        self.assertEqual(order, [low + "/0"] +
                         [high + "/%d" % i for i in range(3)] +
                         [norm + "/%d" % i for i in range(3)] +
                         [low + "/1", low + "/2"])
        for b in (lb, nb, hb):
            self.assertEqual(self.wait_ended(b["id"])["status"],
                             "COMPLETED")

    def test_equal_priorities_take_turns(self):
        big, small = new_tag("big"), new_tag("small")
        for t in (big, small):
            self.bp.set_mode(t, "hold")
        bb = self.create(self.tid, big, assets_for(big, 8))
        first = self.release_in_order(1, (big,))
        self.bp.wait_held(1, big)
        sb = self.create(self.tid, small, assets_for(small, 3))
        rest = self.release_in_order(10, (big, small))
        order = first + rest
        self.assertEqual(order, [
            big + "/0", big + "/1", small + "/0", big + "/2", small + "/1",
            big + "/3", small + "/2", big + "/4", big + "/5", big + "/6",
            big + "/7"])
        for b in (bb, sb):
            self.assertEqual(self.wait_ended(b["id"])["status"],
                             "COMPLETED")

    def test_cancel_a_batch_that_never_started(self):
        busy, idle = new_tag("busy"), new_tag("idle")
        self.bp.set_mode(busy, "hold")
        bb = self.create(self.tid, busy, assets_for(busy, 1))
        self.bp.wait_held(1, busy)
        ib = self.create(self.tid, idle, assets_for(idle, 4))
        r = self.cancel(ib["id"])
        self.assertStatus(r, 200)
        self.assertEqual(r.json, {
            "id": ib["id"], "status": "CANCELLED",
            "previous_status": "PENDING",
            "assets": {"total": 4, "pending": 0, "processing": 0,
                       "completed": 0, "failed": 0, "cancelled": 4}})
        done = self.get(ib["id"])
        self.assertEqual(done["status"], "CANCELLED")
        self.assertIsNotNone(done["timing"]["completed_at"])
        self.assertIsNone(done["timing"]["started_at"])
        self.assertEqual(done["estimated_time_remaining_ms"], 0)
        self.bp.set_mode(busy, "ok")
        self.wait_ended(bb["id"])
        time.sleep(0.2)
        self.assertEqual(self.bp.records(idle), [])
        self.assertEqual([e["status"] for e in
                          self.all_executions(ib["id"])], ["CANCELLED"] * 4)


# ====================================================================
# A kilnd per test: the global cap at 2, SIGKILL
# ====================================================================

class BatchOwnKilndTest(BatchCase):

    @classmethod
    def setUpClass(cls):
        cls.bp = BatchProvider()

    def start(self, **extra):
        srv = self.start_server(config=provider_config(self.bp, **extra),
                                name="kilnd-" + self._testMethodName)
        tid = self.template(srv=srv)
        return srv, tid

    def test_batch_max_running_bounds_all_batches(self):
        srv, tid = self.start(batch_max_running=2)
        wait_until(lambda: self.bp.inflight() == 0, 10, "idle provider")
        self.bp.reset_max()
        ta, tb = new_tag("capa"), new_tag("capb")
        for t in (ta, tb):
            self.bp.set_mode(t, "hold")
        a = self.create(tid, ta, assets_for(ta, 5), srv=srv)
        b = self.create(tid, tb, assets_for(tb, 5), srv=srv)
        self.bp.wait_held(2)
        time.sleep(0.3)
        self.assertEqual(len(self.bp.records(ta)) +
                         len(self.bp.records(tb)), 2)
        running = sum(self.get(x["id"], srv=srv)["assets"]["processing"]
                      for x in (a, b))
        self.assertEqual(running, 2)
        for t in (ta, tb):
            self.bp.set_mode(t, "sleep")
        for x in (a, b):
            self.assertEqual(self.wait_ended(x["id"], srv=srv)["status"],
                             "COMPLETED")
        self.assertEqual(self.bp.max_inflight(), 2)
        self.assertEqual(len(self.bp.records(ta)), 5)
        self.assertEqual(len(self.bp.records(tb)), 5)

    def test_sigkill_in_the_middle_of_a_batch(self):
        srv, tid = self.start()
        tag = new_tag("kill")
        self.bp.set_mode(tag, "hold")
        assets = assets_for(tag, 10)
        assets[7]["url"] = asset_url(tag, "7", do="fail")
        b = self.create(tid, tag, assets, concurrency_limit=3, srv=srv)
        self.bp.wait_held(3, tag)
        in_flight = {r["url"] for r in self.bp.held(tag)}
        self.assertEqual(len(in_flight), 3)
        srv.kill()
        self.bp.set_mode(tag, "ok")     # the killed calls answer nobody
        wait_until(lambda: self.bp.inflight(tag) == 0, 10,
                   "the killed calls to end")
        self.bp.reset_max()
        srv.start()
        done = self.wait_ended(b["id"], srv=srv)
        self.assertEqual(done["status"], "COMPLETED_WITH_ERRORS")
        self.assertEqual(done["assets"], {"total": 10, "pending": 0,
                                          "processing": 0, "completed": 9,
                                          "failed": 1, "cancelled": 0})
        per_url = self.bp.calls_per_url(tag)
        self.assertEqual(sorted(per_url), sorted(a["url"] for a in assets))
        for url, n in per_url.items():
            self.assertLessEqual(n, 2 if url in in_flight else 1,
                                 "%s called %d times" % (url, n))
        ex = self.all_executions(b["id"], srv=srv)
        self.assertEqual([e["status"] for e in ex],
                         ["SUCCESS"] * 7 + ["FAILED"] + ["SUCCESS"] * 2)
        for e in ex:
            self.assertEqual(e["runs"], 1)
        # the concurrency limit holds after the restart
        self.assertLessEqual(self.bp.max_inflight(tag), 3)


if __name__ == "__main__":
    kilnlib.main()
