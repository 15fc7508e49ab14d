"""A local provider for the batch integration tests (test_batches.py).

BatchProvider runs a threaded HTTP server on 127.0.0.1 (localserver.serve).
kilnd's http provider POSTs a step's config to it; the batch templates put
the batch's tag ("tag": "{{inputs.tag}}") and the asset ("image":
"{{inputs.img}}": an object {"url", "asset_id"}, or a URL string) in it, so
every call says which batch and which asset it belongs to.

What a call does is chosen by its asset URL's query string, else by the
mode of its tag (set_mode), else "ok":

  do=ok          200 {"result_image_path": ..., "credit_cost": 0.25, ...}
  do=fail        500 "upstream exploded" (the step fails: no retries)
  do=sleep&ms=N  waits N ms (default sleep_ms), then answers like ok
  do=hold        waits until released (release_next / release_all /
                 set_mode), at most hold_max_s, then answers like ok
  cost=X         the credit_cost of an ok answer (default 0.25)

Each call gives a record (a dict): seq, tag, url, asset_id, body (the JSON
request), arrived / answered (time.monotonic()), mode, status (sent), and
gone (kilnd hung up before the answer).  The provider counts the calls in
flight per tag and in all (a call counts from its arrival until just before
its answer is written) and keeps the maxima: max_inflight(tag=None).
"""
import itertools
import json
import threading
import time
import urllib.parse

import localserver

OK_COST = 0.25


def asset_url(tag, name, **query):
    """An asset URL for tag whose query string chooses the behaviour."""
    q = ("?" + urllib.parse.urlencode(query)) if query else ""
    return "https://assets.example.test/%s/%s.png%s" % (tag, name, q)


def output_url(rec_url):
    """The result_image_path the provider answers for an asset URL."""
    path = urllib.parse.urlsplit(rec_url).path
    return "https://cdn.example.test/out" + path


