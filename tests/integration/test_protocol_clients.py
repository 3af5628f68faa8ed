"""Real-client tests of the coordinator's other front ends (issue 15), with the official SDKs:
`openai` (POST /v1/responses), `@anthropic-ai/sdk` (POST /v1/messages) and `@google/genai`
(POST /v1beta/models/M:generateContent, :streamGenerateContent?alt=sse, GET /v1beta/models),
each translated onto the children's chat completions.  Stdlib only.

Run:  cd tests/integration && python3 -m unittest -v test_protocol_clients
Needs `node` (skipped, with a message, when it is absent) and, the first time, `npm` with access
to the npm registry: tests/node/node_modules is installed with `npm ci` from the pinned
tests/node/package-lock.json when a pinned package is missing.  Each scenario runs one of
tests/node/{responses,anthropic,gemini}_client.mjs (which print one JSON line) against a
coordinator over fake children; this file checks the text, the tool call (name and arguments),
the usage against what the child reported (its journal: docs/fake-child-contract.md behaviour
18), what the child was sent, and that a quota error on one child is retried on another.

"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import REPO_ROOT, Coordinator, SSEStream, require_binary, wait_until  # noqa: E402

from test_models import wait_models_learned  # noqa: E402

NODE_DIR = REPO_ROOT / "tests" / "node"
SCRIPTS = {"responses": "responses_client.mjs", "anthropic": "anthropic_client.mjs",
           "gemini": "gemini_client.mjs"}
NPM_TIMEOUT = 300
CLIENT_TIMEOUT = 90            # the node process as a whole (its own bound is CLIENT_TIMEOUT_MS)
CLIENT_TIMEOUT_MS = 60_000
N_CHUNKS = 8
API_KEY = "sk-protocol-clients-7f3a9c"

# What the scripts send (tests/node/client_common.mjs).
PROMPT = "Say hello"
TOOL_NAME = "get_weather"
TOOL_ARGS = {"city": "Paris"}
TOOL_RESULT = "sunny, 21 C"
STREAM_TEXT = "".join(f"chunk{i} " for i in range(N_CHUNKS))


def setUpModule():
    require_binary()


def pinned_packages():
    """name -> version of tests/node/package.json's dependencies."""
    with open(NODE_DIR / "package.json") as f:
        return json.load(f)["dependencies"]


def installed_version(name):
    try:
        with open(NODE_DIR / "node_modules" / name / "package.json") as f:
            return json.load(f).get("version")
    except (OSError, ValueError):
        return None


def ensure_node_modules():
    """Install tests/node/node_modules (npm ci, else npm install) unless every pinned package
    is there at its pinned version; AssertionError when that fails."""
    if all(installed_version(n) == v for n, v in pinned_packages().items()):
        return
    npm = shutil.which("npm")
    if not npm:
        raise AssertionError("tests/node/node_modules lacks a pinned package and `npm` is not installed")
    errors = []
    for argv in ([npm, "ci", "--no-audit", "--no-fund"], [npm, "install", "--no-audit", "--no-fund"]):
        try:
            p = subprocess.run(argv, cwd=NODE_DIR, stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=NPM_TIMEOUT)
        except subprocess.TimeoutExpired:
            errors.append(f"{' '.join(argv[1:])}: timed out after {NPM_TIMEOUT}s")
            continue
        if p.returncode == 0:
            return
        errors.append(f"{' '.join(argv[1:])}: exit {p.returncode}\n{p.stderr[-2000:]}")
    raise AssertionError("could not install tests/node dependencies:\n" + "\n".join(errors))


def write_keys(c, keys):
    """The coordinator's --api-keys-file (key.txt format), in its own dir."""
    path = os.path.join(c.dir, "keys.txt")
    with open(path, "w") as f:
        f.write("".join(f"{k}\n" for k in keys))
    return path


def node_or_skip():
    """The `node` binary with tests/node's packages installed; SkipTest when there is no node."""
    node = shutil.which("node")
    if not node:
        raise unittest.SkipTest("`node` is not installed: the SDK client tests need Node.js")
    ensure_node_modules()
    return node


