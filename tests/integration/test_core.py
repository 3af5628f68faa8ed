"""Black-box integration tests of the coordinator's core behaviour (unittest, stdlib only).

Run:  cd tests/integration && python3 -m unittest -v test_core
The binary is $COORDINATOR_BIN (default <repo>/build/coordinator); the fake child is
tests/fixtures/fake_child/launch_camoufox.py (see docs/fake-child-contract.md).
Every test starts its own coordinator over fake children in a private temp dir; the
harness fails a test that leaves a child or grandchild process behind.
"""

import collections
import os
import re
import signal
import sys
import tempfile
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (  # noqa: E402
    FAKE_CHILD, Background, Coordinator, chat_body, hold_port, pid_alive, ready_names,
    require_binary, served_by, wait_until)

NO_HEALTHY = {"error": {"message": "No healthy child proxies available.",
                        "type": "service_unavailable", "code": "no_healthy_children"}}

TIMESTAMP_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}|\b\d{2}:\d{2}:\d{2}\b|\b1\d{9}(?:\.\d+)?\b")

THREE = {"alpha": {}, "beta": {}, "gamma": {}}


def setUpModule():
    require_binary()


class ChildProcessTests(unittest.TestCase):
    """How children are started: argv, ports, cwd, logs."""

    def test_child_argv_ports_and_cwd(self):
        # Created out of order: children are indexed by sorted file name.
        profiles = {"zeta": {}, "alpha": {}, "mid": {}}
        with Coordinator(profiles, port_step=3) as c:
            self.assertEqual(c.names, ["alpha", "mid", "zeta"])
            for i, name in enumerate(c.names):
                recs = c.start_records(name)
                self.assertEqual(len(recs), 1, f"{name}: start records {recs}")
                rec = recs[0]
                path = c.profile_paths[name]
                argv = list(rec["argv"])
                # --active-auth-json is the child's private working copy of its profile (same
                # file name, under --runtime-dir, default runtime/coordinator in the cwd).
                copy = argv[9] if len(argv) > 9 else ""
                runtime = os.path.realpath(os.path.join(c.dir, "runtime", "coordinator"))
                self.assertEqual(os.path.basename(copy), name + ".json", argv)
                self.assertTrue(os.path.realpath(copy).startswith(runtime + os.sep), copy)
                with open(copy, "rb") as f, open(path, "rb") as g:
                    self.assertEqual(f.read(), g.read(), "the copy holds the profile")
                expected = [sys.executable, os.path.abspath(FAKE_CHILD),
                            "--server-port", str(c.api_base + i * 3),
                            "--stream-port", str(c.stream_base + i * 3),
                            "--camoufox-debug-port", str(c.camoufox_base + i * 3),
                            "--active-auth-json", copy, "--headless"]
                # Accept a canonicalised (realpath) launcher path too.
                alt = list(expected)
                alt[1] = os.path.realpath(FAKE_CHILD)
                self.assertIn(argv, (expected, alt), f"argv of child {i} ({name})")
                # Its own working folder (docs/real-child.md: certs/, config/profile_usage.json
                # and logs/fc_debug/ are relative to it), private to the coordinator's user.
                work = os.path.join(runtime, "children", name)
                self.assertEqual(os.path.realpath(rec["cwd"]), work, f"cwd of {name}")
                self.assertEqual(os.stat(work).st_mode & 0o777, 0o700)

    def test_no_headless_flag(self):
        with Coordinator({"solo": {}}, extra_args=["--no-headless"]) as c:
            rec = c.start_records("solo")[0]
            self.assertNotIn("--headless", rec["argv"])
            # An alias of --browser-mode headful: the launcher's --debug (a visible window).
            self.assertEqual(rec["argv"][-1], "--debug")
            self.assertEqual(rec["argv"][-3], "--active-auth-json")
            self.assertEqual(os.path.basename(rec["argv"][-2]), "solo.json")

    def test_per_profile_logs_have_timestamped_stream_lines(self):
        with Coordinator(THREE) as c:
            for name in c.names:
                out_marker = f"[fake-child {name}] starting pid="
                err_marker = f"[fake-child {name}] spawned browser grandchild"

                def found(name=name, out_marker=out_marker, err_marker=err_marker):
                    lines = c.child_log(name).splitlines()
                    o = [ln for ln in lines if out_marker in ln]
                    e = [ln for ln in lines if err_marker in ln]
                    return (o, e) if o and e else None
                got = wait_until(found, 5)
                self.assertTrue(got, f"{c.child_log_path(name)} lacks the child's start-up lines:\n"
                                     f"{c.child_log(name)[:2000]}")
                o, e = got
                self.assertRegex(o[0], TIMESTAMP_RE, "stdout line has no timestamp")
                self.assertRegex(e[0], TIMESTAMP_RE, "stderr line has no timestamp")
                self.assertIn("stdout", o[0].lower().replace(out_marker.lower(), ""))
                self.assertNotIn("stderr", o[0].lower())
                self.assertIn("stderr", e[0].lower().replace(err_marker.lower(), ""))
                self.assertNotIn("stdout", e[0].lower())
                # Only this child's lines in this file.
                for other in c.names:
                    if other != name:
                        self.assertNotIn(f"[fake-child {other}]", c.child_log(name))


