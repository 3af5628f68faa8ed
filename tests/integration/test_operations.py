"""Black-box integration tests of the operations features (issue 6). Stdlib only
(plus `promtool` from the Debian package ``prometheus`` for one test, skipped without it).

Run:  cd tests/integration && python3 -m unittest -v test_operations
The binary is $COORDINATOR_BIN (default <repo>/build/coordinator); the fake child is
tests/fixtures/fake_child/launch_camoufox.py (see docs/fake-child-contract.md).

What is checked:
* ``--config FILE`` / COORDINATOR_CONFIG: values, precedence (command line > environment >
  file > defaults), ``coordinator: error: FILE:LINE: reason`` and exit 2 for a bad file,
  ``--print-config``, the shipped example config/coordinator.toml (parses, lists every
  option of --help, its commented defaults are the real defaults), a coordinator run from a
  config file alone;
* ``--shard K/N``;
* API keys (``--api-keys-file``, ``--protect-metrics``): 401 + WWW-Authenticate, Bearer and
  X-API-Key, open endpoints, forwarding to the child, no AUTH_KEY_FILE_PATH, re-read on SIGHUP
  and POST /admin/reload, keys never logged;
* ``GET /metrics`` (promtool check metrics, values that move);
* X-Request-Id (kept / generated / returned / forwarded) and the access log line, text and json;
* the admin API (children, drain, undrain, restart, unknown child, refused actions,
  ``--admin-remote`` accepted).  The 403 for non-loopback clients is NOT tested: these tests
  talk to 127.0.0.1 only, and a loopback client can never be non-loopback;
* live reload (a profile added / removed / changed / broken) by POST /admin/reload and SIGHUP;
* ``--max-connections``;
* sd_notify: READY=1, WATCHDOG=1 every WATCHDOG_USEC/2, STOPPING=1, on a private AF_UNIX
  datagram socket given as NOTIFY_SOCKET.

Every wait is bounded; each test starts its own coordinator over fake children in a private
temp dir, and the harness fails a test that leaves a process behind.
"""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (  # noqa: E402
    CHILD_STATES, HELP_TEXT, HOST, REPO_ROOT, Background, Coordinator, RawConnection, chat_body, metric,
    parse_metrics, parse_print_config, pid_alive, raw_exchange, ready_names, require_binary,
    run_binary, served_by, wait_until, write_profile)

EXAMPLE_CONFIG = REPO_ROOT / "config" / "coordinator.toml"
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
HEX16_RE = re.compile(r"^[0-9a-f]{16}$")
ACCESS_RE = re.compile(
    r"access (?P<method>\S+) (?P<path>\S+) (?P<status>\d{3}) child=(?P<child>\S+) "
    r"(?P<ms>[0-9]+(?:\.[0-9]+)?) ?ms bytes=(?P<bytes>\d+) id=(?P<id>\S+)\s*$")
# Options of --help that are not configuration values.
NOT_CONFIG_OPTIONS = {"help", "config", "print-config"}


def setUpModule():
    require_binary()


# ---------------------------------------------------------------------------
# helpers

def help_options():
    """Long option names listed by --help (without --)."""
    return re.findall(r"^\s+(?:-\w,)?--([a-z][a-z0-9-]*)", HELP_TEXT, re.M)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def new_key(tag="op"):
    return f"sk-{tag}-{uuid.uuid4().hex}"


def status_or_none(fn):
    """fn() -> Response; its status, or None when the coordinator cannot be reached."""
    try:
        return fn().status
    except (OSError, http.client.HTTPException):
        return None


def access_lines(c):
    """Parsed text access log lines of coordinator `c` (list of match dicts)."""
    out = []
    for line in c.stderr().splitlines():
        m = ACCESS_RE.search(line)
        if m:
            out.append(m.groupdict())
    return out


def wait_access_line(c, request_id, timeout=5.0):
    def find():
        for rec in access_lines(c):
            if rec["id"] == request_id:
                return rec
        return None
    return wait_until(find, timeout)


