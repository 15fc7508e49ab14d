"""Runs of published templates: POST /api/v1/templates/{id}/run,
GET /api/v1/runs/{id} and POST /api/v1/runs/{id}/cancel.

A run is a workflow created from the template's latest version (runId is
the workflow id).  The run answer (RunPublic) has a lower-case status, the
template id and version, the resolved inputs, statusUrl / cancelUrl /
workflowUrl, the times, "outputs" once completed and "error" once failed or
cancelled.  ?wait=SECONDS (0..60) suspends the connection, not a thread,
until the run ends or the time is up.  Idempotency-Key makes a POST safe to
retry: the same key and request give the same run, per tenant.

Every class starts its own kilnd:

  RunCreateTest     what a run creates: the answer, the workflow and its
                    template fields, inputs reaching the provider
                    ($inputs mappings, {{inputs.NAME}}), agreement with the
                    preview, 422s (every bad input, nothing stored), 404,
                    archived templates (409), versions (PUT).  Default
                    webhook config: private webhook targets are refused.
  RunWaitTest       ?wait: validation, expiry (202 running), an end during
                    the wait (200), failures (200 failed + error.code),
                    GET ?wait, waiting holds no HTTP thread (more waiters
                    than http_threads), tenants and replays that wait,
                    waiters that hang up.
  RunCancelTest     cancel: the answer, the provider call aborted, waiters
                    woken, 409 when ended, 404/422 for unknown ids.
  RunRestartTest    a kilnd per test: SIGKILL keeps a run's inputs for its
                    steps; SIGTERM answers the waiting connections.
  IdempotencyTest   Idempotency-Key: replay, conflicts, syntax, tenants,
                    concurrency, retries after the template changed.
  RunAccessTest     tenants (scoping, 403, 404), 401 and 405.
  RunWebhookTest    the run's webhook_url (and the template's) receives
                    workflow.completed.

Local providers (fake_provider.FakeProvider, scripted_provider) and the
webhook receiver listen on 127.0.0.1.  Each class's server logs are checked
for sanitizer findings when it stops (KilnTestCase.tearDownClass).

Every 2xx run answer is checked by assert_run_view(); it is also validated
against components.schemas.RunPublic of openapi.yaml when (and only when)
that schema exists.
"""
import json
import os
import socket
import sys
import threading
import time
import uuid

import kilnlib
from kilnlib import (DEFAULT, NOBODY, TIMESTAMP_RE, UUID_RE, KilnTestCase,
                     assert_schema, assert_workflow_shape, steps_by_id,
                     tenant_token, wait_until)
from fake_provider import FakeProvider
from scripted_provider import Reply, ScriptedProvider
from webhook_receiver import WebhookReceiver

TP = "/api/v1/templates"
RN = "/api/v1/runs"
WF = "/api/v1/workflows"
NIL_UUID = "00000000-0000-4000-8000-000000000000"

RUN_STATUSES = ("pending", "running", "paused", "completed", "failed",
                "cancelled")
ENDED = ("completed", "failed", "cancelled")
RUN_FIELDS = ("runId", "status", "template_id", "template_version",
              "inputs", "created_at", "started_at", "completed_at",
              "statusUrl", "cancelUrl", "workflowUrl")
ERROR_FIELDS = {"code", "message", "step_id", "field"}

MISSING = "Field required"
EXTRA = "Extra inputs are not permitted"

# Generous bounds: waits are checked to be neither cut short nor far late.
EARLY_S = 0.1
LATE_S = 2.0
PROMPT_S = 1.0      # "answers promptly"


