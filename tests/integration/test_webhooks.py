"""Webhooks against a local receiver (webhook_receiver.py): the events
(workflow.completed/failed/cancelled, step.completed/failed and
suppress_subtask_events), their payload and Standard Webhooks headers, the
retry schedule (spacing, exhaustion, timeouts, a receiver that goes away and
comes back, 410, Retry-After and its cap, redirects not followed, a big
answer), signing (the webhook.secret file, secret rotation, tenant
secrets), per-receiver concurrency, private addresses (refused at create,
PATCH and connect time), the delivery log API (filters, pagination, 422s,
404s, tenants, redeliver, 409), config errors, and SIGKILL with deliveries
waiting for their retry or in flight.

Three groups: WebhookEventsTest and WebhookDeliveryTest share one kilnd per
class (their tests tag their URLs and filter by workflow);
WebhookOwnKilndTest starts a kilnd per test."""
import calendar
import datetime
import json
import os
import re
import sqlite3
import tempfile
import shutil
import time
import urllib.parse

import kilnlib
from kilnlib import (KilnTestCase, assert_schema, assert_workflow_shape,
                     fashion_pipeline, free_port, run_kilnd, simple_workflow,
                     steps_by_id, tenant_token, wait_until)
from scripted_provider import Reply, ScriptedProvider
from webhook_receiver import WebhookReceiver, new_secret, sign

SLACK_S = 0.4       # how late an attempt may come (the ASan build is slow)
EARLY_S = 0.05      # how early (clock granularity)
START_SLACK_S = 2.0  # how long a restarted kilnd may take to start

DELIVERY_FIELDS = {
    "id", "event", "workflow_id", "step_id", "tenant_id", "url", "status",
    "attempt_count", "next_attempt_at", "in_flight_since",
    "last_http_status", "last_error", "created_at", "updated_at",
    "completed_at"}
ATTEMPT_FIELDS = {"attempt", "started_at", "latency_ms", "outcome",
                  "http_status", "response_excerpt", "error", "retry_at"}
PAYLOAD_FIELDS = {
    "schema_version", "id", "event", "timestamp", "job_id", "status",
    "workflow_status", "workflow_name", "origin_reference",
    "origin_tenant_id", "canvas_task_id", "outputs", "metadata", "result"}
ERROR_FIELDS = {"error_code", "error_description", "field"}
METADATA_FIELDS = {"prompt_used", "provider", "model", "credit_cost",
                   "processing_time_seconds"}
SUMMARY_FIELDS = {"step_id", "task_type", "status", "provider_used",
                  "retry_count", "started_at", "completed_at"}
MSG_ID_RE = re.compile(r"^msg_[0-9a-f]{32}$")
API = "/api/v1/webhook-deliveries"


def parse_ts(text):
    """RFC 3339 UTC with milliseconds -> seconds since the epoch."""
    dt = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
    return calendar.timegm(dt.timetuple()) + dt.microsecond / 1e6


def gaps(records):
    return [b["arrived"] - a["arrived"] for a, b in zip(records,
                                                        records[1:])]


def fmt_gaps(g):
    return "[" + ", ".join("%.3f" % x for x in g) + "]"


def query(**params):
    params = {k: v for k, v in params.items() if v is not None}
    return ("?" + urllib.parse.urlencode(params)) if params else ""


def retry(base_ms):
    return {"base_delay_ms": base_ms, "max_delay_ms": 1000,
            "jitter": "none"}


def provider_step(step_id, provider, **extra):
    s = {"id": step_id, "task_type": "GENERATION",
         "config": {"prompt": "p-" + step_id},
         "provider_config": {"provider_type": provider}}
    s.update(extra)
    return s


def db_rows(srv, sql, params=()):
    """Rows of a query on <data_dir>/kiln.db (read while kilnd runs)."""
    con = sqlite3.connect(os.path.join(srv.data_dir, "kiln.db"), timeout=10)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def read_secret(srv):
    with open(os.path.join(srv.data_dir, "webhook.secret")) as f:
        return f.read().strip()


class WebhookCase(KilnTestCase):
    """The delivery log API and the assertions the groups share."""

    def list_deliveries(self, srv, token=kilnlib.DEFAULT, **params):
        r = srv.request("GET", API + query(**params), token=token)
        self.assertStatus(r, 200, "list %r" % params)
        assert_schema(r.json, "WebhookDeliveryList")
        for d in r.json["deliveries"]:
            self.assertEqual(set(d), DELIVERY_FIELDS, d)
        return r.json

    def get_delivery(self, srv, msg_id, token=kilnlib.DEFAULT):
        r = srv.request("GET", API + "/" + msg_id, token=token)
        self.assertStatus(r, 200, "delivery %s" % msg_id)
        assert_schema(r.json, "WebhookDeliveryDetail")
        self.assertEqual(set(r.json), DELIVERY_FIELDS | {"payload",
                                                         "attempts"})
        for a in r.json["attempts"]:
            self.assertEqual(set(a), ATTEMPT_FIELDS, a)
        return r.json

    def wf_deliveries(self, srv, wf_id, **params):
        return self.list_deliveries(srv, workflow_id=wf_id, limit=100,
                                    **params)["deliveries"]

    def wait_deliveries(self, srv, wf_id, count, statuses=("delivered",),
                        timeout=20.0):
        """Waits until wf_id has count deliveries, each in statuses and
        none in flight; returns them (newest first).  Fails at once when
        one ends in another final status."""
        if isinstance(statuses, str):
            statuses = (statuses,)
        deadline = time.monotonic() + timeout
        while True:
            ds = self.wf_deliveries(srv, wf_id)
            wrong = [d for d in ds if d["status"] not in statuses
                     and d["status"] != "pending"]
            if wrong:
                self.fail("deliveries of %s ended %s, wanted %s: %s" % (
                    wf_id, [d["status"] for d in wrong], statuses,
                    json.dumps([self.get_delivery(srv, d["id"])
                                for d in wrong], indent=1)[:6000]))
            if len(ds) == count and all(
                    d["status"] in statuses and d["in_flight_since"] is None
                    for d in ds):
                return ds
            if time.monotonic() > deadline:
                self.fail("deliveries of %s after %.0f s: %s (wanted %d %s)"
                          % (wf_id, timeout, json.dumps(ds, indent=1),
                             count, statuses))
            time.sleep(0.05)

    def wait_delivery(self, srv, msg_id, pred, timeout=20.0, what=""):
        """Polls GET until pred(delivery); returns it."""
        deadline = time.monotonic() + timeout
        while True:
            d = self.get_delivery(srv, msg_id)
            if pred(d):
                return d
            if time.monotonic() > deadline:
                self.fail("delivery %s: %s not reached after %.0f s: %s"
                          % (msg_id, what, timeout, json.dumps(d, indent=1)))
            time.sleep(0.05)

    def assert_clean(self, recs):
        """Every request was signed right and kept the contract."""
        self.assertTrue(recs, "no requests to check")
        for r in recs:
            self.assertTrue(r["verified"], "%s: signatures %s do not verify"
                            " (key indexes %s)" % (r["path"], r["signatures"],
                                                   r["sig_keys"]))
            self.assertEqual(r["problems"], [], r["path"])
            self.assertIsNone(r["schema_error"], r["path"])

    def assert_attempts(self, d, expected):
        """d's attempts are expected: a list of (outcome, http_status)."""
        atts = d["attempts"]
        self.assertEqual([(a["outcome"], a["http_status"]) for a in atts],
                         list(expected), json.dumps(atts, indent=1))
        for i, a in enumerate(atts):
            self.assertEqual(a["attempt"], i + 1, a)
            self.assertRegex(a["started_at"], kilnlib.TIMESTAMP_RE)
            self.assertGreaterEqual(a["latency_ms"], 0)
            if a["outcome"] == "delivered":
                self.assertIsNone(a["error"], a)
                self.assertIsNone(a["retry_at"], a)
            else:
                self.assertIsInstance(a["error"], str, a)
                self.assertTrue(a["error"], a)
        for a, b in zip(atts, atts[1:]):
            self.assertLessEqual(parse_ts(a["started_at"]),
                                 parse_ts(b["started_at"]))
        self.assertEqual(d["attempt_count"], len(atts))
        return atts

    def assert_gaps(self, recs, expected, what):
        g = gaps(recs)
        self.assertEqual(len(g), len(expected), "%s: gaps %s, expected %s"
                         % (what, fmt_gaps(g), expected))
        for got, want in zip(g, expected):
            self.assertGreaterEqual(got, want - EARLY_S,
                                    "%s: gaps %s, expected %s (early)"
                                    % (what, fmt_gaps(g), expected))
            self.assertLessEqual(got, want + SLACK_S,
                                 "%s: gaps %s, expected %s (+%.1f s)"
                                 % (what, fmt_gaps(g), expected, SLACK_S))
        return g

    def assert_retry_at(self, a, delay):
        """attempt a scheduled the next one delay s after it ended."""
        self.assertIsNotNone(a["retry_at"], a)
        ended = parse_ts(a["started_at"]) + a["latency_ms"] / 1000.0
        self.assertGreaterEqual(parse_ts(a["retry_at"]) - ended,
                                delay - 0.01, a)
        self.assertLessEqual(parse_ts(a["retry_at"]) - ended,
                             delay + SLACK_S, a)

    def assert_final(self, d, status, http_status, error):
        """A delivery that ended: status, the last answer, nothing due."""
        self.assertEqual(d["status"], status, d)
        self.assertEqual(d["last_http_status"], http_status, d)
        self.assertEqual(d["last_error"], error, d)
        self.assertIsNone(d["next_attempt_at"], d)
        self.assertIsNone(d["in_flight_since"], d)
        self.assertRegex(d["completed_at"] or "", kilnlib.TIMESTAMP_RE, d)

    def assert_summary(self, summary, step):
        """A payload's step summary matches the step as GET shows it."""
        self.assertEqual(set(summary), SUMMARY_FIELDS, summary)
        for k in SUMMARY_FIELDS:
            self.assertEqual(summary[k], step[k], "summary %s of %s"
                             % (k, step["step_id"]))

    def assert_payload(self, p, wf, event, status, step_id=None):
        """The fields every payload has, for workflow wf (as GET shows it
        after the event)."""
        self.assertTrue(PAYLOAD_FIELDS <= set(p), "missing payload keys %s"
                        % sorted(PAYLOAD_FIELDS - set(p)))
        self.assertEqual(p["schema_version"], "1")
        self.assertRegex(p["id"], MSG_ID_RE)
        self.assertEqual(p["event"], event)
        self.assertRegex(p["timestamp"], kilnlib.TIMESTAMP_RE)
        self.assertEqual(p["job_id"], wf["id"])
        self.assertEqual(p["status"], status)
        self.assertEqual(p["workflow_name"], wf["name"])
        self.assertEqual(p["origin_reference"], wf["origin_reference"])
        self.assertEqual(p["origin_tenant_id"], wf["origin_tenant_id"])
        self.assertEqual(p["canvas_task_id"], wf["canvas_task_id"])
        self.assertEqual(set(p["metadata"]), METADATA_FIELDS)
        steps = steps_by_id(wf)
        if event.startswith("step."):
            self.assert_summary(p["step"], steps[step_id])
            self.assertNotIn("steps", p)
        else:
            self.assertEqual(p["workflow_status"], wf["status"])
            self.assertEqual([s["step_id"] for s in p["steps"]],
                             [s["step_id"] for s in wf["steps"]])
            for s in p["steps"]:
                self.assert_summary(s, steps[s["step_id"]])
            if step_id is None:
                self.assertNotIn("step", p)
            else:
                self.assert_summary(p["step"], steps[step_id])
        if event.endswith(".failed") or event.endswith(".cancelled"):
            self.assertTrue(ERROR_FIELDS <= set(p), sorted(p))
            self.assertIsInstance(p["error_description"], str)
            self.assertTrue(p["error_description"])
        else:
            self.assertFalse((ERROR_FIELDS | {"provider_http_status"})
                             & set(p), sorted(p))
        extra = set(p) - PAYLOAD_FIELDS - ERROR_FIELDS - {
            "provider_http_status", "step", "steps"}
        self.assertEqual(extra, set(), "unexpected payload keys")
        assert_schema(p, "WebhookEvent")

    def by_event(self, ds):
        """{(event, step_id): delivery}; fails on duplicates."""
        out = {}
        for d in ds:
            key = (d["event"], d["step_id"])
            self.assertNotIn(key, out, "two deliveries for %s" % (key,))
            out[key] = d
        return out