class NotifySocket:
    """A private AF_UNIX datagram socket for NOTIFY_SOCKET; collects (time, message)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="coord-notify-")
        self.path = os.path.join(self.dir, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.05)
        self.messages = []  # (monotonic time, [lines])

    def poll(self, duration):
        """Receive for `duration` seconds."""
        end = time.monotonic() + duration
        while time.monotonic() < end:
            self._recv_one()

    def _recv_one(self):
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return None
        entry = (time.monotonic(), data.decode("utf-8", "replace").split("\n"))
        self.messages.append(entry)
        return entry

    def wait_for(self, line, timeout):
        """Receive until a datagram holds `line`; returns its arrival time or None."""
        for t, lines in self.messages:
            if line in lines:
                return t
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            got = self._recv_one()
            if got and line in got[1]:
                return got[0]
        return None

    def times(self, line):
        return [t for t, lines in self.messages if line in lines]

    def close(self):
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------
# --config, --print-config

class ConfigFileTests(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="coord-config-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def print_config(self, args, env=None):
        r = run_binary(list(args) + ["--print-config"], env=env, cwd=self.tmp)
        self.assertEqual(r.returncode, 0, f"--print-config failed: {r.stderr}")
        return parse_print_config(r.stdout)

    def test_file_values_and_print_config(self):
        path = write(os.path.join(self.tmp, "c.toml"), "\n".join([
            "# a comment line",
            "[coordinator]",
            "coordinator-port = 2999  # a trailing comment",
            'upstream = ["a=http://127.0.0.1:1", "b=http://127.0.0.1:2"]',
            "no-headless = true",
            "health-interval = 2.5",
            'log-dir = "/var/log/x#y"',
            "",
        ]))
        r = run_binary(["--config", path, "--print-config"], cwd=self.tmp)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr.strip(), "", "--print-config wrote to stderr")
        lines = [ln for ln in r.stdout.splitlines() if ln.strip() and not ln.startswith("#")]
        for ln in lines:
            self.assertRegex(ln, r"^[a-z][a-z0-9-]*=", "--print-config prints key=value lines")
        cfg = parse_print_config(r.stdout)
        self.assertEqual(cfg["coordinator-port"], "2999")
        self.assertEqual(cfg["no-headless"], "true")
        self.assertEqual(float(cfg["health-interval"]), 2.5)
        self.assertEqual(cfg["log-dir"], "/var/log/x#y")
        self.assertIn("a=http://127.0.0.1:1", cfg["upstream"])
        self.assertIn("b=http://127.0.0.1:2", cfg["upstream"])
        # Untouched options keep their defaults, and every option of --help is printed.
        self.assertEqual(cfg["base-api-port"], "3100")
        self.assertEqual(cfg["balance"], "least-busy")
        missing = [o for o in help_options() if o not in NOT_CONFIG_OPTIONS and o not in cfg]
        self.assertEqual(missing, [], "options of --help missing from --print-config")

    def test_precedence_command_line_over_environment_over_file_over_defaults(self):
        path = write(os.path.join(self.tmp, "c.toml"), "\n".join([
            "coordinator-port = 3001",
            "base-api-port = 4001",
            "base-stream-port = 5001",
            'log-dir = "/from/file"',
            "no-headless = true",
            "",
        ]))
        env = {"COORDINATOR_PORT": "3002", "BASE_API_PORT": "4002"}
        cfg = self.print_config(["--config", path, "--coordinator-port", "3003"], env=env)
        self.assertEqual(cfg["coordinator-port"], "3003", "command line > environment > file")
        self.assertEqual(cfg["base-api-port"], "4002", "environment > file")
        self.assertEqual(cfg["base-stream-port"], "5001", "file > default")
        self.assertEqual(cfg["log-dir"], "/from/file", "file > default")
        self.assertEqual(cfg["no-headless"], "true", "boolean from the file")
        self.assertEqual(cfg["base-camoufox-port"], "9222", "default")
        # Command line over file without any environment.
        cfg = self.print_config(["--config", path, "--base-stream-port", "5003"])
        self.assertEqual(cfg["base-stream-port"], "5003")
        self.assertEqual(cfg["coordinator-port"], "3001")

    def test_an_empty_environment_variable_does_not_hide_the_file(self):
        # `COORDINATOR_PORT=` (e.g. a blanked line of a systemd EnvironmentFile or a docker
        # --env-file) is not a value: the file's value applies, as if the variable were unset.
        path = write(os.path.join(self.tmp, "c.toml"), "coordinator-port = 3001\n")
        cfg = self.print_config(["--config", path], env={"COORDINATOR_PORT": ""})
        self.assertEqual(cfg["coordinator-port"], "3001")

    def test_config_file_from_environment_and_command_line_wins(self):
        a = write(os.path.join(self.tmp, "a.toml"), "coordinator-port = 3101\n")
        b = write(os.path.join(self.tmp, "b.toml"), "coordinator-port = 3102\n")
        cfg = self.print_config([], env={"COORDINATOR_CONFIG": a})
        self.assertEqual(cfg["coordinator-port"], "3101", "COORDINATOR_CONFIG is read")
        cfg = self.print_config(["--config", b], env={"COORDINATOR_CONFIG": a})
        self.assertEqual(cfg["coordinator-port"], "3102", "--config over COORDINATOR_CONFIG")

    def assert_file_error(self, text, line, must_mention=()):
        path = write(os.path.join(self.tmp, "bad.toml"), text)
        r = run_binary(["--config", path, "--print-config"], cwd=self.tmp)
        err = r.stderr.strip()
        self.assertEqual(r.returncode, 2, f"exit code for {text!r}: stderr {err!r}")
        self.assertEqual(r.stdout, "", "nothing on stdout for a bad file")
        self.assertEqual(len(err.splitlines()), 1, f"one line on stderr, got {err!r}")
        self.assertRegex(err, "^coordinator: error: " + re.escape(path) + f":{line}: .+$",
                         f"message for {text!r}")
        for word in must_mention:
            self.assertIn(word, err)

    def test_bad_file_syntax(self):
        self.assert_file_error("# ok\n\ncoordinator-port 2048\n", 3)
        self.assert_file_error('# ok\nlog-dir = "unterminated\n', 2)
        self.assert_file_error('upstream = ["http://127.0.0.1:1"\n', 1)

    def test_bad_file_unknown_key(self):
        self.assert_file_error("# ok\ncoordinator-port = 2048\n\nno-such-option = 1\n", 4,
                               ["no-such-option"])
        # The flags that are not settings are refused in a file too.
        self.assert_file_error("config = \"other.toml\"\n", 1, ["config"])

    def test_bad_file_value(self):
        cases = [("# ok\ncoordinator-port = 99999\n", 2, "coordinator-port"),
                 ('coordinator-port = "abc"\n', 1, "coordinator-port"),
                 ('\n\nbalance = "sideways"\n', 3, "balance"),
                 ("no-headless = maybe\n", 1, "no-headless"),
                 ("health-interval = -1\n", 1, "health-interval")]
        for text, line, key in cases:
            with self.subTest(text=text):
                self.assert_file_error(text, line, [key])

    def test_bad_file_value_checked_after_parsing_still_names_file_and_line(self):
        # Values validated by the coordinator itself (not by the flag parser) must be
        # reported with FILE:LINE too.
        cases = [('# ok\nupstream = ["ftp://127.0.0.1:1"]\n', 2, "upstream"),
                 ('shard = "5/2"\n', 1, "shard"),
                 ('\nmax-child-rss = "lots"\n', 2, "max-child-rss")]
        for text, line, key in cases:
            with self.subTest(text=text):
                self.assert_file_error(text, line, [key])

    def test_unreadable_file(self):
        missing = os.path.join(self.tmp, "missing.toml")
        r = run_binary(["--config", missing, "--print-config"], cwd=self.tmp)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertTrue(r.stderr.startswith("coordinator: error: "), r.stderr)
        self.assertIn(missing, r.stderr)

    def test_example_config_parses_and_lists_every_option_with_its_default(self):
        self.assertTrue(EXAMPLE_CONFIG.is_file(), f"{EXAMPLE_CONFIG} missing")
        defaults = self.print_config([])
        # 1. It parses, and as shipped (everything commented out) changes nothing.
        shipped = self.print_config(["--config", str(EXAMPLE_CONFIG)])
        # --print-config leaves out --config itself, so the output is a usable config file.
        self.assertNotIn("config", shipped)
        self.assertEqual(shipped, defaults, "the shipped example must leave the defaults alone")
        # 2. Every option of --help is in it.
        text = EXAMPLE_CONFIG.read_text()
        keys = set(re.findall(r"^#?\s*(?:example:\s*)?([a-z][a-z0-9-]*)\s*=", text, re.M))
        missing = [o for o in help_options() if o not in NOT_CONFIG_OPTIONS and o not in keys]
        self.assertEqual(missing, [], f"options of --help missing from {EXAMPLE_CONFIG}")
        # 3. Uncommenting every "# key = value" line gives a valid file with the same values:
        #    the documented defaults are the real ones.
        uncommented = re.sub(r"^# ([a-z][a-z0-9-]*) = ", r"\1 = ", text, flags=re.M)
        path = write(os.path.join(self.tmp, "uncommented.toml"), uncommented)
        active = re.findall(r"^([a-z][a-z0-9-]*) = ", uncommented, re.M)
        self.assertGreaterEqual(len(active), len(help_options()) - len(NOT_CONFIG_OPTIONS) - 2,
                                "every option but upstream and webhook has a '# key = default' line")
        values = self.print_config(["--config", path])
        self.assertNotIn("config", values)
        self.assertEqual(values, defaults, "a '# key = value' line differs from the default")

    def test_a_coordinator_runs_from_a_config_file_alone(self):
        c = Coordinator({"alpha": {}, "beta": {}}, args_override=[])
        path = os.path.join(c.dir, "coordinator.toml")
        write(path, "\n".join([
            "# everything from the file",
            "[coordinator]",
            f'profiles = "{c.profiles_dir}"',
            f'launcher = "{c.launcher}"',
            f'python = "{c.python}"',
            f'coordinator-host = "{HOST}"',
            f"coordinator-port = {c.port}",
            f"base-api-port = {c.api_base}",
            f"base-stream-port = {c.stream_base}",
            f"base-camoufox-port = {c.camoufox_base}",
            f'log-dir = "{c.log_dir}"',
            "health-interval = 0.2",
            "start-stagger = 0",
            "",
        ]))
        c.args_override = ["--config", path]
        with c:
            self.assertEqual(sorted(ready_names(c.get("/ready").json())), ["alpha", "beta"])
            rec = c.start_records("alpha")[0]
            self.assertIn(str(c.api_base), rec["argv"])
            self.assertTrue(os.path.exists(c.child_log_path("alpha")), "log-dir from the file")


# ---------------------------------------------------------------------------
# --shard

class ShardTests(unittest.TestCase):

    def test_shard_keeps_every_nth_profile_with_ports_from_the_base(self):
        profiles = {f"p{i}": {} for i in range(5)}
        with Coordinator(profiles, extra_args=["--shard", "1/2"], wait_ready=2) as c:
            body = c.get("/ready").json()
            self.assertEqual(body["total_children"], 2, body)
            self.assertEqual(sorted(ready_names(body)), ["p1", "p3"])
            kept = {e["name"]: e for e in c.children()}
            self.assertEqual(sorted(kept), ["p1", "p3"])
            self.assertEqual(kept["p1"]["ports"]["api"], c.api_base, "first kept profile: base")
            self.assertEqual(kept["p3"]["ports"]["api"], c.api_base + 1)
            self.assertEqual(kept["p3"]["ports"]["stream"], c.stream_base + 1)
            self.assertEqual(kept["p3"]["ports"]["camoufox"], c.camoufox_base + 1)
            time.sleep(0.3)
            started = sorted({r["name"] for r in c.start_records()})
            self.assertEqual(started, ["p1", "p3"], "only the shard's profiles are started")
            rec = c.start_records("p1")[0]
            self.assertEqual(rec["ports"]["api"], c.api_base)
            r = c.chat("hi")
            self.assertEqual(r.status, 200, r)
            self.assertIn(served_by(r), ("p1", "p3"))

    def test_shard_zero_of_two(self):
        profiles = {f"p{i}": {} for i in range(5)}
        with Coordinator(profiles, extra_args=["--shard", "0/2"], wait_ready=3) as c:
            self.assertEqual(sorted(c.child_states()), ["p0", "p2", "p4"])
            self.assertEqual(c.child("p4")["ports"]["api"], c.api_base + 2)

    def test_bad_shard_values_exit_2(self):
        for value in ("2/2", "3/3", "1/1", "-1/2", "1", "a/b", "0/0"):
            with self.subTest(value=value):
                r = run_binary(["--shard", value, "--print-config"])
                self.assertEqual(r.returncode, 2, f"--shard {value}: {r.stderr}")
                self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)


# ---------------------------------------------------------------------------
# API keys

class ApiKeyTests(unittest.TestCase):

    def keyed(self, profiles, keys, extra=(), relative=True, **kw):
        """A Coordinator whose keys file (keys.txt in its dir) holds `keys`."""
        c = Coordinator(profiles, extra_args=["--api-keys-file", "keys.txt"] + list(extra), **kw)
        c.keys_path = os.path.join(c.dir, "keys.txt")
        if not relative:
            c.extra_args[1] = c.keys_path
        write(c.keys_path, "# API keys\n\n" + "".join(f"{k}\n" for k in keys) + "  # indented\n")
        return c

    def assert_401(self, r, what):
        self.assertEqual(r.status, 401, f"{what}: {r!r}")
        self.assertEqual(r.json()["error"]["code"], "invalid_api_key", what)
        self.assertIn("bearer", r.headers.get("www-authenticate", "").lower(), what)
        self.assertTrue(r.headers.get("x-request-id"), f"{what}: X-Request-Id on a 401")

    def test_keys_required_on_v1_and_admin_and_forwarded(self):
        k1, k2, wrong = new_key("one"), new_key("two"), new_key("wrong")
        with self.keyed({"alpha": {}}, [k1, k2]) as c:
            body = chat_body()
            for what, headers in [("no key", None),
                                  ("wrong bearer", {"Authorization": f"Bearer {wrong}"}),
                                  ("wrong X-API-Key", {"X-API-Key": wrong}),
                                  ("key without Bearer", {"Authorization": k1}),
                                  ("empty bearer", {"Authorization": "Bearer "})]:
                self.assert_401(c.post_json("/v1/chat/completions", body, headers=headers),
                                f"chat, {what}")
            self.assert_401(c.get("/v1/models"), "/v1/models without a key")
            self.assert_401(c.get("/admin/children"), "/admin/children without a key")
            self.assert_401(c.request("POST", "/admin/reload"), "/admin/reload without a key")
            self.assertEqual(c.chat_requests("alpha"), [], "a refused request reaches no child")

            r = c.chat("hi", headers={"Authorization": f"Bearer {k1}"})
            self.assertEqual(r.status, 200, r)
            r = c.chat("hi", headers={"X-API-Key": k2})
            self.assertEqual(r.status, 200, r)
            r = c.get("/v1/models", headers={"Authorization": f"Bearer {k2}"})
            self.assertEqual(r.status, 200, r)
            r = c.get("/admin/children", headers={"X-API-Key": k1})
            self.assertEqual(r.status, 200, r)

            # The client's key goes on to the child.
            seen = c.chat_requests("alpha")
            self.assertEqual(len(seen), 2, seen)
            self.assertEqual(seen[0]["headers"].get("authorization"), f"Bearer {k1}")
            self.assertEqual(seen[1]["headers"].get("x-api-key"), k2)

            # Open endpoints.
            for path in ("/live", "/ready", "/health", "/metrics"):
                self.assertEqual(c.get(path).status, 200, f"{path} stays open")

            # The coordinator is the one key check: the real child ignores AUTH_KEY_FILE_PATH
            # (it reads only its own auth_profiles/key.txt), so none is passed.
            env = c.start_records("alpha")[0]["env"]
            self.assertNotIn("AUTH_KEY_FILE_PATH", env)
            c.stop()
            self.assert_no_key_logged(c, [k1, k2, wrong])

    def assert_no_key_logged(self, c, keys):
        for path in c.all_log_files():
            with open(path, "rb") as f:
                data = f.read()
            for key in keys:
                self.assertNotIn(key.encode(), data, f"API key found in {path}")

    def test_no_keys_file_means_no_key_needed_and_no_env(self):
        with Coordinator({"alpha": {}}) as c:
            self.assertEqual(c.chat("hi").status, 200)
            self.assertEqual(c.get("/admin/children").status, 200)
            self.assertNotIn("AUTH_KEY_FILE_PATH", c.start_records("alpha")[0]["env"])

    def test_protect_metrics(self):
        key = new_key()
        with self.keyed({"alpha": {}}, [key], extra=["--protect-metrics"]) as c:
            self.assert_401(c.get("/metrics"), "/metrics with --protect-metrics")
            r = c.get("/metrics", headers={"Authorization": f"Bearer {key}"})
            self.assertEqual(r.status, 200, r)
            self.assertIn("coordinator_", r.text)
            for path in ("/live", "/ready", "/health"):
                self.assertEqual(c.get(path).status, 200, f"{path} stays open")

    def reload_keys_and_check(self, c, old, new, trigger):
        write(c.keys_path, f"# rotated\n{new}\n")
        trigger()

        def new_accepted():
            return (not c.running()
                    or status_or_none(lambda: c.chat("hi", headers={"X-API-Key": new})) == 200)
        wait_until(new_accepted, 5)
        self.assertTrue(c.running(), f"the coordinator exited on reload (rc={c.proc.returncode})"
                                     f"\n{c.output_tail(8)}")
        self.assertEqual(c.chat("hi", headers={"X-API-Key": new}).status, 200,
                         "the new key is not accepted after reload")
        r = c.chat("hi", headers={"Authorization": f"Bearer {old}"})
        self.assert_401(r, "the old key after reload")
        # A child started from now on still gets the same key file path.
        self.assertTrue(c.running())

    def test_sighup_rereads_the_keys_file(self):
        old, new = new_key("old"), new_key("new")
        with self.keyed({"alpha": {}}, [old]) as c:
            self.assertEqual(c.chat("hi", headers={"X-API-Key": old}).status, 200)
            self.reload_keys_and_check(c, old, new, lambda: c.signal(signal.SIGHUP))
            c.stop()
            self.assert_no_key_logged(c, [old, new])

    def test_admin_reload_rereads_the_keys_file_and_a_bad_file_keeps_the_old_keys(self):
        old, new = new_key("old"), new_key("new")
        with self.keyed({"alpha": {}}, [old], relative=False) as c:
            hdr = {"Authorization": f"Bearer {old}"}
            self.assertEqual(c.chat("hi", headers=hdr).status, 200)
            # A keys file without any key: the reload reports it and keeps the old keys.
            write(c.keys_path, "# nothing here\n\n")
            r = c.request("POST", "/admin/reload", headers=hdr)
            self.assertIn(r.status, (200, 500, 409, 400), r)
            self.assertEqual(c.chat("hi", headers=hdr).status, 200,
                             "old key refused after reloading an empty keys file")
            self.reload_keys_and_check(
                c, old, new,
                lambda: self.assertEqual(
                    c.request("POST", "/admin/reload", headers=hdr).status, 200))
            c.stop()
            self.assert_no_key_logged(c, [old, new])


# ---------------------------------------------------------------------------
# /metrics

METRIC_FAMILIES = [
    ("coordinator_requests_total", "counter"),
    ("coordinator_request_duration_seconds", "histogram"),
    ("coordinator_stream_ttfb_seconds", "histogram"),
    ("coordinator_requests_in_flight", "gauge"),
    ("coordinator_requests_queued", "gauge"),
    ("coordinator_child_state", "gauge"),
    ("coordinator_child_restarts_total", "counter"),
    ("coordinator_child_health_check_failures_total", "counter"),
    ("coordinator_child_forward_failures_total", "counter"),
    ("coordinator_child_cooldowns_total", "counter"),
    ("coordinator_child_served_total", "counter"),
    ("coordinator_child_in_flight", "gauge"),
    ("coordinator_upstream_connect_errors_total", "counter"),
    ("coordinator_retries_total", "counter"),
    ("coordinator_cancels_total", "counter"),
    ("coordinator_uptime_seconds", "gauge"),
    ("coordinator_resident_memory_bytes", "gauge"),
    ("coordinator_open_fds", "gauge"),
]


class MetricsTests(unittest.TestCase):

    def scrape(self, c):
        r = c.get("/metrics")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.headers.get("content-type", "").startswith("text/plain"), r.headers)
        return r.text

    def test_promtool_check_metrics(self):
        promtool = shutil.which("promtool")
        if not promtool:
            self.skipTest("promtool not found: install the Debian package 'prometheus' "
                          "(apt-get install prometheus) to lint /metrics")
        with Coordinator({"alpha": {}, "beta": {"never_ready": True}}, wait_ready=1) as c:
            c.chat("hi")
            c.chat("hi", stream=True)
            c.get("/nope")
            text = self.scrape(c)
        r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 0,
                         f"promtool check metrics:\n{r.stdout}{r.stderr}\n--- metrics ---\n{text}")
        self.assertEqual((r.stdout + r.stderr).strip(), "", "promtool lint findings")

    def test_families_and_values_that_move(self):
        with Coordinator({"alpha": {}, "beta": {"never_ready": True}}, wait_ready=1) as c:
            text = self.scrape(c)
            for name, kind in METRIC_FAMILIES:
                self.assertIn(f"# TYPE {name} {kind}", text)
                self.assertIn(f"# HELP {name} ", text)
            for line in text.splitlines():
                if line and not line.startswith("#"):
                    self.assertTrue(line.startswith("coordinator_"), line)
            before = parse_metrics(text)
            chat = dict(route="/v1/chat/completions", status="200", child="alpha")

            for _ in range(3):
                self.assertEqual(c.chat("hi").status, 200)
            self.assertEqual(c.chat("hi", stream=True).status, 200)
            time.sleep(0.2)
            after = parse_metrics(self.scrape(c))

            self.assertEqual(metric(after, "coordinator_requests_total", **chat)
                             - metric(before, "coordinator_requests_total", **chat), 4)
            self.assertEqual(metric(after, "coordinator_request_duration_seconds_count",
                                    route="/v1/chat/completions")
                             - metric(before, "coordinator_request_duration_seconds_count",
                                      route="/v1/chat/completions"), 4)
            self.assertEqual(metric(after, "coordinator_stream_ttfb_seconds_count")
                             - metric(before, "coordinator_stream_ttfb_seconds_count"), 1)
            self.assertGreaterEqual(
                metric(after, "coordinator_child_served_total", child="alpha"), 4)
            self.assertEqual(metric(after, "coordinator_child_served_total", child="beta"), 0)
            # child_state: exactly one state is 1 per child.
            for name, expected in (("alpha", "ready"), ("beta", None)):
                states = {s: metric(after, "coordinator_child_state", child=name, state=s)
                          for s in CHILD_STATES}
                self.assertEqual(sum(states.values()), 1, f"{name}: {states}")
                current = [s for s, v in states.items() if v == 1][0]
                if expected:
                    self.assertEqual(current, expected)
                else:
                    self.assertNotIn(current, ("ready", "busy"), f"beta is never ready: {current}")
            self.assertGreaterEqual(
                metric(after, "coordinator_child_health_check_failures_total", child="beta"), 1)
            self.assertGreater(metric(after, "coordinator_uptime_seconds"),
                               metric(before, "coordinator_uptime_seconds"))
            self.assertGreater(metric(after, "coordinator_resident_memory_bytes"), 1 << 20)
            self.assertGreater(metric(after, "coordinator_open_fds"), 3)
            self.assertEqual(metric(after, "coordinator_requests_queued"), 0)

            # A restart moves child_restarts_total and the state gauge.
            self.assertEqual(c.request("POST", "/admin/children/alpha/restart").status, 200)
            self.assertTrue(c.wait_child("alpha", lambda e: e["state"] == "ready"
                                         and e["restarts"] >= 1, 10))
            later = parse_metrics(self.scrape(c))
            self.assertEqual(metric(later, "coordinator_child_restarts_total", child="alpha"), 1)
            self.assertEqual(metric(later, "coordinator_child_state", child="alpha",
                                    state="ready"), 1)


# ---------------------------------------------------------------------------
# X-Request-Id and the access log

class RequestIdTests(unittest.TestCase):

    def forwarded_ids(self, c, name):
        return [e["headers"].get("x-request-id") for e in c.chat_requests(name)]

    def test_request_id_kept_generated_returned_and_forwarded(self):
        with Coordinator({"alpha": {}}) as c:
            # Well formed: kept, returned, forwarded.
            for rid in ("abc-123", "A.b_c:d-E", "x" * 128):
                r = c.chat("hi", headers={"X-Request-Id": rid})
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.headers.get("x-request-id"), rid)
                self.assertEqual(self.forwarded_ids(c, "alpha")[-1], rid)
            # Malformed or missing: a new 16-hex id, returned and forwarded.
            seen = set()
            for rid in ("x" * 129, "has space", "semi;colon", "slash/id", "ünï", None):
                headers = {"X-Request-Id": rid} if rid is not None else None
                r = c.chat("hi", headers=headers)
                self.assertEqual(r.status, 200, r)
                got = r.headers.get("x-request-id")
                self.assertRegex(got or "", HEX16_RE, f"id for {rid!r}")
                self.assertEqual(self.forwarded_ids(c, "alpha")[-1], got, f"forwarded for {rid!r}")
                seen.add(got)
            self.assertEqual(len(seen), 6, "every generated id is new")
            # On every response: errors and local endpoints too.
            missing = []
            for method, path in (("GET", "/live"), ("GET", "/ready"), ("GET", "/health"),
                                 ("GET", "/nope"), ("POST", "/live"), ("GET", "/v1/models"),
                                 ("GET", "/admin/children"), ("GET", "/metrics"), ("GET", "/"),
                                 ("GET", "/status")):
                r = c.request(method, path, headers={"X-Request-Id": "probe-1"})
                if r.headers.get("x-request-id") != "probe-1":
                    missing.append(f"{method} {path} ({r.status})")
            self.assertEqual(missing, [], "responses without the client's X-Request-Id")
            r = c.request("POST", "/v1/chat/completions", body=b"not json",
                          headers={"Content-Type": "application/json"})
            self.assertEqual(r.status, 400, r)
            self.assertRegex(r.headers.get("x-request-id", ""), HEX16_RE, "id on a 400")

    def test_request_id_on_streamed_answers(self):
        with Coordinator({"alpha": {}}) as c:
            r = c.chat("hi", stream=True, headers={"X-Request-Id": "stream-id-1"})
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.headers.get("x-request-id"), "stream-id-1")
            self.assertEqual(self.forwarded_ids(c, "alpha")[-1], "stream-id-1")

    def test_text_access_log_line(self):
        with Coordinator({"alpha": {}, "beta": {}}) as c:
            r = c.chat("hi", headers={"X-Request-Id": "access-chat-1"})
            self.assertEqual(r.status, 200, r)
            rec = wait_access_line(c, "access-chat-1")
            self.assertTrue(rec, f"no access line with id=access-chat-1\n{c.output_tail()}")
            self.assertEqual((rec["method"], rec["path"], rec["status"]),
                             ("POST", "/v1/chat/completions", "200"))
            self.assertEqual(rec["child"], served_by(r))
            self.assertEqual(int(rec["bytes"]), len(r.body))
            self.assertGreaterEqual(float(rec["ms"]), 0)

            r = c.get("/nope", headers={"X-Request-Id": "access-404"})
            rec = wait_access_line(c, "access-404")
            self.assertTrue(rec, c.output_tail())
            self.assertEqual((rec["method"], rec["path"], rec["status"], rec["child"]),
                             ("GET", "/nope", "404", "-"))
            self.assertEqual(int(rec["bytes"]), len(r.body))

            r = c.get("/live")
            rec = wait_access_line(c, r.headers["x-request-id"])
            self.assertTrue(rec, c.output_tail())
            self.assertEqual(int(rec["bytes"]), len(r.body))
            # One line per request.
            ids = [x["id"] for x in access_lines(c)]
            self.assertEqual(ids.count("access-chat-1"), 1)

    def test_access_log_bytes_of_generated_pages(self):
        # /metrics and the status page are built by the coordinator: their size counts too.
        with Coordinator({"alpha": {}}) as c:
            for path in ("/metrics", "/", "/status", "/admin/children"):
                with self.subTest(path=path):
                    rid = "bytes-" + (path.strip("/").replace("/", "-") or "root")
                    r = c.get(path, headers={"X-Request-Id": rid})
                    self.assertEqual(r.status, 200, r)
                    rec = wait_access_line(c, rid)
                    self.assertTrue(rec, c.output_tail())
                    self.assertEqual(int(rec["bytes"]), len(r.body), f"bytes= for {path}")

    def test_json_log_format(self):
        with Coordinator({"alpha": {}}, extra_args=["--log-format", "json"]) as c:
            r = c.chat("hi", headers={"X-Request-Id": "json-access-1"})
            self.assertEqual(r.status, 200, r)
            c.get("/nope", headers={"X-Request-Id": "json-access-2"})

            def access_objects():
                out = {}
                for line in c.stderr().splitlines():
                    try:
                        obj = json.loads(line)
                        inner = json.loads(obj["message"])
                    except (ValueError, KeyError, TypeError):
                        continue
                    if isinstance(inner, dict) and inner.get("type") == "access":
                        out[inner.get("request_id")] = inner
                return out if "json-access-2" in out else None
            objs = wait_until(access_objects, 5)
            self.assertTrue(objs, c.output_tail())
            c.stop()
            # Every line, start-up and shutdown included, is a JSON object.
            lines = [ln for ln in c.stderr().splitlines() if ln.strip()]
            self.assertGreater(len(lines), 5)
            for line in lines:
                obj = json.loads(line)
                self.assertIsInstance(obj, dict, line)
                for key in ("time", "level", "message"):
                    self.assertIn(key, obj, line)
                self.assertIsInstance(obj["message"], str, line)
            a = objs["json-access-1"]
            self.assertEqual(a["method"], "POST")
            self.assertEqual(a["path"], "/v1/chat/completions")
            self.assertEqual(a["status"], 200)
            self.assertEqual(a["child"], "alpha")
            self.assertEqual(a["bytes"], len(r.body))
            self.assertIsInstance(a["duration_ms"], (int, float))
            self.assertGreaterEqual(a["duration_ms"], 0)
            b = objs["json-access-2"]
            self.assertEqual((b["method"], b["path"], b["status"]), ("GET", "/nope", 404))
            self.assertIn(b["child"], ("", None, "-"))
            self.assertFalse([ln for ln in lines if ln.lstrip().startswith("access ")],
                             "no text access lines in json mode")


# ---------------------------------------------------------------------------
# Admin API

class AdminTests(unittest.TestCase):

    def post(self, c, path, **kw):
        return c.request("POST", path, **kw)

    def test_children_list_matches_ready(self):
        with Coordinator({"alpha": {}, "beta": {}, "gamma": {"never_ready": True}},
                         wait_ready=2) as c:
            r = c.get("/admin/children")
            self.assertEqual(r.status, 200, r)
            self.assertTrue(r.headers.get("content-type", "").startswith("application/json"))
            listed = r.json()
            self.assertIsInstance(listed, list)
            ready_children = c.children()
            self.assertEqual([e["name"] for e in listed], [e["name"] for e in ready_children])
            self.assertEqual([e["pid"] for e in listed], [e["pid"] for e in ready_children])
            self.assertEqual(set(listed[0]), set(ready_children[0]), "same fields as /ready")
            by_name = {e["name"]: e for e in listed}
            self.assertEqual(by_name["alpha"]["state"], "ready")
            self.assertNotIn(by_name["gamma"]["state"], ("ready", "busy"))

    def test_drain_lets_in_flight_finish_then_retires_and_undrain_restarts(self):
        with Coordinator({"solo": {"chat_delay": 1.5}}) as c:
            old_pid = c.child("solo")["pid"]
            job = Background(lambda i: c.chat("slow", timeout=15))
            self.assertTrue(c.wait_child("solo", lambda e: e["in_flight"] == 1, 5),
                            "the slow request never reached the child")
            r = self.post(c, "/admin/children/solo/drain")
            self.assertEqual(r.status, 200, r)
            entry = c.child("solo")
            self.assertEqual(entry["state"], "draining", entry)
            self.assertTrue(pid_alive(old_pid), "a draining child keeps running")
            # No new request goes to a draining child.
            r = c.chat("new", timeout=10)
            self.assertEqual(r.status, 503, r)
            job.join(15)
            self.assertEqual(job.status, 200, "the in-flight request finishes")
            entry = c.wait_state("solo", "retired", 10)
            self.assertEqual(entry["state"], "retired", entry)
            self.assertEqual(c.wait_pids_gone([old_pid], 5), [], "a retired child is stopped")
            time.sleep(0.5)
            self.assertEqual(c.child("solo")["state"], "retired", "retired stays retired")
            self.assertEqual(len(c.start_records("solo")), 1, "not restarted")
            self.assertEqual(c.get("/ready").status, 503)
            # Refused actions: 409.
            r = self.post(c, "/admin/children/solo/drain")
            self.assertEqual(r.status, 409, r)
            self.assertIn("error", r.json())
            # Undrain: started again.
            r = self.post(c, "/admin/children/solo/undrain")
            self.assertEqual(r.status, 200, r)
            entry = c.wait_state("solo", "ready", 10)
            self.assertEqual(entry["state"], "ready", entry)
            self.assertNotEqual(entry["pid"], old_pid)
            self.assertEqual(len(c.start_records("solo")), 2)
            self.assertEqual(c.chat("again", timeout=10).status, 200)

    def test_drain_and_undrain_a_ready_child(self):
        with Coordinator({"alpha": {}, "beta": {}, "gamma": {}}) as c:
            beta_pid = c.child("beta")["pid"]
            r = self.post(c, "/admin/children/beta/drain")
            self.assertEqual(r.status, 200, r)
            entry = c.wait_state("beta", "retired", 10)
            self.assertEqual(entry["state"], "retired", entry)
            self.assertEqual(c.wait_pids_gone([beta_pid], 5), [])
            body = c.get("/ready").json()
            self.assertNotIn("beta", ready_names(body))
            served = [served_by(c.chat("x")) for _ in range(6)]
            self.assertNotIn("beta", served, served)
            r = self.post(c, "/admin/children/alpha/undrain")
            self.assertEqual(r.status, 409, f"undrain of a ready child: {r!r}")
            r = self.post(c, "/admin/children/beta/undrain")
            self.assertEqual(r.status, 200, r)
            entry = c.wait_state("beta", "ready", 10)
            self.assertEqual(entry["state"], "ready", entry)
            self.assertNotEqual(entry["pid"], beta_pid)
            served = [served_by(c.chat("x")) for _ in range(6)]
            self.assertIn("beta", served, served)

    def test_restart_unknown_child_and_bad_routes(self):
        with Coordinator({"alpha": {}, "beta": {}}) as c:
            old = c.child("alpha")
            old_gc = c.start_records("alpha")[0].get("grandchild_pid")
            r = self.post(c, "/admin/children/alpha/restart")
            self.assertEqual(r.status, 200, r)
            entry = c.wait_child("alpha", lambda e: e["state"] == "ready"
                                 and e["pid"] != old["pid"], 10)
            self.assertEqual(entry["state"], "ready", entry)
            self.assertNotEqual(entry["pid"], old["pid"])
            self.assertEqual(entry["restarts"], old["restarts"] + 1)
            self.assertEqual(entry["ports"], old["ports"], "restarted on the same ports")
            self.assertEqual(c.wait_pids_gone([old["pid"]] + ([old_gc] if old_gc else []), 5), [])
            self.assertEqual(c.child("beta")["restarts"], 0, "only alpha restarted")

            r = self.post(c, "/admin/children/nope/restart")
            self.assertEqual(r.status, 404, r)
            self.assertEqual(r.json()["error"]["code"], "unknown_child")
            r = self.post(c, "/admin/children/nope/drain")
            self.assertEqual(r.status, 404, r)
            r = self.post(c, "/admin/children/alpha/explode")
            self.assertEqual(r.status, 404, r)
            r = c.get("/admin/children/alpha/restart")
            self.assertEqual(r.status, 405, r)
            r = c.get("/admin/reload")
            self.assertEqual(r.status, 405, r)

    def test_admin_remote_flag_is_accepted(self):
        # --admin-remote only lifts the loopback restriction; from 127.0.0.1 everything
        # works as before.  The 403 for a non-loopback client is not testable here (loopback
        # only).
        with Coordinator({"alpha": {}}, extra_args=["--admin-remote"]) as c:
            self.assertEqual(c.get("/admin/children").status, 200)
            self.assertEqual(self.post(c, "/admin/reload").status, 200)


# ---------------------------------------------------------------------------
# Live reload

class LiveReloadTests(unittest.TestCase):

    def reloading_coordinator(self):
        # Two spare profiles reserve ports for the children added later, then are removed
        # before the start.
        c = Coordinator({"alpha": {}, "beta": {}, "gamma": {}, "zz-spare1": {}, "zz-spare2": {}},
                        wait_ready=3)
        for spare in ("zz-spare1", "zz-spare2"):
            os.remove(c.profile_paths[spare])
        return c

    def check_reload(self, c, trigger):
        before = {e["name"]: e for e in c.children()}
        self.assertEqual(sorted(before), ["alpha", "beta", "gamma"])
        write_profile(c.profiles_dir, "delta")
        write_profile(c.profiles_dir, "aardvark")
        write(os.path.join(c.profiles_dir, "broken.json"), "{not json")
        os.remove(c.profile_paths["beta"])
        c.rewrite_profile("gamma", {"chat_delay": 0.01})  # new size: changed
        trigger()

        def settled():
            if not c.running():
                return "exited"
            s = c.child_states()
            ok = (s.get("aardvark") == "ready" and s.get("delta") == "ready"
                  and s.get("beta") == "retired" and s.get("gamma") == "ready"
                  and c.child("gamma")["pid"] != before["gamma"]["pid"])
            return s if ok else None
        states = wait_until(settled, 15)
        self.assertTrue(c.running(), f"the coordinator exited on reload (rc={c.proc.returncode})"
                                     f"\n{c.output_tail(8)}")
        self.assertTrue(states, f"after reload: {c.children()}\n{c.output_tail()}")
        after = {e["name"]: e for e in c.children()}
        # New profiles: new children on the next ports of the sequence.
        new_ports = sorted(after[n]["ports"]["api"] for n in ("aardvark", "delta"))
        self.assertEqual(new_ports, [c.api_base + 3, c.api_base + 4])
        for n in ("aardvark", "delta"):
            e = after[n]
            k = e["ports"]["api"] - c.api_base
            self.assertEqual(e["ports"]["stream"], c.stream_base + k)
            self.assertEqual(e["ports"]["camoufox"], c.camoufox_base + k)
            recs = c.start_records(n)
            self.assertEqual(len(recs), 1)
            self.assertEqual(recs[0]["ports"]["api"], e["ports"]["api"])
        # Removed: drained, stopped, retired.
        self.assertEqual(c.wait_pids_gone([before["beta"]["pid"]], 5), [])
        # Changed: restarted (new pid, same ports); unchanged: untouched.
        self.assertEqual(c.wait_pids_gone([before["gamma"]["pid"]], 5), [])
        self.assertEqual(after["gamma"]["ports"], before["gamma"]["ports"])
        self.assertEqual(after["alpha"]["pid"], before["alpha"]["pid"])
        self.assertEqual(len(c.start_records("alpha")), 1)
        # The bad file is reported (by name) and skipped.
        self.assertNotIn("broken", after)
        self.assertIn("broken.json", c.stderr())
        # The new children serve.
        served = {served_by(c.chat("x")) for _ in range(8)}
        self.assertIn("aardvark", served)
        self.assertIn("delta", served)
        self.assertNotIn("beta", served)

    def test_admin_reload(self):
        with self.reloading_coordinator() as c:
            def trigger():
                r = c.request("POST", "/admin/reload")
                self.assertEqual(r.status, 200, r)
            self.check_reload(c, trigger)

    def test_sighup_reload(self):
        with self.reloading_coordinator() as c:
            self.check_reload(c, lambda: c.signal(signal.SIGHUP))

    def test_reload_without_changes_touches_nothing(self):
        with Coordinator({"alpha": {}, "beta": {}}) as c:
            pids = {e["name"]: e["pid"] for e in c.children()}
            self.assertEqual(c.request("POST", "/admin/reload").status, 200)
            time.sleep(0.5)
            self.assertEqual({e["name"]: e["pid"] for e in c.children()}, pids)
            self.assertEqual(set(c.child_states().values()), {"ready"})


# ---------------------------------------------------------------------------
# --max-connections

class MaxConnectionsTests(unittest.TestCase):

    def test_sixth_connection_gets_503_and_the_first_five_keep_working(self):
        with Coordinator({"alpha": {}}, extra_args=["--max-connections", "5"]) as c:
            conns = []
            self.addCleanup(lambda: [k.close() for k in conns])

            def open_five():
                # The readiness probes' connections may take a moment to be released.
                for k in conns:
                    k.close()
                conns.clear()
                conns.extend(RawConnection(c.port) for _ in range(5))
                return all(k.request("GET", "/live").status == 200 for k in conns)
            self.assertTrue(wait_until(open_five, 5, 0.2), "5 connections could not be served")

            t0 = time.monotonic()
            data = raw_exchange(c.port, b"GET /live HTTP/1.1\r\nHost: x\r\n\r\n", timeout=5)
            elapsed = time.monotonic() - t0
            head, _, body = data.partition(b"\r\n\r\n")
            self.assertTrue(head.startswith(b"HTTP/1.1 503"), data)
            self.assertIn(b"connection: close", head.lower())
            m = re.search(rb"content-length:\s*(\d+)", head, re.I)
            self.assertTrue(m, head)
            self.assertEqual(len(body), int(m.group(1)), "a complete response")
            self.assertEqual(json.loads(body)["error"]["code"], "too_many_connections")
            self.assertLess(elapsed, 4, "the 6th connection is closed after the 503")

            for i, k in enumerate(conns):
                self.assertEqual(k.request("GET", "/live").status, 200, f"connection {i}")
            r = conns[0].request("POST", "/v1/chat/completions", body=json.dumps(chat_body()),
                                 headers={"Content-Type": "application/json"})
            self.assertEqual(r.status, 200, r)

            # A freed slot is usable again.
            conns.pop().close()

            def sixth_ok():
                d = raw_exchange(c.port, b"GET /live HTTP/1.1\r\nHost: x\r\n"
                                         b"Connection: close\r\n\r\n", timeout=2)
                return d.startswith(b"HTTP/1.1 200")
            self.assertTrue(wait_until(sixth_ok, 5, 0.1), "a closed connection frees its slot")


# ---------------------------------------------------------------------------
# sd_notify

class SdNotifyTests(unittest.TestCase):

    def setUp(self):
        self.notify = NotifySocket()
        self.addCleanup(self.notify.close)

    def test_ready_watchdog_and_stopping(self):
        env = {"NOTIFY_SOCKET": self.notify.path, "WATCHDOG_USEC": "1000000"}
        c = Coordinator({"alpha": {}, "beta": {}}, env=env, wait_ready=0)
        with c:
            t_ready = self.notify.wait_for("READY=1", 10)
            self.assertIsNotNone(t_ready, f"no READY=1\n{c.output_tail()}")
            # READY=1 means: listening, children started.
            r = c.get("/live", timeout=2)
            self.assertEqual(r.status, 200, "READY=1 before the coordinator answers /live")
            self.assertTrue(wait_until(lambda: len(c.start_records()) >= 2, 5),
                            "children started")
            self.assertEqual(len(self.notify.times("READY=1")), 1)

            self.notify.poll(2.7)
            pings = [t for t in self.notify.times("WATCHDOG=1") if t >= t_ready - 0.5]
            self.assertGreaterEqual(len(pings), 4, f"WATCHDOG=1 every 0.5 s: {pings}")
            gaps = [round(b - a, 3) for a, b in zip(pings, pings[1:])]
            self.assertLess(max(gaps), 1.0, f"WATCHDOG=1 gaps (WATCHDOG_USEC=1 s): {gaps}")
            median = sorted(gaps)[len(gaps) // 2]
            self.assertTrue(0.3 < median < 0.8, f"WATCHDOG=1 every WATCHDOG_USEC/2: {gaps}")
            self.assertEqual(self.notify.times("STOPPING=1"), [])

            c.signal(signal.SIGTERM)
            self.assertIsNotNone(self.notify.wait_for("STOPPING=1", 5), "no STOPPING=1 on SIGTERM")
            self.assertEqual(c.wait_exit(20), 0)

    def test_no_watchdog_without_watchdog_usec_or_for_another_pid(self):
        for env in ({"NOTIFY_SOCKET": self.notify.path},
                    {"NOTIFY_SOCKET": self.notify.path, "WATCHDOG_USEC": "200000",
                     "WATCHDOG_PID": "1"}):
            with self.subTest(env=sorted(env)):
                self.notify.messages.clear()
                with Coordinator({"alpha": {}}, env=env, wait_ready=0):
                    self.assertIsNotNone(self.notify.wait_for("READY=1", 10))
                    self.notify.poll(1.0)
                    self.assertEqual(self.notify.times("WATCHDOG=1"), [], env)

    def test_watchdog_pid_of_the_coordinator(self):
        # WATCHDOG_PID names the process itself: only known after the spawn, so use a shell
        # that exports its own pid and execs the coordinator (same pid).
        c = Coordinator({"alpha": {}}, wait_ready=0)
        argv = c.build_argv()
        c.args_override = None
        script = 'WATCHDOG_PID=$$ exec "$@"'
        c.build_argv = lambda: ["/bin/sh", "-c", script, "sh"] + argv
        c.env_extra = {"NOTIFY_SOCKET": self.notify.path, "WATCHDOG_USEC": "200000"}
        with c:
            self.assertIsNotNone(self.notify.wait_for("READY=1", 10), c.output_tail())
            self.notify.poll(1.0)
            self.assertGreaterEqual(len(self.notify.times("WATCHDOG=1")), 3)


if __name__ == "__main__":
    unittest.main()
