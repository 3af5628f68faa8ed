"""The coordinator's request path against a fake child that answers like the real one
(issue 12, Part 2 points 2-6). Stdlib only.

Run:  cd tests/integration && python3 -m unittest -v test_real_child_relay

What the real child does is in docs/fake-child-contract.md (each behaviour names the real file):
errors are FastAPI's {"detail": "[req_id] ..."}; 503 and 530 mean no work was done, 500/502/504
that the page may have run the prompt; a spent account shows as a 530 after 60 s parked, or in a
stream as `: processing auth rotation...` comments then `data: {"error": ...}` without [DONE];
/v1/cancel/{req_id} cancels only a request still waiting in the child's own queue.
"""

import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (  # noqa: E402
    Background, Coordinator, SSEStream, chat_body, data_payload, error_of, parse_event,
    parse_print_config, require_binary, run_binary, served_by)


def setUpModule():
    require_binary()


def stream_events(stream, timeout=15.0):
    """Every (kind, payload) of a stream until its end: kind is "comment", "done" or "data"."""
    out = []
    while True:
        item = stream.next_line(timeout=timeout)
        if item is None:
            return out
        _, line = item
        if line.startswith(":"):
            out.append(("comment", line))
            continue
        payload = data_payload(line)
        if payload is None:
            continue
        out.append(("done", payload) if payload == "[DONE]" else ("data", json.loads(payload)))


class RetryOnlyWhereNoWorkWasDone(unittest.TestCase):
    def test_503_goes_to_the_next_child(self):
        with Coordinator({"alpha": {"chat_status": 503}, "beta": {}}, extra_args=["--eject-after", "0"]) as c:
            for _ in range(4):
                r = c.chat("hi")
                self.assertEqual(r.status, 200, r.text)
                self.assertEqual(served_by(r), "beta")
            self.assertGreaterEqual(len(c.chat_requests("alpha")), 1)

    def test_500_502_504_are_relayed_in_the_one_error_shape_and_not_retried(self):
        for status in (500, 502, 504):
            with self.subTest(status=status), Coordinator(
                    {"alpha": {"chat_status": status}}, extra_args=["--eject-after", "0"]) as c:
                r = c.chat("hi")
                self.assertEqual(r.status, status, r.text)
                error = error_of(r)
                self.assertRegex(error["message"], r"^\[[a-z0-9]{7}\] ")
                self.assertIn("type", error)
                self.assertIn("code", error)
                self.assertNotIn("detail", r.json())
                self.assertEqual(len(c.chat_requests("alpha")), 1, "a 5xx that may have run the prompt is not retried")

    def test_relayed_5xx_with_a_second_child_is_still_not_retried(self):
        with Coordinator({"alpha": {"chat_status": 502}, "beta": {}}, extra_args=["--eject-after", "0"]) as c:
            statuses = [c.chat(f"hi {i}").status for i in range(4)]
            self.assertIn(502, statuses)
            self.assertEqual(len(c.chat_requests("alpha")) + len(c.chat_requests("beta")), 4, statuses)

    def test_validation_error_keeps_its_status_and_gets_the_openai_shape(self):
        with Coordinator({"alpha": {}}) as c:
            r = c.post_json("/v1/chat/completions", {"model": "fake-model"})  # no messages
            self.assertEqual(r.status, 422, r.text)
            error = error_of(r)
            self.assertEqual(error["code"], "validation_error")
            self.assertIn("messages", error["message"])


