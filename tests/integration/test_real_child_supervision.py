"""Supervision of real-like children (issue 12, Part 2 points 1, 7, 8 and 9). Stdlib only.

Run:  cd tests/integration && python3 -m unittest -v test_real_child_supervision
The fake child (tests/fixtures/fake_child/launch_camoufox.py) behaves like the real one by
default: the launcher (its own process group) starts a "browser" in a new session that holds the
camoufox debug port, which starts "firefox" detached (yet another session or group), and forks a
stream proxy that ignores SIGTERM; a clean stop saves the cookies into the profile in place.

What is checked:
* point 1: every process of a child's tree dies on stop, restart, SIGKILL of the launcher,
  shutdown and SIGKILL of the coordinator (nothing left 5 s later); the trees are marked with
  COORDINATOR_TREE; a restart waits for the slot's camoufox port; --max-child-rss counts the tree;
* point 7: the children's environment (rotation off, token limits out of reach, no login
  wait), stdin from /dev/null, --browser-mode and its launcher flags;
* point 8: a logged-out account goes to needs_relogin (no restart loop, no restart budget, not
  parked), is shown in /ready, /metrics and the status page, and starts again once its profile
  file is replaced and a reload runs;
* point 9: a child refreshes cookies in its private working copy, the coordinator copies them
  back into the operator's file, a reload does not restart it; a file the operator replaces
  restarts the child with the new cookies and the old child's saves never overwrite it.

Every wait is bounded; each test starts its own coordinator on free 127.0.0.1 ports and ends only
the processes it started.
"""

import json
import os
import signal
import stat
import subprocess
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (  # noqa: E402
    Coordinator, clean_env, free_port, has_flag, healthy, hold_port, launcher_argv, metric,
    note, parse_metrics, pid_alive, proc_stat, replace_json, require_binary, storage_state,
    wait_until, write_profile)

OUT_OF_REACH = "1000000000000000000"


def setUpModule():
    require_binary()
    if not has_flag("--browser-mode"):
        raise unittest.SkipTest("the binary has no --browser-mode (older build)")


# ---------------------------------------------------------------------------
# /proc helpers

def environ_of(pid):
    """The environment of `pid` as a dict ({} if unreadable)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return {}
    out = {}
    for entry in raw.split(b"\0"):
        key, sep, value = entry.partition(b"=")
        if sep:
            out[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return out


def tree_of(rec):
    """The pids of one child's tree from its start record: launcher, browser, firefox, proxy."""
    pids = {"launcher": rec.get("pid"), "browser": rec.get("browser_pid"),
            "firefox": rec.get("firefox_pid"), "stream_proxy": rec.get("stream_proxy_pid")}
    return {k: v for k, v in pids.items() if v}


def marked(c, marker_prefix=None):
    """Live processes of this coordinator (this run's state dir) that carry COORDINATOR_TREE."""
    out = {}
    for pid in c.tagged_pids():
        if c.running() and pid == c.proc.pid:
            continue
        tree = environ_of(pid).get("COORDINATOR_TREE")
        if tree and (marker_prefix is None or tree == marker_prefix
                     or tree.startswith(marker_prefix + "/")):
            out[pid] = tree
    return out


def full_record(c, name, index=-1, timeout=10.0):
    """The start record of `name` (the latest by default) once it lists the whole tree."""
    def find():
        recs = c.start_records(name)
        if not recs:
            return None
        rec = recs[index]
        return rec if rec.get("browser_pid") and rec.get("stream_proxy_pid") else None
    return wait_until(find, timeout)


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def cookie(state, name):
    for c in state.get("cookies", []):
        if c.get("name") == name:
            return c.get("value")
    return None


# ---------------------------------------------------------------------------
# point 1: no orphan browser, ever

