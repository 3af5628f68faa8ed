"""The HTML status page (GET / and /status) in headless Chromium (issue 6). Stdlib only,
plus the Debian package ``chromium`` (skipped with a message when it is missing or cannot run).

Run:  cd tests/integration && python3 -m unittest -v test_status_page

A coordinator runs three fake children: two become ready, one crashes at start and, with
``--max-restarts 0``, ends ``failed``.  Chromium loads http://127.0.0.1:PORT/ with
``--virtual-time-budget`` (so the page's first fetch of ``ready`` has run) and
``--dump-dom``; the DOM must hold one ``section.child`` card per child with the right
``data-name``/``data-state``.  Two screenshots (1280x800 and a 390x844 phone) are taken; the
test checks they are PNGs of that size.  With ``UPDATE_SCREENSHOTS=1`` they are copied to
docs/img/status-page-wide.png and docs/img/status-page-phone.png (overwritten) for a human to
look at; otherwise the test leaves the repository alone.

Environment: ``CHROMIUM`` (path of the browser; default: chromium, chromium-browser,
google-chrome on PATH).
"""

import html.parser
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import REPO_ROOT, Coordinator, note, require_binary  # noqa: E402

IMG_DIR = REPO_ROOT / "docs" / "img"
SHOTS = {"wide": (1280, 800), "phone": (390, 844)}
PROFILES = {"alpha": {}, "beta": {}, "gamma": {"crash_on_start": True}}
EXPECTED_STATES = {"alpha": "ready", "beta": "ready", "gamma": "failed"}

_CHROMIUM = None
_CHROMIUM_PROBLEM = None


