"""Request validation of kilnd: 422 bodies in FastAPI/pydantic v2 shape,
413, 415, path and query parameters."""
import copy
import json
import uuid

import kilnlib
from kilnlib import KilnTestCase, NOBODY, free_port, raw_exchange


def base():
    """A valid two-step CreateWorkflow body."""
    return {"name": "valid", "origin_instance": "val", "steps": [
        {"id": "a", "task_type": "GENERATION"},
        {"id": "b", "task_type": "REFINE", "depends_on": ["a"],
         "input_mappings": [{"from_step": "a",
                             "from_field": "result_image_path",
                             "to_field": "image"}]}]}


def with_(**top):
    def f(b):
        for k, v in top.items():
            if v is DEL:
                del b[k]
            else:
                b[k] = v
        return b
    return f


def step(i, **keys):
    def f(b):
        for k, v in keys.items():
            if v is DEL:
                del b["steps"][i][k]
            else:
                b["steps"][i][k] = v
        return b
    return f


def mapping(**keys):
    def f(b):
        for k, v in keys.items():
            if v is DEL:
                del b["steps"][1]["input_mappings"][0][k]
            else:
                b["steps"][1]["input_mappings"][0][k] = v
        return b
    return f


def steps(*defs):
    return with_(steps=list(defs))


DEL = object()
MISSING = "Field required"
S = ["body", "steps"]
M = S + [1, "input_mappings", 0]
VALUE_ERROR = "Value error, ..."


def too_long(n):
    return "String should have at most %d characters" % n