class ClientRunner:
    """Runs a client script against coordinator `c` and pairs what it did with the child's
    journal."""

    def setUp(self):
        self.node = node_or_skip()

    def run_client(self, c, protocol, *scenarios, api_key=API_KEY):
        """The JSON results of SCRIPT for `scenarios` (AssertionError, with both sides' output,
        when the script fails or times out)."""
        script = SCRIPTS[protocol]
        argv = [self.node, script, f"http://127.0.0.1:{c.port}", api_key, *scenarios]
        env = dict(os.environ, CLIENT_TIMEOUT_MS=str(CLIENT_TIMEOUT_MS))
        try:
            p = subprocess.run(argv, cwd=NODE_DIR, stdin=subprocess.DEVNULL, capture_output=True,
                               text=True, timeout=CLIENT_TIMEOUT, env=env)
        except subprocess.TimeoutExpired as e:
            self.fail(f"{script} did not finish in {CLIENT_TIMEOUT}s; stdout: {e.stdout!r}\n"
                      f"{c.output_tail()}")
        lines = p.stdout.strip().splitlines()
        try:
            out = json.loads(lines[-1])
        except (ValueError, IndexError):
            out = None
        if p.returncode != 0 or out is None:
            self.fail(f"{script} {' '.join(scenarios)} failed (exit {p.returncode}):\n"
                      f"stdout: {p.stdout[-4000:]}\nstderr: {p.stderr[-4000:]}\n{c.output_tail()}")
        return out

    def mark(self, c, name):
        return len(c.events(name))

    def child_answers(self, c, name, since, n):
        """The `n` chat requests child `name` accepted after journal index `since`, each as
        (chat_request event, its chat_done/stream_done event); waits (bounded) for the done
        events, which are written after the answer's last byte."""
        def pairs():
            events = c.events(name)[since:]
            requests = [e for e in events if e.get("event") == "chat_request"]
            done = {e.get("req_id"): e for e in events
                    if e.get("event") in ("chat_done", "stream_done")}
            if len(requests) < n or any(r["req_id"] not in done for r in requests[:n]):
                return None
            return [(r, done[r["req_id"]]) for r in requests[:n]]
        got = wait_until(pairs, 5)
        self.assertTrue(got, f"child {name}: not {n} answered chat requests after #{since}: "
                             f"{c.events(name)[since:]}")
        return got

    def assert_round_trip_history(self, first_req, second_req):
        """What the child was sent across a tool round trip: the tool declared, then the
        history user -> assistant (with the call) -> tool (answering that call)."""
        self.assertEqual(first_req["tools"], [TOOL_NAME], first_req)
        self.assertEqual(first_req["roles"], ["user"], first_req)
        self.assertIn(f"call tool {TOOL_NAME}", first_req["last_text"], first_req)
        self.assertEqual(second_req["roles"], ["user", "assistant", "tool"], second_req)
        calls = second_req["assistant_tool_calls"]
        self.assertEqual(len(calls), 1, second_req)
        self.assertEqual(calls[0]["name"], TOOL_NAME, second_req)
        self.assertIsInstance(calls[0]["arguments"], str, "the child needs arguments as a string")
        self.assertEqual(json.loads(calls[0]["arguments"]), TOOL_ARGS, second_req)
        self.assertEqual(second_req["tool_call_ids"], [calls[0]["id"]],
                         f"the tool message answers the call in the history: {second_req}")
        self.assertIn(TOOL_RESULT, second_req["last_text"], second_req)