class ProcessTreeTests(unittest.TestCase):

    def assert_tree_escapes_the_group(self, rec):
        tree = tree_of(rec)
        self.assertEqual(set(tree), {"launcher", "browser", "firefox", "stream_proxy"}, rec)
        launcher_group = proc_stat(tree["launcher"]).pgrp
        self.assertEqual(launcher_group, tree["launcher"], "the launcher leads its own group")
        self.assertNotEqual(proc_stat(tree["browser"]).pgrp, launcher_group, "browser in its own session")
        self.assertNotEqual(proc_stat(tree["firefox"]).pgrp, launcher_group, "firefox outside it too")
        self.assertEqual(proc_stat(tree["stream_proxy"]).pgrp, launcher_group)
        return tree

    def assert_gone(self, c, pids, timeout, what):
        left = c.wait_pids_gone(pids, timeout)
        self.assertEqual(left, [], f"{what}: still alive {[(p, c.describe_pid(p)) for p in left]}"
                                   f"\n{c.output_tail()}")

    def test_the_tree_is_marked_and_ends_when_its_child_is_drained(self):
        with Coordinator({"alpha": {}, "beta": {}}) as c:
            rec = full_record(c, "alpha")
            tree = self.assert_tree_escapes_the_group(rec)
            marker = environ_of(tree["launcher"]).get("COORDINATOR_TREE")
            self.assertRegex(marker or "", r"^\d+-[0-9a-f]{16}/0/1$")
            for role, pid in tree.items():
                self.assertEqual(environ_of(pid).get("COORDINATOR_TREE"), marker, role)
            beta = environ_of(full_record(c, "beta")["pid"]).get("COORDINATOR_TREE")
            self.assertEqual(beta.rsplit("/", 2)[0], marker.rsplit("/", 2)[0], "one fleet id")
            self.assertNotEqual(beta, marker)
            self.assertEqual(c.request("POST", "/admin/children/alpha/drain").status, 200)
            c.wait_state("alpha", "retired", 15)
            self.assert_gone(c, tree.values(), 8, "alpha's tree after a drain")
            self.assertEqual(marked(c, marker), {})
            self.assertEqual(c.child_states()["beta"], "ready")

    def test_a_restart_ends_the_old_tree_before_the_new_one_starts(self):
        with Coordinator({"alpha": {}}) as c:
            old = full_record(c, "alpha")
            tree = self.assert_tree_escapes_the_group(old)
            self.assertEqual(c.request("POST", "/admin/children/alpha/restart").status, 200)
            new = wait_until(lambda: len(c.start_records("alpha")) >= 2 and full_record(c, "alpha", 1, 0.1),
                             20)
            self.assertTrue(new, f"not restarted\n{c.output_tail()}")
            self.assert_gone(c, tree.values(), 1, "the old tree once the new child started")
            self.assertEqual(set(tree_of(new).values()) & set(tree.values()), set())
            c.wait_state("alpha", "ready", 15)

    def test_sigkill_of_the_launcher_takes_its_whole_tree(self):
        # As the OOM killer would: the browser, firefox and the SIGTERM-deaf stream proxy stay
        # behind, re-parented; the coordinator finds them by their marker and ends them.
        with Coordinator({"alpha": {}}, extra_args=["--max-restarts", "5"]) as c:
            old = full_record(c, "alpha")
            tree = self.assert_tree_escapes_the_group(old)
            t0 = time.monotonic()
            os.kill(tree["launcher"], signal.SIGKILL)
            self.assert_gone(c, tree.values(), 8, "the tree of a SIGKILLed launcher")
            note(f"SIGKILL of the launcher: its tree gone after {time.monotonic() - t0:.2f}s")
            self.assertIn("outlived the launcher", c.stderr() + c.stdout())
            e = c.wait_child("alpha", lambda e: e["state"] == "ready" and e["pid"] != tree["launcher"], 20)
            self.assertEqual((e or {}).get("state"), "ready", f"{e}\n{c.output_tail()}")

    def test_a_launcher_deaf_to_sigterm_goes_with_its_tree_after_the_stop_timeout(self):
        with Coordinator({"alpha": {"ignore_sigterm": True}}, extra_args=["--child-stop-timeout", "1"]) as c:
            old = full_record(c, "alpha")
            tree = self.assert_tree_escapes_the_group(old)
            t0 = time.monotonic()
            self.assertEqual(c.request("POST", "/admin/children/alpha/restart").status, 200)
            self.assert_gone(c, tree.values(), 10, "the tree of a launcher that ignored SIGTERM")
            took = time.monotonic() - t0
            note(f"SIGTERM ignored: the tree gone {took:.2f}s after the restart request")
            self.assertGreaterEqual(took, 0.9, "the launcher got its --child-stop-timeout")
            e = c.wait_child("alpha", lambda e: e["state"] == "ready" and e["pid"] != tree["launcher"], 20)
            self.assertEqual((e or {}).get("state"), "ready", f"{e}\n{c.output_tail()}")

    def test_shutdown_ends_every_tree(self):
        c = Coordinator({"alpha": {}, "beta": {"browser_tree": "same_group"}})
        with c:
            pids = []
            for name in ("alpha", "beta"):
                pids += tree_of(full_record(c, name)).values()
            self.assertEqual(c.stop(), 0)
            self.assert_gone(c, pids, 1, "after shutdown")
            self.assertEqual(marked(c), {})

    def test_sigkill_of_the_coordinator_leaves_nothing_after_5_s(self):
        # alpha ignores SIGTERM (the guard must SIGKILL); beta stops slowly.
        profiles = {"alpha": {"ignore_sigterm": True}, "beta": {"stop_delay": 30},
                    "gamma": {"firefox_detach": "group"}}
        with Coordinator(profiles) as c:
            pids = []
            for name in profiles:
                pids += tree_of(full_record(c, name)).values()
            self.assertGreaterEqual(len(pids), 12)
            t0 = time.monotonic()
            c.proc.kill()
            c.proc.wait(timeout=5)
            left = c.wait_pids_gone(pids, 5.0)
            left_marked = marked(c)
            note(f"kill -9 of the coordinator: {len(pids)} tree processes gone after "
                 f"{time.monotonic() - t0:.2f}s")
            self.assertEqual(left, [], [(p, c.describe_pid(p)) for p in left])
            self.assertEqual(left_marked, {})
            runtime = os.path.join(c.dir, "runtime", "coordinator")
            # Only the children's working folders stay (certs, usage; no session in them).
            self.assertTrue(wait_until(lambda: set(os.listdir(runtime)) <= {"children"}, 2),
                            f"the guard leaves no working copy behind: {os.listdir(runtime)}")

    def test_a_restart_waits_for_the_camoufox_port(self):
        # No browser here, so the test itself can hold the slot's debug port; the restart after
        # the launcher's crash waits until it is released.
        with Coordinator({"alpha": {"spawn_grandchild": False}}) as c:
            first = c.start_records("alpha")[0]
            holder = hold_port(c.camoufox_port("alpha"))
            try:
                os.kill(first["pid"], signal.SIGKILL)
                self.assertTrue(wait_until(lambda: "waiting for port(s)" in c.stderr() + c.stdout(), 10),
                                c.output_tail())
                time.sleep(1.5)
                self.assertEqual(len(c.start_records("alpha")), 1, "started while the port was taken")
                released = time.time()
            finally:
                holder.close()
            self.assertTrue(wait_until(lambda: len(c.start_records("alpha")) >= 2, 10), c.output_tail())
            second = c.start_records("alpha")[1]
            self.assertGreaterEqual(second["main_t"], released - 0.05)
            c.wait_state("alpha", "ready", 15)

    def test_max_child_rss_counts_the_whole_tree(self):
        # Calibrate with one child started by hand: the launcher's group alone, and the tree.
        group, tree = self.measure_fake_child_rss()
        note(f"fake child RSS: group {group >> 20} MiB, tree {tree >> 20} MiB")
        self.assertGreater(tree - group, 8 << 20, "the browser and firefox should hold several MiB")
        limit = group + (tree - group) // 2
        with Coordinator({"alpha": {}, "beta": {}}, health_interval=0.3,
                         extra_args=["--max-child-rss", str(limit)]) as c:
            self.assertTrue(wait_until(lambda: "its process tree uses" in c.stderr() + c.stdout(), 20),
                            f"no child recycled for its tree's RSS (limit {limit >> 20} MiB)\n"
                            f"{c.output_tail()}")

    def measure_fake_child_rss(self):
        state_dir = os.path.join("/tmp", f"rss-calibration-{uuid.uuid4().hex}")
        os.makedirs(state_dir)
        env = clean_env({"FAKE_CHILD_STATE_DIR": state_dir})
        profile = write_profile(state_dir, "calib", cookie="x")
        api, stream, debug = free_port(), free_port(), free_port()
        proc = subprocess.Popen(launcher_argv(api, stream, debug, profile), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                                start_new_session=True)
        rec = None
        try:
            self.assertTrue(wait_until(lambda: healthy(api), 15))
            for fn in os.listdir(state_dir):
                if ".start." in fn:
                    with open(os.path.join(state_dir, fn)) as f:
                        rec = json.load(f)
            pids = tree_of(rec)
            page = os.sysconf("SC_PAGE_SIZE")

            def rss(pid):
                with open(f"/proc/{pid}/statm") as f:
                    return int(f.read().split()[1]) * page
            group = sum(rss(p) for p in pids.values() if proc_stat(p).pgrp == proc.pid)
            tree = sum(rss(p) for p in pids.values())
            return group, tree
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            for pid in (tree_of(rec).values() if rec else ()):
                if pid_alive(pid):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass


