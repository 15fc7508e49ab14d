"""The catalog of actions: GET /api/v1/catalog/actions and
GET /api/v1/catalog/actions/{task_type}.

One kilnd whose config adds a sync http provider (a URL with credentials,
a path and a query, and headers holding API keys), an async provider with
artifacts, and two custom task types.  Neither provider is ever called:
the examples run on dryrun.  The shapes are checked with plain assertions
and, once openapi.yaml has the Catalog* schemas, against them too."""
import json

import kilnlib
from kilnlib import (KilnTestCase, assert_schema, assert_workflow_shape,
                     steps_by_id, tenant_token)

CATALOG = "/api/v1/catalog/actions"

BUILTINS = ("GENERATION", "REFINE", "UPSCALE", "REMOVE_BACKGROUND", "EXPAND",
            "FILL", "COMPOSITE", "SIMILAR", "VIDEO_GENERATION")
CUSTOM = ("MY_CUSTOM_TYPE", "QUEUED_CUSTOM")

ENV_KEY = "env-secret-4f1c9a"           # reaches a header through ${env:}
HEADER_KEY = "header-secret-77b2"       # written in a header
URL_PASSWORD = "url-password-d00d"      # user:password in the URL
QUERY_KEY = "query-secret-91ee"         # ?api_key= in the URL
URL_PATH = "/v1/secret-path/generate"
BODY_KEY = "body-template-secret-5a5a"  # in the async provider's body
SECRETS = (ENV_KEY, HEADER_KEY, URL_PASSWORD, QUERY_KEY, URL_PATH, BODY_KEY,
           "Authorization", "X-Api-Key", "catalog-user", "/queue/submit")

CONFIG = {
    "providers": {
        "imagegen": {
            "type": "http",
            "url": "https://catalog-user:%s@ImageGen.invalid:8443%s"
                   "?api_key=%s" % (URL_PASSWORD, URL_PATH, QUERY_KEY),
            "headers": {"Authorization": "Bearer ${env:CATALOG_TEST_KEY}",
                        "X-Api-Key": HEADER_KEY},
            "timeout_s": 120, "connect_timeout_s": 5, "max_retries": 2,
            "concurrency": 7,
        },
        "queue": {
            "url": "http://127.0.0.1:9/queue/submit",
            "mode": "async",
            "body": {"token": BODY_KEY, "input": "{{input}}"},
            "async": {"job_id_pointer": "/id",
                      "status_url_template":
                          "http://127.0.0.1:9/jobs/{job_id}",
                      "status_pointer": "/status",
                      "success_values": ["done"]},
            "artifacts": {"url_pointers": ["/images/*/url"]},
            "step_deadline_s": 600,
        },
    },
    "task_types": {"MY_CUSTOM_TYPE": "imagegen", "QUEUED_CUSTOM": "queue"},
}

ACTION_KEYS = {"task_type", "description", "is_builtin", "inputs", "outputs",
               "capabilities", "provider", "providers", "example_step"}
PROVIDER_KEYS = {"name", "type", "mode", "url", "max_retries", "timeout_s",
                 "connect_timeout_s", "step_deadline_s", "concurrency",
                 "async", "artifacts"}
FIELD_TYPES = {"string", "integer", "number", "boolean", "url", "array",
               "object"}
STEP_KEYS = {"id", "task_type", "config", "depends_on", "input_mappings",
             "max_retries", "provider_config", "active_provider_capabilities",
             "fallback_provider_type", "fallback_provider_config",
             "fallback_provider_capabilities"}


def has_schema(name):
    doc = kilnlib.openapi_doc()
    return bool(doc and name in ((doc.get("components") or {})
                                 .get("schemas") or {}))


def maybe_schema(obj, name):
    """Checks obj against openapi.yaml's schema when it has one (the
    catalog schemas are merged separately)."""
    if has_schema(name):
        assert_schema(obj, name)


