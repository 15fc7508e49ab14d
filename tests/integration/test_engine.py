"""The engine against local imitation providers (scripted_provider.py), as
docs/providers.md specifies it: retries and their spacing, Retry-After,
failure classes, step max_retries, fallbacks, timeouts and step deadlines,
async jobs (submit, poll, templates, result URL, poll errors, failure),
cancel (sync call in flight, queued request, backoff, async jobs with their
cancel URL, artifact download), pause/resume around a job, artifact
downloads (files, sha256, serving, cleanup, size cap), per-provider
concurrency and the global max_inflight, and SIGKILL crashes: 40 workflows
killed three times, and a kill while paused, on the fallback, during a
backoff and across a step deadline."""
import calendar
import datetime
import email.utils
import hashlib
import json
import os
import re
import time

import kilnlib
from kilnlib import (KilnTestCase, assert_workflow_shape, simple_workflow,
                     steps_by_id, tenant_token)
from scripted_provider import Reply, ScriptedProvider, png_bytes

SLACK_S = 0.4       # how late a retry or poll may arrive
EARLY_S = 0.05      # how early (clock granularity)


def parse_ts(text):
    """RFC 3339 UTC with milliseconds -> seconds since the epoch."""
    dt = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
    return calendar.timegm(dt.timetuple()) + dt.microsecond / 1e6


def gaps(records):
    return [b["arrived"] - a["arrived"] for a, b in zip(records,
                                                        records[1:])]


def fmt_gaps(g):
    return "[" + ", ".join("%.3f" % x for x in g) + "]"


def retry(base_ms, max_ms=4000, jitter="none"):
    return {"base_delay_ms": base_ms, "max_delay_ms": max_ms,
            "jitter": jitter}


def step(step_id, provider, marker, **extra):
    s = {"id": step_id, "task_type": "GENERATION",
         "config": {"marker": marker},
         "provider_config": {"provider_type": provider}}
    s.update(extra)
    return s


class EngineCase(KilnTestCase):
    """Shared assertions."""

    def assert_attempts(self, st, expected, async_job=False):
        """st's attempts are expected: a list of (provider, outcome,
        http_status) (http_status ... = any); checks the fields of each."""
        atts = st["attempts"]
        self.assertEqual(
            [(a["provider"], a["outcome"]) for a in atts],
            [(p, o) for p, o, _ in expected],
            "attempts of %s: %s" % (st["step_id"], json.dumps(atts,
                                                              indent=1)))
        for i, (a, (_, outcome, http_status)) in enumerate(zip(atts,
                                                               expected)):
            self.assertEqual(a["attempt"], i + 1, a)
            self.assertEqual(set(a), {"attempt", "provider", "started_at",
                                      "finished_at", "outcome",
                                      "http_status", "error", "job_id"}, a)
            self.assertRegex(a["started_at"], kilnlib.TIMESTAMP_RE)
            if outcome == "running":
                self.assertIsNone(a["finished_at"], a)
            else:
                self.assertRegex(a["finished_at"] or "",
                                 kilnlib.TIMESTAMP_RE, a)
                self.assertLessEqual(parse_ts(a["started_at"]),
                                     parse_ts(a["finished_at"]), a)
            if http_status is not Ellipsis:
                self.assertEqual(a["http_status"], http_status, a)
            if outcome in ("succeeded", "running"):
                self.assertIsNone(a["error"], a)
            elif outcome != "cancelled":    # a cancel is no error
                self.assertIsInstance(a["error"], str, a)
                self.assertTrue(a["error"], a)
            if not async_job:
                self.assertIsNone(a["job_id"], a)
        for a, b in zip(atts, atts[1:]):
            self.assertLessEqual(parse_ts(a["started_at"]),
                                 parse_ts(b["started_at"]))
        return atts

    def assert_gaps(self, records, expected, what, lower=True):
        g = gaps(records)
        self.assertEqual(len(g), len(expected), "%s: gaps %s, expected %s"
                         % (what, fmt_gaps(g), expected))
        for got, want in zip(g, expected):
            if lower:
                self.assertGreaterEqual(
                    got, want - EARLY_S, "%s: gaps %s, expected %s (a retry"
                    " came early)" % (what, fmt_gaps(g), expected))
            self.assertLessEqual(
                got, want + SLACK_S, "%s: gaps %s, expected %s (+%.1f s)"
                % (what, fmt_gaps(g), expected, SLACK_S))
        return g


