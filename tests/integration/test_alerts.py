"""Alerts and expiry warnings (issue 14).

* ``--webhook URL`` (repeatable): a JSON POST per event, ``needs_relogin``, ``quota_exhausted``,
  ``child_failed``, ``profile_expiring`` and ``recovered`` (with ``cause``), deduplicated (one
  event per cause until it clears), signed with ``X-Coordinator-Signature: sha256=HMAC-SHA256``
  of the body under ``--webhook-secret`` (or ``--webhook-secret-file``), retried on 5xx and
  given up at once on another 4xx; never a cookie value in a body or a log.
* A profile whose first cookie expires within ``--expiry-warning`` shows ``expiring_soon`` and
  ``cookies_expire_at`` in /ready, is logged once, and sends ``profile_expiring``.
* An https:// webhook is verified against the system's CA store (OpenSSL's SSL_CERT_FILE here:
  a certificate made for the test with the `openssl` command): a trusted sink gets its events,
  an untrusted one gets nothing.

The sink is a stdlib HTTP server on 127.0.0.1 (a free port) in a thread of the test process.
Every wait is bounded.
"""

import hashlib
import hmac
import http.server
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (  # noqa: E402
    HOST, Coordinator, free_port, metric, parse_metrics, replace_json, require_binary, run_binary,
    storage_state, wait_until)

from test_models import wait_models_learned  # noqa: E402

SECRET = "alert-signing-secret-0123"


def setUpModule():
    require_binary()


class Sink:
    """An HTTP server on 127.0.0.1 that records every POST (headers and body bytes) and answers
    the statuses of `statuses` in turn, then `then`."""

    def __init__(self, statuses=(), then=200, tls=None):
        self.port = free_port()
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://{HOST}:{self.port}/hooks/coordinator"
        self.received = []  # (monotonic time, path, headers dict lower-case, body bytes, status answered)
        self.lock = threading.Lock()
        self.statuses = list(statuses)
        self.then = then
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the stdlib's name
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with sink.lock:
                    status = sink.statuses.pop(0) if sink.statuses else sink.then
                    sink.received.append((time.monotonic(), self.path,
                                          {k.lower(): v for k, v in self.headers.items()}, body, status))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((HOST, self.port), Handler)
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
        return False

    def posts(self):
        with self.lock:
            return list(self.received)

    def events(self, event=None, **fields):
        """The bodies received (parsed), optionally only those with this event and fields."""
        out = []
        for _, _, _, body, _ in self.posts():
            doc = json.loads(body)
            if event is not None and doc.get("event") != event:
                continue
            if all(doc.get(k) == v for k, v in fields.items()):
                out.append(doc)
        return out

    def wait_event(self, event, timeout, **fields):
        got = wait_until(lambda: self.events(event, **fields), timeout, 0.1)
        return got[0] if got else None


def self_signed_certificate(folder, name):
    """(cert, key) paths of a certificate for 127.0.0.1 made with `openssl` (SkipTest without it)."""
    openssl = shutil.which("openssl")
    if not openssl:
        raise unittest.SkipTest("the `openssl` command is not installed (scripts/install-deps.sh installs it)")
    cert, key = os.path.join(folder, name + ".pem"), os.path.join(folder, name + ".key")
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", f"/CN={name}", "-addext", f"subjectAltName=IP:{HOST}",
                    "-keyout", key, "-out", cert], check=True, capture_output=True, timeout=60)
    return cert, key


def signature_ok(headers, body, secret=SECRET):
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers.get("x-coordinator-signature", ""), expected)


def expiring_profile(c, name, seconds):
    """Profile `name` with its cookie expiring in `seconds` (same secret cookie value)."""
    state = storage_state(c.secrets[name][0], {})
    state["cookies"][0]["expires"] = time.time() + seconds
    replace_json(c.profile_paths[name], state)