class HealthEndpointTests(unittest.TestCase):

    def test_live(self):
        with Coordinator(THREE) as c:
            r = c.get("/live")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json(), {"status": "alive"})

    def test_ready_and_health_200(self):
        with Coordinator(THREE) as c:
            for path in ("/ready", "/health"):
                r = c.get(path)
                self.assertEqual(r.status, 200, f"{path}: {r!r}")
                body = r.json()
                self.assertEqual(body["status"], "ready")
                self.assertEqual(sorted(ready_names(body)), c.names)
                self.assertEqual(body["unhealthy_children"], [])
                self.assertEqual(body["total_children"], 3)

    def test_ready_503_when_no_child_ready(self):
        profiles = {n: {"never_ready": True} for n in ("alpha", "beta", "gamma")}
        with Coordinator(profiles) as c:
            c.wait_start_records(3, 10)
            time.sleep(1.0)  # several health intervals
            for path in ("/ready", "/health"):
                r = c.get(path)
                self.assertEqual(r.status, 503, f"{path}: {r!r}")
                body = r.json()
                self.assertEqual(body["status"], "degraded")
                self.assertEqual(ready_names(body), [])
                self.assertEqual(body["total_children"], 3)
            self.assertEqual(c.get("/live").status, 200)

    def test_unknown_path_404_and_wrong_method_405(self):
        cases = [("GET", "/nope", 404), ("GET", "/v1/nope", 404),
                 ("GET", "/v1/chat/completions", 405), ("POST", "/live", 405),
                 ("POST", "/v1/models", 405), ("DELETE", "/ready", 405),
                 ("GET", "/v1/cancel/abc1234", 405)]
        with Coordinator({"alpha": {}}) as c:
            for method, path, status in cases:
                with self.subTest(method=method, path=path):
                    body = b"{}" if method == "POST" else None
                    r = c.request(method, path, body=body)
                    self.assertEqual(r.status, status, r)
                    self.assertIn("error", r.json())
            self.assertEqual(c.chat_requests("alpha"), [])

    def test_clean_shutdown_after_error_responses(self):
        # Error answers (404, 405, 400, 413) must not leave the server in a state where
        # SIGTERM waits for phantom in-flight requests or crashes.
        with Coordinator({"alpha": {}}, extra_args=["--max-body", "1000"]) as c:
            for method, path, body in [("GET", "/nope", None), ("POST", "/live", b"{}"),
                                       ("POST", "/v1/chat/completions", b"{bad"),
                                       ("POST", "/v1/chat/completions", b"x" * 2000)]:
                try:
                    c.request(method, path, body=body, timeout=5)
                except OSError:
                    pass  # reported by the tests of those endpoints
            t0 = time.monotonic()
            c.signal(signal.SIGTERM)
            rc = c.wait_exit(15)
            took = time.monotonic() - t0
            self.assertEqual(rc, 0, c.output_tail())
            self.assertLess(took, 5.0, f"SIGTERM with nothing in flight took {took:.1f}s\n"
                                       f"{c.output_tail()}")


