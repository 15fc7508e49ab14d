"""Authentication and tenant isolation of kilnd's /api/v1 routes."""
import hashlib
import hmac
import json
import os
import stat
import time

import kilnlib
from kilnlib import (KilnTestCase, make_token, tenant_token, token_claims,
                     run_kilnd, kilnd_env, simple_workflow, SECRET)

ROUTES = [
    ("POST", "/api/v1/workflows", "create"),
    ("GET", "/api/v1/workflows", None),
    ("GET", "/api/v1/workflows/{id}", None),
    ("PATCH", "/api/v1/workflows/{id}", "patch"),
    ("DELETE", "/api/v1/workflows/{id}", None),
    ("POST", "/api/v1/workflows/{id}/start", None),
    ("POST", "/api/v1/workflows/{id}/pause", None),
    ("POST", "/api/v1/workflows/{id}/resume", None),
    ("POST", "/api/v1/workflows/{id}/cleanup", None),
    # trailing-slash spellings are protected too
    ("GET", "/api/v1/workflows/", None),
    ("POST", "/api/v1/workflows/{id}/start/", None),
]


def bad_tokens():
    now = int(time.time())
    good = make_token()
    head, payload, sig = good.split(".")
    tampered_payload = kilnlib.b64url(json.dumps(
        {"sub": "integration-test", "exp": now + 3600, "tenant": "evil"}))
    return [
        ("no header", None, "missing bearer token"),
        ("not a jwt", "Bearer abc", "malformed token"),
        ("two parts", "Bearer %s.%s" % (head, payload), "malformed token"),
        ("garbage parts", "Bearer a.b.c", "malformed token"),
        ("alg none", "Bearer " + make_token(alg="none"),
         "unsupported token algorithm"),
        ("HS384", "Bearer " + make_token(alg="HS384"),
         "unsupported token algorithm"),
        ("RS256", "Bearer " + make_token(alg="RS256"),
         "unsupported token algorithm"),
        ("wrong key", "Bearer " + make_token(secret="not-the-secret"),
         "bad token signature"),
        ("tampered payload", "Bearer %s.%s.%s" % (head, tampered_payload,
                                                  sig),
         "bad token signature"),
        ("expired", "Bearer " + make_token({"exp": now - 3600,
                                            "iat": now - 7200}),
         "token expired"),
        ("not yet valid", "Bearer " + make_token({"nbf": now + 3600}),
         "token not yet valid"),
    ]


