"""Usage and the state file (issue 14).

* Usage per child and per API key: requests by status class and the tokens the child reported
  (a JSON answer's ``usage``, a stream's last chunk's); ``GET /admin/usage`` and /metrics
  (``coordinator_tokens_total{child,key,kind}``); a key shows as ``key-`` + the first 8 hex
  digits of its SHA-256, never as itself.
* ``--state-file``: the model cooldowns and the usage counters survive a restart of the
  coordinator (also after ``kill -9``); a corrupt file is set aside and the coordinator starts.

Every wait is bounded; all traffic is on 127.0.0.1.
"""

import hashlib
import json
import os
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (  # noqa: E402
    Background, Coordinator, replace_json, require_binary, served_by, storage_state, wait_until)

from test_model_quota import cooling_models  # noqa: E402
from test_models import wait_models_learned  # noqa: E402


def setUpModule():
    require_binary()


def key_id(key):
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]


def last_usage(r):
    """The usage a streamed answer's chunks carried (the last one that had any)."""
    usage = None
    for line in r.text.splitlines():
        if line.startswith("data: {"):
            usage = json.loads(line[6:]).get("usage") or usage
    return usage


def port_free(port):
    """As the coordinator checks a child's port: a listener could bind it (TIME_WAIT is no owner)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def keyed(profiles, keys, extra=()):
    c = Coordinator(profiles, extra_args=["--api-keys-file", "keys.txt"] + list(extra))
    with open(os.path.join(c.dir, "keys.txt"), "w") as f:
        f.write("".join(k + "\n" for k in keys))
    return c


class UsageTests(unittest.TestCase):
    def test_usage_by_child_and_key_in_admin_usage_and_metrics(self):
        one, two = "sk-test-one-0123456789", "sk-test-two-9876543210"
        with keyed({"alpha": {}}, [one, two]) as c:
            expected = {one: [0, 0, 0], two: [0, 0, 0]}
            for key, stream in ((one, False), (one, True), (two, False)):
                r = c.chat("count me", stream=stream, headers={"Authorization": f"Bearer {key}"})
                self.assertEqual(r.status, 200, r.text)
                usage = last_usage(r) if stream else r.json()["usage"]
                self.assertTrue(usage and usage["total_tokens"] > 0, r.text)
                for i, kind in enumerate(("prompt_tokens", "completion_tokens", "total_tokens")):
                    expected[key][i] += usage[kind]
            bad = c.post_json("/v1/chat/completions", {"messages": "nope"},
                              headers={"Authorization": f"Bearer {two}"})
            self.assertEqual(bad.status, 422, bad.text)

            r = c.get("/admin/usage", headers={"Authorization": f"Bearer {one}"})
            self.assertEqual(r.status, 200, r.text)
            body = r.json()
            self.assertNotIn(one, r.text)
            self.assertNotIn(two, r.text)
            for view in ("totals", "today"):
                by_key = body[view]["by_key"]
                self.assertEqual(set(by_key), {key_id(one), key_id(two)}, body)
                self.assertEqual(by_key[key_id(one)]["requests"]["2xx"], 2)
                self.assertEqual(by_key[key_id(two)]["requests"]["2xx"], 1)
                self.assertEqual(by_key[key_id(two)]["requests"]["4xx"], 1)
                for key in (one, two):
                    tokens = by_key[key_id(key)]["tokens"]
                    self.assertEqual([tokens["prompt"], tokens["completion"], tokens["total"]], expected[key])
                self.assertEqual(body[view]["by_child"]["alpha"]["requests"]["all"], 4)

            metrics = c.get("/metrics").text
            self.assertNotIn(one, metrics)
            line = f'coordinator_tokens_total{{child="alpha",key="{key_id(one)}",kind="total"}} {expected[one][2]}'
            self.assertIn(line, metrics)
            self.assertIn(f'coordinator_requests_by_key_total{{key="{key_id(two)}",class="4xx"}} 1', metrics)

    def test_without_keys_every_request_counts_under_none(self):
        with Coordinator({"alpha": {}}) as c:
            self.assertEqual(c.chat("hi").status, 200)
            body = c.get("/admin/usage").json()
            self.assertEqual(list(body["totals"]["by_key"]), ["none"])
            self.assertEqual(body["totals"]["requests"]["2xx"], 1)


class FairSharingTests(unittest.TestCase):
    def test_queued_requests_take_turns_by_key(self):
        # One child, 0.4 s per answer: key A queues five, then key B one. B is served third
        # (after A's first, which took the child at once, and A's second, whose turn came
        # first), not sixth as in one FIFO.
        heavy, light = "sk-heavy-user-000000", "sk-light-user-111111"
        with keyed({"alpha": {"chat_delay": 0.4}}, [heavy, light]) as c:
            def ask(key):
                return lambda i: c.chat(f"{key[:8]} {i}", headers={"Authorization": f"Bearer {key}"},
                                        timeout=20)
            def queued():
                for line in c.get("/metrics").text.splitlines():
                    if line.startswith("coordinator_requests_queued "):
                        return int(float(line.split()[1]))
                return -1
            heavy_jobs = [Background(ask(heavy), i) for i in range(5)]
            self.assertTrue(wait_until(lambda: queued() == 4, 10), "one heavy request runs, four wait")
            light_job = Background(ask(light))
            for job in heavy_jobs + [light_job]:
                self.assertTrue(job.join(20), "every request answered")
                self.assertEqual(job.result.status, 200, job.result.text)
            finished_before_light = sum(1 for job in heavy_jobs if job.t_end < light_job.t_end)
            self.assertLessEqual(finished_before_light, 2,
                                 [round(j.t_end - light_job.t_start, 2) for j in heavy_jobs])


class ProfilesAdminTests(unittest.TestCase):
    def test_admin_profiles_lists_cookies_and_the_earliest_expiry_never_a_value(self):
        c = Coordinator({"alpha": {}, "beta": {}}, extra_args=["--expiry-warning", str(7 * 86400)])
        # beta's account: a cookie that expires in two days (inside the 7-day warning).
        beta = storage_state(c.secrets["beta"][0], {})
        beta["cookies"][0]["expires"] = time.time() + 2 * 86400
        replace_json(c.profile_paths["beta"], beta)
        with c:
            r = c.get("/admin/profiles")
            self.assertEqual(r.status, 200, r.text)
            for name in ("alpha", "beta"):
                for secret in c.secrets[name]:
                    self.assertNotIn(secret, r.text)
            profiles = {p["name"]: p for p in r.json()["profiles"]}
            self.assertEqual(set(profiles), {"alpha", "beta"})
            self.assertEqual(profiles["alpha"]["cookies"], 1)
            self.assertIsNone(profiles["alpha"]["earliest_cookie_expiry"])  # a session cookie
            self.assertFalse(profiles["alpha"]["expiring_soon"])
            self.assertTrue(profiles["beta"]["expiring_soon"], profiles["beta"])
            self.assertRegex(profiles["beta"]["earliest_cookie_expiry"], r"^\d{4}-\d\d-\d\dT")
            self.assertEqual(profiles["beta"]["state"], "ready")
            self.assertEqual(profiles["beta"]["file"], "beta.json")


class StateFileTests(unittest.TestCase):
    PROFILES = {"alpha": {"models": ["m-a", "m-b"], "quota_models": ["m-a"]},
                "beta": {"models": ["m-a", "m-b"]}}

    def spend(self, c):
        wait_models_learned(c, ["alpha", "beta"])
        for i in range(3):
            self.assertEqual(served_by(c.chat(f"a {i}", model="m-a")), "beta")
        return cooling_models(c, "alpha")["m-a"]["until"]

    def test_a_cooldown_and_the_usage_survive_a_restart(self):
        c = Coordinator(self.PROFILES, extra_args=["--quota-cooldown", "600"])
        state = os.path.join(c.log_dir, "state.json")  # the default: next to the logs
        with c:
            until = self.spend(c)
            self.assertEqual(c.stop(), 0)
            with open(state) as f:
                saved = json.load(f)
            self.assertEqual(saved["version"], 1)
            self.assertEqual(oct(os.stat(state).st_mode & 0o777), "0o600")
            text = json.dumps(saved)
            self.assertNotIn("cookies", text)
            c.start()
            c.wait_ready(2)
            wait_models_learned(c, ["alpha", "beta"])
            cooling = cooling_models(c, "alpha")
            self.assertEqual(list(cooling), ["m-a"], c.children())
            self.assertEqual(cooling["m-a"]["until"], until)
            self.assertTrue(550 <= cooling["m-a"]["seconds_left"] <= 600, cooling)
            # Still routed around: alpha gets no request for m-a after the restart.
            before = len(c.chat_requests("alpha"))
            self.assertEqual(served_by(c.chat("after", model="m-a")), "beta")
            self.assertEqual(len(c.chat_requests("alpha")), before)
            usage = c.get("/admin/usage").json()["totals"]
            self.assertEqual(usage["requests"]["2xx"], 4, usage)  # 3 before the restart, 1 after

    def test_kill_9_leaves_a_file_that_loads(self):
        c = Coordinator(self.PROFILES, extra_args=["--quota-cooldown", "600"])
        with c:
            self.spend(c)
            state = os.path.join(c.log_dir, "state.json")

            def cooldown_saved():
                # The file may first be written before the cooldown (saves come at most once a
                # second): kill it once the cooldown is in, as a real crash after the save would.
                try:
                    with open(state) as f:
                        saved = json.load(f)["profiles"]["alpha"].get("cooldowns", [])
                except (OSError, ValueError, KeyError):
                    return False
                return [entry.get("model") for entry in saved] == ["m-a"]
            self.assertTrue(wait_until(cooldown_saved, 5), "the cooldown is saved within about a second")
            c.proc.send_signal(signal.SIGKILL)
            c.proc.wait(timeout=10)
            # Its orphan guard ends the old children; their ports must be free for the next start.
            ports = [c.api_base + i * c.port_step for i in range(2)]
            self.assertTrue(wait_until(lambda: all(port_free(p) for p in ports), 15), "old children gone")
            c.start()
            c.wait_ready(2)
            self.assertEqual(list(cooling_models(c, "alpha")), ["m-a"])
            self.assertNotIn("set aside", open(c.stdout_path).read() + open(c.stderr_path).read())

    def restart_with_flag(self, c, state, flag):
        """Once the state file says alpha is `flag` (entered `state`): a SIGTERM and a start;
        alpha is in `state` again. Returns (alpha's /ready entry, its starts before the restart)."""
        self.assertEqual((c.wait_state("alpha", state, 30) or {}).get("state"), state, c.output_tail())
        path = os.path.join(c.log_dir, "state.json")

        def flagged():
            with open(path) as f:
                return json.load(f)["profiles"]["alpha"].get(flag)
        self.assertTrue(wait_until(lambda: os.path.exists(path) and flagged(), 5))
        self.assertEqual(c.stop(), 0)
        starts = len(c.start_records("alpha"))
        c.start()
        c.wait_ready(1)
        alpha = c.wait_state("alpha", state, 5)
        self.assertEqual((alpha or {}).get("state"), state, c.children())
        return alpha, starts

    def test_a_logged_out_profile_is_not_started_after_a_restart_until_its_file_changes(self):
        c = Coordinator({"alpha": {"logged_out": True}, "beta": {}}, wait_ready=1,
                        extra_args=["--max-restarts", "1"])
        with c:
            alpha, starts = self.restart_with_flag(c, "needs_relogin", "needs_relogin")
            self.assertIn("logged out before the restart", alpha["last_error"])
            time.sleep(1)
            self.assertEqual(len(c.start_records("alpha")), starts, "not started again")
            # A fresh login and a reload start it.
            c.rewrite_profile("alpha", {})
            c.signal(signal.SIGHUP)
            self.assertEqual((c.wait_state("alpha", "ready", 20) or {}).get("state"), "ready", c.output_tail())
            self.assertEqual(len(c.start_records("alpha")), starts + 1)

    def test_a_parked_profile_stays_parked_after_a_restart(self):
        c = Coordinator({"alpha": {"crash_on_start": True}, "beta": {}}, wait_ready=1,
                        extra_args=["--max-restarts", "1"])
        with c:
            alpha, starts = self.restart_with_flag(c, "failed", "parked")
            self.assertIn("parked before the restart", alpha["last_error"])
            self.assertEqual(len(c.start_records("alpha")), starts)
            r = c.post_json("/admin/children/alpha/restart", {})
            self.assertEqual(r.status, 200, r.text)
            # Started again (it crashes at once again: that is the fake's steer, not the point).
            self.assertTrue(wait_until(lambda: len(c.start_records("alpha")) > starts, 10))

    def test_a_corrupt_state_file_is_set_aside_and_the_coordinator_starts(self):
        c = Coordinator({"alpha": {}}, extra_args=["--state-file", "my-state.json"])
        path = os.path.join(c.dir, "my-state.json")
        with open(path, "w") as f:
            f.write('{"version": 1, "profiles": {"alpha": ')  # cut short
        with c:
            self.assertEqual(c.chat("hi").status, 200)
            aside = [n for n in os.listdir(c.dir) if n.startswith("my-state.json.corrupt-")]
            self.assertEqual(len(aside), 1, os.listdir(c.dir))
            output = open(c.stdout_path).read() + open(c.stderr_path).read()
            self.assertIn("set aside", output)

    def test_none_turns_it_off(self):
        c = Coordinator({"alpha": {}}, extra_args=["--state-file", "none"])
        with c:
            self.assertEqual(c.chat("hi").status, 200)
            self.assertEqual(c.stop(), 0)
            self.assertFalse(os.path.exists(os.path.join(c.log_dir, "state.json")))


if __name__ == "__main__":
    unittest.main()