class WebhookTests(unittest.TestCase):
    def assert_no_secret_anywhere(self, c, sink):
        for name, secrets in c.secrets.items():
            for secret in secrets:
                for _, _, _, body, _ in sink.posts():
                    self.assertNotIn(secret.encode(), body, f"{name}'s cookie in an alert")
                self.assertNotIn(secret, c.output(), f"{name}'s cookie in the coordinator log")
        self.assertNotIn(SECRET, c.output(), "the webhook secret in the log")

    def test_needs_relogin_signed_once_then_recovered_after_a_fresh_login(self):
        with Sink() as sink:
            profiles = {"alpha": {"logged_out": True}, "beta": {}}
            with Coordinator(profiles, wait_ready=1,
                             extra_args=["--webhook", sink.url, "--webhook-secret", SECRET]) as c:
                event = sink.wait_event("needs_relogin", 20, child="alpha")
                self.assertIsNotNone(event, f"{sink.events()}\n{c.output_tail()}")
                self.assertIsNone(event["model"])
                self.assertRegex(event["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
                self.assertIn("alpha", event["message"])
                self.assertTrue(event["coordinator"].endswith(f":{c.port}"), event)
                self.assertEqual(set(event) - {"cause", "expires_at"},
                                 {"event", "child", "model", "time", "message", "coordinator"})
                # Deduplicated: still logged out several seconds later, still one event.
                time.sleep(3.5)
                self.assertEqual(len(sink.events("needs_relogin", child="alpha")), 1, sink.events())
                self.assertEqual(sink.events("needs_relogin", child="beta"), [])
                for _, path, headers, body, _ in sink.posts():
                    self.assertEqual(path, "/hooks/coordinator")
                    self.assertTrue(signature_ok(headers, body), headers)
                    self.assertEqual(headers.get("x-coordinator-event"), json.loads(body)["event"])
                    self.assertEqual(headers.get("content-type"), "application/json")
                # A fresh login and a reload: recovered once the child serves again.
                c.rewrite_profile("alpha", {})
                c.signal(signal.SIGHUP)
                self.assertEqual((c.wait_state("alpha", "ready", 20) or {}).get("state"), "ready",
                                 c.output_tail())
                recovered = sink.wait_event("recovered", 10, child="alpha", cause="needs_relogin")
                self.assertIsNotNone(recovered, f"{sink.events()}\n{c.output_tail()}")
                time.sleep(1.5)
                self.assertEqual(len(sink.events("recovered", child="alpha")), 1, sink.events())
                self.assertEqual(len(sink.events("needs_relogin", child="alpha")), 1, sink.events())
                metrics = parse_metrics(c.get("/metrics").text)
                self.assertEqual(metric(metrics, "coordinator_webhook_deliveries_total", result="sent"),
                                 len(sink.posts()))
                self.assert_no_secret_anywhere(c, sink)

    def test_quota_exhausted_while_every_child_cools_for_the_model_then_recovered(self):
        with Sink() as sink:
            profiles = {"alpha": {"models": ["m-a", "m-b"], "quota_models": {"m-a": 1}}}
            with Coordinator(profiles, extra_args=["--webhook", sink.url, "--quota-cooldown", "3"]) as c:
                wait_models_learned(c, ["alpha"])
                self.assertEqual(c.chat("spend it", model="m-a").status, 429)
                event = sink.wait_event("quota_exhausted", 10, model="m-a")
                self.assertIsNotNone(event, f"{sink.events()}\n{c.output_tail()}")
                self.assertIsNone(event["child"])
                self.assertIn("alpha", event["message"])
                self.assertNotIn("x-coordinator-signature", sink.posts()[0][2], "no secret: unsigned")
                recovered = sink.wait_event("recovered", 10, model="m-a", cause="quota_exhausted")
                self.assertIsNotNone(recovered, f"{sink.events()}\n{c.output_tail()}")
                self.assertEqual(len(sink.events("quota_exhausted")), 1, sink.events())
                self.assertEqual(c.chat("again", model="m-a").status, 200)

    def test_child_failed_once_then_recovered_after_a_restart(self):
        with Sink() as sink:
            profiles = {"alpha": {"crash_on_start": True}, "beta": {}}
            with Coordinator(profiles, extra_args=["--webhook", sink.url, "--max-restarts", "0"]) as c:
                self.assertEqual((c.wait_state("alpha", "failed", 15) or {}).get("state"), "failed",
                                 c.output_tail())
                event = sink.wait_event("child_failed", 10, child="alpha")
                self.assertIsNotNone(event, f"{sink.events()}\n{c.output_tail()}")
                self.assertIn("/admin/children/alpha/restart", event["message"])
                time.sleep(2)
                self.assertEqual(len(sink.events("child_failed")), 1, sink.events())
                c.rewrite_profile("alpha", {})
                self.assertEqual(c.request("POST", "/admin/children/alpha/restart").status, 200)
                self.assertEqual((c.wait_state("alpha", "ready", 15) or {}).get("state"), "ready",
                                 c.output_tail())
                recovered = sink.wait_event("recovered", 10, child="alpha", cause="child_failed")
                self.assertIsNotNone(recovered, f"{sink.events()}\n{c.output_tail()}")

    def test_expiring_profile_in_ready_the_log_and_a_retried_webhook(self):
        secret_file_dir = None
        with Sink(statuses=[500]) as flaky, Sink(then=404) as refusing:
            c = Coordinator({"alpha": {}, "beta": {}},
                            extra_args=["--webhook", flaky.url, "--webhook", refusing.url,
                                        "--webhook-secret-file", "webhook.secret",
                                        "--expiry-warning", str(7 * 86400)])
            secret_file_dir = c.dir
            with open(os.path.join(c.dir, "webhook.secret"), "w") as f:
                f.write(SECRET + "\n")
            expiring_profile(c, "beta", 2 * 86400)   # inside the 7-day window
            expiring_profile(c, "alpha", 30 * 86400)  # outside
            with c:
                beta = c.wait_child("beta", lambda e: e.get("expiring_soon") is True, 10)
                self.assertTrue((beta or {}).get("expiring_soon"), beta)
                self.assertRegex(beta["cookies_expire_at"], r"^\d{4}-\d\d-\d\dT")
                alpha = c.child("alpha")
                self.assertFalse(alpha["expiring_soon"], alpha)
                self.assertIsNotNone(alpha["cookies_expire_at"])
                self.assertIn("expiring_soon", c.get("/").text, "the status page shows it")
                profiles = {p["name"]: p for p in c.get("/admin/profiles").json()["profiles"]}
                self.assertTrue(profiles["beta"]["expiring_soon"])
                # The flaky sink answered 500 first: the event came again about a second later.
                self.assertTrue(wait_until(lambda: len(flaky.posts()) >= 2, 10), flaky.posts())
                first, second = flaky.posts()[:2]
                self.assertEqual((first[4], second[4]), (500, 200))
                self.assertEqual(first[3], second[3], "the same body, retried")
                self.assertGreaterEqual(second[0] - first[0], 0.8)
                event = json.loads(second[3])
                self.assertEqual((event["event"], event["child"]), ("profile_expiring", "beta"))
                self.assertRegex(event["expires_at"], r"^\d{4}-\d\d-\d\dT")
                self.assertTrue(signature_ok(second[2], second[3]))
                # The refusing sink's 404 is not retried.
                self.assertTrue(wait_until(lambda: len(refusing.posts()) >= 1, 5))
                time.sleep(2.5)
                self.assertEqual(len(refusing.posts()), 1, refusing.posts())
                self.assertEqual(len(flaky.posts()), 2, "one event, no duplicate")
                metrics = parse_metrics(c.get("/metrics").text)
                self.assertEqual(metric(metrics, "coordinator_webhook_deliveries_total", result="sent"), 1)
                self.assertEqual(metric(metrics, "coordinator_webhook_deliveries_total", result="failed"), 1)
                # Logged once (per UTC day), naming the profile, never a cookie.
                lines = [l for l in c.output().splitlines() if "profile beta: its first cookie expires" in l]
                self.assertEqual(len(lines), 1, c.output_tail())
                self.assertNotIn("profile alpha: its first cookie expires", c.output())
                for secret in c.secrets["beta"] + c.secrets["alpha"]:
                    self.assertNotIn(secret, c.output())
                    for post in flaky.posts() + refusing.posts():
                        self.assertNotIn(secret.encode(), post[3])
                self.assertNotIn(SECRET, c.output())
        self.assertIsNotNone(secret_file_dir)


class HttpsWebhookTests(unittest.TestCase):
    def test_https_webhooks_are_verified_against_the_trusted_certificates(self):
        with tempfile.TemporaryDirectory() as tmp:
            trusted = self_signed_certificate(tmp, "trusted-sink")
            untrusted = self_signed_certificate(tmp, "untrusted-sink")
            with Sink(tls=trusted) as good, Sink(tls=untrusted) as bad:
                self.assertTrue(good.url.startswith("https://"))
                c = Coordinator({"alpha": {}},
                                extra_args=["--webhook", good.url, "--webhook", bad.url,
                                            "--webhook-secret", SECRET, "--expiry-warning", str(7 * 86400)],
                                env={"SSL_CERT_FILE": trusted[0]})
                expiring_profile(c, "alpha", 2 * 86400)
                with c:
                    event = good.wait_event("profile_expiring", 15, child="alpha")
                    self.assertIsNotNone(event, c.output_tail())
                    _, path, headers, body, _ = good.posts()[0]
                    self.assertEqual(path, "/hooks/coordinator")
                    self.assertTrue(signature_ok(headers, body))
                    # The untrusted sink's certificate fails the handshake: nothing reaches it,
                    # and after its 5 tries (1 + 2 + 4 + 8 s apart) the warning names the handshake.
                    self.assertTrue(wait_until(lambda: "TLS handshake" in c.output(), 30), c.output_tail())
                    self.assertEqual(bad.posts(), [])
                    self.assertIn(f"https://{HOST}:{bad.port}", c.output())


class WebhookConfigTests(unittest.TestCase):
    def test_a_bad_webhook_url_in_the_config_file_names_its_line(self):
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "c.toml")
            with open(path, "w") as f:
                f.write('webhook = ["http://127.0.0.1:9/ok", "ftp://nope"]\n')
            r = run_binary(["--config", path, "--print-config"])
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(f"{path}:1:", r.stderr)
            self.assertIn("http://", r.stderr)

    def test_print_config_hides_the_secret(self):
        r = run_binary(["--webhook", "http://127.0.0.1:9/", "--webhook-secret", SECRET, "--print-config"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn(SECRET, r.stdout)
        self.assertIn("webhook-secret is set", r.stdout)


if __name__ == "__main__":
    unittest.main()