class QuotaSignals(unittest.TestCase):
    def test_530_cools_the_child_down_and_the_request_goes_elsewhere(self):
        with Coordinator({"alpha": {"chat_status": 530}, "beta": {}},
                         extra_args=["--quota-cooldown", "30"]) as c:
            for _ in range(3):
                r = c.chat("hi")
                self.assertEqual(r.status, 200, r.text)
                self.assertEqual(served_by(r), "beta")
            alpha = c.wait_state("alpha", "cooling", timeout=5)
            self.assertEqual(alpha["state"], "cooling", alpha)
            self.assertIn("quota", alpha["last_error"])
            self.assertEqual(len(c.chat_requests("alpha")), 1, "a cooling child gets no further requests")

    def test_530_that_no_other_child_can_take_becomes_429_quota_exhausted(self):
        # A queue timeout shorter than the cooldown: not worth waiting for.
        with Coordinator({"alpha": {"chat_status": 530}},
                         extra_args=["--quota-cooldown", "7", "--queue-timeout", "2"]) as c:
            r = c.chat("hi")
            self.assertEqual(r.status, 429, r.text)
            self.assertEqual(error_of(r)["code"], "quota_exhausted")
            self.assertTrue(1 <= int(r.headers["retry-after"]) <= 7, r.headers)
            # Cooling: the next request is refused at once, without reaching the child.
            r2 = c.chat("again")
            self.assertEqual(r2.status, 429, r2.text)
            self.assertEqual(error_of(r2)["code"], "quota_exhausted")
            self.assertEqual(len(c.chat_requests("alpha")), 1)

    def test_non_streamed_request_on_a_spent_account_goes_elsewhere_at_once(self):
        # The real child re-queues it until its 420 s timeout; its log says why at once
        # (config/global_state.py: "GLOBAL ALERT: Quota Exceeded!").
        with Coordinator({"alpha": {"quota_exhausted": True}, "beta": {}},
                         extra_args=["--quota-cooldown", "30", "--balance", "round-robin"]) as c:
            for i in range(2):  # round robin: one of the two starts on alpha
                t0 = time.monotonic()
                r = c.chat(f"hi {i}", timeout=20)
                self.assertEqual(r.status, 200, r.text)
                self.assertEqual(served_by(r), "beta")
                self.assertLess(time.monotonic() - t0, 8)
            self.assertEqual(len(c.chat_requests("alpha")), 1)
            alpha = c.wait_state("alpha", "cooling", timeout=5)
            self.assertEqual(alpha["state"], "cooling", alpha)
            self.assertIn("Quota Exceeded", alpha["last_error"])

    def test_stream_whose_first_event_is_a_quota_error_is_retried_transparently(self):
        # alpha, as the real child: usage chunk and [DONE], rotation comments for ~1 s,
        # then {"error": "Auth rotation failed."}.
        alpha = {"quota_exhausted": True, "quota_comment_lines": 4, "quota_comment_interval": 0.25}
        with Coordinator({"alpha": alpha, "beta": {"stream_chunks": 3}},
                         extra_args=["--sse-heartbeat", "0.2", "--quota-cooldown", "30",
                                     "--balance", "round-robin"]) as c:
            seen_alpha = False
            for i in range(2):  # round robin: one of the two starts on alpha
                with SSEStream(c.port, body=chat_body(f"hi {i}", stream=True)) as s:
                    self.assertEqual(s.read_head(), 200)
                    events = stream_events(s)
                kinds = [k for k, _ in events]
                self.assertEqual(kinds[-1], "done", events)
                self.assertEqual(kinds.count("done"), 1)
                datas = [p for k, p in events if k == "data"]
                self.assertFalse([p for p in datas if "error" in p], events)
                self.assertTrue(datas)
                self.assertTrue(all(p.get("object") == "chat.completion.chunk" for p in datas), events)
                seen_alpha = seen_alpha or bool(c.chat_requests("alpha"))
            self.assertTrue(seen_alpha, "one stream should have been tried on alpha first")
            self.assertEqual(c.wait_state("alpha", "cooling", timeout=5)["state"], "cooling")

    def test_quota_error_after_the_stream_started_ends_in_an_openai_error_then_done(self):
        with Coordinator({"alpha": {"quota_mid_stream_after": 2, "quota_comment_lines": 2}},
                         extra_args=["--quota-cooldown", "30"]) as c:
            with SSEStream(c.port, body=chat_body(stream=True)) as s:
                self.assertEqual(s.read_head(), 200)
                events = stream_events(s)
                self.assertTrue(s.wait_eof(5), "the connection is closed after the error")
            datas = [p for k, p in events if k == "data"]
            contents = [p["choices"][0]["delta"].get("content") for p in datas if "choices" in p]
            self.assertEqual([t for t in contents if t], ["chunk0 ", "chunk1 "], events)
            self.assertIsInstance(datas[-1].get("error"), dict, events)
            self.assertEqual(datas[-1]["error"]["code"], "quota_exhausted")
            self.assertIn("Auth rotation", datas[-1]["error"]["message"])
            self.assertEqual(events[-1][0], "done")
            self.assertEqual(c.wait_state("alpha", "cooling", timeout=5)["state"], "cooling")


class SlowStart(unittest.TestCase):
    def test_a_child_refusing_connections_while_it_starts_is_starting_not_failing(self):
        # The real child binds its API port only after its browser and page are up.
        with Coordinator({"alpha": {"startup_delay": 2.5}}, wait_ready=0, ready_timeout=20) as c:
            time.sleep(1.0)
            entry = c.child("alpha")
            self.assertEqual(entry["state"], "starting", entry)
            ready = c.wait_state("alpha", "ready", timeout=15)
            self.assertEqual(ready["state"], "ready", ready)
            self.assertEqual(ready["restarts"], 0)
            self.assertEqual(len(c.start_records("alpha")), 1, "started once: no restart while it was starting")

    def test_defaults_fit_a_real_browser(self):
        values = parse_print_config(run_binary(["--print-config"], timeout=10).stdout)
        self.assertGreaterEqual(float(values["ready-timeout"]), 180)
        self.assertGreaterEqual(float(values["child-stop-timeout"]), 30)
        self.assertGreater(float(values["request-timeout"]), 420)
        self.assertEqual(float(values["quota-cooldown"]), 3600)