class EngineTest(EngineCase):
    @classmethod
    def setUpClass(cls):
        sp = cls.sp = ScriptedProvider()

        def http(path, **kw):
            p = {"type": "http", "url": sp.url(path), "timeout_s": 5,
                 "connect_timeout_s": 2}
            p.update(kw)
            return p

        def async_http(svc, poll_initial_ms=100, poll_max_ms=400, akw=None,
                       **kw):
            a = {"job_id_pointer": "/id",
                 "status_url_pointer": "/status_url",
                 "cancel_url_pointer": "/cancel_url",
                 "status_pointer": "/status",
                 "success_values": ["succeeded"],
                 "failure_values": ["failed"],
                 "result_pointer": "/output",
                 "error_pointer": "/error",
                 "poll_initial_ms": poll_initial_ms,
                 "poll_max_ms": poll_max_ms}
            a.update(akw or {})
            a = {k: v for k, v in a.items() if v is not None}
            p = http(svc if isinstance(svc, str)
                     else "/jobs/%s/submit" % svc.name, mode="async", **kw)
            p["async"] = a
            return p

        cls.svc_ok = sp.job_service("gen", polls=5)
        cls.svc_fail = sp.job_service("genfail", polls=1,
                                      outcomes=["failed", "succeeded"])
        cls.svc_fail0 = sp.job_service("genfail0", polls=0,
                                       outcomes=["failed"])
        cls.svc_res = sp.job_service(
            "genres", polls=1,
            result_script=[Reply(503, body="result not ready"), Reply(200)])
        cls.svc_cancel = sp.job_service("gencancel", polls=100000)
        cls.svc_pause = sp.job_service("genpause", polls=4)
        # polls 2 to 8 fail transiently: more than a few in a row
        cls.svc_poll = sp.job_service(
            "genpoll", polls=8,
            status_faults={n: Reply(503, body="status busy")
                           for n in range(2, 9)})
        cls.svc_subslow = sp.job_service("gensubslow", polls=100000,
                                         submit_delay_s=1.0)
        cls.svc_poll404 = sp.job_service(
            "genpoll404", polls=3,
            status_faults={1: Reply(404, body="no such job")})
        cls.svc_dl = sp.job_service("gendl", polls=100000)
        cls.svc_resume = sp.job_service("genresume", polls=6)
        res_url = cls.svc_res.url("/{job_id}")

        cfg = {
            "log_level": "info",
            "providers": {
                "retry3": http("/retry3", max_retries=3, retry=retry(500)),
                "jitter": http("/jitter", max_retries=3,
                               retry=retry(300, jitter="full")),
                "ra429": http("/ra429", max_retries=1, retry=retry(100)),
                "radate": http("/radate", max_retries=1, retry=retry(100)),
                "ralonger": http("/ralonger", max_retries=1,
                                 retry=retry(1200)),
                "perm400": http("/perm400", max_retries=3,
                                retry=retry(100)),
                "notjson": http("/notjson", max_retries=3,
                                retry=retry(100)),
                "exhaust": http("/exhaust", max_retries=2,
                                retry=retry(100)),
                "primary500": http("/primary500", max_retries=1,
                                   retry=retry(100)),
                "fallback_ok": http("/fallback_ok"),
                "primary400": http("/primary400", max_retries=2,
                                   retry=retry(100)),
                "fallback_flaky": http("/fallback_flaky", max_retries=1,
                                       retry=retry(100)),
                "slow1": http("/slow1", timeout_s=1, max_retries=1,
                              retry=retry(100)),
                "deadline": http("/deadline", step_deadline_s=2,
                                 max_retries=10, retry=retry(500)),
                "deadlinehold": http("/deadlinehold", step_deadline_s=1,
                                     timeout_s=10),
                "asyncok": async_http(cls.svc_ok,
                                      headers={"X-Key": "k-async"}),
                "asyncfail": async_http(cls.svc_fail, max_retries=1,
                                        retry=retry(100)),
                "asyncfail0": async_http(cls.svc_fail0),
                "asyncres": async_http(cls.svc_res, akw={
                    "status_url_pointer": None,
                    "cancel_url_pointer": None,
                    "status_url_template": res_url + "/status",
                    "result_url_template": res_url + "/result"},
                    retry=retry(100), headers={"X-Key": "k-res"}),
                "asynccancel": async_http(
                    cls.svc_cancel, headers={"X-Key": "k-cancel"},
                    akw={"cancel_method": "PUT",
                         "cancel_body": {"job": "{job_id}",
                                         "why": "kiln cancelled {job_id}",
                                         "n": 1}}),
                "asyncpause": async_http(cls.svc_pause),
                "asyncnoid": async_http("/noid", max_retries=2,
                                        retry=retry(100)),
                "asyncpoll": async_http(cls.svc_poll,
                                        retry=retry(100, max_ms=200)),
                "asyncsubslow": async_http(cls.svc_subslow),
                "asyncpoll404": async_http(cls.svc_poll404,
                                           retry=retry(100)),
                "asyncdeadline": async_http(cls.svc_dl, step_deadline_s=1),
                "asyncresume": async_http(cls.svc_resume),
                "stepretries": http("/stepretries", max_retries=3,
                                    retry=retry(100)),
                "backoffcancel": http("/backoffcancel", max_retries=3,
                                      retry=retry(1000)),
                "t408": http("/t408", max_retries=1, retry=retry(100)),
                "t302": http("/t302", max_retries=1, retry=retry(100)),
                "refused": {"type": "http", "timeout_s": 5,
                            "connect_timeout_s": 2, "max_retries": 1,
                            "retry": retry(100),
                            "url": "http://127.0.0.1:%d/x"
                            % kilnlib.free_port()},
                "syncb": http("/syncb"),
                "hold": http("/hold", timeout_s=30),
                "artp": http("/art", headers={
                    "Authorization": "Bearer provider-secret",
                    "X-Key": "k-art"}, artifacts={
                    "url_pointers": ["/images/*/url"],
                    "max_bytes": 100000}),
                "art404": http("/art404", artifacts={
                    "url_pointers": ["/images/*/url"]}),
                "artbig": http("/artbig", artifacts={
                    "url_pointers": ["/images/*/url"], "max_bytes": 1000}),
                "lane2": http("/lane", concurrency=2),
                "lane1": http("/lane1", concurrency=1),
                "artdl": http("/artdl", timeout_s=10, step_deadline_s=1,
                              artifacts={"url_pointers": ["/images/*/url"]}),
                "artslow": http("/artslow", artifacts={
                    "url_pointers": ["/images/*/url"]}),
            },
        }
        try:
            cls.srv = cls.start_class_server(config=cfg,
                                             name="kilnd-engine")
        except Exception:
            sp.close()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.sp.close()

    def run_wf(self, steps, status, name=None, timeout=20):
        wf = self.srv.create(simple_workflow(name or self.id(), steps=steps))
        done = self.srv.wait_for_status(wf["id"], status, timeout=timeout)
        assert_workflow_shape(done)
        return done

    # ------------------------------------------------------------ create
    def test_created_answer_is_what_a_read_finds(self):
        """The 201 is built from what was written, not read back: it must
        be exactly what a GET finds right after, first steps claimed and
        RUNNING with their first attempt, the others PENDING."""
        sp = self.sp
        sp.script("/hold", Reply(200, hold=True, hold_max_s=30))
        sp.script("/syncb", Reply(200))
        try:
            body = simple_workflow(
                "create-answer", description="as stored",
                config={"seed": 7, "ratio": 1.5, "tags": ["a", "é"]},
                origin_zone="eu", origin_reference="ref-1",
                suppress_subtask_events=False, steps=[
                    step("a", "hold", "create-answer-a", max_retries=2,
                         fallback_provider_type="syncb",
                         fallback_provider_config={"quality": "low"}),
                    step("b", "hold", "create-answer-b"),
                    step("c", "syncb", "create-answer-c",
                         depends_on=["a", "b"],
                         input_mappings=[{"from_step": "a",
                                          "from_field": "/echo/marker",
                                          "to_field": "prev"}])])
            r = self.srv.request("POST", "/api/v1/workflows", body)
            self.assertStatus(r, 201)
            created = r.json
            for k in "ab":
                sp.wait_for(1, path="/hold", marker="create-answer-" + k)
            self.assertEqual(self.srv.get_wf(created["id"]), created)
            assert_workflow_shape(created)
            st = steps_by_id(created)
            self.assertEqual([st[k]["status"] for k in "abc"],
                             ["RUNNING", "RUNNING", "PENDING"])
            self.assertEqual(created["current_step"], "a")
            for k in "ab":
                self.assertIsNotNone(st[k]["task_id"])
                self.assertEqual(st[k]["started_at"], created["created_at"])
                self.assert_attempts(st[k], [("hold", "running", None)])
            self.assertEqual(st["c"]["attempts"], [])
            self.assertIsNone(st["c"]["task_id"])

            held = self.srv.create(simple_workflow(
                "create-held", steps=[step("a", "hold", "create-held")]),
                start=False)
            self.assertEqual(held["status"], "PENDING")
            self.assertIsNone(held["started_at"])
            self.assertEqual(steps_by_id(held)["a"]["status"], "PENDING")
            self.assertEqual(self.srv.get_wf(held["id"]), held)
        finally:
            sp.release()
        done = self.srv.wait_for_status(created["id"], "COMPLETED")
        self.assertEqual(steps_by_id(done)["c"]["status"], "COMPLETED")

    # ------------------------------------------------------------ retries
    def test_retry_spacing_without_jitter(self):
        sp = self.sp
        sp.script("/retry3", [Reply(503, body="busy 1"),
                              Reply(503, body="busy 2"),
                              Reply(503, body="busy 3"),
                              Reply(200, json={"image": "x.png"})])
        # Between attempts the input is kept as text: every retry sends
        # exactly what the first attempt sent (floats, big integers,
        # unicode, nesting).
        odd = {"guidance": 7.1, "seed": 2 ** 53 + 1,
               "text": "caf\u00e9 \\ \" \U0001f600",
               "nested": {"list": [0.1, None, True, {}]}}
        done = self.run_wf([step("s1", "retry3", "retry3", config=dict(
            odd, marker="retry3"))], "COMPLETED")
        st = steps_by_id(done)["s1"]
        self.assertEqual(st["retry_count"], 3)
        self.assertEqual(st["max_retries"], 3)
        self.assertEqual(st["provider_used"], "retry3")
        self.assertEqual(st["result"], {"image": "x.png"})
        self.assertIsNone(st["error_message"])
        atts = self.assert_attempts(st, [("retry3", "transient_error", 503)]
                                    * 3 + [("retry3", "succeeded", 200)])
        for i, a in enumerate(atts[:3]):
            self.assertEqual(a["error"], "provider 'retry3' answered HTTP "
                             "503: busy %d" % (i + 1))
        recs = sp.records(path="/retry3")
        self.assertEqual(len(recs), 4)
        self.assert_gaps(recs, [0.5, 1.0, 2.0], "retry3")
        for k, v in odd.items():
            self.assertEqual(recs[0]["body"][k], v, k)
        for r in recs[1:]:
            self.assertEqual(r["body"], recs[0]["body"])

    def test_retry_spacing_with_full_jitter(self):
        sp = self.sp
        sp.script("/jitter", [Reply(503)] * 3 + [Reply(200)])
        done = self.run_wf([step("s1", "jitter", "jitter")], "COMPLETED")
        st = steps_by_id(done)["s1"]
        self.assertEqual(st["retry_count"], 3)
        self.assert_attempts(st, [("jitter", "transient_error", 503)] * 3 +
                             [("jitter", "succeeded", 200)])
        recs = sp.records(path="/jitter")
        self.assertEqual(len(recs), 4)
        self.assert_gaps(recs, [0.3, 0.6, 1.2], "jitter", lower=False)

    def test_retry_after(self):
        """Retry-After in seconds and as an HTTP date is honoured when it
        is longer than the backoff; a shorter one leaves the backoff."""
        sp = self.sp
        sp.script("/ra429", [Reply(429, body="slow down",
                                   headers={"Retry-After": "2"}),
                             Reply(200)])
        date_target = int(time.time()) + 3
        sp.script("/radate", [Reply(503, headers={
            "Retry-After": email.utils.formatdate(date_target,
                                                  usegmt=True)}),
            Reply(200)])
        sp.script("/ralonger", [Reply(503, headers={"Retry-After": "1"}),
                                Reply(200)])
        ids = [self.srv.create(simple_workflow(
            "ra-" + p, steps=[step("s1", p, "ra-" + p)]))["id"]
            for p in ("ra429", "radate", "ralonger")]
        for wf_id in ids:
            done = self.srv.wait_for_status(wf_id, "COMPLETED")
            st = steps_by_id(done)["s1"]
            self.assertEqual(st["retry_count"], 1)
        st = steps_by_id(self.srv.get_wf(ids[0]))["s1"]
        self.assert_attempts(st, [("ra429", "transient_error", 429),
                                  ("ra429", "succeeded", 200)])
        self.assertEqual(st["attempts"][0]["error"],
                         "provider 'ra429' answered HTTP 429: slow down")

        recs = sp.records(path="/ra429")
        self.assertEqual(len(recs), 2)
        self.assert_gaps(recs, [2.0], "Retry-After: 2 with a 100 ms backoff")

        recs = sp.records(path="/radate")
        self.assertEqual(len(recs), 2)
        self.assertGreaterEqual(
            recs[1]["arrived_wall"], date_target - EARLY_S,
            "Retry-After: %s honoured too early (retry at %.3f)"
            % (email.utils.formatdate(date_target, usegmt=True),
               recs[1]["arrived_wall"]))
        self.assertLessEqual(recs[1]["arrived_wall"], date_target + 1.0)

        recs = sp.records(path="/ralonger")
        self.assertEqual(len(recs), 2)
        self.assert_gaps(recs, [1.2], "Retry-After: 1 under a 1.2 s backoff")

    # ------------------------------------------------------------ failures
    def test_permanent_400_not_retried(self):
        sp = self.sp
        sp.script("/perm400", Reply(400, body="bad prompt"))
        t0 = time.monotonic()
        done = self.run_wf([step("s1", "perm400", "perm400"),
                            step("s2", "syncb", "perm400-next",
                                 depends_on=["s1"])], "FAILED")
        self.assertLess(time.monotonic() - t0, 1.5, "a 400 was not final")
        st = steps_by_id(done)["s1"]
        err = "provider 'perm400' answered HTTP 400: bad prompt"
        self.assertEqual(st["status"], "FAILED")
        self.assertEqual(st["error_message"], err)
        self.assertEqual(st["retry_count"], 0)
        self.assertEqual(st["max_retries"], 3)
        self.assertIsNone(st["provider_used"])
        self.assertIsNone(st["result"])
        atts = self.assert_attempts(st, [("perm400", "permanent_error",
                                          400)])
        self.assertEqual(atts[0]["error"], err)
        self.assertEqual(done["error_message"], "step 's1' failed: " + err)
        self.assertEqual(steps_by_id(done)["s2"]["status"], "PENDING")
        time.sleep(0.5)
        self.assertEqual(len(sp.records(path="/perm400")), 1)
        self.assertEqual(sp.records(marker="perm400-next"), [])

    def test_permanent_not_json(self):
        sp = self.sp
        sp.script("/notjson", Reply(200, body="<html>hello</html>",
                                    content_type="text/html"))
        done = self.run_wf([step("s1", "notjson", "notjson")], "FAILED")
        st = steps_by_id(done)["s1"]
        self.assertEqual(st["retry_count"], 0)
        atts = self.assert_attempts(st, [("notjson", "permanent_error",
                                          200)])
        self.assertIn("not a JSON object", atts[0]["error"])
        self.assertEqual(st["error_message"], atts[0]["error"])
        time.sleep(0.3)
        self.assertEqual(len(sp.records(path="/notjson")), 1)

    def test_retries_exhausted(self):
        sp = self.sp
        sp.script("/exhaust", [Reply(503, body="busy %d" % i)
                               for i in (1, 2, 3, 4, 5)])
        done = self.run_wf([step("s1", "exhaust", "exhaust")], "FAILED")
        st = steps_by_id(done)["s1"]
        self.assertEqual(st["retry_count"], 2)
        atts = self.assert_attempts(st, [("exhaust", "transient_error",
                                          503)] * 3)
        last = "provider 'exhaust' answered HTTP 503: busy 3"
        self.assertEqual(atts[-1]["error"], last)
        self.assertEqual(st["error_message"], last)
        self.assertEqual(done["error_message"], "step 's1' failed: " + last)
        time.sleep(0.3)
        self.assertEqual(len(sp.records(path="/exhaust")), 3)

    def test_failure_classes(self):
        """408 and connection errors are transient, a 3xx is permanent."""
        sp = self.sp
        sp.script("/t408", [Reply(408, body="request timeout"), Reply(200)])
        sp.script("/t302", Reply(302, body="moved",
                                 headers={"Location": sp.url("/t408")}))
        ids = {p: self.srv.create(simple_workflow(
            "class-" + p, steps=[step("s1", p, "class-" + p)]))["id"]
            for p in ("t408", "t302", "refused")}
        st = steps_by_id(self.srv.wait_for_status(ids["t408"],
                                                  "COMPLETED"))["s1"]
        self.assert_attempts(st, [("t408", "transient_error", 408),
                                  ("t408", "succeeded", 200)])
        st = steps_by_id(self.srv.wait_for_status(ids["t302"],
                                                  "FAILED"))["s1"]
        self.assert_attempts(st, [("t302", "permanent_error", 302)])
        st = steps_by_id(self.srv.wait_for_status(ids["refused"],
                                                  "FAILED"))["s1"]
        atts = self.assert_attempts(st, [("refused", "transient_error",
                                          None)] * 2)
        self.assertIn("provider 'refused' request failed: ",
                      atts[-1]["error"])
        self.assertEqual(st["retry_count"], 1)
        self.assertEqual(len(sp.records(path="/t408")), 2)
        self.assertEqual(len(sp.records(path="/t302")), 1)

    def test_step_max_retries_overrides_provider(self):
        sp = self.sp
        sp.script("/stepretries", Reply(503, body="nope"))
        ids = {}
        for n in (1, 0):
            ids[n] = self.srv.create(simple_workflow(
                "step-retries-%d" % n, steps=[
                    step("s1", "stepretries", "stepretries-%d" % n,
                         max_retries=n)]))["id"]
        for n, wf_id in ids.items():
            done = self.srv.wait_for_status(wf_id, "FAILED")
            st = steps_by_id(done)["s1"]
            self.assertEqual(st["max_retries"], n)
            self.assertEqual(st["retry_count"], n)
            self.assert_attempts(st, [("stepretries", "transient_error",
                                       503)] * (n + 1))
        time.sleep(0.3)
        for n in ids:
            self.assertEqual(len(sp.records(marker="stepretries-%d" % n)),
                             n + 1)

    # ------------------------------------------------------------ fallback
    def test_fallback_after_retries(self):
        sp = self.sp
        sp.script("/primary500", Reply(500, body="primary down"))
        sp.script("/fallback_ok", Reply(200, json={"from": "fallback"}))
        done = self.run_wf([step(
            "s1", "primary500", "fb1",
            provider_config={"provider_type": "primary500",
                             "quality": "primary"},
            active_provider_capabilities=["primary-cap"],
            fallback_provider_type="fallback_ok",
            fallback_provider_config={"quality": "fallback"},
            fallback_provider_capabilities=["fb-cap", "x"])], "COMPLETED")
        st = steps_by_id(done)["s1"]
        self.assertEqual(st["provider_used"], "fallback_ok")
        self.assertEqual(st["result"], {"from": "fallback"})
        self.assertEqual(st["retry_count"], 1)
        self.assertEqual(st["active_provider_capabilities"], ["fb-cap", "x"])
        self.assert_attempts(st, [("primary500", "transient_error", 500),
                                  ("primary500", "transient_error", 500),
                                  ("fallback_ok", "succeeded", 200)])
        prim = sp.records(path="/primary500", marker="fb1")
        fb = sp.records(path="/fallback_ok", marker="fb1")
        self.assertEqual(len(prim), 2)
        self.assertEqual(len(fb), 1)
        self.assertEqual([r["body"]["quality"] for r in prim],
                         ["primary", "primary"])
        self.assertEqual(fb[0]["body"]["quality"], "fallback")

    def test_fallback_after_permanent_error(self):
        sp = self.sp
        sp.script("/primary400", Reply(400, body="unsupported size"))
        sp.script("/fallback_flaky", [Reply(503, body="warming up"),
                                      Reply(200, json={"from": "flaky"})])
        done = self.run_wf([step(
            "s1", "primary400", "fb2",
            fallback_provider_type="fallback_flaky")], "COMPLETED")
        st = steps_by_id(done)["s1"]
        self.assertEqual(st["provider_used"], "fallback_flaky")
        self.assertEqual(st["result"], {"from": "flaky"})
        self.assertEqual(st["retry_count"], 1)
        self.assert_attempts(st, [
            ("primary400", "permanent_error", 400),
            ("fallback_flaky", "transient_error", 503),
            ("fallback_flaky", "succeeded", 200)])
        self.assertEqual(len(sp.records(path="/primary400", marker="fb2")),
                         1)
        self.assertEqual(len(sp.records(path="/fallback_flaky",
                                        marker="fb2")), 2)

    # ------------------------------------------------------------ timeouts
    def test_timeout_is_transient(self):
        sp = self.sp
        sp.script("/slow1", [Reply(200, delay_s=3.0), Reply(200)])
        done = self.run_wf([step("s1", "slow1", "slow1")], "COMPLETED")
        st = steps_by_id(done)["s1"]
        self.assertEqual(st["retry_count"], 1)
        atts = self.assert_attempts(st, [("slow1", "transient_error", None),
                                         ("slow1", "succeeded", 200)])
        self.assertEqual(atts[0]["error"], "provider 'slow1' timed out "
                         "after 1 s")
        recs = sp.records(path="/slow1")
        self.assertEqual(len(recs), 2)
        closed = recs[0]["client_closed"]
        self.assertIsNotNone(closed, "kilnd did not hang up the slow call")
        self.assertGreaterEqual(closed - recs[0]["arrived"], 1.0 - EARLY_S)
        self.assertLessEqual(closed - recs[0]["arrived"], 1.0 + SLACK_S)
        self.assert_gaps(recs, [1.1], "timeout then 100 ms backoff")

    def test_step_deadline_during_retries(self):
        sp = self.sp
        sp.script("/deadline", Reply(503, body="still busy"))
        t0 = time.monotonic()
        wf = self.srv.create(simple_workflow(
            "deadline", steps=[step("s1", "deadline", "deadline")]))
        done = self.srv.wait_for_status(wf["id"], "FAILED", timeout=10)
        elapsed = time.monotonic() - t0
        st = steps_by_id(done)["s1"]
        self.assertIn("deadline of 2 s exceeded", st["error_message"])
        atts = st["attempts"]
        self.assertTrue(any(a["outcome"] == "deadline_exceeded"
                            or "deadline of 2 s exceeded" in
                            (a["error"] or "") for a in atts),
                        json.dumps(atts, indent=1))
        self.assertGreaterEqual(elapsed, 2.0 - EARLY_S)
        self.assertLessEqual(elapsed, 3.0, "deadline of 2 s ended the step "
                             "after %.2f s" % elapsed)
        recs = sp.records(path="/deadline")
        self.assertGreaterEqual(len(recs), 3)   # 0, 0.5, 1.5 s
        self.assertLessEqual(recs[-1]["arrived"] - recs[0]["arrived"],
                             2.0 + EARLY_S, "a request after the deadline")
        self.assertLess(st["retry_count"], 10)
        assert_workflow_shape(done)

    def test_step_deadline_cuts_a_call_in_flight(self):
        sp = self.sp
        sp.script("/deadlinehold", Reply(200, delay_s=8.0))
        t0 = time.monotonic()
        done = self.run_wf([step("s1", "deadlinehold", "dlhold")], "FAILED")
        elapsed = time.monotonic() - t0
        st = steps_by_id(done)["s1"]
        self.assertIn("deadline of 1 s exceeded", st["error_message"])
        self.assertLessEqual(elapsed, 2.0)
        recs = sp.records(path="/deadlinehold")
        self.assertEqual(len(recs), 1)
        self.assertIsNotNone(recs[0]["client_closed"])
        self.assertLessEqual(recs[0]["client_closed"] - recs[0]["arrived"],
                             1.0 + SLACK_S)

    # ------------------------------------------------------------ async
    def test_async_job_polled_to_success(self):
        sp, svc = self.sp, self.svc_ok
        wf = self.srv.create(simple_workflow("async-ok", steps=[
            step("s1", "asyncok", "async-ok",
                 config={"marker": "async-ok", "prompt": "cat"})]))
        polls = sp.wait_for(2, prefix="/jobs/gen/", method="GET")
        job = [j for j in svc.job_list() if j.marker == "async-ok"][0]
        # while polling: the job id is committed and shown
        st = steps_by_id(self.srv.get_wf(wf["id"]))["s1"]
        self.assertEqual(st["status"], "RUNNING")
        self.assertEqual(st["provider_job_id"], job.id)
        self.assert_attempts(st, [("asyncok", "running", ...)],
                             async_job=True)
        self.assertEqual(st["attempts"][0]["job_id"], job.id)

        done = self.srv.wait_for_status(wf["id"], "COMPLETED")
        assert_workflow_shape(done)
        st = steps_by_id(done)["s1"]
        self.assertEqual(st["provider_used"], "asyncok")
        self.assertEqual(st["result"], svc.output_of(job))
        self.assertEqual(st["result"]["echo"], {"marker": "async-ok",
                                                "prompt": "cat"})
        self.assertEqual(done["final_step_result"], st["result"])
        atts = self.assert_attempts(st, [("asyncok", "succeeded", ...)],
                                    async_job=True)
        self.assertEqual(atts[0]["job_id"], job.id)
        self.assertEqual(st["retry_count"], 0)

        self.assertEqual(len(svc.job_list()), 1, "submitted more than once")
        sub = job.submission
        self.assertEqual(sub["method"], "POST")
        self.assertEqual(sub["headers"].get("x-key"), "k-async")
        polls = job.polls
        self.assertEqual(len(polls), 6)    # 5 running, then succeeded
        self.assertEqual(polls[-1]["job_status"], "succeeded")
        for p in polls:
            self.assertEqual(p["method"], "GET")
            self.assertEqual(p["path"], "/jobs/gen/%s/status" % job.id)
            self.assertEqual(p["headers"].get("x-key"), "k-async")
        # poll_initial_ms 100, doubling, capped at poll_max_ms 400
        self.assert_gaps([sub] + polls, [0.1, 0.2, 0.4, 0.4, 0.4, 0.4],
                         "polls")
        self.assertEqual(job.cancels, [])

    def test_async_job_failure(self):
        wf1 = self.srv.create(simple_workflow("async-fail", steps=[
            step("s1", "asyncfail", "async-fail")]))["id"]
        wf2 = self.srv.create(simple_workflow("async-fail0", steps=[
            step("s1", "asyncfail0", "async-fail0")]))["id"]

        # a failed job is transient: retried with a new submission
        done = self.srv.wait_for_status(wf1, "COMPLETED")
        st = steps_by_id(done)["s1"]
        jobs = self.svc_fail.job_list()
        self.assertEqual(len(jobs), 2)
        self.assertEqual(st["retry_count"], 1)
        atts = self.assert_attempts(st, [("asyncfail", "job_failed", ...),
                                         ("asyncfail", "succeeded", ...)],
                                    async_job=True)
        self.assertEqual([a["job_id"] for a in atts],
                         [jobs[0].id, jobs[1].id])
        self.assertIn("the GPU caught fire", atts[0]["error"])
        self.assertIn(jobs[0].id, atts[0]["error"])
        self.assertEqual(st["result"], self.svc_fail.output_of(jobs[1]))

        # without retries the step fails with the job's error
        done = self.srv.wait_for_status(wf2, "FAILED")
        st = steps_by_id(done)["s1"]
        job = self.svc_fail0.job_list()[0]
        atts = self.assert_attempts(st, [("asyncfail0", "job_failed", ...)],
                                    async_job=True)
        self.assertEqual(atts[0]["job_id"], job.id)
        self.assertEqual(st["error_message"],
                         "provider 'asyncfail0' job %s ended failed: "
                         "the GPU caught fire" % job.id)
        self.assertEqual(len(self.svc_fail0.job_list()), 1)

    def test_async_templates_and_result_url(self):
        """status_url_template / result_url_template; a result fetch that
        fails transiently is fetched again, not a new attempt."""
        svc = self.svc_res
        done = self.run_wf([step("s1", "asyncres", "async-res")],
                           "COMPLETED")
        st = steps_by_id(done)["s1"]
        jobs = svc.job_list()
        self.assertEqual(len(jobs), 1)
        job = jobs[0]
        self.assertEqual(st["result"], svc.output_of(job))
        self.assert_attempts(st, [("asyncres", "succeeded", ...)],
                             async_job=True)
        self.assertEqual(st["attempts"][0]["job_id"], job.id)
        self.assertEqual(st["retry_count"], 0)
        self.assertEqual(len(job.result_fetches), 2)
        self.assertEqual(job.result_fetches[0]["path"],
                         "/jobs/genres/%s/result" % job.id)
        for r in [job.submission] + job.polls + job.result_fetches:
            self.assertEqual(r["headers"].get("x-key"), "k-res", r["path"])

    def test_async_submission_without_job_id(self):
        sp = self.sp
        sp.script("/noid", Reply(200, json={"accepted": True}))
        done = self.run_wf([step("s1", "asyncnoid", "noid")], "FAILED")
        st = steps_by_id(done)["s1"]
        atts = self.assert_attempts(st, [("asyncnoid", "permanent_error",
                                          200)], async_job=True)
        self.assertIsNone(atts[0]["job_id"])
        self.assertIn("no job id at /id", atts[0]["error"])
        self.assertEqual(st["error_message"], atts[0]["error"])
        time.sleep(0.3)
        self.assertEqual(len(sp.records(path="/noid")), 1)

    def test_async_poll_errors(self):
        """A poll that fails transiently is polled again (same attempt); a
        poll answered 404 fails the attempt permanently."""
        wf1 = self.srv.create(simple_workflow("poll-503", steps=[
            step("s1", "asyncpoll", "poll-503")]))["id"]
        wf2 = self.srv.create(simple_workflow("poll-404", steps=[
            step("s1", "asyncpoll404", "poll-404")]))["id"]

        done = self.srv.wait_for_status(wf1, "COMPLETED")
        st = steps_by_id(done)["s1"]
        jobs = self.svc_poll.job_list()
        self.assertEqual(len(jobs), 1, "resubmitted after a poll error")
        self.assertEqual([p["job_status"] for p in jobs[0].polls],
                         ["running"] + ["fault 503"] * 7 + ["succeeded"])
        atts = self.assert_attempts(st, [("asyncpoll", "succeeded", ...)],
                                    async_job=True)
        self.assertEqual(atts[0]["job_id"], jobs[0].id)
        self.assertEqual(st["retry_count"], 0)
        self.assertEqual(st["result"], self.svc_poll.output_of(jobs[0]))

        done = self.srv.wait_for_status(wf2, "FAILED")
        st = steps_by_id(done)["s1"]
        jobs = self.svc_poll404.job_list()
        self.assertEqual(len(jobs), 1)
        atts = self.assert_attempts(st, [("asyncpoll404", "permanent_error",
                                          404)], async_job=True)
        self.assertEqual(atts[0]["job_id"], jobs[0].id)
        self.assertIn("no such job", atts[0]["error"])
        time.sleep(0.5)
        self.assertEqual(len(jobs[0].polls), 1)

    def test_async_step_deadline(self):
        svc = self.svc_dl
        t0 = time.monotonic()
        done = self.run_wf([step("s1", "asyncdeadline", "async-dl")],
                           "FAILED")
        elapsed = time.monotonic() - t0
        st = steps_by_id(done)["s1"]
        self.assertIn("deadline of 1 s exceeded", st["error_message"])
        self.assertLessEqual(elapsed, 2.0)
        job = svc.job_list()[0]
        self.assertEqual(st["attempts"][-1]["job_id"], job.id)
        time.sleep(0.8)
        late = [p for p in job.polls
                if p["arrived"] - job.submitted > 1.0 + EARLY_S]
        self.assertEqual(late, [], "polled after the deadline")
        self.assertEqual(len(svc.job_list()), 1)

    def test_resume_while_job_running_does_not_resubmit(self):
        """Pause while a job is polled, resume before it finishes: the
        job is carried on (providers.md: "resume carries on"), not paid
        for twice."""
        sp, svc = self.sp, self.svc_resume
        wf = self.srv.create(simple_workflow("resume-async", steps=[
            step("s1", "asyncresume", "resume-async")]))
        sp.wait_for(1, prefix="/jobs/genresume/", method="GET")
        self.assertStatus(self.srv.action(wf["id"], "pause"), 200)
        time.sleep(0.2)
        self.assertEqual(steps_by_id(self.srv.get_wf(wf["id"]))["s1"]
                         ["status"], "RUNNING")
        self.assertStatus(self.srv.action(wf["id"], "resume"), 200)
        t_resume = time.monotonic()
        done = self.srv.wait_for_status(wf["id"], "COMPLETED")
        time.sleep(0.5)
        st = steps_by_id(done)["s1"]
        jobs = svc.job_list()
        self.assertEqual(len(jobs), 1, "the job was submitted again after "
                         "resume: attempts %s; job %s got %d cancel calls "
                         "and %d polls after the resume" % (
                             json.dumps(st["attempts"]), jobs[0].id,
                             len(jobs[0].cancels),
                             sum(p["arrived"] > t_resume
                                 for p in jobs[0].polls)))
        self.assertEqual(st["result"], svc.output_of(jobs[0]))

    # ------------------------------------------------------------ cancel
    def test_cancel_aborts_sync_call_in_flight(self):
        sp = self.sp
        sp.script("/hold", Reply(200, hold=True, hold_max_s=30))
        wf = self.srv.create(simple_workflow("cancel-sync", steps=[
            step("s1", "hold", "cancel-sync"),
            step("s2", "syncb", "cancel-sync-next", depends_on=["s1"])]))
        rec = sp.wait_for(1, path="/hold", marker="cancel-sync")[0]
        self.assertIsNone(rec["client_closed"])
        r = self.srv.request("DELETE", "/api/v1/workflows/" + wf["id"])
        t_del = time.monotonic()
        self.assertStatus(r, 200)
        self.assertEqual(r.json["status"], "CANCELLED")
        wf2 = self.srv.get_wf(wf["id"])
        self.assertEqual(wf2["status"], "CANCELLED")
        for s in wf2["steps"]:
            self.assertEqual(s["status"], "CANCELLED", s["step_id"])
        st = steps_by_id(wf2)["s1"]
        self.assertEqual(st["attempts"][-1]["outcome"], "cancelled")
        kilnlib.wait_until(
            lambda: sp.records(path="/hold",
                               marker="cancel-sync")[0]["client_closed"],
            timeout=3, what="kilnd to hang up the held provider call")
        closed = sp.records(path="/hold",
                            marker="cancel-sync")[0]["client_closed"]
        self.assertLessEqual(closed - t_del, 1.0,
                             "the provider connection was closed %.2f s "
                             "after the cancel" % (closed - t_del))
        time.sleep(0.3)
        self.assertEqual(len(sp.records(path="/hold")), 1)
        self.assertEqual(sp.records(marker="cancel-sync-next"), [])
        assert_workflow_shape(wf2)

    def test_cancel_during_backoff(self):
        """A step waiting for its retry is cancelled: no retry follows."""
        sp = self.sp
        sp.script("/backoffcancel", Reply(503, body="busy"))
        wf = self.srv.create(simple_workflow("cancel-backoff", steps=[
            step("s1", "backoffcancel", "cancel-backoff")]))
        sp.wait_for(1, path="/backoffcancel")
        time.sleep(0.2)
        r = self.srv.request("DELETE", "/api/v1/workflows/" + wf["id"])
        self.assertStatus(r, 200)
        self.assertEqual(r.json["status"], "CANCELLED")
        time.sleep(1.5)     # the retry was due 1 s after the 503
        self.assertEqual(len(sp.records(path="/backoffcancel")), 1,
                         "a cancelled step was retried")
        st = steps_by_id(self.srv.get_wf(wf["id"]))["s1"]
        self.assertEqual(st["status"], "CANCELLED")
        self.assertEqual(st["attempts"][0]["outcome"], "transient_error")
        self.assertFalse([a for a in st["attempts"]
                          if a["outcome"] == "running"], st["attempts"])

    def test_cancel_during_async_submission(self):
        """providers.md: an async submission in flight is let finish, so
        that the job it creates is cancelled as well."""
        sp, svc = self.sp, self.svc_subslow
        wf = self.srv.create(simple_workflow("cancel-submit", steps=[
            step("s1", "asyncsubslow", "cancel-submit")]))
        sub = sp.wait_for(1, path="/jobs/gensubslow/submit")[0]
        r = self.srv.request("DELETE", "/api/v1/workflows/" + wf["id"])
        self.assertStatus(r, 200)
        self.assertEqual(r.json["status"], "CANCELLED")
        kilnlib.wait_until(lambda: svc.job_list(), timeout=3,
                           what="the submission to be answered")
        job = svc.job_list()[0]
        kilnlib.wait_until(lambda: job.cancels, timeout=3,
                           what="the cancel call of job %s" % job.id)
        sub = sp.records(path="/jobs/gensubslow/submit")[0]
        self.assertIsNone(sub["client_closed"],
                          "the submission was aborted")
        self.assertEqual(job.cancels[0]["method"], "POST")
        time.sleep(0.5)
        self.assertEqual(job.polls, [], "a cancelled job was polled")
        self.assertEqual(len(svc.job_list()), 1)
        st = steps_by_id(self.srv.get_wf(wf["id"]))["s1"]
        self.assertEqual(st["status"], "CANCELLED")

    def test_cancel_drops_a_queued_request(self):
        """A request waiting for its provider's concurrency lane is
        dropped by the cancel: it never reaches the provider."""
        sp = self.sp
        sp.script("/lane1", Reply(200, delay_s=1.5))
        wf_a = self.srv.create(simple_workflow("queued-a", steps=[
            step("s1", "lane1", "queued-a")]))
        sp.wait_for(1, path="/lane1", marker="queued-a")
        wf_b = self.srv.create(simple_workflow("queued-b", steps=[
            step("s1", "lane1", "queued-b")]))
        time.sleep(0.3)
        self.assertEqual(sp.records(marker="queued-b"), [])
        r = self.srv.request("DELETE", "/api/v1/workflows/" + wf_b["id"])
        self.assertStatus(r, 200)
        self.srv.wait_for_status(wf_a["id"], "COMPLETED")
        time.sleep(0.5)
        self.assertEqual(sp.records(marker="queued-b"), [],
                         "a cancelled step's queued request was sent")
        self.assertEqual(self.srv.get_wf(wf_b["id"])["status"], "CANCELLED")

    def test_cancel_aborts_artifact_download(self):
        """providers.md: DELETE aborts the workflow's transfers in flight;
        an artifact download is one."""
        sp, srv = self.sp, self.srv
        sp.script("/files/slow.png", Reply(200, body=png_bytes(8, 8),
                                           content_type="image/png",
                                           delay_s=4.0))
        sp.script("/artslow", Reply(200, json={"images": [
            {"url": sp.url("/files/slow.png")}]}))
        wf = srv.create(simple_workflow("cancel-download", steps=[
            step("s1", "artslow", "cancel-download")]))
        sp.wait_for(1, path="/files/slow.png")
        r = srv.request("DELETE", "/api/v1/workflows/" + wf["id"])
        t_del = time.monotonic()
        self.assertStatus(r, 200)
        self.assertEqual(r.json["status"], "CANCELLED")
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and \
                sp.records(path="/files/slow.png")[0]["client_closed"] is None:
            time.sleep(0.02)
        rec = sp.records(path="/files/slow.png")[0]
        if rec["client_closed"] is None:
            # let the download end (and keep it from the next test)
            kilnlib.wait_until(lambda: sp.records(
                path="/files/slow.png")[0]["answered"], timeout=6)
            time.sleep(0.5)
            wf_dir = os.path.join(srv.data_dir, "artifacts", wf["id"])
            left = [os.path.join(d, f) for d, _, fs in os.walk(wf_dir)
                    for f in fs]
            cur = srv.get_wf(wf["id"])
            self.fail("the artifact download was not aborted by the cancel:"
                      " it ran to its end %.1f s after the DELETE; files "
                      "left under the data dir: %s; workflow now %s, step "
                      "%s" % (sp.records(path="/files/slow.png")[0]
                              ["answered"] - t_del,
                              [os.path.relpath(x, srv.data_dir)
                               for x in left], cur["status"],
                              steps_by_id(cur)["s1"]["status"]))
        self.assertLessEqual(rec["client_closed"] - t_del, 1.0)
        cur = srv.get_wf(wf["id"])
        self.assertEqual(cur["status"], "CANCELLED")
        self.assertEqual(steps_by_id(cur)["s1"]["status"], "CANCELLED")

    def test_cancel_async_jobs_call_cancel_url(self):
        """Cancel sends cancel_method with cancel_body to the cancel URL
        of every job of the workflow, and polling stops."""
        svc = self.svc_cancel
        wf = self.srv.create(simple_workflow("cancel-async", steps=[
            step("s1", "asynccancel", "cancel-async-1"),
            step("s2", "asynccancel", "cancel-async-2")]))
        kilnlib.wait_until(lambda: len(svc.job_list()) == 2 and
                           all(len(j.polls) >= 2 for j in svc.job_list()),
                           timeout=5, what="both jobs polled twice")
        jobs = svc.job_list()
        r = self.srv.request("DELETE", "/api/v1/workflows/" + wf["id"])
        self.assertStatus(r, 200)
        self.assertEqual(r.json["status"], "CANCELLED")
        kilnlib.wait_until(lambda: all(j.cancels for j in jobs), timeout=3,
                           what="the cancel calls of %s"
                           % [j.id for j in jobs])
        for job in jobs:
            cancel = job.cancels[0]
            self.assertEqual(cancel["method"], "PUT")
            self.assertEqual(cancel["path"], "/jobs/gencancel/%s/cancel"
                             % job.id)
            self.assertEqual(cancel["body"], {
                "job": job.id, "why": "kiln cancelled " + job.id, "n": 1})
            self.assertEqual(cancel["headers"].get("x-key"), "k-cancel")
            self.assertIn("application/json",
                          cancel["headers"].get("content-type", ""))
        time.sleep(1.2)     # 3 poll intervals at poll_max_ms
        for job in jobs:
            late = [p for p in job.polls
                    if p["arrived"] > job.cancels[0]["arrived"] + EARLY_S]
            self.assertEqual(late, [], "polls after the cancel call")
            self.assertEqual(len(job.cancels), 1)
        self.assertEqual(len(svc.job_list()), 2)
        cur = self.srv.get_wf(wf["id"])
        for st in cur["steps"]:
            self.assertEqual(st["status"], "CANCELLED")
            atts = self.assert_attempts(st, [("asynccancel", "cancelled",
                                              ...)], async_job=True)
            job = [j for j in jobs
                   if j.marker == st["config"]["marker"]][0]
            self.assertEqual(atts[0]["job_id"], job.id)

    # ------------------------------------------------------------ pause
    def test_pause_lets_async_job_finish(self):
        sp, svc = self.sp, self.svc_pause
        sp.script("/syncb", Reply(200))
        wf = self.srv.create(simple_workflow("pause-async", steps=[
            step("a", "asyncpause", "pause-a"),
            step("b", "syncb", "pause-b", depends_on=["a"],
                 input_mappings=[{"from_step": "a", "from_field": "job_id",
                                  "to_field": "upstream_job"}])]))
        sp.wait_for(1, prefix="/jobs/genpause/", method="GET")
        r = self.srv.action(wf["id"], "pause")
        self.assertStatus(r, 200)
        self.assertEqual(r.json["status"], "PAUSED")
        cur = self.srv.wait_for_step(wf["id"], "a", "COMPLETED", timeout=10)
        self.assertEqual(cur["status"], "PAUSED")
        job = svc.job_list()[0]
        self.assertEqual(steps_by_id(cur)["a"]["result"], svc.output_of(job))
        time.sleep(0.7)
        cur = self.srv.get_wf(wf["id"])
        self.assertEqual(cur["status"], "PAUSED")
        self.assertEqual(steps_by_id(cur)["b"]["status"], "PENDING")
        self.assertEqual(sp.records(marker="pause-b"), [],
                         "step b started while the workflow was paused")
        r = self.srv.action(wf["id"], "resume")
        self.assertStatus(r, 200)
        done = self.srv.wait_for_status(wf["id"], "COMPLETED")
        assert_workflow_shape(done)
        b = sp.records(marker="pause-b")
        self.assertEqual(len(b), 1)
        self.assertEqual(b[0]["body"]["upstream_job"], job.id)
        self.assertEqual(len(svc.job_list()), 1)
        self.assertEqual(len(steps_by_id(done)["a"]["attempts"]), 1)

    # ------------------------------------------------------------ artifacts
    def test_artifacts_downloaded_served_and_cleaned(self):
        sp, srv = self.sp, self.srv
        files = {"/files/a.png": png_bytes(8, 8, seed=1),
                 "/files/b.png": png_bytes(16, 16, seed=2, pad=3000)}
        for path, data in files.items():
            sp.add_file(path, data)
        urls = [sp.url(p) for p in files]
        sp.script("/art", Reply(200, json={
            "images": [{"url": urls[0], "w": 8}, {"url": urls[1], "w": 16}],
            "seed": 7}))
        done = self.run_wf([step("s1", "artp", "art")], "COMPLETED")
        st = steps_by_id(done)["s1"]
        wf_id, step_uuid = done["id"], st["id"]
        res = st["result"]
        self.assertEqual(res["seed"], 7)
        self.assertEqual(res["images"][0]["url"], urls[0])
        arts = res.get("artifacts")
        self.assertIsInstance(arts, list, json.dumps(res))
        self.assertEqual(len(arts), 2)
        for i, (a, (path, data)) in enumerate(zip(arts, files.items())):
            self.assertEqual(set(a), {"url", "path", "artifact_url",
                                      "size_bytes", "content_type",
                                      "sha256"}, a)
            self.assertEqual(a["url"], sp.url(path))
            self.assertEqual(a["path"], "artifacts/%s/%s/%d.png"
                             % (wf_id, step_uuid, i))
            self.assertEqual(a["artifact_url"], "/api/v1/artifacts/%s/%s/"
                             "%d.png" % (wf_id, step_uuid, i))
            self.assertEqual(a["size_bytes"], len(data))
            self.assertEqual(a["content_type"], "image/png")
            self.assertEqual(a["sha256"], hashlib.sha256(data).hexdigest())
            full = os.path.join(srv.data_dir, a["path"])
            with open(full, "rb") as f:
                self.assertEqual(f.read(), data, full)
        self.assertEqual(res["result_image_path"], arts[0]["path"])
        step_dir = os.path.join(srv.data_dir, "artifacts", wf_id, step_uuid)
        self.assertEqual(sorted(os.listdir(step_dir)), ["0.png", "1.png"])
        # the provider call carries its headers, the downloads do not
        call = sp.records(path="/art", marker="art")[0]
        self.assertEqual(call["headers"].get("authorization"),
                         "Bearer provider-secret")
        for path in files:
            got = sp.records(path=path)
            self.assertEqual(len(got), 1, path)
            self.assertEqual(got[0]["method"], "GET")
            self.assertNotIn("authorization", got[0]["headers"])
            self.assertNotIn("x-key", got[0]["headers"])

        # served to callers who may see the workflow
        for a, data in zip(arts, files.values()):
            r = srv.request("GET", a["artifact_url"])
            self.assertStatus(r, 200, "GET " + a["artifact_url"])
            self.assertEqual(r.body, data)
            self.assertEqual(r.header("Content-Type"), "image/png")
        r = srv.request("GET", arts[0]["artifact_url"], token=None)
        self.assertStatus(r, 401)
        r = srv.request("GET", arts[0]["artifact_url"],
                        token=tenant_token("someone-else"))
        self.assertStatus(r, 404)
        r = srv.request("GET", "/api/v1/artifacts/%s/%s/7.png"
                        % (wf_id, step_uuid))
        self.assertStatus(r, 404)

        # cleanup removes the files
        r = srv.action(wf_id, "cleanup")
        self.assertStatus(r, 200)
        self.assertEqual(sorted(r.json["cleanup"]["deleted_paths"]),
                         sorted(a["path"] for a in arts))
        for a in arts:
            self.assertFalse(os.path.exists(os.path.join(srv.data_dir,
                                                         a["path"])))
        self.assertFalse(os.path.exists(os.path.join(srv.data_dir,
                                                     "artifacts", wf_id)))
        r = srv.request("GET", arts[0]["artifact_url"])
        self.assertStatus(r, 404)

    def test_artifact_download_failure(self):
        """A download that fails fails the step; the provider is not
        called again."""
        sp = self.sp
        sp.script("/art404", Reply(200, json={
            "images": [{"url": sp.url("/files/missing.png")}]}))
        done = self.run_wf([step("s1", "art404", "art404")], "FAILED")
        st = steps_by_id(done)["s1"]
        self.assertIn(sp.url("/files/missing.png"), st["error_message"])
        self.assertIn("404", st["error_message"])
        self.assert_attempts(st, [("art404", "permanent_error", ...)])
        self.assertEqual(len(sp.records(path="/art404")), 1)

    def test_artifact_larger_than_max_bytes(self):
        sp, srv = self.sp, self.srv
        big = png_bytes(8, 8, seed=3, pad=5000)
        sp.add_file("/files/big.png", big)
        sp.script("/artbig", Reply(200, json={
            "images": [{"url": sp.url("/files/big.png")}]}))
        done = self.run_wf([step("s1", "artbig", "artbig")], "FAILED")
        st = steps_by_id(done)["s1"]
        err = st["error_message"]
        self.assertIn("1000 bytes", err)
        self.assertIn(sp.url("/files/big.png"), err)
        atts = self.assert_attempts(st, [("artbig", "permanent_error", ...)])
        self.assertEqual(atts[0]["error"], err)
        self.assertEqual(len(sp.records(path="/artbig")), 1,
                         "the provider was called again after a failed "
                         "download")
        step_dir = os.path.join(srv.data_dir, "artifacts", done["id"],
                                st["id"])
        left = os.listdir(step_dir) if os.path.isdir(step_dir) else []
        self.assertEqual(left, [], "partial download left behind")

    def test_step_deadline_covers_artifact_download(self):
        """providers.md: a step that has not finished step_deadline_s
        after its first attempt started fails; downloading its artifacts
        is part of the step."""
        sp, srv = self.sp, self.srv
        sp.script("/files/slowdl.png", Reply(200, body=png_bytes(8, 8),
                                             content_type="image/png",
                                             delay_s=3.0))
        sp.script("/artdl", Reply(200, json={"images": [
            {"url": sp.url("/files/slowdl.png")}]}))
        t0 = time.monotonic()
        wf = srv.create(simple_workflow("deadline-download", steps=[
            step("s1", "artdl", "deadline-download")]))
        deadline = time.monotonic() + 8
        while True:
            cur = srv.get_wf(wf["id"])
            if cur["status"] in kilnlib.TERMINAL or \
                    time.monotonic() > deadline:
                break
            time.sleep(0.05)
        elapsed = time.monotonic() - t0
        if not sp.records(path="/files/slowdl.png")[0]["answered"] and \
                sp.records(path="/files/slowdl.png")[0]["client_closed"] \
                is None:
            kilnlib.wait_until(lambda: sp.records(
                path="/files/slowdl.png")[0]["answered"], timeout=6)
        st = steps_by_id(cur)["s1"]
        self.assertEqual(cur["status"], "FAILED",
                         "step_deadline_s 1 but the step ended %s after "
                         "%.1f s: %s" % (st["status"], elapsed,
                                         json.dumps(st["attempts"])))
        self.assertIn("deadline of 1 s exceeded", st["error_message"])
        self.assertLessEqual(elapsed, 2.0)

    # ------------------------------------------------------------ lanes
    def test_provider_concurrency(self):
        sp = self.sp
        sp.script("/lane", Reply(200, delay_s=0.4))
        t0 = time.monotonic()
        done = self.run_wf([step("s%d" % i, "lane2", "lane-%d" % i)
                            for i in range(6)], "COMPLETED")
        elapsed = time.monotonic() - t0
        self.assertEqual(len(sp.records(path="/lane")), 6)
        self.assertEqual(sp.peak("/lane"), 2,
                         "requests in flight at once at the provider")
        self.assertGreaterEqual(elapsed, 3 * 0.4 - EARLY_S)
        for st in done["steps"]:
            self.assertEqual(st["status"], "COMPLETED")
            self.assertEqual(len(st["attempts"]), 1)