# ====================================================================== 1
class WebhookEventsTest(WebhookCase):
    """One kilnd without a configured secret (it signs with
    <data_dir>/webhook.secret), schedule [0, 1, 2, 3] without jitter,
    timeout_s 1, and local providers that reject, fail and hold."""

    @classmethod
    def setUpClass(cls):
        sp = cls.sp = ScriptedProvider()
        sp.script("/reject", Reply(400, body="bad prompt"))
        sp.script("/busy", Reply(503, body="try later"))
        sp.script("/hold", Reply(200, hold=True, hold_max_s=30))

        def http(path, **kw):
            p = {"type": "http", "url": sp.url(path), "timeout_s": 5,
                 "connect_timeout_s": 2}
            p.update(kw)
            return p
        cfg = {
            "webhooks": {"allow_private_networks": True, "jitter": 0,
                         "schedule_s": [0, 1, 2, 3], "timeout_s": 1,
                         "connect_timeout_s": 0.5},
            "providers": {
                "reject": http("/reject", max_retries=3, retry=retry(100)),
                "busy": http("/busy", max_retries=1, retry=retry(100)),
                "holdp": http("/hold", timeout_s=30),
            },
        }
        try:
            cls.srv = cls.start_class_server(config=cfg,
                                             name="kilnd-webhooks-events")
            cls.secret = read_secret(cls.srv)
            cls.rcv = WebhookReceiver([cls.secret], name="receiver-events")
        except Exception:
            sp.close()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.sp.close()
            cls.rcv.close()

    def run_wf(self, body, status, token=kilnlib.DEFAULT):
        wf = self.srv.create(body, token=token)
        done = self.srv.wait_for_status(wf["id"], status, token=token)
        assert_workflow_shape(done)
        return done

    def received(self, d):
        """The receiver's requests for delivery d."""
        return self.rcv.records(msg_id=d["id"])

    # ------------------------------------------------------------ events
    def test_workflow_completed_once_signed(self):
        """Default suppress_subtask_events: one workflow.completed, signed,
        with the documented fields; no step events."""
        srv, rcv = self.srv, self.rcv
        done = self.run_wf(fashion_pipeline(
            webhook_url=rcv.url("/ok/completed"),
            origin_reference="order-4711"), "COMPLETED")
        self.assertTrue(done["suppress_subtask_events"])
        wf_id = done["id"]
        [d] = self.wait_deliveries(srv, wf_id, 1)
        self.assertEqual(d["event"], "workflow.completed")
        self.assertIsNone(d["step_id"])
        self.assertIsNone(d["tenant_id"])
        self.assertEqual(d["workflow_id"], wf_id)
        self.assertEqual(d["url"], rcv.url("/ok/completed"))
        self.assertRegex(d["id"], MSG_ID_RE)
        self.assert_final(d, "delivered", 200, None)
        self.assertEqual(d["attempt_count"], 1)

        [rec] = rcv.records(job_id=wf_id)
        self.assert_clean([rec])
        self.assertEqual(rec["method"], "POST")
        self.assertEqual(rec["path"], "/ok/completed")
        self.assertEqual(rec["id"], d["id"])
        self.assertEqual(rec["sig_keys"], [0])
        self.assertEqual(len(rec["signatures"]), 1)
        self.assertTrue(rec["signatures"][0].startswith("v1,"))
        self.assertEqual(rec["headers"]["content-type"], "application/json")
        self.assertRegex(rec["headers"]["user-agent"],
                         r"^kilnd-webhooks/\d+\.\d+\.\d+")
        self.assertNotIn("authorization", rec["headers"])
        self.assertLessEqual(abs(rec["timestamp"] - rec["arrived_wall"]), 2)

        p = rec["json"]
        self.assert_payload(p, done, "workflow.completed", "success")
        self.assertEqual(p["id"], d["id"])
        self.assertEqual(p["workflow_status"], "COMPLETED")
        self.assertEqual(p["origin_reference"], "order-4711")
        self.assertIsNone(p["origin_tenant_id"])
        self.assertIsNone(p["canvas_task_id"])
        refine = steps_by_id(done)["refine"]
        self.assertEqual(p["result"], refine["result"])
        self.assertEqual(p["outputs"], [{
            "asset_url": "dryrun://%s/refine.png" % wf_id,
            "asset_type": "image", "format": "png"}])
        md = p["metadata"]
        self.assertEqual(md["provider"], "dryrun")
        self.assertIsNone(md["prompt_used"])    # refine has no prompt
        self.assertIsNone(md["model"])
        self.assertIsNone(md["credit_cost"])
        self.assertIsInstance(md["processing_time_seconds"], (int, float))
        self.assertGreaterEqual(md["processing_time_seconds"], 0)
        self.assertLessEqual(
            abs(md["processing_time_seconds"] -
                (parse_ts(done["completed_at"]) -
                 parse_ts(done["started_at"]))), 0.01)
        self.assertGreaterEqual(parse_ts(p["timestamp"]),
                                parse_ts(done["started_at"]))
        self.assertLessEqual(parse_ts(p["timestamp"]),
                             parse_ts(d["created_at"]) + 0.01)

        # the log keeps what was sent, byte for byte the same JSON
        detail = self.get_delivery(srv, d["id"])
        self.assertEqual(detail["payload"], p)
        self.assert_attempts(detail, [("delivered", 200)])
        self.assertEqual(detail["attempts"][0]["response_excerpt"], "ok")
        self.assertEqual(len(rcv.records(msg_id=d["id"])), 1)

        # an explicit true is the same
        done2 = self.run_wf(simple_workflow(
            "suppressed", webhook_url=rcv.url("/ok/completed"),
            suppress_subtask_events=True), "COMPLETED")
        [d2] = self.wait_deliveries(srv, done2["id"], 1)
        self.assertEqual(d2["event"], "workflow.completed")
        self.assertEqual(len(rcv.records(job_id=done2["id"])), 1)
        # a workflow without webhook_url queues nothing
        done3 = self.run_wf(simple_workflow("no-hook"), "COMPLETED")
        self.assertEqual(self.wf_deliveries(srv, done3["id"]), [])

    def test_step_events_when_not_suppressed(self):
        srv, rcv = self.srv, self.rcv
        done = self.run_wf(fashion_pipeline(
            webhook_url=rcv.url("/ok/steps"), origin_reference="ref-steps",
            suppress_subtask_events=False), "COMPLETED")
        wf_id = done["id"]
        ds = self.by_event(self.wait_deliveries(srv, wf_id, 3))
        self.assertEqual(set(ds), {("step.completed", "generate"),
                                   ("step.completed", "refine"),
                                   ("workflow.completed", None)})
        recs = rcv.records(job_id=wf_id)
        self.assertEqual(len(recs), 3, [r["json"]["event"] for r in recs])
        self.assert_clean(recs)
        self.assertEqual({r["id"] for r in recs},
                         {d["id"] for d in ds.values()})
        steps = steps_by_id(done)
        for r in recs:
            p = r["json"]
            sid = p["step"]["step_id"] if p["event"].startswith("step.") \
                else None
            self.assertEqual(ds[(p["event"], sid)]["id"], r["id"])
            self.assertEqual(p["origin_reference"], "ref-steps")
            if sid is None:
                self.assert_payload(p, done, "workflow.completed", "success")
                self.assertEqual(p["result"], steps["refine"]["result"])
                continue
            self.assert_payload(p, done, "step.completed", "success", sid)
            self.assertEqual(p["workflow_status"], "RUNNING")
            self.assertEqual(p["result"], steps[sid]["result"])
            self.assertEqual(p["metadata"]["provider"], "dryrun")
            self.assertLessEqual(abs(
                p["metadata"]["processing_time_seconds"] -
                (parse_ts(steps[sid]["completed_at"]) -
                 parse_ts(steps[sid]["started_at"]))), 0.01)
            out = {"asset_url": "dryrun://%s/%s.png" % (wf_id, sid),
                   "asset_type": "image", "format": "png"}
            if sid == "generate":
                out.update(width=1024, height=1024)
                self.assertEqual(p["metadata"]["prompt_used"],
                                 "fashion model wearing elegant dress")
            self.assertEqual(p["outputs"], [out])

    def test_failed_provider_rejected(self):
        """A permanent 4xx: step.failed and workflow.failed with
        PROVIDER_REJECTED; transient errors after the retries:
        PROVIDER_UNAVAILABLE."""
        srv, rcv = self.srv, self.rcv
        done = self.run_wf(simple_workflow(
            "rejected", webhook_url=rcv.url("/ok/failed"),
            suppress_subtask_events=False,
            steps=[provider_step("s1", "reject"),
                   {"id": "s2", "task_type": "REFINE",
                    "depends_on": ["s1"], "config": {}}]), "FAILED")
        wf_id = done["id"]
        err = "provider 'reject' answered HTTP 400: bad prompt"
        self.assertEqual(steps_by_id(done)["s1"]["error_message"], err)
        ds = self.by_event(self.wait_deliveries(srv, wf_id, 2))
        self.assertEqual(set(ds), {("step.failed", "s1"),
                                   ("workflow.failed", "s1")})
        recs = rcv.records(job_id=wf_id)
        self.assertEqual(len(recs), 2)
        self.assert_clean(recs)
        for r in recs:
            p = r["json"]
            if p["event"] == "step.failed":
                self.assert_payload(p, done, "step.failed", "failed", "s1")
                self.assertIn(p["workflow_status"], ("RUNNING", "FAILED"))
            else:
                self.assert_payload(p, done, "workflow.failed", "failed",
                                    "s1")
                self.assertEqual(p["workflow_status"], "FAILED")
            self.assertEqual(p["error_code"], "PROVIDER_REJECTED")
            self.assertEqual(p["error_description"], err)
            self.assertIsNone(p["field"])
            self.assertEqual(p["provider_http_status"], 400)
            self.assertEqual(p["step"]["status"], "FAILED")
            self.assertIsNone(p["result"])
            self.assertEqual(p["outputs"], [])

        done = self.run_wf(simple_workflow(
            "unavailable", webhook_url=rcv.url("/ok/failed"),
            steps=[provider_step("s1", "busy")]), "FAILED")
        [d] = self.wait_deliveries(srv, done["id"], 1)
        self.assertEqual((d["event"], d["step_id"]), ("workflow.failed",
                                                      "s1"))
        [r] = rcv.records(job_id=done["id"])
        self.assert_clean([r])
        p = r["json"]
        self.assert_payload(p, done, "workflow.failed", "failed", "s1")
        self.assertEqual(p["error_code"], "PROVIDER_UNAVAILABLE")
        self.assertEqual(p["error_description"],
                         "provider 'busy' answered HTTP 503: try later")
        self.assertEqual(p["provider_http_status"], 503)
        self.assertIsNone(p["field"])
        self.assertEqual(p["step"]["retry_count"], 1)

    def test_failed_invalid_input(self):
        """An input mapping whose from_field is missing: INVALID_INPUT,
        field names the mapping."""
        srv, rcv = self.srv, self.rcv
        done = self.run_wf(simple_workflow(
            "invalid-input", webhook_url=rcv.url("/ok/invalid"),
            suppress_subtask_events=False, steps=[
                {"id": "generate", "task_type": "GENERATION",
                 "config": {"prompt": "p"}},
                {"id": "refine", "task_type": "REFINE",
                 "depends_on": ["generate"], "config": {},
                 "input_mappings": [{"from_step": "generate",
                                     "from_field": "no_such_field",
                                     "to_field": "base_image_url"}]}]),
            "FAILED")
        wf_id = done["id"]
        err = steps_by_id(done)["refine"]["error_message"]
        self.assertIn("no_such_field", err)
        ds = self.by_event(self.wait_deliveries(srv, wf_id, 3))
        self.assertEqual(set(ds), {("step.completed", "generate"),
                                   ("step.failed", "refine"),
                                   ("workflow.failed", "refine")})
        recs = rcv.records(job_id=wf_id)
        self.assertEqual(len(recs), 3)
        self.assert_clean(recs)
        for r in recs:
            p = r["json"]
            if p["event"] == "step.completed":
                continue
            self.assert_payload(p, done, p["event"], "failed", "refine")
            self.assertEqual(p["error_code"], "INVALID_INPUT", p["event"])
            self.assertEqual(p["error_description"], err)
            self.assertNotIn("provider_http_status", p)
            self.assertEqual(p["field"], "input_mappings[0].to_field",
                             p["event"])

    def test_cancelled_while_running(self):
        srv, rcv, sp = self.srv, self.rcv, self.sp
        wf = srv.create(simple_workflow(
            "cancel-me", webhook_url=rcv.url("/ok/cancel"),
            origin_reference="ref-cancel",
            steps=[provider_step("s1", "holdp")]))
        sp.wait_for(1, path="/hold", timeout=10)
        self.assertEqual(self.wf_deliveries(srv, wf["id"]), [])
        r = srv.request("DELETE", "/api/v1/workflows/" + wf["id"])
        self.assertStatus(r, 200)
        self.assertEqual(r.json["status"], "CANCELLED")
        done = srv.get_wf(wf["id"])
        [d] = self.wait_deliveries(srv, wf["id"], 1)
        self.assertEqual((d["event"], d["step_id"]),
                         ("workflow.cancelled", None))
        [rec] = rcv.records(job_id=wf["id"])
        self.assert_clean([rec])
        p = rec["json"]
        self.assert_payload(p, done, "workflow.cancelled", "cancelled")
        self.assertEqual(p["workflow_status"], "CANCELLED")
        self.assertEqual(p["origin_reference"], "ref-cancel")
        self.assertEqual(p["error_code"], "CANCELLED")
        self.assertIsNone(p["field"])
        self.assertNotIn("provider_http_status", p)
        self.assertEqual(p["steps"][0]["status"], "CANCELLED")
        self.assertIsNone(p["result"])
        # a second DELETE changes nothing and sends nothing
        srv.request("DELETE", "/api/v1/workflows/" + wf["id"])
        self.assertEqual(len(self.wf_deliveries(srv, wf["id"])), 1)

    # ------------------------------------------------------------ retries
    def test_retry_schedule(self):
        """/fail/2 with schedule [0, 1, 2, 3]: three attempts 1 s and 2 s
        apart, one webhook-id, then delivered."""
        srv, rcv = self.srv, self.rcv
        done = self.run_wf(simple_workflow(
            "fail-twice", webhook_url=rcv.url("/fail/2/schedule")),
            "COMPLETED")
        [d] = self.wait_deliveries(srv, done["id"], 1, timeout=15)
        recs = rcv.records(job_id=done["id"])
        self.assertEqual([r["status"] for r in recs], [500, 500, 200])
        self.assert_clean(recs)
        self.assertEqual({r["id"] for r in recs}, {d["id"]})
        self.assertEqual(len({r["raw"] for r in recs}), 1,
                         "the body changed between attempts")
        for r in recs:
            self.assertLessEqual(abs(r["timestamp"] - r["arrived_wall"]), 2)
        self.assert_gaps(recs, [1.0, 2.0], "/fail/2")

        detail = self.get_delivery(srv, d["id"])
        self.assert_final(detail, "delivered", 200, None)
        atts = self.assert_attempts(detail, [("failed", 500),
                                             ("failed", 500),
                                             ("delivered", 200)])
        self.assertEqual([a["error"] for a in atts],
                         ["HTTP 500", "HTTP 500", None])
        self.assertEqual([a["response_excerpt"] for a in atts],
                         ["fail 1 of 2", "fail 2 of 2", "ok"])
        self.assert_retry_at(atts[0], 1.0)
        self.assert_retry_at(atts[1], 2.0)
        self.assertEqual(db_rows(srv, "SELECT status, attempt_count,"
                                 " round_attempts FROM webhook_deliveries"
                                 " WHERE id = ?", (d["id"],)),
                         [("delivered", 3, 3)])
        self.assertEqual(db_rows(srv, "SELECT attempt, outcome, http_status"
                                 " FROM webhook_attempts WHERE delivery_id"
                                 " = ? ORDER BY attempt", (d["id"],)),
                         [(1, "failed", 500), (2, "failed", 500),
                          (3, "delivered", 200)])

    def test_timeout_then_retry(self):
        """An answer slower than timeout_s (1 s) is a failed attempt; only
        the 2xx of the next one delivers."""
        srv, rcv = self.srv, self.rcv
        done = self.run_wf(simple_workflow(
            "slow-first", webhook_url=rcv.url("/slowfirst/3/timeout")),
            "COMPLETED")
        [d] = self.wait_deliveries(srv, done["id"], 1, timeout=15)
        recs = rcv.records(job_id=done["id"])
        self.assertEqual(len(recs), 2)
        self.assert_clean(recs)
        self.assertEqual({r["id"] for r in recs}, {d["id"]})
        self.assertIsNone(recs[0]["status"], "the slow attempt was answered")
        self.assertIsNotNone(recs[0]["client_closed"])
        self.assertEqual(recs[1]["status"], 200)
        # 1 s timeout, then schedule_s[1] = 1 s
        self.assert_gaps(recs, [2.0], "timeout then retry")
        self.assertLessEqual(recs[0]["client_closed"] - recs[0]["arrived"],
                             1.0 + SLACK_S)
        detail = self.get_delivery(srv, d["id"])
        self.assert_final(detail, "delivered", 200, None)
        atts = self.assert_attempts(detail, [("failed", None),
                                             ("delivered", 200)])
        self.assertRegex(atts[0]["error"].lower(), r"time(d)? ?out")
        self.assertGreaterEqual(atts[0]["latency_ms"], 900)
        self.assertLess(atts[0]["latency_ms"], 1000 + SLACK_S * 1000)
        self.assertIsNone(atts[0]["response_excerpt"])
        self.assert_retry_at(atts[0], 1.0)
        self.assertEqual(db_rows(srv, "SELECT attempt, http_status FROM"
                                 " webhook_attempts WHERE delivery_id = ?"
                                 " ORDER BY attempt", (d["id"],)),
                         [(1, None), (2, 200)])

    def test_receiver_away_and_back(self):
        """Connection refused: failed attempts with an error, then
        delivered once the receiver is back."""
        srv = self.srv
        away = WebhookReceiver([self.secret], name="receiver-away")
        self.addCleanup(away.close)
        away.stop()
        done = self.run_wf(simple_workflow(
            "away", webhook_url=away.url("/ok/away")), "COMPLETED")
        [d] = self.wait_deliveries(srv, done["id"], 1, statuses=("pending",))
        d = self.wait_delivery(srv, d["id"], lambda x: x["attempt_count"]
                               == 2 and x["in_flight_since"] is None,
                               timeout=5, what="2 refused attempts")
        self.assertEqual(d["status"], "pending")
        self.assertIsNone(d["last_http_status"])
        self.assertTrue(d["last_error"])
        self.assertRegex(d["next_attempt_at"] or "", kilnlib.TIMESTAMP_RE)
        self.assertIsNone(d["completed_at"])
        away.start()
        [d] = self.wait_deliveries(srv, done["id"], 1, timeout=10)
        detail = self.get_delivery(srv, d["id"])
        atts = self.assert_attempts(detail, [("failed", None),
                                             ("failed", None),
                                             ("delivered", 200)])
        for a in atts[:2]:
            self.assertIn("connect", a["error"].lower(), a)
        self.assert_retry_at(atts[0], 1.0)
        self.assert_retry_at(atts[1], 2.0)
        self.assert_final(detail, "delivered", 200, None)
        recs = away.records()
        self.assertEqual([r["status"] for r in recs], [200])
        self.assert_clean(recs)
        self.assertEqual(recs[0]["id"], d["id"])

    def test_default_secret_file(self):
        """Without webhooks.secret kilnd creates webhook.secret and signs
        with it."""
        path = os.path.join(self.srv.data_dir, "webhook.secret")
        self.assertTrue(os.path.isfile(path))
        self.assertEqual(os.stat(path).st_mode & 0o077, 0,
                         "webhook.secret is readable by others")
        self.assertRegex(self.secret, r"^whsec_[A-Za-z0-9+/]+={0,2}$")
        done = self.run_wf(simple_workflow(
            "secret-file", webhook_url=self.rcv.url("/ok/secret")),
            "COMPLETED")
        self.wait_deliveries(self.srv, done["id"], 1)
        [rec] = self.rcv.records(job_id=done["id"])
        self.assert_clean([rec])
        self.assertEqual(rec["sig_keys"], [0])
        sig = rec["signatures"][0].split(",", 1)[1]
        self.assertEqual(sig, sign(self.secret, rec["id"],
                                   rec["headers"]["webhook-timestamp"],
                                   rec["raw"]))
        self.assertNotEqual(sig, sign(new_secret("other"), rec["id"],
                                      rec["headers"]["webhook-timestamp"],
                                      rec["raw"]))

    # ------------------------------------------------------------ the API
    def test_delivery_list_filters_and_pagination(self):
        srv, rcv = self.srv, self.rcv
        w1 = self.run_wf(fashion_pipeline(
            webhook_url=rcv.url("/ok/api"), suppress_subtask_events=False),
            "COMPLETED")["id"]
        w3 = self.run_wf(simple_workflow(
            "gone", webhook_url=rcv.url("/gone/api")), "COMPLETED")["id"]
        full = self.wait_deliveries(srv, w1, 3)
        [gone] = self.wait_deliveries(srv, w3, 1, statuses=("failed",))

        # newest first
        self.assertEqual([(d["event"], d["step_id"]) for d in full],
                         [("workflow.completed", None),
                          ("step.completed", "refine"),
                          ("step.completed", "generate")])
        for a, b in zip(full, full[1:]):
            self.assertGreaterEqual(a["created_at"], b["created_at"])
        lst = self.list_deliveries(srv, workflow_id=w1)
        self.assertEqual(lst["pagination"], {"limit": 50, "offset": 0,
                                             "total": 3, "has_more": False})
        ids = [d["id"] for d in full]
        for limit, offset, want, more in ((2, 0, ids[:2], True),
                                          (2, 2, ids[2:], False),
                                          (1, 1, ids[1:2], True),
                                          (2, 3, [], False),
                                          (100, 0, ids, False)):
            lst = self.list_deliveries(srv, workflow_id=w1, limit=limit,
                                       offset=offset)
            self.assertEqual([d["id"] for d in lst["deliveries"]], want,
                             (limit, offset))
            self.assertEqual(lst["pagination"], {
                "limit": limit, "offset": offset, "total": 3,
                "has_more": more})
        # filters, alone and together
        ev = self.list_deliveries(srv, workflow_id=w1, event="step.completed")
        self.assertEqual(sorted(d["step_id"] for d in ev["deliveries"]),
                         ["generate", "refine"])
        self.assertEqual(ev["pagination"]["total"], 2)
        self.assertEqual([d["id"] for d in self.list_deliveries(
            srv, workflow_id=w1, event="workflow.completed")["deliveries"]],
            ids[:1])
        for event in ("workflow.failed", "workflow.cancelled",
                      "step.failed"):
            self.assertEqual(self.list_deliveries(
                srv, workflow_id=w1, event=event)["pagination"]["total"], 0)
        self.assertEqual(self.list_deliveries(
            srv, workflow_id=w1, status="delivered")["pagination"]["total"],
            3)
        for status in ("failed", "pending"):
            self.assertEqual(self.list_deliveries(
                srv, workflow_id=w1, status=status)["deliveries"], [])
        failed = self.list_deliveries(srv, workflow_id=w3, status="failed")
        self.assertEqual([d["id"] for d in failed["deliveries"]],
                         [gone["id"]])
        self.assert_final(gone, "failed", 410, gone["last_error"])
        self.assertTrue(gone["last_error"].startswith("HTTP 410"),
                        gone["last_error"])
        # across workflows: the failed one is listed, w1's are not
        every = self.list_deliveries(srv, status="failed", limit=100)
        got = {d["id"] for d in every["deliveries"]}
        self.assertIn(gone["id"], got)
        self.assertFalse(got & set(ids))
        self.assertTrue(all(d["status"] == "failed"
                            for d in every["deliveries"]))
        every = self.list_deliveries(srv, event="step.completed", limit=100)
        self.assertTrue(all(d["event"] == "step.completed"
                            for d in every["deliveries"]))
        self.assertLessEqual(len(every["deliveries"]),
                             every["pagination"]["total"])
        # an unknown workflow has none
        lst = self.list_deliveries(
            srv, workflow_id="00000000-0000-4000-8000-000000000000")
        self.assertEqual(lst["deliveries"], [])
        self.assertEqual(lst["pagination"]["total"], 0)
        # list items are the detail without payload and attempts
        for d in full:
            detail = self.get_delivery(srv, d["id"])
            self.assertEqual({k: detail[k] for k in DELIVERY_FIELDS}, d)
            self.assertEqual(detail["payload"]["id"], d["id"])

    def test_delivery_api_errors(self):
        srv = self.srv
        int_msg = ("Input should be a valid integer, unable to parse "
                   "string as an integer")
        cases = [
            ("workflow_id=nope", "workflow_id", "uuid_parsing"),
            ("workflow_id=123", "workflow_id", "uuid_parsing"),
            ("event=workflow.started", "event", "enum"),
            ("event=", "event", "enum"),
            ("status=done", "status", "enum"),
            ("status=DELIVERED", "status", "enum"),
            ("limit=0", "limit", "greater_than_equal"),
            ("limit=101", "limit", "less_than_equal"),
            ("limit=x", "limit", "int_parsing"),
            ("offset=-1", "offset", "greater_than_equal"),
        ]
        for qs, name, typ in cases:
            with self.subTest(query=qs):
                r = srv.request("GET", API + "?" + qs)
                self.assertValidation(r, [(["query", name], typ)],
                                      exact_count=1)
        r = srv.request("GET", API + "?limit=x")
        self.assertValidation(r, [(["query", "limit"], "int_parsing",
                                   int_msg)])
        r = srv.request("GET", API + "?workflow_id=nope&status=done&limit=0")
        self.assertValidation(r, [(["query", "workflow_id"], "uuid_parsing"),
                                  (["query", "status"], "enum"),
                                  (["query", "limit"], "greater_than_equal")],
                              exact_count=3)
        unknown = "msg_" + "0" * 32
        for method, path in (("GET", API + "/" + unknown),
                             ("POST", API + "/" + unknown + "/redeliver"),
                             ("GET", API + "/not-a-delivery")):
            with self.subTest(path=path):
                r = srv.request(method, path)
                self.assertStatus(r, 404)
                self.assertIsInstance((r.json or {}).get("detail"), str,
                                      r.text)
        r = srv.request("GET", API + "/" + unknown)
        self.assertEqual(r.json["detail"],
                         "Webhook delivery %s not found" % unknown)
        r = srv.request("GET", API, token=None)
        self.assertStatus(r, 401)

    def test_tenants_and_redeliver(self):
        srv, rcv = self.srv, self.rcv
        tok_a, tok_b = tenant_token("wh-tenant-a"), tenant_token("wh-tenant-b")
        wa = self.run_wf(simple_workflow(
            "tenant-a", webhook_url=rcv.url("/ok/tenant")), "COMPLETED",
            token=tok_a)
        wb = self.run_wf(simple_workflow(
            "tenant-b", webhook_url=rcv.url("/ok/tenant")), "COMPLETED",
            token=tok_b)
        self.assertEqual(wa["origin_tenant_id"], "wh-tenant-a")
        [da] = self.wait_deliveries(srv, wa["id"], 1)
        [db] = self.wait_deliveries(srv, wb["id"], 1)
        self.assertEqual(da["tenant_id"], "wh-tenant-a")
        self.assertEqual(db["tenant_id"], "wh-tenant-b")
        [rec] = rcv.records(msg_id=da["id"])
        self.assertEqual(rec["json"]["origin_tenant_id"], "wh-tenant-a")

        # each tenant sees its own only
        for tok, mine, other in ((tok_a, da, db), (tok_b, db, da)):
            lst = self.list_deliveries(srv, token=tok, limit=100)
            got = {d["id"] for d in lst["deliveries"]}
            self.assertIn(mine["id"], got)
            self.assertNotIn(other["id"], got)
            self.assertEqual({d["tenant_id"] for d in lst["deliveries"]},
                             {mine["tenant_id"]})
            self.assertEqual(lst["pagination"]["total"], 1)
            self.assertEqual(self.list_deliveries(
                srv, token=tok, workflow_id=other["workflow_id"])[
                    "pagination"]["total"], 0)
            r = srv.request("GET", API + "/" + other["id"], token=tok)
            self.assertStatus(r, 404)
            r = srv.request("POST", API + "/" + other["id"] + "/redeliver",
                            token=tok)
            self.assertStatus(r, 404)
            self.get_delivery(srv, mine["id"], token=tok)
        # the operator sees both
        got = {d["id"] for d in self.list_deliveries(
            srv, limit=100)["deliveries"]}
        self.assertTrue({da["id"], db["id"]} <= got)
        # the refused redelivery sent nothing
        self.assertEqual(len(rcv.records(msg_id=da["id"])), 1)
        self.assertEqual(self.get_delivery(srv, da["id"])["attempt_count"],
                         1)

        # redeliver: 202 pending, the same webhook-id and body again,
        # attempts go on counting
        r = srv.request("POST", API + "/" + da["id"] + "/redeliver",
                        token=tok_a)
        self.assertStatus(r, 202)
        assert_schema(r.json, "WebhookDeliveryDetail")
        self.assertEqual(r.json["id"], da["id"])
        self.assertEqual(r.json["status"], "pending", r.json)
        self.assertEqual(r.json["attempt_count"], 1)
        self.assertIsNone(r.json["completed_at"])
        recs = rcv.wait_for(2, msg_id=da["id"], timeout=10)
        self.assertEqual(len(recs), 2)
        self.assert_clean(recs)
        self.assertEqual(recs[0]["raw"], recs[1]["raw"])
        d = self.wait_delivery(srv, da["id"],
                               lambda x: x["status"] == "delivered"
                               and x["attempt_count"] == 2, timeout=10,
                               what="delivered again")
        self.assert_attempts(d, [("delivered", 200), ("delivered", 200)])
        self.assert_final(d, "delivered", 200, None)
        # the operator may redeliver a tenant's delivery too
        r = srv.request("POST", API + "/" + da["id"] + "/redeliver")
        self.assertStatus(r, 202)
        rcv.wait_for(3, msg_id=da["id"], timeout=10)
        d = self.wait_delivery(srv, da["id"],
                               lambda x: x["status"] == "delivered"
                               and x["attempt_count"] == 3, timeout=10,
                               what="delivered a third time")
        self.assertEqual([a["attempt"] for a in d["attempts"]], [1, 2, 3])
        self.assertEqual(db_rows(srv, "SELECT tenant_id, attempt_count FROM"
                                 " webhook_deliveries WHERE id = ?",
                                 (da["id"],)), [("wh-tenant-a", 3)])