# ---------------------------------------------------------------------------
# point 7: the children's environment

class ChildEnvironmentTests(unittest.TestCase):

    def test_rotation_off_limits_out_of_reach_stdin_null(self):
        with Coordinator({"alpha": {}}) as c:
            rec = full_record(c, "alpha")
            env = environ_of(rec["pid"])
            self.assertEqual(env.get("AUTO_ROTATE_AUTH_PROFILE"), "false")
            self.assertEqual(env.get("QUOTA_SOFT_LIMIT"), OUT_OF_REACH)
            self.assertEqual(env.get("QUOTA_HARD_LIMIT"), OUT_OF_REACH)
            self.assertEqual(env.get("SUPPRESS_LOGIN_WAIT"), "true")
            self.assertEqual(os.readlink(f"/proc/{rec['pid']}/fd/0"), "/dev/null")
            self.assertEqual(rec["mode"], "headless")
            self.assertEqual(rec["mode_source"], "flag", "no prompt: the mode comes from a flag")
            self.assertIn("--headless", rec["argv"])

    def test_the_operators_own_setting_wins_and_is_warned_about(self):
        with Coordinator({"alpha": {}}, env={"QUOTA_SOFT_LIMIT": "1234"}) as c:
            env = environ_of(c.start_records("alpha")[0]["pid"])
            self.assertEqual(env.get("QUOTA_SOFT_LIMIT"), "1234")
            self.assertEqual(env.get("QUOTA_HARD_LIMIT"), OUT_OF_REACH)
            self.assertIn("QUOTA_SOFT_LIMIT=1234 is set in the coordinator's environment", c.stderr())

    def test_browser_modes(self):
        for mode, flag, child_mode in (("headful", "--debug", "debug"),
                                       ("virtual-display", "--virtual-display", "virtual_headless")):
            with self.subTest(mode=mode):
                with Coordinator({"alpha": {"xvfb_check": False}}, extra_args=["--browser-mode", mode]) as c:
                    rec = c.start_records("alpha")[0]
                    self.assertEqual(rec["argv"][-1], flag)
                    self.assertNotIn("--headless", rec["argv"])
                    self.assertEqual(rec["mode"], child_mode)
                    self.assertEqual(rec["mode_source"], "flag")


