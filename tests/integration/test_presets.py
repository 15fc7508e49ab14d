"""The ready-made provider configs of examples/providers/ against local
imitations of their services (fake_services.py).

Each preset is loaded as shipped; only its base URL(s) are pointed at the
imitation and its poll intervals shortened, so what is tested is the preset
itself: the request kilnd builds from it, how it reads the job, the result
it stores, the artifacts it downloads, failed jobs and cancelling.
"""
import copy
import hashlib
import json
import os
import time
import unittest
import urllib.parse

import kilnlib
from kilnlib import (KilnTestCase, assert_workflow_shape, steps_by_id,
                     wait_until)
from fake_services import (AsyncJobsService, ComfyUIService, FalService,
                           ReplicateService, RunPodService)

PRESETS_DIR = os.path.join(kilnlib.REPO, "examples", "providers")
POLL_INITIAL_MS = 50
POLL_MAX_MS = 200


def load_preset(filename):
    """(provider name, provider settings) of a preset file, which must hold
    exactly one provider."""
    with open(os.path.join(PRESETS_DIR, filename), encoding="utf-8") as f:
        doc = json.load(f)
    if not isinstance(doc, dict) or len(doc) != 1:
        raise AssertionError("%s must be an object with exactly one "
                             "provider, got %r" % (filename, doc))
    (name, settings), = doc.items()
    return name, settings


def rebase(url, base):
    """url with its scheme, host and port replaced by base's."""
    u, b = urllib.parse.urlsplit(url), urllib.parse.urlsplit(base)
    return urllib.parse.urlunsplit((b.scheme, b.netloc, u.path, u.query,
                                    u.fragment))


URL_TEMPLATE_KEYS = ("status_url_template", "cancel_url_template",
                     "result_url_template")


def for_test(settings, base):
    """A copy of a preset pointed at base, polling quickly; nothing else
    changes."""
    p = copy.deepcopy(settings)
    p["url"] = rebase(p["url"], base)
    a = p["async"]
    for k in URL_TEMPLATE_KEYS:
        if k in a:
            a[k] = rebase(a[k], base)
    a["poll_initial_ms"] = POLL_INITIAL_MS
    a["poll_max_ms"] = POLL_MAX_MS
    return p


