"""Models (issue 14): the coordinator learns each child's /v1/models and routes by model.

* GET /v1/models is the union of the ready children's lists, answered by the coordinator itself
  (no child is taken: it answers while every child is busy); before any child has listed its
  models, it is forwarded as before.
* A chat request naming a model goes only to children that list it (with or without the
  ``models/`` prefix, as the real child compares ids); none lists it: 404 ``model_not_found``
  naming the known ids; no model: any child; a child whose list is unknown takes any model.
* A child's list is read again every ``--models-interval``.

The fake child's list comes from its ``_fake.models`` (or ``_fake.models_file``, re-read at every
call): docs/fake-child-contract.md.  Every wait is bounded; all traffic is on 127.0.0.1.
"""

import json
import os
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (  # noqa: E402
    Background, Coordinator, SharedCoordinator, chat_body, error_of, require_binary, served_by,
    wait_until)


def setUpModule():
    require_binary()


def model_ids(response):
    return [entry["id"] for entry in response.json()["data"]]


def wait_models_learned(c, names, timeout=10.0):
    """Wait until /ready shows a learned list (a model count) for every child in `names`."""
    def learned():
        counts = {e.get("name"): e.get("models") for e in c.children()}
        return all(counts.get(n) is not None for n in names)
    if not wait_until(learned, timeout):
        raise AssertionError(f"models not learned within {timeout} s: {c.children()}\n{c.output_tail()}")


def coordinator_model_reads(c, name):
    """The coordinator's own GET /v1/models calls that child `name` saw."""
    return [e for e in c.requests(name, "/v1/models", "GET")
            if e.get("headers", {}).get("user-agent") == "coordinator"]