# ====================================================================== 2
SECRET_A = new_secret("rotation-a")
SECRET_B = new_secret("rotation-b")
SECRET_T = new_secret("tenant-acme")


class WebhookDeliveryTest(WebhookCase):
    """One kilnd with rotated secrets [A, B], a tenant secret, schedule
    [0, 0.5, 0.5], max_per_endpoint 1 and max_retry_after_s 3."""

    @classmethod
    def setUpClass(cls):
        cfg = {"webhooks": {
            "allow_private_networks": True, "jitter": 0,
            "schedule_s": [0, 0.5, 0.5], "timeout_s": 5,
            "connect_timeout_s": 1, "max_per_endpoint": 1,
            "max_retry_after_s": 3,
            "secret": [SECRET_A, SECRET_B],
            "tenant_secrets": {"acme": SECRET_T}}}
        cls.rcv = WebhookReceiver([SECRET_A, SECRET_B, SECRET_T],
                                  name="receiver-delivery")
        try:
            cls.srv = cls.start_class_server(config=cfg,
                                             name="kilnd-webhooks-delivery")
        except Exception:
            cls.rcv.close()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.rcv.close()

    def hooked(self, path, name=None, token=kilnlib.DEFAULT, rcv=None,
               **extra):
        """Creates a one-step workflow whose webhook_url is path on the
        receiver; returns its id."""
        rcv = rcv or self.rcv
        wf = self.srv.create(simple_workflow(
            name or path, webhook_url=rcv.url(path), **extra), token=token)
        return wf["id"]

    def test_schedule_exhausted_then_redelivered(self):
        srv, rcv = self.srv, self.rcv
        wf_id = self.hooked("/fail/99/exhaust")
        [d] = self.wait_deliveries(srv, wf_id, 1, statuses=("failed",),
                                   timeout=10)
        recs = rcv.records(job_id=wf_id)
        self.assertEqual([r["status"] for r in recs], [500, 500, 500])
        self.assert_clean(recs)
        self.assertEqual({r["id"] for r in recs}, {d["id"]})
        self.assert_gaps(recs, [0.5, 0.5], "exhausted")
        detail = self.get_delivery(srv, d["id"])
        self.assert_final(detail, "failed", 500, "HTTP 500")
        atts = self.assert_attempts(detail, [("failed", 500)] * 3)
        self.assertEqual([a["error"] for a in atts], ["HTTP 500"] * 3)
        self.assert_retry_at(atts[0], 0.5)
        self.assert_retry_at(atts[1], 0.5)
        self.assertIsNone(atts[2]["retry_at"])
        # it stays listed as failed
        lst = self.list_deliveries(srv, workflow_id=wf_id, status="failed")
        self.assertEqual([x["id"] for x in lst["deliveries"]], [d["id"]])
        self.assertEqual(lst["deliveries"][0]["last_error"], "HTTP 500")

        # redelivered: the whole schedule again (3 attempts), same id
        r = srv.request("POST", API + "/" + d["id"] + "/redeliver")
        self.assertStatus(r, 202)
        self.assertEqual(r.json["status"], "pending")
        self.assertIsNone(r.json["completed_at"])
        d = self.wait_delivery(srv, d["id"], lambda x: x["status"] ==
                               "failed" and x["attempt_count"] == 6,
                               timeout=10, what="failed after 6 attempts")
        self.assert_attempts(d, [("failed", 500)] * 6)
        self.assertIsNone(d["attempts"][5]["retry_at"])
        self.assert_retry_at(d["attempts"][3], 0.5)
        recs = rcv.records(job_id=wf_id)
        self.assertEqual(len(recs), 6)
        self.assertEqual({r["id"] for r in recs}, {d["id"]})
        self.assert_gaps(recs[3:], [0.5, 0.5], "redelivered")

    def test_gone_stops_at_once(self):
        srv, rcv = self.srv, self.rcv
        wf_id = self.hooked("/gone/410")
        [d] = self.wait_deliveries(srv, wf_id, 1, statuses=("failed",),
                                   timeout=10)
        detail = self.get_delivery(srv, d["id"])
        [a] = self.assert_attempts(detail, [("failed", 410)])
        self.assertTrue(a["error"].startswith("HTTP 410"), a["error"])
        self.assertIsNone(a["retry_at"])
        self.assertEqual(a["response_excerpt"], "gone")
        self.assert_final(detail, "failed", 410, a["error"])
        time.sleep(0.8)     # the next slot of the schedule was 0.5 s
        recs = rcv.records(job_id=wf_id)
        self.assertEqual([r["status"] for r in recs], [410])
        self.assert_clean(recs)
        self.assertEqual(self.get_delivery(srv, d["id"])["attempt_count"],
                         1)

    def test_retry_after(self):
        """503 with Retry-After: 2 while the schedule says 0.5: the next
        attempt 2 s later; Retry-After: 60 is capped by max_retry_after_s
        (3)."""
        srv, rcv = self.srv, self.rcv
        ids = {ra: self.hooked("/retry-after/%d/ra" % ra) for ra in (2, 60)}
        for ra, want in ((2, 2.0), (60, 3.0)):
            [d] = self.wait_deliveries(srv, ids[ra], 1, timeout=10)
            recs = rcv.records(job_id=ids[ra])
            self.assertEqual([r["status"] for r in recs], [503, 200])
            self.assert_clean(recs)
            self.assertEqual({r["id"] for r in recs}, {d["id"]})
            self.assert_gaps(recs, [want], "Retry-After: %d" % ra)
            detail = self.get_delivery(srv, d["id"])
            atts = self.assert_attempts(detail, [("failed", 503),
                                                 ("delivered", 200)])
            self.assertEqual(atts[0]["error"], "HTTP 503")
            self.assert_retry_at(atts[0], want)
            self.assert_final(detail, "delivered", 200, None)

    def test_redirect_not_followed(self):
        srv, rcv = self.srv, self.rcv
        other = WebhookReceiver([SECRET_A, SECRET_B], name="receiver-other")
        self.addCleanup(other.close)
        rcv.redirect_to = other.url("/ok/redirected")
        wf_id = self.hooked("/redirect/302")
        [d] = self.wait_deliveries(srv, wf_id, 1, statuses=("failed",),
                                   timeout=10)
        detail = self.get_delivery(srv, d["id"])
        atts = self.assert_attempts(detail, [("failed", 302)] * 3)
        for a in atts:
            self.assertEqual(a["error"], "HTTP 302: redirects are not "
                             "followed")
            self.assertEqual(a["response_excerpt"], "moved")
        self.assert_final(detail, "failed", 302,
                          "HTTP 302: redirects are not followed")
        self.assertEqual([r["status"] for r in rcv.records(job_id=wf_id)],
                         [302] * 3)
        self.assertEqual(other.records(), [])

    def test_big_answer(self):
        """A 2xx with a 1 MB body is delivered; the log keeps an
        excerpt."""
        srv, rcv = self.srv, self.rcv
        wf_id = self.hooked("/big/answer")
        [d] = self.wait_deliveries(srv, wf_id, 1, timeout=10)
        detail = self.get_delivery(srv, d["id"])
        [a] = self.assert_attempts(detail, [("delivered", 200)])
        self.assertIsInstance(a["response_excerpt"], str)
        self.assertTrue(a["response_excerpt"].startswith("x" * 100))
        self.assertLessEqual(len(a["response_excerpt"].encode()), 520)
        self.assert_final(detail, "delivered", 200, None)
        recs = rcv.records(job_id=wf_id)
        self.assertEqual([r["status"] for r in recs], [200])

    def test_other_statuses(self):
        """Any 2xx delivers; any other status but 410 (here a 400) is
        retried through the schedule."""
        srv, rcv = self.srv, self.rcv
        w204 = self.hooked("/status/204/other")
        w400 = self.hooked("/status/400/other")
        [d] = self.wait_deliveries(srv, w204, 1, timeout=10)
        self.assert_attempts(self.get_delivery(srv, d["id"]),
                             [("delivered", 204)])
        self.assertEqual([r["status"] for r in rcv.records(job_id=w204)],
                         [204])
        [d] = self.wait_deliveries(srv, w400, 1, statuses=("failed",),
                                   timeout=10)
        detail = self.get_delivery(srv, d["id"])
        atts = self.assert_attempts(detail, [("failed", 400)] * 3)
        self.assertEqual([a["error"] for a in atts], ["HTTP 400"] * 3)
        self.assert_final(detail, "failed", 400, "HTTP 400")
        self.assertEqual([r["status"] for r in rcv.records(job_id=w400)],
                         [400] * 3)

    def test_secret_rotation(self):
        """secret [A, B]: two signatures, A's then B's."""
        srv, rcv = self.srv, self.rcv
        wf_id = self.hooked("/ok/rotation")
        self.wait_deliveries(srv, wf_id, 1)
        [rec] = rcv.records(job_id=wf_id)
        self.assert_clean([rec])
        self.assertEqual(rec["sig_keys"], [0, 1])
        ts = rec["headers"]["webhook-timestamp"]
        self.assertEqual(rec["signatures"], [
            "v1," + sign(SECRET_A, rec["id"], ts, rec["raw"]),
            "v1," + sign(SECRET_B, rec["id"], ts, rec["raw"])])
        self.assertNotIn("v1," + sign(SECRET_T, rec["id"], ts, rec["raw"]),
                         rec["signatures"])

    def test_tenant_secret(self):
        """A tenant with its own secret gets only that signature; another
        tenant gets the default ones."""
        srv, rcv = self.srv, self.rcv
        acme = self.hooked("/ok/tenant", "acme", token=tenant_token("acme"))
        other = self.hooked("/ok/tenant", "other",
                            token=tenant_token("other"))
        [d] = self.wait_deliveries(srv, acme, 1)
        self.assertEqual(d["tenant_id"], "acme")
        self.wait_deliveries(srv, other, 1)
        [rec] = rcv.records(job_id=acme)
        self.assert_clean([rec])
        self.assertEqual(rec["sig_keys"], [2])
        self.assertEqual(rec["signatures"], ["v1," + sign(
            SECRET_T, rec["id"], rec["headers"]["webhook-timestamp"],
            rec["raw"])])
        self.assertEqual(rec["json"]["origin_tenant_id"], "acme")
        [rec] = rcv.records(job_id=other)
        self.assert_clean([rec])
        self.assertEqual(rec["sig_keys"], [0, 1])

    def test_per_endpoint_isolation(self):
        """max_per_endpoint 1: a slow receiver gets one request at a time,
        and another receiver's events do not wait behind its backlog; a
        delivery in flight cannot be redelivered (409)."""
        srv = self.srv
        slow_s = 1.2
        a = WebhookReceiver([SECRET_A, SECRET_B], name="receiver-A")
        b = WebhookReceiver([SECRET_A, SECRET_B], name="receiver-B")
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        wa = [self.hooked("/slow/%s/a%d" % (slow_s, i), rcv=a)
              for i in range(3)]
        first = a.wait_for(1, timeout=10)[0]
        wb = [self.hooked("/ok/b%d" % i, rcv=b) for i in range(3)]
        b_recs = b.wait_for(3, timeout=10)

        # the slow one's first attempt is in flight: no redelivery
        held = self.get_delivery(srv, first["id"])
        self.assertRegex(held["in_flight_since"] or "",
                         kilnlib.TIMESTAMP_RE, held)
        self.assertEqual(held["status"], "pending")
        r = srv.request("POST", API + "/" + first["id"] + "/redeliver")
        self.assertStatus(r, 409)
        self.assertIn("in flight", r.json["detail"])

        # B did not wait for A's backlog (3 x 1.2 s)
        self.assertLess(max(r["arrived"] for r in b_recs) - first["arrived"],
                        1.0, "receiver B waited behind receiver A")
        for wf_id in wb:
            self.wait_deliveries(srv, wf_id, 1, timeout=5)
        self.assert_clean(b.records())
        # A drains one at a time
        for wf_id in wa:
            self.wait_deliveries(srv, wf_id, 1, timeout=15)
        a_recs = a.records()
        self.assertEqual([r["status"] for r in a_recs], [200] * 3)
        self.assert_clean(a_recs)
        self.assertEqual(a.max_inflight, 1)
        for x, y in zip(a_recs, a_recs[1:]):
            self.assertGreaterEqual(y["arrived"], x["answered"])
        self.assertGreaterEqual(a_recs[-1]["arrived"] - a_recs[0]["arrived"],
                                2 * slow_s - EARLY_S)
        self.assertEqual(len({r["id"] for r in a_recs}), 3)
        self.assertLess(max(r["arrived"] for r in b_recs),
                        a_recs[1]["arrived"],
                        "A got a 2nd request before B got its 3")
        self.assertEqual(len(self.get_delivery(srv, first["id"])[
            "attempts"]), 1)