# ---------------------------------------------------------------------------
# point 8: a logged-out account

class LoggedOutTests(unittest.TestCase):

    def test_needs_relogin_then_a_new_profile_and_a_reload_start_it_again(self):
        profiles = {"alpha": {"logged_out": True}, "beta": {}}
        with Coordinator(profiles, wait_ready=1, extra_args=["--max-restarts", "1"]) as c:
            e = c.wait_state("alpha", "needs_relogin", 15)
            self.assertEqual((e or {}).get("state"), "needs_relogin", f"{e}\n{c.output_tail()}")
            self.assertIn("replace alpha.json", e["last_error"])
            self.assertIn("reload", e["last_error"])
            # No restart loop, no restart budget spent, not parked.
            time.sleep(3)
            e = c.child("alpha")
            self.assertEqual(e["state"], "needs_relogin")
            self.assertEqual(e["restarts"], 0)
            self.assertEqual(len(c.start_records("alpha")), 1)
            status, body = c.ready()
            self.assertEqual(status, 200)
            self.assertEqual(body.get("needs_relogin_profiles"), ["alpha"])
            self.assertEqual(body.get("parked_profiles"), [])
            self.assertIn("alpha", body["unhealthy_children"])
            metrics = parse_metrics(c.get("/metrics").text)
            self.assertEqual(metric(metrics, "coordinator_child_state", absent=None, child="alpha",
                                    state="needs_relogin"), 1)
            self.assertEqual(metric(metrics, "coordinator_child_state", absent=None, child="beta",
                                    state="needs_relogin"), 0)
            self.assertIn("needs_relogin", c.get("/").text, "the status page styles and explains it")
            # A reload with the same file changes nothing.
            c.signal(signal.SIGHUP)
            time.sleep(1.5)
            self.assertEqual(c.child("alpha")["state"], "needs_relogin")
            self.assertEqual(len(c.start_records("alpha")), 1)
            # A fresh login: the operator replaces the file, then reloads.
            c.rewrite_profile("alpha", {})
            c.signal(signal.SIGHUP)
            e = c.wait_state("alpha", "ready", 20)
            self.assertEqual((e or {}).get("state"), "ready", f"{e}\n{c.output_tail()}")
            self.assertEqual(len(c.start_records("alpha")), 2)

    def test_a_logged_out_account_in_a_headful_browser(self):
        # With a window, the child waits for a login there (SUPPRESS_LOGIN_WAIT), then gives up.
        profiles = {"alpha": {"logged_out": True, "login_wait": 0.5}}
        with Coordinator(profiles, wait_ready=0, extra_args=["--browser-mode", "headful"]) as c:
            e = c.wait_state("alpha", "needs_relogin", 15)
            self.assertEqual((e or {}).get("state"), "needs_relogin", f"{e}\n{c.output_tail()}")
            self.assertEqual(c.events("alpha", "mode_prompt"), [])
            self.assertEqual(c.request("POST", "/admin/reload").status, 200)
            time.sleep(1)
            self.assertEqual(len(c.start_records("alpha")), 1)