class ProtocolClientTests(ClientRunner, unittest.TestCase):
    """One coordinator with an API key and one fake child, every SDK scenario against it."""

    CHILD = "solo"

    @classmethod
    def setUpClass(cls):
        node_or_skip()  # before the coordinator starts: nothing to stop when skipped
        cls.c = Coordinator({cls.CHILD: {"stream_chunks": N_CHUNKS, "stream_interval": 0.01}},
                            extra_args=["--api-keys-file", "keys.txt"])
        write_keys(cls.c, [API_KEY])
        cls.c.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.c.__exit__(None, None, None)

    def run_and_pair(self, protocol, *scenarios, requests):
        since = self.mark(self.c, self.CHILD)
        out = self.run_client(self.c, protocol, *scenarios)
        return out, self.child_answers(self.c, self.CHILD, since, requests)

    # -- OpenAI Responses -------------------------------------------------------------
    def assert_responses_usage(self, usage, done):
        u = done["usage"]
        self.assertEqual((usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]),
                         (u["prompt_tokens"], u["completion_tokens"], u["total_tokens"]),
                         f"usage {usage} vs the child's {u}")

    def test_responses_text_and_stream(self):
        out, [(req, done), (sreq, sdone)] = self.run_and_pair("responses", "text", "stream", requests=2)
        text = out["text"]
        self.assertEqual(text["text"], f"Hello from {self.CHILD}", out)
        self.assertEqual(text["object"], "response", out)
        self.assertEqual(text["status"], "completed", out)
        self.assertEqual(text["output_types"], ["message"], out)
        self.assert_responses_usage(text["usage"], done)
        self.assertEqual((req["stream"], req["roles"], req["last_text"]), (False, ["user"], PROMPT), req)
        self.assertEqual(req["model"].split("/")[-1], "fake-model", req)

        stream = out["stream"]
        self.assertEqual(stream["delta_text"], STREAM_TEXT, out)
        self.assertEqual(stream["text"], STREAM_TEXT, "response.completed holds the whole text")
        order = stream["events"]["order"]
        self.assertEqual(order[0], "response.created", order)
        self.assertEqual(order[-1], "response.completed", order)
        for event in ("response.output_item.added", "response.output_text.done",
                      "response.output_item.done"):
            self.assertIn(event, order)
        # One delta per child chunk: nothing is held back and sent in one piece.
        self.assertEqual(stream["events"]["counts"]["response.output_text.delta"], N_CHUNKS, stream)
        self.assertTrue(stream["sequence_ordered"], stream)
        self.assertEqual(stream["status"], "completed", stream)
        self.assert_responses_usage(stream["usage"], sdone)
        self.assertTrue(sreq["stream"], sreq)

    def test_responses_tool_round_trip(self):
        out, [(r1, d1), (r2, d2)] = self.run_and_pair("responses", "tools", requests=2)
        t = out["tools"]
        self.assertEqual([(c["name"], c["args"]) for c in t["calls"]], [(TOOL_NAME, TOOL_ARGS)], out)
        self.assertTrue(t["calls"][0]["call_id"], out)
        self.assertEqual(t["first"]["output_types"], ["function_call"], out)
        self.assertEqual(d1["finish_reason"], "tool_calls", d1)
        self.assert_responses_usage(t["first"]["usage"], d1)
        self.assertEqual(t["text"], f"tool said: {TOOL_RESULT}", out)
        self.assert_responses_usage(t["second"]["usage"], d2)
        self.assert_round_trip_history(r1, r2)

    def test_responses_stream_tool_round_trip(self):
        out, [(r1, d1), (r2, d2)] = self.run_and_pair("responses", "stream_tools", requests=2)
        t = out["stream_tools"]
        self.assertEqual([(c["name"], c["args"]) for c in t["calls"]], [(TOOL_NAME, TOOL_ARGS)], out)
        self.assertEqual(json.loads(t["arguments_done"]), TOOL_ARGS, out)
        self.assertEqual(json.loads(t["argument_deltas"]), TOOL_ARGS, "the deltas add up to the arguments")
        order = t["first"]["events"]["order"]
        for event in ("response.created", "response.output_item.added",
                      "response.function_call_arguments.done", "response.output_item.done",
                      "response.completed"):
            self.assertIn(event, order)
        self.assertEqual(t["first"]["output_types"], ["function_call"], out)
        self.assertTrue(r1["stream"] and d1["event"] == "stream_done", (r1, d1))
        self.assert_responses_usage(t["first"]["usage"], d1)
        self.assertEqual(t["text"], f"tool said: {TOOL_RESULT}", out)
        self.assert_responses_usage(t["second"]["usage"], d2)
        self.assert_round_trip_history(r1, r2)

    # -- Anthropic Messages -----------------------------------------------------------
    def assert_anthropic_usage(self, usage, done):
        u = done["usage"]
        self.assertEqual((usage["input_tokens"], usage["output_tokens"]),
                         (u["prompt_tokens"], u["completion_tokens"]),
                         f"usage {usage} vs the child's {u}")

    def test_anthropic_text_and_stream(self):
        out, [(req, done), (sreq, sdone)] = self.run_and_pair("anthropic", "text", "stream", requests=2)
        text = out["text"]
        self.assertEqual(text["text"], f"Hello from {self.CHILD}", out)
        self.assertEqual((text["type"], text["role"], text["stop_reason"]),
                         ("message", "assistant", "end_turn"), out)
        self.assert_anthropic_usage(text["usage"], done)
        self.assertEqual((req["stream"], req["roles"], req["last_text"]), (False, ["user"], PROMPT), req)

        stream = out["stream"]
        self.assertEqual(stream["delta_text"], STREAM_TEXT, out)
        self.assertEqual(stream["text"], STREAM_TEXT, "the SDK's final message holds the whole text")
        order = stream["events"]["order"]
        self.assertEqual(order[0], "message_start", order)
        self.assertEqual(order[-1], "message_stop", order)
        for event in ("content_block_start", "content_block_stop", "message_delta"):
            self.assertIn(event, order)
        self.assertEqual(stream["events"]["counts"]["content_block_delta"], N_CHUNKS, stream)
        self.assertEqual(stream["stop_reason"], "end_turn", stream)
        # The child's usage comes last: message_delta carries it (input_tokens too).
        self.assert_anthropic_usage(stream["usage"], sdone)
        self.assertTrue(sreq["stream"], sreq)

    def test_anthropic_tool_round_trip(self):
        out, [(r1, d1), (r2, d2)] = self.run_and_pair("anthropic", "tools", requests=2)
        t = out["tools"]
        self.assertEqual([(c["name"], c["input"]) for c in t["calls"]], [(TOOL_NAME, TOOL_ARGS)], out)
        self.assertTrue(t["calls"][0]["id"], out)
        self.assertEqual(t["first"]["stop_reason"], "tool_use", out)
        self.assertEqual(t["first"]["content_types"], ["tool_use"], out)
        self.assert_anthropic_usage(t["first"]["usage"], d1)
        self.assertEqual(t["text"], f"tool said: {TOOL_RESULT}", out)
        self.assertEqual(t["second"]["stop_reason"], "end_turn", out)
        self.assert_anthropic_usage(t["second"]["usage"], d2)
        self.assert_round_trip_history(r1, r2)

    def test_anthropic_stream_tool_round_trip(self):
        out, [(r1, d1), (r2, d2)] = self.run_and_pair("anthropic", "stream_tools", requests=2)
        t = out["stream_tools"]
        self.assertEqual([(c["name"], c["input"]) for c in t["calls"]], [(TOOL_NAME, TOOL_ARGS)], out)
        self.assertEqual(json.loads(t["first"]["partial_json"]), TOOL_ARGS,
                         "input_json_delta pieces add up to the arguments")
        self.assertEqual(t["first"]["stop_reason"], "tool_use", out)
        self.assertEqual(t["first"]["events"]["order"][-1], "message_stop", out)
        self.assertTrue(r1["stream"] and d1["event"] == "stream_done", (r1, d1))
        self.assert_anthropic_usage(t["first"]["usage"], d1)
        self.assertEqual(t["text"], f"tool said: {TOOL_RESULT}", out)
        self.assert_anthropic_usage(t["second"]["usage"], d2)
        self.assert_round_trip_history(r1, r2)

    # -- Gemini -----------------------------------------------------------------------
    def assert_gemini_usage(self, usage, done):
        u = done["usage"]
        # proto3 JSON may leave out a count that is 0
        got = (usage.get("promptTokenCount", 0), usage.get("candidatesTokenCount", 0),
               usage.get("totalTokenCount", 0))
        self.assertEqual(got, (u["prompt_tokens"], u["completion_tokens"], u["total_tokens"]),
                         f"usageMetadata {usage} vs the child's {u}")

    def assert_gemini_tool_text(self, text):
        # functionResponse.response is an object: the child sees it as JSON text
        self.assertTrue(text.startswith("tool said: ") and TOOL_RESULT in text, text)

    def test_gemini_text_and_stream(self):
        out, [(req, done), (sreq, sdone)] = self.run_and_pair("gemini", "text", "stream", requests=2)
        text = out["text"]
        self.assertEqual(text["text"], f"Hello from {self.CHILD}", out)
        self.assertEqual((text["finish_reason"], text["role"]), ("STOP", "model"), out)
        self.assert_gemini_usage(text["usage"], done)
        self.assertEqual((req["stream"], req["roles"], req["last_text"]), (False, ["user"], PROMPT), req)
        self.assertEqual(req["model"].split("/")[-1], "fake-model", req)

        stream = out["stream"]
        self.assertEqual(stream["text"], STREAM_TEXT, out)
        self.assertEqual(stream["part_kinds"]["counts"].get("text"), N_CHUNKS, stream)
        self.assertEqual(stream["finish_reason"], "STOP", stream)
        self.assert_gemini_usage(stream["usage"], sdone)
        self.assertTrue(sreq["stream"], sreq)

    def test_gemini_tool_round_trip(self):
        out, [(r1, d1), (r2, d2)] = self.run_and_pair("gemini", "tools", requests=2)
        t = out["tools"]
        self.assertEqual([(c["name"], c["args"]) for c in t["calls"]], [(TOOL_NAME, TOOL_ARGS)], out)
        self.assertEqual(t["first"]["part_kinds"], ["functionCall"], out)
        self.assert_gemini_usage(t["first"]["usage"], d1)
        self.assert_gemini_tool_text(t["text"])
        self.assert_gemini_usage(t["second"]["usage"], d2)
        self.assert_round_trip_history(r1, r2)

    def test_gemini_stream_tool_round_trip(self):
        out, [(r1, d1), (r2, d2)] = self.run_and_pair("gemini", "stream_tools", requests=2)
        t = out["stream_tools"]
        self.assertEqual([(c["name"], c["args"]) for c in t["calls"]], [(TOOL_NAME, TOOL_ARGS)], out)
        self.assertTrue(r1["stream"] and d1["event"] == "stream_done", (r1, d1))
        self.assert_gemini_usage(t["first"]["usage"], d1)
        self.assert_gemini_tool_text(t["text"])
        self.assert_gemini_usage(t["second"]["usage"], d2)
        self.assert_round_trip_history(r1, r2)

    def test_gemini_models_list(self):
        out = self.run_client(self.c, "gemini", "models")
        self.assertIn("models/fake-model", out["models"]["names"], out)

    # -- keys as each protocol's other clients send them --------------------------------
    def test_protocol_key_headers(self):
        c = self.c
        anthropic = {"model": "fake-model", "max_tokens": 64,
                     "messages": [{"role": "user", "content": PROMPT}]}
        gemini = {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}
        gen_path = "/v1beta/models/fake-model:generateContent"
        # @anthropic-ai/sdk 1.x sends a bearer token; 0.x, curl and most other clients x-api-key
        r = c.post_json("/v1/messages", anthropic,
                        headers={"x-api-key": API_KEY, "anthropic-version": "2023-06-01"})
        self.assertEqual(r.status, 200, r)
        r = c.post_json("/v1/messages", anthropic, headers={"x-api-key": "sk-wrong"})
        self.assertEqual(r.status, 401, r)
        # Gemini: the key as a query parameter (REST samples, curl) besides x-goog-api-key
        r = c.post_json(f"{gen_path}?key={API_KEY}", gemini)
        self.assertEqual(r.status, 200, r)
        r = c.post_json(gen_path, gemini, headers={"x-goog-api-key": "sk-wrong"})
        self.assertEqual(r.status, 401, r)
        r = c.post_json(gen_path + "?key=sk-wrong", gemini)
        self.assertEqual(r.status, 401, r)
        r = c.get("/v1beta/models", headers={"x-goog-api-key": API_KEY})
        self.assertEqual(r.status, 200, r)
        r = c.post_json("/v1/responses", {"model": "fake-model", "input": PROMPT})
        self.assertEqual(r.status, 401, r)
        # A key= in the URL must not reach a log (the access log prints paths).
        for path in c.all_log_files():
            try:
                with open(path, "rb") as f:
                    self.assertNotIn(API_KEY.encode(), f.read(), f"the key is in {path}")
            except OSError:
                pass