def file_sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# A ComfyUI graph in the API format (the default text-to-image workflow).
COMFY_GRAPH = {
    "3": {"class_type": "KSampler",
          "inputs": {"seed": 156680208700286, "steps": 20, "cfg": 8,
                     "sampler_name": "euler", "scheduler": "normal",
                     "denoise": 1, "model": ["4", 0], "positive": ["6", 0],
                     "negative": ["7", 0], "latent_image": ["5", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple",
          "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
    "5": {"class_type": "EmptyLatentImage",
          "inputs": {"width": 512, "height": 512, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode",
          "inputs": {"text": "a red evening dress, studio photo",
                     "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode",
          "inputs": {"text": "blurry, watermark", "clip": ["4", 1]}},
    "8": {"class_type": "VAEDecode",
          "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage",
          "inputs": {"filename_prefix": "kiln", "images": ["8", 0]}},
}


class PresetTests:
    """The tests every preset gets; a concrete class mixes this with
    KilnTestCase and says what its service expects."""

    PRESET = None               # file in examples/providers/
    SERVICE = None              # fake_services class
    SERVICE_ARGS = {}
    ENV = {}                    # variables the preset's headers name
    AUTH_HEADERS = {}           # what the service must receive
    HOST = None                 # the real service's host in the preset
    STEP_CONFIG = {"prompt": "a red evening dress, studio photo"}
    SUBMIT_PATH = None
    ARTIFACTS = True            # the preset downloads files
    FAIL_OUTCOME = "job_failed"
    DOWNSTREAM_FIELD = "result_image_path"
    CANCEL_METHOD = "POST"

    # -- what the service should see / kilnd should store
    def submit_body(self, config):
        return config

    def status_path(self, job):
        raise NotImplementedError

    def cancel_path(self, job):
        raise NotImplementedError

    def cancel_body(self, job):
        return None

    def expected_result(self, job):
        return job.last_status

    def downstream_value(self, job, step):
        return step["result"]["result_image_path"]

    # -- set-up
    @classmethod
    def setUpClass(cls):
        cls.provider, cls.shipped = load_preset(cls.PRESET)
        cls.fake = cls.SERVICE(required_headers=cls.AUTH_HEADERS,
                               **cls.SERVICE_ARGS)
        cls.settings = for_test(cls.shipped, cls.fake.base_url)
        cfg = {"providers": {cls.provider: cls.settings},
               "task_types": {"GENERATION": cls.provider}}
        try:
            cls.srv = cls.start_class_server(
                config=cfg, env=cls.ENV, name="kilnd-" + cls.provider)
        except Exception:
            cls.fake.close()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.fake.close()

    def setUp(self):
        super().setUp()
        self.fake.configure(outcome="succeed", polls_to_finish=2,
                            seconds_to_finish=None, submit_delay_s=0.0,
                            busy_polls=0)

    # -- helpers
    def workflow(self, name, config=None, downstream=False):
        steps = [{"id": "gen", "task_type": "GENERATION",
                  "config": copy.deepcopy(config if config is not None
                                          else self.STEP_CONFIG)}]
        if downstream:
            steps.append({"id": "next", "task_type": "REFINE",
                          "depends_on": ["gen"],
                          "config": {"strength": 0.4},
                          "input_mappings": [{
                              "from_step": "gen",
                              "from_field": self.DOWNSTREAM_FIELD,
                              "to_field": "base_image_url"}]})
        return kilnlib.simple_workflow("preset-%s-%s" % (self.provider, name),
                                       steps=steps)

    def run_job(self, name, status, config=None, downstream=False):
        """Runs a workflow to status; returns (workflow, gen step, job)."""
        before = len(self.fake.jobs())
        wf = self.srv.create(self.workflow(name, config, downstream))
        done = self.srv.wait_for_status(wf["id"], status, timeout=30)
        assert_workflow_shape(done)
        jobs = self.fake.jobs()[before:]
        self.assertEqual(len(jobs), 1, "jobs submitted: %r"
                         % [j.id for j in jobs])
        return done, steps_by_id(done)["gen"], jobs[0]

    def assert_auth(self, rec):
        for k, v in self.AUTH_HEADERS.items():
            self.assertEqual(rec["headers"].get(k.lower()), v,
                             "%s %s lacks header %s" % (rec["method"],
                                                        rec["path"], k))

    def assert_submission(self, job, config):
        subs = self.fake.records(kind="submit", job=job.id)
        self.assertEqual(len(subs), 1, subs)
        s = subs[0]
        self.assertEqual(s["method"], self.settings.get("method", "POST"))
        self.assertEqual(s["path"], self.SUBMIT_PATH)
        self.assertEqual(s["body"], self.submit_body(config))
        self.assertTrue(s["headers"].get("content-type", "")
                        .startswith("application/json"), s["headers"])
        self.assert_auth(s)

    def assert_polls(self, job, at_least):
        polls = self.fake.records(kind="status", job=job.id)
        self.assertGreaterEqual(len(polls), at_least, polls)
        for p in polls:
            self.assertEqual(p["method"], "GET")
            self.assertEqual(p["path"], self.status_path(job))
            self.assert_auth(p)
        return polls

    def assert_one_attempt(self, step, outcome, job):
        attempts = step["attempts"]
        self.assertEqual(len(attempts), 1, attempts)
        a = attempts[0]
        self.assertEqual(a["attempt"], 1)
        self.assertEqual(a["provider"], self.provider)
        self.assertEqual(a["outcome"], outcome)
        self.assertEqual(a["job_id"], job.id)
        self.assertIsNotNone(a["started_at"])
        self.assertIsNotNone(a["finished_at"])
        return a

    def assert_artifacts(self, wf, step, job):
        result = step["result"]
        arts = result["artifacts"]
        self.assertEqual([a["url"] for a in arts], job.file_urls)
        for a in arts:
            data = self.fake.file_bytes(a["url"])
            want = hashlib.sha256(data).hexdigest()
            self.assertEqual(a["sha256"], want)
            self.assertEqual(a["size_bytes"], len(data))
            self.assertEqual(a["content_type"], "image/png")
            self.assertFalse(os.path.isabs(a["path"]), a["path"])
            self.assertTrue(a["path"].startswith(
                "artifacts/%s/" % wf["id"]), a["path"])
            self.assertTrue(a["path"].endswith(".png"), a["path"])
            full = os.path.join(self.srv.data_dir, a["path"])
            self.assertTrue(os.path.isfile(full), full)
            self.assertEqual(file_sha256(full), want)
            self.assertTrue(a["artifact_url"].startswith(
                "/api/v1/artifacts/%s/%s/" % (wf["id"], step["id"])),
                a["artifact_url"])
            r = self.srv.request("GET", a["artifact_url"])
            self.assertStatus(r, 200)
            self.assertEqual(r.body, data)
        self.assertEqual(result["result_image_path"], arts[0]["path"])
        downloads = [r for r in self.fake.records(kind="file")
                     if self.fake.url(r["raw_path"]) in job.file_urls]
        self.assertEqual(len(downloads), len(job.file_urls), downloads)

    # -- tests
    def test_preset_as_shipped(self):
        p = self.shipped
        self.assertEqual(p.get("type", "http"), "http")
        self.assertEqual(p["mode"], "async")
        urls = [p["url"]] + [p["async"][k] for k in URL_TEMPLATE_KEYS
                             if k in p["async"]]
        for url in urls:
            self.assertEqual(urllib.parse.urlsplit(url).netloc, self.HOST,
                             url)
        named = set()
        for v in (p.get("headers") or {}).values():
            named.update(part.split("}", 1)[0]
                         for part in v.split("${env:")[1:])
        self.assertEqual(named, set(self.ENV))
        self.assertEqual(bool(p.get("artifacts")), self.ARTIFACTS)

    def test_job_succeeds(self):
        wf, step, job = self.run_job("ok", "COMPLETED", downstream=True)
        self.assert_submission(job, self.STEP_CONFIG)
        self.assert_polls(job, 2)
        self.assertEqual(self.fake.records(kind="cancel", job=job.id), [])
        self.assertEqual(step["status"], "COMPLETED")
        self.assertEqual(step["provider"], self.provider)
        self.assertEqual(step["provider_used"], self.provider)
        self.assertEqual(step["retry_count"], 0)
        self.assertIsNone(step["error_message"])
        self.assert_one_attempt(step, "succeeded", job)
        result = dict(step["result"])
        if self.ARTIFACTS:
            self.assert_artifacts(wf, step, job)
            result.pop("artifacts")
            result.pop("result_image_path")
        self.assertEqual(result, self.expected_result(job))
        nxt = steps_by_id(wf)["next"]
        self.assertEqual(nxt["status"], "COMPLETED")
        self.assertEqual(nxt["result"]["base_image_url"],
                         self.downstream_value(job, step))
        self.assertEqual(wf["completed_steps"], 2)

    def test_job_finishes_after_some_time(self):
        self.fake.configure(seconds_to_finish=0.6, polls_to_finish=1)
        t0 = time.monotonic()
        wf, step, job = self.run_job("timed", "COMPLETED")
        self.assertGreaterEqual(time.monotonic() - t0, 0.6)
        polls = self.assert_polls(job, 2)
        self.assertLessEqual(len(polls), 20, "polling too often")
        self.assert_one_attempt(step, "succeeded", job)
        self.assertEqual(step["provider_used"], self.provider)

    def test_job_fails(self):
        self.check_failed_job()

    def check_failed_job(self):
        """Runs a failing job; returns its attempt."""
        self.fake.configure(outcome="fail")
        wf, step, job = self.run_job("fail", "FAILED")
        self.assert_submission(job, self.STEP_CONFIG)
        self.assert_polls(job, 2)
        self.assertEqual(step["status"], "FAILED")
        self.assertIsNone(step["result"])
        self.assertIsNone(step["provider_used"])
        a = self.assert_one_attempt(step, self.FAIL_OUTCOME, job)
        self.assertIsInstance(a["error"], str)
        self.assertIn(self.fake.fail_message, a["error"])
        self.assertEqual(step["error_message"], a["error"])
        self.assertEqual(wf["error_message"],
                         "step 'gen' failed: " + a["error"])
        self.assertEqual(self.fake.records(kind="cancel", job=job.id), [])
        return a

    def test_busy_status_poll_is_polled_again(self):
        self.fake.configure(busy_polls=2)
        wf, step, job = self.run_job("busy", "COMPLETED")
        polls = self.assert_polls(job, 4)
        self.assertEqual([p["status"] for p in polls[:2]], [503, 503])
        self.assert_one_attempt(step, "succeeded", job)
        self.assertEqual(step["retry_count"], 0)
        self.assertEqual(len(self.fake.records(kind="submit", job=job.id)),
                         1)

    def test_kill_while_polling_resumes_the_same_job(self):
        self.fake.configure(outcome="hold")
        before = len(self.fake.jobs())
        wf = self.srv.create(self.workflow("crash"))
        job = self.fake.wait_for_job(after=before)
        self.fake.wait_for(1, kind="status", job=job.id)
        wait_until(lambda: steps_by_id(self.srv.get_wf(wf["id"]))["gen"]
                   ["provider_job_id"] == job.id,
                   what="provider_job_id of the running step")
        self.srv.kill()
        polls = len(self.fake.records(kind="status", job=job.id))
        job.outcome = "succeed"
        job.polls_to_finish = job.polls + 1
        self.srv.start()
        done = self.srv.wait_for_status(wf["id"], "COMPLETED", timeout=30)
        self.assertEqual(self.fake.jobs()[before:], [job])
        self.assertEqual(len(self.fake.records(kind="submit", job=job.id)),
                         1)
        self.assertGreater(len(self.fake.records(kind="status",
                                                 job=job.id)), polls)
        step = steps_by_id(done)["gen"]
        self.assertEqual(step["provider_used"], self.provider)
        self.assertEqual({a["job_id"] for a in step["attempts"]}, {job.id})
        self.assertEqual(step["attempts"][-1]["outcome"], "succeeded")
        result = dict(step["result"])
        if self.ARTIFACTS:
            self.assert_artifacts(done, step, job)
            result.pop("artifacts")
            result.pop("result_image_path")
        self.assertEqual(result, self.expected_result(job))

    def test_cancel_while_polling(self):
        self.fake.configure(outcome="hold")
        before = len(self.fake.jobs())
        wf = self.srv.create(self.workflow("cancel"))
        job = self.fake.wait_for_job(after=before)
        self.fake.wait_for(2, kind="status", job=job.id)
        wait_until(lambda: steps_by_id(self.srv.get_wf(wf["id"]))["gen"]
                   ["provider_job_id"] == job.id,
                   what="provider_job_id of the running step")
        r = self.srv.request("DELETE", "/api/v1/workflows/" + wf["id"])
        self.assertStatus(r, 200)
        self.assertEqual(r.json["status"], "CANCELLED")
        self.assertEqual([s["status"] for s in r.json["steps"]],
                         ["CANCELLED"])
        cancels = self.fake.wait_for(1, kind="cancel", job=job.id)
        time.sleep(0.1)
        polls_then = len(self.fake.records(kind="status", job=job.id))
        time.sleep(4 * POLL_MAX_MS / 1000.0)
        cancels = self.fake.records(kind="cancel", job=job.id)
        self.assertEqual(len(cancels), 1, cancels)
        c = cancels[0]
        self.assertEqual(c["method"], self.CANCEL_METHOD)
        self.assertEqual(c["method"], self.shipped["async"].get(
            "cancel_method", "POST"))
        self.assertEqual(c["path"], self.cancel_path(job))
        want_body = self.cancel_body(job)
        if want_body is None:
            self.assertIn(c["body"], (None, {}), c["raw"])
        else:
            self.assertEqual(c["body"], want_body)
            self.assertTrue(c["headers"].get("content-type", "")
                            .startswith("application/json"), c["headers"])
        self.assert_auth(c)
        self.assertLess(c["status"], 300, c)
        self.assertTrue(job.cancelled)
        self.assertEqual(len(self.fake.records(kind="status", job=job.id)),
                         polls_then, "kilnd kept polling a cancelled job")
        done = self.srv.get_wf(wf["id"])
        assert_workflow_shape(done)
        self.assertEqual(done["status"], "CANCELLED")
        step = steps_by_id(done)["gen"]
        self.assertEqual(step["status"], "CANCELLED")
        self.assertIsNone(step["result"])
        self.assertEqual(self.fake.records(kind="submit", job=job.id)[0]
                         ["body"], self.submit_body(self.STEP_CONFIG))
        self.assert_one_attempt(step, "cancelled", job)


# ------------------------------------------------------------------ presets

class AsyncJobsPresetTest(PresetTests, KilnTestCase):
    PRESET = "async-jobs.json"
    SERVICE = AsyncJobsService
    ENV = {"FIREFLY_CLIENT_ID": "ff-client-id-test",
           "FIREFLY_ACCESS_TOKEN": "ff-access-token-test"}
    AUTH_HEADERS = {"x-api-key": "ff-client-id-test",
                    "authorization": "Bearer ff-access-token-test"}
    HOST = "firefly-api.adobe.io"
    STEP_CONFIG = {"prompt": "a red evening dress, studio photo",
                   "contentClass": "photo",
                   "size": {"width": 2048, "height": 2048}}
    SUBMIT_PATH = "/v3/images/generate-async"
    CANCEL_METHOD = "PUT"

    def status_path(self, job):
        return "/v3/status/" + job.id

    def cancel_path(self, job):
        return "/v3/cancel/" + job.id

    def expected_result(self, job):
        return job.last_status["result"]

    def test_several_variations_are_all_downloaded(self):
        config = dict(self.STEP_CONFIG, numVariations=3)
        wf, step, job = self.run_job("variations", "COMPLETED", config)
        self.assert_submission(job, config)
        self.assertEqual(len(job.file_urls), 3)
        self.assert_artifacts(wf, step, job)
        self.assertEqual([a["path"] for a in step["result"]["artifacts"]],
                         sorted({a["path"] for a in
                                 step["result"]["artifacts"]}))


class ReplicatePresetTest(PresetTests, KilnTestCase):
    PRESET = "replicate.json"
    SERVICE = ReplicateService
    ENV = {"REPLICATE_API_TOKEN": "r8_test_token_123"}
    AUTH_HEADERS = {"authorization": "Bearer r8_test_token_123"}
    HOST = "api.replicate.com"
    STEP_CONFIG = {"prompt": "a red evening dress, studio photo",
                   "aspect_ratio": "1:1", "num_outputs": 2}
    SUBMIT_PATH = "/v1/models/black-forest-labs/flux-schnell/predictions"

    def submit_body(self, config):
        return {"input": config}

    def status_path(self, job):
        return "/v1/predictions/" + job.id

    def cancel_path(self, job):
        return "/v1/predictions/%s/cancel" % job.id

    def test_single_url_output(self):
        self.fake.configure(output_style="string")
        try:
            wf, step, job = self.run_job(
                "string-output", "COMPLETED",
                dict(self.STEP_CONFIG, num_outputs=1))
        finally:
            self.fake.configure(output_style="list")
        self.assertIsInstance(step["result"]["output"], str)
        self.assertEqual(len(job.file_urls), 1)
        self.assert_artifacts(wf, step, job)

    # DELETE lets a submission in flight finish, so that a job the service
    # accepts is cancelled too (docs/providers.md, "Cancel and pause").
    def test_cancel_during_submission_cancels_the_accepted_job(self):
        self.fake.configure(outcome="hold", submit_delay_s=1.0)
        before = len(self.fake.jobs())
        wf = self.srv.create(self.workflow("cancel-submit"))
        job = self.fake.wait_for_job(after=before)
        r = self.srv.request("DELETE", "/api/v1/workflows/" + wf["id"])
        self.assertStatus(r, 200)
        self.assertEqual(r.json["status"], "CANCELLED")
        time.sleep(1.5)
        self.fake.wait_for(1, kind="cancel", job=job.id, timeout=3)
        self.assertTrue(job.cancelled)

    def test_provider_parameters_go_into_the_input(self):
        before = len(self.fake.jobs())
        body = self.workflow("params")
        body["steps"][0]["provider_config"] = {
            "provider_type": self.provider, "num_inference_steps": 4}
        wf = self.srv.create(body)
        self.srv.wait_for_status(wf["id"], "COMPLETED", timeout=30)
        job = self.fake.jobs()[before]
        self.assertEqual(job.body, {"input": dict(self.STEP_CONFIG,
                                                  num_inference_steps=4)})


class FalPresetTest(PresetTests, KilnTestCase):
    PRESET = "fal.json"
    SERVICE = FalService
    ENV = {"FAL_KEY": "fal-key-id:fal-key-secret"}
    AUTH_HEADERS = {"authorization": "Key fal-key-id:fal-key-secret"}
    HOST = "queue.fal.run"
    STEP_CONFIG = {"prompt": "a red evening dress, studio photo",
                   "image_size": "square_hd", "num_images": 2}
    SUBMIT_PATH = "/fal-ai/flux/dev"
    CANCEL_METHOD = "PUT"
    # fal documents no failed status: a failed request is COMPLETED and its
    # response URL answers the error (HTTP 422 here), which is permanent.
    FAIL_OUTCOME = "permanent_error"

    def status_path(self, job):
        return "/fal-ai/flux/requests/%s/status" % job.id

    def cancel_path(self, job):
        return "/fal-ai/flux/requests/%s/cancel" % job.id

    def expected_result(self, job):
        return job.result_answer

    def test_result_is_fetched_from_the_response_url(self):
        wf, step, job = self.run_job("response-url", "COMPLETED")
        fetches = self.fake.records(kind="result", job=job.id)
        self.assertEqual(len(fetches), 1, fetches)
        self.assertEqual(fetches[0]["method"], "GET")
        self.assertEqual(fetches[0]["path"],
                         "/fal-ai/flux/requests/" + job.id)
        self.assert_auth(fetches[0])
        polls = self.fake.records(kind="status", job=job.id)
        self.assertGreater(fetches[0]["time"], polls[-1]["time"])
        self.assertEqual(polls[-1]["answer"]["status"], "COMPLETED")

    def test_job_fails(self):
        a = self.check_failed_job()
        self.assertEqual(a["http_status"], 422)

    def test_job_reported_failed_in_its_status(self):
        self.fake.configure(outcome="fail", fail_style="status")
        try:
            wf, step, job = self.run_job("fail-status", "FAILED")
        finally:
            self.fake.configure(fail_style="result")
        a = self.assert_one_attempt(step, "job_failed", job)
        self.assertIn(self.fake.fail_message, a["error"])
        self.assertEqual(self.fake.records(kind="result", job=job.id), [])


class RunPodPresetTest(PresetTests, KilnTestCase):
    PRESET = "runpod.json"
    SERVICE = RunPodService
    ENV = {"RUNPOD_API_KEY": "rp_test_key_123"}
    AUTH_HEADERS = {"authorization": "Bearer rp_test_key_123"}
    HOST = "api.runpod.ai"
    ARTIFACTS = False
    DOWNSTREAM_FIELD = "/output/seed"

    def submit_body(self, config):
        return {"input": config}

    @property
    def SUBMIT_PATH(self):
        return urllib.parse.urlsplit(self.shipped["url"]).path

    def endpoint_base(self):
        return self.SUBMIT_PATH.rsplit("/", 1)[0]

    def status_path(self, job):
        return "%s/status/%s" % (self.endpoint_base(), job.id)

    def cancel_path(self, job):
        return "%s/cancel/%s" % (self.endpoint_base(), job.id)

    def downstream_value(self, job, step):
        return job.last_status["output"]["seed"]

    def test_templates_use_the_submission_endpoint(self):
        self.assertTrue(self.SUBMIT_PATH.startswith("/v2/"))
        self.assertTrue(self.SUBMIT_PATH.endswith("/run"))
        a = self.shipped["async"]
        for k in ("status_url_template", "cancel_url_template"):
            self.assertIn("{job_id}", a[k])
            self.assertTrue(urllib.parse.urlsplit(a[k]).path.startswith(
                self.endpoint_base() + "/"), a[k])


class ComfyUIPresetTest(PresetTests, KilnTestCase):
    PRESET = "comfyui.json"
    SERVICE = ComfyUIService
    ENV = {}
    AUTH_HEADERS = {}
    HOST = "127.0.0.1:8188"
    STEP_CONFIG = COMFY_GRAPH
    SUBMIT_PATH = "/prompt"
    ARTIFACTS = False
    DOWNSTREAM_FIELD = "/9/images/0/filename"

    def submit_body(self, config):
        return {"prompt": config}

    def status_path(self, job):
        return "/history/" + job.id

    def cancel_path(self, job):
        return "/queue"

    def cancel_body(self, job):
        return {"delete": [job.id]}

    def expected_result(self, job):
        return job.last_status[job.id]["outputs"]

    def downstream_value(self, job, step):
        return job.last_status[job.id]["outputs"]["9"]["images"][0][
            "filename"]

    def test_graph_without_output_node_is_refused(self):
        graph = {k: v for k, v in COMFY_GRAPH.items() if k != "9"}
        before = len(self.fake.records(kind="submit"))
        wf = self.srv.create(self.workflow("no-output", graph))
        done = self.srv.wait_for_status(wf["id"], "FAILED", timeout=30)
        step = steps_by_id(done)["gen"]
        a = step["attempts"][-1]
        self.assertEqual(a["outcome"], "permanent_error")
        self.assertEqual(a["http_status"], 400)
        self.assertIsNone(a["job_id"])
        self.assertIn("prompt_no_outputs", a["error"])
        self.assertEqual(len(self.fake.records(kind="submit")), before + 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