# ---------------------------------------------------------------------------
# point 9: cookie write-back is not a change

class CookieWriteBackTests(unittest.TestCase):

    def test_refreshed_cookies_reach_the_operators_file_and_a_reload_keeps_the_child(self):
        with Coordinator({"alpha": {"cookie_refresh_interval": 0.3}}) as c:
            path = c.profile_paths["alpha"]
            mode = stat.S_IMODE(os.stat(path).st_mode)
            rec = full_record(c, "alpha")
            copy = rec["argv"][9]
            self.assertNotEqual(os.path.realpath(copy), os.path.realpath(path))
            self.assertEqual(stat.S_IMODE(os.stat(copy).st_mode), 0o600)
            self.assertEqual(stat.S_IMODE(os.stat(os.path.dirname(copy)).st_mode), 0o700)
            saved = c.wait_event(lambda ev: ev.get("event") == "cookies_saved", 10, "alpha")
            self.assertTrue(saved, c.output_tail())
            self.assertEqual(os.path.realpath(saved["path"]), os.path.realpath(copy),
                             "the child writes its working copy, never the operator's file")

            def refreshed():
                try:
                    return cookie(read_json(path), "SIDCC")
                except ValueError:
                    self.fail("the operator's file was seen half-written")
            value = wait_until(refreshed, 10)
            self.assertTrue(value and value.startswith(f"fake-alpha-{rec['pid']}-"), value)
            self.assertEqual(cookie(read_json(path), "__Secure-1PSID"), c.secrets["alpha"][0])
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), mode, "same mode")
            for trigger in ("SIGHUP", "POST"):
                if trigger == "SIGHUP":
                    c.signal(signal.SIGHUP)
                else:
                    self.assertEqual(c.request("POST", "/admin/reload").status, 200)
                time.sleep(1.5)
                self.assertEqual(c.child("alpha")["pid"], rec["pid"], f"restarted on {trigger}")
                self.assertEqual(len(c.start_records("alpha")), 1)
            later = cookie(read_json(path), "SIDCC")
            self.assertNotEqual(later, value, "later refreshes keep coming back")

    def test_the_last_save_of_a_clean_stop_is_copied_back(self):
        c = Coordinator({"alpha": {"cookie_refresh_interval": 3600}})
        with c:
            pid = c.start_records("alpha")[0]["pid"]
            self.assertEqual(c.stop(), 0)
            saves = [e for e in c.events("alpha", "cookies_saved") if e.get("pid") == pid]
            self.assertEqual([e["reason"] for e in saves], ["shutdown"])
            self.assertEqual(cookie(read_json(c.profile_paths["alpha"]), "SIDCC"), f"fake-alpha-{pid}-1")

    def test_an_operators_new_file_restarts_the_child_and_is_never_overwritten(self):
        with Coordinator({"alpha": {"cookie_refresh_interval": 0.2, "stop_delay": 1.0}}) as c:
            path = c.profile_paths["alpha"]
            old = full_record(c, "alpha")
            self.assertTrue(wait_until(lambda: cookie(read_json(path), "SIDCC"), 10), "no copy-back")
            fresh = f"operator-login-{uuid.uuid4().hex}"
            replace_json(path, storage_state(fresh, {"cookie_refresh_interval": 0.2}))
            # The old child keeps saving meanwhile: none of it lands in the new file.
            self.assertTrue(wait_until(
                lambda: len([e for e in c.events("alpha", "cookies_saved")
                             if e["pid"] == old["pid"] and e["t"] > time.time() - 0.5]) >= 2, 5))
            self.assertEqual(cookie(read_json(path), "__Secure-1PSID"), fresh)
            self.assertIsNone(cookie(read_json(path), "SIDCC"))
            self.assertTrue(wait_until(lambda: "was changed by someone else" in c.stderr(), 5),
                            c.output_tail())
            self.assertEqual(cookie(read_json(path), "__Secure-1PSID"), fresh)
            c.signal(signal.SIGHUP)
            new = wait_until(lambda: len(c.start_records("alpha")) >= 2 and full_record(c, "alpha", 1, 0.1),
                             20)
            self.assertTrue(new, c.output_tail())
            shutdown = [e for e in c.events("alpha", "cookies_saved")
                        if e["pid"] == old["pid"] and e["reason"] == "shutdown"]
            self.assertEqual(len(shutdown), 1, "the old child saved at its clean stop")
            self.assertEqual(cookie(read_json(new["argv"][9]), "__Secure-1PSID"), fresh,
                             "the new child starts from the operator's new file")
            c.wait_state("alpha", "ready", 15)
            # The new child's refreshes come back: they build on the operator's login.
            value = wait_until(lambda: (cookie(read_json(path), "SIDCC") or "").startswith(
                f"fake-alpha-{new['pid']}-") and cookie(read_json(path), "SIDCC"), 10)
            self.assertTrue(value, c.output_tail())
            self.assertEqual(cookie(read_json(path), "__Secure-1PSID"), fresh)


if __name__ == "__main__":
    unittest.main()
