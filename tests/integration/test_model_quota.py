"""Quotas per account and model (issue 14).

* A quota signal (530) for a request naming a model cools that child down for that model only:
  its other models keep being routed to it; /ready shows the cooling model, when it ends and why.
* A child whose every listed model is cooling is ``cooling`` as a whole.
* Every child that serves a model cooling for it: the request waits in the queue when the first
  cooldown ends within ``--queue-timeout`` and then goes to that child; otherwise 429
  ``quota_exhausted`` with ``Retry-After`` set to the seconds until the first end.

The fake child spends its quota per model with ``_fake.quota_models`` (a steer, modelled on the
real child's per-model exhaustion in config/global_state.py): docs/fake-child-contract.md.
Every wait is bounded; all traffic is on 127.0.0.1.
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import Coordinator, error_of, require_binary, served_by, wait_until  # noqa: E402

from test_models import wait_models_learned  # noqa: E402


def setUpModule():
    require_binary()


def cooling_models(c, name):
    entry = c.child(name) or {}
    return {m["model"]: m for m in entry.get("cooling_models") or []}


class PerModelCooldownTests(unittest.TestCase):
    def test_a_spent_model_cools_only_that_model_of_that_child(self):
        profiles = {"alpha": {"models": ["m-a", "m-b"], "quota_models": ["m-a"]},
                    "beta": {"models": ["m-a", "m-b"]}}
        with Coordinator(profiles, extra_args=["--quota-cooldown", "60"]) as c:
            wait_models_learned(c, ["alpha", "beta"])
            for i in range(4):
                r = c.chat(f"a {i}", model="m-a")
                self.assertEqual(r.status, 200, r.text)
                self.assertEqual(served_by(r), "beta")
            self.assertEqual(len(c.chat_requests("alpha")), 1, "after its 530, alpha gets no request for m-a")
            alpha = c.child("alpha")
            self.assertEqual(alpha["state"], "ready", alpha)
            cooling = cooling_models(c, "alpha")
            self.assertEqual(list(cooling), ["m-a"], alpha)
            self.assertEqual(cooling["m-a"]["cause"], "quota")
            self.assertTrue(50 <= cooling["m-a"]["seconds_left"] <= 60, cooling)
            self.assertRegex(cooling["m-a"]["until"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
            self.assertIn("530", cooling["m-a"]["reason"])
            self.assertEqual(cooling_models(c, "beta"), {})
            # Its other model still goes to it, in turn with beta.
            served = {served_by(c.chat(f"b {i}", model="m-b")) for i in range(4)}
            self.assertEqual(served, {"alpha", "beta"})

    def test_a_child_whose_every_model_is_spent_is_cooling(self):
        profiles = {"alpha": {"models": ["m-a", "m-b"], "quota_models": ["m-a", "m-b"]},
                    "beta": {"models": ["m-a", "m-b"]}}
        with Coordinator(profiles, extra_args=["--quota-cooldown", "60", "--balance", "round-robin"]) as c:
            wait_models_learned(c, ["alpha", "beta"])
            for model in ("m-a", "m-b", "m-a", "m-b"):
                r = c.chat("hi", model=model)
                self.assertEqual(r.status, 200, r.text)
                self.assertEqual(served_by(r), "beta")
            alpha = c.wait_state("alpha", "cooling", timeout=5)
            self.assertEqual(alpha["state"], "cooling", alpha)
            self.assertEqual(set(cooling_models(c, "alpha")), {"m-a", "m-b"})
            self.assertEqual(alpha["cooling_cause"], "quota")
            self.assertEqual(len(c.chat_requests("alpha")), 2)


class WaitingForACooldownTests(unittest.TestCase):
    def test_a_request_waits_for_the_first_cooldown_that_ends_within_the_queue_timeout(self):
        # alpha's m-a quota refills after one 530; the cooldown is 2 s.
        profiles = {"alpha": {"models": ["m-a"], "quota_models": {"m-a": 1}}}
        with Coordinator(profiles, extra_args=["--quota-cooldown", "2", "--queue-timeout", "20"]) as c:
            wait_models_learned(c, ["alpha"])
            r = c.chat("first", model="m-a")  # the only child refused it: nothing to wait for
            self.assertEqual(r.status, 429, r.text)
            self.assertEqual(error_of(r)["code"], "quota_exhausted")
            t0 = time.monotonic()
            r = c.chat("second", model="m-a", timeout=20)
            waited = time.monotonic() - t0
            self.assertEqual(r.status, 200, r.text)
            self.assertEqual(served_by(r), "alpha")
            self.assertTrue(0.5 <= waited <= 10, waited)
            self.assertTrue(wait_until(lambda: cooling_models(c, "alpha") == {}, 5))

    def test_cooldowns_past_the_queue_timeout_get_429_with_the_first_end(self):
        profiles = {"alpha": {"models": ["m-a", "m-b"], "quota_models": ["m-a"]},
                    "beta": {"models": ["m-a", "m-b"], "quota_models": ["m-a"]}}
        with Coordinator(profiles, extra_args=["--quota-cooldown", "30", "--queue-timeout", "3"]) as c:
            wait_models_learned(c, ["alpha", "beta"])
            r = c.chat("spend both", model="m-a")  # alpha, then beta: both 530
            self.assertEqual(r.status, 429, r.text)
            self.assertEqual(len(c.chat_requests("alpha")) + len(c.chat_requests("beta")), 2)
            t0 = time.monotonic()
            r = c.chat("again", model="models/m-a")
            self.assertLess(time.monotonic() - t0, 2, "refused at once, not after the queue timeout")
            self.assertEqual(r.status, 429, r.text)
            self.assertEqual(error_of(r)["code"], "quota_exhausted")
            self.assertIn("m-a", error_of(r)["message"])
            self.assertTrue(25 <= int(r.headers["retry-after"]) <= 30, r.headers)
            self.assertEqual(len(c.chat_requests("alpha")) + len(c.chat_requests("beta")), 2)
            # The other model is served as before.
            self.assertEqual(c.chat("b", model="m-b").status, 200)


if __name__ == "__main__":
    unittest.main()