# ====================================================================== 3
class WebhookOwnKilndTest(WebhookCase):
    """A kilnd per test: config errors, private addresses, SIGKILL."""

    def base_cfg(self, **webhooks):
        w = {"allow_private_networks": True, "jitter": 0}
        w.update(webhooks)
        return {"webhooks": w}

    def test_config_errors(self):
        tmp = tempfile.mkdtemp(prefix="kiln-wh-cfg-")
        self.addCleanup(shutil.rmtree, tmp, True)
        data_dir = os.path.join(tmp, "data")
        cases = [
            ({"secret": "nope"}, "webhooks.secret"),
            ({"secret": "whsec_!!!"}, "webhooks.secret"),
            ({"secret": [new_secret(1), "nope"]}, "webhooks.secret[1]"),
            ({"secret": []}, "webhooks.secret"),
            ({"schedule_s": []}, "webhooks.schedule_s"),
            ({"schedule_s": [0, -1]}, "webhooks.schedule_s[1]"),
            ({"schedule_s": [0, "5"]}, "webhooks.schedule_s[1]"),
            ({"schedule_s": 5}, "webhooks.schedule_s"),
            ({"bogus": 1}, "webhooks.bogus"),
            ({"jitter": 1.5}, "webhooks.jitter"),
            ({"timeout_s": 0.05}, "webhooks.timeout_s"),
            ({"connect_timeout_s": 0}, "webhooks.connect_timeout_s"),
            ({"max_per_endpoint": 0}, "webhooks.max_per_endpoint"),
            ({"max_inflight": "many"}, "webhooks.max_inflight"),
            ({"max_retry_after_s": -1}, "webhooks.max_retry_after_s"),
            ({"max_response_bytes": 1.5}, "webhooks.max_response_bytes"),
            ({"allow_private_networks": "yes"},
             "webhooks.allow_private_networks"),
            ({"tenant_secrets": {"acme": "nope"}},
             "webhooks.tenant_secrets.acme"),
            ({"tenant_secrets": []}, "webhooks.tenant_secrets"),
        ]
        for i, (webhooks, needle) in enumerate(cases):
            with self.subTest(webhooks=webhooks):
                path = os.path.join(tmp, "cfg%d.json" % i)
                with open(path, "w") as f:
                    json.dump({"webhooks": webhooks}, f)
                p = run_kilnd(["--listen", "127.0.0.1:%d" % free_port(),
                               "--data-dir", data_dir, "--config", path])
                self.assertEqual(p.returncode, 2, "rc %d, stderr %r"
                                 % (p.returncode, p.stderr))
                self.assertIn(needle, p.stderr)
        self.assertFalse(os.path.exists(os.path.join(data_dir,
                                                     "webhook.secret")))

    def test_private_addresses_refused_at_create_and_patch(self):
        srv = self.start_server(config={"webhooks": {"jitter": 0}},
                                name="kilnd-webhooks-ssrf")
        private = ["http://127.0.0.1:9/x", "http://localhost:9/x",
                   "http://10.0.0.1/x", "http://[::1]:9/x",
                   "http://169.254.169.254/latest", "https://192.168.1.1/x",
                   "http://172.16.0.1/x", "http://0.0.0.0:9/x",
                   # other spellings of loopback, and other reserved nets
                   "http://[::ffff:127.0.0.1]:9/x", "http://127.1/x",
                   "http://2130706433/x", "http://LOCALHOST:9/x",
                   "http://[fc00::1]/x", "http://100.64.0.1/x"]
        for url in private + ["ftp://hooks.example.test/x"]:
            with self.subTest(create=url):
                r = srv.request("POST", "/api/v1/workflows?start=false",
                                simple_workflow("ssrf", webhook_url=url))
                self.assertValidation(r, [(["body", "webhook_url"],
                                           "value_error", "Value error, ...")])
        ok = srv.create(simple_workflow(
            "public", webhook_url="https://hooks.example.test/x"),
            start=False)
        self.assertEqual(ok["webhook_url"], "https://hooks.example.test/x")
        self.assertEqual(ok["status"], "PENDING")
        path = "/api/v1/workflows/" + ok["id"]
        for url in private:
            with self.subTest(patch=url):
                r = srv.request("PATCH", path, {"webhook_url": url})
                self.assertValidation(r, [(["body", "webhook_url"],
                                           "value_error", "Value error, ...")])
        self.assertEqual(srv.get_wf(ok["id"])["webhook_url"],
                         "https://hooks.example.test/x")
        r = srv.request("PATCH", path,
                        {"webhook_url": "https://hooks.example.test/y"})
        self.assertStatus(r, 200)
        self.assertEqual(r.json["webhook_url"], "https://hooks.example.test/y")
        self.assertEqual(self.list_deliveries(srv)["deliveries"], [])

    def test_private_address_refused_at_connect(self):
        """A delivery queued while private addresses were allowed is
        refused at connect time after a restart without the allowance:
        failed at once, never received."""
        rcv = WebhookReceiver(name="receiver-ssrf")
        self.addCleanup(rcv.close)
        rcv.stop()
        cfg = self.base_cfg(schedule_s=[0, 2, 0.5, 0.5], timeout_s=2,
                            connect_timeout_s=1)
        srv = self.start_server(config=cfg, name="kilnd-webhooks-connect")
        rcv.secrets = [read_secret(srv)]
        wf = srv.create(simple_workflow("connect",
                                        webhook_url=rcv.url("/ok/ssrf")))
        srv.wait_for_status(wf["id"], "COMPLETED")
        [d] = self.wait_deliveries(srv, wf["id"], 1, statuses=("pending",))
        self.wait_delivery(srv, d["id"], lambda x: x["attempt_count"] == 1
                           and x["in_flight_since"] is None, timeout=5,
                           what="a refused connection")
        srv.stop()
        cfg["webhooks"]["allow_private_networks"] = False
        srv.config = cfg
        srv.start()
        rcv.start()
        [d] = self.wait_deliveries(srv, wf["id"], 1, statuses=("failed",),
                                   timeout=10)
        detail = self.get_delivery(srv, d["id"])
        atts = self.assert_attempts(detail, [("failed", None)] * 2)
        self.assertIn("connect", atts[0]["error"].lower())
        self.assertTrue(atts[1]["error"].startswith(
            "refused to connect to 127.0.0.1"), atts[1]["error"])
        self.assertIsNone(atts[1]["retry_at"])
        self.assert_final(detail, "failed", None, detail["last_error"])
        self.assertTrue(detail["last_error"].startswith(
            "refused to connect to 127.0.0.1"), detail["last_error"])
        time.sleep(0.8)     # the schedule had another slot after 0.5 s
        self.assertEqual(rcv.records(), [])
        self.assertEqual(self.get_delivery(srv, d["id"])["attempt_count"], 2)

    def test_first_attempt_waits_schedule_0(self):
        """schedule_s[0] is the delay of the first attempt after the
        event."""
        rcv = WebhookReceiver(name="receiver-first")
        self.addCleanup(rcv.close)
        srv = self.start_server(config=self.base_cfg(schedule_s=[1, 0.5]),
                                name="kilnd-webhooks-first")
        rcv.secrets = [read_secret(srv)]
        wf = srv.create(simple_workflow(
            "first-delay", webhook_url=rcv.url("/fail/1/first")))
        srv.wait_for_status(wf["id"], "COMPLETED")
        [d] = self.wait_deliveries(srv, wf["id"], 1, timeout=10)
        recs = rcv.records()
        self.assertEqual([r["status"] for r in recs], [500, 200])
        self.assert_clean(recs)
        waited = recs[0]["arrived_wall"] - parse_ts(d["created_at"])
        self.assertGreaterEqual(waited, 1.0 - EARLY_S, "the first attempt "
                                "came %.3f s after the event, schedule_s[0]"
                                " is 1" % waited)
        self.assertLessEqual(waited, 1.0 + SLACK_S)
        self.assert_gaps(recs, [0.5], "schedule [1, 0.5]")
        detail = self.get_delivery(srv, d["id"])
        atts = self.assert_attempts(detail, [("failed", 500),
                                             ("delivered", 200)])
        self.assert_retry_at(atts[0], 0.5)

    def test_sigkill_while_deliveries_wait(self):
        """kill -9 while deliveries wait for their retry: after the restart
        each is sent at its scheduled time and delivered; nothing is
        marked delivered that the receiver did not answer 2xx."""
        rcv = WebhookReceiver(name="receiver-kill")
        self.addCleanup(rcv.close)
        rcv.stop()
        srv = self.start_server(config=self.base_cfg(
            schedule_s=[0, 2, 2, 2, 2], timeout_s=2, connect_timeout_s=1),
            name="kilnd-webhooks-kill")
        rcv.secrets = [read_secret(srv)]
        wfs = [srv.create(fashion_pipeline(
            webhook_url=rcv.url("/ok/kill%d" % i),
            suppress_subtask_events=False))["id"] for i in range(4)]
        wfs += [srv.create(simple_workflow(
            "kill-simple-%d" % i, webhook_url=rcv.url("/ok/kills%d" % i)))[
                "id"] for i in range(2)]
        for wf_id in wfs:
            srv.wait_for_status(wf_id, "COMPLETED")
        total = 4 * 3 + 2

        def all_tried():
            lst = self.list_deliveries(srv, limit=100)
            ds = lst["deliveries"]
            if len(ds) == total and all(d["attempt_count"] >= 1 and
                                        d["in_flight_since"] is None
                                        for d in ds):
                return ds
            return None
        before = wait_until(all_tried, timeout=10,
                            what="a refused attempt of every delivery")
        self.assertTrue(all(d["status"] == "pending" for d in before))
        due = {d["id"]: parse_ts(d["next_attempt_at"]) for d in before}
        self.assertEqual(srv.kill(), -9)
        rcv.start()
        srv.start()
        restarted = time.time()
        deadline = time.monotonic() + 15
        while True:
            ds = self.list_deliveries(srv, limit=100)["deliveries"]
            if all(d["status"] == "delivered" for d in ds):
                break
            self.assertFalse([d for d in ds if d["status"] == "failed"], ds)
            self.assertLess(time.monotonic(), deadline, ds)
            time.sleep(0.05)
        self.assertEqual({d["id"] for d in ds}, set(due))
        recs = rcv.records()
        self.assert_clean(recs)
        ok = rcv.answered_2xx()
        expected = set()
        for wf_id in wfs[:4]:
            expected |= {(wf_id, "step.completed", "generate"),
                         (wf_id, "step.completed", "refine"),
                         (wf_id, "workflow.completed", None)}
        expected |= {(wf_id, "workflow.completed", None)
                     for wf_id in wfs[4:]}
        got = {(r["json"]["job_id"], r["json"]["event"],
                (r["json"].get("step") or {}).get("step_id")
                if r["json"]["event"].startswith("step.") else None)
               for r in recs if r["status"] == 200}
        self.assertEqual(got, expected)
        for d in ds:
            detail = self.get_delivery(srv, d["id"])
            atts = detail["attempts"]
            self.assertEqual([a["attempt"] for a in atts],
                             list(range(1, len(atts) + 1)))
            self.assertEqual(atts[-1]["outcome"], "delivered")
            self.assertTrue(all(a["outcome"] == "failed"
                                for a in atts[:-1]), atts)
            delivered = sum(a["outcome"] == "delivered" for a in atts)
            self.assertLessEqual(delivered, ok.get(d["id"], 0),
                                 "%s marked delivered without a 2xx"
                                 % d["id"])
            interrupted = any((a["error"] or "").startswith("interrupted")
                              for a in atts)
            first = min(r["arrived_wall"] for r in recs
                        if r["id"] == d["id"])
            if not interrupted:
                self.assertGreaterEqual(
                    first, due[d["id"]] - EARLY_S,
                    "%s was sent before its retry was due" % d["id"])
            self.assertLessEqual(first, max(due[d["id"]], restarted)
                                 + SLACK_S)
        # the log and its attempts agree, nothing is left in flight
        self.assertEqual(db_rows(
            srv, "SELECT d.id FROM webhook_deliveries d WHERE"
            " d.in_flight_since IS NOT NULL OR d.attempt_count !="
            " (SELECT count(*) FROM webhook_attempts a"
            " WHERE a.delivery_id = d.id)"), [])

    def test_sigkill_while_attempt_in_flight(self):
        """kill -9 while the receiver holds an attempt: after the restart
        that attempt is recorded as interrupted and the delivery is sent
        again with the same webhook-id."""
        rcv = WebhookReceiver(name="receiver-inflight")
        self.addCleanup(rcv.close)
        srv = self.start_server(config=self.base_cfg(
            schedule_s=[0, 1], timeout_s=10, connect_timeout_s=1),
            name="kilnd-webhooks-inflight")
        rcv.secrets = [read_secret(srv)]
        wf = srv.create(simple_workflow(
            "in-flight", webhook_url=rcv.url("/slowfirst/4/inflight")))
        srv.wait_for_status(wf["id"], "COMPLETED")
        first = rcv.wait_for(1, timeout=10)[0]
        held = self.get_delivery(srv, first["id"])
        self.assertIsNotNone(held["in_flight_since"], held)
        self.assertEqual(srv.kill(), -9)
        wait_until(lambda: rcv.records()[0]["client_closed"], timeout=3,
                   what="the receiver to see kilnd gone")
        restarting = time.monotonic()
        srv.start()
        [d] = self.wait_deliveries(srv, wf["id"], 1, timeout=10)
        recs = rcv.records()
        self.assertEqual(len(recs), 2)
        self.assert_clean(recs)
        self.assertEqual([r["id"] for r in recs], [first["id"]] * 2)
        self.assertEqual(recs[0]["raw"], recs[1]["raw"])
        self.assertEqual([r["status"] for r in recs], [None, 200])
        detail = self.get_delivery(srv, d["id"])
        atts = self.assert_attempts(detail, [("failed", None),
                                             ("delivered", 200)])
        self.assertTrue(atts[0]["error"].startswith("interrupted"),
                        atts[0]["error"])
        self.assert_final(detail, "delivered", 200, None)
        self.assertEqual(rcv.answered_2xx(), {d["id"]: 1})
        # sent again at once, not after schedule_s[1] (1 s)
        self.assertLess(recs[1]["arrived"] - restarting, START_SLACK_S)
        self.assertEqual(db_rows(srv, "SELECT count(*) FROM webhook_attempts"
                                 " WHERE delivery_id = ?", (d["id"],)),
                         [(2,)])


if __name__ == "__main__":
    kilnlib.main()