class GlobalLimitTest(EngineCase):
    def test_max_inflight_bounds_all_providers(self):
        """max_inflight bounds the provider requests of all providers
        together."""
        sp = ScriptedProvider()
        self.addCleanup(sp.close)
        sp.script("/g1", Reply(200, delay_s=0.3))
        sp.script("/g2", Reply(200, delay_s=0.3))
        srv = self.start_server(config={"max_inflight": 2, "providers": {
            "g1": {"type": "http", "url": sp.url("/g1"), "concurrency": 10},
            "g2": {"type": "http", "url": sp.url("/g2"),
                   "concurrency": 10}}}, name="kilnd-max-inflight")
        wf = srv.create(simple_workflow("max-inflight", steps=[
            step("s%d" % i, "g1" if i % 2 else "g2", "g-%d" % i)
            for i in range(6)]))
        srv.wait_for_status(wf["id"], "COMPLETED")
        self.assertEqual(len(sp.records(prefix="/g")), 6)
        self.assertEqual(sp.max_total_inflight, 2)


class KeepAliveTest(EngineCase):
    def test_idle_connections_survive_a_lull(self):
        """Connections to a provider stay open through a lull: a chain of
        calls one at a time between two bursts of 12 does not close the
        first burst's connections (libcurl's own cache shrinks to 4 per
        transfer in progress), so the second burst opens none."""
        sp = ScriptedProvider()
        self.addCleanup(sp.close)
        sp.script("/burst", Reply(200, delay_s=0.4))
        sp.script("/chain", Reply(200))
        srv = self.start_server(config={"providers": {
            "burst": {"type": "http", "url": sp.url("/burst"),
                      "concurrency": 12},
            "chain": {"type": "http", "url": sp.url("/chain")}}},
            name="kilnd-keepalive")

        def run(name, steps):
            wf = srv.create(simple_workflow(name, steps=steps))
            srv.wait_for_status(wf["id"], "COMPLETED")

        def burst(name):
            run(name, [step("b%d" % i, "burst", "%s-%d" % (name, i))
                       for i in range(12)])

        burst("ka-first")
        opened = sp.server.connections
        self.assertEqual(sp.peak("/burst"), 12, "the burst ran at once")
        self.assertGreaterEqual(opened, 12)
        run("ka-lull", [step("c%d" % i, "chain", "lull-%d" % i,
                             **({"depends_on": ["c%d" % (i - 1)]}
                                if i else {}))
                        for i in range(12)])
        burst("ka-second")
        self.assertEqual(sp.peak("/burst"), 12)
        self.assertEqual(sp.server.connections, opened,
                         "connections opened again after the lull")