class RoutingByModelTests(SharedCoordinator):
    PROFILES = {"alpha": {"models": ["shared", "only-alpha"]},
                "beta": {"models": ["shared", "models/only-beta"]}}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        wait_models_learned(cls.c, ["alpha", "beta"])

    def test_union_of_the_ready_children_each_id_once(self):
        r = self.c.get("/v1/models")
        self.assertEqual(r.status, 200, r)
        body = r.json()
        self.assertEqual(body["object"], "list")
        ids = model_ids(r)
        self.assertEqual(sorted(ids), ["only-alpha", "only-beta", "shared"])
        for entry in body["data"]:
            # The child's own entry, as the real child writes it.
            self.assertEqual(entry["object"], "model")
            self.assertEqual(entry["owned_by"], "ai_studio")
            self.assertIsInstance(entry["created"], int)
            self.assertEqual(entry["raw_model_path"], "models/" + entry["id"])
        # Answered by the coordinator: no client GET /v1/models reached a child.
        for name in self.c.names:
            self.assertEqual([e for e in self.c.requests(name, "/v1/models")
                              if e not in coordinator_model_reads(self.c, name)], [], name)

    def test_union_answered_while_every_child_is_busy(self):
        c = self.c
        slow = [Background(lambda i, m=m: c.post_json(
            "/v1/chat/completions", chat_body(f"slow {m}", model=m, fake_duration=2.5), timeout=15))
            for m in ("only-alpha", "only-beta")]
        try:
            busy = wait_until(lambda: set(c.child_states().values()) == {"busy"}, 5)
            self.assertTrue(busy, c.child_states())
            t0 = time.monotonic()
            r = c.get("/v1/models", timeout=5)
            elapsed = time.monotonic() - t0
            self.assertEqual(r.status, 200, r)
            self.assertEqual(sorted(model_ids(r)), ["only-alpha", "only-beta", "shared"])
            self.assertLess(elapsed, 1.0, "/v1/models waited for a child")
            self.assertEqual(set(c.child_states().values()), {"busy"})
        finally:
            for b in slow:
                self.assertTrue(b.join(15), "slow request still running")
        self.assertEqual([b.status for b in slow], [200, 200])
        self.assertEqual(sorted(served_by(b.result) for b in slow), ["alpha", "beta"])

    def test_a_model_only_beta_lists_goes_to_beta(self):
        served = []
        for i in range(4):
            r = self.c.chat(f"beta {i}", model="only-beta")
            self.assertEqual(r.status, 200, r)
            served.append(served_by(r))
        self.assertEqual(served, ["beta"] * 4)
        served = [served_by(self.c.chat(f"alpha {i}", model="only-alpha")) for i in range(4)]
        self.assertEqual(served, ["alpha"] * 4)

    def test_models_prefix_is_compared_as_the_child_compares(self):
        r = self.c.chat("prefixed", model="models/only-beta")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(served_by(r), "beta")
        r = self.c.chat("prefixed", model="models/only-alpha")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(served_by(r), "alpha")

    def test_a_model_written_with_escapes(self):
        body = b'{"model":"only\\u002dbeta","messages":[{"role":"user","content":"esc"}]}'
        r = self.c.request("POST", "/v1/chat/completions", body=body,
                           headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(served_by(r), "beta")

    def test_unknown_model_is_404_model_not_found_listing_the_ids(self):
        before = {n: len(self.c.chat_requests(n)) for n in self.c.names}
        r = self.c.chat("nobody", model="gpt-4o")
        self.assertEqual(r.status, 404, r)
        error = error_of(r)
        self.assertEqual(error["code"], "model_not_found", error)
        self.assertEqual(error["type"], "invalid_request_error", error)
        self.assertIn("gpt-4o", error["message"])
        for model in ("shared", "only-alpha", "only-beta"):
            self.assertIn(model, error["message"])
        # Streamed requests get the same plain 404 (nothing was started).
        r = self.c.chat("nobody", model="gpt-4o", stream=True)
        self.assertEqual(r.status, 404, r)
        self.assertEqual(error_of(r)["code"], "model_not_found")
        self.assertEqual({n: len(self.c.chat_requests(n)) for n in self.c.names}, before)

    def test_no_model_goes_to_any_child(self):
        served = []
        for i in range(4):
            r = self.c.post_json("/v1/chat/completions",
                                 {"messages": [{"role": "user", "content": f"any {i}"}]})
            self.assertEqual(r.status, 200, r)
            served.append(served_by(r))
        self.assertEqual(sorted(set(served)), ["alpha", "beta"], served)
        # The children's MODEL_NAME means "the page's model" to the real child: any child too.
        served = {served_by(self.c.chat(f"proxy {i}", model="AI-Studio_Proxy_API")) for i in range(4)}
        self.assertEqual(served, {"alpha", "beta"})

    def test_model_in_a_sub_object_is_not_the_model(self):
        r = self.c.post_json("/v1/chat/completions", {
            "messages": [{"role": "user", "content": "nested"}], "extra": {"model": "gpt-4o"}})
        self.assertEqual(r.status, 200, r)


class UnknownListsTests(unittest.TestCase):

    def test_forwarded_until_a_child_lists_its_models_and_unknown_takes_any_model(self):
        # An empty list: the fake answers the real child's fallback entry ("no list yet").
        with Coordinator({"alpha": {"models": []}}) as c:
            self.assertTrue(wait_until(lambda: c.requests("alpha", "/v1/models"), 5),
                            "the coordinator never read alpha's /v1/models")
            r = c.get("/v1/models")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["data"][0]["owned_by"], "camoufox-proxy-fallback")
            # The client's request reached the child (forwarded as before), credentials too.
            r = c.get("/v1/models", headers={"Authorization": "Bearer sk-fwd", "X-API-Key": "k-fwd"})
            self.assertEqual(r.status, 200, r)
            clients = [e for e in c.requests("alpha", "/v1/models")
                       if e.get("headers", {}).get("user-agent") != "coordinator"]
            self.assertEqual(len(clients), 2, clients)
            self.assertEqual(clients[-1]["headers"].get("authorization"), "Bearer sk-fwd")
            self.assertEqual(clients[-1]["headers"].get("x-api-key"), "k-fwd")
            self.assertIsNone(c.child("alpha").get("models"))
            r = c.chat("any model", model="whatever-model")
            self.assertEqual(r.status, 200, r)

    def test_a_model_no_learned_child_lists_goes_to_a_child_not_learned_yet(self):
        with Coordinator({"alpha": {"models": ["only-alpha"]}, "beta": {"models": []}}) as c:
            wait_models_learned(c, ["alpha"])
            self.assertTrue(wait_until(lambda: c.requests("beta", "/v1/models"), 5))
            served = {served_by(c.chat(f"x {i}", model="beta-might-have-it")) for i in range(3)}
            self.assertEqual(served, {"beta"})
            # The union holds what is known.
            self.assertEqual(model_ids(c.get("/v1/models")), ["only-alpha"])


