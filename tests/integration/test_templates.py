"""The template routes of kilnd: create, get (any version), list (filters,
pagination), publish a new version (PUT), archive (DELETE), previews of a
stored template and of a draft, {{inputs.NAME}} placeholders and "$inputs"
mappings, 422 shapes, and tenant isolation.

One kilnd serves the whole class.  Its config adds an http provider "okp"
(a FakeProvider that must never be called: previews call no provider) and
a task type MY_TYPE routed to it; webhooks keep the default config, which
refuses private webhook targets.  Tests tag their template names with a
marker of their own, so list checks filter by name."""
import copy
import threading
import urllib.parse
import uuid

import kilnlib
from kilnlib import (KilnTestCase, NOBODY, TIMESTAMP_RE, UUID_RE,
                     assert_schema, tenant_token)
from fake_provider import FakeProvider

TP = "/api/v1/templates"
MISSING = "Field required"
EXTRA = "Extra inputs are not permitted"
VALUE_ERROR = "Value error, ..."

TEMPLATE_FIELDS = (
    "id", "name", "description", "status", "version", "latest_version",
    "origin_tenant_id", "created_at", "updated_at", "published_at",
    "archived_at", "inputs", "steps", "config", "webhook_url",
    "suppress_subtask_events")
DEFINITION_KEYS = ("name", "description", "inputs", "steps", "config",
                   "webhook_url", "suppress_subtask_events")
DEFINITION_DEFAULTS = {"description": None, "inputs": {}, "config": {},
                       "webhook_url": None, "suppress_subtask_events": True}

# The example of docs/templates.md (webhook host changed to a .test name,
# which never resolves, so no DNS lookup leaves the machine).
HERO = {
    "name": "Product hero",
    "description": "A lifestyle image for a new catalogue product",
    "inputs": {
        "product_name": {"type": "string", "required": True,
                         "description": "Shown in the prompt"},
        "style": {"type": "enum", "values": ["studio", "beach"],
                  "default": "studio"},
        "width": {"type": "integer", "default": 1024},
        "product_image": {"type": "asset"},
    },
    "steps": [
        {"id": "generate", "task_type": "GENERATION",
         "config": {"prompt": "{{inputs.product_name}} in {{ inputs.style }}"
                              " style",
                    "width": "{{inputs.width}}"}},
        {"id": "refine", "task_type": "REFINE", "depends_on": ["generate"],
         "input_mappings": [
             {"from_step": "generate", "from_field": "result_image_path",
              "to_field": "base_image_url"},
             {"from_step": "$inputs", "from_field": "product_name",
              "to_field": "title"}]},
    ],
    "webhook_url": "https://cms.example.test/hooks/kiln",
}

# One input of every type (and a required one), for the input checks.
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


def hero(**overrides):
    body = copy.deepcopy(HERO)
    body.update(overrides)
    return body


def minimal(name="minimal", **extra):
    body = {"name": name, "steps": [{"id": "only",
                                     "task_type": "GENERATION"}]}
    body.update(extra)
    return body


def base_def(name="base"):
    """A valid definition: two steps, a required and a defaulted input,
    a spaced placeholder and a "$inputs" mapping."""
    return {
        "name": name,
        "inputs": {"prompt": {"type": "string", "required": True},
                   "width": {"type": "integer", "default": 512}},
        "steps": [
            {"id": "gen", "task_type": "GENERATION",
             "config": {"prompt": "{{inputs.prompt}}",
                        "width": "{{ inputs.width }}"}},
            {"id": "up", "task_type": "UPSCALE", "depends_on": ["gen"],
             "input_mappings": [
                 {"from_step": "gen", "from_field": "result_image_path",
                  "to_field": "image_url"},
                 {"from_step": "$inputs", "from_field": "width",
                  "to_field": "target_width"}]},
        ],
    }


def expected_definition(body):
    out = dict(DEFINITION_DEFAULTS)
    out.update({k: v for k, v in body.items() if k in DEFINITION_KEYS})
    return out


def assert_template_shape(t):
    """Every TemplatePublic field is there, ids and timestamps are well
    formed, and the object matches openapi.yaml."""
    assert isinstance(t, dict), "template is not an object: %r" % (t,)
    missing = [f for f in TEMPLATE_FIELDS if f not in t]
    assert not missing, "template lacks fields %s" % missing
    assert UUID_RE.match(t["id"]), "template id %r" % t["id"]
    assert t["status"] in ("ACTIVE", "ARCHIVED"), t["status"]
    for f in ("created_at", "updated_at", "published_at"):
        assert isinstance(t[f], str) and TIMESTAMP_RE.match(t[f]), \
            "template %s = %r is not RFC 3339 UTC with ms" % (f, t[f])
    if t["archived_at"] is not None:
        assert TIMESTAMP_RE.match(t["archived_at"]), t["archived_at"]
    assert (t["archived_at"] is None) == (t["status"] == "ACTIVE"), \
        "status %s with archived_at %r" % (t["status"], t["archived_at"])
    assert 1 <= t["version"] <= t["latest_version"], \
        (t["version"], t["latest_version"])
    assert_schema(t, "TemplatePublic")


# ------------------------------------------------------------ bad bodies

DEL = object()


def with_(**top):
    def f(b):
        for k, v in top.items():
            if v is DEL:
                del b[k]
            else:
                b[k] = v
        return b
    return f


def input_(name, spec):
    def f(b):
        if spec is DEL:
            del b["inputs"][name]
        else:
            b["inputs"][name] = spec
        return b
    return f


def step_(i, **keys):
    def f(b):
        for k, v in keys.items():
            b["steps"][i][k] = v
        return b
    return f


def steps_(*defs):
    return with_(steps=list(defs))


I = ["body", "inputs"]
S = ["body", "steps"]
INPUTS_MAPPING = S + [1, "input_mappings", 1, "from_field"]

