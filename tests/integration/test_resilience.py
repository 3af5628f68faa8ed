"""Black-box integration tests of resilience and dispatch (issue 4). Stdlib only.

Run:  cd tests/integration && python3 -m unittest -v test_resilience
The binary is $COORDINATOR_BIN (default <repo>/build/coordinator); the fake child is
tests/fixtures/fake_child/launch_camoufox.py (see docs/fake-child-contract.md).

What is checked (the issue 4 spec):
* explicit child states in GET /ready's ``children`` (ready, busy, unhealthy, cooling, failed...);
* restart of a crashed / unhealthy / never-ready child on the same ports with exponential
  backoff, parking (``failed``) after --max-restarts;
* --pool-size (slots, the next queued profile takes a recycled slot), --start-stagger;
* the stall watchdog (--stall-timeout), --max-child-age / --max-child-rss recycling;
* the child environment (AUTO_ROTATE_AUTH_PROFILE=false, ``{name}.env``);
* cooldown of a child answering 429; busy-aware dispatch (--max-inflight-per-child, FIFO
  queue, --max-queue, --queue-timeout, --balance); targeted cancel; attach mode (--upstream).

Every wait is bounded; each test starts its own coordinator over fake children and the
harness fails a test that leaves a process behind.  Durations that the lead may want to quote
are printed to stderr as ``[test_resilience] ...``.
"""

import collections
import json
import os
import re
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (  # noqa: E402
    CHILD_STATES, HOST, Background, Coordinator, SSEStream, chat_body, chunk_content, describe,
    is_done, is_openai_error, log_time, note, parse_event, pid_alive, ready_names, req_id_of,
    require_binary, served_by, wait_until)

RESTART_RE = re.compile(r"restarting child (\S+) in ([0-9]+(?:\.[0-9]+)?) ?s \(attempt (\d+)\)")
ENTRY_KEYS = {"name", "state", "ports", "pid", "in_flight", "served", "failures", "restarts",
              "last_error", "seconds_in_state"}


def setUpModule():
    require_binary()


def start_time(rec):
    """When a child process was created (proc_start_t), else when its start file was written."""
    return rec.get("proc_start_t") or rec.get("t")


def retry_after_ok(resp):
    """True if the response has a Retry-After header of delta-seconds >= 1."""
    value = resp.headers.get("retry-after", "").strip()
    return value.isdigit() and int(value) >= 1


def concurrent_chats(c, n, timeout=20.0, content="concurrent"):
    """n non-stream chats at once; returns (elapsed seconds, [Background])."""
    barrier = threading.Barrier(n)

    def one(i):
        barrier.wait(5)
        return c.chat(f"{content} {i}", timeout=timeout)
    t0 = time.monotonic()
    jobs = [Background(one, i) for i in range(n)]
    for j in jobs:
        j.join(timeout + 5)
    hanging = [i for i, j in enumerate(jobs) if j.thread.is_alive()]
    if hanging:
        raise AssertionError(f"requests {hanging} still running after {timeout + 5}s")
    return max(j.t_end for j in jobs) - t0, jobs


class RequestLoop:
    """Sequential non-stream chats in a thread until stop(); results kept in order."""

    def __init__(self, c, pause=0.05, timeout=15.0):
        self.c, self.pause, self.timeout = c, pause, timeout
        self.results = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        i = 0
        while not self._stop.is_set():
            try:
                r = self.c.chat(f"loop {i}", timeout=self.timeout)
            except Exception as e:  # noqa: BLE001
                r = e
            self.results.append(r)
            i += 1
            self._stop.wait(self.pause)

    def stop(self):
        self._stop.set()
        self.thread.join(self.timeout + 5)
        if self.thread.is_alive():
            raise AssertionError("request loop still hanging")
        return self.results

    def failures(self):
        return [(i, r) for i, r in enumerate(self.results) if getattr(r, "status", None) != 200]


def restart_lines(c, name=None):
    """[(unix time or None, child, delay seconds, attempt)] from the coordinator's output."""
    out = []
    for line in c.output().splitlines():
        m = RESTART_RE.search(line)
        if m and (name is None or m.group(1) == name):
            out.append((log_time(line), m.group(1), float(m.group(2)), int(m.group(3))))
    return out


def wait_chat_starts(c, name, n, timeout=5.0):
    """Wait until child `name` has begun answering `n` chat requests."""
    return wait_until(lambda: len(c.events(name, "chat_start")) >= n, timeout)


def occupy_alpha(test, c):
    """Starts a request that keeps (serial) child alpha busy; returns its Background."""
    first = Background(lambda i: c.chat("first", timeout=15))
    test.assertTrue(wait_chat_starts(c, "alpha", 1), "first request never reached alpha")
    return first


def max_overlap(events):
    """Largest number of simultaneously running non-stream chats, from chat_start/chat_done."""
    marks = []
    for ev in events:
        if ev.get("event") == "chat_start":
            marks.append((ev["t"], 1))
        elif ev.get("event") == "chat_done":
            marks.append((ev["t"], -1))
    marks.sort(key=lambda m: (m[0], m[1]))
    cur = best = 0
    for _, d in marks:
        cur += d
        best = max(best, cur)
    return best


SERVING = ("ready", "busy")


def serving(c):
    """Names of the children in state ready or busy (from /ready's children)."""
    return sorted(e.get("name") for e in c.children() if e.get("state") in SERVING)


def restarted(old_pid, min_restarts=1):
    """Predicate on a /ready entry: a new pid, restarts >= min_restarts, state ready/busy."""
    def pred(e):
        return (e.get("state") in SERVING and e.get("pid") not in (None, 0, old_pid)
                and (e.get("restarts") or 0) >= min_restarts)
    return pred


# ---------------------------------------------------------------------------