class SlowAnswers(unittest.TestCase):
    def test_a_slow_non_streamed_answer_is_not_cut_by_the_stall_watchdog(self):
        with Coordinator({"alpha": {"chat_delay": 2.5}}, extra_args=["--stall-timeout", "1"]) as c:
            pid = c.child("alpha")["pid"]
            r = c.chat("slow", timeout=15)
            self.assertEqual(r.status, 200, r.text)
            entry = c.child("alpha")
            self.assertEqual(entry["pid"], pid, "the child was not recycled")
            self.assertEqual(entry["restarts"], 0)

    def test_a_silent_stream_is_still_cut_by_the_stall_watchdog(self):
        with Coordinator({"alpha": {"stall_mid_stream_after": 1}}, extra_args=["--stall-timeout", "1"]) as c:
            with SSEStream(c.port, body=chat_body(stream=True)) as s:
                self.assertEqual(s.read_head(), 200)
                events = stream_events(s)
            self.assertEqual(events[-1][0], "done")
            error = [p for k, p in events if k == "data"][-1]["error"]
            self.assertEqual(error["code"], "child_stream_aborted")
            self.assertIn("stalled", error["message"])


class Cancel(unittest.TestCase):
    def test_cancel_of_a_stream_in_progress_ends_the_relay(self):
        with Coordinator({"alpha": {"stream_chunks": 200, "stream_interval": 0.1}}) as c:
            with SSEStream(c.port, body=chat_body(stream=True)) as s:
                self.assertEqual(s.read_head(), 200)
                first = None
                while first is None:
                    _, line = s.next_line()
                    first = parse_event(line)
                req_id = first["id"].split("-")[1]
                r = c.post_json(f"/v1/cancel/{req_id}", {}, headers={"Authorization": "Bearer client-key"})
                self.assertEqual(r.status, 200, r.text)
                self.assertTrue(r.json()["relay_ended"])
                events = stream_events(s)
            self.assertEqual(events[-1][0], "done")
            last_error = [p for k, p in events if k == "data"][-1]
            self.assertEqual(last_error["error"]["code"], "request_cancelled")
            self.assertLess(len([p for k, p in events if k == "data"]), 50)
            # The child saw its connection close (that is what stops the real page).
            self.assertTrue(c.wait_event(lambda e: e["event"] == "client_disconnected" and e.get("req_id") == req_id,
                                         timeout=5, name="alpha"))
            # The coordinator's own cancel call carried the client's credentials.
            cancels = c.requests("alpha", path=f"/v1/cancel/{req_id}")
            self.assertTrue(cancels)
            self.assertEqual(cancels[-1]["headers"].get("authorization"), "Bearer client-key")

    def test_cancel_of_a_request_waiting_in_the_childs_queue_asks_the_child(self):
        with Coordinator({"alpha": {"chat_delay": 3}}, extra_args=["--max-inflight-per-child", "2"]) as c:
            first = Background(lambda i: c.chat("first", timeout=20))
            self.assertTrue(c.wait_event(lambda e: e["event"] == "chat_start", timeout=5, name="alpha"))
            second = Background(lambda i: c.chat("second", timeout=20))
            started = c.events("alpha", "chat_start")[0]["req_id"]
            queued = c.wait_event(lambda e: e["event"] == "queued" and e.get("req_id") != started, timeout=5,
                                  name="alpha")
            self.assertTrue(queued)
            r = c.post_json(f"/v1/cancel/{queued['req_id']}", {})
            self.assertEqual(r.status, 200, r.text)
            body = r.json()
            self.assertFalse(body["relay_ended"])
            self.assertEqual(body["completed"], ["alpha"])
            second.join(20)
            first.join(20)
            self.assertEqual(first.result.status, 200)
            self.assertEqual(second.result.status, 499, second.result.text)
            self.assertEqual(error_of(second.result)["code"], "request_cancelled")

    def test_cancel_of_an_unknown_req_id_is_404(self):
        with Coordinator({"alpha": {}}) as c:
            r = c.post_json("/v1/cancel/zzzzzzz", {})
            self.assertEqual(r.status, 404, r.text)
            self.assertFalse(r.json()["success"])
            self.assertFalse(r.json()["relay_ended"])


if __name__ == "__main__":
    unittest.main()
