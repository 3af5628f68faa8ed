"""Profiles through the admin API (issue 14): PUT and DELETE /admin/profiles/{name}. Stdlib only.

Run:  cd tests/integration && python3 -m unittest -v test_profile_admin

What is checked:
* PUT of a new name: 201, the file written with mode 0600, a new child on the next ports that
  becomes ready and serves a chat request; a PUT over a serving child: 200, the request in flight
  finishes, then the child restarts on a working copy of the new file (the old child's last save
  does not overwrite the upload); a second PUT before a new child's first start gives one child
  on the last file; with a full --pool-size the profile waits in the queue;
* PUT over a needs_relogin profile (the fake child's `logged_out`) or a parked one: it starts
  again and is ready; DELETE of a parked one retires it;
* with API keys, PUT and DELETE without a valid key are 401 and change nothing;
* invalid PUTs (not JSON, not an object, no cookies array, a bad name such as "../x", a body over
  1 MiB) are refused with 400/413 and leave the folder as it was (listing and bytes);
* DELETE: the child drains and its processes end, its slot is retired and out of /ready's ready
  children, the file is moved to removed/{name}.json.{UTC stamp} (folder 0700), the original path
  is gone; an unknown name is 404; a PUT of the name again starts it on its former ports;
* GET /admin/profiles after these; attach mode refuses with 409;
* no cookie value in any admin answer nor in the coordinator's output.

Every wait is bounded; each test starts its own coordinator on free 127.0.0.1 ports and ends only
the processes it started.
"""

import json
import os
import re
import stat
import sys
import threading
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (  # noqa: E402
    Coordinator, chat_body, error_of, ready_names, require_binary, served_by, storage_state,
    wait_until)

CT_JSON = {"Content-Type": "application/json"}


def setUpModule():
    require_binary()