class ReadyChildrenTests(unittest.TestCase):
    """GET /ready's children array."""

    def test_children_entries_complete(self):
        with Coordinator({"alpha": {}, "beta": {}}) as c:
            for i in range(4):
                self.assertEqual(c.chat(f"count {i}").status, 200)
            children = c.children()
            self.assertEqual(sorted(e.get("name") for e in children), ["alpha", "beta"], children)
            for e in children:
                name = e["name"]
                self.assertLessEqual(ENTRY_KEYS, set(e), f"missing keys in {e}")
                self.assertEqual(e["state"], "ready", e)
                self.assertEqual(e["ports"], {"api": c.api_port(name),
                                              "stream": c.stream_port(name),
                                              "camoufox": c.camoufox_port(name)}, e)
                self.assertEqual(e["pid"], c.child_pids(name)[0], e)
                self.assertEqual(e["in_flight"], 0, e)
                self.assertEqual(e["served"], 2, e)
                self.assertEqual(e["restarts"], 0, e)
                self.assertIsInstance(e["failures"], int, e)
                self.assertIsInstance(e["last_error"], str, e)
                self.assertIsInstance(e["seconds_in_state"], (int, float), e)
                self.assertGreaterEqual(e["seconds_in_state"], 0, e)

    def test_busy_state_and_in_flight(self):
        with Coordinator({"alpha": {"chat_delay": 1.5}}) as c:
            job = Background(lambda i: c.chat("slow", timeout=10))
            self.assertTrue(wait_chat_starts(c, "alpha", 1), "the child never got the request")
            e = c.child("alpha")
            self.assertEqual((e or {}).get("state"), "busy", e)
            self.assertEqual((e or {}).get("in_flight"), 1, e)
            self.assertTrue(job.join(10))
            self.assertEqual(job.status, 200, job.result)
            e = c.wait_state("alpha", "ready", 3)
            self.assertEqual((e or {}).get("state"), "ready", e)
            self.assertEqual(e.get("in_flight"), 0, e)
            self.assertEqual(e.get("served"), 1, e)


class RestartTests(unittest.TestCase):

    def test_crashing_child_restarted_requests_succeed(self):
        with Coordinator({"alpha": {"exit_after": 1.5}, "beta": {}}) as c:
            first = c.child_pids("alpha")[0]
            c.rewrite_profile("alpha", {})  # the restarted alpha stays up
            loop = RequestLoop(c)
            try:
                entry = c.wait_child("alpha", restarted(first), 15, interval=0.1)
            finally:
                results = loop.stop()
            self.assertTrue(entry and restarted(first)(entry),
                            f"alpha not restarted and ready: {entry}\n{c.output_tail()}")
            self.assertFalse(pid_alive(first), "the crashed child is still alive")
            self.assertEqual(loop.failures(), [], "requests failed while alpha restarted")
            self.assertGreaterEqual(len(results), 10, "too few requests during the restart")
            recs = c.start_records("alpha")
            self.assertEqual(len(recs), 2, recs)
            new = recs[-1]
            self.assertEqual(entry["pid"], new["pid"])
            self.assertEqual(new["ports"], {"api": c.api_port("alpha"), "stream": c.stream_port("alpha"),
                                            "camoufox": c.camoufox_port("alpha")},
                             "restarted on other ports")
            lines = restart_lines(c, "alpha")
            self.assertTrue(lines and lines[0][3] == 1, f"no 'restarting child alpha in X s "
                                                        f"(attempt 1)' line:\n{c.output_tail()}")
            served = collections.Counter(served_by(c.chat(f"after {i}")) for i in range(4))
            self.assertEqual(served, {"alpha": 2, "beta": 2}, "alpha not back in rotation")

    def test_crash_on_start_backoff_then_parked(self):
        t0 = time.monotonic()
        with Coordinator({"alpha": {"crash_on_start": True}, "beta": {}},
                         extra_args=["--max-restarts", "3"]) as c:
            entry = c.wait_state("alpha", "failed", 20, interval=0.1)
            self.assertEqual((entry or {}).get("state"), "failed",
                             f"alpha not parked: {entry}\n{c.output_tail()}")
            self.assertEqual(entry.get("restarts"), 3, entry)
            time.sleep(1.5)  # no further start once parked
            recs = c.start_records("alpha")
            self.assertEqual(len(recs), 4, f"expected the first start + 3 restarts: {len(recs)}")
            self.assertEqual(c.child("alpha").get("state"), "failed")
            lines = restart_lines(c, "alpha")
            self.assertEqual([a for _, _, _, a in lines], [1, 2, 3], f"{lines}\n{c.output_tail()}")
            delays = [d for _, _, d, _ in lines]
            starts = [start_time(r) for r in recs]
            gaps = [b - a for a, b in zip(starts, starts[1:])]
            log_gaps = [b[0] - a[0] for a, b in zip(lines, lines[1:]) if a[0] and b[0]]
            note(f"crash_on_start: logged delays {delays}, gaps between starts "
                 f"{[round(g, 2) for g in gaps]}, gaps between 'restarting' log lines "
                 f"{[round(g, 2) for g in log_gaps]}, parked after {time.monotonic() - t0:.1f}s")
            for i, (d, base) in enumerate(zip(delays, (1, 2, 4))):
                self.assertTrue(0.75 * base <= d <= 1.25 * base,
                                f"attempt {i + 1}: delay {d} s, expected {base} s +-25%")
            self.assertEqual(delays, sorted(delays), "backoff does not grow")
            for i, (g, d) in enumerate(zip(gaps, delays)):
                self.assertGreaterEqual(g, d - 0.1, f"restart {i + 1} came before its delay")
                self.assertLessEqual(g, d + 1.5, f"restart {i + 1} came long after its delay")
            # (gaps themselves also hold the child's start-up time, which varies by ~0.3 s, so
            # their growth is checked through the logged delays and the bounds above)
            parked = [ln for ln in c.output().splitlines() if "parked" in ln and "alpha" in ln]
            self.assertTrue(parked, f"no 'parked' log line for alpha:\n{c.output_tail()}")
            for i in range(3):
                r = c.chat(f"p {i}")
                self.assertEqual(r.status, 200, r)
                self.assertEqual(served_by(r), "beta")

    def test_hanging_health_recycled(self):
        extra = ["--health-timeout", "0.5", "--unhealthy-restart-after", "2"]
        with Coordinator({"alpha": {"health_hang_after": 2.0}, "beta": {}}, extra_args=extra) as c:
            first_rec = c.start_records("alpha")[0]
            first = first_rec["pid"]
            c.rewrite_profile("alpha", {})
            seen = []

            def poll():
                e = c.child("alpha")
                if e and (not seen or seen[-1] != e.get("state")):
                    seen.append(e.get("state"))
                return e if e and restarted(first)(e) else None
            entry = wait_until(poll, 15, 0.1)
            self.assertTrue(entry, f"alpha not recycled; states seen {seen}\n{c.output_tail()}")
            self.assertIn("unhealthy", seen, f"states seen: {seen}")
            self.assertLessEqual(set(seen), CHILD_STATES, f"unknown state names: {seen}")
            self.assertFalse(pid_alive(first), "the hung child is still alive")
            self.assertFalse(pid_alive(first_rec.get("grandchild_pid")),
                             "the hung child's browser grandchild is still alive")
            new = c.start_records("alpha")[-1]
            hang_at = first_rec["main_t"] + 2.0
            delay = start_time(new) - hang_at
            note(f"health hang: new alpha started {delay:.2f}s after /health began hanging "
                 f"(health-timeout 0.5, unhealthy-restart-after 2); states {seen}")
            self.assertGreaterEqual(delay, 1.9, "restarted before --unhealthy-restart-after")
            self.assertLessEqual(delay, 8.0)
            self.assertEqual(new["ports"]["api"], c.api_port("alpha"))
            self.assertEqual(c.chat("after").status, 200)

    def test_recycled_child_ignoring_sigterm_is_killed(self):
        extra = ["--health-timeout", "0.5", "--unhealthy-restart-after", "1",
                 "--child-stop-timeout", "1"]
        with Coordinator({"alpha": {"health_hang_after": 1.5, "ignore_sigterm": True},
                          "beta": {}}, extra_args=extra) as c:
            first = c.start_records("alpha")[0]
            c.rewrite_profile("alpha", {})
            e = c.wait_child("alpha", restarted(first["pid"]), 15, interval=0.1)
            self.assertTrue(e and restarted(first["pid"])(e), f"alpha not recycled: {e}\n"
                                                              f"{c.output_tail()}")
            self.assertFalse(pid_alive(first["pid"]), "the SIGTERM-proof child is still alive")
            self.assertFalse(pid_alive(first["grandchild_pid"]), "its grandchild is still alive")

    def test_never_ready_child_restarted_after_ready_timeout(self):
        with Coordinator({"alpha": {"never_ready": True}, "beta": {}}, ready_timeout=1.5) as c:
            self.assertTrue(wait_until(lambda: len(c.start_records("alpha")) >= 2, 10),
                            f"alpha not restarted after --ready-timeout:\n{c.output_tail()}")
            recs = c.start_records("alpha")
            gap = start_time(recs[1]) - start_time(recs[0])
            note(f"never_ready: restarted {gap:.2f}s after its first start (ready-timeout 1.5)")
            self.assertGreaterEqual(gap, 1.5 - 0.1, "restarted before --ready-timeout")
            self.assertFalse(pid_alive(recs[0]["pid"]))
            e = c.wait_child("alpha", lambda e: (e.get("restarts") or 0) >= 1, 3)
            self.assertGreaterEqual((e or {}).get("restarts") or 0, 1, e)


