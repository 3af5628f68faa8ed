"""Real-client test: the official `openai` npm package against the coordinator. Stdlib only.

Run:  cd tests/integration && python3 -m unittest -v test_openai_client
Needs `node` (skipped, with a message, when it is absent) and, the first time, `npm` with
access to the npm registry: tests/node/node_modules is installed with `npm ci` from the
pinned tests/node/package-lock.json when it is missing.  Then tests/node/openai_client.mjs
does one non-stream and one streamed `client.chat.completions.create` through a coordinator
over one fake child and prints a JSON summary, checked here.
"""

import json
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import REPO_ROOT, Coordinator, require_binary  # noqa: E402

NODE_DIR = REPO_ROOT / "tests" / "node"
SCRIPT = NODE_DIR / "openai_client.mjs"
NPM_TIMEOUT = 300
CLIENT_TIMEOUT = 60
N_CHUNKS = 20


def setUpModule():
    require_binary()


def ensure_node_modules(testcase):
    """Install tests/node/node_modules (npm ci, else npm install) if `openai` is missing."""
    if (NODE_DIR / "node_modules" / "openai" / "package.json").is_file():
        return
    npm = shutil.which("npm")
    if not npm:
        testcase.fail("tests/node/node_modules is missing and `npm` is not installed")
    attempts = [[npm, "ci", "--no-audit", "--no-fund"],
                [npm, "install", "--no-audit", "--no-fund"]]
    errors = []
    for argv in attempts:
        try:
            p = subprocess.run(argv, cwd=NODE_DIR, stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=NPM_TIMEOUT)
        except subprocess.TimeoutExpired:
            errors.append(f"{' '.join(argv[1:])}: timed out after {NPM_TIMEOUT}s")
            continue
        if p.returncode == 0:
            return
        errors.append(f"{' '.join(argv[1:])}: exit {p.returncode}\n{p.stderr[-2000:]}")
    testcase.fail("could not install tests/node dependencies:\n" + "\n".join(errors))


class OpenAINodeClientTests(unittest.TestCase):

    def setUp(self):
        self.node = shutil.which("node")
        if not self.node:
            self.skipTest("`node` is not installed: the openai npm client test needs Node.js")
        ensure_node_modules(self)

    def run_client(self, base_url, api_key="sk-coordinator-test"):
        try:
            p = subprocess.run([self.node, str(SCRIPT), base_url, api_key], cwd=NODE_DIR,
                               stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=CLIENT_TIMEOUT)
        except subprocess.TimeoutExpired as e:
            self.fail(f"openai_client.mjs did not finish in {CLIENT_TIMEOUT}s; stderr: "
                      f"{e.stderr!r}")
        self.assertEqual(p.returncode, 0, f"openai_client.mjs failed (exit {p.returncode}):\n"
                                          f"stdout: {p.stdout}\nstderr: {p.stderr}")
        try:
            return json.loads(p.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            self.fail(f"openai_client.mjs printed no JSON summary: {p.stdout!r}")

    def test_openai_sdk_non_stream_and_stream(self):
        profiles = {"solo": {"stream_chunks": N_CHUNKS, "stream_interval": 0.01}}
        with Coordinator(profiles) as c:
            out = self.run_client(f"http://127.0.0.1:{c.port}/v1")
            self.assertEqual(out["non_stream_content"], "Hello from solo", out)
            self.assertEqual(out["stream_content"],
                             "".join(f"chunk{i} " for i in range(N_CHUNKS)), out)
            # The real child's stream: the content chunks, its empty "done" chunk and the
            # usage chunk ([DONE] is not a chunk).
            self.assertEqual(out["chunks"], N_CHUNKS + 2, out)
            self.assertEqual(out["finish_reason"], "stop", out)
            self.assertEqual(len(c.events("solo", "stream_done")), 1,
                             c.events("solo", "stream_done"))


if __name__ == "__main__":
    unittest.main()