class CatalogTest(KilnTestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = cls.start_class_server(
            config=CONFIG, env={"CATALOG_TEST_KEY": ENV_KEY},
            name="kilnd-catalog")

    # ------------------------------------------------------------ helpers
    def get(self, path, token=kilnlib.DEFAULT):
        return self.srv.request("GET", path, token=token)

    def catalog(self, query=""):
        r = self.get(CATALOG + query)
        self.assertStatus(r, 200)
        self.assertTrue((r.header("Content-Type") or "")
                        .startswith("application/json"), r.headers)
        self.assertNoSecrets(r.text)
        self.assertListShape(r.json)
        return r.json

    def assertNoSecrets(self, text):
        for s in SECRETS:
            self.assertNotIn(s, text)

    def assertListShape(self, body):
        self.assertEqual(set(body), {"actions", "total"})
        self.assertIsInstance(body["actions"], list)
        self.assertEqual(body["total"], len(body["actions"]))
        for a in body["actions"]:
            self.assertActionShape(a)
        maybe_schema(body, "CatalogList")

    def assertActionShape(self, a):
        self.assertEqual(set(a), ACTION_KEYS, a)
        self.assertIsInstance(a["task_type"], str)
        self.assertTrue(a["description"])
        self.assertIsInstance(a["is_builtin"], bool)
        for f in a["inputs"]:
            self.assertEqual(set(f), {"name", "type", "required",
                                      "description"}, f)
            self.assertIn(f["type"], FIELD_TYPES)
            self.assertIsInstance(f["required"], bool)
        for f in a["outputs"]:
            self.assertEqual(set(f), {"name", "type", "description"}, f)
            self.assertIn(f["type"], FIELD_TYPES)
        self.assertTrue(a["capabilities"])
        for c in a["capabilities"]:
            self.assertIsInstance(c, str)
        p = a["provider"]
        self.assertEqual(set(p), PROVIDER_KEYS, p)
        self.assertIn(p["type"], ("http", "dryrun"))
        self.assertIn(p["mode"], ("sync", "async"))
        self.assertEqual(p["async"], p["mode"] == "async")
        self.assertIsInstance(p["artifacts"], bool)
        for k in ("max_retries", "timeout_s", "connect_timeout_s",
                  "step_deadline_s", "concurrency"):
            self.assertIsInstance(p[k], int, k)
        if p["type"] == "dryrun":
            self.assertIsNone(p["url"])
        self.assertEqual(a["providers"], ["dryrun", "imagegen", "queue"])
        ex = a["example_step"]
        self.assertLessEqual(set(ex), STEP_KEYS, ex)
        self.assertEqual(ex["task_type"], a["task_type"])
        self.assertIsInstance(ex["id"], str)
        self.assertIsInstance(ex.get("config", {}), dict)
        for f in a["inputs"]:
            if f["required"]:
                self.assertIn(f["name"], ex["config"], a["task_type"])
        maybe_schema(a, "CatalogAction")

    def by_type(self, body):
        return {a["task_type"]: a for a in body["actions"]}

    def run_workflow(self, name, steps):
        body = {"name": name, "origin_instance": "catalog-test",
                "steps": steps}
        r = self.srv.request("POST", "/api/v1/workflows", body)
        self.assertStatus(r, 201, "%s: %s" % (name, json.dumps(body)))
        done = self.srv.wait_for_status(r.json["id"], "COMPLETED")
        assert_workflow_shape(done)
        return done

    @staticmethod
    def on_dryrun(action):
        """The example step, told to use dryrun when its task type runs on
        another provider."""
        step = json.loads(json.dumps(action["example_step"]))
        if action["provider"]["name"] != "dryrun":
            step["provider_config"] = {"provider_type": "dryrun"}
        return step

    # ------------------------------------------------------------ tests
    def test_token_required(self):
        for path in (CATALOG, CATALOG + "/GENERATION", CATALOG + "/NOPE",
                     CATALOG + "?capability="):
            r = self.get(path, token=None)
            self.assertDetail(r, 401, "missing bearer token")
            self.assertEqual(r.header("WWW-Authenticate"), "Bearer")
            r = self.get(path, token=kilnlib.make_token(secret="x" * 32))
            self.assertDetail(r, 401, "bad token signature")
        # a tenant's token sees the same catalog as the operator's
        r = self.get(CATALOG, token=tenant_token("acme"))
        self.assertStatus(r, 200)
        self.assertEqual(r.json, self.catalog())

    def test_wrong_method(self):
        for path in (CATALOG, CATALOG + "/GENERATION"):
            r = self.srv.request("POST", path, {})
            self.assertDetail(r, 405, "Method Not Allowed")
            self.assertEqual(r.header("Allow"), "GET")

    def test_builtins_on_dryrun(self):
        body = self.catalog()
        types = [a["task_type"] for a in body["actions"]]
        # built-ins first, in their order, then the config's own
        self.assertEqual(tuple(types[:len(BUILTINS)]), BUILTINS)
        self.assertEqual(sorted(types[len(BUILTINS):]), sorted(CUSTOM))
        self.assertEqual(body["total"], len(BUILTINS) + len(CUSTOM))
        actions = self.by_type(body)
        for tt in BUILTINS:
            a = actions[tt]
            self.assertIs(a["is_builtin"], True)
            self.assertTrue(a["inputs"], tt)
            self.assertTrue(a["outputs"], tt)
            self.assertEqual(a["provider"]["name"], "dryrun")
            self.assertEqual(a["provider"]["type"], "dryrun")
            self.assertEqual(a["provider"]["mode"], "sync")
        gen = {f["name"]: f for f in actions["GENERATION"]["inputs"]}
        self.assertTrue(gen["prompt"]["required"])
        self.assertEqual(gen["prompt"]["type"], "string")
        for name in ("negative_prompt", "width", "height", "seed",
                     "num_images"):
            self.assertFalse(gen[name]["required"], name)
        self.assertEqual(gen["width"]["type"], "integer")
        self.assertIn("text-to-image", actions["GENERATION"]["capabilities"])
        for tt in ("REFINE", "UPSCALE", "REMOVE_BACKGROUND", "EXPAND", "FILL",
                   "SIMILAR"):
            inputs = {f["name"]: f for f in actions[tt]["inputs"]}
            self.assertEqual(inputs["base_image_url"]["type"], "url", tt)
            self.assertTrue(inputs["base_image_url"]["required"], tt)
            self.assertIn("result_image_path",
                          [f["name"] for f in actions[tt]["outputs"]])
        self.assertIn("upscale", actions["UPSCALE"]["capabilities"])
        fill = {f["name"]: f for f in actions["FILL"]["inputs"]}
        self.assertTrue(fill["mask_url"]["required"])
        video = {f["name"]: f for f in actions["VIDEO_GENERATION"]["inputs"]}
        for name in ("prompt", "image_url", "duration_s"):
            self.assertIn(name, video)
        self.assertIn("result_video_path",
                      [f["name"] for f in
                       actions["VIDEO_GENERATION"]["outputs"]])

    def test_custom_types_and_http_providers(self):
        actions = self.by_type(self.catalog())
        mine = actions["MY_CUSTOM_TYPE"]
        self.assertIs(mine["is_builtin"], False)
        self.assertEqual(mine["capabilities"], ["custom"])
        self.assertEqual(mine["inputs"], [])
        self.assertEqual(mine["example_step"],
                         {"id": "my_custom_type",
                          "task_type": "MY_CUSTOM_TYPE", "config": {}})
        self.assertEqual(mine["provider"], {
            "name": "imagegen", "type": "http", "mode": "sync",
            "url": "https://imagegen.invalid:8443", "max_retries": 2,
            "timeout_s": 120, "connect_timeout_s": 5, "step_deadline_s": 0,
            "concurrency": 7, "async": False, "artifacts": False})
        queued = actions["QUEUED_CUSTOM"]["provider"]
        self.assertEqual(queued["name"], "queue")
        self.assertEqual(queued["type"], "http")
        self.assertEqual(queued["mode"], "async")
        self.assertIs(queued["async"], True)
        self.assertIs(queued["artifacts"], True)
        self.assertEqual(queued["url"], "http://127.0.0.1:9")
        self.assertEqual(queued["step_deadline_s"], 600)
        self.assertEqual(queued["timeout_s"], 60)

    def test_no_secret_in_any_answer(self):
        self.assertNoSecrets(self.get(CATALOG).text)
        for tt in BUILTINS + CUSTOM:
            r = self.get(CATALOG + "/" + tt)
            self.assertStatus(r, 200)
            self.assertNoSecrets(r.text)
            self.assertNotIn("headers", r.json["provider"])

    def test_get_one(self):
        actions = self.by_type(self.catalog())
        for tt in ("FILL", "MY_CUSTOM_TYPE"):
            for path in (CATALOG + "/" + tt, CATALOG + "/" + tt + "/"):
                r = self.get(path)
                self.assertStatus(r, 200)
                self.assertActionShape(r.json)
                self.assertEqual(r.json, actions[tt])

    def test_unknown_task_type(self):
        for tt in ("generation", "NOPE", "Fill", "GENERATION_"):
            r = self.get(CATALOG + "/" + tt)
            self.assertDetail(r, 404, "Task type '%s' not found" % tt)
        r = self.get(CATALOG + "/%FF%FE")
        self.assertStatus(r, 404)
        self.assertIsInstance(r.json["detail"], str)
        # deeper paths are not routes at all
        self.assertDetail(self.get(CATALOG + "/FILL/x"), 404, "Not Found")

    def test_capability_filter(self):
        cases = {"upscale": ["UPSCALE"],
                 "text-to-image": ["GENERATION"],
                 "inpainting": ["FILL"],
                 "custom": list(CUSTOM),
                 "image-to-image": ["REFINE", "UPSCALE", "REMOVE_BACKGROUND",
                                    "EXPAND", "FILL", "COMPOSITE",
                                    "SIMILAR"],
                 "UPSCALE": [],
                 "no-such-capability": []}
        for cap, expected in cases.items():
            body = self.catalog("?capability=" + cap)
            self.assertEqual([a["task_type"] for a in body["actions"]],
                             expected, cap)
            self.assertEqual(body["total"], len(expected))
            for a in body["actions"]:
                self.assertIn(cap, a["capabilities"])
        r = self.get(CATALOG + "?capability=")
        self.assertValidation(r, [(("query", "capability"),
                                   "string_too_short",
                                   "String should have at least 1 "
                                   "character")], exact_count=1)

    def test_every_example_runs(self):
        """Each example step, alone in a workflow, is accepted (201) and
        completes on dryrun, its config reaching the provider."""
        for a in self.catalog()["actions"]:
            step = self.on_dryrun(a)
            done = self.run_workflow("catalog example " + a["task_type"],
                                     [step])
            st = steps_by_id(done)[step["id"]]
            self.assertEqual(st["provider"], "dryrun")
            self.assertEqual(st["task_type"], a["task_type"])
            result = st["result"]
            self.assertIs(result["dry_run"], True)
            for k, v in step.get("config", {}).items():
                self.assertEqual(result[k], v, a["task_type"])

    def test_image_inputs_map_from_generation(self):
        """What the inputs' descriptions advise: an image input mapped
        from a GENERATION step's result_image_path."""
        actions = self.by_type(self.catalog())
        gen = actions["GENERATION"]["example_step"]
        for a in actions.values():
            names = {f["name"]: f for f in a["inputs"]}
            if "base_image_url" in names:
                to_field = "base_image_url"
            elif "image_url" in names:
                to_field = "image_url"
            elif "image_urls" in names:
                to_field = "/image_urls/-"      # appended to the list
            else:
                continue
            step = self.on_dryrun(a)
            step["depends_on"] = [gen["id"]]
            step["input_mappings"] = [{"from_step": gen["id"],
                                       "from_field": "result_image_path",
                                       "to_field": to_field}]
            done = self.run_workflow("catalog chain " + a["task_type"],
                                     [gen, step])
            steps = steps_by_id(done)
            produced = steps[gen["id"]]["result"]["result_image_path"]
            result = steps[step["id"]]["result"]
            if to_field.startswith("/"):
                self.assertEqual(result["image_urls"][-1], produced)
            else:
                self.assertEqual(result[to_field], produced)


if __name__ == "__main__":
    kilnlib.main()