class PoolTests(unittest.TestCase):

    FOUR = {"alpha": {}, "beta": {}, "gamma": {}, "delta": {}}  # sorted: alpha beta delta gamma

    def slot_ports(self, c, i):
        return {"api": c.api_port(i), "stream": c.stream_port(i), "camoufox": c.camoufox_port(i)}

    def test_pool_runs_only_n_children(self):
        with Coordinator(self.FOUR, extra_args=["--pool-size", "2"], wait_ready=2) as c:
            time.sleep(1.0)
            recs = c.start_records()
            self.assertEqual(sorted(r["name"] for r in recs), ["alpha", "beta"],
                             f"children started: {[r['name'] for r in recs]}")
            children = {e.get("name"): e for e in c.children()}
            self.assertEqual(sorted(children), ["alpha", "beta"], children)
            for i, name in enumerate(["alpha", "beta"]):
                self.assertEqual(children[name].get("ports"), self.slot_ports(c, i), children)
            served = collections.Counter(served_by(c.chat(f"pool {i}")) for i in range(6))
            self.assertEqual(served, {"alpha": 3, "beta": 3})

    def _check_slot_taken_over(self, c, failed_name):
        # slot 0 (alpha) is recycled: the next queued profile (delta, sorted order) takes it.
        e = c.wait_child("delta", lambda e: e.get("state") in SERVING, 15, interval=0.1)
        self.assertIn((e or {}).get("state"), SERVING,
                         f"delta never ran in slot 0: {c.children()}\n{c.output_tail()}")
        recs = c.start_records("delta")
        self.assertEqual(len(recs), 1, recs)
        self.assertEqual(recs[0]["ports"], self.slot_ports(c, 0), "delta not on slot 0's ports")
        self.assertEqual(e.get("ports"), self.slot_ports(c, 0), e)
        self.assertEqual(c.start_records(failed_name)[0]["ports"], self.slot_ports(c, 0))
        self.assertEqual(c.start_records("gamma"), [], "gamma started though no slot was free")
        for rec in c.start_records(failed_name):
            self.assertFalse(pid_alive(rec["pid"]), f"{failed_name} still running")
        children = c.children()
        self.assertEqual(sorted(x.get("name") for x in children), ["beta", "delta"], children)
        served = collections.Counter(served_by(c.chat(f"slot {i}")) for i in range(4))
        self.assertEqual(served, {"beta": 2, "delta": 2})

    def test_pool_slot_takes_next_profile_after_ready_timeout(self):
        profiles = dict(self.FOUR, alpha={"never_ready": True})
        with Coordinator(profiles, extra_args=["--pool-size", "2"], wait_ready=1,
                         ready_timeout=1.5) as c:
            time.sleep(0.5)
            self.assertEqual(sorted(r["name"] for r in c.start_records()), ["alpha", "beta"])
            self._check_slot_taken_over(c, "alpha")
            self.assertEqual(len(c.start_records("alpha")), 1,
                             "alpha restarted though it went to the back of the queue")

    def test_pool_slot_takes_next_profile_after_crash(self):
        profiles = dict(self.FOUR, alpha={"crash_on_start": True})
        with Coordinator(profiles, extra_args=["--pool-size", "2", "--max-restarts", "1"],
                         wait_ready=1) as c:
            self._check_slot_taken_over(c, "alpha")