def setUpModule():
    global _CHROMIUM, _CHROMIUM_PROBLEM
    require_binary()
    candidates = [os.environ.get("CHROMIUM")] if os.environ.get("CHROMIUM") else \
        ["chromium", "chromium-browser", "google-chrome"]
    for name in candidates:
        path = shutil.which(name) or (name if os.path.isfile(name) else None)
        if path:
            _CHROMIUM = path
            break
    if not _CHROMIUM:
        _CHROMIUM_PROBLEM = ("chromium not found: install the Debian package 'chromium' "
                             "(apt-get install chromium) or set CHROMIUM")
        return
    try:
        r = subprocess.run([_CHROMIUM, "--version"], capture_output=True, text=True, timeout=30,
                           stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as e:
        _CHROMIUM_PROBLEM = f"{_CHROMIUM} --version failed: {e}"
        return
    if r.returncode != 0:
        _CHROMIUM_PROBLEM = f"{_CHROMIUM} --version exited {r.returncode}: {r.stderr[-500:]}"


class Cards(html.parser.HTMLParser):
    """Collects every ``section`` element with class ``child``: its attributes and text."""

    def __init__(self):
        super().__init__()
        self.cards = []       # dicts: name, state, classes, text
        self._depth = 0       # nesting depth inside the current card
        self.summary = ""
        self._in_summary = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if self._depth:
            self._depth += 1
        elif tag == "section" and "child" in (a.get("class") or "").split():
            self.cards.append({"name": a.get("data-name"), "state": a.get("data-state"),
                               "classes": (a.get("class") or "").split(), "text": ""})
            self._depth = 1
        if self._in_summary:
            self._in_summary += 1
        elif a.get("id") == "summary":
            self._in_summary = 1

    def handle_endtag(self, tag):
        if self._depth:
            self._depth -= 1
        if self._in_summary:
            self._in_summary -= 1

    def handle_data(self, data):
        if self._depth:
            self.cards[-1]["text"] += data + " "
        if self._in_summary:
            self.summary += data


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


class StatusPageTests(unittest.TestCase):

    def setUp(self):
        if _CHROMIUM_PROBLEM:
            self.skipTest(_CHROMIUM_PROBLEM)
        self.tmp = tempfile.mkdtemp(prefix="coord-chromium-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def chromium(self, url, *args, timeout=60):
        """Run headless Chromium once on `url`; returns CompletedProcess (bytes)."""
        profile = tempfile.mkdtemp(dir=self.tmp, prefix="profile-")
        argv = [_CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                "--hide-scrollbars", "--force-device-scale-factor=1",
                f"--user-data-dir={profile}", "--virtual-time-budget=5000", *args, url]
        env = dict(os.environ, HOME=self.tmp)
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # our own session: the browser and its helpers
            proc.communicate()
            self.fail(f"chromium did not finish within {timeout}s on {url}")
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # leftover helpers of this run, if any
            except OSError:
                pass
        return subprocess.CompletedProcess(argv, proc.returncode, out, err)

    def coordinator(self):
        c = Coordinator(PROFILES, extra_args=["--max-restarts", "0"], wait_ready=2)
        c.__enter__()
        self.addCleanup(c.__exit__, None, None, None)
        entry = c.wait_state("gamma", "failed", 15)
        self.assertEqual((entry or {}).get("state"), "failed", f"gamma: {entry}")
        for _ in range(3):  # some traffic, so that the cards show served counts
            self.assertEqual(c.chat("hi").status, 200)
        return c

    def dump_cards(self, url):
        last = None
        for _ in range(3):  # a slow first fetch: try again
            r = self.chromium(url, "--dump-dom")
            last = r
            parser = Cards()
            parser.feed(r.stdout.decode("utf-8", "replace"))
            if len(parser.cards) >= 3:
                return parser
        self.fail(f"chromium --dump-dom of {url}: no child cards (rc={last.returncode})\n"
                  f"stdout: {last.stdout[-2000:]!r}\nstderr: {last.stderr[-2000:]!r}")

    def test_page_lists_every_child_with_its_state(self):
        c = self.coordinator()
        raw = c.get("/")
        self.assertEqual(raw.status, 200, raw)
        self.assertTrue(raw.headers.get("content-type", "").startswith("text/html"), raw.headers)
        # Self-contained: no external script, stylesheet, image or font.
        self.assertIsNone(re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", raw.text),
                          "the status page loads an external asset")
        self.assertNotIn("@import", raw.text)

        for path in ("/", "/status"):
            with self.subTest(path=path):
                page = self.dump_cards(f"http://127.0.0.1:{c.port}{path}")
                got = {card["name"]: card["state"] for card in page.cards}
                self.assertEqual(got, EXPECTED_STATES)
                self.assertEqual(len(page.cards), 3, "one card per child")
                by_name = {card["name"]: card for card in page.cards}
                for name, state in EXPECTED_STATES.items():
                    card = by_name[name]
                    self.assertIn(name, card["text"])
                    self.assertIn(state, card["text"].lower())
                    self.assertIn(state, card["classes"], "the state is also a class (colour)")
                    entry = c.child(name)
                    self.assertIn(str(entry["ports"]["api"]), card["text"], f"{name}: api port")
                    if state == "ready":
                        self.assertIn(str(entry["pid"]), card["text"], f"{name}: pid")
                    for label in ("in flight", "served", "failures", "restarts", "today"):
                        self.assertIn(label, card["text"], f"{name}: {label}")
                self.assertIn("exited with code 3", by_name["gamma"]["text"],
                              "the failed child's last error is shown")
                self.assertRegex(re.sub(r"\s+", " ", page.summary), r"\b2\b.*\b3\b",
                                 f"summary: {page.summary!r}")

    def test_screenshots(self):
        c = self.coordinator()
        for label, (width, height) in SHOTS.items():
            with self.subTest(size=label):
                shot = os.path.join(self.tmp, f"{label}.png")
                r = self.chromium(f"http://127.0.0.1:{c.port}/", f"--screenshot={shot}",
                                  f"--window-size={width},{height}")
                self.assertTrue(os.path.isfile(shot),
                                f"no screenshot (rc={r.returncode}): {r.stderr[-1500:]!r}")
                self.assertEqual(png_size(shot), (width, height), f"{label} screenshot size")
                self.assertGreater(os.path.getsize(shot), 8000, f"{label}: a blank page?")
                if os.environ.get("UPDATE_SCREENSHOTS") == "1":
                    dest = IMG_DIR / f"status-page-{label}.png"
                    shutil.copyfile(shot, dest)
                    note(f"wrote {dest}")


if __name__ == "__main__":
    unittest.main()
