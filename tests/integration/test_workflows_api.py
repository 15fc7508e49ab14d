"""The workflow routes of kilnd: create, get, list, patch, cancel, start,
pause, resume, cleanup, routing, and persistence across restarts."""
import os
import threading
import time
import uuid

import kilnlib
from kilnlib import (KilnTestCase, fashion_pipeline, simple_workflow,
                     steps_by_id, assert_workflow_shape, assert_schema,
                     wait_until)
from fake_provider import FakeProvider


def two_steps(name="two", **extra):
    return simple_workflow(name, steps=[
        {"id": "first", "task_type": "GENERATION", "config": {"prompt": "p"}},
        {"id": "second", "task_type": "UPSCALE", "depends_on": ["first"],
         "input_mappings": [{"from_step": "first",
                             "from_field": "result_image_path",
                             "to_field": "image_url"}]},
    ], **extra)


def plant(data_dir, rel, content=b"png-bytes"):
    path = os.path.join(data_dir, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(content)
    return path


class DryrunApiTest(KilnTestCase):
    """A kilnd without config: every task type runs on the dryrun
    provider."""

    @classmethod
    def setUpClass(cls):
        cls.srv = cls.start_class_server(name="kilnd-api")

    # ------------------------------------------------------------ create
    def test_reference_example_completes(self):
        srv = self.srv
        r = srv.request("POST", "/api/v1/workflows/", fashion_pipeline())
        self.assertStatus(r, 201)
        self.assertTrue((r.header("Content-Type") or "")
                        .startswith("application/json"), r.headers)
        wf = r.json
        assert_workflow_shape(wf)
        self.assertIn(wf["status"], ("RUNNING", "COMPLETED"))
        self.assertEqual(wf["name"], "Fashion Image Pipeline")
        self.assertEqual(wf["description"],
                         "Generate and refine fashion images")
        self.assertEqual(wf["origin_instance"], "api-prod")
        for f in ("origin_zone", "origin_tenant_id", "origin_reference",
                  "webhook_url", "canvas_task_id", "error_message",
                  "deleted_at"):
            self.assertIsNone(wf[f], f)
        self.assertEqual(wf["config"], {})
        self.assertIs(wf["suppress_subtask_events"], True)
        self.assertIs(wf["is_deleted"], False)
        self.assertEqual(wf["errors"], [])
        self.assertEqual(wf["total_steps"], 2)
        self.assertEqual(wf["final_step_id"], "refine")
        self.assertIsNotNone(wf["started_at"])
        self.assertEqual([s["step_id"] for s in wf["steps"]],
                         ["generate", "refine"])
        gen, ref = wf["steps"]
        self.assertNotEqual(gen["id"], ref["id"])
        self.assertEqual(gen["task_type"], "GENERATION")
        self.assertEqual(gen["config"], {"height": 1024, "width": 1024,
                                         "prompt": "fashion model wearing "
                                         "elegant dress"})
        self.assertEqual(gen["dependencies"], [])
        self.assertEqual(gen["input_mappings"], [])
        self.assertEqual(ref["task_type"], "REFINE")
        self.assertEqual(ref["config"], {"upscale_factor": 2.0})
        self.assertEqual(ref["dependencies"], ["generate"])
        self.assertEqual(ref["input_mappings"], [
            {"from_step": "generate", "from_field": "result_image_path",
             "to_field": "base_image_url", "transform": None}])
        for st in wf["steps"]:
            self.assertEqual(st["provider"], "dryrun")
            self.assertEqual(st["max_retries"], 0)
            self.assertEqual(st["retry_count"], 0)
            for f in ("provider_config", "active_provider_capabilities",
                      "fallback_provider_type", "fallback_provider_config",
                      "fallback_provider_capabilities"):
                self.assertIsNone(st[f], f)

        done = srv.wait_for_status(wf["id"], "COMPLETED")
        assert_workflow_shape(done)
        self.assertEqual(done["id"], wf["id"])
        self.assertEqual(done["created_at"], wf["created_at"])
        self.assertEqual(done["progress"], 100)
        self.assertEqual(done["completed_steps"], 2)
        self.assertEqual(done["total_steps"], 2)
        self.assertIsNone(done["current_step"])
        self.assertIsNone(done["error_message"])
        self.assertEqual(done["errors"], [])
        self.assertIsNotNone(done["started_at"])
        self.assertIsNotNone(done["completed_at"])
        self.assertLessEqual(done["created_at"], done["started_at"])
        self.assertLessEqual(done["started_at"], done["completed_at"])
        self.assertLessEqual(done["created_at"], done["updated_at"])
        steps = steps_by_id(done)
        gen, ref = steps["generate"], steps["refine"]
        for st in (gen, ref):
            self.assertEqual(st["status"], "COMPLETED")
            self.assertIsNotNone(st["task_id"])
            self.assertIsNone(st["error_message"])
            self.assertIsNotNone(st["started_at"])
            self.assertIsNotNone(st["completed_at"])
            self.assertLessEqual(st["started_at"], st["completed_at"])
        wid = wf["id"]
        self.assertEqual(gen["result"], {
            "height": 1024, "width": 1024,
            "prompt": "fashion model wearing elegant dress",
            "dry_run": True, "provider": "dryrun", "task_type": "GENERATION",
            "result_image_path": "dryrun://%s/generate.png" % wid})
        self.assertEqual(ref["result"], {
            "upscale_factor": 2.0,
            "base_image_url": gen["result"]["result_image_path"],
            "dry_run": True, "provider": "dryrun", "task_type": "REFINE",
            "result_image_path": "dryrun://%s/refine.png" % wid})
        self.assertEqual(done["final_step_id"], "refine")
        self.assertEqual(done["final_step_result"], ref["result"])

    def test_final_step_and_mapping_variants(self):
        # diamond a -> (b, c) -> d, with a JSON pointer and a transform
        body = simple_workflow("diamond", steps=[
            {"id": "a", "task_type": "GENERATION",
             "config": {"size": {"w": 640}, "tags": ["x", "y"]}},
            {"id": "b", "task_type": "UPSCALE", "depends_on": ["a"],
             "input_mappings": [{"from_step": "a", "from_field": "/size/w",
                                 "to_field": "/target/width",
                                 "transform": "to_string"}]},
            {"id": "c", "task_type": "REMOVE_BACKGROUND", "depends_on": ["a"],
             "input_mappings": [{"from_step": "a", "from_field": "tags",
                                 "to_field": "tag", "transform": "last"}]},
            {"id": "d", "task_type": "COMPOSITE", "depends_on": ["b", "c"],
             "input_mappings": [
                 {"from_step": "b", "from_field": "result_image_path",
                  "to_field": "left"},
                 {"from_step": "a", "from_field": "result_image_path",
                  "to_field": "origin"}]},
        ])
        wf = self.srv.create(body)
        self.assertEqual(wf["final_step_id"], "d")
        self.assertEqual(wf["total_steps"], 4)
        done = self.srv.wait_for_status(wf["id"], "COMPLETED")
        st = steps_by_id(done)
        self.assertEqual(st["b"]["result"]["target"], {"width": "640"})
        self.assertEqual(st["c"]["result"]["tag"], "y")
        self.assertEqual(st["d"]["result"]["left"],
                         "dryrun://%s/b.png" % wf["id"])
        self.assertEqual(st["d"]["result"]["origin"],
                         "dryrun://%s/a.png" % wf["id"])
        self.assertEqual(done["final_step_result"], st["d"]["result"])
        self.assertEqual(done["completed_steps"], 4)
        self.assertEqual(done["progress"], 100)

        # several sinks: the last sink in definition order
        wf = self.srv.create(simple_workflow("sinks", steps=[
            {"id": "x", "task_type": "GENERATION"},
            {"id": "y", "task_type": "UPSCALE", "depends_on": ["x"]},
            {"id": "z", "task_type": "GENERATION"},
        ]), start=False)
        self.assertEqual(wf["final_step_id"], "z")
        wf = self.srv.create(simple_workflow("sinks2", steps=[
            {"id": "z", "task_type": "GENERATION"},
            {"id": "x", "task_type": "GENERATION"},
            {"id": "y", "task_type": "UPSCALE", "depends_on": ["x"]},
        ]), start=False)
        self.assertEqual(wf["final_step_id"], "y")

    def test_optional_fields_are_kept(self):
        body = two_steps("full", description="d", config={"k": [1, 2]},
                         origin_zone="eu-1", origin_tenant_id="acme",
                         origin_reference="ref-42",
                         webhook_url="https://hooks.example.test/kiln",
                         suppress_subtask_events=False)
        body["steps"][0].update({
            "max_retries": 3, "provider_config": {"provider_type": "dryrun",
                                                  "quality": "hd"},
            "active_provider_capabilities": ["txt2img"],
            "fallback_provider_type": "dryrun",
            "fallback_provider_config": {"q": 1},
            "fallback_provider_capabilities": ["img2img"]})
        wf = self.srv.create(body, start=False)
        assert_workflow_shape(wf)
        self.assertEqual(wf["status"], "PENDING")
        for key in ("description", "config", "origin_zone",
                    "origin_tenant_id", "origin_reference", "webhook_url",
                    "suppress_subtask_events"):
            self.assertEqual(wf[key], body[key], key)
        first = steps_by_id(wf)["first"]
        self.assertEqual(first["max_retries"], 3)
        self.assertEqual(first["provider_config"],
                         {"provider_type": "dryrun", "quality": "hd"})
        self.assertEqual(first["active_provider_capabilities"], ["txt2img"])
        self.assertEqual(first["fallback_provider_type"], "dryrun")
        self.assertEqual(first["fallback_provider_config"], {"q": 1})
        self.assertEqual(first["fallback_provider_capabilities"],
                         ["img2img"])
        self.assertEqual(self.srv.get_wf(wf["id"]), wf)

    # ------------------------------------------------------------ start
    def test_start_false_then_start(self):
        srv = self.srv
        wf = srv.create(fashion_pipeline(), start=False)
        assert_workflow_shape(wf)
        self.assertEqual(wf["status"], "PENDING")
        self.assertIsNone(wf["started_at"])
        self.assertIsNone(wf["completed_at"])
        self.assertEqual(wf["completed_steps"], 0)
        self.assertEqual(wf["progress"], 0)
        for st in wf["steps"]:
            self.assertEqual(st["status"], "PENDING")
            self.assertIsNone(st["task_id"])
            self.assertIsNone(st["result"])
            self.assertIsNone(st["started_at"])
        self.assertEqual(srv.get_wf(wf["id"])["status"], "PENDING")

        r = srv.action(wf["id"], "start")
        self.assertStatus(r, 200)
        assert_workflow_shape(r.json)
        self.assertIn(r.json["status"], ("RUNNING", "COMPLETED"))
        self.assertIsNotNone(r.json["started_at"])
        done = srv.wait_for_status(wf["id"], "COMPLETED")
        self.assertEqual(done["final_step_result"],
                         steps_by_id(done)["refine"]["result"])
        r = srv.action(wf["id"], "start")
        self.assertConflict(r, wf["id"], "COMPLETED")
        assert_schema(r.json, "ErrorDetail")

    def test_start_query_bool_spellings(self):
        for value in ("false", "0", "no", "off", "FALSE", "Off"):
            with self.subTest(start=value):
                r = self.srv.request("POST", "/api/v1/workflows?start="
                                     + value, simple_workflow("b"))
                self.assertStatus(r, 201)
                self.assertEqual(r.json["status"], "PENDING")
        for value in ("true", "1", "yes", "on", "TRUE", "Yes"):
            with self.subTest(start=value):
                r = self.srv.request("POST", "/api/v1/workflows?start="
                                     + value, simple_workflow("b"))
                self.assertStatus(r, 201)
                self.assertIn(r.json["status"], ("RUNNING", "COMPLETED"))
                self.srv.wait_for_status(r.json["id"], "COMPLETED")

    # ------------------------------------------------------------ list
    def test_list_filters_and_paging(self):
        srv = self.srv
        inst = "list-" + uuid.uuid4().hex[:10]
        tenants = [None, "lt1", None, "lt1", "lt2"]
        ids = []
        for i, tenant in enumerate(tenants):
            wf = srv.create(simple_workflow("list-%d" % i,
                                            origin_instance=inst,
                                            origin_tenant_id=tenant),
                            start=False)
            ids.append(wf["id"])
            time.sleep(0.01)        # distinct created_at (ms resolution)
        r = srv.action(ids[2], "start")
        self.assertStatus(r, 200)
        srv.wait_for_status(ids[2], "COMPLETED")
        newest_first = list(reversed(ids))
        q = "?origin_instance=" + inst

        lst = srv.list_wf(q)
        assert_schema(lst, "WorkflowListResponse")
        self.assertEqual(lst["total"], 5)
        self.assertEqual(lst["skip"], 0)
        self.assertEqual(lst["limit"], 50)
        self.assertEqual([w["id"] for w in lst["workflows"]], newest_first)
        created = [w["created_at"] for w in lst["workflows"]]
        self.assertEqual(created, sorted(created, reverse=True))
        for w in lst["workflows"]:
            assert_workflow_shape(w)
            self.assertEqual(w, srv.get_wf(w["id"]))

        lst = srv.list_wf(q + "&skip=1&limit=2")
        self.assertEqual([w["id"] for w in lst["workflows"]],
                         newest_first[1:3])
        self.assertEqual((lst["total"], lst["skip"], lst["limit"]), (5, 1, 2))
        lst = srv.list_wf(q + "&skip=4&limit=50")
        self.assertEqual([w["id"] for w in lst["workflows"]],
                         newest_first[4:])
        self.assertEqual(lst["total"], 5)
        lst = srv.list_wf(q + "&skip=5")
        self.assertEqual(lst["workflows"], [])
        self.assertEqual(lst["total"], 5)
        lst = srv.list_wf(q + "&limit=1000")
        self.assertEqual(lst["limit"], 1000)
        self.assertEqual(len(lst["workflows"]), 5)

        lst = srv.list_wf(q + "&status=COMPLETED")
        self.assertEqual([w["id"] for w in lst["workflows"]], [ids[2]])
        self.assertEqual(lst["total"], 1)
        lst = srv.list_wf(q + "&status=PENDING")
        self.assertEqual([w["id"] for w in lst["workflows"]],
                         [i for i in newest_first if i != ids[2]])
        self.assertEqual(lst["total"], 4)
        lst = srv.list_wf(q + "&status=FAILED")
        self.assertEqual((lst["workflows"], lst["total"]), ([], 0))
        lst = srv.list_wf(q + "&origin_tenant_id=lt1")
        self.assertEqual([w["id"] for w in lst["workflows"]],
                         [ids[3], ids[1]])
        lst = srv.list_wf(q + "&origin_tenant_id=lt1&status=PENDING&limit=1")
        self.assertEqual([w["id"] for w in lst["workflows"]], [ids[3]])
        self.assertEqual(lst["total"], 2)
        lst = srv.list_wf("?origin_instance=nothing-" + inst)
        self.assertEqual((lst["workflows"], lst["total"]), ([], 0))

        # total ignores skip and limit without filters too
        everything = srv.list_wf("?limit=1000")
        self.assertGreaterEqual(everything["total"], 5)
        self.assertEqual(srv.list_wf("?limit=1")["total"],
                         everything["total"])
        self.assertEqual(len(srv.list_wf("?limit=1")["workflows"]), 1)

        # soft-deleted workflows are hidden unless include_deleted
        r = srv.action(ids[0], "cleanup")
        self.assertStatus(r, 200)
        lst = srv.list_wf(q)
        self.assertEqual([w["id"] for w in lst["workflows"]],
                         newest_first[:4])
        self.assertEqual(lst["total"], 4)
        self.assertEqual(srv.list_wf(q + "&include_deleted=false")["total"],
                         4)
        lst = srv.list_wf(q + "&include_deleted=true")
        self.assertEqual([w["id"] for w in lst["workflows"]], newest_first)
        self.assertEqual(lst["total"], 5)
        self.assertIs(lst["workflows"][-1]["is_deleted"], True)
        self.assertEqual(srv.list_wf(q + "&include_deleted=1")["total"], 5)
        # ... with a status filter too
        gone = lst["workflows"][-1]
        live = srv.list_wf(q + "&status=" + gone["status"])
        every = srv.list_wf(q + "&status=" + gone["status"] +
                            "&include_deleted=true")
        self.assertEqual(every["total"], live["total"] + 1)
        self.assertNotIn(gone["id"], [w["id"] for w in live["workflows"]])
        self.assertEqual(every["workflows"][-1]["id"], gone["id"])
        self.assertEqual([w["id"] for w in every["workflows"][:-1]],
                         [w["id"] for w in live["workflows"]])

    # ------------------------------------------------------------ patch
    def test_patch(self):
        srv = self.srv
        wf = srv.create(two_steps("orig", description="desc",
                                  webhook_url="http://hooks.example.test/a"),
                        start=False)
        path = "/api/v1/workflows/" + wf["id"]

        def patch(body):
            r = srv.request("PATCH", path, body)
            self.assertStatus(r, 200)
            assert_workflow_shape(r.json)
            self.assertEqual(srv.get_wf(wf["id"]), r.json)
            return r.json

        def same_except_updated(a, b):
            a, b = dict(a), dict(b)
            a.pop("updated_at")
            b.pop("updated_at")
            self.assertEqual(a, b)

        w = patch({"name": "renamed"})
        self.assertEqual(w["name"], "renamed")
        self.assertEqual(w["description"], "desc")
        self.assertEqual(w["webhook_url"], "http://hooks.example.test/a")
        self.assertGreaterEqual(w["updated_at"], wf["updated_at"])
        same_except_updated(w, dict(wf, name="renamed"))

        w2 = patch({})
        same_except_updated(w2, w)
        w2 = patch({"name": None})
        self.assertEqual(w2["name"], "renamed")
        same_except_updated(w2, w)

        w = patch({"description": "new description", "webhook_url":
                   "https://hooks.example.test/b"})
        self.assertEqual(w["description"], "new description")
        self.assertEqual(w["webhook_url"], "https://hooks.example.test/b")
        self.assertEqual(w["name"], "renamed")
        w = patch({"description": None})
        self.assertIsNone(w["description"])
        self.assertEqual(w["webhook_url"], "https://hooks.example.test/b")
        w = patch({"webhook_url": None})
        self.assertIsNone(w["webhook_url"])
        self.assertEqual(w["name"], "renamed")
        self.assertEqual(w["status"], "PENDING")

        # invalid patches change nothing
        before = srv.get_wf(wf["id"])
        bad = [
            ({"name": ""}, ["body", "name"], "string_too_short"),
            ({"name": "n" * 256}, ["body", "name"], "string_too_long"),
            ({"name": 5}, ["body", "name"], "string_type"),
            ({"description": "d" * 1001}, ["body", "description"],
             "string_too_long"),
            ({"webhook_url": "ftp://x"}, ["body", "webhook_url"],
             "value_error"),
            ({"webhook_url": "https://e.test/" + "x" * 500},
             ["body", "webhook_url"], "string_too_long"),
            ({"status": "COMPLETED"}, ["body", "status"], "extra_forbidden"),
            ({"name": "ok", "steps": []}, ["body", "steps"],
             "extra_forbidden"),
        ]
        for body, loc, typ in bad:
            with self.subTest(body=body):
                r = srv.request("PATCH", path, body)
                self.assertValidation(r, [(loc, typ)])
        r = srv.request("PATCH", path, raw="[]")
        self.assertValidation(r, [(["body"], "model_attributes_type")])
        self.assertEqual(srv.get_wf(wf["id"]), before)

        # allowed in any status
        r = srv.action(wf["id"], "start")
        self.assertStatus(r, 200)
        srv.wait_for_status(wf["id"], "COMPLETED")
        w = patch({"name": "after completion"})
        self.assertEqual(w["name"], "after completion")
        self.assertEqual(w["status"], "COMPLETED")

    # ------------------------------------------------------------ cancel
    def test_cancel_pending(self):
        srv = self.srv
        wf = srv.create(two_steps("to-cancel"), start=False)
        r = srv.request("DELETE", "/api/v1/workflows/" + wf["id"])
        self.assertStatus(r, 200)
        c = r.json
        assert_workflow_shape(c)
        self.assertEqual(c["status"], "CANCELLED")
        self.assertIsNotNone(c["completed_at"])
        self.assertEqual([s["status"] for s in c["steps"]],
                         ["CANCELLED", "CANCELLED"])
        self.assertFalse(c["is_deleted"])
        self.assertEqual(srv.get_wf(wf["id"]), c)
        r = srv.request("DELETE", "/api/v1/workflows/" + wf["id"])
        self.assertConflict(r, wf["id"], "CANCELLED")
        for verb in ("start", "pause", "resume"):
            with self.subTest(verb=verb):
                self.assertConflict(srv.action(wf["id"], verb), wf["id"],
                                    "CANCELLED")
        self.assertEqual(srv.get_wf(wf["id"]), c)

    def test_conflicts_of_pending_and_completed(self):
        srv = self.srv
        pending = srv.create(two_steps("pending"), start=False)
        for verb in ("pause", "resume"):
            with self.subTest(verb=verb):
                self.assertConflict(srv.action(pending["id"], verb),
                                    pending["id"], "PENDING")
        self.assertEqual(srv.get_wf(pending["id"])["status"], "PENDING")

        done = srv.create(two_steps("done"))
        srv.wait_for_status(done["id"], "COMPLETED")
        snapshot = srv.get_wf(done["id"])
        for verb in ("start", "pause", "resume"):
            with self.subTest(verb=verb):
                self.assertConflict(srv.action(done["id"], verb), done["id"],
                                    "COMPLETED")
        r = srv.request("DELETE", "/api/v1/workflows/" + done["id"])
        self.assertConflict(r, done["id"], "COMPLETED")
        self.assertEqual(srv.get_wf(done["id"]), snapshot)

    # ------------------------------------------------------------ cleanup
    def test_cleanup_deletes_artifacts(self):
        srv = self.srv
        wf = srv.create(fashion_pipeline())
        srv.wait_for_status(wf["id"], "COMPLETED")
        other = srv.create(simple_workflow("keep-my-files"))
        srv.wait_for_status(other["id"], "COMPLETED")
        wid = wf["id"]
        rels = ["artifacts/%s/generate/x.png" % wid,
                "artifacts/%s/refine/y.png" % wid,
                "artifacts/%s/refine/sub/z.txt" % wid]
        for rel in rels:
            plant(srv.data_dir, rel)
        keep = plant(srv.data_dir, "artifacts/%s/only/keep.png" % other["id"])

        r = srv.action(wid, "cleanup")
        self.assertStatus(r, 200)
        assert_schema(r.json, "WorkflowCleanupResponse")
        res = r.json
        assert_workflow_shape(res["workflow"])
        self.assertEqual(res["workflow"]["id"], wid)
        self.assertIs(res["workflow"]["is_deleted"], True)
        self.assertIsNotNone(res["workflow"]["deleted_at"])
        self.assertEqual(res["workflow"]["status"], "COMPLETED")
        cl = res["cleanup"]
        self.assertEqual(cl["tasks_processed"], 2)
        self.assertEqual(cl["tasks_cleaned"], 2)
        self.assertEqual(sorted(cl["deleted_paths"]), sorted(rels))
        self.assertEqual(cl["errors"], [])
        for rel in rels:
            self.assertFalse(os.path.exists(os.path.join(srv.data_dir, rel)),
                             rel)
        self.assertFalse(os.path.exists(os.path.join(
            srv.data_dir, "artifacts", wid)), "workflow directory remains")
        self.assertTrue(os.path.exists(keep), "another workflow's file went")

        got = srv.get_wf(wid)
        self.assertIs(got["is_deleted"], True)
        self.assertEqual(got["deleted_at"], res["workflow"]["deleted_at"])
        self.assertEqual(got["steps"], res["workflow"]["steps"])
        self.assertNotIn(wid, [w["id"] for w in
                               srv.list_wf("?limit=1000")["workflows"]])
        self.assertIn(wid, [w["id"] for w in srv.list_wf(
            "?limit=1000&include_deleted=true")["workflows"]])

        # twice is fine: nothing left, every step (no files) counts as clean
        r = srv.action(wid, "cleanup")
        self.assertStatus(r, 200)
        cl = r.json["cleanup"]
        self.assertEqual(cl["deleted_paths"], [])
        self.assertEqual(cl["tasks_processed"], 2)
        self.assertEqual(cl["tasks_cleaned"], 2)
        self.assertEqual(cl["errors"], [])
        self.assertIs(r.json["workflow"]["is_deleted"], True)

    def test_cleanup_without_tasks(self):
        srv = self.srv
        wf = srv.create(two_steps("keep-files"))
        srv.wait_for_status(wf["id"], "COMPLETED")
        kept = plant(srv.data_dir, "artifacts/%s/first/out.png" % wf["id"])
        r = srv.action(wf["id"], "cleanup", query="?cleanup_tasks=false")
        self.assertStatus(r, 200)
        assert_schema(r.json, "WorkflowCleanupResponse")
        self.assertEqual(r.json["cleanup"], {"tasks_processed": 0,
                                             "tasks_cleaned": 0,
                                             "deleted_paths": [],
                                             "errors": []})
        self.assertIs(r.json["workflow"]["is_deleted"], True)
        self.assertIsNotNone(r.json["workflow"]["deleted_at"])
        self.assertTrue(os.path.exists(kept))
        self.assertIs(srv.get_wf(wf["id"])["is_deleted"], True)

    def test_deleted_workflow_refuses_actions(self):
        srv = self.srv
        wf = srv.create(two_steps("deleted"), start=False)
        r = srv.action(wf["id"], "cleanup")
        self.assertStatus(r, 200)
        self.assertEqual(r.json["workflow"]["status"], "PENDING")
        calls = [("POST", "/start"), ("POST", "/pause"), ("POST", "/resume"),
                 ("DELETE", "")]
        for method, suffix in calls:
            with self.subTest(call=method + suffix):
                r = srv.request(method, "/api/v1/workflows/%s%s"
                                % (wf["id"], suffix))
                self.assertStatus(r, 409)
                self.assertIn("deleted", r.json["detail"].lower())
        got = srv.get_wf(wf["id"])
        self.assertEqual(got["status"], "PENDING")
        self.assertIs(got["is_deleted"], True)
        # PATCH stays allowed ("in any status")
        r = srv.request("PATCH", "/api/v1/workflows/" + wf["id"],
                        {"name": "still editable"})
        self.assertStatus(r, 200)
        self.assertEqual(r.json["name"], "still editable")

    # ------------------------------------------------------------ routing
    def test_trailing_slash_optional(self):
        srv = self.srv
        for slash in ("", "/"):
            with self.subTest(slash=slash):
                r = srv.request("POST", "/api/v1/workflows%s?start=false"
                                % slash, two_steps("slash"))
                self.assertStatus(r, 201)
                wid = r.json["id"]
                base = "/api/v1/workflows/" + wid
                self.assertStatus(srv.request("GET", base + slash), 200)
                r = srv.request("PATCH", base + slash, {"name": "s" + slash})
                self.assertStatus(r, 200)
                self.assertEqual(r.json["name"], "s" + slash)
                r = srv.request("POST", base + "/start" + slash)
                self.assertStatus(r, 200)
                srv.wait_for_status(wid, "COMPLETED")
                r = srv.request("POST", base + "/cleanup" + slash)
                self.assertStatus(r, 200)
                self.assertIs(r.json["workflow"]["is_deleted"], True)
                r = srv.request("GET", "/api/v1/workflows" + slash
                                + "?include_deleted=true&limit=1000")
                self.assertStatus(r, 200)
                self.assertIn(wid, [w["id"] for w in r.json["workflows"]])
                r = srv.request("POST", "/api/v1/workflows%s?start=false"
                                % slash, two_steps("slash"))
                wid = r.json["id"]
                r = srv.request("DELETE", "/api/v1/workflows/%s%s"
                                % (wid, slash))
                self.assertStatus(r, 200)
                self.assertEqual(r.json["status"], "CANCELLED")
                for verb in ("pause", "resume"):
                    r = srv.request("POST", "/api/v1/workflows/%s/%s%s"
                                    % (wid, verb, slash))
                    self.assertConflict(r, wid, "CANCELLED")
                for path in ("/healthz" + slash, "/readyz" + slash):
                    self.assertStatus(srv.request("GET", path, token=None),
                                      200)

    def test_unknown_route_and_wrong_method(self):
        srv = self.srv
        wid = str(uuid.uuid4())
        for token in (srv.token, None):
            for path in ("/", "/api/v1/nope", "/api/v2/workflows",
                         "/api/v1/workflows/%s/bogus" % wid,
                         "/api/v1/workflows/%s/start/extra" % wid,
                         "/api/v1/workflowsx"):
                with self.subTest(path=path, token=bool(token)):
                    r = srv.request("GET", path, token=token)
                    self.assertDetail(r, 404, "Not Found")
            cases = [("PUT", "/api/v1/workflows", {"GET", "POST"}),
                     ("DELETE", "/api/v1/workflows/", {"GET", "POST"}),
                     ("POST", "/api/v1/workflows/" + wid,
                      {"GET", "PATCH", "DELETE"}),
                     ("PUT", "/api/v1/workflows/%s/" % wid,
                      {"GET", "PATCH", "DELETE"}),
                     ("GET", "/api/v1/workflows/%s/start" % wid, {"POST"}),
                     ("DELETE", "/api/v1/workflows/%s/cleanup" % wid,
                      {"POST"}),
                     ("POST", "/healthz", {"GET"}),
                     ("DELETE", "/readyz", {"GET"})]
            for method, path, allowed in cases:
                with self.subTest(method=method, path=path,
                                  token=bool(token)):
                    r = srv.request(method, path, token=token)
                    self.assertDetail(r, 405, "Method Not Allowed")
                    allow = {m.strip() for m in
                             (r.header("Allow") or "").split(",") if m.strip()}
                    self.assertTrue(allowed <= allow,
                                    "Allow %r lacks %r" % (allow, allowed))
                    self.assertFalse(allow - allowed - {"HEAD", "OPTIONS"},
                                     "Allow %r has extra methods" % allow)


class ProviderControlTest(KilnTestCase):
    """pause, resume, cancel and conflicts of running workflows, with a
    fake provider that holds requests until the test releases them."""

    @classmethod
    def setUpClass(cls):
        cls.fake = FakeProvider()
        cfg = {"providers": {
            "holdp": {"type": "http", "url": cls.fake.url("/hold"),
                      "timeout_s": 60},
            "okp": {"type": "http", "url": cls.fake.url("/ok"),
                    "timeout_s": 10},
            "flaky": {"type": "http", "url": cls.fake.url("/switch/flaky"),
                      "timeout_s": 60}}}
        try:
            cls.srv = cls.start_class_server(config=cfg, name="kilnd-control")
        except Exception:
            cls.fake.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.fake.release()
        try:
            super().tearDownClass()
        finally:
            cls.fake.close()

    def setUp(self):
        super().setUp()
        self.fake.hold()
        self.addCleanup(self.fake.release)

    def held_then_ok(self, name):
        return simple_workflow(name, steps=[
            {"id": "s1", "task_type": "GENERATION",
             "config": {"marker": name + "-s1"},
             "provider_config": {"provider_type": "holdp"}},
            {"id": "s2", "task_type": "REFINE", "depends_on": ["s1"],
             "config": {"marker": name + "-s2"},
             "provider_config": {"provider_type": "okp"},
             "input_mappings": [{"from_step": "s1",
                                 "from_field": "result_image_path",
                                 "to_field": "image"}]}])

    def test_pause_and_resume_running(self):
        srv, fake = self.srv, self.fake
        wf = srv.create(self.held_then_ok("pause"))
        wid = wf["id"]
        fake.wait_for(1, marker="pause-s1")
        running = srv.wait_for_step(wid, "s1", "RUNNING")
        self.assertEqual(running["status"], "RUNNING")
        self.assertEqual(running["current_step"], "s1")
        self.assertEqual(running["progress"], 0)
        for verb in ("start", "resume"):
            with self.subTest(verb=verb):
                self.assertConflict(srv.action(wid, verb), wid, "RUNNING")
        self.assertConflict(srv.action(wid, "cleanup"), wid, "RUNNING")

        r = srv.action(wid, "pause")
        self.assertStatus(r, 200)
        assert_workflow_shape(r.json)
        self.assertEqual(r.json["status"], "PAUSED")
        for verb in ("pause", "start"):
            with self.subTest(verb=verb):
                self.assertConflict(srv.action(wid, verb), wid, "PAUSED")
        self.assertConflict(srv.action(wid, "cleanup"), wid, "PAUSED")

        # the running step finishes; no new step starts while paused
        fake.release()
        paused = srv.wait_for_step(wid, "s1", "COMPLETED")
        self.assertEqual(paused["status"], "PAUSED")
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            w = srv.get_wf(wid)
            self.assertEqual(w["status"], "PAUSED")
            self.assertIn(steps_by_id(w)["s2"]["status"], ("PENDING",
                                                           "READY"))
            time.sleep(0.1)
        self.assertEqual(fake.records(marker="pause-s2"), [])
        self.assertEqual(w["completed_steps"], 1)
        self.assertEqual(w["progress"], 50)

        r = srv.action(wid, "resume")
        self.assertStatus(r, 200)
        self.assertIn(r.json["status"], ("RUNNING", "COMPLETED"))
        done = srv.wait_for_status(wid, "COMPLETED")
        self.assertEqual(len(fake.records(marker="pause-s1")), 1)
        s2_calls = fake.records(marker="pause-s2")
        self.assertEqual(len(s2_calls), 1)
        st = steps_by_id(done)
        self.assertEqual(s2_calls[0]["body"]["image"],
                         st["s1"]["result"]["result_image_path"])
        self.assertEqual(done["final_step_result"], st["s2"]["result"])

    def test_resume_paused_carries_on_running_step(self):
        # resume of a PAUSED workflow lets the step in flight carry on:
        # its provider call is live and already paid for
        srv, fake = self.srv, self.fake
        wf = srv.create(self.held_then_ok("rerun"))
        wid = wf["id"]
        fake.wait_for(1, marker="rerun-s1")
        first = srv.wait_for_step(wid, "s1", "RUNNING")
        first_task = steps_by_id(first)["s1"]["task_id"]
        self.assertStatus(srv.action(wid, "pause"), 200)
        r = srv.action(wid, "resume")
        self.assertStatus(r, 200)
        self.assertEqual(r.json["status"], "RUNNING")
        s1 = steps_by_id(r.json)["s1"]
        self.assertEqual(s1["status"], "RUNNING")
        self.assertEqual(s1["task_id"], first_task)
        fake.release()
        done = srv.wait_for_status(wid, "COMPLETED")
        st = steps_by_id(done)
        self.assertEqual(st["s1"]["task_id"], first_task)
        self.assertEqual(len(fake.records(marker="rerun-s1")), 1)
        self.assertEqual(len(fake.records(marker="rerun-s2")), 1)
        self.assertEqual(done["completed_steps"], 2)

    def test_cancel_running(self):
        srv, fake = self.srv, self.fake
        wf = srv.create(self.held_then_ok("cancel"))
        wid = wf["id"]
        fake.wait_for(1, marker="cancel-s1")
        srv.wait_for_step(wid, "s1", "RUNNING")
        r = srv.request("DELETE", "/api/v1/workflows/" + wid)
        self.assertStatus(r, 200)
        c = r.json
        self.assertEqual(c["status"], "CANCELLED")
        self.assertIsNotNone(c["completed_at"])
        self.assertEqual([s["status"] for s in c["steps"]],
                         ["CANCELLED", "CANCELLED"])
        fake.release()
        wait_until(lambda: fake.records(marker="cancel-s1")[0]["answered"],
                   what="the held request to be answered")
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            w = srv.get_wf(wid)
            self.assertEqual(w["status"], "CANCELLED")
            self.assertEqual(steps_by_id(w)["s2"]["status"], "CANCELLED")
            self.assertNotEqual(steps_by_id(w)["s1"]["status"], "RUNNING")
            time.sleep(0.1)
        self.assertEqual(fake.records(marker="cancel-s2"), [])
        self.assertConflict(srv.action(wid, "resume"), wid, "CANCELLED")

    def test_resume_failed_reruns_only_failed_steps(self):
        srv, fake = self.srv, self.fake
        fake.modes["flaky"] = "fail500"
        wf = srv.create(simple_workflow("resume", steps=[
            {"id": "s1", "task_type": "GENERATION", "config": {"marker": "r1"},
             "provider_config": {"provider_type": "okp"}},
            {"id": "s2", "task_type": "REFINE", "depends_on": ["s1"],
             "config": {"marker": "r2"},
             "provider_config": {"provider_type": "flaky"},
             "input_mappings": [{"from_step": "s1",
                                 "from_field": "result_image_path",
                                 "to_field": "image"}]},
            {"id": "s3", "task_type": "UPSCALE", "depends_on": ["s2"],
             "config": {"marker": "r3"},
             "provider_config": {"provider_type": "okp"}}]))
        wid = wf["id"]
        failed = srv.wait_for_status(wid, "FAILED")
        assert_workflow_shape(failed)
        st = steps_by_id(failed)
        self.assertEqual(st["s1"]["status"], "COMPLETED")
        self.assertEqual(st["s2"]["status"], "FAILED")
        self.assertEqual(st["s3"]["status"], "PENDING")
        err = "provider 'flaky' answered HTTP 500: upstream exploded"
        self.assertEqual(st["s2"]["error_message"], err)
        self.assertEqual(failed["error_message"], "step 's2' failed: " + err)
        self.assertEqual(failed["errors"], ["step 's2' failed: " + err])
        self.assertEqual(failed["completed_steps"], 1)
        self.assertEqual(failed["progress"], 33.33)
        self.assertIsNone(failed["final_step_result"])
        self.assertEqual(len(fake.records(marker="r1")), 1)
        self.assertEqual(len(fake.records(marker="r2")), 1)
        self.assertEqual(fake.records(marker="r3"), [])
        s1_before = st["s1"]

        fake.modes["flaky"] = "hold"
        r = srv.action(wid, "resume")
        self.assertStatus(r, 200)
        res = r.json
        assert_workflow_shape(res)
        self.assertEqual(res["status"], "RUNNING")
        self.assertIsNone(res["error_message"])
        self.assertEqual(res["errors"], [])
        self.assertIsNone(res["completed_at"])
        st = steps_by_id(res)
        self.assertEqual(st["s1"]["status"], "COMPLETED")
        self.assertEqual(st["s1"]["result"], s1_before["result"])
        self.assertEqual(st["s1"]["task_id"], s1_before["task_id"])
        self.assertIn(st["s2"]["status"], ("PENDING", "READY", "RUNNING"))
        self.assertIsNone(st["s2"]["error_message"])
        self.assertIsNone(st["s2"]["result"])

        fake.wait_for(2, marker="r2")
        w = srv.wait_for_step(wid, "s2", "RUNNING")
        self.assertEqual(w["status"], "RUNNING")
        self.assertIsNone(steps_by_id(w)["s2"]["error_message"])
        fake.release()
        done = srv.wait_for_status(wid, "COMPLETED")
        st = steps_by_id(done)
        self.assertEqual(len(fake.records(marker="r1")), 1)
        self.assertEqual(len(fake.records(marker="r2")), 2)
        self.assertEqual(len(fake.records(marker="r3")), 1)
        self.assertEqual(st["s1"]["result"], s1_before["result"])
        self.assertEqual(st["s1"]["task_id"], s1_before["task_id"])
        self.assertEqual(st["s2"]["result"]["echo"]["image"],
                         s1_before["result"]["result_image_path"])
        self.assertEqual(done["completed_steps"], 3)
        self.assertEqual(done["errors"], [])
        self.assertIsNone(done["error_message"])
        self.assertConflict(srv.action(wid, "resume"), wid, "COMPLETED")


class ConcurrentCreateTest(KilnTestCase):
    """A create is answered once its insert is committed, from whichever
    thread commits it, while its HTTP thread goes on to other requests:
    with one HTTP thread, many creates at once are all answered, each
    201 is what a read finds, and a stop in the middle of a burst loses
    nothing that was answered."""

    def burst(self, srv, n_threads, per_thread, answers, stop_at=None):
        def client(t):
            for i in range(per_thread):
                name = "burst-%d-%d" % (t, i)
                try:
                    r = srv.request("POST", "/api/v1/workflows",
                                    two_steps(name))
                except OSError as e:  # the daemon stopped under it
                    answers.append(("error", str(e)))
                    return
                # each connection gets its own request's answer
                if r.status == 201 and r.json["name"] != name:
                    answers.append(("mixed up", (name, r.json)))
                else:
                    answers.append((r.status, r.json))
        threads = [threading.Thread(target=client, args=(t,))
                   for t in range(n_threads)]
        for th in threads:
            th.start()
        if stop_at is not None:
            wait_until(lambda: len(answers) >= stop_at, timeout=60)
            self.rc = srv.stop()
        for th in threads:
            th.join(120)
            self.assertFalse(th.is_alive())

    def test_many_creates_on_one_http_thread(self):
        srv = self.start_server(config={"http_threads": 1},
                                name="kilnd-creates")
        answers = []
        self.burst(srv, 16, 10, answers)
        self.assertEqual(len(answers), 160)
        ids = set()
        for status, body in answers:
            self.assertEqual(status, 201, body)
            assert_workflow_shape(body)
            ids.add(body["id"])
        self.assertEqual(len(ids), 160)
        # Each answer is the workflow as written, and every one runs.
        for status, body in answers[::16]:
            got = srv.get_wf(body["id"])
            self.assertEqual(got["name"], body["name"])
            self.assertEqual(got["created_at"], body["created_at"])
            self.assertEqual([s["id"] for s in got["steps"]],
                             [s["id"] for s in body["steps"]])
        for wf_id in ids:
            srv.wait_for_status(wf_id, "COMPLETED")
        lst = srv.list_wf("?limit=1000")
        self.assertEqual(ids, {w["id"] for w in lst["workflows"]})

    def test_stop_during_a_burst_keeps_every_answered_create(self):
        srv = self.start_server(config={"http_threads": 2},
                                name="kilnd-create-stop")
        answers = []
        self.burst(srv, 12, 200, answers, stop_at=100)
        self.assertEqual(self.rc, 0, "kilnd did not exit 0 on SIGTERM")
        created = [body["id"] for status, body in answers if status == 201]
        self.assertGreaterEqual(len(created), 100)
        for status, body in answers:
            # 201, or refused as the daemon stops; never a 5xx
            self.assertTrue(status in (201, "error") or
                            (isinstance(status, int) and status < 500),
                            (status, body))
        srv.start()
        for wf_id in created:  # each answered create is there, and runs
            srv.wait_for_status(wf_id, "COMPLETED")


class RestartTest(KilnTestCase):
    """Everything survives a restart; a step left RUNNING by a crash runs
    again."""

    @classmethod
    def setUpClass(cls):
        cls.fake = FakeProvider()
        cls.cfg = {"providers": {
            "failp": {"type": "http", "url": cls.fake.url("/fail500"),
                      "timeout_s": 10},
            "holdp": {"type": "http", "url": cls.fake.url("/hold"),
                      "timeout_s": 60}}}
        try:
            cls.srv = cls.start_class_server(config=cls.cfg,
                                             name="kilnd-restart")
        except Exception:
            cls.fake.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.fake.release()
        try:
            super().tearDownClass()
        finally:
            cls.fake.close()

    def snapshot(self):
        lst = self.srv.list_wf("?include_deleted=true&limit=1000")
        return lst, {w["id"]: self.srv.get_wf(w["id"])
                     for w in lst["workflows"]}

    def test_restart_keeps_everything(self):
        srv = self.srv
        done = srv.create(fashion_pipeline())
        pending = srv.create(two_steps("pending", description="p"),
                             start=False)
        cancelled = srv.create(two_steps("cancelled"), start=False)
        self.assertStatus(srv.request("DELETE", "/api/v1/workflows/"
                                      + cancelled["id"]), 200)
        failed = srv.create(simple_workflow("failed", steps=[
            {"id": "f", "task_type": "GENERATION",
             "provider_config": {"provider_type": "failp"}},
            {"id": "g", "task_type": "UPSCALE", "depends_on": ["f"]}]))
        deleted = srv.create(two_steps("deleted"))
        patched = srv.create(two_steps("patched", origin_tenant_id="t9",
                                       origin_zone="z",
                                       webhook_url="https://h.test/x"),
                             start=False)
        srv.wait_for_status(done["id"], "COMPLETED")
        srv.wait_for_status(failed["id"], "FAILED")
        srv.wait_for_status(deleted["id"], "COMPLETED")
        self.assertStatus(srv.action(deleted["id"], "cleanup"), 200)
        self.assertStatus(srv.request("PATCH", "/api/v1/workflows/"
                                      + patched["id"],
                                      {"description": "patched"}), 200)
        before_list, before = self.snapshot()
        for w in (done, pending, cancelled, failed, deleted, patched):
            self.assertIn(w["id"], before)
        statuses = {w["name"]: (w["status"], w["is_deleted"])
                    for w in before.values()}
        self.assertEqual(statuses["pending"], ("PENDING", False))
        self.assertEqual(statuses["cancelled"], ("CANCELLED", False))
        self.assertEqual(statuses["failed"], ("FAILED", False))
        self.assertEqual(statuses["deleted"], ("COMPLETED", True))

        rc = srv.stop()
        srv.start()
        after_list, after = self.snapshot()
        self.assertEqual(after_list, before_list)
        self.assertEqual(after, before)
        # and the restarted daemon works on them
        r = srv.action(pending["id"], "start")
        self.assertStatus(r, 200)
        srv.wait_for_status(pending["id"], "COMPLETED")
        self.assertEqual(rc, 0, "kilnd did not exit 0 on SIGTERM")

    def test_crash_reruns_running_step(self):
        srv, fake = self.srv, self.fake
        fake.hold()
        self.addCleanup(fake.release)
        wf = srv.create(simple_workflow("crash", steps=[
            {"id": "c1", "task_type": "GENERATION",
             "config": {"marker": "crash-c1"},
             "provider_config": {"provider_type": "holdp"}},
            {"id": "c2", "task_type": "UPSCALE", "depends_on": ["c1"],
             "input_mappings": [{"from_step": "c1",
                                 "from_field": "result_image_path",
                                 "to_field": "image"}]}]))
        wid = wf["id"]
        fake.wait_for(1, marker="crash-c1")
        srv.wait_for_step(wid, "c1", "RUNNING")
        srv.kill()
        fake.release()
        srv.start()
        done = srv.wait_for_status(wid, "COMPLETED")
        calls = fake.records(marker="crash-c1")
        self.assertEqual(len(calls), 2)
        st = steps_by_id(done)
        self.assertEqual(st["c1"]["status"], "COMPLETED")
        self.assertEqual(st["c2"]["result"]["image"],
                         st["c1"]["result"]["result_image_path"])
        self.assertTrue(st["c1"]["result"]["result_image_path"]
                        .startswith("https://cdn.example.test/"))


if __name__ == "__main__":
    kilnlib.main()