class DispatchTests(unittest.TestCase):

    FOUR_SERIAL = {n: {"serial": True, "chat_delay": 1.0}
                   for n in ("alpha", "beta", "gamma", "delta")}

    def test_least_busy_8_requests_over_4_serial_children(self):
        with Coordinator(self.FOUR_SERIAL) as c:
            elapsed, jobs = concurrent_chats(c, 8)
            note(f"8 concurrent requests over 4 serial children (chat_delay 1.0), "
                 f"--balance least-busy: {elapsed:.2f}s")
            self.assertEqual([j.status for j in jobs], [200] * 8, [j.result for j in jobs])
            self.assertLess(elapsed, 2.5)
            counts = collections.Counter(served_by(j.result) for j in jobs)
            self.assertEqual(set(counts), set(c.names), counts)
            waited = [(n, e["waited"]) for n in c.names for e in c.events(n, "chat_start")
                      if e.get("waited", 0) > 0.3]
            self.assertEqual(waited, [], "requests were sent to a busy child and waited in it")

    def test_round_robin_8_requests_over_4_serial_children(self):
        with Coordinator(self.FOUR_SERIAL, extra_args=["--balance", "round-robin"]) as c:
            elapsed, jobs = concurrent_chats(c, 8)
            note(f"8 concurrent requests over 4 serial children (chat_delay 1.0), "
                 f"--balance round-robin: {elapsed:.2f}s")
            self.assertEqual([j.status for j in jobs], [200] * 8, [j.result for j in jobs])

    def _staggered(self, c, n, gap=0.15):
        jobs = []
        for i in range(n):
            jobs.append(Background(lambda i: c.chat(f"staggered {i}", timeout=20), i))
            time.sleep(gap)
        for j in jobs:
            self.assertTrue(j.join(25), "request hanging")
        return jobs

    def test_least_busy_avoids_busy_child(self):
        profiles = {"alpha": {"serial": True, "chat_delay": 2.0}, "beta": {}}
        with Coordinator(profiles) as c:
            jobs = self._staggered(c, 4)
            self.assertEqual([j.status for j in jobs], [200] * 4, [j.result for j in jobs])
            counts = collections.Counter(served_by(j.result) for j in jobs)
            self.assertEqual(counts, {"alpha": 1, "beta": 3},
                             "least-busy sent a request to the busy child")

    def test_round_robin_piles_onto_busy_child(self):
        profiles = {"alpha": {"serial": True, "chat_delay": 2.0}, "beta": {}}
        with Coordinator(profiles, extra_args=["--balance", "round-robin"]) as c:
            jobs = self._staggered(c, 4)
            self.assertEqual([j.status for j in jobs], [200] * 4, [j.result for j in jobs])
            counts = collections.Counter(served_by(j.result) for j in jobs)
            self.assertEqual(counts, {"alpha": 2, "beta": 2}, "not strict round robin")
            waited = [e.get("waited", 0) for e in c.events("alpha", "chat_start")]
            self.assertTrue(any(w > 1.0 for w in waited),
                            f"no request waited behind the busy child: {waited}")

    def test_queue_length_counts_as_busy(self):
        with Coordinator({"alpha": {"queue_length": 2}, "beta": {}}, wait_ready=1) as c:
            e = c.wait_child("alpha", lambda e: e.get("pid"), 5)
            self.assertTrue(e, c.children())
            time.sleep(0.5)  # a few health checks report alpha's queue
            served = [served_by(c.chat(f"q {i}")) for i in range(6)]
            self.assertEqual(served, ["beta"] * 6)
            self.assertEqual(c.chat_requests("alpha"), [])

    def test_max_inflight_per_child(self):
        with self.subTest("default 1: never two requests at once on a child"):
            with Coordinator({"alpha": {"chat_delay": 1.0}}) as c:
                elapsed, jobs = concurrent_chats(c, 2)
                self.assertEqual([j.status for j in jobs], [200] * 2, [j.result for j in jobs])
                self.assertEqual(max_overlap(c.events("alpha")), 1)
                self.assertGreaterEqual(elapsed, 1.9)
        with self.subTest("--max-inflight-per-child 2"):
            # `serial: false`: a child that runs two requests at once (the real one queues them).
            with Coordinator({"alpha": {"chat_delay": 1.0, "serial": False}},
                             extra_args=["--max-inflight-per-child", "2"]) as c:
                elapsed, jobs = concurrent_chats(c, 4)
                note(f"4 requests, 1 child, --max-inflight-per-child 2, chat_delay 1.0: "
                     f"{elapsed:.2f}s")
                self.assertEqual([j.status for j in jobs], [200] * 4, [j.result for j in jobs])
                self.assertEqual(max_overlap(c.events("alpha")), 2)
                self.assertGreaterEqual(elapsed, 1.9)
                self.assertLess(elapsed, 3.0)

    def test_max_queue_429(self):
        with Coordinator({"alpha": {"serial": True, "chat_delay": 2.0}},
                         extra_args=["--max-queue", "2"]) as c:
            first = occupy_alpha(self, c)
            queued = [Background(lambda i: c.chat(f"queued {i}", timeout=15), i) for i in range(2)]
            time.sleep(0.3)
            t0 = time.monotonic()
            r = c.chat("one too many", timeout=5)
            took = time.monotonic() - t0
            self.assertEqual(r.status, 429, r)
            self.assertLess(took, 1.0, "the 429 was not immediate")
            self.assertTrue(retry_after_ok(r), f"Retry-After: {r.headers.get('retry-after')!r}")
            self.assertTrue(is_openai_error(r), r)
            for j in [first] + queued:
                self.assertTrue(j.join(15))
                self.assertEqual(j.status, 200, j.result)
            self.assertEqual(len(c.chat_requests("alpha")), 3, "the rejected request was forwarded")

    def test_queue_timeout_503(self):
        with Coordinator({"alpha": {"serial": True, "chat_delay": 3.0}},
                         extra_args=["--queue-timeout", "1"]) as c:
            first = occupy_alpha(self, c)
            t0 = time.monotonic()
            r = c.chat("waits too long", timeout=10)
            took = time.monotonic() - t0
            note(f"--queue-timeout 1: 503 after {took:.2f}s")
            self.assertEqual(r.status, 503, r)
            self.assertTrue(0.8 <= took <= 2.0, f"503 after {took:.2f}s, expected ~1s")
            self.assertTrue(retry_after_ok(r), f"Retry-After: {r.headers.get('retry-after')!r}")
            self.assertTrue(is_openai_error(r), r)
            self.assertTrue(first.join(10))
            self.assertEqual(first.status, 200, first.result)
            self.assertEqual(len(c.chat_requests("alpha")), 1, "the timed-out request was forwarded")

    def test_queued_stream_gets_heartbeats_then_its_answer(self):
        with Coordinator({"alpha": {"serial": True, "chat_delay": 2.5, "stream_chunks": 3}},
                         extra_args=["--sse-heartbeat", "0.5"]) as c:
            first = occupy_alpha(self, c)
            t0 = time.monotonic()
            with SSEStream(c.port, body=chat_body("queued", stream=True), timeout=15) as s:
                self.assertEqual(s.read_head(5), 200, describe(s.lines))
                head_after = s.t_head - t0
                lines = s.read_to_end(15)
            self.assertTrue(first.join(10))
            self.assertEqual(first.status, 200, first.result)
            note(f"queued stream, --sse-heartbeat 0.5: SSE head after {head_after:.2f}s in the queue")
            self.assertTrue(0.3 <= head_after <= 1.5, f"head after {head_after:.2f}s, expected ~0.5s")
            first_data = next(i for i, (_, line) in enumerate(lines) if line.startswith("data:"))
            beats = [line for _, line in lines[:first_data] if line.startswith(": keep-alive")]
            self.assertGreaterEqual(len(beats), 3, describe(lines))  # 2.5 s queued + 2.5 s silent child
            contents = [chunk_content(parse_event(line)) for _, line in lines if line.startswith("data: {")]
            self.assertEqual([x for x in contents if x], ["chunk0 ", "chunk1 ", "chunk2 "], describe(lines))
            self.assertTrue(is_done(lines[-1][1]), describe(lines))

    def test_queued_stream_times_out_with_an_error_event(self):
        with Coordinator({"alpha": {"serial": True, "chat_delay": 4.0}},
                         extra_args=["--sse-heartbeat", "0.4", "--queue-timeout", "1.5"]) as c:
            first = occupy_alpha(self, c)
            # A plain (not streamed) request waiting beside it still gets the 503 status.
            plain = Background(lambda i: c.chat("plain, waits too long", timeout=10))
            with SSEStream(c.port, body=chat_body("queued", stream=True), timeout=15) as s:
                self.assertEqual(s.read_head(5), 200, describe(s.lines))
                lines = s.read_to_end(10)
                closed = s.wait_eof(3)
            events = [parse_event(line) for _, line in lines if line.startswith("data: {")]
            self.assertEqual(len(events), 1, describe(lines))
            self.assertEqual(events[0]["error"]["code"], "queue_timeout", events[0])
            self.assertTrue(is_done(lines[-1][1]), describe(lines))
            self.assertTrue(closed, "the connection stayed open after the aborted stream")
            self.assertTrue(first.join(10))
            self.assertTrue(plain.join(10))
            self.assertEqual(plain.status, 503, plain.result)
            self.assertEqual(len(c.chat_requests("alpha")), 1, "a timed-out request was forwarded")

    def test_queued_client_disconnect_leaves_queue(self):
        with Coordinator({"alpha": {"serial": True, "chat_delay": 2.0}},
                         extra_args=["--max-queue", "1"]) as c:
            first = occupy_alpha(self, c)
            body = json.dumps(chat_body("goes away")).encode()
            s = socket.create_connection((HOST, c.port), timeout=5)
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Content-Type: application/json\r\nContent-Length: "
                      + str(len(body)).encode() + b"\r\n\r\n" + body)
            time.sleep(0.3)
            s.close()
            time.sleep(0.2)
            t0 = time.monotonic()
            second = Background(lambda i: c.chat("second", timeout=15))
            time.sleep(0.3)
            self.assertIsNone(second.t_end, f"the new request was answered at once (queue still "
                                            f"full of the gone client?): {second.result!r}")
            r = c.chat("over the limit", timeout=5)
            self.assertEqual(r.status, 429, f"queue of 1 holding 'second' should be full: {r!r}")
            self.assertTrue(first.join(10))
            self.assertEqual(first.status, 200, first.result)
            self.assertTrue(second.join(10))
            self.assertEqual(second.status, 200, second.result)
            note(f"queued client gone: next request served after {second.t_end - t0:.2f}s")
            self.assertEqual(len(c.chat_requests("alpha")), 2,
                             "the disconnected client's request was forwarded")

    def test_models_and_cancel_take_no_slot(self):
        with Coordinator({"alpha": {"serial": True, "chat_delay": 3.0}}) as c:
            first = occupy_alpha(self, c)
            t0 = time.monotonic()
            r = c.get("/v1/models", timeout=5)
            self.assertEqual(r.status, 200, r)
            self.assertLess(time.monotonic() - t0, 1.0, "/v1/models waited for a slot")
            t0 = time.monotonic()
            r = c.request("POST", "/v1/cancel/zzz9999", timeout=5)
            self.assertEqual(r.status, 404, r)
            self.assertLess(time.monotonic() - t0, 1.0, "/v1/cancel waited for a slot")
            self.assertTrue(first.join(10))
            self.assertEqual(first.status, 200, first.result)