class AuthTest(KilnTestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = cls.start_class_server(name="kilnd-auth")

    def _route_request(self, method, template, kind, wf_id, auth_header):
        path = template.replace("{id}", wf_id)
        body = kilnlib.NOBODY
        if kind == "create":
            body = simple_workflow("auth-create")
        elif kind == "patch":
            body = {"name": "changed-by-unauthenticated"}
        headers = {"Authorization": auth_header} if auth_header else {}
        return self.srv.request(method, path, body, token=None,
                                headers=headers)

    def test_every_route_refuses_bad_tokens(self):
        wf = self.srv.create(simple_workflow("auth-target"), start=False)
        before = self.srv.list_wf("?include_deleted=true&limit=1000")
        for method, template, kind in ROUTES:
            for label, header, detail in bad_tokens():
                with self.subTest(route="%s %s" % (method, template),
                                  token=label):
                    r = self._route_request(method, template, kind, wf["id"],
                                            header)
                    self.assertDetail(r, 401, detail)
                    www = r.header("WWW-Authenticate") or ""
                    self.assertTrue(www.startswith("Bearer"),
                                    "WWW-Authenticate is %r" % www)
                    kilnlib.assert_schema(r.json, "ErrorDetail")
        # nothing was created, started, renamed, cancelled or deleted
        after = self.srv.list_wf("?include_deleted=true&limit=1000")
        self.assertEqual(after["total"], before["total"])
        now = self.srv.get_wf(wf["id"])
        self.assertEqual(now["status"], "PENDING")
        self.assertEqual(now["name"], "auth-target")
        self.assertFalse(now["is_deleted"])

    def test_good_tokens_accepted(self):
        self.assertStatus(self.srv.request("GET", "/api/v1/workflows"), 200)
        # exp and nbf are only checked when present
        no_exp = make_token({"exp": None, "iat": None})
        self.assertStatus(self.srv.request("GET", "/api/v1/workflows",
                                           token=no_exp), 200)
        past_nbf = make_token({"nbf": int(time.time()) - 60})
        self.assertStatus(self.srv.request("GET", "/api/v1/workflows",
                                           token=past_nbf), 200)
        # "Bearer" is the scheme; the token itself is what matters
        r = self.srv.request("GET", "/api/v1/workflows", token=None,
                             headers={"Authorization": "Bearer "
                                      + make_token({"sub": None})})
        self.assertStatus(r, 200)

    def test_health_needs_no_token(self):
        r = self.srv.request("GET", "/healthz", token=None)
        self.assertStatus(r, 200)
        self.assertEqual(r.json, {"status": "ok"})
        r = self.srv.request("GET", "/readyz", token=None)
        self.assertStatus(r, 200)
        self.assertEqual(r.json, {"status": "ready"})

    # ------------------------------------------------------------ tenants
    def test_tenant_isolation(self):
        srv = self.srv
        ta, tb = tenant_token("tenant-a"), tenant_token("tenant-b")
        wf_b = srv.create(simple_workflow("b-wf", origin_tenant_id="tenant-b"),
                          start=False)
        self.assertEqual(wf_b["origin_tenant_id"], "tenant-b")
        wf_a = srv.create(simple_workflow("a-wf"), start=False, token=ta)
        self.assertEqual(wf_a["origin_tenant_id"], "tenant-a")
        wf_a2 = srv.create(simple_workflow("a-wf2",
                                           origin_tenant_id="tenant-a"),
                           start=False, token=ta)
        self.assertEqual(wf_a2["origin_tenant_id"], "tenant-a")
        wf_op = srv.create(simple_workflow("operator-wf"), start=False)
        self.assertIsNone(wf_op["origin_tenant_id"])

        # creating for another tenant is forbidden, and creates nothing
        total = srv.list_wf("?include_deleted=true")["total"]
        r = srv.request("POST", "/api/v1/workflows?start=false",
                        simple_workflow("sneaky",
                                        origin_tenant_id="tenant-b"),
                        token=ta)
        self.assertStatus(r, 403)
        self.assertIsInstance(r.json.get("detail"), str)
        self.assertEqual(srv.list_wf("?include_deleted=true")["total"], total)

        # tenant A cannot see or touch B's (or the operator's) workflows
        for other in (wf_b, wf_op):
            oid = other["id"]
            calls = [("GET", "", kilnlib.NOBODY),
                     ("PATCH", "", {"name": "hijacked"}),
                     ("DELETE", "", kilnlib.NOBODY),
                     ("POST", "/start", kilnlib.NOBODY),
                     ("POST", "/pause", kilnlib.NOBODY),
                     ("POST", "/resume", kilnlib.NOBODY),
                     ("POST", "/cleanup", kilnlib.NOBODY)]
            for method, suffix, body in calls:
                with self.subTest(call=method + suffix, wf=other["name"]):
                    r = srv.request(method, "/api/v1/workflows/%s%s"
                                    % (oid, suffix), body, token=ta)
                    self.assertDetail(r, 404, "Workflow %s not found" % oid)
            after = srv.get_wf(oid)
            self.assertEqual(after["status"], "PENDING")
            self.assertEqual(after["name"], other["name"])
            self.assertFalse(after["is_deleted"])

        # tenant A lists only its own workflows
        lst = srv.list_wf("?limit=1000", token=ta)
        ids = [w["id"] for w in lst["workflows"]]
        self.assertIn(wf_a["id"], ids)
        self.assertIn(wf_a2["id"], ids)
        self.assertNotIn(wf_b["id"], ids)
        self.assertNotIn(wf_op["id"], ids)
        self.assertTrue(all(w["origin_tenant_id"] == "tenant-a"
                            for w in lst["workflows"]))
        self.assertEqual(lst["total"], len(lst["workflows"]))
        lst = srv.list_wf("?origin_tenant_id=tenant-b", token=ta)
        self.assertEqual(lst["workflows"], [])
        self.assertEqual(lst["total"], 0)
        own = srv.list_wf("?origin_tenant_id=tenant-a&limit=1000", token=ta)
        self.assertEqual(sorted(w["id"] for w in own["workflows"]),
                         sorted(ids))
        # a status filter within the token's tenant
        st_a = srv.get_wf(wf_a["id"], token=ta)["status"]
        lst = srv.list_wf("?status=%s&limit=1000" % st_a, token=ta)
        self.assertIn(wf_a["id"], [w["id"] for w in lst["workflows"]])
        self.assertTrue(all(w["origin_tenant_id"] == "tenant-a" and
                            w["status"] == st_a for w in lst["workflows"]))
        self.assertEqual(lst["total"], len(lst["workflows"]))

        # tenant B sees its own, not A's
        self.assertEqual(srv.get_wf(wf_b["id"], token=tb)["id"], wf_b["id"])
        r = srv.request("GET", "/api/v1/workflows/" + wf_a["id"], token=tb)
        self.assertDetail(r, 404, "Workflow %s not found" % wf_a["id"])

        # tenant A can change its own
        r = srv.request("PATCH", "/api/v1/workflows/" + wf_a["id"],
                        {"name": "renamed-by-a"}, token=ta)
        self.assertStatus(r, 200)
        self.assertEqual(r.json["name"], "renamed-by-a")
        r = srv.request("DELETE", "/api/v1/workflows/" + wf_a2["id"],
                        token=ta)
        self.assertStatus(r, 200)
        self.assertEqual(r.json["status"], "CANCELLED")

        # the operator sees everything
        lst = srv.list_wf("?limit=1000")
        ids = [w["id"] for w in lst["workflows"]]
        for w in (wf_a, wf_a2, wf_b, wf_op):
            self.assertIn(w["id"], ids)
        lst = srv.list_wf("?origin_tenant_id=tenant-b&limit=1000")
        self.assertIn(wf_b["id"], [w["id"] for w in lst["workflows"]])
        self.assertTrue(all(w["origin_tenant_id"] == "tenant-b"
                            for w in lst["workflows"]))


class TokenCommandTest(KilnTestCase):
    """kilnd without KILN_JWT_SECRET: <data-dir>/jwt.secret and
    `kilnd token`."""

    @classmethod
    def setUpClass(cls):
        cls.srv = cls.start_class_server(secret=None, name="kilnd-filesecret")
        cls.env = kilnd_env(secret=None)

    def token_cmd(self, *args):
        p = run_kilnd(["token", "--data-dir", self.srv.data_dir] + list(args),
                      env=self.env)
        self.assertEqual(p.returncode, 0, "kilnd token %s: rc %d stderr %s"
                         % (args, p.returncode, p.stderr))
        lines = p.stdout.strip().splitlines()
        self.assertEqual(len(lines), 1, "expected one line, got %r"
                         % p.stdout)
        self.assertEqual(lines[0].count("."), 2, lines[0])
        return lines[0].strip()

    def test_secret_file_created(self):
        path = os.path.join(self.srv.data_dir, "jwt.secret")
        self.assertTrue(os.path.isfile(path), "no %s" % path)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        with open(path) as f:
            text = f.read()
        key = text.rstrip("\n")
        self.assertRegex(key, r"^[0-9a-fA-F]{64}$")
        # the key bytes are the file's text without the trailing newline
        r = self.srv.request("GET", "/api/v1/workflows",
                             token=make_token(secret=key))
        self.assertStatus(r, 200)
        # the test's usual secret is not the daemon's secret here
        r = self.srv.request("GET", "/api/v1/workflows",
                             token=make_token(secret=SECRET))
        self.assertDetail(r, 401, "bad token signature")

    def test_secret_survives_restart(self):
        path = os.path.join(self.srv.data_dir, "jwt.secret")
        with open(path) as f:
            before = f.read()
        tok = self.token_cmd()
        self.srv.restart()
        with open(path) as f:
            self.assertEqual(f.read(), before)
        self.assertStatus(self.srv.request("GET", "/api/v1/workflows",
                                           token=tok), 200)

    def test_token_command(self):
        tok = self.token_cmd()
        claims = token_claims(tok)
        self.assertEqual(claims.get("sub"), "kiln-cli")
        self.assertNotIn("tenant", claims)
        self.assertIn("exp", claims)
        self.assertAlmostEqual(claims["exp"] - time.time(), 3600, delta=120)
        head = json.loads(kilnlib.b64url_decode(tok.split(".")[0]))
        self.assertEqual(head.get("alg"), "HS256")
        r = self.srv.request("GET", "/api/v1/workflows", token=tok)
        self.assertStatus(r, 200)
        # an operator token: creates without a tenant
        wf = self.srv.create(simple_workflow("cli-token"), start=False,
                             token=tok)
        self.assertIsNone(wf["origin_tenant_id"])

        sub_tok = self.token_cmd("--sub", "someone")
        self.assertEqual(token_claims(sub_tok).get("sub"), "someone")
        self.assertStatus(self.srv.request("GET", "/api/v1/workflows",
                                           token=sub_tok), 200)

    def test_tenant_token_command(self):
        op = self.token_cmd()
        t1 = self.token_cmd("--tenant", "t1")
        self.assertEqual(token_claims(t1).get("tenant"), "t1")
        other = self.srv.create(simple_workflow("other-tenant",
                                                origin_tenant_id="t2"),
                                start=False, token=op)
        mine = self.srv.create(simple_workflow("t1-wf"), start=False,
                               token=t1)
        self.assertEqual(mine["origin_tenant_id"], "t1")
        lst = self.srv.list_wf("?limit=1000", token=t1)
        ids = [w["id"] for w in lst["workflows"]]
        self.assertIn(mine["id"], ids)
        self.assertNotIn(other["id"], ids)
        r = self.srv.request("GET", "/api/v1/workflows/" + other["id"],
                             token=t1)
        self.assertDetail(r, 404, "Workflow %s not found" % other["id"])

    def test_short_ttl_token_expires(self):
        tok = self.token_cmd("--ttl", "1")
        exp = token_claims(tok)["exp"]
        self.assertLessEqual(exp - time.time(), 2)
        # wait (by the clock) until the token is past its exp
        while time.time() < exp + 1.2:
            time.sleep(0.1)
        r = self.srv.request("GET", "/api/v1/workflows", token=tok)
        self.assertDetail(r, 401, "token expired")

    def test_token_uses_env_secret(self):
        # with KILN_JWT_SECRET set, `kilnd token` signs with it
        p = run_kilnd(["token", "--data-dir", self.srv.data_dir],
                      env=kilnd_env(secret="env-secret-for-token"))
        self.assertEqual(p.returncode, 0, p.stderr)
        tok = p.stdout.strip()
        # verify the signature ourselves over the token's own signing input
        head_b64, payload_b64, sig = tok.split(".")
        mac = hmac.new(b"env-secret-for-token",
                       (head_b64 + "." + payload_b64).encode(),
                       hashlib.sha256).digest()
        self.assertEqual(sig, kilnlib.b64url(mac))


if __name__ == "__main__":
    kilnlib.main()