def folder_snapshot(folder):
    """name -> (mode, bytes) of every entry of `folder` (recursively), to compare before/after."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, folder)
            if stat.S_ISDIR(st.st_mode):
                out[rel] = (stat.S_IMODE(st.st_mode), None)
            else:
                with open(path, "rb") as f:
                    out[rel] = (stat.S_IMODE(st.st_mode), f.read())
    return out


class ProfileAdminCase(unittest.TestCase):

    def setUp(self):
        self.answers = []  # every admin answer's text, checked for cookie values
        self.secrets = []

    def new_state(self, fake=None):
        """A storage state (bytes) with a distinctive cookie value, remembered for the leak check."""
        secret = f"admin-upload-secret-{uuid.uuid4().hex}"
        self.secrets += [secret, secret + "-ls"]
        return json.dumps(storage_state(secret, fake)).encode()

    def admin(self, c, method, path, body=None, headers=None):
        all_headers = dict(CT_JSON if body is not None else {})
        all_headers.update(headers or getattr(c, "admin_headers", {}))
        r = c.request(method, path, body=body, headers=all_headers, timeout=10)
        self.answers.append(r.text)
        return r

    def put(self, c, name, body, headers=None):
        return self.admin(c, "PUT", "/admin/profiles/" + name, body, headers)

    def delete(self, c, name, headers=None):
        return self.admin(c, "DELETE", "/admin/profiles/" + name, headers=headers)

    def assert_no_secret_leaked(self, c):
        secrets = self.secrets + [s for values in c.secrets.values() for s in values]
        profiles = self.admin(c, "GET", "/admin/profiles")
        self.assertEqual(profiles.status, 200, profiles)
        output = c.output()
        for secret in secrets:
            for text in self.answers:
                self.assertNotIn(secret, text, "a cookie value in an admin answer")
            self.assertNotIn(secret, output, "a cookie value in the coordinator's output")

    def coordinator_with_spare_ports(self, profiles, spares=1, **kw):
        """`profiles` plus spare ones that only reserve ports for children added later (their
        files are removed before the start)."""
        spare_names = [f"zz-spare{i}" for i in range(spares)]
        c = Coordinator({**profiles, **{n: {} for n in spare_names}},
                        wait_ready=len(profiles), **kw)
        for name in spare_names:
            os.remove(c.profile_paths[name])
        return c


class PutTests(ProfileAdminCase):

    def test_put_a_new_profile_then_replace_it_while_it_serves(self):
        with self.coordinator_with_spare_ports({"alpha": {}}) as c:
            body = self.new_state()
            r = self.put(c, "gamma", body)
            self.assertEqual(r.status, 201, r)
            answer = r.json()
            self.assertEqual((answer["success"], answer["profile"], answer["action"]),
                             (True, "gamma", "created"), answer)
            self.assertEqual(answer["child"]["name"], "gamma")
            self.assertEqual(answer["child"]["ports"]["api"], c.api_base + 1, "the next ports")
            path = os.path.join(c.profiles_dir, "gamma.json")
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
            with open(path, "rb") as f:
                self.assertEqual(f.read(), body)
            self.assertEqual(sorted(os.listdir(c.profiles_dir)), ["alpha.json", "gamma.json"],
                             "no temporary file left")
            e = c.wait_state("gamma", "ready", 20)
            self.assertEqual((e or {}).get("state"), "ready", f"{e}\n{c.output_tail()}")
            # Only gamma serves now: alpha is drained.
            self.assertEqual(c.request("POST", "/admin/children/alpha/drain").status, 200)
            wait_until(lambda: c.child("alpha")["state"] == "retired", 10)
            r = c.chat("to the new child")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(served_by(r), "gamma")
            first_pid = c.child("gamma")["pid"]

            # Replace it while a request is in flight: that request finishes, then it restarts.
            slow = {}

            def slow_chat():
                slow["r"] = c.post_json("/v1/chat/completions", chat_body("slow", fake_duration=2),
                                        timeout=20)
            t = threading.Thread(target=slow_chat)
            t.start()
            self.assertTrue(wait_until(lambda: c.child("gamma")["in_flight"] == 1, 5),
                            "the slow request never reached gamma")
            new_body = self.new_state({"chat_delay": 0.01})
            r = self.put(c, "gamma", new_body)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["action"], "replaced")
            self.assertEqual(r.json()["child"]["state"], "draining")
            t.join(20)
            self.assertFalse(t.is_alive())
            self.assertEqual(slow["r"].status, 200, f"{slow['r']}: the request in flight was cut")
            e = c.wait_child("gamma", lambda e: e["state"] == "ready" and e["pid"] != first_pid, 20)
            self.assertTrue(e and e["pid"] != first_pid, f"{c.child('gamma')}\n{c.output_tail()}")
            self.assertEqual(c.wait_pids_gone([first_pid], 10), [])
            self.assertEqual(len(c.start_records("gamma")), 2)
            # The old child's last cookie save did not land on the upload, and the new child
            # runs on a working copy made from the upload.
            with open(path, "rb") as f:
                self.assertEqual(f.read(), new_body)
            running_path = c.start_records("gamma")[-1]["profile_path"]
            self.assertNotEqual(os.path.realpath(running_path), os.path.realpath(path))
            with open(running_path) as f:
                running = json.load(f)
            uploaded = json.loads(new_body)
            self.assertEqual([k["value"] for k in running["cookies"] if k["name"] == "__Secure-1PSID"],
                             [uploaded["cookies"][0]["value"]])
            self.assertEqual(c.chat("again").status, 200)
            self.assert_no_secret_leaked(c)

    def test_put_over_a_needs_relogin_profile_starts_it_again(self):
        with Coordinator({"alpha": {"logged_out": True}, "beta": {}}, wait_ready=1) as c:
            e = c.wait_state("alpha", "needs_relogin", 15)
            self.assertEqual((e or {}).get("state"), "needs_relogin", f"{e}\n{c.output_tail()}")
            self.assertEqual(len(c.start_records("alpha")), 1)
            r = self.put(c, "alpha", self.new_state())
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["action"], "replaced")
            e = c.wait_state("alpha", "ready", 20)
            self.assertEqual((e or {}).get("state"), "ready", f"{e}\n{c.output_tail()}")
            self.assertEqual(len(c.start_records("alpha")), 2)
            _, ready = c.ready()
            self.assertIn("alpha", ready_names(ready))
            self.assertEqual(ready.get("needs_relogin_profiles"), [])
            self.assert_no_secret_leaked(c)

    def test_put_over_a_parked_profile_starts_it_and_delete_retires_a_parked_one(self):
        profiles = {"alpha": {"crash_on_start": True}, "beta": {}, "gamma": {"crash_on_start": True}}
        with Coordinator(profiles, wait_ready=1, extra_args=["--max-restarts", "0"]) as c:
            for name in ("alpha", "gamma"):
                e = c.wait_state(name, "failed", 20)
                self.assertEqual((e or {}).get("state"), "failed", f"{e}\n{c.output_tail()}")
            r = self.put(c, "alpha", self.new_state())
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["action"], "replaced")
            e = c.wait_state("alpha", "ready", 20)
            self.assertEqual((e or {}).get("state"), "ready", f"{e}\n{c.output_tail()}")
            r = self.delete(c, "gamma")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["child"]["state"], "retired")
            self.assertFalse(os.path.exists(c.profile_paths["gamma"]))
            _, ready = c.ready()
            self.assertEqual(sorted(ready_names(ready)), ["alpha", "beta"])
            self.assertEqual(ready.get("parked_profiles"), [])
            self.assert_no_secret_leaked(c)

    def test_two_quick_puts_of_a_new_name_give_one_child_on_the_last_file(self):
        with self.coordinator_with_spare_ports({"alpha": {}}, start_stagger=5) as c:
            # --start-stagger keeps gamma's first start pending while the second PUT lands.
            self.assertEqual(self.put(c, "gamma", self.new_state()).status, 201)
            last = self.new_state()
            r = self.put(c, "gamma", last)
            self.assertEqual(r.status, 200, r)
            e = c.wait_state("gamma", "ready", 20)
            self.assertEqual((e or {}).get("state"), "ready", f"{e}\n{c.output_tail()}")
            self.assertEqual([e["name"] for e in c.children()], ["alpha", "gamma"])
            self.assertEqual(len(c.start_records("gamma")), 1)
            with open(c.start_records("gamma")[0]["profile_path"], "rb") as f:
                self.assertEqual(json.loads(f.read())["cookies"], json.loads(last)["cookies"])
            self.assert_no_secret_leaked(c)

    def test_with_a_full_pool_a_new_profile_waits_in_the_queue(self):
        with Coordinator({"alpha": {}, "beta": {}}, wait_ready=1,
                         extra_args=["--pool-size", "1"]) as c:
            _, ready = c.ready()
            self.assertEqual(ready.get("queued_profiles"), ["beta"])
            r = self.put(c, "gamma", self.new_state())
            self.assertEqual(r.status, 201, r)
            self.assertEqual(r.json()["child"], {"state": "queued"})
            r = self.put(c, "beta", self.new_state())
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["child"], {"state": "queued"})
            _, ready = c.ready()
            self.assertEqual(ready.get("queued_profiles"), ["beta", "gamma"])
            r = self.delete(c, "gamma")
            self.assertEqual(r.status, 200, r)
            self.assertNotIn("child", r.json())
            self.assertTrue(os.path.exists(r.json()["moved_to"]))
            _, ready = c.ready()
            self.assertEqual(ready.get("queued_profiles"), ["beta"])
            self.assertEqual([e["name"] for e in c.children()], ["alpha"])
            self.assert_no_secret_leaked(c)

    def test_invalid_puts_are_refused_and_write_nothing(self):
        with Coordinator({"alpha": {}}) as c:
            before = folder_snapshot(c.profiles_dir)
            outside_before = sorted(os.listdir(c.dir))
            good = self.new_state()
            cases = [
                ("alpha", b"{not json", 400, "not JSON"),
                ("alpha", b"[1, 2]", 400, "not a JSON object"),
                ("alpha", b'{"origins": []}', 400, "no \"cookies\" array"),
                ("newone", b'{"cookies": {"value": "x"}}', 400, "no \"cookies\" array"),
                ("newone", b'{"cookies": ["x"]}', 400, "not an object"),
                ("newone", b'{"cookies": [], "origins": {}}', 400, "\"origins\""),
                ("alpha", b"", 400, "not JSON"),
                ("../x", good, 400, "name"),
                ("..", good, 400, "name"),
                (".hidden", good, 400, "name"),
                ("a" * 65, good, 400, "64"),
                ("bad%2Fname", good, 400, "name"),
                ("alpha", b'{"cookies": [], "pad": "' + b"x" * (1 << 20) + b'"}', 413, "1 MiB"),
            ]
            for name, body, status, words in cases:
                r = self.put(c, name, body)
                self.assertEqual(r.status, status, f"{name}: {r}")
                err = error_of(r)
                self.assertIn(words, err.get("message", ""), f"{name}: {r}")
                self.assertEqual(folder_snapshot(c.profiles_dir), before, f"{name}: the folder changed")
            self.assertEqual(sorted(os.listdir(c.dir)), outside_before, "something was written outside")
            # Other methods on a profile: 405 with the methods it takes.
            r = self.admin(c, "GET", "/admin/profiles/alpha")
            self.assertEqual(r.status, 405, r)
            self.assertEqual(r.headers.get("allow"), "PUT, DELETE")
            # alpha kept serving on its old file.
            self.assertEqual(c.child("alpha")["state"], "ready")
            self.assertEqual(len(c.start_records("alpha")), 1)
            self.assert_no_secret_leaked(c)

    def test_attach_mode_refuses(self):
        with Coordinator({}, attach={"up": {}}) as c:
            r = self.put(c, "alpha", self.new_state())
            self.assertEqual(r.status, 409, r)
            self.assertIn("attach mode", error_of(r).get("message", "").lower())
            r = self.delete(c, "up")
            self.assertEqual(r.status, 409, r)
            self.assert_no_secret_leaked(c)


class AccessTests(ProfileAdminCase):

    def test_with_api_keys_a_key_is_needed(self):
        key = f"admin-key-{uuid.uuid4().hex}"
        self.secrets.append(key)
        c = self.coordinator_with_spare_ports({"alpha": {}}, extra_args=["--api-keys-file", "keys.txt"])
        with open(os.path.join(c.dir, "keys.txt"), "w") as f:
            f.write(key + "\n")
        with c:
            before = folder_snapshot(c.profiles_dir)
            for headers in ({"Authorization": "Bearer wrong"}, {"X-API-Key": "wrong"}):
                for r in (self.put(c, "gamma", self.new_state(), headers),
                          self.delete(c, "alpha", headers)):
                    self.assertEqual(r.status, 401, r)
                    self.assertEqual(error_of(r)["code"], "invalid_api_key")
            self.assertEqual(folder_snapshot(c.profiles_dir), before, "written without a key")
            self.assertEqual(c.child("alpha")["state"], "ready")
            c.admin_headers = {"Authorization": "Bearer " + key}
            r = self.put(c, "gamma", self.new_state())
            self.assertEqual(r.status, 201, r)
            e = c.wait_state("gamma", "ready", 20)
            self.assertEqual((e or {}).get("state"), "ready", f"{e}\n{c.output_tail()}")
            self.assert_no_secret_leaked(c)


class DeleteTests(ProfileAdminCase):

    def test_delete_drains_stops_and_moves_the_file_aside(self):
        with Coordinator({"alpha": {}, "beta": {}}) as c:
            beta = c.child("beta")
            pids = [beta["pid"]] + c.grandchild_pids("beta")
            original = c.profile_paths["beta"]
            with open(original, "rb") as f:
                content = f.read()
            r = self.delete(c, "beta")
            self.assertEqual(r.status, 200, r)
            answer = r.json()
            self.assertEqual((answer["success"], answer["profile"], answer["action"]),
                             (True, "beta", "removed"), answer)
            moved_to = answer["moved_to"]
            removed_dir = os.path.join(c.profiles_dir, "removed")
            self.assertEqual(os.path.dirname(moved_to), removed_dir)
            self.assertRegex(os.path.basename(moved_to), r"^beta\.json\.\d{8}T\d{6}Z$")
            self.assertFalse(os.path.exists(original))
            with open(moved_to, "rb") as f:
                self.assertEqual(f.read(), content, "moved, not rewritten")
            self.assertEqual(stat.S_IMODE(os.stat(removed_dir).st_mode), 0o700)
            # Its processes end; its slot is retired and out of the ready children.
            self.assertEqual(c.wait_pids_gone(pids, 15), [], c.output_tail())
            e = c.wait_state("beta", "retired", 10)
            self.assertEqual((e or {}).get("state"), "retired", f"{e}\n{c.output_tail()}")
            _, ready = c.ready()
            self.assertNotIn("beta", ready_names(ready))
            self.assertEqual(ready_names(ready), ["alpha"])
            served = {served_by(c.chat("x")) for _ in range(4)}
            self.assertEqual(served, {"alpha"})
            profiles = self.admin(c, "GET", "/admin/profiles").json()["profiles"]
            self.assertEqual([p["name"] for p in profiles], ["alpha"])
            # A reload does not bring it back; an unknown name is 404.
            self.assertEqual(c.request("POST", "/admin/reload").status, 200)
            self.assertEqual(c.child("beta")["state"], "retired")
            for name in ("beta", "nobody"):
                r = self.delete(c, name)
                self.assertEqual(r.status, 404, f"{name}: {r}")
            self.assertEqual(sorted(os.listdir(removed_dir)), [os.path.basename(moved_to)])
            self.assertEqual(self.delete(c, "../alpha").status, 400)
            self.assertTrue(os.path.exists(c.profile_paths["alpha"]))
            # Uploaded again: a new file (201), its former slot and ports.
            r = self.put(c, "beta", self.new_state())
            self.assertEqual(r.status, 201, r)
            self.assertEqual(r.json()["child"]["ports"], beta["ports"])
            e = c.wait_state("beta", "ready", 20)
            self.assertEqual((e or {}).get("state"), "ready", f"{e}\n{c.output_tail()}")
            profiles = self.admin(c, "GET", "/admin/profiles").json()["profiles"]
            self.assertEqual(sorted(p["name"] for p in profiles), ["alpha", "beta"])
            self.assertTrue(all(p["cookies"] == 1 for p in profiles), profiles)
            self.assertTrue(re.search(r"admin DELETE profile beta", c.output()), c.output_tail())
            # A profile that is a symbolic link: the link is moved, its target stays.
            target = os.path.join(c.dir, "elsewhere.json")
            with open(target, "wb") as f:
                f.write(self.new_state())
            link = os.path.join(c.profiles_dir, "omega.json")
            os.symlink(target, link)
            r = self.delete(c, "omega")
            self.assertEqual(r.status, 200, r)
            self.assertFalse(os.path.lexists(link))
            self.assertTrue(os.path.islink(r.json()["moved_to"]))
            self.assertTrue(os.path.isfile(target))
            self.assert_no_secret_leaked(c)


if __name__ == "__main__":
    unittest.main()
