"""kilnd's command line and config file: --version, --help, bad flags and
keys (exit 2, naming the culprit), and precedence of flags, file and
environment."""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile

import kilnlib
from kilnlib import (KilnTestCase, run_kilnd, kilnd_env,
                     kilnd_path, free_port, http_request, make_token,
                     wait_until)


class CliTest(KilnTestCase):
    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="kiln-cli-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.data_dir = os.path.join(self.tmp, "data")

    def write_config(self, cfg, name="kilnd.json"):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            if isinstance(cfg, str):
                f.write(cfg)
            else:
                json.dump(cfg, f)
        return path

    def run_bad(self, args, *needles, env=None):
        """kilnd with args must exit 2 at once, its stderr naming each
        needle; it must not have started serving."""
        p = run_kilnd(args, env=env)
        self.assertEqual(p.returncode, 2, "kilnd %s: rc %d, stderr %r"
                         % (args, p.returncode, p.stderr))
        for needle in needles:
            self.assertIn(needle, p.stderr, "stderr of kilnd %s does not "
                          "name %r: %r" % (args, needle, p.stderr))
        return p

    def daemon_args(self, cfg):
        return ["--listen", "127.0.0.1:%d" % free_port(), "--data-dir",
                self.data_dir, "--config", self.write_config(cfg)]

    # ------------------------------------------------------------ basics
    def test_version(self):
        p = run_kilnd(["--version"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout.strip(), r"^kilnd \d+\.\d+\.\d+")
        self.assertEqual(len(p.stdout.strip().splitlines()), 1)

    def test_help(self):
        p = run_kilnd(["--help"])
        self.assertEqual(p.returncode, 0, p.stderr)
        for flag in ("--config", "--listen", "--data-dir", "--workers",
                     "--log-level", "--version", "token"):
            self.assertIn(flag, p.stdout)

    def test_bad_flags(self):
        self.run_bad(["--bogus"], "--bogus")
        self.run_bad(["--listen"])                       # missing value
        self.run_bad(["stray-argument"], "stray-argument")
        self.run_bad(["--workers", "0", "--data-dir", self.data_dir],
                     "workers")
        self.run_bad(["--workers", "many", "--data-dir", self.data_dir],
                     "workers")
        self.run_bad(["--log-level", "loud", "--data-dir", self.data_dir],
                     "log-level")
        self.run_bad(["--listen", "not-an-address", "--data-dir",
                      self.data_dir], "listen")
        self.run_bad(["token", "--tenant"])
        self.run_bad(["token", "--bogus", "--data-dir", self.data_dir],
                     "--bogus")
        self.assertFalse(os.path.exists(os.path.join(self.data_dir,
                                                     "jwt.secret")))

    # ------------------------------------------------------------ config
    def test_config_errors_name_the_key(self):
        unset = "KILN_TEST_UNSET_VAR_93F1"
        env = kilnd_env(extra={unset: None})
        good_provider = {"type": "http", "url": "http://127.0.0.1:9/x"}
        cases = [
            ({"bogus_key": 1}, ["bogus_key"]),
            ({"workers": 0}, ["workers"]),
            ({"workers": "four"}, ["workers"]),
            ({"max_body_bytes": 0}, ["max_body_bytes"]),
            ({"log_level": "loud"}, ["log_level"]),
            ({"listen": 8080}, ["listen"]),
            ({"providers": {"x": {"type": "http"}}}, ["providers.x", "url"]),
            ({"providers": {"x": {"type": "carrier-pigeon",
                                  "url": "http://127.0.0.1:9/"}}},
             ["providers.x", "type"]),
            ({"providers": {"x": dict(good_provider, timeout_s="soon")}},
             ["providers.x.timeout_s"]),
            ({"providers": {"x": dict(good_provider, colour="red")}},
             ["providers.x.colour"]),
            ({"providers": {"x": dict(good_provider, headers={
                "X-Key": "${env:%s}" % unset})}}, [unset]),
            ({"task_types": {"GENERATION": "nope"}},
             ["task_types.GENERATION"]),
            ({"providers": {"x": good_provider},
              "task_types": {"GENERATION": 7}}, ["task_types.GENERATION"]),
        ]
        for cfg, needles in cases:
            with self.subTest(config=cfg):
                self.run_bad(self.daemon_args(cfg), *needles, env=env)
        # not JSON at all, or not there
        p = run_kilnd(["--data-dir", self.data_dir, "--listen",
                       "127.0.0.1:%d" % free_port(), "--config",
                       self.write_config("{not json", "broken.json")])
        self.assertNotEqual(p.returncode, 0, p.stderr)
        self.assertTrue(p.stderr.strip())
        missing = os.path.join(self.tmp, "missing.json")
        p = run_kilnd(["--data-dir", self.data_dir, "--config", missing])
        self.assertNotEqual(p.returncode, 0)
        self.assertTrue(p.stderr.strip())

    def test_env_expansion_in_headers(self):
        # a set variable is fine (the provider test checks the header value)
        cfg = {"providers": {"x": {"type": "http", "url":
                                   "http://127.0.0.1:9/x",
                                   "headers": {"X-Key": "k ${env:KILN_T_K}"}}},
               "task_types": {"MY_CUSTOM_TYPE": "x"}}
        srv = self.start_server(config=cfg, env={"KILN_T_K": "v"},
                                name="kilnd-envexp")
        r = srv.request("POST", "/api/v1/workflows?start=false",
                        kilnlib.simple_workflow("custom", steps=[
                            {"id": "s", "task_type": "MY_CUSTOM_TYPE"}]))
        self.assertStatus(r, 201)
        self.assertEqual(r.json["steps"][0]["provider"], "x")

    # ------------------------------------------------------------ precedence
    def test_flag_listen_overrides_config(self):
        cfg_port = free_port()
        cfg_data = os.path.join(self.tmp, "cfg-data")
        srv = self.start_server(config={"listen": "127.0.0.1:%d" % cfg_port,
                                        "data_dir": cfg_data},
                                name="kilnd-precedence")
        # KilnServer passes --listen and --data-dir: both flags win
        self.assertNotEqual(srv.port, cfg_port)
        self.assertStatus(srv.request("GET", "/healthz", token=None), 200)
        with self.assertRaises(OSError):
            http_request(cfg_port, "GET", "/healthz", timeout=2)
        self.assertFalse(os.path.exists(cfg_data) and os.listdir(cfg_data),
                         "the config's data_dir was used despite --data-dir")

    def test_config_used_without_flags(self):
        port = free_port()
        data = os.path.join(self.tmp, "from-config")
        cfg = self.write_config({"listen": "127.0.0.1:%d" % port,
                                 "data_dir": data, "workers": 2,
                                 "log_level": "debug"})
        log = open(os.path.join(self.tmp, "stderr"), "wb")
        proc = subprocess.Popen([kilnd_path(), "--config", cfg],
                                env=kilnd_env(secret=None),
                                stdin=subprocess.DEVNULL, stdout=log,
                                stderr=log)
        log.close()
        try:
            def healthy():
                self.assertIsNone(proc.poll(), "kilnd exited")
                try:
                    return http_request(port, "GET", "/healthz",
                                        timeout=2).status == 200
                except OSError:
                    return False
            wait_until(healthy, timeout=10, what="kilnd on the config's "
                       "listen address")
            secret = os.path.join(data, "jwt.secret")
            self.assertTrue(os.path.isfile(secret),
                            "no jwt.secret in the config's data_dir")
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def test_secret_precedence(self):
        # jwt_secret from the file when KILN_JWT_SECRET is unset
        file_cfg = {"jwt_secret": "file-secret-0123456789"}
        srv = self.start_server(config=file_cfg,
                                secret=None, name="kilnd-filesecret")
        ok = srv.request("GET", "/api/v1/workflows",
                         token=make_token(secret="file-secret-0123456789"))
        self.assertStatus(ok, 200)
        self.assertFalse(os.path.exists(os.path.join(srv.data_dir,
                                                     "jwt.secret")))
        # `kilnd token --config` signs with the config's jwt_secret
        p = run_kilnd(["token", "--config", srv.config_path, "--data-dir",
                       srv.data_dir], env=kilnd_env(secret=None))
        self.assertEqual(p.returncode, 0, p.stderr)
        r = srv.request("GET", "/api/v1/workflows", token=p.stdout.strip())
        self.assertStatus(r, 200)
        srv.stop()
        # KILN_JWT_SECRET overrides it
        srv2 = self.start_server(config=file_cfg,
                                 secret="env-secret-0123456789",
                                 name="kilnd-envsecret")
        r = srv2.request("GET", "/api/v1/workflows",
                         token=make_token(secret="env-secret-0123456789"))
        self.assertStatus(r, 200)
        r = srv2.request("GET", "/api/v1/workflows",
                         token=make_token(secret="file-secret-0123456789"))
        self.assertDetail(r, 401, "bad token signature")

    def test_listen_port_zero_is_logged(self):
        log_path = os.path.join(self.tmp, "stderr")
        log = open(log_path, "wb")
        proc = subprocess.Popen([kilnd_path(), "--listen", "127.0.0.1:0",
                                 "--data-dir", self.data_dir],
                                env=kilnd_env(), stdin=subprocess.DEVNULL,
                                stdout=log, stderr=log)
        log.close()
        try:
            def logged_port():
                self.assertIsNone(proc.poll(), "kilnd exited")
                with open(log_path, errors="replace") as f:
                    m = re.search(r"listening on 127\.0\.0\.1:(\d+)", f.read())
                return m and int(m.group(1))
            port = wait_until(logged_port, timeout=10,
                              what="'listening on 127.0.0.1:PORT'")
            self.assertNotEqual(port, 0)
            r = http_request(port, "GET", "/healthz")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.json, {"status": "ok"})
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def test_sigterm_exits_cleanly(self):
        srv = self.start_server(name="kilnd-sigterm")
        srv.create(kilnlib.fashion_pipeline())
        rc = srv.stop(signal.SIGTERM)
        # -9 would mean it ignored SIGTERM and needed SIGKILL
        self.assertEqual(rc, 0, "kilnd exited with %r on SIGTERM; stderr:\n%s"
                         % (rc, srv.log_text()[-5000:]))
        self.assertEqual(srv.sanitizer_findings(), [])

    def test_second_daemon_on_same_data_dir_is_refused(self):
        srv = self.start_server(name="kilnd-first")
        second = run_kilnd(["--listen", "127.0.0.1:0",
                            "--data-dir", srv.data_dir], timeout=15)
        self.assertEqual(second.returncode, 1, second.stderr)
        self.assertIn("is in use by another kilnd", second.stderr)
        # the first one is unharmed
        self.assertEqual(srv.request("GET", "/healthz").status, 200)


if __name__ == "__main__":
    kilnlib.main()
