"""kilnd's http provider against a local fake provider: requests, results,
failures, timeouts and parallel steps."""
import kilnlib
from kilnlib import (KilnTestCase, simple_workflow, steps_by_id,
                     assert_workflow_shape, free_port)
from fake_provider import FakeProvider

API_KEY = "sekret-key-123"


class ProviderTest(KilnTestCase):
    @classmethod
    def setUpClass(cls):
        cls.fake = FakeProvider(slow_s=5.0, gate_timeout_s=8.0)
        fake = cls.fake

        def http(path, timeout_s=5, **extra):
            p = {"type": "http", "url": fake.url(path), "timeout_s": timeout_s}
            p.update(extra)
            return p

        cls.dead_port = free_port()
        cfg = {
            "providers": {
                "okp": http("/ok", headers={
                    "X-Api-Key": "${env:TEST_PROVIDER_KEY}",
                    "X-Static": "static-value"}),
                "failp": http("/fail500"),
                "switchp": http("/switch/branch"),
                "slowp": http("/slow", timeout_s=1),
                "notjsonp": http("/notjson"),
                "arrayp": http("/array"),
                "gatep": http("/gate", timeout_s=15),
                "deadp": {"type": "http", "timeout_s": 5,
                          "connect_timeout_s": 2,
                          "url": "http://127.0.0.1:%d/x" % cls.dead_port},
            },
            "task_types": {"GENERATION": "okp"},
        }
        try:
            cls.srv = cls.start_class_server(
                config=cfg, env={"TEST_PROVIDER_KEY": API_KEY},
                name="kilnd-providers")
        except Exception:
            fake.close()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.fake.close()

    def run_to(self, body, status):
        wf = self.srv.create(body)
        done = self.srv.wait_for_status(wf["id"], status)
        assert_workflow_shape(done)
        return done

    def assert_single_step_failure(self, provider, error_start,
                                   also_contains=()):
        marker = "fail-" + provider
        done = self.run_to(simple_workflow(marker, steps=[
            {"id": "s1", "task_type": "GENERATION",
             "config": {"marker": marker},
             "provider_config": {"provider_type": provider}},
            {"id": "s2", "task_type": "UPSCALE", "depends_on": ["s1"],
             "config": {"marker": marker + "-next"},
             "provider_config": {"provider_type": "okp"}}]), "FAILED")
        st = steps_by_id(done)
        s1, s2 = st["s1"], st["s2"]
        self.assertEqual(s1["status"], "FAILED")
        self.assertEqual(s1["provider"], provider)
        self.assertIsNone(s1["result"])
        err = s1["error_message"]
        self.assertIsInstance(err, str)
        self.assertTrue(err.startswith(error_start),
                        "error %r does not start with %r" % (err, error_start))
        for part in also_contains:
            self.assertIn(part, err)
        self.assertEqual(done["error_message"], "step 's1' failed: " + err)
        self.assertEqual(done["errors"], ["step 's1' failed: " + err])
        self.assertEqual(s2["status"], "PENDING")
        self.assertIsNone(s2["task_id"])
        self.assertIsNone(done["final_step_result"])
        self.assertEqual(done["completed_steps"], 0)
        self.assertEqual(self.fake.records(marker=marker + "-next"), [])
        return done

    # ------------------------------------------------------------ success
    def test_http_provider_success(self):
        fake = self.fake
        done = self.run_to(simple_workflow("http-ok", steps=[
            {"id": "generate", "task_type": "GENERATION",
             "config": {"marker": "ok-gen", "prompt": "a red dress", "n": 3}},
            {"id": "refine", "task_type": "REFINE", "depends_on": ["generate"],
             "config": {"marker": "ok-ref", "strength": 0.5,
                        "base_image_url": "overridden"},
             "provider_config": {"provider_type": "okp", "quality": "hd"},
             "input_mappings": [
                 {"from_step": "generate", "from_field": "result_image_path",
                  "to_field": "base_image_url"},
                 {"from_step": "generate", "from_field": "/echo/prompt",
                  "to_field": "/nested/prompt"},
                 {"from_step": "generate", "from_field": "/echo/n",
                  "to_field": "n_text", "transform": "to_string"}]},
            {"id": "side", "task_type": "REFINE",
             "config": {"marker": "ok-side"}}]), "COMPLETED")
        st = steps_by_id(done)
        self.assertEqual(st["generate"]["provider"], "okp")
        self.assertEqual(st["refine"]["provider"], "okp")
        self.assertEqual(st["side"]["provider"], "dryrun")
        self.assertIs(st["side"]["result"]["dry_run"], True)
        self.assertEqual(fake.records(marker="ok-side"), [])

        gen_calls = fake.records(marker="ok-gen")
        self.assertEqual(len(gen_calls), 1)
        g = gen_calls[0]
        self.assertEqual(g["path"], "/ok")
        self.assertEqual(g["method"], "POST")
        self.assertTrue(g["headers"].get("content-type", "")
                        .startswith("application/json"), g["headers"])
        self.assertEqual(g["headers"].get("x-api-key"), API_KEY)
        self.assertEqual(g["headers"].get("x-static"), "static-value")
        self.assertEqual(g["body"], {"marker": "ok-gen",
                                     "prompt": "a red dress", "n": 3})
        # the step's result is the provider's JSON answer, unchanged
        self.assertEqual(st["generate"]["result"]["echo"], g["body"])
        self.assertRegex(st["generate"]["result"]["result_image_path"],
                         r"^https://cdn\.example\.test/\d+\.png$")
        self.assertEqual(set(st["generate"]["result"]),
                         {"result_image_path", "echo"})

        ref_calls = fake.records(marker="ok-ref")
        self.assertEqual(len(ref_calls), 1)
        self.assertEqual(ref_calls[0]["body"], {
            "marker": "ok-ref", "strength": 0.5,
            "base_image_url": st["generate"]["result"]["result_image_path"],
            "nested": {"prompt": "a red dress"},
            "n_text": "3",
            # provider_config's keys other than provider_type are
            # provider parameters, merged over the input
            "quality": "hd"})
        self.assertEqual(ref_calls[0]["headers"].get("x-api-key"), API_KEY)
        self.assertEqual(st["refine"]["provider_used"], "okp")
        self.assertEqual([(a["attempt"], a["provider"], a["outcome"],
                           a["http_status"]) for a in st["refine"]["attempts"]],
                         [(1, "okp", "succeeded", 200)])
        self.assertEqual(st["refine"]["result"]["echo"], ref_calls[0]["body"])
        self.assertGreater(ref_calls[0]["arrived"], gen_calls[0]["answered"])
        self.assertEqual(done["final_step_id"], "side")
        self.assertEqual(done["final_step_result"], st["side"]["result"])
        self.assertEqual(done["progress"], 100)

    # ------------------------------------------------------------ failures
    def test_provider_http_500(self):
        done = self.assert_single_step_failure(
            "failp", "provider 'failp' answered HTTP 500: ",
            ("HTTP 500", "upstream exploded"))
        self.assertEqual(steps_by_id(done)["s1"]["error_message"],
                         "provider 'failp' answered HTTP 500: "
                         "upstream exploded")
        self.assertEqual(len(self.fake.records(marker="fail-failp")), 1)

    def test_provider_timeout(self):
        self.assert_single_step_failure(
            "slowp", "provider 'slowp' timed out after 1 s", ("timed out",))

    def test_provider_not_json(self):
        self.assert_single_step_failure(
            "notjsonp", "provider 'notjsonp' answered HTTP 200 with a body "
            "that is not a JSON object", ("hello",))

    def test_provider_json_array(self):
        self.assert_single_step_failure(
            "arrayp", "provider 'arrayp' answered HTTP 200 with a body that "
            "is not a JSON object")

    def test_connection_refused(self):
        self.assert_single_step_failure("deadp",
                                        "provider 'deadp' request failed: ")

    def test_mapping_from_missing_field(self):
        done = self.run_to(simple_workflow("missing-field", steps=[
            {"id": "generate", "task_type": "GENERATION",
             "config": {"marker": "mf-1"}},
            {"id": "refine", "task_type": "REFINE", "depends_on": ["generate"],
             "config": {"marker": "mf-2"},
             "provider_config": {"provider_type": "okp"},
             "input_mappings": [{"from_step": "generate",
                                 "from_field": "no_such_field",
                                 "to_field": "x"}]}]), "FAILED")
        st = steps_by_id(done)
        self.assertEqual(st["generate"]["status"], "COMPLETED")
        self.assertEqual(st["refine"]["status"], "FAILED")
        err = ("input mapping: field 'no_such_field' not found in result of "
               "step 'generate'")
        self.assertEqual(st["refine"]["error_message"], err)
        self.assertEqual(done["error_message"], "step 'refine' failed: " + err)
        self.assertEqual(done["errors"], ["step 'refine' failed: " + err])
        self.assertEqual(done["completed_steps"], 1)
        self.assertEqual(len(self.fake.records(marker="mf-1")), 1)
        self.assertEqual(self.fake.records(marker="mf-2"), [])

    def test_failure_leaves_independent_branch_alone(self):
        # a fails at once while its independent siblings are queued or
        # running; c (after a) never starts.  Once nothing runs any more,
        # each sibling either completed (with its result) or never started
        # (PENDING): none is left queued (READY) or RUNNING.
        siblings = ["b%d" % i for i in range(10)]
        body = simple_workflow("branches", steps=[
            {"id": "a", "task_type": "GENERATION",
             "config": {"marker": "br-a"},
             "provider_config": {"provider_type": "switchp"}}] + [
            {"id": b, "task_type": "GENERATION",
             "config": {"marker": "br-" + b}} for b in siblings] + [
            {"id": "c", "task_type": "UPSCALE", "depends_on": ["a"],
             "config": {"marker": "br-c"},
             "provider_config": {"provider_type": "okp"}}])
        self.fake.modes["branch"] = "fail500"
        wf = self.srv.create(body)
        self.srv.wait_for_status(wf["id"], "FAILED")

        def settled():
            w = self.srv.get_wf(wf["id"])
            if any(s["status"] == "RUNNING" for s in w["steps"]):
                return None
            return w
        done = kilnlib.wait_until(settled, what="running steps to finish")
        self.assertEqual(done["status"], "FAILED")
        st = steps_by_id(done)
        self.assertEqual(st["a"]["status"], "FAILED")
        self.assertEqual(st["c"]["status"], "PENDING")
        self.assertEqual(self.fake.records(marker="br-c"), [])
        for b in siblings:
            with self.subTest(step=b):
                self.assertIn(st[b]["status"], ("PENDING", "COMPLETED"))
                calls = self.fake.records(marker="br-" + b)
                if st[b]["status"] == "COMPLETED":
                    self.assertEqual(len(calls), 1)
                    self.assertEqual(st[b]["result"]["echo"],
                                     {"marker": "br-" + b})
                else:
                    self.assertEqual(calls, [])
                    self.assertIsNone(st[b]["result"])
        self.assertEqual(done["completed_steps"],
                         sum(1 for b in siblings
                             if st[b]["status"] == "COMPLETED"))
        self.assertEqual(done["errors"], ["step 'a' failed: provider "
                                          "'switchp' answered HTTP 500: "
                                          "upstream exploded"])
        # resumed with a healthy provider, everything completes, and no
        # completed step runs twice
        self.fake.modes["branch"] = "ok"
        self.assertStatus(self.srv.action(wf["id"], "resume"), 200)
        done = self.srv.wait_for_status(wf["id"], "COMPLETED")
        for sid in ["a", "c"] + siblings:
            with self.subTest(step=sid):
                self.assertEqual(steps_by_id(done)[sid]["status"],
                                 "COMPLETED")
                self.assertEqual(len(self.fake.records(marker="br-" + sid)),
                                 2 if sid == "a" else 1)

    # ------------------------------------------------------------ parallel
    def test_independent_steps_run_in_parallel(self):
        fake = self.fake
        fake.reset_gate(2)
        done = self.run_to(simple_workflow("parallel", steps=[
            {"id": "left", "task_type": "GENERATION",
             "config": {"marker": "par-left"},
             "provider_config": {"provider_type": "gatep"}},
            {"id": "right", "task_type": "GENERATION",
             "config": {"marker": "par-right"},
             "provider_config": {"provider_type": "gatep"}},
            {"id": "join", "task_type": "COMPOSITE",
             "depends_on": ["left", "right"], "config": {"marker": "par-join"},
             "provider_config": {"provider_type": "okp"}}]), "COMPLETED")
        left = fake.records(marker="par-left")
        right = fake.records(marker="par-right")
        join = fake.records(marker="par-join")
        self.assertEqual((len(left), len(right), len(join)), (1, 1, 1))
        left, right, join = left[0], right[0], join[0]
        # both requests were in flight together: each arrived before the
        # other was answered
        self.assertLess(left["arrived"], right["answered"])
        self.assertLess(right["arrived"], left["answered"])
        self.assertGreater(join["arrived"], max(left["answered"],
                                                right["answered"]))
        self.assertEqual(done["completed_steps"], 3)


if __name__ == "__main__":
    kilnlib.main()