class CooldownTests(unittest.TestCase):

    def test_429_child_cools_down_request_retried(self):
        with Coordinator({"alpha": {"chat_status": 429, "retry_after": 5}, "beta": {}}) as c:
            for i in range(2):
                r = c.chat(f"c {i}")
                self.assertEqual(r.status, 200, r)
                self.assertEqual(served_by(r), "beta")
            reqs = c.chat_requests("alpha")
            self.assertEqual(len(reqs), 1, "alpha should have had exactly one of two requests")
            t429 = reqs[0]["t"]
            e = c.child("alpha")
            self.assertEqual((e or {}).get("state"), "cooling", e)
            while time.time() < t429 + 4.0:
                r = c.chat("cooling")
                self.assertEqual(r.status, 200, r)
                self.assertEqual(served_by(r), "beta")
                self.assertEqual(c.child("alpha").get("state"), "cooling")
                time.sleep(0.4)
            self.assertEqual(len(c.chat_requests("alpha")), 1, "a cooling child got a request")
            e = c.wait_child("alpha", lambda e: e.get("state") != "cooling", 5, interval=0.1)
            back = time.time() - t429
            note(f"429 Retry-After 5: alpha out of rotation for {back:.2f}s")
            self.assertEqual((e or {}).get("state"), "ready", e)
            self.assertTrue(4.5 <= back <= 7.0, f"cooled for {back:.2f}s, expected ~5s")

    def test_429_without_retry_after_uses_cooldown_flag(self):
        with Coordinator({"alpha": {"chat_status": 429, "retry_after": False},
                          "beta": {"stream_chunks": 3}},
                         extra_args=["--cooldown", "2"]) as c:
            for i in range(2):  # streamed: the 429 comes before any byte, so it is retried
                with SSEStream(c.port, body=chat_body(f"c {i}", stream=True), timeout=10) as s:
                    self.assertEqual(s.read_head(5), 200, describe(s.lines))
                    lines = s.read_to_end(5)
                self.assertEqual(s.headers.get("x-fake-child"), "beta", s.headers)
                self.assertTrue(lines and is_done(lines[-1][1]), describe(lines))
            reqs = c.chat_requests("alpha")
            self.assertEqual(len(reqs), 1, reqs)
            self.assertEqual(c.child("alpha").get("state"), "cooling")
            e = c.wait_child("alpha", lambda e: e.get("state") != "cooling", 5, interval=0.1)
            back = time.time() - reqs[0]["t"]
            note(f"429 without Retry-After, --cooldown 2: cooled for {back:.2f}s")
            self.assertEqual((e or {}).get("state"), "ready", e)
            self.assertTrue(1.5 <= back <= 4.0, f"cooled for {back:.2f}s, expected ~2s")