class ForwardingTests(unittest.TestCase):

    def test_round_robin_12_requests_over_3_children(self):
        with Coordinator(THREE) as c:
            served = []
            for i in range(12):
                r = c.chat(f"rr {i}")
                self.assertEqual(r.status, 200, r)
                self.assertTrue(r.json()["choices"][0]["message"]["content"].startswith("Hello from "))
                served.append(served_by(r))
            self.assertEqual(collections.Counter(served), {"alpha": 4, "beta": 4, "gamma": 4},
                             served)
            for name in c.names:
                self.assertEqual(len(c.chat_requests(name)), 4, name)

    def test_models_is_the_union_of_the_childrens_lists(self):
        # Forwarding while no list is known is in test_models.UnknownListsTests.
        with Coordinator(THREE) as c:
            for _ in range(3):
                r = c.get("/v1/models")
                self.assertEqual(r.status, 200, r)
                body = r.json()
                self.assertEqual(body["object"], "list")
                self.assertEqual([m["id"] for m in body["data"]], ["fake-model"])

    def test_failover_when_child_answers_503(self):
        profiles = {"alpha": {}, "beta": {"chat_status": 503}, "gamma": {}}
        with Coordinator(profiles) as c:
            served = []
            for i in range(12):
                r = c.chat(f"fo {i}")
                self.assertEqual(r.status, 200, r)
                served.append(served_by(r))
            self.assertNotIn("beta", served)
            self.assertEqual(set(served), {"alpha", "gamma"})
            self.assertGreaterEqual(len(c.chat_requests("beta")), 1,
                                    "beta never got a request: failover path not exercised")

    def test_failover_when_child_crashes_on_chat(self):
        profiles = {"alpha": {}, "beta": {"crash_on_chat": True}, "gamma": {}}
        with Coordinator(profiles) as c:
            beta_pid = c.child_pids("beta")[0]
            for i in range(6):
                r = c.chat(f"crash {i}")
                self.assertEqual(r.status, 200, r)
                self.assertNotEqual(served_by(r), "beta")
            self.assertGreaterEqual(len(c.chat_requests("beta")), 1)
            self.assertTrue(wait_until(lambda: not pid_alive(beta_pid), 5))
            gone = wait_until(lambda: "beta" not in ready_names(c.ready()[1] or {}), 3)
            self.assertTrue(gone, f"beta still ready after crashing: {c.ready()}")

    def test_exited_child_leaves_ready_set_promptly(self):
        profiles = {"alpha": {}, "beta": {"exit_after": 2.5}, "gamma": {}}
        with Coordinator(profiles) as c:
            self.assertIn("beta", ready_names(c.ready()[1]))
            beta_pid = c.child_pids("beta")[0]
            self.assertTrue(wait_until(lambda: not pid_alive(beta_pid), 10), "beta did not exit")
            t0 = time.monotonic()
            gone = wait_until(lambda: "beta" not in ready_names(c.ready()[1] or {}), 3)
            self.assertTrue(gone, f"beta still in the ready set 3 s after exiting: {c.ready()}")
            self.assertLess(time.monotonic() - t0, 3.0)
            status, body = c.ready()
            self.assertEqual(status, 200)
            self.assertTrue({"alpha", "gamma"} <= set(ready_names(body)), body)
            for i in range(4):
                r = c.chat(f"after exit {i}")
                self.assertEqual(r.status, 200, r)

    def test_503_no_healthy_children(self):
        profiles = {n: {"never_ready": True} for n in ("alpha", "beta", "gamma")}
        with Coordinator(profiles) as c:
            c.wait_start_records(3, 10)
            time.sleep(0.6)
            r = c.chat("nobody home")
            self.assertEqual(r.status, 503, r)
            self.assertEqual(r.json(), NO_HEALTHY)
            r = c.get("/v1/models")
            self.assertEqual(r.status, 503, r)
            self.assertEqual(r.json(), NO_HEALTHY)
            for name in c.names:
                self.assertEqual(c.chat_requests(name), [], name)

    def test_auth_headers_passed_through(self):
        with Coordinator(THREE) as c:
            token = f"Bearer sk-test-{uuid.uuid4().hex}"
            key = f"key-{uuid.uuid4().hex}"
            r = c.chat("auth", headers={"Authorization": token, "X-API-Key": key})
            self.assertEqual(r.status, 200, r)
            name = served_by(r)
            ev = c.chat_requests(name)[-1]
            self.assertEqual(ev["headers"].get("authorization"), token)
            self.assertEqual(ev["headers"].get("x-api-key"), key)
            # The coordinator's own reads of /v1/models carry no client's credentials.
            for e in (e for n in c.names for e in c.requests(n, "/v1/models")):
                self.assertNotIn("authorization", e["headers"])
                self.assertNotIn("x-api-key", e["headers"])

    def test_50_concurrent_requests(self):
        profiles = {n: {"chat_delay": 0.05} for n in ("alpha", "beta", "gamma")}
        with Coordinator(profiles) as c:
            results = [None] * 50

            def worker(i):
                try:
                    results[i] = c.chat(f"concurrent {i}", timeout=30)
                except Exception as e:  # noqa: BLE001 - reported below
                    results[i] = e
            threads = [threading.Thread(target=worker, args=(i,)) for i in range(50)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(40)
            self.assertFalse(any(t.is_alive() for t in threads), "requests still hanging")
            bad = [(i, r) for i, r in enumerate(results) if getattr(r, "status", None) != 200]
            self.assertEqual(bad, [])
            counts = collections.Counter(served_by(r) for r in results)
            self.assertEqual(sum(counts.values()), 50)
            self.assertEqual(set(counts), set(c.names), counts)
            for name in c.names:
                self.assertGreaterEqual(counts[name], 10, f"unbalanced round robin: {counts}")


class UnusualStatusTests(unittest.TestCase):

    def test_status_beast_has_no_name_for_is_relayed_unchanged(self):
        # Found by fuzz_http_response: 520 reached the client as "000 <unknown-status>".
        with Coordinator({"odd": {"chat_status": 520}}) as c:
            r = c.chat("hello")
            self.assertEqual(r.status, 520, r)


class CancelTests(unittest.TestCase):

    def test_cancel_broadcast_200(self):
        # A non-streamed request: the coordinator never sees its req_id, so the
        # cancel must go to every child. (The real child cancels only a request
        # still in its own queue; `cancel_in_progress` lets this one be found while
        # it runs, which is what the broadcast needs to show.)
        profiles = {n: {"chat_delay": 8, "cancel_in_progress": True} for n in ("alpha", "beta", "gamma")}
        with Coordinator(profiles) as c:
            job = Background(lambda i: c.chat("slow answer", timeout=30))
            ev = c.wait_event(lambda e: e.get("event") == "chat_start", 5)
            self.assertTrue(ev, "no chat started on any child")
            req_id, owner = ev["req_id"], ev["name"]
            r = c.request("POST", f"/v1/cancel/{req_id}")
            self.assertEqual(r.status, 200, r)
            body = r.json()
            self.assertIs(body["success"], True)
            self.assertEqual(body["completed"], [owner])
            self.assertEqual(set(body["failed"]), set(c.names) - {owner}, body)
            self.assertTrue(job.join(10), "request did not end after cancel")
            cancels = c.all_events("cancel")
            self.assertEqual([e["found"] for e in cancels[owner]], [True])
            for name in c.names:
                self.assertEqual(len(cancels[name]), 1, f"cancel not broadcast to {name}")
                self.assertEqual(cancels[name][0]["req_id"], req_id)

    def test_cancel_of_a_streamed_request_goes_to_its_child_only(self):
        profiles = {n: {"stream_chunks": 300, "stream_interval": 0.1}
                    for n in ("alpha", "beta", "gamma")}
        with Coordinator(profiles) as c:
            job = Background(lambda i: c.chat("long stream", stream=True, timeout=30))
            # A few chunks in, the coordinator has relayed (and read) the chunk ids.
            ev = c.wait_event(lambda e: e.get("event") == "chunk_sent" and e.get("n", 0) >= 2, 5)
            self.assertTrue(ev, "no stream started on any child")
            req_id, owner = ev["req_id"], ev["name"]
            r = c.request("POST", f"/v1/cancel/{req_id}")
            self.assertEqual(r.status, 200, r)
            body = r.json()
            self.assertIs(body["success"], True)
            # The coordinator ends its relay (the real child stops a running request
            # only when its connection closes), then asks the owner alone.
            self.assertIs(body["relay_ended"], True)
            self.assertEqual(body["completed"] + body["failed"], [owner])
            self.assertTrue(job.join(10), "stream did not end after cancel")
            self.assertEqual(job.status, 200, job.result)
            self.assertIn("request_cancelled", job.result.text)
            cancels = c.all_events("cancel")
            self.assertEqual(len(cancels[owner]), 1)
            for name in set(c.names) - {owner}:
                self.assertEqual(cancels.get(name, []), [], f"cancel wrongly sent to {name}")
            self.assertTrue(c.wait_event(lambda e: e.get("event") == "client_disconnected"
                                         and e.get("req_id") == req_id, 5, name=owner))

    def test_cancel_unknown_id_404(self):
        with Coordinator(THREE) as c:
            r = c.request("POST", "/v1/cancel/zzz9999")
            self.assertEqual(r.status, 404, r)
            self.assertIs(r.json()["success"], False)
            self.assertTrue(wait_until(
                lambda: all(len(c.events(n, "cancel")) == 1 for n in c.names), 2),
                f"cancel not broadcast to every child: {c.all_events('cancel')}")

    def test_cancel_bad_id_400(self):
        with Coordinator(THREE) as c:
            for bad in ("bad%20id", "a.b", "x" * 129, "semi%3Bcolon"):
                r = c.request("POST", f"/v1/cancel/{bad}")
                self.assertEqual(r.status, 400, f"{bad!r}: {r!r}")
            for name in c.names:
                self.assertEqual(c.events(name, "cancel"), [], name)


class RequestValidationTests(unittest.TestCase):

    def test_malformed_json_400_and_connection_reused(self):
        with Coordinator(THREE) as c:
            with c.raw() as conn:
                r = conn.request("POST", "/v1/chat/completions", b'{"model": "x", "messages": [',
                                 {"Content-Type": "application/json"})
                self.assertEqual(r.status, 400, r)
                err = r.json()["error"]
                self.assertIsInstance(err.get("message"), str)
                self.assertIn("type", err)
                body = b'{"model":"fake-model","messages":[{"role":"user","content":"ok"}]}'
                r2 = conn.request("POST", "/v1/chat/completions", body,
                                  {"Content-Type": "application/json"})
                self.assertEqual(r2.status, 200, r2)
            self.assertEqual(sum(len(c.chat_requests(n)) for n in c.names), 1)

    def test_oversize_body_413(self):
        with Coordinator(THREE, extra_args=["--max-body", "1000"]) as c:
            with self.subTest("Content-Length over the limit"):
                r = c.post_json("/v1/chat/completions", chat_body("x" * 5000))
                self.assertEqual(r.status, 413, r)
            with self.subTest("chunked body over the limit"):
                with c.raw() as conn:
                    payload = b'{"model":"fake-model","messages":[{"role":"user","content":"' + \
                        b"y" * 3000 + b'"}]}'
                    chunks = b"".join(f"{len(payload[i:i + 500]):x}\r\n".encode()
                                      + payload[i:i + 500] + b"\r\n"
                                      for i in range(0, len(payload), 500))
                    conn.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                              b"Content-Type: application/json\r\n"
                              b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n")
                    self.assertEqual(conn.read_response("POST").status, 413)
            self.assertEqual(sum(len(c.chat_requests(n)) for n in c.names), 0)
            with self.subTest("exactly at the limit"):
                prefix = b'{"model":"fake-model","messages":[{"role":"user","content":"'
                suffix = b'"}]}'
                exact = prefix + b"z" * (1000 - len(prefix) - len(suffix)) + suffix
                self.assertEqual(len(exact), 1000)
                r = c.request("POST", "/v1/chat/completions", body=exact,
                              headers={"Content-Type": "application/json"})
                self.assertEqual(r.status, 200, r)


class ProfileAndStartupTests(unittest.TestCase):

    def test_invalid_json_profile_skipped(self):
        profiles = {"alpha": {}, "broken": "{this is not json", "gamma": {}}
        with Coordinator(profiles) as c:
            status, body = c.ready()
            self.assertEqual(status, 200)
            self.assertEqual(body["total_children"], 2, body)
            self.assertEqual(sorted(ready_names(body)), ["alpha", "gamma"])
            self.assertEqual(c.start_records("broken"), [])
            lines = [ln for ln in c.output().splitlines() if "broken" in ln]
            self.assertTrue(lines, f"no error line names broken.json:\n{c.output_tail()}")
            for i in range(4):
                self.assertEqual(c.chat(f"v {i}").status, 200)

    def test_missing_profiles_dir_exit_1(self):
        missing = os.path.join(tempfile.gettempdir(), f"no-such-dir-{uuid.uuid4().hex}")
        with Coordinator({"alpha": {}}, wait_ready=0, profiles_dir=missing) as c:
            rc = c.wait_exit(10)
            self.assertEqual(rc, 1, c.output_tail())
            err_lines = [ln for ln in c.stderr().splitlines() if ln.strip()]
            self.assertEqual(len(err_lines), 1, f"expected a one-line error, got {err_lines}")
            self.assertIn("no-such-dir", err_lines[0])
            time.sleep(0.3)
            self.assertEqual(c.start_records(), [])

    def test_busy_coordinator_port(self):
        c = Coordinator(THREE, wait_ready=0)
        holder = hold_port(c.port)
        try:
            with c:
                rc = c.wait_exit(10)
                self.assertIsNotNone(rc, "coordinator did not exit with its port taken")
                self.assertNotEqual(rc, 0)
                self.assertIn(str(c.port), c.output(), c.output_tail())
                time.sleep(0.5)
                self.assertEqual(c.start_records(), [], "children spawned")
        finally:
            holder.close()

    def test_busy_child_api_port(self):
        c = Coordinator(THREE, wait_ready=0)
        busy = c.api_port(1)
        holder = hold_port(busy)
        try:
            with c:
                rc = c.wait_exit(10)
                self.assertIsNotNone(rc, "coordinator did not exit with a child port taken")
                self.assertNotEqual(rc, 0)
                self.assertIn(str(busy), c.output(), c.output_tail())
                time.sleep(0.5)
                self.assertEqual(c.start_records(), [], "children spawned")
        finally:
            holder.close()


class ShutdownTests(unittest.TestCase):

    def test_sigterm_exit_0_and_no_leftovers(self):
        with Coordinator(THREE) as c:
            pids = c.recorded_pids()
            self.assertEqual(len(pids), 6, c.start_records())
            self.assertTrue(all(pid_alive(p) for p in pids))
            c.signal(signal.SIGTERM)
            rc = c.wait_exit(15)
            self.assertEqual(rc, 0, c.output_tail())
            left = c.wait_pids_gone(pids, 1.0)
            self.assertEqual(left, [], f"alive after SIGTERM exit: "
                                       f"{[(p, c.describe_pid(p)) for p in left]}")
            wait_until(lambda: not c.tagged_pids(), 1.0)
            left = c.tagged_pids()
            self.assertEqual(left, [], f"coordinator descendants alive after SIGTERM exit: "
                                       f"{[(p, c.describe_pid(p)) for p in left]}")

    def test_sigkill_kills_children_and_grandchildren(self):
        with Coordinator(THREE) as c:
            pids = c.recorded_pids()
            self.assertEqual(len(pids), 6, c.start_records())
            c.signal(signal.SIGKILL)
            c.wait_exit(5)
            t0 = time.monotonic()
            left = c.wait_pids_gone(pids, 5.0)
            self.assertEqual(left, [], f"alive 5 s after SIGKILL of the coordinator: "
                                       f"{[(p, c.describe_pid(p)) for p in left]}")
            wait_until(lambda: not c.tagged_pids(), max(0.1, 5.0 - (time.monotonic() - t0)))
            left = c.tagged_pids()
            self.assertEqual(left, [], f"coordinator descendants alive 5 s after SIGKILL: "
                                       f"{[(p, c.describe_pid(p)) for p in left]}")


class SecretTests(unittest.TestCase):

    def test_no_cookie_value_in_any_log(self):
        leaky_secret = f"secret-cookie-{uuid.uuid4().hex}"
        broken = ('{"cookies": [{"name": "SID", "value": "%s", "domain": ".google.com"}], '
                  'oops not json' % leaky_secret)
        profiles = {"alpha": {}, "beta": {"stream_chunks": 3}, "gamma": {}, "leaky": broken}
        with Coordinator(profiles, wait_ready=3) as c:
            self.assertEqual(c.chat("one").status, 200)
            self.assertEqual(c.chat("two", stream=True).status, 200)
            self.assertEqual(c.get("/v1/models").status, 200)
            c.request("POST", "/v1/cancel/abc1234")
            c.request("POST", "/v1/chat/completions", body=b"{bad json")
            self.assertEqual(c.stop(), 0)
            secrets = [s for v in c.secrets.values() for s in v] + [leaky_secret]
            self.assertEqual(len(secrets), 7)
            files = c.all_log_files()
            self.assertTrue(any(f.endswith("alpha.log") for f in files), files)
            for path in files:
                with open(path, "rb") as f:
                    data = f.read()
                for s in secrets:
                    self.assertNotIn(s.encode(), data, f"cookie value found in {path}")


if __name__ == "__main__":
    unittest.main()