class RefreshTests(unittest.TestCase):
    """The children run on working copies of their profiles elsewhere: `models_file` is absolute."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="coord-models-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.models_path = os.path.join(self.tmp, "alpha-models.json")

    def steer(self, value):
        """Write `value` (a list of ids, or {"status": N}) where the fake reads it, atomically."""
        with open(self.models_path + ".tmp", "w") as f:
            json.dump(value, f)
        os.replace(self.models_path + ".tmp", self.models_path)

    def test_a_childs_list_is_read_again_after_the_models_interval(self):
        with Coordinator({"alpha": {"models_file": self.models_path, "models": ["old-model"]}},
                         extra_args=["--models-interval", "0.5"]) as c:
            wait_models_learned(c, ["alpha"])
            self.assertEqual(model_ids(c.get("/v1/models")), ["old-model"])
            r = c.chat("old", model="new-model")
            self.assertEqual(r.status, 404, r)
            self.steer(["old-model", "new-model"])
            self.assertTrue(wait_until(lambda: "new-model" in model_ids(c.get("/v1/models")), 10),
                            c.output_tail())
            r = c.chat("new", model="new-model")
            self.assertEqual(r.status, 200, r)
            reads = len(coordinator_model_reads(c, "alpha"))
            self.assertGreaterEqual(reads, 2)
            # Still read while nothing changes, about every interval (bounded above by the busy
            # retry and the test's own pace).
            self.assertTrue(wait_until(lambda: len(coordinator_model_reads(c, "alpha")) >= reads + 2, 10))

    def test_reads_wait_while_the_child_is_busy(self):
        with Coordinator({"alpha": {}}, extra_args=["--models-interval", "0.3"]) as c:
            wait_models_learned(c, ["alpha"])
            slow = Background(lambda i: c.post_json(
                "/v1/chat/completions", chat_body("slow", fake_duration=2.5), timeout=15))
            try:
                self.assertTrue(wait_until(lambda: c.child_states().get("alpha") == "busy", 5))
                started = time.time()
                time.sleep(1.5)
                during = [e for e in coordinator_model_reads(c, "alpha") if e["t"] >= started]
                self.assertEqual(during, [], "a models read went to a busy child")
            finally:
                self.assertTrue(slow.join(15))
            self.assertEqual(slow.status, 200, slow.result)
            self.assertTrue(wait_until(
                lambda: [e for e in coordinator_model_reads(c, "alpha") if e["t"] >= started], 5))

    def test_a_failed_read_keeps_the_last_known_list_and_logs_once(self):
        with Coordinator({"alpha": {"models_file": self.models_path, "models": ["kept-model"]}},
                         extra_args=["--models-interval", "0.3"]) as c:
            wait_models_learned(c, ["alpha"])
            self.steer({"status": 500})  # the fake answers 500 to /v1/models from now on
            self.assertTrue(wait_until(lambda: len(c.events("alpha", "models_error")) >= 3, 10),
                            c.output_tail())
            self.assertEqual(model_ids(c.get("/v1/models")), ["kept-model"])
            self.assertEqual(c.chat("kept", model="kept-model").status, 200)
            self.assertEqual(c.chat("gone", model="other-model").status, 404)
            failures = [line for line in c.output().splitlines() if "reading /v1/models failed" in line]
            self.assertEqual(len(failures), 1, failures)
            self.assertIn("500", failures[0])


if __name__ == "__main__":
    unittest.main()