# (label, mutator, [(loc, type[, msg]) ...])
BAD_BODIES = [
    # -- required fields
    ("missing name", with_(name=DEL), [(["body", "name"], "missing",
                                        MISSING)]),
    ("missing steps", with_(steps=DEL), [(S, "missing", MISSING)]),
    ("missing origin_instance", with_(origin_instance=DEL),
     [(["body", "origin_instance"], "missing", MISSING)]),
    ("empty object", lambda b: {},
     [(["body", "name"], "missing", MISSING), (S, "missing", MISSING),
      (["body", "origin_instance"], "missing", MISSING)]),
    ("missing step id", step(0, id=DEL), [(S + [0, "id"], "missing",
                                           MISSING)]),
    ("missing task_type", step(0, task_type=DEL),
     [(S + [0, "task_type"], "missing", MISSING)]),
    ("missing from_step", mapping(from_step=DEL),
     [(M + ["from_step"], "missing", MISSING)]),
    ("missing from_field", mapping(from_field=DEL),
     [(M + ["from_field"], "missing", MISSING)]),
    ("missing to_field", mapping(to_field=DEL),
     [(M + ["to_field"], "missing", MISSING)]),
    # -- wrong types
    ("name int", with_(name=5),
     [(["body", "name"], "string_type", "Input should be a valid string")]),
    ("name null", with_(name=None), [(["body", "name"], "string_type")]),
    ("origin_instance list", with_(origin_instance=[]),
     [(["body", "origin_instance"], "string_type")]),
    ("description int", with_(description=5),
     [(["body", "description"], "string_type")]),
    ("origin_zone object", with_(origin_zone={}),
     [(["body", "origin_zone"], "string_type")]),
    ("origin_tenant_id int", with_(origin_tenant_id=1),
     [(["body", "origin_tenant_id"], "string_type")]),
    ("origin_reference bool", with_(origin_reference=True),
     [(["body", "origin_reference"], "string_type")]),
    ("webhook_url int", with_(webhook_url=1),
     [(["body", "webhook_url"], "string_type")]),
    ("steps string", with_(steps="x"),
     [(S, "list_type", "Input should be a valid list")]),
    ("steps object", with_(steps={"id": "a"}), [(S, "list_type")]),
    ("step not object", with_(steps=["x"]),
     [(S + [0], ("dict_type", "model_attributes_type"))]),
    ("second step not object",
     with_(steps=[{"id": "a", "task_type": "GENERATION"}, 5]),
     [(S + [1], ("dict_type", "model_attributes_type"))]),
    ("config string", with_(config="x"),
     [(["body", "config"], "dict_type", "Input should be a valid "
       "dictionary")]),
    ("config list", with_(config=[]), [(["body", "config"], "dict_type")]),
    ("suppress_subtask_events list", with_(suppress_subtask_events=[]),
     [(["body", "suppress_subtask_events"], "bool_type",
       "Input should be a valid boolean")]),
    ("step id int", step(0, id=5), [(S + [0, "id"], "string_type")]),
    ("task_type int", step(0, task_type=5),
     [(S + [0, "task_type"], "string_type")]),
    ("step config string", step(0, config="x"),
     [(S + [0, "config"], "dict_type")]),
    ("depends_on string", step(1, depends_on="a"),
     [(S + [1, "depends_on"], "list_type")]),
    ("depends_on item int", step(1, depends_on=[1]),
     [(S + [1, "depends_on", 0], "string_type")]),
    ("input_mappings object", step(1, input_mappings={}),
     [(S + [1, "input_mappings"], "list_type")]),
    ("mapping not object", step(1, input_mappings=["x"]),
     [(M, ("dict_type", "model_attributes_type"))]),
    ("from_field int", mapping(from_field=5),
     [(M + ["from_field"], "string_type")]),
    ("to_field list", mapping(to_field=[]),
     [(M + ["to_field"], "string_type")]),
    ("max_retries string", step(0, max_retries="x"),
     [(S + [0, "max_retries"], "int_type", "Input should be a valid "
       "integer")]),
    ("max_retries list", step(0, max_retries=[]),
     [(S + [0, "max_retries"], "int_type")]),
    ("provider_config string", step(0, provider_config="x"),
     [(S + [0, "provider_config"], "dict_type")]),
    ("capabilities string", step(0, active_provider_capabilities="x"),
     [(S + [0, "active_provider_capabilities"], "list_type")]),
    ("capabilities item int", step(0, active_provider_capabilities=[1]),
     [(S + [0, "active_provider_capabilities", 0], "string_type")]),
    ("fallback_provider_config int", step(0, fallback_provider_config=1),
     [(S + [0, "fallback_provider_config"], "dict_type")]),
    ("fallback_provider_capabilities object",
     step(0, fallback_provider_capabilities={}),
     [(S + [0, "fallback_provider_capabilities"], "list_type")]),
    # -- lengths and ranges
    ("name empty", with_(name=""),
     [(["body", "name"], "string_too_short",
       "String should have at least 1 character")]),
    ("name 256", with_(name="n" * 256),
     [(["body", "name"], "string_too_long", too_long(255))]),
    ("origin_instance empty", with_(origin_instance=""),
     [(["body", "origin_instance"], "string_too_short")]),
    ("origin_instance 101", with_(origin_instance="o" * 101),
     [(["body", "origin_instance"], "string_too_long", too_long(100))]),
    ("description 1001", with_(description="d" * 1001),
     [(["body", "description"], "string_too_long", too_long(1000))]),
    ("origin_zone 51", with_(origin_zone="z" * 51),
     [(["body", "origin_zone"], "string_too_long", too_long(50))]),
    ("origin_tenant_id 101", with_(origin_tenant_id="t" * 101),
     [(["body", "origin_tenant_id"], "string_too_long", too_long(100))]),
    ("origin_reference 513", with_(origin_reference="r" * 513),
     [(["body", "origin_reference"], "string_too_long", too_long(512))]),
    ("webhook_url 513", with_(webhook_url="https://h.test/" + "w" * 498),
     [(["body", "webhook_url"], "string_too_long", too_long(512))]),
    ("webhook_url ftp", with_(webhook_url="ftp://x"),
     [(["body", "webhook_url"], "value_error", VALUE_ERROR)]),
    ("webhook_url no scheme", with_(webhook_url="hooks.example.test/x"),
     [(["body", "webhook_url"], "value_error", VALUE_ERROR)]),
    ("steps empty", with_(steps=[]),
     [(S, "too_short",
       "List should have at least 1 item after validation, not 0")]),
    ("step id empty", step(0, id=""), [(S + [0, "id"], "string_too_short")]),
    ("step id 101", step(0, id="s" * 101),
     [(S + [0, "id"], "string_too_long", too_long(100))]),
    ("max_retries -1", step(0, max_retries=-1),
     [(S + [0, "max_retries"], "greater_than_equal",
       "Input should be greater than or equal to 0")]),
    ("max_retries 101", step(1, max_retries=101),
     [(S + [1, "max_retries"], "less_than_equal",
       "Input should be less than or equal to 100")]),
    # -- the DAG
    ("duplicate step id", steps({"id": "a", "task_type": "GENERATION"},
                                {"id": "a", "task_type": "UPSCALE"}),
     [(S + [1, "id"], "value_error", "Value error, duplicate step id 'a'")]),
    ("depends_on unknown",
     steps({"id": "a", "task_type": "GENERATION"},
           {"id": "b", "task_type": "UPSCALE", "depends_on": ["zz"]}),
     [(S + [1, "depends_on", 0], "value_error",
       "Value error, step 'b' depends on unknown step 'zz'")]),
    ("depends_on unknown second",
     steps({"id": "a", "task_type": "GENERATION"},
           {"id": "b", "task_type": "UPSCALE", "depends_on": ["a", "zz"]}),
     [(S + [1, "depends_on", 1], "value_error",
       "Value error, step 'b' depends on unknown step 'zz'")]),
    ("self dependency",
     steps({"id": "a", "task_type": "GENERATION", "depends_on": ["a"]}),
     [(S + [0, "depends_on", 0], "value_error", VALUE_ERROR)]),
    ("mapping from non-ancestor",
     steps({"id": "a", "task_type": "GENERATION"},
           {"id": "b", "task_type": "GENERATION"},
           {"id": "c", "task_type": "UPSCALE", "depends_on": ["a"],
            "input_mappings": [{"from_step": "b", "from_field": "x",
                                "to_field": "y"}]}),
     [(S + [2, "input_mappings", 0, "from_step"], "value_error",
       VALUE_ERROR)]),
    ("mapping from descendant",
     steps({"id": "a", "task_type": "GENERATION",
            "input_mappings": [{"from_step": "b", "from_field": "x",
                                "to_field": "y"}]},
           {"id": "b", "task_type": "UPSCALE", "depends_on": ["a"]}),
     [(S + [0, "input_mappings", 0, "from_step"], "value_error",
       VALUE_ERROR)]),
    ("mapping from unknown step", mapping(from_step="zz"),
     [(M + ["from_step"], "value_error", VALUE_ERROR)]),
    ("mapping from itself", mapping(from_step="b"),
     [(M + ["from_step"], "value_error", VALUE_ERROR)]),
    ("unknown task_type", step(0, task_type="NOPE"),
     [(S + [0, "task_type"], "enum")]),
    ("unknown provider_type",
     step(0, provider_config={"provider_type": "nope"}),
     [(S + [0, "provider_config", "provider_type"], "enum")]),
    ("unknown fallback_provider_type", step(0, fallback_provider_type="nope"),
     [(S + [0, "fallback_provider_type"], ("enum", "value_error"))]),
    ("unknown transform", mapping(transform="to_banana"),
     [(M + ["transform"], "enum")]),
    # -- unknown keys
    ("extra top-level key", with_(bogus=1),
     [(["body", "bogus"], "extra_forbidden",
       "Extra inputs are not permitted")]),
    ("status is not settable", with_(status="COMPLETED"),
     [(["body", "status"], "extra_forbidden")]),
    ("extra step key", step(1, bogus=True),
     [(S + [1, "bogus"], "extra_forbidden",
       "Extra inputs are not permitted")]),
    ("extra mapping key", mapping(bogus=None),
     [(M + ["bogus"], "extra_forbidden", "Extra inputs are not permitted")]),
    # -- several errors are listed together
    ("two errors", with_(name="", steps=[]),
     [(["body", "name"], "string_too_short"), (S, "too_short")]),
]

