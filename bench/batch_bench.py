#!/usr/bin/env python3
"""bench/batch_bench.py - batches at scale (issue 5's scale targets).

Starts bench/fake_provider (answers after --delay-ms) and kilnd with its own
temporary data dir, publishes a one-step template, then reports:

  B1  POST /api/v1/batches with 10,000 assets: answer time (target < 1 s),
      three times;
  B2  POST with 100,000 assets: accepted (202), answer time;
  B3  kilnd's RSS before the batches, with 120,000 executions pending, and
      after running for a while: memory must not grow with the number of
      pending assets;
  B4  GET /api/v1/batches/{id}/executions (limit 100) at offsets 0, 50,000
      and 99,900, and with a status filter deep in the list; GET of the
      batch's status: median answer times.

Figures are printed, nothing is asserted.  Python standard library only.

Usage: batch_bench.py --kilnd PATH --fake PATH [--delay-ms 2000]
"""
import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

SECRET = "kiln-bench-secret-0123456789abcdef"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_kib(pid, key="VmRSS"):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


class Client:
    def __init__(self, port, token):
        self.port = port
        self.auth = "Bearer " + token

    def call(self, method, path, body=None, timeout=120):
        conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                          timeout=timeout)
        data = None if body is None else json.dumps(body).encode()
        hdrs = {"Authorization": self.auth}
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        t0 = time.perf_counter()
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        payload = resp.read()
        elapsed = time.perf_counter() - t0
        conn.close()
        return resp.status, (json.loads(payload) if payload else None), \
            elapsed, len(data or b"")


def wait_healthy(port, deadline_s=15):
    end = time.time() + deadline_s
    while time.time() < end:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit("kilnd did not become healthy")


def assets(n, tag):
    return [{"asset_id": "%s-%06d" % (tag, i),
             "url": "https://cdn.example.com/catalogue/%s/%06d.png" % (tag, i)}
            for i in range(n)]


def median_ms(client, path, runs=5):
    times = []
    for _ in range(runs):
        status, _, t, _ = client.call("GET", path)
        if status != 200:
            return "HTTP %d" % status
        times.append(t * 1000)
    return "%.1f ms" % statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kilnd", required=True)
    ap.add_argument("--fake", required=True)
    ap.add_argument("--delay-ms", type=int, default=2000)
    ap.add_argument("--run-s", type=float, default=20.0,
                    help="how long the batches run before B3's last figure")
    o = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="kiln-batch-bench-")
    fake = kilnd = None
    try:
        fake = subprocess.Popen([o.fake, "--port", "0", "--delay-ms",
                                 str(o.delay_ms), "--quiet"],
                                stdout=subprocess.PIPE, text=True)
        fake_port = int(fake.stdout.readline().split()[-1])
        port = free_port()
        cfg = {"listen": "127.0.0.1:%d" % port, "data_dir": tmp + "/data",
               "log_level": "warn", "batch_max_running": 1000,
               "providers": {"fake": {"type": "http",
                                      "url": "http://127.0.0.1:%d/" % fake_port,
                                      "concurrency": 1000}},
               "task_types": {"GENERATION": "fake"}}
        with open(tmp + "/kiln.json", "w") as f:
            json.dump(cfg, f)
        env = dict(os.environ, KILN_JWT_SECRET=SECRET)
        token = subprocess.run([o.kilnd, "token", "--config",
                                tmp + "/kiln.json", "--ttl", "86400"],
                               env=env, check=True, capture_output=True,
                               text=True).stdout.strip()
        kilnd = subprocess.Popen([o.kilnd, "--config", tmp + "/kiln.json"],
                                 env=env, stderr=open(tmp + "/kilnd.log", "w"))
        wait_healthy(port)
        c = Client(port, token)
        status, tpl, _, _ = c.call("POST", "/api/v1/templates", {
            "name": "Catalogue packshot",
            "inputs": {"image": {"type": "asset", "required": True},
                       "prompt": {"type": "string",
                                  "default": "white studio background"}},
            "steps": [{"id": "generate", "task_type": "GENERATION",
                       "config": {"prompt": "{{inputs.prompt}}",
                                  "image": "{{inputs.image}}"}}]})
        assert status == 201, (status, tpl)
        rss0 = rss_kib(kilnd.pid)

        print("B1  POST /api/v1/batches, 10,000 assets (target < 1 s):")
        ids = []
        for i in range(3):
            body = {"template_id": tpl["id"], "assets": assets(10000, "b%d" % i),
                    "concurrency_limit": 100, "priority": "LOW"}
            status, b, t, size = c.call("POST", "/api/v1/batches", body)
            ids.append(b["id"] if status == 202 else None)
            print("      run %d: HTTP %d in %.3f s (body %.1f MB)"
                  % (i + 1, status, t, size / 1e6))

        body = {"template_id": tpl["id"], "assets": assets(100000, "big"),
                "concurrency_limit": 100}
        status, big, t, size = c.call("POST", "/api/v1/batches", body)
        print("B2  POST with 100,000 assets: HTTP %d in %.3f s (body %.1f MB)"
              % (status, t, size / 1e6))
        big_id = big["id"] if status == 202 else None

        rss1 = rss_kib(kilnd.pid)
        time.sleep(o.run_s)
        rss2 = rss_kib(kilnd.pid)
        hwm = rss_kib(kilnd.pid, "VmHWM")
        _, st, _, _ = c.call("GET", "/api/v1/batches/%s" % big_id)
        print("B3  kilnd RSS: %.1f MB before the batches; %.1f MB with"
              " 130,000 executions stored (%d pending in the big batch);"
              % (rss0 / 1024, rss1 / 1024, st["assets"]["pending"]))
        print("      %.1f MB after %.0f s of running (%d done in the big"
              " batch, %d running in all); peak %.1f MB (the peak includes"
              " parsing the 100,000-asset request)"
              % (rss2 / 1024, o.run_s, st["assets"]["completed"],
                 sum(c.call("GET", "/api/v1/batches/%s" % b)[1]["assets"]
                     ["processing"] for b in ids + [big_id]), hwm / 1024))

        print("B4  median answer times (5 calls):")
        base = "/api/v1/batches/%s/executions?limit=100" % big_id
        for off in (0, 50000, 99900):
            print("      executions offset %6d: %s"
                  % (off, median_ms(c, base + "&offset=%d" % off)))
        print("      executions status=PENDING offset 90,000: %s"
              % median_ms(c, base + "&status=PENDING&offset=90000"))
        print("      executions asset_id=big-099999: %s"
              % median_ms(c, base + "&asset_id=big-099999"))
        print("      batch status (counts, p50/p95): %s"
              % median_ms(c, "/api/v1/batches/%s" % big_id))
        print("      batch list (limit 50): %s"
              % median_ms(c, "/api/v1/batches"))
    finally:
        for p in (kilnd, fake):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