# (label, mutator of base_def(), [(loc, type[, msg]) ...], exact count)
BAD_DEFINITIONS = [
    # -- inputs used but not declared
    ("undeclared placeholder", input_("prompt", DEL),
     [(I + ["prompt"], "missing",
       "Field required: the steps use {{inputs.prompt}}, which is not "
       "declared")], 1),
    ("undeclared spaced placeholder and $inputs mapping",
     input_("width", DEL),
     [(I + ["width"], "missing"),
      (INPUTS_MAPPING, "value_error",
       "Value error, 'width' is not a declared input")], 2),
    ("no inputs at all", with_(inputs=DEL),
     [(I + ["prompt"], "missing"), (I + ["width"], "missing"),
      (INPUTS_MAPPING, "value_error")], 3),
    ("undeclared in the template config",
     with_(config={"x": "{{inputs.zz}}"}), [(I + ["zz"], "missing")], 1),
    ("undeclared deep in a step config",
     step_(0, config={"prompt": "{{inputs.prompt}}",
                      "nested": {"list": ["a {{ inputs.qq }} b"]}}),
     [(I + ["qq"], "missing")], 1),
    ("$inputs mapping of an undeclared input",
     lambda b: b["steps"][1]["input_mappings"][1].update(
         from_field="height") or b,
     [(INPUTS_MAPPING, "value_error", VALUE_ERROR)], 1),
    # -- input specs
    ("unknown input type", input_("q", {"type": "float"}),
     [(I + ["q", "type"], "enum",
       "Input should be 'string', 'integer', 'number', 'boolean', 'url', "
       "'enum' or 'asset'")], 1),
    ("input without type", input_("q", {}),
     [(I + ["q", "type"], "missing", MISSING)], 1),
    ("input spec not an object", input_("q", "string"),
     [(I + ["q"], "dict_type")], 1),
    ("inputs not an object", with_(inputs=["prompt"]),
     [(I, "dict_type")], None),
    ("enum without values", input_("q", {"type": "enum"}),
     [(I + ["q", "values"], "missing", MISSING)], 1),
    ("enum with no values", input_("q", {"type": "enum", "values": []}),
     [(I + ["q", "values"], "too_short")], 1),
    ("enum value listed twice",
     input_("q", {"type": "enum", "values": ["a", "a"]}),
     [(I + ["q", "values", 1], "value_error")], 1),
    ("enum value not a string",
     input_("q", {"type": "enum", "values": ["a", 1]}),
     [(I + ["q", "values", 1], "string_type")], 1),
    ("values on a string input",
     input_("q", {"type": "string", "values": ["a"]}),
     [(I + ["q", "values"], "extra_forbidden", EXTRA)], 1),
    ("integer default of the wrong type",
     input_("q", {"type": "integer", "default": "7"}),
     [(I + ["q", "default"], "int_type",
       "Input should be a valid integer")], 1),
    ("boolean default of the wrong type",
     input_("q", {"type": "boolean", "default": 1}),
     [(I + ["q", "default"], "bool_type")], 1),
    ("string default of the wrong type",
     input_("q", {"type": "string", "default": 5}),
     [(I + ["q", "default"], "string_type")], 1),
    ("url default with a bad scheme",
     input_("q", {"type": "url", "default": "ftp://files.example.test/x"}),
     [(I + ["q", "default"], "url_scheme")], 1),
    ("enum default not among the values",
     input_("q", {"type": "enum", "values": ["a"], "default": "b"}),
     [(I + ["q", "default"], "enum", "Input should be 'a'")], 1),
    ("required input with a default",
     input_("q", {"type": "string", "required": True, "default": "x"}),
     [(I + ["q", "default"], "value_error", VALUE_ERROR)], 1),
    ("required not a boolean",
     input_("q", {"type": "string", "required": "yes"}),
     [(I + ["q", "required"], "bool_type")], 1),
    ("unknown key in an input spec",
     input_("q", {"type": "string", "bogus": 1}),
     [(I + ["q", "bogus"], "extra_forbidden", EXTRA)], 1),
    ("input description over 1000 characters",
     input_("q", {"type": "string", "description": "d" * 1001}),
     [(I + ["q", "description"], "string_too_long")], 1),
    ("input name with a blank", input_("bad name", {"type": "string"}),
     [(I + ["bad name"], "string_pattern_mismatch")], 1),
    ("input name of 65 characters", input_("n" * 65, {"type": "string"}),
     [(I + ["n" * 65], "string_pattern_mismatch")], 1),
    ("101 inputs",
     with_(inputs=dict({"prompt": {"type": "string"},
                        "width": {"type": "integer"}},
                       **{"i%d" % k: {"type": "string"}
                          for k in range(99)})),
     [(I, "too_long")], 1),
    # -- top-level fields
    ("missing name", with_(name=DEL), [(["body", "name"], "missing",
                                        MISSING)], 1),
    ("missing steps", with_(steps=DEL),
     [(S, "missing", MISSING)], None),
    ("empty name", with_(name=""), [(["body", "name"], "string_too_short")],
     1),
    ("name of 256 characters", with_(name="n" * 256),
     [(["body", "name"], "string_too_long")], 1),
    ("steps empty", with_(steps=[]), [(S, "too_short")], None),
    ("config not an object", with_(config=[]),
     [(["body", "config"], "dict_type")], 1),
    ("suppress_subtask_events not a boolean",
     with_(suppress_subtask_events="yes"),
     [(["body", "suppress_subtask_events"], "bool_type")], 1),
    ("origin_instance is not a template field", with_(origin_instance="x"),
     [(["body", "origin_instance"], "extra_forbidden", EXTRA)], 1),
    ("origin_tenant_id is not settable", with_(origin_tenant_id="t"),
     [(["body", "origin_tenant_id"], "extra_forbidden", EXTRA)], 1),
    # -- steps, as for workflows
    ("unknown task type", step_(0, task_type="NOPE"),
     [(S + [0, "task_type"], "enum")], 1),
    ("depends_on an unknown step", step_(1, depends_on=["zz"]),
     [(S + [1, "depends_on", 0], "value_error", VALUE_ERROR)], None),
    ("mapping from a non-ancestor",
     steps_({"id": "a", "task_type": "GENERATION",
             "config": {"p": "{{inputs.prompt}}"}},
            {"id": "b", "task_type": "GENERATION"},
            {"id": "c", "task_type": "UPSCALE", "depends_on": ["a"],
             "input_mappings": [{"from_step": "b", "from_field": "x",
                                 "to_field": "y"}]}),
     [(S + [2, "input_mappings", 0, "from_step"], "value_error",
       VALUE_ERROR)], 1),
    ("extra step key", step_(0, bogus=True),
     [(S + [0, "bogus"], "extra_forbidden", EXTRA)], 1),
    # -- webhook targets (the default config refuses private networks)
    ("webhook_url to 127.0.0.1", with_(webhook_url="http://127.0.0.1:9/x"),
     [(["body", "webhook_url"], "value_error", VALUE_ERROR)], 1),
    ("webhook_url to localhost", with_(webhook_url="http://localhost/x"),
     [(["body", "webhook_url"], "value_error", VALUE_ERROR)], 1),
    ("webhook_url to 10.0.0.1", with_(webhook_url="https://10.0.0.1/x"),
     [(["body", "webhook_url"], "value_error", VALUE_ERROR)], 1),
    ("webhook_url to the metadata address",
     with_(webhook_url="http://169.254.169.254/latest"),
     [(["body", "webhook_url"], "value_error", VALUE_ERROR)], 1),
    ("webhook_url ftp", with_(webhook_url="ftp://hooks.example.test/x"),
     [(["body", "webhook_url"], "value_error", VALUE_ERROR)], 1),
    # -- several errors are listed together
    ("errors of every kind at once",
     lambda b: with_(name="", webhook_url="http://127.0.0.1/x")(
         input_("q", {"type": "enum"})(input_("prompt", DEL)(b))),
     [(["body", "name"], "string_too_short"),
      (I + ["q", "values"], "missing"), (I + ["prompt"], "missing"),
      (["body", "webhook_url"], "value_error")], 4),
]


def nested(expected, key="definition"):
    """The expected errors with their body locs moved under key."""
    return [tuple([exp[0][:1] + [key] + exp[0][1:]] + list(exp[1:]))
            for exp in expected]