class OutlierEjectionTests(unittest.TestCase):
    """A child answering 500 at once (its /health still OK) is always free, so it would
    draw most requests; a run of --eject-after server errors takes it out of rotation."""

    def test_child_answering_500_is_ejected_then_readmitted_and_ejected_longer(self):
        with Coordinator({"alpha": {"chat_status": 500}, "beta": {}, "gamma": {}},
                         extra_args=["--eject-after", "3", "--eject-time", "2"]) as c:
            statuses = collections.Counter()
            for i in range(15):
                r = c.chat(f"o {i}")
                statuses[(r.status, served_by(r))] += 1
            self.assertEqual(statuses[(500, "alpha")], 3, statuses)
            self.assertEqual(sum(n for (status, _), n in statuses.items() if status == 200), 12, statuses)
            self.assertEqual(len(c.chat_requests("alpha")), 3)
            e = c.child("alpha")
            self.assertEqual(e.get("state"), "cooling", e)
            self.assertEqual(e.get("ejections"), 1, e)
            self.assertIn("ejected for 2 s after 3 server errors in a row (last 500)", e.get("last_error", ""))
            ejected_at = time.time()
            e = c.wait_state("alpha", "ready", 5, interval=0.05)
            back = time.time() - ejected_at
            note(f"--eject-after 3 --eject-time 2: 3 of 15 requests got alpha's 500; back after {back:.2f}s")
            self.assertEqual((e or {}).get("state"), "ready", e)
            self.assertTrue(1.0 <= back <= 3.5, f"ejected for {back:.2f}s, expected ~2s")
            # Still failing: three more errors, and the second ejection in a row lasts twice as long.
            for i in range(12):
                c.chat(f"p {i}")
            self.assertEqual(len(c.chat_requests("alpha")), 6)
            e = c.child("alpha")
            self.assertEqual((e.get("state"), e.get("ejections")), ("cooling", 2), e)
            self.assertIn("ejected for 4 s after 3 server errors", e.get("last_error", ""))
            metrics = c.get("/metrics").text
            self.assertIn('coordinator_child_ejections_total{child="alpha"} 2', metrics)
            self.assertIn('coordinator_child_ejections_total{child="beta"} 0', metrics)

    def test_streamed_500_counts_toward_ejection(self):
        with Coordinator({"alpha": {"chat_status": 500}, "beta": {"stream_chunks": 2}},
                         extra_args=["--eject-after", "2", "--eject-time", "30"]) as c:
            # The first pick is alpha (first in order): its 500 is relayed to the stream request.
            with SSEStream(c.port, body=chat_body("s", stream=True), timeout=10) as s:
                self.assertEqual(s.read_head(5), 500, describe(s.lines))
            self.assertEqual(c.child("alpha").get("state"), "ready")
            # Then alpha gets every other request: its next error is the second in a row.
            for i in range(6):
                c.chat(f"r {i}")
            self.assertEqual(len(c.chat_requests("alpha")), 2)
            self.assertEqual(c.child("alpha").get("state"), "cooling")
        # A healthy fleet never ejects anyone.
        with Coordinator({"alpha": {}, "beta": {}}, extra_args=["--eject-after", "1"]) as c:
            for i in range(6):
                self.assertEqual(c.chat(f"g {i}").status, 200)
            self.assertEqual(c.child_states(), {"alpha": "ready", "beta": "ready"})

    def test_last_serving_child_is_not_ejected(self):
        # Every child fails: ejecting all would turn their 500s into 503 no_healthy_children.
        with Coordinator({"alpha": {"chat_status": 500}, "beta": {"chat_status": 500}},
                         extra_args=["--eject-after", "2", "--eject-time", "30"]) as c:
            for i in range(10):
                r = c.chat(f"f {i}")
                self.assertEqual(r.status, 500, r)
                self.assertIn("configured to answer 500", r.text)
            states = sorted(c.child_states().values())
            self.assertEqual(states, ["cooling", "ready"], states)

    def test_eject_after_zero_turns_it_off(self):
        with Coordinator({"alpha": {"chat_status": 500}, "beta": {}},
                         extra_args=["--eject-after", "0"]) as c:
            for i in range(8):
                c.chat(f"z {i}")
            self.assertEqual(len(c.chat_requests("alpha")), 4)
            self.assertEqual(c.child("alpha").get("state"), "ready")