class ProtocolEdgeTests(unittest.TestCase):
    """The translated routes without an SDK: errors in each protocol's own shape, refusals that
    reach no child, count_tokens, --model-alias, Anthropic's ping while the child is silent, and
    usage counted per key."""

    CHILD = "edge"
    ALIAS = "claude-test-alias"
    KEY_HEADERS = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}

    @classmethod
    def setUpClass(cls):
        cls.c = Coordinator({cls.CHILD: {"chat_delay": 2.5, "stream_chunks": 3, "stream_interval": 0.01}},
                            extra_args=["--api-keys-file", "keys.txt", "--sse-heartbeat", "1",
                                        "--model-alias", f"{cls.ALIAS}=fake-model"])
        write_keys(cls.c, [API_KEY])
        cls.c.__enter__()
        wait_models_learned(cls.c, [cls.CHILD])

    @classmethod
    def tearDownClass(cls):
        cls.c.__exit__(None, None, None)

    def anthropic_body(self, **extra):
        return dict({"model": "fake-model", "max_tokens": 64,
                     "messages": [{"role": "user", "content": PROMPT}]}, **extra)

    def requests_to_child(self):
        return len(self.c.chat_requests(self.CHILD))

    def test_errors_come_in_each_protocols_shape_and_reach_no_child(self):
        c = self.c
        before = self.requests_to_child()
        r = c.post_json("/v1/messages", self.anthropic_body(), headers={"x-api-key": "sk-wrong"})
        self.assertEqual((r.status, r.json()["type"], r.json()["error"]["type"]),
                         (401, "error", "authentication_error"), r.text)
        r = c.post_json("/v1/messages", self.anthropic_body(model="no-such-model"), headers=self.KEY_HEADERS)
        self.assertEqual((r.status, r.json()["error"]["type"]), (404, "not_found_error"), r.text)
        self.assertIn("fake-model", r.json()["error"]["message"], "the known ids are named")
        r = c.post_json("/v1/messages", {"messages": "not a list"}, headers=self.KEY_HEADERS)
        self.assertEqual((r.status, r.json()["error"]["type"]), (400, "invalid_request_error"), r.text)
        r = c.request("POST", "/v1/messages", body=b"{not json", headers=dict(self.KEY_HEADERS))
        self.assertEqual((r.status, r.json()["error"]["type"]), (400, "invalid_request_error"), r.text)
        r = c.post_json("/v1/responses", {"model": "fake-model", "input": PROMPT, "store": True},
                        headers={"Authorization": f"Bearer {API_KEY}"})
        self.assertEqual(r.status, 400, r.text)
        self.assertIn("store", r.json()["error"]["message"])
        gemini = {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}
        key = {"x-goog-api-key": API_KEY}
        r = c.post_json("/v1beta/models/fake-model:streamGenerateContent", gemini, headers=key)
        self.assertEqual((r.status, r.json()["error"]["status"]), (400, "INVALID_ARGUMENT"), r.text)
        self.assertIn("alt=sse", r.json()["error"]["message"])
        r = c.get("/v1beta/models/no-such-model", headers=key)
        self.assertEqual((r.status, r.json()["error"]["status"]), (404, "NOT_FOUND"), r.text)
        r = c.post_json("/v1beta/models/fake-model:embedContent", gemini, headers=key)
        self.assertEqual((r.status, r.json()["error"]["code"]), (404, 404), r.text)
        r = c.get("/v1beta/models/fake-model", headers=key)
        self.assertEqual((r.status, r.json()["name"]), (200, "models/fake-model"), r.text)
        self.assertEqual(self.requests_to_child(), before, "no refused request reached the child")

    def test_count_tokens_is_an_estimate_made_here(self):
        before = self.requests_to_child()
        r = self.c.post_json("/v1/messages/count_tokens", {"model": "fake-model", "messages": [
            {"role": "user", "content": "a prompt of some forty characters, or so"}]}, headers=self.KEY_HEADERS)
        self.assertEqual(r.status, 200, r.text)
        self.assertTrue(r.json()["estimated"], r.text)
        self.assertGreater(r.json()["input_tokens"], 5, r.text)
        self.assertEqual(self.requests_to_child(), before)

    def test_a_model_alias_reaches_the_child_as_its_target(self):
        since = len(self.c.events(self.CHILD))
        r = self.c.post_json("/v1/messages", self.anthropic_body(model=self.ALIAS), headers=self.KEY_HEADERS)
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(r.json()["model"], self.ALIAS, "the answer keeps the client's name")
        sent = [e for e in self.c.events(self.CHILD)[since:] if e.get("event") == "chat_request"]
        self.assertEqual([e["model"].split("/")[-1] for e in sent], ["fake-model"], sent)

    def test_anthropic_stream_pings_while_the_child_is_silent(self):
        body = self.anthropic_body(stream=True)
        with SSEStream(self.c.port, body=body, path="/v1/messages", headers=self.KEY_HEADERS, timeout=15) as s:
            self.assertEqual(s.read_head(15), 200)
            lines = [line for _, line in s.read_to_end(15)]
        events = [line[len("event: "):] for line in lines if line.startswith("event: ")]
        self.assertEqual(events[0], "message_start", lines)
        first_delta = events.index("content_block_delta")
        self.assertGreaterEqual(events[:first_delta].count("ping"), 1,
                                f"no ping in the child's 2.5 s of silence: {events}")
        self.assertEqual(events[-2:], ["message_delta", "message_stop"], events)
        self.assertFalse(any(line.startswith(": ") for line in lines), "pings, not comments")

    def test_a_client_that_leaves_a_translated_stream_ends_the_childs_work(self):
        body = {"input": PROMPT, "model": "fake-model", "stream": True}
        earlier = {e.get("req_id") for e in self.c.events(self.CHILD)}
        s = SSEStream(self.c.port, body=body, path="/v1/responses",
                      headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)
        try:
            self.assertEqual(s.read_head(5), 200)
        finally:
            t_left = time.time()
            s.close()
        start = self.c.wait_event(lambda e: e.get("event") == "chat_start" and e.get("stream")
                                  and e.get("req_id") not in earlier, timeout=5, name=self.CHILD)
        self.assertTrue(start, f"the child never got the request: {self.c.events(self.CHILD)}")
        seen = self.c.wait_event(lambda e: e.get("req_id") == start["req_id"]
                                 and e.get("event") in ("client_disconnected", "cancel"),
                                 timeout=5, name=self.CHILD)
        self.assertTrue(seen, f"the child never saw the client leave: {self.c.events(self.CHILD)}")
        self.assertLessEqual(seen["t"] - t_left, 1.5, seen)

    def test_usage_counts_translated_requests_under_their_key(self):
        key_id = "key-" + hashlib.sha256(API_KEY.encode()).hexdigest()[:8]
        auth = {"Authorization": f"Bearer {API_KEY}"}

        def requests_2xx():
            by_key = self.c.get("/admin/usage", headers=auth).json()["totals"]["by_key"]
            return by_key.get(key_id, {}).get("requests", {}).get("2xx", 0)

        before = requests_2xx()
        r = self.c.post_json("/v1beta/models/fake-model:generateContent",
                             {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]},
                             headers={"x-goog-api-key": API_KEY})
        self.assertEqual(r.status, 200, r.text)
        self.assertTrue(wait_until(lambda: requests_2xx() == before + 1, 5),
                        f"2xx for {key_id}: {requests_2xx()} (was {before})")