class TemplatesTest(KilnTestCase):

    @classmethod
    def setUpClass(cls):
        cls.fake = FakeProvider()
        cfg = {"providers": {"okp": {"type": "http",
                                     "url": cls.fake.url("/ok"),
                                     "timeout_s": 5}},
               "task_types": {"MY_TYPE": "okp"}}
        try:
            cls.srv = cls.start_class_server(config=cfg,
                                             name="kilnd-templates")
        except Exception:
            cls.fake.close()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.fake.close()

    def tearDown(self):
        try:
            # Previews and templates never call a provider, nor start runs.
            self.assertEqual(self.fake.records(), [],
                             "a provider was called")
        finally:
            super().tearDown()

    # ------------------------------------------------------------ helpers
    def req(self, method, path, body=NOBODY, **kw):
        """One request; every 2xx answer of a template route is checked
        against its OpenAPI schema."""
        r = self.srv.request(method, path, body, **kw)
        if 200 <= r.status < 300 and path.startswith(TP):
            route = path.split("?", 1)[0].rstrip("/")
            if route.endswith("/preview"):
                assert_schema(r.json, "TemplatePreview")
            elif route == TP and method == "GET":
                assert_schema(r.json, "TemplateList")
                for t in r.json["templates"]:
                    assert_template_shape(t)
            else:
                assert_template_shape(r.json)
        return r

    def create(self, body, token=kilnlib.DEFAULT):
        r = self.req("POST", TP, body, token=token)
        self.assertStatus(r, 201, "POST %s" % TP)
        self.assertTrue((r.header("Content-Type") or "")
                        .startswith("application/json"), r.headers)
        assert_template_shape(r.json)
        return r.json

    def get(self, tid, query="", token=kilnlib.DEFAULT, status=200):
        r = self.req("GET", "%s/%s%s" % (TP, tid, query), token=token)
        self.assertStatus(r, status, "GET template %s%s" % (tid, query))
        if status == 200:
            assert_template_shape(r.json)
        return r.json

    def listing(self, query="", token=kilnlib.DEFAULT):
        r = self.req("GET", TP + query, token=token)
        self.assertStatus(r, 200, "GET %s%s" % (TP, query))
        assert_schema(r.json, "TemplateList")
        for t in r.json["templates"]:
            assert_template_shape(t)
        return r.json

    def by_name(self, marker, extra="", token=kilnlib.DEFAULT):
        return self.listing("?name=%s%s" % (urllib.parse.quote(marker),
                                            extra), token=token)

    def total(self):
        return self.listing("?limit=1")["pagination"]["total"]

    def workflows_total(self):
        return self.srv.list_wf("?include_deleted=true&limit=1")["total"]

    def preview(self, tid, inputs=None, body=NOBODY, query="",
                token=kilnlib.DEFAULT):
        if inputs is not None:
            body = {"inputs": inputs}
        return self.req("POST", "%s/%s/preview%s" % (TP, tid, query), body,
                        token=token)

    def draft(self, definition, inputs=None):
        body = {"definition": definition}
        if inputs is not None:
            body["inputs"] = inputs
        return self.req("POST", TP + "/preview", body)

    def assertPreview(self, r):
        self.assertStatus(r, 200, "preview")
        assert_schema(r.json, "TemplatePreview")
        self.assertIs(r.json["valid"], True)
        return r.json

    def requests_of(self, preview):
        return {s["step_id"]: s["request"] for s in preview["steps"]}

    def assertNotFound(self, r, tid, version=None):
        if version is None:
            self.assertDetail(r, 404, "Template %s not found" % tid)
        else:
            self.assertDetail(r, 404, "Template %s has no version %d"
                              % (tid, version))
        assert_schema(r.json, "ErrorDetail")

    def marker(self):
        return "m" + uuid.uuid4().hex[:10]

    # ------------------------------------------------------------ create
    def test_create_and_get(self):
        t = self.create(hero())
        self.assertEqual(t["status"], "ACTIVE")
        self.assertEqual(t["version"], 1)
        self.assertEqual(t["latest_version"], 1)
        self.assertIsNone(t["origin_tenant_id"])
        self.assertIsNone(t["archived_at"])
        self.assertEqual(t["created_at"], t["updated_at"])
        self.assertEqual(t["created_at"], t["published_at"])
        self.assertEqual({k: t[k] for k in DEFINITION_KEYS},
                         expected_definition(HERO))
        self.assertEqual(self.get(t["id"]), t)
        self.assertEqual(self.get(t["id"], "?version=1"), t)

        # the optional fields take their defaults
        m = self.create(minimal("defaults"))
        self.assertEqual({k: m[k] for k in DEFINITION_KEYS},
                         expected_definition(minimal("defaults")))
        self.assertNotEqual(m["id"], t["id"])

        # and are kept when given
        full = minimal("full", description="d" * 1000, config={"k": [1, 2]},
                       webhook_url="http://hooks.example.test/kiln",
                       suppress_subtask_events=False,
                       inputs={"n" * 64: {"type": "number", "default": 1,
                                          "description": "x" * 1000}})
        f = self.create(full)
        self.assertEqual({k: f[k] for k in DEFINITION_KEYS},
                         expected_definition(full))
        self.assertEqual(self.get(f["id"]), f)

        # 100 inputs is the most
        many = minimal("many", inputs={"i%d" % k: {"type": "string"}
                                       for k in range(100)})
        self.assertEqual(len(self.create(many)["inputs"]), 100)

    def test_create_refuses_bad_definitions(self):
        before = self.total()
        for label, mutate, expected, count in BAD_DEFINITIONS:
            with self.subTest(case=label):
                body = mutate(base_def())
                self.assertValidation(self.req("POST", TP, body), expected,
                                      exact_count=count)
        self.assertEqual(self.total(), before, "a refused body was stored")

    def test_cycle_is_refused(self):
        before = self.total()
        body = minimal("cycle", steps=[
            {"id": "a", "task_type": "GENERATION", "depends_on": ["c"]},
            {"id": "b", "task_type": "UPSCALE", "depends_on": ["a"]},
            {"id": "c", "task_type": "FILL", "depends_on": ["b"]}])
        for label, send in (("create", lambda: self.req("POST", TP, body)),
                            ("draft", lambda: self.draft(body))):
            with self.subTest(route=label):
                r = send()
                detail = self.assertValidation(r, [])
                prefix = S if label == "create" else \
                    ["body", "definition", "steps"]
                hits = [d for d in detail if d["type"] == "value_error"
                        and d["msg"].startswith("Value error, dependency "
                                                "cycle: ")]
                self.assertTrue(hits, r.text)
                loc = hits[0]["loc"]
                self.assertEqual(loc[:len(prefix)], prefix, loc)
                self.assertEqual(loc[len(prefix) + 1], "depends_on", loc)
        self.assertEqual(self.total(), before)

    def test_undecodable_and_non_object_bodies(self):
        before = self.total()
        r = self.req("POST", TP, raw=b"{not json")
        detail = self.assertValidation(r, [])
        self.assertEqual(detail[0]["type"], "json_invalid")
        self.assertValidation(self.req("POST", TP),
                              [(["body"], "missing", MISSING)])
        self.assertValidation(self.req("POST", TP, [1, 2]),
                              [(["body"], "model_attributes_type")])
        self.assertEqual(self.total(), before)

    def test_auth_is_required(self):
        for method, path in (("GET", TP), ("POST", TP),
                             ("POST", TP + "/preview")):
            with self.subTest(call=method + " " + path):
                body = minimal() if method == "POST" else NOBODY
                r = self.req(method, path, body, token=None)
                self.assertStatus(r, 401)

    # ------------------------------------------------------------ preview
    def test_preview_of_the_documented_example(self):
        t = self.create(hero())
        r = self.preview(t["id"], {"product_name": "Red dress",
                                   "width": 512})
        p = self.assertPreview(r)
        self.assertEqual(p, {
            "template_id": t["id"], "version": 1, "valid": True,
            "inputs": {"product_name": "Red dress", "style": "studio",
                       "width": 512},
            "final_step_id": "refine", "config": {},
            "steps": [
                {"step_id": "generate", "task_type": "GENERATION",
                 "provider": "dryrun", "depends_on": [],
                 "request": {"prompt": "Red dress in studio style",
                             "width": 512},
                 "pending_mappings": []},
                {"step_id": "refine", "task_type": "REFINE",
                 "provider": "dryrun", "depends_on": ["generate"],
                 "request": {"title": "Red dress"},
                 "pending_mappings": [
                     {"from_step": "generate",
                      "from_field": "result_image_path",
                      "to_field": "base_image_url", "transform": None}]}]})

        # defaults can be overridden; the asset keeps its other keys
        asset = {"url": "s3://bucket/red.png", "mime_type": "image/png"}
        p = self.assertPreview(self.preview(t["id"], {
            "product_name": "Hat", "style": "beach",
            "product_image": asset}))
        self.assertEqual(p["inputs"], {"product_name": "Hat",
                                       "style": "beach", "width": 1024,
                                       "product_image": asset})
        self.assertEqual(self.requests_of(p)["generate"],
                         {"prompt": "Hat in beach style", "width": 1024})

        # the stored template is unchanged by previews
        self.assertEqual(self.get(t["id"]), t)

    def test_preview_body_is_optional(self):
        t = self.create(minimal("optional body", inputs={
            "w": {"type": "integer", "default": 3},
            "o": {"type": "string"}},
            steps=[{"id": "s", "task_type": "GENERATION",
                    "config": {"w": "{{inputs.w}}"}}]))
        for label, kw in (("no body", {}), ("empty object", {"body": {}}),
                          ("empty inputs", {"inputs": {}})):
            with self.subTest(case=label):
                p = self.assertPreview(self.preview(t["id"], **kw))
                self.assertEqual(p["inputs"], {"w": 3})
                self.assertEqual(self.requests_of(p), {"s": {"w": 3}})
                self.assertEqual(p["template_id"], t["id"])
                self.assertEqual(p["version"], 1)
        # a required input makes the empty body a 422
        h = self.create(hero())
        self.assertValidation(self.preview(h["id"]), [
            (I + ["product_name"], "missing", MISSING)], exact_count=1)

    def test_placeholders_keep_types_or_become_text(self):
        inputs = dict(ALL_TYPES)
        config = {k: "{{inputs.%s}}" % k for k in inputs}
        config.update({"t_" + k: "<{{ inputs.%s }}>" % k for k in inputs})
        config.update({
            "two": "{{inputs.e}}{{inputs.e}}",
            "tabs": "{{\tinputs.i\t}}",
            "deep": {"list": ["{{inputs.i}}", {"x": "a {{inputs.r}} b"}]},
            "utf8": "é {{inputs.r}} ü",
            # not placeholders: left as they are
            "other": "{{input}} {{inputs.s} {{ inputs. s}} {{INPUTS.s}}"
                     " {{inputs.s-x}} {inputs.s}",
        })
        d = {"name": "types", "inputs": inputs,
             "config": {"top": "{{inputs.n}}", "text": "n={{inputs.n}}"},
             "steps": [{"id": "s", "task_type": "GENERATION",
                        "config": config}]}
        asset = {"url": "https://cdn.example.test/a.png", "asset_id": "a1"}
        values = {"s": "say {{inputs.i}}", "i": 9007199254740993,
                  "n": 0.1, "b": False, "u": "gs://bucket/k.png",
                  "e": "y", "a": asset, "r": "ñ"}
        t = self.create(d)
        for label, r in (("stored", self.preview(t["id"], values)),
                         ("draft", self.draft(d, values))):
            with self.subTest(route=label):
                p = self.assertPreview(r)
                self.assertEqual(p["inputs"], values)
                self.assertEqual(p["config"], {"top": 0.1,
                                               "text": "n=0.1"})
                self.assertEqual(self.requests_of(p)["s"], {
                    "s": "say {{inputs.i}}", "i": 9007199254740993,
                    "n": 0.1, "b": False, "u": "gs://bucket/k.png",
                    "e": "y", "a": asset, "r": "ñ",
                    # an input's text is never scanned for placeholders
                    "t_s": "<say {{inputs.i}}>",
                    "t_i": "<9007199254740993>", "t_n": "<0.1>",
                    "t_b": "<false>", "t_u": "<gs://bucket/k.png>",
                    "t_e": "<y>", "t_a": "<https://cdn.example.test/a.png>",
                    "t_r": "<ñ>",
                    "two": "yy", "tabs": 9007199254740993,
                    "deep": {"list": [9007199254740993,
                                      {"x": "a ñ b"}]},
                    "utf8": "é ñ ü",
                    "other": config["other"],
                })
        self.assertEqual(p["template_id"], None)
        self.assertEqual(p["version"], None)

    def test_inputs_mappings_and_provider_parameters(self):
        d = {"name": "mappings",
             "inputs": {"w": {"type": "integer", "default": 640},
                        "a": {"type": "asset"},
                        "q": {"type": "enum", "values": ["hd", "sd"],
                              "default": "hd"}},
             "steps": [
                 {"id": "gen", "task_type": "MY_TYPE",
                  "config": {"model": "from-config", "keep": 1},
                  "provider_config": {"provider_type": "okp",
                                      "model": "m1",
                                      "quality": "{{inputs.q}}"},
                  "input_mappings": [
                      {"from_step": "$inputs", "from_field": "w",
                       "to_field": "/size/width"},
                      {"from_step": "$inputs", "from_field": "w",
                       "to_field": "width_text", "transform": "to_string"},
                      {"from_step": "$inputs", "from_field": "a",
                       "to_field": "image"}]},
                 {"id": "up", "task_type": "UPSCALE", "depends_on": ["gen"],
                  "input_mappings": [
                      {"from_step": "gen", "from_field": "result_image_path",
                       "to_field": "image_url", "transform": "to_string"},
                      {"from_step": "$inputs", "from_field": "q",
                       "to_field": "quality"}]},
                 {"id": "side", "task_type": "FILL",
                  "provider_config": {"provider_type": "dryrun",
                                      "strength": 0.5}},
             ]}
        t = self.create(d)
        p = self.assertPreview(self.preview(t["id"], {
            "a": "https://cdn.example.test/in.png"}))
        self.assertEqual(p["inputs"], {"w": 640, "q": "hd",
                                       "a": "https://cdn.example.test/in.png"})
        self.assertEqual(p["final_step_id"], "side")
        steps = {s["step_id"]: s for s in p["steps"]}
        self.assertEqual([s["step_id"] for s in p["steps"]],
                         ["gen", "up", "side"])
        gen, up, side = steps["gen"], steps["up"], steps["side"]
        self.assertEqual(gen["provider"], "okp")
        self.assertEqual(gen["task_type"], "MY_TYPE")
        # mappings from "$inputs" applied, provider parameters merged over
        # the config (without provider_type)
        self.assertEqual(gen["request"], {
            "model": "m1", "keep": 1, "quality": "hd",
            "size": {"width": 640}, "width_text": "640",
            "image": "https://cdn.example.test/in.png"})
        self.assertEqual(gen["pending_mappings"], [])
        self.assertEqual(gen["depends_on"], [])
        self.assertEqual(up["provider"], "dryrun")
        self.assertEqual(up["depends_on"], ["gen"])
        self.assertEqual(up["request"], {"quality": "hd"})
        self.assertEqual(up["pending_mappings"], [
            {"from_step": "gen", "from_field": "result_image_path",
             "to_field": "image_url", "transform": "to_string"}])
        self.assertEqual(side["provider"], "dryrun")
        self.assertEqual(side["request"], {"strength": 0.5})
        self.assertEqual(side["pending_mappings"], [])

    def test_preview_lists_every_bad_input(self):
        t = self.create(minimal("bad inputs", inputs=ALL_TYPES))
        r = self.preview(t["id"], {"s": 1, "i": "1", "n": "x", "b": "true",
                                   "u": 5, "e": "z", "a": [], "zz": 1})
        self.assertValidation(r, [
            (I + ["r"], "missing", MISSING),
            (I + ["s"], "string_type", "Input should be a valid string"),
            (I + ["i"], "int_type", "Input should be a valid integer"),
            (I + ["n"], "float_type"),
            (I + ["b"], "bool_type", "Input should be a valid boolean"),
            (I + ["u"], "url_type"),
            (I + ["e"], "enum", "Input should be 'x' or 'y'"),
            (I + ["a"], "url_type"),
            (I + ["zz"], "extra_forbidden", EXTRA),
        ], exact_count=9)

        ok = {"r": "req"}
        one_bad = [
            ("integer given a real", {"i": 1.0}, I + ["i"], "int_type"),
            ("integer given a boolean", {"i": True}, I + ["i"], "int_type"),
            ("number given a boolean", {"n": False}, I + ["n"], "float_type"),
            ("string given null", {"s": None}, I + ["s"], "string_type"),
            ("boolean given 0", {"b": 0}, I + ["b"], "bool_type"),
            ("string over 100000 bytes", {"s": "x" * 100001}, I + ["s"],
             "string_too_long"),
            ("url scheme", {"u": "ftp://files.example.test/x"}, I + ["u"],
             "url_scheme"),
            ("url without host", {"u": "http://"}, I + ["u"],
             "url_parsing"),
            ("url without scheme", {"u": "example.test/x"}, I + ["u"],
             "url_parsing"),
            ("s3 url without bucket", {"u": "s3:///key"}, I + ["u"],
             "url_parsing"),
            ("enum is case-sensitive", {"e": "X"}, I + ["e"], "enum"),
            ("asset object without url", {"a": {"asset_id": "x"}},
             I + ["a", "url"], "missing"),
            ("asset object with a bad url", {"a": {"url": "ftp://h/x"}},
             I + ["a", "url"], "url_scheme"),
            ("asset of the wrong type", {"a": 5}, I + ["a"], "url_type"),
            ("required given null", {"r": None}, I + ["r"], "string_type"),
        ]
        for label, given, loc, typ in one_bad:
            with self.subTest(case=label):
                r = self.preview(t["id"], dict(ok, **given))
                self.assertValidation(r, [(loc, typ)], exact_count=1)

        good = [
            {"i": -3, "n": 3, "b": True, "s": "x" * 100000},
            {"u": "https://cdn.example.test/a.png?x=1", "n": -0.5},
            {"u": "s3://bucket/key.png", "a": "gs://bucket/k"},
            {"a": {"url": "http://cdn.example.test/x", "k": [1]}},
            {"e": "x", "s": ""},
        ]
        for given in good:
            with self.subTest(good=sorted(given)):
                p = self.assertPreview(self.preview(t["id"],
                                                    dict(ok, **given)))
                self.assertEqual(p["inputs"], dict(ok, **given))

        for label, body, loc in (
                ("inputs a string", {"inputs": "x"}, I),
                ("inputs a list", {"inputs": []}, I),
                ("body a list", [1], ["body"])):
            with self.subTest(case=label):
                r = self.preview(t["id"], body=body)
                self.assertValidation(r, [(loc, ("dict_type",
                                                 "model_attributes_type"))])

    def test_substitution_is_bounded(self):
        """An input used many times cannot grow a request past 16 MiB."""
        d = {"name": "bounded", "inputs": {"s": {"type": "string"}},
             "steps": [{"id": "s", "task_type": "GENERATION",
                        "config": {"p%d" % k: "{{inputs.s}}"
                                   for k in range(200)}}]}
        r = self.draft(d, {"s": "x" * 100000})
        detail = self.assertValidation(r, [])
        self.assertTrue(any("16777216" in e["msg"] for e in detail),
                        r.text[:2000])
        p = self.assertPreview(self.draft(d, {"s": "x" * 1000}))
        self.assertEqual(len(p["steps"][0]["request"]), 200)

    def test_preview_versions_and_not_found(self):
        v1 = minimal("preview versions", inputs={
            "w": {"type": "integer", "default": 1}},
            steps=[{"id": "s", "task_type": "GENERATION",
                    "config": {"w": "{{inputs.w}}"}}])
        t = self.create(v1)
        v2 = copy.deepcopy(v1)
        v2["inputs"]["w"]["default"] = 2
        v2["steps"][0]["config"]["v"] = "two"
        self.assertStatus(self.req("PUT", "%s/%s" % (TP, t["id"]), v2), 200)
        p = self.assertPreview(self.preview(t["id"]))
        self.assertEqual((p["version"], self.requests_of(p)["s"]),
                         (2, {"w": 2, "v": "two"}))
        p = self.assertPreview(self.preview(t["id"], query="?version=1"))
        self.assertEqual((p["version"], self.requests_of(p)["s"]),
                         (1, {"w": 1}))
        self.assertNotFound(self.preview(t["id"], query="?version=3"),
                            t["id"], 3)
        unknown = str(uuid.uuid4())
        self.assertNotFound(self.preview(unknown), unknown)
        for query, typ in (("?version=0", "greater_than_equal"),
                           ("?version=x", "int_parsing")):
            with self.subTest(query=query):
                self.assertValidation(self.preview(t["id"], query=query),
                                      [(["query", "version"], typ)])
        self.assertValidation(self.preview("not-a-uuid"),
                              [(["path", "template_id"], "uuid_parsing",
                                "Input should be a valid UUID")])

    # ------------------------------------------------------------ drafts
    def test_draft_preview_stores_nothing(self):
        before, wf_before = self.total(), self.workflows_total()
        p = self.assertPreview(self.draft(hero(), {"product_name": "Cap"}))
        self.assertIsNone(p["template_id"])
        self.assertIsNone(p["version"])
        self.assertEqual(p["inputs"], {"product_name": "Cap",
                                       "style": "studio", "width": 1024})
        self.assertEqual(self.requests_of(p), {
            "generate": {"prompt": "Cap in studio style", "width": 1024},
            "refine": {"title": "Cap"}})
        self.assertEqual(p["final_step_id"], "refine")
        # inputs are optional when none is required
        p = self.assertPreview(self.draft(minimal("draft")))
        self.assertEqual(p["inputs"], {})
        self.assertEqual(self.requests_of(p), {"only": {}})
        self.assertEqual(self.total(), before)
        self.assertEqual(self.workflows_total(), wf_before)

    def test_draft_preview_errors(self):
        before = self.total()
        for label, mutate, expected, count in BAD_DEFINITIONS:
            with self.subTest(case=label):
                r = self.draft(mutate(base_def()), {"prompt": "p"})
                self.assertValidation(r, nested(expected),
                                      exact_count=count)
        # bad inputs of a good definition are at ["body", "inputs", NAME]
        r = self.draft(base_def(), {"width": "wide", "zz": 1})
        self.assertValidation(r, [(I + ["prompt"], "missing"),
                                  (I + ["width"], "int_type"),
                                  (I + ["zz"], "extra_forbidden")],
                              exact_count=3)
        for label, body in (("no definition", {"inputs": {}}),
                            ("definition not an object",
                             {"definition": [base_def()]})):
            with self.subTest(case=label):
                r = self.req("POST", TP + "/preview", body)
                self.assertValidation(r, [(["body", "definition"],
                                           "missing")])
        self.assertValidation(self.req("POST", TP + "/preview"),
                              [(["body"], "missing", MISSING)])
        self.assertEqual(self.total(), before)

    # ------------------------------------------------------------ PUT
    def test_put_publishes_a_new_version(self):
        mk = self.marker()
        v1_body = base_def(mk + " v1")
        t1 = self.create(v1_body)
        tid = t1["id"]
        v2_body = hero(name=mk + " v2", description=None,
                       config={"k": "{{inputs.style}}"},
                       suppress_subtask_events=False)
        r = self.req("PUT", "%s/%s" % (TP, tid), v2_body)
        self.assertStatus(r, 200)
        t2 = r.json
        assert_template_shape(t2)
        self.assertEqual((t2["id"], t2["version"], t2["latest_version"]),
                         (tid, 2, 2))
        self.assertEqual(t2["status"], "ACTIVE")
        self.assertEqual({k: t2[k] for k in DEFINITION_KEYS},
                         expected_definition(v2_body))
        self.assertEqual(t2["created_at"], t1["created_at"])
        self.assertGreaterEqual(t2["updated_at"], t1["updated_at"])
        self.assertEqual(t2["published_at"], t2["updated_at"])
        self.assertIsNone(t2["origin_tenant_id"])
        self.assertEqual(self.get(tid), t2)

        # version 1 is unchanged, apart from latest_version and updated_at
        old = self.get(tid, "?version=1")
        self.assertEqual(old["version"], 1)
        self.assertEqual(old["latest_version"], 2)
        self.assertEqual({k: old[k] for k in DEFINITION_KEYS},
                         expected_definition(v1_body))
        self.assertEqual(old["published_at"], t1["published_at"])
        self.assertEqual(dict(old, latest_version=1,
                              updated_at=t1["updated_at"]), t1)
        self.assertEqual(self.get(tid, "?version=2"), t2)
        self.assertNotFound(self.req("GET", "%s/%s?version=3" % (TP, tid)),
                            tid, 3)

        # the list shows the latest version, under its new name
        lst = self.by_name(mk)
        self.assertEqual([(x["id"], x["version"], x["name"])
                          for x in lst["templates"]], [(tid, 2, mk + " v2")])
        self.assertEqual(self.by_name(mk + " v1")["templates"], [])

        # a refused body publishes nothing, at the same locs as create
        for label, mutate, expected, count in BAD_DEFINITIONS[:12]:
            with self.subTest(case=label):
                r = self.req("PUT", "%s/%s" % (TP, tid),
                             mutate(base_def()))
                self.assertValidation(r, expected, exact_count=count)
        self.assertEqual(self.get(tid), t2)

        unknown = str(uuid.uuid4())
        self.assertNotFound(self.req("PUT", "%s/%s" % (TP, unknown),
                                     minimal()), unknown)
        self.assertValidation(self.req("PUT", TP + "/nope", minimal()),
                              [(["path", "template_id"], "uuid_parsing")])

    def test_concurrent_puts_get_distinct_versions(self):
        t = self.create(minimal("concurrent"))
        results = [None] * 8

        def put(i):
            results[i] = self.req("PUT", "%s/%s" % (TP, t["id"]),
                                  minimal("concurrent %d" % i))

        threads = [threading.Thread(target=put, args=(i,)) for i in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(30)
        for r in results:
            self.assertStatus(r, 200)
        self.assertEqual(sorted(r.json["version"] for r in results),
                         list(range(2, 10)))
        latest = self.get(t["id"])
        self.assertEqual(latest["version"], 9)
        for r in results:
            v = self.get(t["id"], "?version=%d" % r.json["version"])
            self.assertEqual(v["name"], r.json["name"])
            self.assertEqual(v["latest_version"], 9)

    # ------------------------------------------------------------ DELETE
    def test_archive(self):
        mk = self.marker()
        t = self.create(minimal(mk + " archive"))
        tid = t["id"]
        r = self.req("PUT", "%s/%s" % (TP, tid), minimal(mk + " archive 2"))
        self.assertStatus(r, 200)
        t2 = r.json
        r = self.req("DELETE", "%s/%s" % (TP, tid))
        self.assertStatus(r, 200)
        a = r.json
        assert_template_shape(a)
        self.assertEqual(a["status"], "ARCHIVED")
        self.assertIsNotNone(a["archived_at"])
        self.assertGreaterEqual(a["archived_at"], t2["published_at"])
        self.assertEqual(a["updated_at"], a["archived_at"])
        self.assertEqual((a["version"], a["latest_version"]), (2, 2))
        self.assertEqual(a["published_at"], t2["published_at"])
        self.assertEqual(dict(a, status="ACTIVE", archived_at=None,
                              updated_at=t2["updated_at"]), t2)
        self.assertEqual(self.get(tid), a)

        # archiving again changes nothing
        r = self.req("DELETE", "%s/%s" % (TP, tid))
        self.assertStatus(r, 200)
        self.assertEqual(r.json, a)

        # its versions stay readable
        old = self.get(tid, "?version=1")
        self.assertEqual((old["status"], old["archived_at"], old["name"]),
                         ("ARCHIVED", a["archived_at"], mk + " archive"))

        # no new version
        r = self.req("PUT", "%s/%s" % (TP, tid), minimal(mk + " again"))
        self.assertStatus(r, 409)
        assert_schema(r.json, "ErrorDetail")
        self.assertIsInstance(r.json["detail"], str)
        self.assertIn(tid, r.json["detail"])
        self.assertEqual(self.get(tid), a)

        # the list: under ARCHIVED, not under ACTIVE
        self.assertEqual([x["id"] for x in self.by_name(
            mk, "&status=ARCHIVED")["templates"]], [tid])
        self.assertEqual(self.by_name(mk, "&status=ACTIVE")["templates"], [])
        self.assertEqual([x["status"] for x in self.by_name(mk)["templates"]],
                         ["ARCHIVED"])

        unknown = str(uuid.uuid4())
        self.assertNotFound(self.req("DELETE", "%s/%s" % (TP, unknown)),
                            unknown)
        self.assertValidation(self.req("DELETE", TP + "/123"),
                              [(["path", "template_id"], "uuid_parsing")])

    # ------------------------------------------------------------ GET one
    def test_get_errors(self):
        t = self.create(minimal("get errors"))
        unknown = str(uuid.uuid4())
        self.assertNotFound(self.req("GET", "%s/%s" % (TP, unknown)),
                            unknown)
        self.assertNotFound(self.req("GET", "%s/%s?version=2"
                                     % (TP, t["id"])), t["id"], 2)
        for bad in ("not-a-uuid", "123", t["id"] + "0",
                    t["id"][:-1] + "g"):
            with self.subTest(id=bad):
                self.assertValidation(
                    self.req("GET", "%s/%s" % (TP, bad)),
                    [(["path", "template_id"], "uuid_parsing",
                      "Input should be a valid UUID")])
        for query, typ in (("?version=0", "greater_than_equal"),
                           ("?version=-1", "greater_than_equal"),
                           ("?version=x", "int_parsing"),
                           ("?version=1.5", "int_parsing")):
            with self.subTest(query=query):
                self.assertValidation(
                    self.req("GET", "%s/%s%s" % (TP, t["id"], query)),
                    [(["query", "version"], typ)])

    # ------------------------------------------------------------ list
    def test_list_filters_order_and_pagination(self):
        mk = self.marker()
        names = ["%s Alpha" % mk, "%s beta" % mk, "%s GAMMA_x" % mk,
                 "%s delta%%" % mk, "%s Epsilon" % mk]
        made = [self.create(minimal(n)) for n in names]
        ids = [t["id"] for t in made]
        newest_first = list(reversed(ids))

        lst = self.by_name(mk)
        self.assertEqual([t["id"] for t in lst["templates"]], newest_first)
        self.assertEqual(lst["pagination"], {"limit": 50, "offset": 0,
                                             "total": 5, "has_more": False})
        self.assertEqual(lst["templates"][-1], made[0])

        # any case, any part of the name
        self.assertEqual([t["id"] for t in self.by_name(
            mk.upper() + " ALPHA")["templates"]], [ids[0]])
        self.assertEqual([t["id"] for t in self.by_name(
            "mma_X")["templates"] if t["id"] in ids], [ids[2]])
        # % and _ are plain characters, not patterns
        self.assertEqual(self.by_name(mk + "%")["templates"], [])
        self.assertEqual(self.by_name(mk + "_alpha")["templates"], [])
        self.assertEqual([t["id"] for t in self.by_name(
            mk + " delta%")["templates"]], [ids[3]])
        self.assertEqual(self.by_name(mk + " zeta")["pagination"]["total"],
                         0)

        # pages
        page = self.by_name(mk, "&limit=2")
        self.assertEqual([t["id"] for t in page["templates"]],
                         newest_first[:2])
        self.assertEqual(page["pagination"], {"limit": 2, "offset": 0,
                                              "total": 5, "has_more": True})
        page = self.by_name(mk, "&limit=2&offset=2")
        self.assertEqual([t["id"] for t in page["templates"]],
                         newest_first[2:4])
        self.assertTrue(page["pagination"]["has_more"])
        page = self.by_name(mk, "&limit=2&offset=4")
        self.assertEqual([t["id"] for t in page["templates"]],
                         newest_first[4:])
        self.assertEqual(page["pagination"], {"limit": 2, "offset": 4,
                                              "total": 5, "has_more": False})
        page = self.by_name(mk, "&offset=9")
        self.assertEqual(page["templates"], [])
        self.assertEqual(page["pagination"]["total"], 5)
        self.assertFalse(page["pagination"]["has_more"])
        for limit in (1, 100):
            with self.subTest(limit=limit):
                page = self.by_name(mk, "&limit=%d" % limit)
                self.assertEqual(page["pagination"]["limit"], limit)
                self.assertEqual(len(page["templates"]), min(limit, 5))

        # status
        self.assertStatus(self.req("DELETE", "%s/%s" % (TP, ids[1])), 200)
        active = self.by_name(mk, "&status=ACTIVE")
        self.assertEqual([t["id"] for t in active["templates"]],
                         [i for i in newest_first if i != ids[1]])
        self.assertEqual(active["pagination"]["total"], 4)
        archived = self.by_name(mk, "&status=ARCHIVED")
        self.assertEqual([t["id"] for t in archived["templates"]], [ids[1]])
        self.assertEqual(self.by_name(mk)["pagination"]["total"], 5)
        # the unfiltered list has them too
        everything = self.listing("?limit=100")
        self.assertTrue(set(ids) <= {t["id"] for t in
                                     everything["templates"]})
        self.assertTrue(all(t["status"] == "ACTIVE" for t in self.listing(
            "?status=ACTIVE&limit=100")["templates"]))

    def test_list_query_errors(self):
        int_msg = ("Input should be a valid integer, unable to parse string "
                   "as an integer")
        cases = [
            ("status=BOGUS", [(["query", "status"], "enum")]),
            ("status=active", [(["query", "status"], "enum")]),
            ("limit=0", [(["query", "limit"], "greater_than_equal",
                          "Input should be greater than or equal to 1")]),
            ("limit=101", [(["query", "limit"], "less_than_equal",
                            "Input should be less than or equal to 100")]),
            ("limit=x", [(["query", "limit"], "int_parsing", int_msg)]),
            ("limit=", [(["query", "limit"], "int_parsing")]),
            ("offset=-1", [(["query", "offset"], "greater_than_equal")]),
            ("offset=x", [(["query", "offset"], "int_parsing")]),
            ("status=x&limit=0&offset=-1",
             [(["query", "status"], "enum"),
              (["query", "limit"], "greater_than_equal"),
              (["query", "offset"], "greater_than_equal")]),
        ]
        for query, expected in cases:
            with self.subTest(query=query):
                self.assertValidation(self.req("GET", TP + "?" + query),
                                      expected, exact_count=len(expected))

    # ------------------------------------------------------------ tenants
    def test_tenants(self):
        mk = self.marker()
        ta, tb = tenant_token("tenant-a"), tenant_token("tenant-b")
        a = self.create(hero(name=mk + " a"), token=ta)
        self.assertEqual(a["origin_tenant_id"], "tenant-a")
        b = self.create(minimal(mk + " b"), token=tb)
        self.assertEqual(b["origin_tenant_id"], "tenant-b")
        op = self.create(minimal(mk + " operator"))
        self.assertIsNone(op["origin_tenant_id"])
        aid = a["id"]
        path = "%s/%s" % (TP, aid)

        # tenant B can neither see nor touch A's template
        for label, send in (
                ("GET", lambda: self.req("GET", path, token=tb)),

                ("PUT", lambda: self.req("PUT", path, minimal("stolen"),
                                         token=tb)),
                ("DELETE", lambda: self.req("DELETE", path, token=tb)),
                ("preview", lambda: self.preview(
                    aid, {"product_name": "x"}, token=tb))):
            with self.subTest(tenant_b=label):
                self.assertNotFound(send(), aid)
        # (an unknown id answers the same with ?version=)
        self.assertNotFound(self.req("GET", path + "?version=1", token=tb),
                            aid, 1)
        self.assertEqual(self.get(aid), a)

        # each tenant lists its own
        lst = self.by_name(mk, token=tb)
        self.assertEqual([t["id"] for t in lst["templates"]], [b["id"]])
        self.assertEqual(lst["pagination"]["total"], 1)
        lst = self.by_name(mk, token=ta)
        self.assertEqual([t["id"] for t in lst["templates"]], [aid])
        everything = self.listing("?limit=100", token=ta)["templates"]
        self.assertTrue(everything)
        self.assertTrue(all(t["origin_tenant_id"] == "tenant-a"
                            for t in everything), everything)

        # the operator's template is not a tenant's either
        self.assertNotFound(self.req("GET", "%s/%s" % (TP, op["id"]),
                                     token=ta), op["id"])
        self.assertNotFound(self.preview(op["id"], {}, token=ta), op["id"])

        # tenant A uses its own
        self.assertEqual(self.get(aid, token=ta), a)
        p = self.assertPreview(self.preview(aid, {"product_name": "x"},
                                            token=ta))
        self.assertEqual(p["template_id"], aid)
        self.assertPreview(self.req("POST", TP + "/preview",
                                    {"definition": minimal()}, token=tb))

        # the operator sees and changes everything; the tenant stays
        lst = self.by_name(mk)
        self.assertEqual([t["id"] for t in lst["templates"]],
                         [op["id"], b["id"], aid])
        r = self.req("PUT", path, hero(name=mk + " a2"))
        self.assertStatus(r, 200)
        self.assertEqual((r.json["version"], r.json["origin_tenant_id"]),
                         (2, "tenant-a"))
        self.assertEqual(self.get(aid, token=ta)["name"], mk + " a2")
        r = self.req("PUT", path, hero(name=mk + " a3"), token=ta)
        self.assertStatus(r, 200)
        self.assertEqual((r.json["version"], r.json["origin_tenant_id"]),
                         (3, "tenant-a"))
        r = self.req("DELETE", path, token=ta)
        self.assertStatus(r, 200)
        self.assertEqual(r.json["status"], "ARCHIVED")
        self.assertEqual([t["id"] for t in self.by_name(
            mk, "&status=ARCHIVED", token=ta)["templates"]], [aid])
        self.assertEqual(self.by_name(mk, "&status=ARCHIVED",
                                      token=tb)["templates"], [])

    # ------------------------------------------------------------ edges
    def test_inputs_mapping_may_read_a_path_inside_an_input(self):
        """docs/templates.md: a "$inputs" mapping's from_field is an input
        name "(or a path inside it)".  Whatever spelling of the path kilnd
        accepts at create must work in the preview."""
        url = "https://cdn.example.test/in.png"
        accepted = []
        for field in ("a.url", "/a/url"):
            with self.subTest(from_field=field):
                d = minimal("path " + field, inputs={"a": {"type": "asset"}},
                            steps=[{"id": "s", "task_type": "GENERATION",
                                    "input_mappings": [
                                        {"from_step": "$inputs",
                                         "from_field": field,
                                         "to_field": "image_url"}]}])
                r = self.req("POST", TP, d)
                if r.status != 201:
                    self.assertValidation(r, [(
                        S + [0, "input_mappings", 0, "from_field"],
                        "value_error")])
                    continue
                accepted.append(field)
                r = self.preview(r.json["id"], {"a": {"url": url,
                                                      "mime_type": "x"}})
                self.assertStatus(r, 200, "template with from_field %r was "
                                  "accepted, but its preview fails" % field)
                self.assertEqual(self.requests_of(r.json),
                                 {"s": {"image_url": url}})
        self.assertTrue(accepted, "no spelling of a path inside an input is "
                        "accepted")

    def test_unset_optional_input_in_a_mapping(self):
        """An optional input without default or value, read by a "$inputs"
        mapping: either the preview omits the field, or it is a 422 whose
        loc is a proper loc (segments, as everywhere else)."""
        d = minimal("unset optional", inputs={"o": {"type": "string"}},
                    steps=[{"id": "s", "task_type": "GENERATION",
                            "input_mappings": [{"from_step": "$inputs",
                                                "from_field": "o",
                                                "to_field": "q"}]}])
        t = self.create(d)
        for label, r, pre in (("stored", self.preview(t["id"], {}), []),
                              ("draft", self.draft(d, {}), ["definition"])):
            with self.subTest(route=label):
                if r.status == 200:
                    assert_schema(r.json, "TemplatePreview")
                    self.assertEqual(self.requests_of(r.json), {"s": {}})
                    continue
                detail = self.assertValidation(r, [])
                allowed = [I, I + ["o"],
                           ["body"] + pre + ["steps", 0, "input_mappings", 0,
                                             "from_field"]]
                for e in detail:
                    self.assertIn(e["loc"], allowed, r.text)
        # the same input in a placeholder: a 422 about the inputs
        d = minimal("unset optional placeholder",
                    inputs={"o": {"type": "string"}},
                    steps=[{"id": "s", "task_type": "GENERATION",
                            "config": {"q": "x {{inputs.o}}"}}])
        t = self.create(d)
        for label, r in (("stored", self.preview(t["id"], {})),
                         ("draft", self.draft(d, {}))):
            with self.subTest(placeholder=label):
                detail = self.assertValidation(r, [])
                for e in detail:
                    self.assertIn(e["loc"], [I, I + ["o"]], r.text)

    def test_placeholder_in_a_step_id(self):
        """Placeholders belong in config values.  A template that kilnd
        accepts must preview with valid inputs: its steps cannot turn into
        something else (an id that is an integer, a duplicate id)."""
        cases = [
            ("integer", {"x": {"type": "integer", "default": 5}},
             [{"id": "{{inputs.x}}", "task_type": "GENERATION"}]),
            ("duplicate", {"x": {"type": "string", "default": "a"}},
             [{"id": "a", "task_type": "GENERATION"},
              {"id": "{{inputs.x}}", "task_type": "GENERATION"}]),
        ]
        for label, inputs, steps in cases:
            with self.subTest(case=label):
                d = minimal("id " + label, inputs=inputs, steps=steps)
                r = self.req("POST", TP, d)
                if r.status != 201:
                    self.assertStatus(r, 422)
                    continue
                p = self.preview(r.json["id"], {})
                self.assertStatus(p, 200, "template accepted at create, "
                                  "but its preview fails")
                self.assertEqual([s["step_id"] for s in p.json["steps"]],
                                 [s["id"] for s in steps])

    def test_successful_writes_leak_nothing(self):
        """One successful create, PUT, draft preview and preview on a
        kilnd of its own, so that a sanitizer's leak report (ASan build)
        names them."""
        srv = self.start_server(name="kilnd-templates-leak")
        r = srv.request("POST", TP, minimal("leak"))
        self.assertStatus(r, 201)
        self.assertStatus(srv.request("PUT", "%s/%s" % (TP, r.json["id"]),
                                      minimal("leak 2")), 200)
        self.assertStatus(srv.request("POST", TP + "/preview",
                                      {"definition": minimal("leak")}), 200)
        self.assertStatus(srv.request("POST", "%s/%s/preview"
                                      % (TP, r.json["id"])), 200)
        # tearDown stops srv and fails the test on a sanitizer report

    def test_name_filter_non_ascii(self):
        """name= matches a non-ASCII substring as written; ASCII letters
        match in any case (documented: SQLite folds ASCII only)."""
        mk = self.marker()
        t = self.create(minimal("Été Hero %s" % mk))
        self.assertEqual([x["id"] for x in self.by_name(
            "Été hERO " + mk)["templates"]], [t["id"]])
        self.assertEqual([x["id"] for x in self.by_name(
            "été hero " + mk)["templates"]], [])


if __name__ == "__main__":
    kilnlib.main()