class AttachTests(unittest.TestCase):

    def test_attach_mode(self):
        with Coordinator({}, attach={"a": {}, "b": {}}, attach_labels={"b": None}) as c:
            self.assertNotIn("--profiles", c.argv)
            expected = ["a", f"{HOST}:{c.attached['b']['port']}"]
            self.assertEqual(sorted(e.get("name") for e in c.children()), sorted(expected),
                             c.children())
            status, body = c.ready()
            self.assertEqual(status, 200)
            self.assertEqual(sorted(ready_names(body)), sorted(expected))
            served = [served_by(c.chat(f"att {i}")) for i in range(4)]
            self.assertEqual(collections.Counter(served), {"a": 2, "b": 2}, served)
            self.assertTrue(all(x != y for x, y in zip(served, served[1:])), served)
            self.assertEqual(c.get("/v1/models").status, 200)
            pids = {c.attached_pid("a"), c.attached_pid("b")}
            self.assertEqual({r["pid"] for r in c.start_records()}, pids, "the coordinator spawned")
            # An attached child that goes away leaves rotation; nothing is spawned for it.
            c.attached["b"]["proc"].terminate()
            c.attached["b"]["proc"].wait(5)
            e = c.wait_child(expected[1], lambda e: e.get("state") not in SERVING, 3)
            self.assertNotIn((e or {}).get("state"), SERVING, e)
            served = [served_by(c.chat(f"one left {i}")) for i in range(3)]
            self.assertEqual(served, ["a"] * 3)
            time.sleep(0.5)
            self.assertEqual(len(c.start_records()), 2, "the coordinator spawned a child")
            self.assertEqual(c.stop(), 0, c.output_tail())
            self.assertTrue(pid_alive(c.attached_pid("a")),
                            "the coordinator killed a child it did not spawn")


class StallTests(unittest.TestCase):

    def test_stalled_stream_aborted_and_child_recycled(self):
        extra = ["--stall-timeout", "1.5", "--sse-heartbeat", "0.5"]
        with Coordinator({"alpha": {"stall_mid_stream_after": 2, "stream_interval": 0.1}},
                         extra_args=extra) as c:
            first = c.child_pids("alpha")[0]
            c.rewrite_profile("alpha", {})
            with SSEStream(c.port, body=chat_body(stream=True), timeout=10) as s:
                self.assertEqual(s.read_head(5), 200)
                lines = s.read_to_end(8)
                took = (s.t_complete or s.t_eof or time.monotonic()) - s.t_sent
            note(f"stalled stream ended {took:.2f}s after the request (--stall-timeout 1.5)")
            data = [ln for _, ln in lines if ln.startswith("data:")]
            contents = [chunk_content(parse_event(ln)) for ln in data if parse_event(ln)]
            self.assertEqual([x for x in contents if x], ["chunk0 ", "chunk1 "], describe(lines))
            errors = [parse_event(ln) for ln in data
                      if parse_event(ln) and "error" in parse_event(ln)]
            self.assertEqual(len(errors), 1, describe(lines))
            self.assertEqual(errors[0]["error"].get("code"), "child_stream_aborted", errors)
            self.assertTrue(is_done(data[-1]), describe(lines))
            self.assertLessEqual(took, 4.0)
            self.assertGreaterEqual(took, 1.5)
            req_id = req_id_of(next(parse_event(ln)["id"] for ln in data
                                    if parse_event(ln) and "id" in parse_event(ln)))
            ev = c.wait_event(lambda e: e.get("event") == "cancel" and e.get("req_id") == req_id,
                              3, name="alpha")
            self.assertTrue(ev, f"stalled request {req_id} not cancelled on its child")
            e = c.wait_child("alpha", restarted(first), 10, interval=0.1)
            self.assertTrue(e and restarted(first)(e), f"alpha not recycled: {e}\n"
                                                       f"{c.output_tail()}")
            self.assertEqual(c.chat("after").status, 200)

    def test_hanging_non_stream_is_bounded_by_request_timeout_not_the_stall_watchdog(self):
        # Issue 12: the real child may take its full 420 s over a non-streamed answer, so the
        # stall watchdog watches streams only; --request-timeout bounds the rest, and a slow
        # answer is no reason to recycle the child.
        with Coordinator({"alpha": {"chat_hang": True}},
                         extra_args=["--stall-timeout", "1", "--request-timeout", "2.5"]) as c:
            first = c.child_pids("alpha")[0]
            c.rewrite_profile("alpha", {})
            t0 = time.monotonic()
            r = c.chat("hangs", timeout=10)
            took = time.monotonic() - t0
            note(f"hanging non-stream request: {r.status} after {took:.2f}s")
            self.assertEqual(r.status, 504, r)
            self.assertTrue(is_openai_error(r), r)
            self.assertEqual(r.json()["error"]["code"], "upstream_timeout")
            self.assertTrue(2.4 <= took <= 4.5, f"504 after {took:.2f}s")
            time.sleep(1.0)
            e = c.child("alpha")
            self.assertFalse(restarted(first)(e), f"alpha was recycled: {e}")
            self.assertEqual(e["restarts"], 0, e)

    def test_slow_but_progressing_not_cut(self):
        profile = {"stream_chunks": 8, "stream_interval": 0.5, "chat_delay": 1.0}
        with Coordinator({"alpha": profile}, extra_args=["--stall-timeout", "1.5"]) as c:
            pid = c.child_pids("alpha")[0]
            with SSEStream(c.port, body=chat_body(stream=True), timeout=10) as s:
                self.assertEqual(s.read_head(5), 200)
                lines = s.read_to_end(10)
                took = (s.t_complete or s.t_eof or time.monotonic()) - s.t_sent
            note(f"slow stream (1 s + 8 chunks every 0.5 s) took {took:.2f}s")
            data = [ln for _, ln in lines if ln.startswith("data:")]
            contents = [chunk_content(parse_event(ln)) for ln in data if parse_event(ln)]
            self.assertEqual([x for x in contents if x], [f"chunk{i} " for i in range(8)],
                             describe(lines))
            self.assertFalse([ln for ln in data if parse_event(ln) and "error" in parse_event(ln)],
                             describe(lines))
            self.assertTrue(is_done(data[-1]), describe(lines))
            r = c.chat("slow non-stream", timeout=10)
            self.assertEqual(r.status, 200, r)
            e = c.child("alpha")
            self.assertEqual((e or {}).get("pid"), pid, e)
            self.assertEqual((e or {}).get("restarts"), 0, e)
            self.assertEqual(c.child_pids("alpha"), [pid])