class CrashTest(EngineCase):
    """SIGKILL kilnd three times while async jobs and sync calls are in
    flight; every workflow still completes, no step is lost, and nothing is
    submitted more than the crashes explain."""

    def test_kill_while_paused(self):
        """kill -9 while a paused workflow's job is polled: after the
        restart the same job is polled to its end, the workflow stays
        PAUSED and its next step waits for resume."""
        sp = ScriptedProvider()
        self.addCleanup(sp.close)
        svc = sp.job_service("kp", duration_s=1.5)
        sp.script("/kpb", Reply(200))
        srv = self.start_server(config={"providers": {
            "kp": {"type": "http", "mode": "async", "url": svc.submit_url,
                   "async": {"job_id_pointer": "/id",
                             "status_url_pointer": "/status_url",
                             "status_pointer": "/status",
                             "success_values": ["succeeded"],
                             "result_pointer": "/output",
                             "poll_initial_ms": 200, "poll_max_ms": 300}},
            "kpb": {"type": "http", "url": sp.url("/kpb")}}},
            name="kilnd-crash-paused")
        wf = srv.create(simple_workflow("kill-paused", steps=[
            step("a", "kp", "kp-a"),
            step("b", "kpb", "kp-b", depends_on=["a"])]))
        sp.wait_for(1, prefix="/jobs/kp/", method="GET")
        self.assertStatus(srv.action(wf["id"], "pause"), 200)
        srv.kill()
        t_restart = time.monotonic()
        srv.start()
        cur = srv.wait_for_step(wf["id"], "a", "COMPLETED", timeout=10)
        self.assertEqual(cur["status"], "PAUSED")
        jobs = svc.job_list()
        self.assertEqual(len(jobs), 1, "the job was submitted again")
        self.assertTrue([p for p in jobs[0].polls
                         if p["arrived"] > t_restart])
        time.sleep(0.5)
        self.assertEqual(sp.records(path="/kpb"), [])
        self.assertEqual(srv.get_wf(wf["id"])["status"], "PAUSED")
        self.assertStatus(srv.action(wf["id"], "resume"), 200)
        done = srv.wait_for_status(wf["id"], "COMPLETED")
        a = steps_by_id(done)["a"]
        self.assert_attempts(a, [("kp", "succeeded", ...)], async_job=True)
        self.assertEqual(a["attempts"][0]["job_id"], jobs[0].id)
        self.assertEqual(len(sp.records(path="/kpb")), 1)

    def test_kill_on_fallback(self):
        """kill -9 while the fallback provider's call is in flight: the
        restart carries on with the fallback, not the primary."""
        sp = ScriptedProvider()
        self.addCleanup(sp.close)
        sp.script("/kfp", Reply(500, body="primary down"))
        sp.script("/kff", [Reply(200, delay_s=5.0), Reply(200)])
        srv = self.start_server(config={"providers": {
            "kfp": {"type": "http", "url": sp.url("/kfp")},
            "kff": {"type": "http", "url": sp.url("/kff")}}},
            name="kilnd-crash-fallback")
        wf = srv.create(simple_workflow("kill-fallback", steps=[
            step("s1", "kfp", "kf", fallback_provider_type="kff",
                 fallback_provider_capabilities=["fb"])]))
        sp.wait_for(1, path="/kff")
        srv.kill()
        srv.start()
        done = srv.wait_for_status(wf["id"], "COMPLETED")
        st = steps_by_id(done)["s1"]
        self.assertEqual(st["provider_used"], "kff")
        self.assertEqual(st["active_provider_capabilities"], ["fb"])
        self.assert_attempts(st, [("kfp", "transient_error", 500),
                                  ("kff", "interrupted", None),
                                  ("kff", "succeeded", 200)])
        self.assertEqual(len(sp.records(path="/kfp")), 1,
                         "the primary was called again after the restart")
        self.assertEqual(len(sp.records(path="/kff")), 2)

    def test_deadline_counts_from_first_attempt_across_kill(self):
        """step_deadline_s counts from the step's first attempt, also
        after a restart."""
        sp = ScriptedProvider()
        self.addCleanup(sp.close)
        sp.script("/kdl", Reply(200, delay_s=10.0))
        srv = self.start_server(config={"providers": {
            "kdl": {"type": "http", "url": sp.url("/kdl"), "timeout_s": 20,
                    "step_deadline_s": 3}}}, name="kilnd-crash-deadline")
        wf = srv.create(simple_workflow("kill-deadline", steps=[
            step("s1", "kdl", "kdl")]))
        first = sp.wait_for(1, path="/kdl")[0]
        time.sleep(1.0)
        srv.kill()
        srv.start()
        done = srv.wait_for_status(wf["id"], "FAILED", timeout=10)
        t_failed = time.monotonic()
        st = steps_by_id(done)["s1"]
        self.assertIn("deadline of 3 s exceeded", st["error_message"])
        self.assertLessEqual(t_failed - first["arrived"], 3.0 + 0.6,
                             "the deadline restarted with kilnd")
        self.assertEqual([a["outcome"] for a in st["attempts"]][0],
                         "interrupted")

    def test_kill_during_backoff(self):
        """A step waiting for its retry when kilnd dies waits out the rest
        of its backoff after the restart: no early retry, no interrupted
        attempt."""
        sp = ScriptedProvider()
        self.addCleanup(sp.close)
        sp.script("/cb", [Reply(503, body="busy"), Reply(200)])
        srv = self.start_server(config={"providers": {"cb": {
            "type": "http", "url": sp.url("/cb"), "max_retries": 1,
            "retry": retry(2000)}}}, name="kilnd-crash-backoff")
        wf = srv.create(simple_workflow("kill-backoff", steps=[
            step("s1", "cb", "kill-backoff")]))
        first = sp.wait_for(1, path="/cb")[0]
        time.sleep(0.5)
        srv.kill()
        srv.start()
        done = srv.wait_for_status(wf["id"], "COMPLETED")
        st = steps_by_id(done)["s1"]
        self.assertEqual(st["retry_count"], 1)
        self.assert_attempts(st, [("cb", "transient_error", 503),
                                  ("cb", "succeeded", 200)])
        recs = sp.records(path="/cb")
        self.assertEqual(len(recs), 2)
        self.assertIs(recs[0]["seq"], first["seq"])
        self.assert_gaps(recs, [2.0], "retry across a kill")

    N_WORKFLOWS = 40
    KILL_AFTER_S = (0.3, 1.2, 2.5)

    def test_kill_9_while_jobs_in_flight(self):
        sp = ScriptedProvider()
        self.addCleanup(sp.close)
        svc = sp.job_service("crash", duration_s=1.5)
        sp.script("/csync", Reply(200, delay_s=0.5))
        cfg = {"log_level": "info", "providers": {
            "cjobs": {"type": "http", "mode": "async",
                      "url": svc.submit_url, "timeout_s": 5,
                      "async": {"job_id_pointer": "/id",
                                "status_url_pointer": "/status_url",
                                "cancel_url_pointer": "/cancel_url",
                                "status_pointer": "/status",
                                "success_values": ["succeeded"],
                                "failure_values": ["failed"],
                                "result_pointer": "/output",
                                "poll_initial_ms": 200,
                                "poll_max_ms": 400}},
            "csync": {"type": "http", "url": sp.url("/csync"),
                      "timeout_s": 5}}}
        srv = self.start_server(config=cfg, name="kilnd-crash")

        kinds = {}          # marker -> "async" | "sync"
        wf_ids = []

        def create(n):
            for _ in range(n):
                i = len(wf_ids)
                first, second = (("cjobs", "csync") if i % 2 == 0
                                 else ("csync", "cjobs"))
                ma, mb = "c%d-a" % i, "c%d-b" % i
                kinds[ma] = "async" if first == "cjobs" else "sync"
                kinds[mb] = "async" if second == "cjobs" else "sync"
                wf = srv.create(simple_workflow("crash-%d" % i, steps=[
                    step("a", first, ma),
                    step("b", second, mb, depends_on=["a"],
                         input_mappings=[{"from_step": "a",
                                          "from_field": "/echo/marker",
                                          "to_field": "parent"}])]))
                wf_ids.append(wf["id"])

        # Workflows are created in batches so that every kill finds
        # submissions, polls and sync calls in flight: (seconds after the
        # (re)start, how many).
        batches = ([(0.0, 20)], [(0.0, 10)], [(1.2, 6), (2.35, 4)])
        kills = []
        for delay, plan in zip(self.KILL_AFTER_S, batches):
            t_start = time.monotonic()
            for at, n in plan:
                time.sleep(max(0.0, t_start + at - time.monotonic()))
                create(n)
            time.sleep(max(0.0, t_start + delay - time.monotonic()))
            k = {"kill": time.monotonic(), "kill_wall": time.time()}
            srv.kill()
            k["restart"] = time.monotonic()
            k["restart_wall"] = time.time()
            kills.append(k)
            srv.start()
        self.assertEqual(len(wf_ids), self.N_WORKFLOWS)

        final = {}
        for wf_id in wf_ids:
            final[wf_id] = srv.wait_for_status(wf_id, "COMPLETED",
                                               timeout=30)
        errors = [line for line in srv.log_text().splitlines()
                  if re.match(r"^\S+Z error ", line)]
        self.assertEqual(errors, [], "kilnd logged errors")

        # ---- every step completed, with its own result
        steps = {}          # marker -> step
        for wf_id, wf in final.items():
            assert_workflow_shape(wf)
            for st in wf["steps"]:
                marker = st["config"]["marker"]
                steps[marker] = st
                self.assertEqual(st["status"], "COMPLETED")
                self.assertEqual(st["retry_count"], 0, marker)
                self.assertEqual(st["result"]["echo"]["marker"], marker)
        self.assertEqual(len(steps), 2 * self.N_WORKFLOWS)

        # ---- submissions per step, from the imitation's records
        subs = {m: [] for m in steps}
        for r in sp.records(path="/csync"):
            subs[r["body"]["marker"]].append(r)
        jobs_of = {m: [] for m in steps}
        for j in svc.job_list():
            jobs_of[j.marker].append(j)
            subs[j.marker].append(j.submission)
        for m, b in ((m, s) for m, s in subs.items() if m.endswith("-b")):
            for r in b:
                self.assertEqual(r["body"]["parent"], m[:-2] + "-a")

        def kill_index(t):
            """The first kill whose restart came after t (None: after the
            last restart)."""
            for i, k in enumerate(kills):
                if t < k["restart"]:
                    return i
            return None

        def kill_before(t):
            """The last kill at or before t."""
            found = None
            for i, k in enumerate(kills):
                if k["kill"] <= t:
                    found = i
            return found

        # A submission is in flight at a kill when kilnd hung up on it
        # (the kill closed the connection before or while it was answered:
        # it counts for the last kill before the imitation noticed), or
        # when it arrived before the kill and kilnd had not made it
        # durable: an async job not polled before the kill, a sync answer
        # whose step was not completed before the kill.
        inflight = [0] * len(kills)
        report = []
        for m, recs in subs.items():
            self.assertGreaterEqual(len(recs), 1, "step %s was never "
                                    "submitted" % m)
            st = steps[m]
            done_wall = parse_ts(st["completed_at"])
            mine = 0
            for r in recs:
                if r["client_closed"] is not None:
                    k = kill_before(r["client_closed"])
                    self.assertIsNotNone(k, "kilnd hung up on %s without "
                                         "a kill: %r" % (m, r))
                    is_inflight = True
                else:
                    k = kill_index(r["arrived"])
                    if k is None:
                        continue
                    if kinds[m] == "async":
                        job = [j for j in jobs_of[m]
                               if j.submission["seq"] == r["seq"]][0]
                        is_inflight = not any(
                            p["arrived"] < kills[k]["kill"]
                            for p in job.polls)
                    else:
                        is_inflight = done_wall > kills[k]["kill_wall"]
                if is_inflight:
                    inflight[k] += 1
                    mine += 1
            if len(recs) > 1:
                report.append("%s: %d submissions, %d in flight at kills"
                              % (m, len(recs), mine))
            self.assertLessEqual(
                len(recs), 1 + mine,
                "step %s submitted %d times; only %d submission(s) were in "
                "flight at a kill: %s" % (m, len(recs), mine,
                                          json.dumps(st["attempts"])))
            self.assertLessEqual(len(recs), len(st["attempts"]),
                                 "step %s: more submissions than attempts"
                                 % m)
        total = sum(len(r) for r in subs.values())
        n_steps = len(steps)
        self.assertLessEqual(total, n_steps + sum(inflight),
                             "submissions %d > steps %d + in flight at "
                             "kills %s" % (total, n_steps, inflight))
        self.assertLessEqual(total, n_steps + len(kills) * max(inflight))
        note = ("crash test: %d steps, %d submissions, in flight at "
                    "kills %s\n  %s\n" % (n_steps, total, inflight,
                                          "\n  ".join(report)))
        if os.environ.get("KILN_TEST_VERBOSE"):
            print(note)

        # ---- a job polled before a kill is polled again, never resubmitted
        resumed = 0
        for m, jobs in jobs_of.items():
            st = steps[m]
            done_wall = parse_ts(st["completed_at"])
            for j in jobs:
                for k in kills:
                    if not (j.submitted < k["kill"]
                            and any(p["arrived"] < k["kill"]
                                    for p in j.polls)
                            and done_wall > k["kill_wall"]):
                        continue
                    resumed += 1
                    self.assertTrue(
                        any(p["arrived"] > k["restart"] for p in j.polls),
                        "job %s of %s was polled before a kill and not "
                        "after the restart" % (j.id, m))
                    later = [x for x in jobs if x.submitted > k["kill"]]
                    self.assertEqual(
                        later, [], "job %s of %s had been polled, yet the "
                        "step was submitted again after the kill" % (j.id,
                                                                     m))
            if kinds[m] == "async":
                succ = st["attempts"][-1]
                self.assertIn(succ["job_id"], [j.id for j in jobs], m)
        self.assertGreater(resumed, 0, "no kill hit a job being polled; "
                           "the test did not test take-over")

        # ---- attempts are consistent
        interrupted_total = 0
        for m, st in steps.items():
            atts = st["attempts"]
            self.assertTrue(atts, m)
            self.assertEqual([a["attempt"] for a in atts],
                             list(range(1, len(atts) + 1)), m)
            self.assertLessEqual(sum(a["outcome"] == "running"
                                     for a in atts), 1, m)
            self.assertEqual(atts[-1]["outcome"], "succeeded",
                             "%s: %s" % (m, json.dumps(atts)))
            self.assertLessEqual(len(atts), 1 + len(kills), m)
            expected_provider = "cjobs" if kinds[m] == "async" else "csync"
            for a in atts:
                self.assertEqual(a["provider"], expected_provider)
            for a, nxt in zip(atts, atts[1:]):
                self.assertEqual(a["outcome"], "interrupted",
                                 "%s: %s" % (m, json.dumps(atts)))
                interrupted_total += 1
                started = parse_ts(a["started_at"])
                nxt_started = parse_ts(nxt["started_at"])
                self.assertTrue(
                    any(started <= k["kill_wall"] + 0.01
                        and nxt_started >= k["restart_wall"] - 0.01
                        for k in kills),
                    "%s: attempt %d interrupted without a kill between it "
                    "and the next: %s" % (m, a["attempt"], json.dumps(atts)))
        # Every submission beyond the first of a step is one interrupted
        # attempt (no provider errors are scripted).
        self.assertGreaterEqual(interrupted_total + n_steps, total,
                                "%d submissions but only %d interrupted "
                                "attempts" % (total, interrupted_total))

if __name__ == "__main__":
    kilnlib.main()