CYCLES = [
    ("2-cycle", [{"id": "a", "task_type": "GENERATION", "depends_on": ["b"]},
                 {"id": "b", "task_type": "UPSCALE", "depends_on": ["a"]}],
     {("a", "b"), ("b", "a")}),
    ("3-cycle", [{"id": "a", "task_type": "GENERATION", "depends_on": ["c"]},
                 {"id": "b", "task_type": "UPSCALE", "depends_on": ["a"]},
                 {"id": "c", "task_type": "FILL", "depends_on": ["b"]}],
     {("a", "c"), ("b", "a"), ("c", "b")}),
    ("cycle behind a root",
     [{"id": "r", "task_type": "GENERATION"},
      {"id": "x", "task_type": "UPSCALE", "depends_on": ["r", "z"]},
      {"id": "y", "task_type": "FILL", "depends_on": ["x"]},
      {"id": "z", "task_type": "EXPAND", "depends_on": ["y"]}],
     {("x", "z"), ("y", "x"), ("z", "y")}),
]

GOOD_VARIANTS = [
    ("limits", with_(name="n" * 255, origin_instance="o" * 100,
                     description="d" * 1000, origin_zone="z" * 50,
                     origin_tenant_id="t" * 100, origin_reference="r" * 512,
                     webhook_url="https://h.test/" + "w" * 497)),
    ("nulls", with_(description=None, origin_zone=None, origin_tenant_id=None,
                    origin_reference=None, webhook_url=None)),
    ("http webhook", with_(webhook_url="http://hooks.example.test/x")),
    ("custom task type", step(0, task_type="MY_CUSTOM_TYPE")),
    ("configured provider", step(0, provider_config={"provider_type": "okp",
                                                     "extra": 1})),
    ("dryrun provider", step(0, provider_config={"provider_type": "dryrun"})),
    ("provider_config null", step(0, provider_config=None)),
    ("fallback provider", step(0, fallback_provider_type="okp")),
    ("max_retries bounds", lambda b: step(1, max_retries=100)(
        step(0, max_retries=0)(b))),
    ("step id 100", lambda b: mapping(from_step="s" * 100)(
        step(1, depends_on=["s" * 100])(step(0, id="s" * 100)(b)))),
    ("json pointer fields", mapping(from_field="/images/0/url",
                                    to_field="/input/image")),
    ("transform null", mapping(transform=None)),
    ("indirect ancestor",
     steps({"id": "a", "task_type": "GENERATION"},
           {"id": "b", "task_type": "UPSCALE", "depends_on": ["a"]},
           {"id": "c", "task_type": "FILL", "depends_on": ["b"],
            "input_mappings": [{"from_step": "a", "from_field": "x",
                                "to_field": "y"}]})),
] + [("transform " + t, mapping(transform=t)) for t in (
    "to_string", "to_int", "to_float", "to_bool", "first", "last", "to_list",
    "json_encode", "json_decode")]