class StaggerTests(unittest.TestCase):

    def test_start_stagger(self):
        with Coordinator({"alpha": {}, "beta": {}, "gamma": {}}, start_stagger=1) as c:
            recs = sorted(c.start_records(), key=start_time)
            self.assertEqual(len(recs), 3, recs)
            times = [start_time(r) for r in recs]
            gaps = [b - a for a, b in zip(times, times[1:])]
            note(f"--start-stagger 1: gaps between child starts {[round(g, 2) for g in gaps]}")
            for g in gaps:
                self.assertGreaterEqual(g, 0.9, f"starts too close: {gaps}")


class EnvTests(unittest.TestCase):

    def test_child_environment(self):
        env_files = {"alpha": {"FAKE_ENV_PROXY": "x", "HTTPS_PROXY": "http://127.0.0.1:9"}}
        with Coordinator({"alpha": {}, "beta": {}}, env_files=env_files) as c:
            a = c.start_records("alpha")[0]["env"]
            b = c.start_records("beta")[0]["env"]
            self.assertEqual(a.get("AUTO_ROTATE_AUTH_PROFILE"), "false", a)
            self.assertEqual(b.get("AUTO_ROTATE_AUTH_PROFILE"), "false", b)
            self.assertEqual(a.get("FAKE_ENV_PROXY"), "x", a)
            self.assertEqual(a.get("HTTPS_PROXY"), "http://127.0.0.1:9", a)
            self.assertNotIn("FAKE_ENV_PROXY", b)
            self.assertNotIn("HTTPS_PROXY", b)
            self.assertEqual(c.ready()[1].get("total_children"), 2)

    def test_coordinator_env_auto_rotate_kept(self):
        with Coordinator({"alpha": {}}, env={"AUTO_ROTATE_AUTH_PROFILE": "true"}) as c:
            env = c.start_records("alpha")[0]["env"]
            self.assertEqual(env.get("AUTO_ROTATE_AUTH_PROFILE"), "true", env)


class TargetedCancelTests(unittest.TestCase):

    def test_cancel_goes_only_to_owner(self):
        profiles = {n: {"stream_chunks": 300, "stream_interval": 0.1} for n in ("alpha", "beta")}
        with Coordinator(profiles) as c:
            with SSEStream(c.port, body=chat_body(stream=True), timeout=10) as s:
                self.assertEqual(s.read_head(5), 200)
                req_id = None
                while req_id is None:
                    item = s.next_line(5)
                    self.assertIsNotNone(item, describe(s.lines))
                    obj = parse_event(item[1])
                    if obj and chunk_content(obj):
                        req_id = req_id_of(obj.get("id"))
                self.assertTrue(req_id, describe(s.lines))
                ev = c.wait_event(lambda e: e.get("event") == "stream_start"
                                  and e.get("req_id") == req_id, 3)
                self.assertTrue(ev, f"no child streamed {req_id}")
                owner = ev["name"]
                other = ({"alpha", "beta"} - {owner}).pop()
                r = c.request("POST", f"/v1/cancel/{req_id}", timeout=5)
                self.assertEqual(r.status, 200, r)
                body = r.json()
                self.assertIs(body.get("success"), True, body)
                self.assertIs(body.get("relay_ended"), True, body)
                self.assertEqual(body.get("completed", []) + body.get("failed", []), [owner], body)
                s.read_to_end(10)
            time.sleep(0.3)
            self.assertEqual(len(c.events(owner, "cancel")), 1)
            self.assertEqual(c.events(other, "cancel"), [], "cancel broadcast to the other child")


class RecycleTests(unittest.TestCase):

    def _recycle_both(self, flag, value, fake=None, after_start=None):
        fake = fake or {"chat_delay": 0.2}
        with Coordinator({"alpha": dict(fake), "beta": dict(fake)},
                         extra_args=[flag, value]) as c:
            first = {n: c.child_pids(n)[0] for n in c.names}
            for n in c.names:
                if after_start is not None:
                    c.rewrite_profile(n, after_start)
            loop = RequestLoop(c, pause=0.02)
            no_ready = []
            t0 = time.monotonic()
            try:
                def both_recycled():
                    children = c.children()
                    up = [e.get("name") for e in children if e.get("state") in SERVING]
                    if not up:
                        no_ready.append((round(time.monotonic() - t0, 2), children))
                    return all(len(c.child_pids(n)) >= 2 for n in c.names) and \
                        sorted(up) == c.names
                ok = wait_until(both_recycled, 15, 0.1)
            finally:
                loop.stop()
            note(f"{flag} {value}: both children recycled after {time.monotonic() - t0:.1f}s, "
                 f"{len(loop.results)} requests meanwhile")
            self.assertTrue(ok, f"not both recycled: starts "
                                f"{ {n: len(c.child_pids(n)) for n in c.names} }\n{c.output_tail()}")
            self.assertEqual(no_ready, [], "no ready child at some point: not one at a time")
            self.assertEqual(loop.failures(), [], "requests failed during recycling")
            for n, pid in first.items():
                self.assertFalse(pid_alive(pid), f"old {n} still alive")

    def test_max_child_age_recycles_one_at_a_time(self):
        self._recycle_both("--max-child-age", "2")

    def test_max_child_rss_recycles_one_at_a_time(self):
        # A fresh fake child's process group is ~40 MB resident; after 1 s each grows by
        # 100 MiB (over the 80 MiB limit).  Restarted children stay small.
        self._recycle_both("--max-child-rss", str(80 * 1024 * 1024),
                           fake={"chat_delay": 0.2, "rss_grow_mb": 100, "rss_grow_after": 1.0},
                           after_start={"chat_delay": 0.2})

    def test_last_ready_child_not_recycled(self):
        with Coordinator({"alpha": {}}, extra_args=["--max-child-age", "1"]) as c:
            pid = c.child_pids("alpha")[0]
            t_end = time.monotonic() + 3.5
            while time.monotonic() < t_end:
                e = c.child("alpha")
                self.assertIn((e or {}).get("state"), SERVING, e)
                time.sleep(0.2)
            self.assertEqual(c.child_pids("alpha"), [pid], "the only ready child was recycled")
            self.assertEqual(c.chat("still here").status, 200)


if __name__ == "__main__":
    unittest.main()