def new_marker(prefix="m"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


_RUN_SCHEMA = {}


def has_run_schema():
    """True when openapi.yaml defines components.schemas.RunPublic (says
    once on stderr when it does not: run answers are then checked by
    assert_run_view alone)."""
    if "has" not in _RUN_SCHEMA:
        doc = kilnlib.openapi_doc()
        schemas = ((doc or {}).get("components") or {}).get("schemas") or {}
        _RUN_SCHEMA["has"] = "RunPublic" in schemas
        if doc and not _RUN_SCHEMA["has"]:
            sys.stderr.write("note: openapi.yaml has no "
                             "components.schemas.RunPublic; run answers "
                             "are not schema-checked\n")
    return _RUN_SCHEMA["has"]


def field_of(loc):
    """The "field" of a 422 item: its loc after the first element as a
    path (["body", "inputs", "img", "url"] -> "inputs.img.url")."""
    out = ""
    for part in loc[1:]:
        if isinstance(part, int):
            out += "[%d]" % part
        else:
            out += ("." if out else "") + part
    return out


def http_thread(fn, *args, **kw):
    """Runs fn(*args, **kw) in a thread; returns (thread, box) where box
    gets "resp" (or "exc") and "elapsed"."""
    box = {}

    def go():
        t0 = time.monotonic()
        try:
            box["resp"] = fn(*args, **kw)
        except Exception as e:          # reported by the test
            box["exc"] = e
        box["elapsed"] = time.monotonic() - t0
        box["done_at"] = time.monotonic()
    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t, box


def joined(test, t, box, timeout=30.0):
    t.join(timeout)
    test.assertFalse(t.is_alive(), "request still running after %.0f s"
                     % timeout)
    if "exc" in box:
        raise box["exc"]
    return box["resp"], box["elapsed"]


class RunCase(KilnTestCase):
    """Helpers shared by the run tests.  Subclasses set cls.srv."""

    srv = None

    # ------------------------------------------------------------ checks
    def assert_run_view(self, view, status=None):
        """view is a well-formed run answer (and, when openapi.yaml has
        it, a RunPublic)."""
        self.assertIsInstance(view, dict, view)
        missing = [f for f in RUN_FIELDS if f not in view]
        self.assertFalse(missing, "run answer lacks %s: %s"
                         % (missing, json.dumps(view)))
        rid = view["runId"]
        self.assertRegex(rid, UUID_RE)
        self.assertIn(view["status"], RUN_STATUSES, view)
        if status is not None:
            self.assertEqual(view["status"], status, json.dumps(view))
        self.assertEqual(view["statusUrl"], "%s/%s" % (RN, rid))
        self.assertEqual(view["cancelUrl"], "%s/%s/cancel" % (RN, rid))
        self.assertEqual(view["workflowUrl"], "%s/%s" % (WF, rid))
        self.assertRegex(view["created_at"] or "", TIMESTAMP_RE)
        for f in ("started_at", "completed_at"):
            if view[f] is not None:
                self.assertRegex(view[f], TIMESTAMP_RE, f)
        ended = view["status"] in ENDED
        self.assertEqual(view["completed_at"] is not None, ended,
                         "completed_at vs status: %s" % json.dumps(view))
        if view["status"] == "completed":
            self.assertIsInstance(view.get("outputs"), list, view)
            for o in view["outputs"]:
                self.assertIsInstance(o.get("type"), str, o)
                self.assertIsInstance(o.get("url"), str, o)
        else:
            self.assertNotIn("outputs", view, "outputs before completion")
        if view["status"] in ("failed", "cancelled"):
            err = view.get("error")
            self.assertIsInstance(err, dict, view)
            self.assertEqual(set(err), ERROR_FIELDS, err)
            self.assertIsInstance(err["code"], str)
            self.assertTrue(err["code"], err)
            self.assertIsInstance(err["message"], (str, type(None)), err)
            if view["status"] == "cancelled":
                self.assertEqual(err["code"], "CANCELLED", err)
        else:
            self.assertNotIn("error", view, "error without a failure")
        if has_run_schema():
            assert_schema(view, "RunPublic")
        return view

    def assertInvalidInput(self, resp, expected, exact_count=None):
        """A 422 as assertValidation() checks it, whose every item also
        has error_code INVALID_INPUT and its field."""
        detail = self.assertValidation(resp, expected,
                                       exact_count=exact_count)
        for item in detail:
            self.assertEqual(item.get("error_code"), "INVALID_INPUT", item)
            self.assertEqual(item.get("field"), field_of(item["loc"]), item)
        return detail

    # ------------------------------------------------------------ HTTP
    def run_tpl(self, tid, body=NOBODY, query="", token=DEFAULT,
                headers=None, expect=None, path_suffix="", **kw):
        """POST /templates/{tid}/run.  A 2xx answer is checked: 202 while
        the run has not ended; 200 only for an ended run (ended within
        ?wait, or a replay)."""
        r = self.srv.request("POST", "%s/%s/run%s%s" % (TP, tid, path_suffix,
                                                       query),
                             body, token=token, headers=headers, **kw)
        if expect is not None:
            self.assertStatus(r, expect)
        if 200 <= r.status < 300:
            self.assert_run_view(r.json)
            if r.json["status"] not in ENDED:
                self.assertEqual(r.status, 202, "POST run answered %d for "
                                 "a run still %s" % (r.status,
                                                     r.json["status"]))
            else:
                self.assertIn(r.status, (200, 202), r)
        return r

    def get_run(self, rid, query="", token=DEFAULT, expect=200):
        r = self.srv.request("GET", "%s/%s%s" % (RN, rid, query),
                             token=token)
        if expect is not None:
            self.assertStatus(r, expect)
        if 200 <= r.status < 300:
            self.assert_run_view(r.json)
        return r

    def cancel(self, rid, token=DEFAULT, expect=200):
        r = self.srv.request("POST", "%s/%s/cancel" % (RN, rid), token=token)
        if expect is not None:
            self.assertStatus(r, expect)
        if 200 <= r.status < 300:
            self.assert_run_view(r.json)
        return r

    def wait_run(self, rid, status, token=DEFAULT, timeout=20.0):
        """Polls GET /runs/{rid} until its status is status."""
        deadline = time.monotonic() + timeout
        while True:
            view = self.get_run(rid, token=token).json
            if view["status"] == status:
                return view
            if view["status"] in ENDED or time.monotonic() > deadline:
                self.fail("run %s is %s, wanted %s: %s"
                          % (rid, view["status"], status, json.dumps(view)))
            time.sleep(0.05)

    def make_template(self, definition, token=DEFAULT):
        r = self.srv.request("POST", TP, definition, token=token)
        self.assertStatus(r, 201, "POST %s" % TP)
        return r.json["id"]

    def wf_total(self, token=DEFAULT):
        return self.srv.list_wf("?include_deleted=true&limit=1",
                                token=token)["total"]

    def tagged(self, task_type, name="tagged", token=DEFAULT, **extra):
        """A one-step template whose step sends {"marker": <tag input>}."""
        d = {"name": name,
             "inputs": {"tag": {"type": "string", "default": "untagged"}},
             "steps": [{"id": "gen", "task_type": task_type,
                        "config": {"marker": "{{inputs.tag}}"}}]}
        d.update(extra)
        return self.make_template(d, token=token)


def http_provider(fake, path, **kw):
    p = {"type": "http", "url": fake.url(path), "timeout_s": 5,
         "connect_timeout_s": 2}
    p.update(kw)
    return p


# ======================================================================
class RunCreateTest(RunCase):
    """One kilnd; a FakeProvider behind task types OK_T (/ok) and HOLD_T
    (/hold); the default webhook config (private targets refused)."""

    @classmethod
    def setUpClass(cls):
        cls.fake = FakeProvider()
        cfg = {"providers": {
                   "okp": http_provider(cls.fake, "/ok"),
                   "holdp": http_provider(cls.fake, "/hold", timeout_s=30)},
               "task_types": {"OK_T": "okp", "HOLD_T": "holdp"}}
        try:
            cls.srv = cls.start_class_server(config=cfg,
                                             name="kilnd-runs-create")
        except Exception:
            cls.fake.close()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.fake.close()

    def hold(self):
        self.fake.hold()
        self.addCleanup(self.fake.release)

    # ------------------------------------------------------------ create
    def test_run_answers_202_with_the_run_view(self):
        self.hold()
        m = new_marker()
        tid = self.make_template({
            "name": "hero " + m,
            "inputs": {"prompt": {"type": "string", "required": True},
                       "width": {"type": "integer", "default": 512},
                       "style": {"type": "enum", "values": ["a", "b"],
                                 "default": "b"},
                       "extra": {"type": "string"}},
            "steps": [{"id": "gen", "task_type": "HOLD_T",
                       "config": {"marker": m, "p": "{{inputs.prompt}}"}}]})
        before = self.wf_total()
        r = self.run_tpl(tid, {"inputs": {"prompt": "a red dress"},
                               "origin_reference": "order-" + m},
                         expect=202)
        v = r.json
        self.assertTrue((r.header("Content-Type") or "")
                        .startswith("application/json"), r.headers)
        self.assertIsNone(r.header("Idempotent-Replayed"))
        self.assertEqual(v["status"], "running")
        self.assertEqual(v["template_id"], tid)
        self.assertEqual(v["template_version"], 1)
        # defaults applied; an optional input without default is absent
        self.assertEqual(v["inputs"], {"prompt": "a red dress", "width": 512,
                                       "style": "b"})
        self.assertEqual(v["origin_reference"], "order-" + m)
        self.assertIsNotNone(v["started_at"])
        self.assertEqual(self.wf_total(), before + 1)
        self.fake.wait_for(1, marker=m)

        # the URLs of the answer work
        self.assertEqual(self.srv.request("GET", v["statusUrl"]).json,
                         self.get_run(v["runId"]).json)
        wf = self.srv.request("GET", v["workflowUrl"])
        self.assertStatus(wf, 200)
        self.assertEqual(wf.json["id"], v["runId"])
        c = self.srv.request("POST", v["cancelUrl"])
        self.assertStatus(c, 200)
        self.assert_run_view(c.json, "cancelled")

    def test_workflow_carries_the_template_fields(self):
        m = new_marker()
        definition = {
            "name": "wf fields " + m,
            "description": "made from a template",
            "inputs": {"prompt": {"type": "string", "default": "shoe"},
                       "n": {"type": "integer", "default": 2}},
            "config": {"campaign": "{{inputs.prompt}}-{{inputs.n}}"},
            "suppress_subtask_events": False,
            "steps": [
                {"id": "gen", "task_type": "GENERATION",
                 "config": {"prompt": "a {{inputs.prompt}}",
                            "n": "{{inputs.n}}"}},
                {"id": "up", "task_type": "UPSCALE", "depends_on": ["gen"],
                 "input_mappings": [
                     {"from_step": "gen", "from_field": "result_image_path",
                      "to_field": "image_url"}]}]}
        tid = self.make_template(definition)
        r = self.run_tpl(tid, {"inputs": {"n": 3}}, query="?wait=10",
                         expect=200)
        v = self.assert_run_view(r.json, "completed")
        wf = self.srv.get_wf(v["runId"])
        assert_workflow_shape(wf)
        self.assertEqual(wf["id"], v["runId"])
        self.assertEqual(wf["status"], "COMPLETED")
        self.assertEqual(wf["template_id"], tid)
        self.assertEqual(wf["template_version"], 1)
        self.assertEqual(wf["inputs"], {"prompt": "shoe", "n": 3})
        self.assertIsNone(wf["batch_id"])
        self.assertEqual(wf["name"], definition["name"])
        self.assertEqual(wf["description"], "made from a template")
        self.assertIs(wf["suppress_subtask_events"], False)
        self.assertEqual(wf["config"], {"campaign": "shoe-3"})
        self.assertIsInstance(wf["origin_instance"], str)
        self.assertTrue(wf["origin_instance"])
        self.assertIsNone(wf["origin_tenant_id"])
        self.assertIsNone(wf["webhook_url"])
        st = steps_by_id(wf)
        self.assertEqual(list(st), ["gen", "up"])
        self.assertEqual(st["gen"]["config"], {"prompt": "a shoe", "n": 3})
        self.assertEqual(st["up"]["dependencies"], ["gen"])
        self.assertEqual(wf["final_step_id"], "up")
        self.assertEqual(v["inputs"], wf["inputs"])
        self.assertEqual(v["created_at"], wf["created_at"])
        self.assertEqual(v["completed_at"], wf["completed_at"])

        # the list shows the new fields too
        items = [w for w in self.srv.list_wf("?limit=100")["workflows"]
                 if w["id"] == v["runId"]]
        self.assertEqual(len(items), 1)
        for f in ("template_id", "template_version", "inputs", "batch_id"):
            self.assertEqual(items[0][f], wf[f], f)

        # a workflow created directly has none of them
        plain = self.srv.get_wf(self.srv.create(kilnlib.simple_workflow())
                                ["id"])
        for f in ("template_id", "template_version", "inputs", "batch_id"):
            self.assertIn(f, plain)
            self.assertIsNone(plain[f], f)

    def test_outputs_are_what_the_final_step_made(self):
        """On dryrun (the default provider) a step's result is its request
        plus result_image_path, the file it "made".  The final step of
        generate -> upscale is given gen's image as image_url: that is its
        input, and the run's output is up's result_image_path."""
        tid = self.make_template({
            "name": "outputs",
            "steps": [
                {"id": "gen", "task_type": "GENERATION",
                 "config": {"prompt": "p"}},
                {"id": "up", "task_type": "UPSCALE", "depends_on": ["gen"],
                 "input_mappings": [
                     {"from_step": "gen", "from_field": "result_image_path",
                      "to_field": "image_url"}]}]})
        v = self.run_tpl(tid, {}, query="?wait=10", expect=200).json
        self.assertEqual(v["status"], "completed")
        st = steps_by_id(self.srv.get_wf(v["runId"]))
        made = st["up"]["result"]["result_image_path"]
        given = st["gen"]["result"]["result_image_path"]
        self.assertEqual(st["up"]["result"]["image_url"], given)
        urls = [o["url"] for o in v["outputs"]]
        self.assertIn(made, urls, "the run's outputs miss the final step's "
                      "result: %s" % json.dumps(v["outputs"]))
        self.assertNotIn(given, urls, "the final step's input is listed as "
                         "an output")

    def test_empty_body_and_run_fields(self):
        m = new_marker()
        tid = self.make_template({
            "name": "defaults " + m,
            "inputs": {"p": {"type": "string", "default": "dflt"}},
            "steps": [{"id": "a", "task_type": "GENERATION",
                       "config": {"prompt": "{{inputs.p}}"}}]})
        # no body at all, and {}, run with the defaults
        for label, kw in (("no body", {}), ("{}", {"body": {}}),
                          ("{inputs: {}}", {"body": {"inputs": {}}})):
            with self.subTest(body=label):
                r = self.run_tpl(tid, **kw)
                self.assertIn(r.status, (200, 202))
                self.assertEqual(r.json["inputs"], {"p": "dflt"})
                wf = self.srv.get_wf(r.json["runId"])
                self.assertEqual(wf["name"], "defaults " + m)
                self.assertIsNone(wf["origin_reference"])
                self.assertIsNone(wf["origin_zone"])
        # the run's own fields reach its workflow
        r = self.run_tpl(tid, {"name": "custom " + m,
                               "origin_reference": "ref-" + m,
                               "origin_instance": "inst-" + m,
                               "origin_zone": "zone-1",
                               "origin_tenant_id": "tenant-x"})
        self.assertIn(r.status, (200, 202))
        self.assertEqual(r.json["origin_reference"], "ref-" + m)
        wf = self.srv.get_wf(r.json["runId"])
        self.assertEqual(
            {k: wf[k] for k in ("name", "origin_reference",
                                "origin_instance", "origin_zone",
                                "origin_tenant_id")},
            {"name": "custom " + m, "origin_reference": "ref-" + m,
             "origin_instance": "inst-" + m, "origin_zone": "zone-1",
             "origin_tenant_id": "tenant-x"})

    # ------------------------------------------------------------ inputs
    def inputs_template(self, m):
        return {
            "name": "inputs " + m,
            "inputs": {
                "prompt": {"type": "string", "required": True},
                "width": {"type": "integer", "default": 640},
                "ratio": {"type": "number", "default": 1.5},
                "hd": {"type": "boolean", "default": False},
                "quality": {"type": "enum", "values": ["low", "high"],
                            "default": "high"},
                "img": {"type": "asset"},
            },
            "steps": [
                {"id": "gen", "task_type": "OK_T",
                 "config": {"marker": m + "-gen",
                            "text": "{{inputs.prompt}} at {{ inputs.width }}"
                                    "px hd={{inputs.hd}}",
                            "width": "{{inputs.width}}",
                            "ratio": "{{inputs.ratio}}",
                            "nested": {"list": ["{{inputs.quality}}", 1]}},
                 "provider_config": {"provider_type": "okp",
                                     "q": "{{inputs.quality}}"},
                 "input_mappings": [
                     {"from_step": "$inputs", "from_field": "prompt",
                      "to_field": "prompt"},
                     {"from_step": "$inputs", "from_field": "/img/url",
                      "to_field": "image_url"}]},
                {"id": "up", "task_type": "OK_T", "depends_on": ["gen"],
                 "config": {"marker": m + "-up"},
                 "input_mappings": [
                     {"from_step": "gen", "from_field": "result_image_path",
                      "to_field": "base_image_url"},
                     {"from_step": "$inputs", "from_field": "width",
                      "to_field": "target_width"},
                     {"from_step": "$inputs", "from_field": "prompt",
                      "to_field": "/meta/title"}]},
            ]}

    def test_inputs_reach_the_provider(self):
        """$inputs mappings (a key and a JSON Pointer into an asset) and
        {{inputs.NAME}} placeholders (whole value keeps the JSON type,
        inside text becomes text, in provider_config too); an input's own
        text is never expanded again."""
        m = new_marker()
        tid = self.make_template(self.inputs_template(m))
        prompt = "a red {{inputs.width}} dress"
        inputs = {"prompt": prompt, "hd": True,
                  "img": {"url": "https://assets.example.test/p.png",
                          "alt": "product"}}
        r = self.run_tpl(tid, {"inputs": inputs}, query="?wait=10",
                         expect=200)
        v = self.assert_run_view(r.json, "completed")
        self.assertEqual(v["inputs"], dict(inputs, width=640, ratio=1.5,
                                           quality="high"))
        [gen] = self.fake.records(marker=m + "-gen")
        [up] = self.fake.records(marker=m + "-up")
        self.assertEqual(gen["path"], "/ok")
        self.assertEqual(gen["body"], {
            "marker": m + "-gen",
            "text": prompt + " at 640px hd=true",
            "width": 640, "ratio": 1.5,
            "nested": {"list": ["high", 1]},
            "q": "high",
            "prompt": prompt,
            "image_url": "https://assets.example.test/p.png"})
        wf = self.srv.get_wf(v["runId"])
        gen_result = steps_by_id(wf)["gen"]["result"]["result_image_path"]
        self.assertEqual(up["body"], {
            "marker": m + "-up", "base_image_url": gen_result,
            "target_width": 640, "meta": {"title": prompt}})

    def test_provider_gets_what_the_preview_shows(self):
        m = new_marker()
        tid = self.make_template(self.inputs_template(m))
        inputs = {"prompt": "blue", "width": 300, "quality": "low",
                  "img": {"url": "https://assets.example.test/q.png"}}
        pv = self.srv.request("POST", "%s/%s/preview" % (TP, tid),
                              {"inputs": inputs})
        self.assertStatus(pv, 200)
        requests = {s["step_id"]: s["request"] for s in pv.json["steps"]}
        r = self.run_tpl(tid, {"inputs": inputs}, query="?wait=10",
                         expect=200)
        self.assertEqual(r.json["inputs"], pv.json["inputs"])
        [gen] = self.fake.records(marker=m + "-gen")
        [up] = self.fake.records(marker=m + "-up")
        self.assertEqual(gen["body"], requests["gen"])
        # "up" also gets what its pending mapping reads from "gen"
        self.assertEqual({k: v for k, v in up["body"].items()
                          if k != "base_image_url"}, requests["up"])

    # ------------------------------------------------------------ 422
    ALL_TYPES = {
        "s": {"type": "string"},
        "i": {"type": "integer"},
        "n": {"type": "number"},
        "b": {"type": "boolean"},
        "u": {"type": "url"},
        "e": {"type": "enum", "values": ["x", "y"]},
        "a": {"type": "asset"},
        "r": {"type": "string", "required": True},
    }
    IN = ["body", "inputs"]
    # (label, inputs, [(loc, type[, msg])], exact count)
    BAD_INPUTS = [
        ("a wrong type for every input",
         {"s": 1, "i": "1", "n": "1.5", "b": "true", "u": 5, "e": "z",
          "a": 7, "r": 3},
         [(IN + ["s"], "string_type", "Input should be a valid string"),
          (IN + ["i"], "int_type", "Input should be a valid integer"),
          (IN + ["n"], "float_type", "Input should be a valid number"),
          (IN + ["b"], "bool_type", "Input should be a valid boolean"),
          (IN + ["u"], "url_type"),
          (IN + ["e"], "enum", "Input should be 'x' or 'y'"),
          (IN + ["a"], "url_type"),
          (IN + ["r"], "string_type")], 8),
        ("a required input missing", {}, [(IN + ["r"], "missing", MISSING)],
         1),
        ("unknown inputs", {"r": "x", "zz": 1, "yy": None},
         [(IN + ["zz"], "extra_forbidden", EXTRA),
          (IN + ["yy"], "extra_forbidden", EXTRA)], 2),
        ("a url with a bad scheme",
         {"r": "x", "u": "ftp://files.example.test/a"},
         [(IN + ["u"], "url_scheme")], 1),
        ("a url without //", {"r": "x", "u": "http:/h"},
         [(IN + ["u"], "url_parsing")], 1),
        ("an asset object without url", {"r": "x", "a": {"alt": "y"}},
         [(IN + ["a", "url"], "missing", MISSING)], 1),
        ("an asset with a bad url", {"r": "x", "a": {"url": "nope"}},
         [(IN + ["a", "url"], ("url_parsing", "url_scheme"))], 1),
        ("an integer given as a real", {"r": "x", "i": 1.0},
         [(IN + ["i"], "int_type")], 1),
        ("a number given as a boolean", {"r": "x", "n": True},
         [(IN + ["n"], "float_type")], 1),
        ("null for a string", {"r": None}, [(IN + ["r"], "string_type")], 1),
        ("missing, unknown and enum at once", {"e": "X", "q": 1},
         [(IN + ["r"], "missing"), (IN + ["e"], "enum"),
          (IN + ["q"], "extra_forbidden")], 3),
    ]

    def test_bad_inputs_are_all_reported_and_nothing_is_stored(self):
        tid = self.make_template({
            "name": "all types", "inputs": self.ALL_TYPES,
            "steps": [{"id": "a", "task_type": "OK_T",
                       "config": {"marker": "never-sent"}}]})
        before = self.wf_total()
        for label, inputs, expected, count in self.BAD_INPUTS:
            with self.subTest(case=label):
                self.assertInvalidInput(
                    self.run_tpl(tid, {"inputs": inputs}), expected,
                    exact_count=count)
        for label, inputs in (("a list", [1]), ("a string", "x"),
                              ("null", None)):
            with self.subTest(inputs=label):
                self.assertInvalidInput(
                    self.run_tpl(tid, {"inputs": inputs}),
                    [(self.IN, "dict_type")], exact_count=1)
        self.assertEqual(self.wf_total(), before, "a refused run was stored")
        self.assertEqual(self.fake.records(marker="never-sent"), [])
        # and good values pass
        good = {"s": "t", "i": -3, "n": 2, "b": False,
                "u": "s3://bucket/key", "e": "y",
                "a": "https://assets.example.test/a.png", "r": ""}
        r = self.run_tpl(tid, {"inputs": good})
        self.assertIn(r.status, (200, 202))
        self.assertEqual(r.json["inputs"], good)

    def test_bad_bodies_are_refused(self):
        tid = self.tagged("OK_T", name="bodies")
        before = self.wf_total()
        B = ["body"]
        cases = [
            ("unknown key", {"zzz": 1, "inputs": {}},
             [(B + ["zzz"], "extra_forbidden", EXTRA)], 1),
            ("template field", {"steps": []},
             [(B + ["steps"], "extra_forbidden")], 1),
            ("empty name", {"name": ""}, [(B + ["name"],
                                           "string_too_short")], 1),
            ("name not a string", {"name": 5}, [(B + ["name"],
                                                 "string_type")], 1),
            ("name of 256", {"name": "n" * 256},
             [(B + ["name"], "string_too_long")], 1),
            ("origin_reference of 513", {"origin_reference": "r" * 513},
             [(B + ["origin_reference"], "string_too_long")], 1),
            ("empty origin_instance", {"origin_instance": ""},
             [(B + ["origin_instance"], "string_too_short")], 1),
            ("webhook_url to 127.0.0.1",
             {"webhook_url": "http://127.0.0.1:9/hook"},
             [(B + ["webhook_url"], "value_error")], 1),
            ("webhook_url to 10.1.2.3",
             {"webhook_url": "https://10.1.2.3/hook"},
             [(B + ["webhook_url"], "value_error")], 1),
            ("webhook_url ftp", {"webhook_url": "ftp://127.0.0.1/x"},
             [(B + ["webhook_url"], "value_error")], 1),
            ("body is a list", [1, 2], [(B, "model_attributes_type")], 1),
        ]
        for label, body, expected, count in cases:
            with self.subTest(case=label):
                self.assertInvalidInput(self.run_tpl(tid, body), expected,
                                        exact_count=count)
        with self.subTest(case="not JSON"):
            detail = self.assertValidation(self.run_tpl(tid, raw=b"{bad"),
                                           [])
            self.assertEqual(detail[0]["type"], "json_invalid")
        self.assertEqual(self.wf_total(), before)

    def test_placeholder_of_an_absent_optional_input_is_refused(self):
        """An optional input without a default that a step's config uses
        must be given: the 422 names the placeholder."""
        m = new_marker()
        tid = self.make_template({
            "name": "optional " + m,
            "inputs": {"opt": {"type": "string"}},
            "steps": [{"id": "a", "task_type": "OK_T",
                       "config": {"marker": m, "text": "x {{inputs.opt}}"}}]})
        before = self.wf_total()
        detail = self.assertInvalidInput(self.run_tpl(tid, {"inputs": {}}),
                                         [(self.IN, "value_error")],
                                         exact_count=1)
        self.assertIn("{{inputs.opt}}", detail[0]["msg"])
        self.assertEqual(self.wf_total(), before)
        r = self.run_tpl(tid, {"inputs": {"opt": "given"}}, "?wait=10",
                         expect=200)
        self.assertEqual(r.json["status"], "completed")
        [rec] = self.fake.records(marker=m)
        self.assertEqual(rec["body"]["text"], "x given")

    def test_inputs_the_preview_refuses_are_refused(self):
        """A "$inputs" mapping that the given inputs cannot satisfy (the
        documented pointer /img/url, with the optional asset left out, or
        given as a plain URL string, which an asset may be): the preview
        answers 422, and a run with the same inputs must be refused too,
        before anything is stored, not created to fail at once."""
        m = new_marker()
        tid = self.make_template({
            "name": "unresolvable " + m,
            "inputs": {"img": {"type": "asset"}},
            "steps": [{"id": "a", "task_type": "OK_T",
                       "config": {"marker": m},
                       "input_mappings": [
                           {"from_step": "$inputs", "from_field": "/img/url",
                            "to_field": "image_url"}]}]})
        for label, inputs in (("img left out", {}),
                              ("img as a URL string",
                               {"img": "https://assets.example.test/i.png"})):
            with self.subTest(inputs=label):
                pv = self.srv.request("POST", "%s/%s/preview" % (TP, tid),
                                      {"inputs": inputs})
                self.assertStatus(pv, 422, "preview")
                before = self.wf_total()
                self.assertInvalidInput(self.run_tpl(tid, {"inputs": inputs}),
                                        [])
                self.assertEqual(self.wf_total(), before, "the run was "
                                 "stored")
        self.assertEqual(self.fake.records(marker=m), [])

    # ------------------------------------------------------------ template
    def test_unknown_template_and_bad_id(self):
        before = self.wf_total()
        r = self.run_tpl(NIL_UUID, {})
        self.assertDetail(r, 404, "Template %s not found" % NIL_UUID)
        assert_schema(r.json, "ErrorDetail")
        self.assertValidation(self.run_tpl("not-a-uuid", {}),
                              [(["path", "template_id"], ("uuid_parsing",
                                                          "value_error"))])
        self.assertEqual(self.wf_total(), before)

    def test_archived_template_cannot_run(self):
        self.hold()
        m = new_marker()
        tid = self.tagged("HOLD_T", name="archived " + m)
        started = self.run_tpl(tid, {"inputs": {"tag": m}}, expect=202).json
        self.fake.wait_for(1, marker=m)
        self.assertStatus(self.srv.request("DELETE", "%s/%s" % (TP, tid)),
                          200)
        before = self.wf_total()
        r = self.run_tpl(tid, {"inputs": {"tag": m + "-late"}})
        self.assertStatus(r, 409)
        self.assertIn("archived", r.json["detail"])
        assert_schema(r.json, "ErrorDetail")
        self.assertEqual(self.wf_total(), before)
        # work under way is untouched
        self.fake.release()
        done = self.get_run(started["runId"], "?wait=10").json
        self.assertEqual(done["status"], "completed")
        self.assertEqual(self.fake.records(marker=m + "-late"), [])

    def test_new_version_leaves_runs_under_way_alone(self):
        """A run started on version 1 keeps version 1's steps (its second
        step runs after PUT published version 2); new runs use v2."""
        self.hold()
        m = new_marker()
        v1 = {"name": "versions " + m,
              "inputs": {"p": {"type": "string", "default": "one"}},
              "steps": [
                  {"id": "a", "task_type": "HOLD_T",
                   "config": {"marker": m + "-v1-a", "p": "{{inputs.p}}"}},
                  {"id": "b", "task_type": "OK_T", "depends_on": ["a"],
                   "config": {"marker": m + "-v1-b", "p": "{{inputs.p}}"}}]}
        v2 = {"name": "versions 2 " + m,
              "inputs": {"q": {"type": "integer", "default": 2}},
              "steps": [{"id": "c", "task_type": "OK_T",
                         "config": {"marker": m + "-v2-c",
                                    "q": "{{inputs.q}}"}}]}
        tid = self.make_template(v1)
        old = self.run_tpl(tid, {}, expect=202).json
        self.fake.wait_for(1, marker=m + "-v1-a")
        put = self.srv.request("PUT", "%s/%s" % (TP, tid), v2)
        self.assertStatus(put, 200)
        self.assertEqual(put.json["version"], 2)

        new = self.run_tpl(tid, {}, query="?wait=10", expect=200).json
        self.assertEqual(new["template_version"], 2)
        self.assertEqual(new["inputs"], {"q": 2})
        nwf = self.srv.get_wf(new["runId"])
        self.assertEqual([s["step_id"] for s in nwf["steps"]], ["c"])
        self.assertEqual(nwf["name"], v2["name"])
        self.assertEqual(len(self.fake.records(marker=m + "-v2-c")), 1)
        # version 1 inputs are refused now
        self.assertInvalidInput(self.run_tpl(tid, {"inputs": {"p": "x"}}),
                                [(["body", "inputs", "p"],
                                  "extra_forbidden")])

        self.fake.release()
        done = self.get_run(old["runId"], "?wait=10").json
        self.assertEqual(done["status"], "completed")
        self.assertEqual(done["template_version"], 1)
        self.assertEqual(done["inputs"], {"p": "one"})
        owf = self.srv.get_wf(old["runId"])
        self.assertEqual(owf["template_version"], 1)
        self.assertEqual(owf["name"], v1["name"])
        self.assertEqual([s["step_id"] for s in owf["steps"]], ["a", "b"])
        [b] = self.fake.records(marker=m + "-v1-b")
        self.assertEqual(b["body"], {"marker": m + "-v1-b", "p": "one"})


# ======================================================================
class RunWaitTest(RunCase):
    """?wait.  One kilnd with http_threads 4 (the default, stated) and a
    FakeProvider: OK_T answers at once, HOLD_T holds until release(),
    FAIL_T answers 500 (max_retries 0), REJ_T answers 404."""

    HTTP_THREADS = 4

    @classmethod
    def setUpClass(cls):
        cls.fake = FakeProvider()
        f = cls.fake
        cfg = {"http_threads": cls.HTTP_THREADS,
               "providers": {
                   "okp": http_provider(f, "/ok"),
                   "holdp": http_provider(f, "/hold", timeout_s=30),
                   "failp": http_provider(f, "/fail500", max_retries=0),
                   "rejp": http_provider(f, "/reject", max_retries=0)},
               "task_types": {"OK_T": "okp", "HOLD_T": "holdp",
                              "FAIL_T": "failp", "REJ_T": "rejp"}}
        try:
            cls.srv = cls.start_class_server(config=cfg,
                                             name="kilnd-runs-wait")
            # the templates are shared by the tests; markers tell runs
            # apart
            cls.t_ok = cls._template("OK_T")
            cls.t_hold = cls._template("HOLD_T")
            cls.t_fail = cls._template("FAIL_T")
            cls.t_rej = cls._template("REJ_T")
        except Exception:
            cls.fake.close()
            raise

    @classmethod
    def _template(cls, task_type):
        r = cls.srv.request("POST", TP, {
            "name": "wait " + task_type,
            "inputs": {"tag": {"type": "string", "default": "untagged"}},
            "steps": [{"id": "gen", "task_type": task_type,
                       "config": {"marker": "{{inputs.tag}}"}}]})
        if r.status != 201:
            raise AssertionError("template: %r" % r)
        return r.json["id"]

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.fake.close()

    def setUp(self):
        super().setUp()
        self.fake.hold()
        self.addCleanup(self.fake.release)

    def release_after(self, seconds):
        t = threading.Timer(seconds, self.fake.release)
        t.start()
        self.addCleanup(t.cancel)
        return t

    def assertAbout(self, elapsed, seconds, what):
        self.assertGreaterEqual(elapsed, seconds - EARLY_S,
                                "%s answered after %.2f s, before the %s s "
                                "wait" % (what, elapsed, seconds))
        self.assertLess(elapsed, seconds + LATE_S,
                        "%s answered after %.2f s (wait %s s)"
                        % (what, elapsed, seconds))

    # ------------------------------------------------------------ syntax
    def test_wait_must_be_0_to_60(self):
        before = self.wf_total()
        cases = (("61", "less_than_equal"), ("-1", "greater_than_equal"),
                 ("x", "int_parsing"), ("", "int_parsing"),
                 ("1.5", "int_parsing"), ("3600", "less_than_equal"))
        for q, typ in cases:
            with self.subTest(route="POST", wait=q):
                r = self.run_tpl(self.t_ok, {}, query="?wait=" + q)
                self.assertValidation(r, [(["query", "wait"], typ)],
                                      exact_count=1)
        self.assertEqual(self.wf_total(), before, "a refused run was stored")
        rid = self.run_tpl(self.t_ok, {"inputs": {"tag": new_marker()}}
                           ).json["runId"]
        for q, typ in cases:
            with self.subTest(route="GET", wait=q):
                r = self.get_run(rid, "?wait=" + q, expect=None)
                self.assertValidation(r, [(["query", "wait"], typ)],
                                      exact_count=1)
        # bounds are fine
        self.assertEqual(self.get_run(rid, "?wait=60").json["status"],
                         "completed")

    def test_fresh_run_without_wait_answers_202(self):
        """Without ?wait, a new run answers 202 even when it has already
        ended by the time the answer is made (200 is for a run that ended
        within ?wait, or a replay).  dryrun ends at once, so many POSTs
        give the race every chance."""
        tid = self.make_template({
            "name": "instant", "steps": [{"id": "a",
                                          "task_type": "GENERATION"}]})
        seen = {}
        for query in ("",) * 150 + ("?wait=0",) * 50:
            r = self.run_tpl(tid, {}, query=query)
            seen.setdefault((r.status, r.json["status"]), r.json["runId"])
        self.assertEqual([k for k in seen if k[0] != 202], [],
                         "fresh runs without ?wait answered: %s" % seen)

    def test_wait_zero_answers_at_once(self):
        m = new_marker()
        t0 = time.monotonic()
        r = self.run_tpl(self.t_hold, {"inputs": {"tag": m}}, "?wait=0",
                         expect=202)
        self.assertLess(time.monotonic() - t0, PROMPT_S)
        self.assertEqual(r.json["status"], "running")
        t0 = time.monotonic()
        self.assertEqual(self.get_run(r.json["runId"], "?wait=0")
                         .json["status"], "running")
        self.assertLess(time.monotonic() - t0, PROMPT_S)

    # ------------------------------------------------------------ ends
    def test_fast_run_answers_200_completed_with_outputs(self):
        m = new_marker()
        t0 = time.monotonic()
        r = self.run_tpl(self.t_ok, {"inputs": {"tag": m}}, "?wait=10",
                         expect=200)
        self.assertLess(time.monotonic() - t0, 5)
        v = self.assert_run_view(r.json, "completed")
        wf = self.srv.get_wf(v["runId"])
        url = wf["final_step_result"]["result_image_path"]
        self.assertTrue(url.startswith("https://cdn.example.test/"), url)
        self.assertEqual(v["outputs"], [{"type": "image", "url": url,
                                         "format": "png"}])
        [rec] = self.fake.records(marker=m)
        self.assertEqual(rec["path"], "/ok")
        # GET ?wait on an ended run answers at once, the same view
        t0 = time.monotonic()
        g = self.get_run(v["runId"], "?wait=30").json
        self.assertLess(time.monotonic() - t0, PROMPT_S)
        self.assertEqual(g, v)

    def test_wait_ends_with_202_running_while_held(self):
        m = new_marker()
        t0 = time.monotonic()
        r = self.run_tpl(self.t_hold, {"inputs": {"tag": m}}, "?wait=1",
                         expect=202)
        self.assertAbout(time.monotonic() - t0, 1, "POST ?wait=1")
        v = self.assert_run_view(r.json, "running")
        self.assertEqual(len(self.fake.records(marker=m)), 1)
        t0 = time.monotonic()
        g = self.get_run(v["runId"], "?wait=1")
        self.assertAbout(time.monotonic() - t0, 1, "GET ?wait=1")
        self.assertEqual(g.json["status"], "running")

    def test_end_during_the_wait_answers_200_at_once(self):
        m = new_marker()
        self.release_after(1.0)
        t0 = time.monotonic()
        r = self.run_tpl(self.t_hold, {"inputs": {"tag": m}}, "?wait=5",
                         expect=200)
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(elapsed, 1.0 - EARLY_S)
        self.assertLess(elapsed, 4.0, "the end did not wake the waiter")
        self.assert_run_view(r.json, "completed")
        self.assertEqual(len(r.json["outputs"]), 1)

        # the same through GET ?wait
        self.fake.hold()
        m2 = new_marker()
        rid = self.run_tpl(self.t_hold, {"inputs": {"tag": m2}},
                           expect=202).json["runId"]
        self.fake.wait_for(1, marker=m2)
        self.release_after(1.0)
        t0 = time.monotonic()
        g = self.get_run(rid, "?wait=5")
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(elapsed, 1.0 - EARLY_S)
        self.assertLess(elapsed, 4.0, "the end did not wake GET ?wait")
        self.assertEqual(g.json["status"], "completed")

    def test_failed_runs_answer_200_with_the_error(self):
        for tid, code, http_status in ((self.t_fail, "PROVIDER_UNAVAILABLE",
                                        "500"),
                                       (self.t_rej, "PROVIDER_REJECTED",
                                        "404")):
            with self.subTest(code=code):
                m = new_marker()
                t0 = time.monotonic()
                r = self.run_tpl(tid, {"inputs": {"tag": m}}, "?wait=10",
                                 expect=200)
                self.assertLess(time.monotonic() - t0, 5)
                v = self.assert_run_view(r.json, "failed")
                err = v["error"]
                self.assertEqual(err["code"], code, err)
                self.assertEqual(err["step_id"], "gen")
                self.assertIsNone(err["field"])
                self.assertIn(http_status, err["message"])
                self.assertEqual(len(self.fake.records(marker=m)), 1,
                                 "max_retries 0: one call")
                wf = self.srv.get_wf(v["runId"])
                self.assertEqual(wf["status"], "FAILED")
                self.assertEqual(self.get_run(v["runId"]).json, v)

    # ------------------------------------------------------------ threads
    def test_waiting_holds_no_http_thread(self):
        """Three times http_threads waiters (wait=3 on held runs): other
        requests answer promptly meanwhile, and every waiter answers 202
        running when its time is up."""
        m = new_marker("conc")
        n = 3 * self.HTTP_THREADS
        waiters = [http_thread(self.srv.request, "POST",
                               "%s/%s/run?wait=3" % (TP, self.t_hold),
                               {"inputs": {"tag": m}, "origin_reference":
                                "%s-%d" % (m, i)})
                   for i in range(n)]
        self.fake.wait_for(n, marker=m, timeout=10)
        probes = []
        for _ in range(4):
            for method, path in (("GET", "/healthz"),
                                 ("GET", WF + "?limit=1"),
                                 ("GET", "%s/%s" % (TP, self.t_ok))):
                t0 = time.monotonic()
                r = self.srv.request(method, path, timeout=5)
                probes.append((path, r.status, time.monotonic() - t0,
                               time.monotonic()))
            time.sleep(0.1)
        last_probe = max(p[3] for p in probes)
        for path, status, elapsed, _ in probes:
            self.assertEqual(status, 200, path)
            self.assertLess(elapsed, PROMPT_S, "%s took %.2f s while %d "
                            "requests waited" % (path, elapsed, n))
        rids = set()
        for t, box in waiters:
            r, elapsed = joined(self, t, box)
            self.assertEqual(r.status, 202, r)
            self.assert_run_view(r.json, "running")
            self.assertAbout(elapsed, 3, "a waiter")
            # the probes ran while this waiter was still waiting
            self.assertGreater(box["done_at"], last_probe)
            rids.add(r.json["runId"])
        self.assertEqual(len(rids), n)
        self.fake.release()
        for rid in rids:
            self.assertEqual(self.get_run(rid, "?wait=10").json["status"],
                             "completed")

    def test_waiters_that_hang_up(self):
        """Clients that close their connection while waiting (then the
        wait expires, or the run ends) leave the server healthy."""
        m = new_marker()
        rid = self.run_tpl(self.t_hold, {"inputs": {"tag": m}},
                           expect=202).json["runId"]
        self.fake.wait_for(1, marker=m)
        socks = []
        for wait in (1, 1, 30, 30):
            for method, path in (("GET", "%s/%s?wait=%d" % (RN, rid, wait)),
                                 ("POST", "%s/%s/run?wait=%d"
                                  % (TP, self.t_hold, wait))):
                body = b"{}" if method == "POST" else b""
                s = socket.create_connection(("127.0.0.1", self.srv.port))
                s.sendall(("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           "Authorization: Bearer %s\r\n"
                           "Content-Type: application/json\r\n"
                           "Content-Length: %d\r\n\r\n"
                           % (method, path, self.srv.token, len(body))
                           ).encode() + body)
                socks.append(s)
        time.sleep(0.3)
        for s in socks:
            s.close()
        time.sleep(1.5)         # the wait=1 ones expire
        self.fake.release()     # the wait=30 ones see their runs end
        self.assertEqual(self.get_run(rid, "?wait=10").json["status"],
                         "completed")
        self.assertStatus(self.srv.request("GET", "/healthz"), 200)
        self.assertTrue(self.srv.running)

    # ------------------------------------------------------------ who waits
    def test_tenant_waiter_is_answered_for_its_tenant(self):
        tok = tenant_token("wait-tenant")
        tid = self.tagged("HOLD_T", name="tenant wait", token=tok)
        m = new_marker()
        self.release_after(0.7)
        r = self.run_tpl(tid, {"inputs": {"tag": m}}, "?wait=10", token=tok,
                         expect=200)
        self.assertEqual(r.json["status"], "completed")
        wf = self.srv.get_wf(r.json["runId"])
        self.assertEqual(wf["origin_tenant_id"], "wait-tenant")

        self.fake.hold()
        rid = self.run_tpl(tid, {"inputs": {"tag": m + "-get"}}, token=tok,
                           expect=202).json["runId"]
        self.fake.wait_for(1, marker=m + "-get")
        self.release_after(0.7)
        g = self.get_run(rid, "?wait=10", token=tok)
        self.assertEqual(g.json["status"], "completed")

    def test_replayed_post_waits_too(self):
        m = new_marker()
        key = {"Idempotency-Key": "wait-" + m}
        body = {"inputs": {"tag": m}}
        first = self.run_tpl(self.t_hold, body, headers=key, expect=202)
        self.fake.wait_for(1, marker=m)
        self.release_after(1.0)
        t0 = time.monotonic()
        again = self.run_tpl(self.t_hold, body, "?wait=10", headers=key,
                             expect=200)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertEqual(again.header("Idempotent-Replayed"), "true")
        self.assertEqual(again.json["runId"], first.json["runId"])
        self.assertEqual(again.json["status"], "completed")
        self.assertEqual(len(self.fake.records(marker=m)), 1)


# ======================================================================
class RunCancelTest(RunCase):
    """One kilnd; HOLD_T goes to a scripted provider that holds every
    request (and records when kilnd hangs up); GENERATION is dryrun."""

    @classmethod
    def setUpClass(cls):
        cls.sp = ScriptedProvider()
        cls.sp.script("/hold", Reply(200, hold=True, hold_max_s=30))
        cfg = {"providers": {"holdp": http_provider(cls.sp, "/hold",
                                                    timeout_s=30)},
               "task_types": {"HOLD_T": "holdp"}}
        try:
            cls.srv = cls.start_class_server(config=cfg,
                                             name="kilnd-runs-cancel")
            r = cls.srv.request("POST", TP, {
                "name": "cancel",
                "inputs": {"tag": {"type": "string", "default": "x"}},
                "steps": [{"id": "gen", "task_type": "HOLD_T",
                           "config": {"marker": "{{inputs.tag}}"}},
                          {"id": "after", "task_type": "GENERATION",
                           "depends_on": ["gen"]}]})
            if r.status != 201:
                raise AssertionError("template: %r" % r)
            cls.t_hold = r.json["id"]
        except Exception:
            cls.sp.close()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.sp.close()

    def test_cancel_a_running_run(self):
        m = new_marker()
        v = self.run_tpl(self.t_hold, {"inputs": {"tag": m}},
                         expect=202).json
        [rec] = self.sp.wait_for(1, marker=m)
        self.assertIsNone(rec["client_closed"])
        c = self.cancel(v["runId"]).json
        self.assertEqual(c["runId"], v["runId"])
        self.assertEqual(c["status"], "cancelled")
        self.assertEqual(c["error"]["code"], "CANCELLED")
        self.assertIsNone(c["error"]["step_id"])
        self.assertIsNone(c["error"]["field"])
        self.assertEqual(c["template_id"], self.t_hold)
        self.assertEqual(c["inputs"], {"tag": m})
        # the provider call in flight is aborted: kilnd hangs up
        wait_until(lambda: self.sp.records(marker=m)[0]["client_closed"],
                   timeout=5, what="kilnd to close the held provider call")
        self.assertIsNone(self.sp.records(marker=m)[0]["status"])
        wf = self.srv.get_wf(v["runId"])
        self.assertEqual(wf["status"], "CANCELLED")
        st = steps_by_id(wf)
        self.assertEqual(st["gen"]["status"], "CANCELLED")
        self.assertEqual(st["gen"]["attempts"][-1]["outcome"], "cancelled")
        self.assertIn(st["after"]["status"], ("PENDING", "CANCELLED"))
        self.assertEqual(self.get_run(v["runId"]).json, c)
        # a second cancel is a conflict, and changes nothing
        again = self.cancel(v["runId"], expect=409)
        self.assertIsInstance(again.json.get("detail"), str)
        assert_schema(again.json, "ErrorDetail")
        self.assertEqual(self.get_run(v["runId"]).json, c)

    def test_cancel_wakes_the_waiters(self):
        m = new_marker()
        post_t, post_box = http_thread(
            self.srv.request, "POST", "%s/%s/run?wait=20" % (TP, self.t_hold),
            {"inputs": {"tag": m}, "origin_instance": m})
        self.sp.wait_for(1, marker=m)
        [wf] = self.srv.list_wf("?origin_instance=" + m)["workflows"]
        rid = wf["id"]
        get_t, get_box = http_thread(self.srv.request, "GET",
                                     "%s/%s?wait=20" % (RN, rid))
        time.sleep(0.3)
        self.assertTrue(post_t.is_alive() and get_t.is_alive(),
                        "the waiters answered before the cancel")
        t0 = time.monotonic()
        self.cancel(rid)
        for what, t, box in (("POST", post_t, post_box),
                             ("GET", get_t, get_box)):
            r, _ = joined(self, t, box, timeout=10)
            self.assertLess(time.monotonic() - t0, 3.0,
                            "%s ?wait was not woken by the cancel" % what)
            self.assertStatus(r, 200, what)
            self.assert_run_view(r.json, "cancelled")
            self.assertEqual(r.json["runId"], rid)

    def test_cancel_an_ended_run_is_a_conflict(self):
        tid = self.make_template({
            "name": "ended", "steps": [{"id": "a",
                                        "task_type": "GENERATION"}]})
        v = self.run_tpl(tid, {}, "?wait=10", expect=200).json
        self.assertEqual(v["status"], "completed")
        r = self.cancel(v["runId"], expect=409)
        self.assertIn("COMPLETED", r.json["detail"])
        self.assertEqual(self.get_run(v["runId"]).json, v)

    def test_unknown_and_malformed_run_ids(self):
        for method, suffix in (("GET", ""), ("GET", "?wait=5"),
                               ("POST", "/cancel")):
            with self.subTest(method=method, suffix=suffix):
                t0 = time.monotonic()
                r = self.srv.request(method, "%s/%s%s" % (RN, NIL_UUID,
                                                          suffix))
                self.assertLess(time.monotonic() - t0, PROMPT_S)
                self.assertStatus(r, 404)
                self.assertIn(NIL_UUID, r.json["detail"])
                assert_schema(r.json, "ErrorDetail")
                path = "%s/not-a-uuid%s" % (RN, suffix)
                self.assertValidation(self.srv.request(method, path),
                                      [(["path", "run_id"],
                                        ("uuid_parsing", "value_error"))])


# ======================================================================
class RunRestartTest(RunCase):
    """kilnd stopping and starting under runs: a kilnd per test (on one
    data dir across its restarts), a FakeProvider shared by the class."""

    @classmethod
    def setUpClass(cls):
        cls.fake = FakeProvider()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.fake.close()

    def setUp(self):
        super().setUp()
        self.fake.hold()
        self.addCleanup(self.fake.release)
        cfg = {"providers": {
                   "okp": http_provider(self.fake, "/ok"),
                   "holdp": http_provider(self.fake, "/hold",
                                          timeout_s=30)},
               "task_types": {"OK_T": "okp", "HOLD_T": "holdp"}}
        self.srv = self.start_server(config=cfg, name="kilnd-runs-restart")

    def test_sigkill_restart_keeps_the_run_inputs(self):
        """The engine keeps a run's inputs with its workflow: after a
        SIGKILL, the step in flight is sent again with its "$inputs"
        values, and a later step still reads them."""
        m = new_marker()
        tid = self.make_template({
            "name": "restart " + m,
            "inputs": {"prompt": {"type": "string", "required": True},
                       "width": {"type": "integer", "default": 768}},
            "steps": [
                {"id": "gen", "task_type": "HOLD_T",
                 "config": {"marker": m + "-gen"},
                 "input_mappings": [{"from_step": "$inputs",
                                     "from_field": "prompt",
                                     "to_field": "prompt"}]},
                {"id": "up", "task_type": "OK_T", "depends_on": ["gen"],
                 "config": {"marker": m + "-up"},
                 "input_mappings": [
                     {"from_step": "gen", "from_field": "result_image_path",
                      "to_field": "image_url"},
                     {"from_step": "$inputs", "from_field": "width",
                      "to_field": "width"}]}]})
        v = self.run_tpl(tid, {"inputs": {"prompt": "after a crash"}},
                         expect=202).json
        self.fake.wait_for(1, marker=m + "-gen")
        self.srv.kill()
        self.srv.start()
        self.fake.wait_for(2, marker=m + "-gen")
        self.fake.release()
        done = self.get_run(v["runId"], "?wait=20").json
        self.assertEqual(done["status"], "completed")
        self.assertEqual(done["inputs"], {"prompt": "after a crash",
                                          "width": 768})
        for rec in self.fake.records(marker=m + "-gen"):
            self.assertEqual(rec["body"], {"marker": m + "-gen",
                                           "prompt": "after a crash"})
        st = steps_by_id(self.srv.get_wf(v["runId"]))
        [up] = self.fake.records(marker=m + "-up")
        self.assertEqual(up["body"], {
            "marker": m + "-up", "width": 768,
            "image_url": st["gen"]["result"]["result_image_path"]})

    def test_sigterm_answers_the_waiters(self):
        """A stopping kilnd answers every waiting connection (the run as it
        is: POST 202, GET 200, status running) before it exits, rather
        than dropping it; the runs carry on after the next start.  Two
        stops, eight waiters each (half POST, half GET)."""
        m = new_marker()
        tid = self.tagged("HOLD_T", name="stop " + m)
        rids = set()
        for cycle in range(2):
            tag = "%s-%d" % (m, cycle)
            rid = self.run_tpl(tid, {"inputs": {"tag": tag}},
                               expect=202).json["runId"]
            rids.add(rid)
            waiters = []
            for i in range(4):
                waiters.append(("POST", 202) + http_thread(
                    self.srv.request, "POST", "%s/%s/run?wait=30" % (TP, tid),
                    {"inputs": {"tag": tag}}))
                waiters.append(("GET", 200) + http_thread(
                    self.srv.request, "GET", "%s/%s?wait=30" % (RN, rid)))
            self.fake.wait_for(5, marker=tag)
            time.sleep(0.3)
            self.assertTrue(all(w[2].is_alive() for w in waiters),
                            "a waiter answered before the stop")
            t0 = time.monotonic()
            self.assertEqual(self.srv.stop(), 0, "kilnd exit status")
            dropped = []
            for what, status, t, box in waiters:
                t.join(10)
                self.assertFalse(t.is_alive(), "%s still waiting" % what)
                if "exc" in box:
                    dropped.append("%s: %r" % (what, box["exc"]))
                    continue
                r = box["resp"]
                self.assertLess(box["done_at"] - t0, 6.0)
                self.assertStatus(r, status, what)
                self.assert_run_view(r.json, "running")
                rids.add(r.json["runId"])
            self.assertEqual(dropped, [], "stop %d: waiters got no answer"
                             % (cycle + 1))
            self.srv.start()
        self.fake.release()
        for rid in rids:
            self.assertEqual(self.get_run(rid, "?wait=20").json["status"],
                             "completed")


# ======================================================================
class IdempotencyTest(RunCase):
    """Idempotency-Key on POST /templates/{id}/run.  One kilnd; the
    templates run on dryrun (GENERATION)."""

    @classmethod
    def setUpClass(cls):
        cls.srv = cls.start_class_server(name="kilnd-runs-idempotency")

    def template(self, token=DEFAULT, name="idem"):
        return self.make_template({
            "name": name,
            "inputs": {"p": {"type": "string", "default": "d"}},
            "steps": [{"id": "a", "task_type": "GENERATION",
                       "config": {"prompt": "{{inputs.p}}"}}]}, token=token)

    def key(self):
        return {"Idempotency-Key": new_marker("key")}

    def test_same_key_and_body_replay_the_run(self):
        tid = self.template()
        key = self.key()
        before = self.wf_total()
        first = self.run_tpl(tid, {"inputs": {"p": "x"}, "name": "n1"},
                             headers=key)
        self.assertIn(first.status, (200, 202))
        self.assertIsNone(first.header("Idempotent-Replayed"))
        rid = first.json["runId"]
        self.assertEqual(self.wf_total(), before + 1)
        self.wait_run(rid, "completed")

        again = self.run_tpl(tid, {"inputs": {"p": "x"}, "name": "n1"},
                             headers=key, expect=200)
        self.assertEqual(again.header("Idempotent-Replayed"), "true")
        self.assertEqual(again.json["runId"], rid)
        self.assertEqual(again.json, self.get_run(rid).json)
        # the body's key order and the query do not matter
        raw = self.run_tpl(tid, raw='{"name":"n1","inputs":{"p":"x"}}',
                           headers=key, expect=200)
        self.assertEqual(raw.header("Idempotent-Replayed"), "true")
        self.assertEqual(raw.json["runId"], rid)
        waited = self.run_tpl(tid, {"inputs": {"p": "x"}, "name": "n1"},
                              query="?wait=5", headers=key, expect=200)
        self.assertEqual(waited.json["runId"], rid)
        self.assertEqual(waited.header("Idempotent-Replayed"), "true")
        self.assertEqual(self.wf_total(), before + 1, "a replay created")

        # without a key, the same body makes a new run every time
        a = self.run_tpl(tid, {"inputs": {"p": "x"}, "name": "n1"})
        b = self.run_tpl(tid, {"inputs": {"p": "x"}, "name": "n1"})
        self.assertNotEqual(a.json["runId"], b.json["runId"])
        self.assertIsNone(b.header("Idempotent-Replayed"))
        self.assertEqual(self.wf_total(), before + 3)

    def test_same_key_with_another_request_is_a_conflict(self):
        tid, other = self.template(), self.template(name="other")
        key = self.key()
        first = self.run_tpl(tid, {"inputs": {"p": "x"}}, headers=key)
        self.assertIn(first.status, (200, 202))
        before = self.wf_total()
        for label, t, body in (("other inputs", tid, {"inputs": {"p": "y"}}),
                               ("other field", tid, {"inputs": {"p": "x"},
                                                     "name": "z"}),
                               ("empty body", tid, {}),
                               ("other template", other,
                                {"inputs": {"p": "x"}})):
            with self.subTest(case=label):
                r = self.run_tpl(t, body, headers=key)
                self.assertStatus(r, 409)
                self.assertIn(key["Idempotency-Key"], r.json["detail"])
                assert_schema(r.json, "ErrorDetail")
        self.assertEqual(self.wf_total(), before)
        # the first request still replays
        r = self.run_tpl(tid, {"inputs": {"p": "x"}}, headers=key)
        self.assertEqual(r.json["runId"], first.json["runId"])

    def test_malformed_keys_are_refused(self):
        tid = self.template()
        before = self.wf_total()
        for label, key in (("256 characters", "k" * 256),
                           ("a space", "a b"), ("empty", ""),
                           ("a tab", "a\tb"), ("not ASCII", "cl\xe9")):
            with self.subTest(key=label):
                r = self.run_tpl(tid, {}, headers={"Idempotency-Key": key})
                self.assertInvalidInput(r, [(["header", "Idempotency-Key"],
                                             "value_error")],
                                        exact_count=1)
        self.assertEqual(self.wf_total(), before)
        for label, key in (("255 characters", "k" * 255),
                           ("one character", "k"),
                           ("punctuation", "!#$%&'*+-.^_`|~:/=?\"<>")):
            with self.subTest(key=label):
                r = self.run_tpl(tid, {}, headers={"Idempotency-Key": key})
                self.assertIn(r.status, (200, 202), r)
        self.assertEqual(self.wf_total(), before + 3)

    def test_keys_are_per_tenant(self):
        ta, tb = tenant_token("idem-a"), tenant_token("idem-b")
        tid_a = self.template(token=ta)
        tid_b = self.template(token=tb)
        key = self.key()
        body = {"inputs": {"p": "same"}}
        a = self.run_tpl(tid_a, body, token=ta, headers=key)
        b = self.run_tpl(tid_b, body, token=tb, headers=key)
        op = self.run_tpl(tid_a, body, headers=key)   # no tenant
        for r in (a, b, op):
            self.assertIn(r.status, (200, 202), r)
            self.assertIsNone(r.header("Idempotent-Replayed"))
        self.assertEqual(len({a.json["runId"], b.json["runId"],
                              op.json["runId"]}), 3)
        for tok, tid, first in ((ta, tid_a, a), (tb, tid_b, b),
                                (DEFAULT, tid_a, op)):
            r = self.run_tpl(tid, body, token=tok, headers=key)
            self.assertEqual(r.header("Idempotent-Replayed"), "true")
            self.assertEqual(r.json["runId"], first.json["runId"])

    def test_concurrent_requests_with_one_key_create_one_run(self):
        tid = self.template()
        key = self.key()
        before = self.wf_total()
        n = 16
        barrier = threading.Barrier(n)

        def post():
            barrier.wait(10)
            return self.srv.request("POST", "%s/%s/run" % (TP, tid),
                                    {"inputs": {"p": "race"}}, headers=key)
        threads = [http_thread(post) for _ in range(n)]
        answers = [joined(self, t, box)[0] for t, box in threads]
        for r in answers:
            self.assertIn(r.status, (200, 202), r)
            self.assert_run_view(r.json)
        self.assertEqual(len({r.json["runId"] for r in answers}), 1)
        fresh = [r for r in answers if r.header("Idempotent-Replayed") is None]
        self.assertEqual(len(fresh), 1, "%d answers were not replays"
                         % len(fresh))
        self.assertEqual(self.wf_total(), before + 1)

    def test_refused_request_leaves_the_key_unused(self):
        tid = self.template()
        key = self.key()
        before = self.wf_total()
        self.assertInvalidInput(
            self.run_tpl(tid, {"inputs": {"p": 5}}, headers=key),
            [(["body", "inputs", "p"], "string_type")])
        self.assertStatus(self.run_tpl(NIL_UUID, {}, headers=key), 404)
        self.assertEqual(self.wf_total(), before)
        r = self.run_tpl(tid, {"inputs": {"p": "5"}}, headers=key)
        self.assertIn(r.status, (200, 202))
        self.assertIsNone(r.header("Idempotent-Replayed"))
        self.assertEqual(self.wf_total(), before + 1)

    # A retry must get the first answer's run even if the template has
    # changed since: the client cannot know whether its first request
    # made it.
    def test_retry_after_a_new_version_replays_the_run(self):
        tid = self.template()
        key = self.key()
        body = {"inputs": {"p": "v1"}}
        first = self.run_tpl(tid, body, headers=key)
        self.assertIn(first.status, (200, 202))
        put = self.srv.request("PUT", "%s/%s" % (TP, tid), {
            "name": "renamed input",
            "inputs": {"text": {"type": "string", "required": True}},
            "steps": [{"id": "a", "task_type": "GENERATION",
                       "config": {"prompt": "{{inputs.text}}"}}]})
        self.assertStatus(put, 200)
        before = self.wf_total()
        r = self.run_tpl(tid, body, headers=key)
        self.assertIn(r.status, (200, 202),
                      "a retry of the first request was not replayed: %r"
                      % r)
        self.assertEqual(r.header("Idempotent-Replayed"), "true")
        self.assertEqual(r.json["runId"], first.json["runId"])
        self.assertEqual(r.json["template_version"], 1)
        self.assertEqual(self.wf_total(), before)

    def test_retry_after_archive_replays_the_run(self):
        tid = self.template()
        key = self.key()
        body = {"inputs": {"p": "arch"}}
        first = self.run_tpl(tid, body, headers=key)
        self.assertIn(first.status, (200, 202))
        self.assertStatus(self.srv.request("DELETE", "%s/%s" % (TP, tid)),
                          200)
        r = self.run_tpl(tid, body, headers=key)
        self.assertIn(r.status, (200, 202),
                      "a retry of the first request was not replayed: %r"
                      % r)
        self.assertEqual(r.header("Idempotent-Replayed"), "true")
        self.assertEqual(r.json["runId"], first.json["runId"])
        # a new request is refused as before
        self.assertStatus(self.run_tpl(tid, body), 409)

    def test_trailing_slash_is_the_same_request(self):
        """The router takes .../run/ for .../run; so must the key."""
        tid = self.template()
        key = self.key()
        body = {"inputs": {"p": "slash"}}
        first = self.run_tpl(tid, body, headers=key)
        self.assertIn(first.status, (200, 202))
        r = self.run_tpl(tid, body, headers=key, path_suffix="/")
        self.assertIn(r.status, (200, 202), "retry with a trailing slash: "
                      "%r" % r)
        self.assertEqual(r.json["runId"], first.json["runId"])
        self.assertEqual(r.header("Idempotent-Replayed"), "true")


# ======================================================================
class RunAccessTest(RunCase):
    """Tenants, 401 and 405.  One kilnd; templates run on dryrun."""

    @classmethod
    def setUpClass(cls):
        cls.srv = cls.start_class_server(name="kilnd-runs-access")

    def template(self, token=DEFAULT):
        return self.make_template({
            "name": "access",
            "steps": [{"id": "a", "task_type": "GENERATION"}]}, token=token)

    def test_runs_are_scoped_to_their_tenant(self):
        ta, tb = tenant_token("acc-a"), tenant_token("acc-b")
        tid = self.template(token=ta)
        v = self.run_tpl(tid, {"origin_reference": "mine"}, "?wait=10",
                         token=ta, expect=200).json
        rid = v["runId"]
        self.assertEqual(self.srv.get_wf(rid, token=ta)["origin_tenant_id"],
                         "acc-a")
        self.assertEqual(self.get_run(rid, token=ta).json, v)
        self.assertEqual(self.get_run(rid).json, v)        # the operator
        for label, send in (
                ("GET", lambda: self.get_run(rid, token=tb, expect=None)),
                ("GET ?wait", lambda: self.get_run(rid, "?wait=10",
                                                   token=tb, expect=None)),
                ("cancel", lambda: self.cancel(rid, token=tb, expect=None)),
                ("workflowUrl", lambda: self.srv.request(
                    "GET", v["workflowUrl"], token=tb))):
            with self.subTest(route=label):
                t0 = time.monotonic()
                r = send()
                self.assertLess(time.monotonic() - t0, PROMPT_S)
                self.assertStatus(r, 404)
                self.assertNotIn("runId", r.json or {})
        self.assertEqual(self.get_run(rid, token=ta).json, v)

    def test_a_tenant_runs_only_for_itself(self):
        ta = tenant_token("acc-c")
        tid = self.template(token=ta)
        before = self.wf_total()
        r = self.run_tpl(tid, {"origin_tenant_id": "acc-d"}, token=ta)
        self.assertStatus(r, 403)
        self.assertIsInstance(r.json.get("detail"), str)
        assert_schema(r.json, "ErrorDetail")
        self.assertEqual(self.wf_total(), before)
        r = self.run_tpl(tid, {"origin_tenant_id": "acc-c"}, token=ta)
        self.assertIn(r.status, (200, 202))
        self.assertEqual(self.srv.get_wf(r.json["runId"])["origin_tenant_id"],
                         "acc-c")

    def test_another_tenants_template_is_not_found(self):
        ta, tb = tenant_token("acc-e"), tenant_token("acc-f")
        tid = self.template(token=ta)
        before = self.wf_total()
        r = self.run_tpl(tid, {}, token=tb)
        self.assertDetail(r, 404, "Template %s not found" % tid)
        self.assertEqual(self.wf_total(), before)

    def test_token_required_and_methods(self):
        tid = self.template()
        rid = self.run_tpl(tid, {}).json["runId"]
        for method, path in (("POST", "%s/%s/run" % (TP, tid)),
                             ("GET", "%s/%s" % (RN, rid)),
                             ("POST", "%s/%s/cancel" % (RN, rid))):
            with self.subTest(no_token=method + " " + path):
                r = self.srv.request(method, path, token=None)
                self.assertStatus(r, 401)
                self.assertEqual(r.header("WWW-Authenticate"), "Bearer")
        for method, path, allow in (
                ("GET", "%s/%s/run" % (TP, tid), "POST"),
                ("PUT", "%s/%s" % (RN, rid), "GET"),
                ("DELETE", "%s/%s" % (RN, rid), "GET"),
                ("GET", "%s/%s/cancel" % (RN, rid), "POST")):
            with self.subTest(method=method, path=path):
                r = self.srv.request(method, path)
                self.assertStatus(r, 405)
                self.assertEqual(r.header("Allow"), allow)
        # the refused requests changed nothing
        self.assertEqual(self.get_run(rid, "?wait=10").json["status"],
                         "completed")


# ======================================================================
class RunWebhookTest(RunCase):
    """A run's webhook_url (or its template's) receives workflow.completed.
    One kilnd with webhooks.allow_private_networks (the receiver is on
    127.0.0.1) and jitter 0; it signs with <data_dir>/webhook.secret."""

    @classmethod
    def setUpClass(cls):
        cls.srv = cls.start_class_server(
            config={"webhooks": {"allow_private_networks": True,
                                 "jitter": 0}},
            name="kilnd-runs-webhooks")
        with open(os.path.join(cls.srv.data_dir, "webhook.secret")) as f:
            secret = f.read().strip()
        cls.rcv = WebhookReceiver([secret], name="receiver-runs")

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.rcv.close()

    def assert_delivered(self, path, rid, origin_reference=None):
        [rec] = self.rcv.wait_for(1, job_id=rid)
        self.assertEqual(rec["path"], path)
        self.assertEqual(rec["problems"], [])
        self.assertIsNone(rec["schema_error"])
        self.assertTrue(rec["verified"], "bad signature")
        p = rec["json"]
        self.assertEqual(p["event"], "workflow.completed")
        self.assertEqual(p["job_id"], rid)
        self.assertEqual(p["status"], "success")
        self.assertEqual(p["workflow_status"], "COMPLETED")
        self.assertEqual(p["origin_reference"], origin_reference)
        return p

    def test_run_webhook_url_gets_workflow_completed(self):
        m = new_marker()
        tid = self.make_template({
            "name": "hooked " + m,
            "steps": [{"id": "a", "task_type": "GENERATION"}]})
        url = self.rcv.url("/ok/run-" + m)
        v = self.run_tpl(tid, {"webhook_url": url, "origin_reference": m},
                         "?wait=10", expect=200).json
        self.assertEqual(self.srv.get_wf(v["runId"])["webhook_url"], url)
        self.assert_delivered("/ok/run-" + m, v["runId"], m)
        time.sleep(0.3)
        self.assertEqual(len(self.rcv.records(job_id=v["runId"])), 1,
                         "more than the workflow event was sent")

    def test_template_webhook_url_and_its_override(self):
        m = new_marker()
        tid = self.make_template({
            "name": "hooked tpl " + m,
            "webhook_url": self.rcv.url("/ok/tpl-" + m),
            "steps": [{"id": "a", "task_type": "GENERATION"}]})
        v = self.run_tpl(tid, {}, "?wait=10", expect=200).json
        self.assert_delivered("/ok/tpl-" + m, v["runId"])
        o = self.run_tpl(tid, {"webhook_url": self.rcv.url("/ok/own-" + m)},
                         "?wait=10", expect=200).json
        self.assert_delivered("/ok/own-" + m, o["runId"])
        self.assertEqual(self.rcv.records(path="/ok/tpl-" + m,
                                          job_id=o["runId"]), [])


if __name__ == "__main__":
    kilnlib.main()