class ValidationTest(KilnTestCase):
    @classmethod
    def setUpClass(cls):
        # a provider nobody calls (workflows stay PENDING); it makes "okp"
        # and MY_CUSTOM_TYPE known
        cfg = {"providers": {"okp": {"type": "http", "timeout_s": 2,
                                     "url": "http://127.0.0.1:%d/ok"
                                     % free_port()}},
               "task_types": {"MY_CUSTOM_TYPE": "okp"}}
        cls.srv = cls.start_class_server(config=cfg, name="kilnd-validation")
        cls.wf = cls.srv.create(base(), start=False)

    def total(self):
        return self.srv.list_wf("?include_deleted=true&limit=1")["total"]

    def post(self, body=NOBODY, query="?start=false", **kw):
        return self.srv.request("POST", "/api/v1/workflows" + query, body,
                                **kw)

    def test_bad_bodies(self):
        before = self.total()
        for label, mutate, expected in BAD_BODIES:
            with self.subTest(case=label):
                body = mutate(copy.deepcopy(base()))
                self.assertValidation(self.post(body), expected)
        self.assertEqual(self.total(), before, "a refused body was stored")

    def test_cycles_name_the_cycle(self):
        before = self.total()
        for label, defs, edges in CYCLES:
            with self.subTest(case=label):
                r = self.post(dict(base(), steps=defs))
                self.assertStatus(r, 422)
                hits = [d for d in r.json["detail"]
                        if d["type"] == "value_error"
                        and d["msg"].startswith("Value error, dependency "
                                                "cycle: ")]
                self.assertTrue(hits, r.text)
                d = hits[0]
                loc = d["loc"]
                self.assertEqual(len(loc), 5, loc)
                self.assertEqual(loc[:2], ["body", "steps"])
                self.assertEqual(loc[3], "depends_on")
                i, j = loc[2], loc[4]
                self.assertIsInstance(i, int)
                self.assertIsInstance(j, int)
                culprit = (defs[i]["id"], defs[i]["depends_on"][j])
                self.assertIn(culprit, edges, "loc %r is not on the cycle"
                              % loc)
                chain = [s.strip() for s in
                         d["msg"][len("Value error, dependency cycle: "):]
                         .split("->")]
                self.assertEqual(chain[0], chain[-1], d["msg"])
                names = {e for edge in edges for e in edge}
                self.assertEqual(set(chain), names, d["msg"])
                self.assertEqual(len(chain), len(names) + 1, d["msg"])
                pairs = set(zip(chain, chain[1:]))
                reverse = {(b, a) for a, b in pairs}
                self.assertTrue(pairs == edges or reverse == edges,
                                "%r is not the cycle %r" % (d["msg"], edges))
        self.assertEqual(self.total(), before)

    def test_self_dependency_mentions_itself(self):
        r = self.post(dict(base(), steps=[{"id": "a", "task_type": "FILL",
                                           "depends_on": ["a"]}]))
        detail = self.assertValidation(r, [(S + [0, "depends_on", 0],
                                            "value_error", VALUE_ERROR)])
        msgs = [d["msg"] for d in detail if d["loc"] == S + [0, "depends_on",
                                                           0]]
        self.assertTrue(any("itself" in m for m in msgs), msgs)

    def test_good_variants(self):
        for label, mutate in GOOD_VARIANTS:
            with self.subTest(case=label):
                body = mutate(copy.deepcopy(base()))
                r = self.post(body)
                self.assertStatus(r, 201)
                self.assertEqual(r.json["status"], "PENDING")
                kilnlib.assert_workflow_shape(r.json)
                self.assertEqual(r.json["name"], body["name"])
                self.assertEqual([s["step_id"] for s in r.json["steps"]],
                                 [s["id"] for s in body["steps"]])

    def test_undecodable_bodies(self):
        before = self.total()
        for raw in ("{not json", '{"name": "x",', '{"name":"x"} trailing',
                    "\xff\xfe"):
            with self.subTest(raw=raw):
                r = self.post(raw=raw.encode("latin-1"))
                detail = self.assertValidation(r, [])
                hits = [d for d in detail if d["type"] == "json_invalid"]
                self.assertTrue(hits, r.text)
                d = hits[0]
                self.assertEqual(d["msg"], "JSON decode error")
                self.assertEqual(len(d["loc"]), 2, d["loc"])
                self.assertEqual(d["loc"][0], "body")
                self.assertIsInstance(d["loc"][1], int)
                self.assertFalse(isinstance(d["loc"][1], bool))
                self.assertTrue(0 <= d["loc"][1] <= len(raw), d["loc"])
        r = self.post(raw=b"")
        self.assertValidation(r, [(["body"], "missing", MISSING)])
        r = self.post()
        self.assertValidation(r, [(["body"], "missing", MISSING)])
        for raw in ("[1, 2]", '"text"', "42"):
            with self.subTest(raw=raw):
                r = self.post(raw=raw)
                self.assertValidation(r, [(
                    ["body"], "model_attributes_type",
                    "Input should be a valid dictionary or object to "
                    "extract fields from")])
        r = self.srv.request("PATCH", "/api/v1/workflows/" + self.wf["id"],
                             raw=b"{oops")
        detail = self.assertValidation(r, [])
        self.assertEqual(detail[0]["type"], "json_invalid")
        r = self.srv.request("PATCH", "/api/v1/workflows/" + self.wf["id"])
        self.assertValidation(r, [(["body"], "missing", MISSING)])
        self.assertEqual(self.total(), before)

    def test_content_type(self):
        before = self.total()
        for ctype in ("text/plain", "application/x-www-form-urlencoded",
                      "multipart/form-data; boundary=x"):
            with self.subTest(ctype=ctype):
                r = self.post(base(), content_type=ctype)
                self.assertDetail(r, 415,
                                  "Content-Type must be application/json")
                r = self.srv.request("PATCH", "/api/v1/workflows/"
                                     + self.wf["id"], {"name": "415"},
                                     content_type=ctype)
                self.assertDetail(r, 415,
                                  "Content-Type must be application/json")
        self.assertEqual(self.total(), before)
        self.assertEqual(self.srv.get_wf(self.wf["id"])["name"], "valid")
        for ctype in ("application/json; charset=utf-8", None):
            with self.subTest(ctype=ctype):
                r = self.post(base(), content_type=ctype)
                self.assertStatus(r, 201)
        self.assertEqual(self.total(), before + 2)

    def test_body_over_one_mib(self):
        before = self.total()
        body = dict(base(), config={"pad": "x" * (1536 * 1024)})
        data = json.dumps(body).encode()
        head = ("POST /api/v1/workflows?start=false HTTP/1.1\r\n"
                "Host: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                "Content-Type: application/json\r\nContent-Length: %d\r\n"
                "Expect: 100-continue\r\nConnection: close\r\n\r\n"
                % (self.srv.token, len(data))).encode()
        r = raw_exchange(self.srv.port, head, data, expect_continue=True)
        self.assertDetail(r, 413,
                          "Request body too large: limit is 1048576 bytes")
        # without Expect: the client sends everything
        r = self.post(raw=data)
        self.assertDetail(r, 413,
                          "Request body too large: limit is 1048576 bytes")
        self.assertEqual(self.total(), before)

    def test_request_headers_up_to_32_kb(self):
        """Headers of 16 KB pass, with a body too; past libmicrohttpd's
        connection pool (32 KiB) the answer is 431 and nothing is
        stored."""
        before = self.total()
        pad = {"X-Pad": "p" * 16000}
        r = self.srv.request("GET", "/api/v1/workflows/?limit=1",
                             headers=pad)
        self.assertStatus(r, 200)
        body = dict(base(), config={"pad": "x" * 200000})
        r = self.post(body, headers=pad)
        self.assertStatus(r, 201)
        self.assertEqual(self.total(), before + 1)
        r = self.post(base(), headers={"X-Pad": "p" * 64000})
        self.assertEqual(r.status, 431)
        self.assertEqual(self.total(), before + 1)

    def test_configured_max_body_bytes(self):
        srv = self.start_server(config={"max_body_bytes": 4096},
                                name="kilnd-smallbody")

        def body_of(size):
            b = dict(base(), config={"pad": ""})
            b["config"]["pad"] = "x" * (size - len(json.dumps(b)))
            data = json.dumps(b).encode()
            self.assertEqual(len(data), size)
            return data

        r = srv.request("POST", "/api/v1/workflows?start=false",
                        raw=body_of(4096))
        self.assertStatus(r, 201)
        for size in (4097, 20000):
            with self.subTest(size=size):
                r = srv.request("POST", "/api/v1/workflows?start=false",
                                raw=body_of(size))
                self.assertDetail(r, 413, "Request body too large: limit is "
                                  "4096 bytes")
        self.assertEqual(srv.list_wf()["total"], 1)

    # ------------------------------------------------------------ path
    def test_path_id_not_uuid(self):
        calls = [("GET", ""), ("PATCH", ""), ("DELETE", ""),
                 ("POST", "/start"), ("POST", "/pause"), ("POST", "/resume"),
                 ("POST", "/cleanup")]
        for bad in ("not-a-uuid", "123", self.wf["id"] + "0",
                    self.wf["id"][:-1] + "g"):
            for method, suffix in calls:
                with self.subTest(id=bad, call=method + suffix):
                    body = {} if method == "PATCH" else NOBODY
                    r = self.srv.request(method, "/api/v1/workflows/%s%s"
                                         % (bad, suffix), body)
                    self.assertValidation(r, [(["path", "workflow_id"],
                                               "uuid_parsing",
                                               "Input should be a valid "
                                               "UUID")])

    def test_unknown_uuid(self):
        wid = str(uuid.uuid4())
        calls = [("GET", ""), ("PATCH", ""), ("DELETE", ""),
                 ("POST", "/start"), ("POST", "/pause"), ("POST", "/resume"),
                 ("POST", "/cleanup")]
        for method, suffix in calls:
            with self.subTest(call=method + suffix):
                body = {"name": "x"} if method == "PATCH" else NOBODY
                r = self.srv.request(method, "/api/v1/workflows/%s%s"
                                     % (wid, suffix), body)
                self.assertDetail(r, 404, "Workflow %s not found" % wid)
                kilnlib.assert_schema(r.json, "ErrorDetail")

    # ------------------------------------------------------------ query
    def test_list_query_errors(self):
        int_msg = ("Input should be a valid integer, unable to parse string "
                   "as an integer")
        bool_msg = "Input should be a valid boolean, unable to interpret input"
        cases = [
            ("limit=0", [(["query", "limit"], "greater_than_equal",
                          "Input should be greater than or equal to 1")]),
            ("limit=1001", [(["query", "limit"], "less_than_equal",
                             "Input should be less than or equal to 1000")]),
            ("limit=x", [(["query", "limit"], "int_parsing", int_msg)]),
            ("limit=1.5", [(["query", "limit"], "int_parsing", int_msg)]),
            ("limit=", [(["query", "limit"], "int_parsing", int_msg)]),
            ("skip=-1", [(["query", "skip"], "greater_than_equal",
                          "Input should be greater than or equal to 0")]),
            ("skip=x", [(["query", "skip"], "int_parsing", int_msg)]),
            ("skip=-1&limit=0", [(["query", "skip"], "greater_than_equal"),
                                 (["query", "limit"], "greater_than_equal")]),
            ("status=BOGUS", [(["query", "status"], "enum")]),
            ("status=pending", [(["query", "status"], "enum")]),
            ("include_deleted=maybe", [(["query", "include_deleted"],
                                        "bool_parsing", bool_msg)]),
            ("include_deleted=2", [(["query", "include_deleted"],
                                    "bool_parsing", bool_msg)]),
        ]
        for query, expected in cases:
            with self.subTest(query=query):
                r = self.srv.request("GET", "/api/v1/workflows?" + query)
                self.assertValidation(r, expected)
        for query, limit in (("limit=1", 1), ("limit=1000", 1000)):
            r = self.srv.request("GET", "/api/v1/workflows?" + query)
            self.assertStatus(r, 200)
            self.assertEqual(r.json["limit"], limit)
        for value in ("true", "FALSE", "1", "0", "yes", "No", "on", "off"):
            with self.subTest(include_deleted=value):
                r = self.srv.request("GET", "/api/v1/workflows?"
                                     "include_deleted=" + value)
                self.assertStatus(r, 200)

    def test_bool_query_errors_change_nothing(self):
        before = self.total()
        r = self.post(base(), query="?start=maybe")
        self.assertValidation(r, [(["query", "start"], "bool_parsing",
                                   "Input should be a valid boolean, unable "
                                   "to interpret input")])
        self.assertEqual(self.total(), before)
        wf = self.srv.create(base(), start=False)
        r = self.srv.action(wf["id"], "cleanup", query="?cleanup_tasks=maybe")
        self.assertValidation(r, [(["query", "cleanup_tasks"],
                                   "bool_parsing")])
        self.assertIs(self.srv.get_wf(wf["id"])["is_deleted"], False)


if __name__ == "__main__":
    kilnlib.main()