class QuotaFailoverTests(ClientRunner, unittest.TestCase):
    """A 530 (the fake's `quota_models`: this account's quota for the model is spent) from the
    first child is retried on the second, for each protocol, non-stream and stream."""

    def check_failover(self, protocol, scenario):
        profiles = {"alpha": {"quota_models": ["fake-model"]},
                    "beta": {"stream_chunks": N_CHUNKS, "stream_interval": 0.01}}
        with Coordinator(profiles, extra_args=["--quota-cooldown", "60"]) as c:
            wait_models_learned(c, ["alpha", "beta"])
            runs = 0
            # alpha, first in name order, normally gets the first request; the bound covers a
            # balancer that starts elsewhere.
            while runs < 3 and not c.chat_requests("alpha"):
                out = self.run_client(c, protocol, scenario, api_key="sk-any")
                runs += 1
                result = out[scenario]
                if scenario == "text":
                    self.assertEqual(result["text"], "Hello from beta", out)
                else:
                    self.assertEqual(result.get("text"), STREAM_TEXT, out)
            tried = c.chat_requests("alpha")
            self.assertTrue(tried, f"the coordinator never sent alpha a request in {runs} runs")
            refused = [e for e in c.events("alpha", "chat_error") if e.get("status") == 530]
            self.assertEqual(len(refused), len(tried), "alpha answered each with 530")
            self.assertEqual(len(c.events("alpha", "chat_request")), 0, "alpha served nothing")
            served = c.events("beta", "stream_done" if scenario == "stream" else "chat_done")
            self.assertEqual(len(served), runs, served)

    def test_responses_quota_failover(self):
        for scenario in ("text", "stream"):
            with self.subTest(scenario=scenario):
                self.check_failover("responses", scenario)

    def test_anthropic_quota_failover(self):
        for scenario in ("text", "stream"):
            with self.subTest(scenario=scenario):
                self.check_failover("anthropic", scenario)

    def test_gemini_quota_failover(self):
        for scenario in ("text", "stream"):
            with self.subTest(scenario=scenario):
                self.check_failover("gemini", scenario)


if __name__ == "__main__":
    unittest.main()