class BatchProvider:
    def __init__(self, hold_max_s=25.0, sleep_ms=100):
        self.hold_max_s = hold_max_s
        self.sleep_ms = sleep_ms
        self._lock = threading.Condition()
        self._records = []
        self._seq = itertools.count(1)
        self._modes = {}            # tag -> mode
        self._held = []             # [(record, threading.Event)] in order
        self._inflight = {}         # tag -> n
        self._max = {}              # tag -> max n
        self._all_inflight = 0
        self._all_max = 0
        self._closing = threading.Event()
        self.server, self.port = localserver.serve(self._handle)

    # ------------------------------------------------------------ set-up
    def url(self, path="/call"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def close(self):
        self._closing.set()
        self.release_all()
        self.server.shutdown()
        self.server.server_close()

    def set_mode(self, tag, mode):
        """Future calls of tag (without do= in their URL) behave as mode
        ("ok", "hold", "fail", "sleep"); leaving "hold" releases the held
        ones."""
        with self._lock:
            self._modes[tag] = mode
        if mode != "hold":
            self.release_all(tag)

    # ------------------------------------------------------------ holding
    def held(self, tag=None):
        """Records of the calls being held, oldest first."""
        with self._lock:
            return [dict(r) for r, _ in self._held
                    if tag is None or r["tag"] == tag]

    def wait_held(self, count, tag=None, timeout=20.0):
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                n = sum(1 for r, _ in self._held
                        if tag is None or r["tag"] == tag)
                if n >= count:
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        "provider holds %d calls%s, wanted %d; calls: %s"
                        % (n, " of " + tag if tag else "", count,
                           self._summary()))
                self._lock.wait(min(left, 0.1))

    def release_next(self, tag=None):
        """Lets the oldest held call (of tag) answer; returns its record."""
        with self._lock:
            for i, (r, ev) in enumerate(self._held):
                if tag is None or r["tag"] == tag:
                    del self._held[i]
                    ev.set()
                    return dict(r)
        raise AssertionError("no held call%s to release"
                             % (" of " + tag if tag else ""))

    def release_all(self, tag=None):
        with self._lock:
            keep = []
            for r, ev in self._held:
                if tag is None or r["tag"] == tag:
                    ev.set()
                else:
                    keep.append((r, ev))
            self._held = keep

    # ------------------------------------------------------------ records
    def records(self, tag=None):
        with self._lock:
            return [dict(r) for r in self._records
                    if tag is None or r["tag"] == tag]

    def wait_calls(self, count, tag=None, timeout=20.0):
        deadline = time.monotonic() + timeout
        while True:
            recs = self.records(tag)
            if len(recs) >= count:
                return recs
            if time.monotonic() > deadline:
                raise AssertionError(
                    "provider got %d calls%s, wanted %d: %s"
                    % (len(recs), " of " + tag if tag else "", count,
                       self._summary()))
            time.sleep(0.02)

    def inflight(self, tag=None):
        with self._lock:
            if tag is None:
                return self._all_inflight
            return self._inflight.get(tag, 0)

    def max_inflight(self, tag=None):
        with self._lock:
            if tag is None:
                return self._all_max
            return self._max.get(tag, 0)

    def reset_max(self):
        """The maxima start again from what is in flight now."""
        with self._lock:
            self._max = dict(self._inflight)
            self._all_max = self._all_inflight

    def calls_per_url(self, tag):
        out = {}
        for r in self.records(tag):
            out[r["url"]] = out.get(r["url"], 0) + 1
        return out

    def _summary(self):
        return [(r["tag"], r["url"], r["status"]) for r in self._records][-40:]

    # ------------------------------------------------------------ serving
    def _handle(self, h):
        raw = localserver.read_body(h)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        tag, url, asset_id = None, None, None
        if isinstance(body, dict):
            tag = body.get("tag")
            image = body.get("image")
            if isinstance(image, dict):
                url, asset_id = image.get("url"), image.get("asset_id")
            elif isinstance(image, str):
                url = image
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(url or "").query)
        with self._lock:
            mode = (query.get("do") or [None])[0] or \
                self._modes.get(tag, "ok")
            rec = {"seq": next(self._seq), "tag": tag, "url": url,
                   "asset_id": asset_id, "body": body,
                   "arrived": time.monotonic(), "answered": None,
                   "mode": mode, "status": None, "gone": False}
            self._records.append(rec)
            self._inflight[tag] = self._inflight.get(tag, 0) + 1
            self._max[tag] = max(self._max.get(tag, 0), self._inflight[tag])
            self._all_inflight += 1
            self._all_max = max(self._all_max, self._all_inflight)
            self._lock.notify_all()
        left = [False]

        def leave():
            if not left[0]:
                left[0] = True
                with self._lock:
                    self._inflight[tag] -= 1
                    self._all_inflight -= 1
        try:
            self._behave(h, rec, mode, query, leave)
        except (BrokenPipeError, ConnectionResetError):
            with self._lock:
                rec["gone"] = True
        finally:
            leave()

    def _behave(self, h, rec, mode, query, leave):
        if mode == "sleep":
            ms = float((query.get("ms") or [self.sleep_ms])[0])
            self._closing.wait(ms / 1000.0)
        elif mode == "hold":
            ev = threading.Event()
            with self._lock:
                self._held.append((rec, ev))
                self._lock.notify_all()
            if self._closing.is_set():
                ev.set()
            ev.wait(self.hold_max_s)
            with self._lock:
                self._held = [(r, e) for r, e in self._held if r is not rec]
        if mode == "fail":
            self._answer(h, rec, leave, 500, "text/plain",
                         "upstream exploded")
            return
        cost = float((query.get("cost") or [OK_COST])[0])
        self._answer(h, rec, leave, 200, "application/json", json.dumps(
            {"result_image_path": output_url(rec["url"] or "/none"),
             "credit_cost": cost, "echo": rec["body"]}))

    def _answer(self, h, rec, leave, status, ctype, text):
        data = text.encode()
        leave()
        with self._lock:
            rec["status"] = status
            rec["answered"] = time.monotonic()
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
        h.wfile.flush()
