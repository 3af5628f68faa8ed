"""Hostile input against the real coordinator binary over fake children (issue 8).

Run:  cd tests/integration && python3 -m unittest -v test_hostile
Python 3 standard library only; all traffic to 127.0.0.1.  The binary is $COORDINATOR_BIN
(default <repo>/build/coordinator); the fake child is tests/fixtures/fake_child/launch_camoufox.py.

What a case expects, and why (statuses observed against the binary are noted in comments):

* Request smuggling shapes (CL+TE, two Content-Lengths, bad chunk sizes, obs-fold, bare LF,
  Transfer-Encoding not ending in chunked, whitespace before the colon): 400, then the
  connection is closed, and no request (in particular the smuggled one) reaches a child.
  A chunk size that is valid hex but larger than --max-body may be 413 instead of 400.
* CR/LF in header values: whatever is accepted is forwarded as one header; the child never
  sees an ``X-Injected`` header or a header value holding CR or LF.  Chunked trailers are
  not promoted to headers towards the child (RFC 9110 section 6.5.1).
* Oversized input: any 4xx, as one complete, well-formed JSON error response on the same
  connection (observed: 100 KB URL -> 431, 70 KB header -> 431, 10,000 headers over 64 KiB
  -> 431, body over --max-body -> 413).  10,000 tiny headers (under 64 KiB) must also get a
  4xx and must not take children out of rotation.  A 10,000-message chat body is forwarded.
* HEAD: the answer has no body (RFC 9110 9.3.2), so a request pipelined after it is parsed
  right.  Accepted statuses: the GET status (200) or 405 with an Allow header: the
  coordinator is an API endpoint, not a general-purpose server, and an honest 405 does not
  break any client; a HEAD answer carrying a body does (it desynchronises the connection).
* OPTIONS: 204 (or 200) listing the allowed methods in Allow, or 405 with an Allow header
  (the brief's choice; CORS preflight is not a goal of this API).
* HTTP/1.0 without keep-alive (plain and streamed: the stream arrives whole, unchunked, then
  the connection closes), pipelined requests (answers in order), ``Expect: 100-continue``
  (a 100 interim, then the answer).
* Slow clients: 500 connections trickling a byte a second for 5 s do not delay a normal
  client past 1 s (skipped if ``ulimit -n`` stays under 2048); trickled headers are dropped
  at --header-timeout; ``--max-connections`` (skipped until --help lists it): the connection
  over the limit is refused at once (503 or a close), the others keep working.
* Cancel ids with ``../``, ``%2e%2e``, ``%00``, 10 KB ids: 400, no cancel reaches a child.
* A million nested brackets or objects, a million-digit number as (or in) a chat body: 400,
  nothing forwarded, the coordinator keeps serving.
"""

import json
import os
import resource
import select
import socket
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (  # noqa: E402
    HOST, HELP_TEXT, Coordinator, RawConnection, SharedCoordinator, has_flag, is_json_error,
    ready_names, require_binary, wait_until)

CHAT = b'{"model":"fake-model","messages":[{"role":"user","content":"hi"}]}'
STREAM_CHAT = b'{"model":"fake-model","stream":true,"messages":[{"role":"user","content":"hi"}]}'
HOST_HDR = b"Host: 127.0.0.1\r\n"
# A request that, if a desynchronised parser took it as the next request, reaches a child
# with a recognisable path (the X's are replaced by a per-case marker of the same length, so
# Content-Length values computed from it stay right).
SMUGGLED = b"GET /v1/models?smuggled=XXXXXXXXXXXX HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def setUpModule():
    require_binary()


# ---------------------------------------------------------------------------
# helpers

def post(path, body, extra=b"", version=b"HTTP/1.1"):
    """Raw bytes of a POST with Content-Length."""
    return (b"POST " + path + b" " + version + b"\r\n" + HOST_HDR + extra
            + b"Content-Length: %d\r\n\r\n" % len(body) + body)


def chunked(body, size=500):
    return b"".join(b"%x\r\n" % len(body[i:i + size]) + body[i:i + size] + b"\r\n"
                    for i in range(0, len(body), size))


def event_key(ev):
    return (ev.get("name"), ev.get("pid"), ev.get("t"), ev.get("path"))


def coordinators_own(ev):
    """The coordinator's own calls: /health and its reads of /v1/models (issue 14)."""
    return ev.get("path") == "/health" or (
        ev.get("path") == "/v1/models" and ev.get("headers", {}).get("user-agent") == "coordinator")


def forwarded(c):
    """Every request event the children recorded but the coordinator's own calls: list of dicts."""
    out = []
    for name in c.all_names:
        for ev in c.events(name, "request"):
            if not coordinators_own(ev):
                ev = dict(ev)
                ev["name"] = name
                out.append(ev)
    return out


def exchange(port, data, method="GET", timeout=10.0, close_wait=2.0):
    """Send raw `data` (a send error such as EPIPE is tolerated: the coordinator may
    answer and close before reading everything), read one response, then read until
    close for up to `close_wait` s.

    Returns (response or None, closed, extra_bytes_after_response, error_text)."""
    conn = RawConnection(port, timeout=timeout)
    err = ""
    try:
        try:
            conn.send(data)
        except OSError as e:
            err = f"send: {e!r}; "
        try:
            r = conn.read_response(method)
        except (OSError, EOFError, ValueError, IndexError) as e:
            return None, True, conn.buf, err + f"read: {e!r}"
        closed, extra = conn.read_rest(close_wait)
        return r, closed, extra, err
    finally:
        conn.close()


def sse_events(body):
    """`data:` payloads of an SSE body, in order."""
    return [line[len("data: "):] for line in body.decode("utf-8", "replace").split("\n")
            if line.startswith("data: ")]


def raise_nofile(want):
    """Raise the soft RLIMIT_NOFILE towards `want` (children inherit it); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        target = want if hard == resource.RLIM_INFINITY else min(want, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ---------------------------------------------------------------------------

class SmugglingTests(SharedCoordinator):
    """Ambiguous framing: 400, connection closed, nothing reaches a child."""

    def assert_rejected(self, data, statuses=(400,)):
        """`data` must get one JSON error with a status in `statuses`, then a close, and
        no request may reach a child (the smuggled one gets a unique marker)."""
        c = self.c
        marker = f"smuggled={uuid.uuid4().hex[:12]}".encode()
        data = data.replace(b"smuggled=XXXXXXXXXXXX", marker)
        before = {event_key(e) for e in forwarded(c)}
        r, closed, extra, err = exchange(c.port, data, method="POST")
        time.sleep(0.3)  # a forwarded request would be recorded by now
        new = [e for e in forwarded(c) if event_key(e) not in before]
        problems = []
        if r is None:
            problems.append(f"no response ({err})")
        else:
            if r.status not in statuses:
                problems.append(f"status {r.status}, expected {statuses}")
            if not is_json_error(r):
                problems.append("not a JSON error body")
        if extra:
            problems.append(f"bytes after the answer (a second response?): {extra[:300]!r}")
        if not closed:
            problems.append("connection still open 2 s after the answer")
        if new:
            problems.append("requests reached a child: " + "; ".join(
                f"{e['name']}: {e['method']} {e['path']} body_len={e.get('body_len')}" for e in new))
        if any(marker.decode() in e.get("path", "") for e in new):
            problems.append("THE SMUGGLED REQUEST REACHED A CHILD")
        if problems:
            self.fail("\n  - ".join([""] + problems) + f"\n  sent: {data!r}\n  got:  {r!r}")
        self.assert_alive()

    def test_content_length_and_transfer_encoding(self):
        body = b"0\r\n\r\n" + SMUGGLED
        self.assert_rejected(b"POST /v1/chat/completions HTTP/1.1\r\n" + HOST_HDR
                             + b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % len(body)
                             + body)

    def test_transfer_encoding_and_content_length(self):
        body = b"0\r\n\r\n" + SMUGGLED
        self.assert_rejected(b"POST /v1/chat/completions HTTP/1.1\r\n" + HOST_HDR
                             + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n" + body)

    def test_two_different_content_lengths(self):
        body = CHAT + SMUGGLED
        self.assert_rejected(b"POST /v1/chat/completions HTTP/1.1\r\n" + HOST_HDR
                             + b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n"
                             % (len(CHAT), len(body)) + body)

    def test_content_length_list_with_different_values(self):
        body = CHAT + SMUGGLED
        self.assert_rejected(b"POST /v1/chat/completions HTTP/1.1\r\n" + HOST_HDR
                             + b"Content-Length: %d, %d\r\n\r\n" % (len(CHAT), len(body)) + body)

    def test_content_length_with_sign(self):
        self.assert_rejected(b"POST /v1/chat/completions HTTP/1.1\r\n" + HOST_HDR
                             + b"Content-Length: +%d\r\n\r\n" % len(CHAT) + CHAT)

    def _chunk_case(self, size_line, statuses=(400,)):
        self.assert_rejected(b"POST /v1/chat/completions HTTP/1.1\r\n" + HOST_HDR
                             + b"Transfer-Encoding: chunked\r\n\r\n" + size_line + b"\r\n"
                             + CHAT + b"\r\n0\r\n\r\n" + SMUGGLED, statuses)

    def test_chunk_size_not_hex(self):
        self._chunk_case(b"zz")

    def test_chunk_size_negative(self):
        self._chunk_case(b"-42")

    def test_chunk_size_overflowing_64_bits(self):
        self._chunk_case(b"1" + b"0" * 20)

    def test_chunk_size_huge(self):
        # Valid hex but far over --max-body: 413 (observed) is as good as 400.
        self._chunk_case(b"ffffffffffffffff", statuses=(400, 413))

    def test_chunk_size_with_whitespace_prefix(self):
        self._chunk_case(b" 42")

    def test_obs_fold_continuation_line(self):
        # RFC 9112 5.2 lets a server replace obs-fold by SP instead; the issue asks for 400.
        self.assert_rejected(b"POST /v1/chat/completions HTTP/1.1\r\n" + HOST_HDR
                             + b"X-Folded: a\r\n  continued\r\n"
                             + b"Content-Length: %d\r\n\r\n" % len(CHAT) + CHAT)

    def test_obs_fold_hiding_transfer_encoding(self):
        body = b"0\r\n\r\n" + SMUGGLED
        self.assert_rejected(b"POST /v1/chat/completions HTTP/1.1\r\n" + HOST_HDR
                             + b"Content-Length: %d\r\nX-Folded: x\r\n\tTransfer-Encoding: chunked\r\n"
                               b"\r\n" % len(body) + body)

    def test_bare_lf_line_endings(self):
        self.assert_rejected(b"POST /v1/chat/completions HTTP/1.1\nHost: 127.0.0.1\n"
                             b"Content-Length: %d\n\n" % len(CHAT) + CHAT)

    def test_bare_lf_inside_header_section(self):
        self.assert_rejected(b"POST /v1/chat/completions HTTP/1.1\r\n" + HOST_HDR
                             + b"X-A: 1\nContent-Length: %d\r\n\r\n" % len(CHAT) + CHAT)

    def test_transfer_encoding_not_ending_in_chunked(self):
        # RFC 9112 6.3: a request whose Transfer-Encoding does not end in chunked MUST get
        # 400 and a close.  Read as "no body", the body turns into a second request.
        for te in (b"xchunked", b"gzip", b"chunked, identity"):
            with self.subTest(te=te):
                self.assert_rejected(b"POST /v1/chat/completions HTTP/1.1\r\n" + HOST_HDR
                                     + b"Transfer-Encoding: " + te + b"\r\n\r\n" + SMUGGLED)

    def test_duplicate_transfer_encoding(self):
        self.assert_rejected(b"POST /v1/chat/completions HTTP/1.1\r\n" + HOST_HDR
                             + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
                             + chunked(CHAT) + b"0\r\n\r\n")

    def test_whitespace_before_colon(self):
        # RFC 9112 5.1: MUST be rejected with 400.
        body = b"0\r\n\r\n" + SMUGGLED
        self.assert_rejected(b"POST /v1/chat/completions HTTP/1.1\r\n" + HOST_HDR
                             + b"Transfer-Encoding : chunked\r\nContent-Length: %d\r\n\r\n"
                             % len(body) + body)

    def test_valid_chunked_body_still_accepted(self):
        # Control: the shapes above fail for their framing, not for being chunked.
        c = self.c
        r, closed, extra, err = exchange(
            c.port, b"POST /v1/chat/completions HTTP/1.1\r\n" + HOST_HDR
            + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunked(CHAT, 7)
            + b"0\r\n\r\n", method="POST")
        self.assertIsNotNone(r, err)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(any(e.get("body_len") == len(CHAT) for e in forwarded(c)))


class HeaderInjectionTests(SharedCoordinator):
    """CR/LF inside header values never becomes a second header towards the child."""

    PROFILES = {"alpha": {}}

    CASES = [
        ("bare CR", b"X-Foo: a\rX-Injected: 1\r\n"),
        ("bare LF", b"X-Foo: a\nX-Injected: 1\r\n"),
        ("CR CR LF", b"X-Foo: a\r\r\nX-Injected: 1\r\n"),
        ("obs-fold SP", b"X-Foo: a\r\n X-Injected: 1\r\n"),
        ("obs-fold HTAB", b"X-Foo: a\r\n\tX-Injected: 1\r\n"),
        ("percent-encoded", b"X-Foo: a%0d%0aX-Injected: 1\r\n"),
        ("percent-encoded upper", b"X-Foo: a%0D%0AX-Injected: 1\r\n"),
        ("escaped text", b"X-Foo: a\\r\\nX-Injected: 1\r\n"),
        ("UTF-8 U+560A U+560D (low bytes CR LF)", b"X-Foo: a\xe5\x98\x8a\xe5\x98\x8dX-Injected: 1\r\n"),
        ("NUL", b"X-Foo: a\x00X-Injected: 1\r\n"),
        ("in Authorization", b"Authorization: Bearer x\rX-Injected: 1\r\n"),
        ("in X-Forwarded-For", b"X-Forwarded-For: 10.0.0.1\nX-Injected: 1\r\n"),
        ("in Connection-listed name", b"Connection: x-foo\r\nX-Foo: a\rX-Injected: 1\r\n"),
    ]

    def check_children(self, label):
        for ev in forwarded(self.c):
            if ev.get("headers", {}).get("x-case") == "trailer":
                continue  # test_chunked_trailer_not_promoted_to_header checks those
            headers = ev.get("headers", {})
            self.assertNotIn("x-injected", headers, f"{label}: child {ev['name']} got {headers}")
            for k, v in headers.items():
                self.assertFalse("\r" in v or "\n" in v or "\r" in k or "\n" in k,
                                 f"{label}: CR/LF in forwarded header {k!r}: {v!r}")

    def test_crlf_in_header_values(self):
        c = self.c
        for i, (label, line) in enumerate(self.CASES):
            for method, path, body in (("GET", b"/v1/models", b""), ("POST", b"/v1/chat/completions", CHAT)):
                with self.subTest(case=label, method=method):
                    data = (method.encode() + b" " + path + b" HTTP/1.1\r\n" + HOST_HDR
                            + b"X-Case: %d\r\n" % i + line + b"Connection: close\r\n"
                            + (b"Content-Length: %d\r\n" % len(body) if body else b"")
                            + b"\r\n" + body)
                    r, closed, extra, err = exchange(c.port, data, method=method)
                    self.assertIsNotNone(r, f"{label}: no response ({err})")
                    self.assertIn(r.status, (200, 400), f"{label}: {r!r}")
                    self.assertTrue(closed)
        time.sleep(0.3)
        self.check_children("header value")
        self.assert_alive()

    def test_crlf_in_request_target(self):
        c = self.c
        targets = [b"/v1/models?x=%0d%0aX-Injected:%201",
                   b"/v1/models?x=%0D%0AX-Injected:%201%0D%0A",
                   b"/v1/models?x=a\rX-Injected:1",
                   b"/v1/models?x=a\r\nX-Injected: 1",
                   b"/v1/models%0d%0aX-Injected:%201"]
        for t in targets:
            with self.subTest(target=t):
                r, closed, extra, err = exchange(
                    c.port, b"GET " + t + b" HTTP/1.1\r\n" + HOST_HDR + b"Connection: close\r\n\r\n")
                self.assertIsNotNone(r, f"{t!r}: no response ({err})")
                self.assertLess(r.status, 500, r)
        time.sleep(0.3)
        self.check_children("request target")
        for ev in forwarded(c):
            self.assertFalse("\r" in ev["path"] or "\n" in ev["path"], ev["path"])
        self.assert_alive()

    def test_control_header_is_forwarded(self):
        # The checks above can fail: a plain extra header does reach the child.
        c = self.c
        # A chat request: GET /v1/models is answered by the coordinator once it knows the lists.
        r, _, _, err = exchange(c.port, b"POST /v1/chat/completions HTTP/1.1\r\n" + HOST_HDR
                                + b"X-Control: yes\r\nConnection: close\r\n"
                                + b"Content-Length: %d\r\n\r\n" % len(CHAT) + CHAT, method="POST")
        self.assertEqual(getattr(r, "status", None), 200, (r, err))
        ev = c.wait_event(lambda e: e.get("event") == "request"
                          and "x-control" in e.get("headers", {}), 3)
        self.assertTrue(ev, "control request not seen by the child")
        self.assertEqual(ev["headers"].get("x-control"), "yes")

    def test_chunked_trailer_not_promoted_to_header(self):
        # RFC 9110 6.5.1: trailer fields must not be merged into the header section
        # (they arrive after the body, unseen by whatever checked the headers).
        c = self.c
        data = (b"POST /v1/chat/completions HTTP/1.1\r\n" + HOST_HDR + b"X-Case: trailer\r\n"
                + b"Transfer-Encoding: chunked\r\nTrailer: X-Injected\r\nConnection: close\r\n\r\n"
                + chunked(CHAT) + b"0\r\nX-Injected: 1\r\nAuthorization: Bearer smuggled\r\n\r\n")
        r, closed, _, err = exchange(c.port, data, method="POST")
        self.assertIsNotNone(r, err)
        self.assertIn(r.status, (200, 400), r)
        time.sleep(0.3)
        seen = [ev for ev in forwarded(c) if ev.get("headers", {}).get("x-case") == "trailer"]
        if r.status == 200:
            self.assertEqual(len(seen), 1, "the chunked request did not reach the child")
        for ev in seen:
            self.assertNotIn("x-injected", ev["headers"], f"trailer promoted to a header: {ev['headers']}")
            self.assertNotIn("authorization", ev["headers"],
                             f"trailer promoted to a header: {ev['headers']}")
        self.assert_alive()


# ---------------------------------------------------------------------------

class OversizeTests(unittest.TestCase):
    """Oversized parts of a request: a 4xx as one complete JSON error answer."""

    def assert_clean_4xx(self, c, data, expect=None, method="GET"):
        r, closed, extra, err = exchange(c.port, data, method=method)
        self.assertIsNotNone(r, f"no readable answer: {err}")
        self.assertTrue(400 <= r.status < 500, f"{r!r} {err}")
        if expect is not None:
            self.assertEqual(r.status, expect, r)
        self.assertTrue(is_json_error(r), r)
        self.assertEqual(r.headers.get("content-length"), str(len(r.body)), r.headers)
        # Either closed (announced) or still usable: never garbage.
        if not closed:
            self.assertEqual(extra, b"")
        else:
            self.assertEqual(extra, b"", f"bytes after the error answer: {extra[:200]!r}")
        self.assertEqual(c.get("/live", timeout=5).status, 200)
        return r

    def test_url_100kb(self):
        with Coordinator({"alpha": {}}) as c:
            data = b"GET /v1/models?q=" + b"a" * 100_000 + b" HTTP/1.1\r\n" + HOST_HDR + b"\r\n"
            self.assert_clean_4xx(c, data)  # observed 431 (the 64 KiB header limit covers the line)
            self.assertEqual(forwarded(c), [])

    def test_one_header_70kb(self):
        with Coordinator({"alpha": {}}) as c:
            data = b"GET /v1/models HTTP/1.1\r\n" + HOST_HDR + b"X-Big: " + b"b" * 70_000 + b"\r\n\r\n"
            self.assert_clean_4xx(c, data, expect=431)
            self.assertEqual(forwarded(c), [])

    def test_10000_headers_over_64kib(self):
        with Coordinator({"alpha": {}}) as c:
            hdrs = b"".join(b"X-H%05d: v\r\n" % i for i in range(10_000))  # ~130 KB
            data = b"GET /v1/models HTTP/1.1\r\n" + HOST_HDR + hdrs + b"\r\n"
            self.assert_clean_4xx(c, data, expect=431)
            self.assertEqual(forwarded(c), [])

    def test_10000_tiny_headers_under_64kib(self):
        # 10,000 "a:b" lines are only 50 KB: under the size limit, so only a count limit
        # (or the child) stops them.  Whatever answers, the client gets a 4xx and the
        # children stay in rotation: one request must not knock every child out.
        with Coordinator({"alpha": {}, "beta": {}}) as c:
            data = b"GET /v1/models HTTP/1.1\r\n" + HOST_HDR + b"a:b\r\n" * 10_000 + b"\r\n"
            self.assertLess(len(data), 64 * 1024)
            self.assert_clean_4xx(c, data)
            time.sleep(0.3)
            status, body = c.ready()
            self.assertEqual(sorted(ready_names(body or {})), ["alpha", "beta"],
                             f"children left rotation after one hostile request: {body}")
            r = c.chat("after many headers")
            self.assertEqual(r.status, 200, r)

    def test_body_over_max_body(self):
        with Coordinator({"alpha": {}}, extra_args=["--max-body", "1000000"]) as c:
            for size in (1_000_001, 4_000_000):
                with self.subTest(size=size, how="Content-Length, sent then read"):
                    body = b'{"x":"' + b"x" * (size - 8) + b'"}'
                    self.assertEqual(len(body), size)
                    self.assert_clean_4xx(c, post(b"/v1/chat/completions", body), expect=413,
                                          method="POST")
            with self.subTest(how="Expect: 100-continue gets 413 and no 100"):
                with c.raw() as conn:
                    conn.send(b"POST /v1/chat/completions HTTP/1.1\r\n" + HOST_HDR
                              + b"Expect: 100-continue\r\nContent-Length: 5000000\r\n\r\n")
                    r = conn.read_response("POST")
                    self.assertEqual(r.status, 413, r)
            self.assertEqual([e for e in forwarded(c) if e["path"].startswith("/v1/chat")], [])

    def test_chat_with_10000_messages_forwarded(self):
        with Coordinator({"alpha": {}}) as c:
            body = json.dumps({"model": "fake-model", "messages": [
                {"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i}"}
                for i in range(10_000)]}).encode()
            r, _, _, err = exchange(c.port, post(b"/v1/chat/completions", body,
                                                 b"Content-Type: application/json\r\n"),
                                    method="POST", timeout=30)
            self.assertIsNotNone(r, err)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["object"], "chat.completion")
            chats = c.chat_requests("alpha")
            self.assertEqual(len(chats), 1)
            self.assertEqual(chats[0]["body_len"], len(body))


# ---------------------------------------------------------------------------

class SlowClientTests(unittest.TestCase):

    SLOW = 500

    def setUp(self):
        limit = raise_nofile(4096)
        if limit < 2048:
            self.skipTest(f"ulimit -n is {limit} (< 2048): too low for {self.SLOW} slow "
                          f"connections on both sides")

    def open_slow(self, port, n):
        socks = []
        for _ in range(n):
            s = socket.create_connection((HOST, port), timeout=5)
            s.setblocking(False)
            socks.append(s)
        return socks

    def test_slowloris_does_not_block_a_normal_client(self):
        request = b"GET /live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        with Coordinator({"alpha": {}, "beta": {}}) as c:
            socks = self.open_slow(c.port, self.SLOW)
            lat, failures = [], []
            try:
                t_end = time.monotonic() + 5.0
                step = 0
                next_byte = time.monotonic()
                while time.monotonic() < t_end:
                    if time.monotonic() >= next_byte:
                        for s in socks:
                            try:
                                s.send(request[step:step + 1])
                            except OSError:
                                pass
                        step += 1
                        next_byte += 1.0
                    # a normal client, meanwhile
                    t0 = time.monotonic()
                    try:
                        r1 = c.get("/live", timeout=3)
                        r2 = c.chat("normal client", timeout=3)
                        ok = r1.status == 200 and r2.status == 200
                        if not ok:
                            failures.append((r1, r2))
                    except OSError as e:
                        failures.append(repr(e))
                    lat.append(time.monotonic() - t0)
                    time.sleep(0.1)
                self.assertEqual(step, 5)
                # The slow clients are still connected (header timeout 10 s by default),
                # so this measured what it claims to.
                still = sum(1 for s in socks if not select.select([s], [], [], 0)[0])
                self.assertGreater(still, self.SLOW * 0.9,
                                   "the slow connections were dropped early: nothing was tested")
            finally:
                for s in socks:
                    s.close()
            self.assertEqual(failures, [])
            self.assertGreater(len(lat), 10)
            self.assertLess(max(lat), 1.0, f"a normal request took {max(lat):.2f}s "
                                           f"(median {sorted(lat)[len(lat) // 2]:.3f}s)")
            self.assertEqual(c.get("/live").status, 200)

    def test_trickled_headers_dropped_after_header_timeout(self):
        # A byte a second keeps no connection past --header-timeout (a total deadline).
        with Coordinator({"alpha": {}}, extra_args=["--header-timeout", "2"]) as c:
            socks = self.open_slow(c.port, 100)
            request = b"GET /live HTTP/1.1\r\nX-Slow: " + b"z" * 100
            closed_at = {}
            t0 = time.monotonic()
            try:
                step = 0
                while time.monotonic() - t0 < 6.0 and len(closed_at) < len(socks):
                    for i, s in enumerate(socks):
                        if i in closed_at:
                            continue
                        try:
                            s.send(request[step:step + 1])
                        except OSError:
                            closed_at[i] = time.monotonic() - t0
                            continue
                        try:
                            if s.recv(4096) == b"":
                                closed_at[i] = time.monotonic() - t0
                        except BlockingIOError:
                            pass
                        except OSError:
                            closed_at[i] = time.monotonic() - t0
                    step += 1
                    time.sleep(0.5)
            finally:
                for s in socks:
                    s.close()
            self.assertEqual(len(closed_at), len(socks),
                             f"{len(socks) - len(closed_at)} trickling connections still open "
                             f"after 6 s with --header-timeout 2")
            self.assertLess(max(closed_at.values()), 4.5, sorted(closed_at.values())[-5:])
            self.assertEqual(c.get("/live").status, 200)

    def test_max_connections(self):
        if not has_flag("--max-connections"):
            self.skipTest("flag not implemented yet")
        line = next((ln for ln in HELP_TEXT.splitlines() if "--max-connections" in ln), "")
        self.assertRegex(line, r"10,?000", f"default not 10,000 in --help: {line!r}")
        limit = 20
        with Coordinator({"alpha": {}}, extra_args=["--max-connections", str(limit)]) as c:
            held = []
            try:
                # Fill the limit with live keep-alive connections (one request each).
                # The harness's /ready polling is over, so only these count.
                for _ in range(limit):
                    conn = c.raw(timeout=5)
                    held.append(conn)
                    self.assertEqual(conn.request("GET", "/live").status, 200)
                # One more: refused cleanly -- a 503 answer or a close, quickly, never a hang
                # and never served.
                extra = RawConnection(c.port, timeout=3)
                t0 = time.monotonic()
                try:
                    try:
                        extra.send(b"GET /live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                    except OSError:
                        pass
                    try:
                        r = extra.read_response()
                        got = r.status
                    except EOFError:
                        got = "closed"
                    except socket.timeout:
                        got = "hang"
                    except OSError:
                        got = "reset"
                finally:
                    extra.close()
                took = time.monotonic() - t0
                self.assertIn(got, (503, "closed", "reset"), f"connection {limit + 1}: {got}")
                self.assertLess(took, 2.0)
                # The held connections still work.
                self.assertEqual(held[0].request("GET", "/live").status, 200)
                # Free one: a new connection is served again.
                held.pop().close()

                def served():
                    with c.raw(timeout=2) as conn:
                        return conn.request("GET", "/live").status == 200
                self.assertTrue(wait_until(served, 3), "no new connection served after one closed")
            finally:
                for conn in held:
                    conn.close()


# ---------------------------------------------------------------------------

class CancelIdTests(SharedCoordinator):

    PROFILES = {"alpha": {}, "beta": {}}

    def test_hostile_cancel_ids_400(self):
        c = self.c
        ids = [b"..", b"../", b"../live", b"..%2f..%2flive", b"%2e%2e", b"%2e%2e%2f%2e%2e",
               b"%2E%2E", b"abc%00def", b"%00", b"abc%0d%0aX-Injected:%201",
               b"x" * 10_240, b"%41" * 3000, b"abc/def", b"abc?x=1/../..", b"abc%20def"]
        for req_id in ids:
            with self.subTest(req_id=req_id[:40]):
                with c.raw() as conn:
                    conn.send(b"POST /v1/cancel/" + req_id + b" HTTP/1.1\r\n" + HOST_HDR
                              + b"Content-Length: 0\r\n\r\n")
                    r = conn.read_response("POST")
                    if req_id.startswith(b"abc?"):
                        # the query is not part of the id: "abc" is valid -> 404 (unknown)
                        self.assertIn(r.status, (400, 404), r)
                        continue
                    self.assertEqual(r.status, 400, f"{req_id[:60]!r}: {r!r}")
                    self.assertTrue(is_json_error(r), r)
        time.sleep(0.3)
        bad = [e for n in c.names for e in c.events(n, "cancel") if e.get("req_id") != "abc"]
        self.assertEqual(bad, [], "a hostile cancel reached a child")
        # Raw NUL and raw "../" segments in the target: malformed -> 400.
        for target in (b"/v1/cancel/ab\x00cd", b"/v1/cancel/../../live"):
            with self.subTest(target=target):
                r, closed, _, err = exchange(c.port, b"POST " + target + b" HTTP/1.1\r\n" + HOST_HDR
                                             + b"Content-Length: 0\r\n\r\n", method="POST")
                self.assertIsNotNone(r, err)
                self.assertEqual(r.status, 400, r)
        self.assert_alive()


# ---------------------------------------------------------------------------

class ProtocolTests(SharedCoordinator):
    """HTTP/1.0, pipelining, Expect: 100-continue, HEAD, OPTIONS."""

    PROFILES = {"alpha": {"stream_chunks": 20, "stream_interval": 0.01},
                "beta": {"stream_chunks": 20, "stream_interval": 0.01}}

    def test_http10_non_stream(self):
        c = self.c
        r, closed, extra, err = exchange(c.port, post(b"/v1/chat/completions", CHAT,
                                                      version=b"HTTP/1.0"), method="POST")
        self.assertIsNotNone(r, err)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["object"], "chat.completion")
        self.assertTrue(closed, "HTTP/1.0 without keep-alive: connection not closed")
        self.assertEqual(extra, b"")
        self.assertNotIn("chunked", r.headers.get("transfer-encoding", ""))

    def test_http10_stream_complete_then_close(self):
        c = self.c
        conn = RawConnection(c.port, timeout=10)
        try:
            conn.send(post(b"/v1/chat/completions", STREAM_CHAT, version=b"HTTP/1.0"))
            head_and_body = b""
            t_end = time.monotonic() + 10
            closed = False
            while time.monotonic() < t_end:
                try:
                    data = conn.sock.recv(65536)
                except OSError:
                    break
                if not data:
                    closed = True
                    break
                head_and_body += data
        finally:
            conn.close()
        self.assertTrue(closed, f"stream to an HTTP/1.0 client did not end with a close: "
                                f"{head_and_body[-200:]!r}")
        head, _, body = head_and_body.partition(b"\r\n\r\n")
        self.assertRegex(head.split(b"\r\n")[0], rb"^HTTP/1\.[01] 200 ")
        self.assertNotIn(b"transfer-encoding", head.lower(), "chunked framing to an HTTP/1.0 client")
        events = sse_events(body)
        self.assertEqual(events[-1], "[DONE]", body[-300:])
        contents = [json.loads(e)["choices"][0]["delta"].get("content") for e in events[:-1]]
        self.assertEqual([x for x in contents if x], [f"chunk{n} " for n in range(20)])

    def test_pipelined_requests_answered_in_order(self):
        c = self.c
        slow = b'{"model":"fake-model","fake_duration":0.3,"messages":[{"role":"user","content":"1"}]}'
        with c.raw() as conn:
            conn.send(post(b"/v1/chat/completions", slow) + b"GET /live HTTP/1.1\r\n" + HOST_HDR + b"\r\n")
            r1 = conn.read_response("POST")
            r2 = conn.read_response("GET")
            self.assertEqual(r1.status, 200, r1)
            self.assertEqual(r1.json()["object"], "chat.completion")
            self.assertEqual(r2.status, 200, r2)
            self.assertEqual(r2.json(), {"status": "alive"})
            # stream then non-stream, in one write
            conn.send(post(b"/v1/chat/completions", STREAM_CHAT) + post(b"/v1/chat/completions", CHAT)
                      + b"GET /v1/models HTTP/1.1\r\n" + HOST_HDR + b"\r\n")
            r3 = conn.read_response("POST")
            r4 = conn.read_response("POST")
            r5 = conn.read_response("GET")
            self.assertEqual(r3.status, 200, r3)
            self.assertEqual(sse_events(r3.body)[-1], "[DONE]")
            self.assertEqual(r4.json()["object"], "chat.completion", r4)
            self.assertEqual(r5.json()["object"], "list", r5)
            self.assertFalse(conn.peer_closed(0.2))

    def test_expect_100_continue(self):
        c = self.c
        with c.raw() as conn:
            conn.send(b"POST /v1/chat/completions HTTP/1.1\r\n" + HOST_HDR
                      + b"Expect: 100-continue\r\nContent-Type: application/json\r\n"
                      + b"Content-Length: %d\r\n\r\n" % len(CHAT))
            interim = conn.read_response("POST")  # the body is not sent yet
            self.assertEqual(interim.status, 100, interim)
            conn.send(CHAT)
            r = conn.read_response("POST")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["object"], "chat.completion")
            # still usable
            self.assertEqual(conn.request("GET", "/live").status, 200)

    def test_head_requests(self):
        # HEAD must never carry a body; a request pipelined behind it must parse.
        c = self.c
        # /v1/models may be forwarded: the fake child answers HEAD with 501 (http.server).
        cases = {"/live": (200, 405), "/ready": (200, 405), "/v1/models": (200, 405, 501),
                 "/v1/chat/completions": (405,)}
        for path, allowed in cases.items():
            with self.subTest(path=path):
                with c.raw() as conn:
                    conn.send(b"HEAD " + path.encode() + b" HTTP/1.1\r\n" + HOST_HDR + b"\r\n"
                              + b"GET /live HTTP/1.1\r\n" + HOST_HDR + b"Connection: close\r\n\r\n")
                    r = conn.read_response("HEAD")
                    self.assertIn(r.status, allowed, r)
                    if r.status == 405:
                        self.assertIn("allow", r.headers, r.headers)
                    closed, rest = conn.read_rest(3)
                    self.assertTrue(rest.startswith(b"HTTP/1.1 200 "),
                                    f"HEAD {path} answered with a body: after its headers came "
                                    f"{rest[:160]!r} instead of the next response")
                    self.assertTrue(rest.endswith(b'{"status":"alive"}'), rest[-200:])

    def test_options_requests(self):
        c = self.c
        methods = {"/live": "GET", "/ready": "GET", "/v1/models": "GET",
                   "/v1/chat/completions": "POST"}
        for path, method in methods.items():
            with self.subTest(path=path):
                with c.raw() as conn:
                    r = conn.request("OPTIONS", path)
                    self.assertIn(r.status, (200, 204, 405), r)
                    allow = [m.strip() for m in r.headers.get("allow", "").split(",")]
                    self.assertIn(method, allow, f"OPTIONS {path}: Allow={r.headers.get('allow')!r}")
                    if r.status == 204:
                        self.assertEqual(r.body, b"")
                    self.assertEqual(conn.request("GET", "/live").status, 200)
        # OPTIONS never reaches a child.
        self.assertEqual([e for e in forwarded(c) if e["method"] == "OPTIONS"], [])


# ---------------------------------------------------------------------------

class PathologicalJsonTests(SharedCoordinator):

    PROFILES = {"alpha": {}}

    def assert_400(self, body):
        c = self.c
        before = len(forwarded(c))
        t0 = time.monotonic()
        r, closed, extra, err = exchange(c.port, post(b"/v1/chat/completions", body), method="POST",
                                         timeout=30)
        took = time.monotonic() - t0
        self.assertIsNotNone(r, err)
        self.assertEqual(r.status, 400, r)
        self.assertTrue(is_json_error(r), r)
        self.assertLess(took, 10)
        self.assert_alive()
        self.assertEqual(forwarded(c)[before:], [])
        self.assertEqual(c.chat("still fine").status, 200)

    def test_million_nested_brackets(self):
        self.assert_400(b"[" * 1_000_000 + b"]" * 1_000_000)

    def test_million_nested_objects(self):
        self.assert_400(b'{"a":' * 1_000_000 + b"1" + b"}" * 1_000_000)

    def test_million_unclosed_brackets(self):
        self.assert_400(b'{"messages":' + b"[" * 1_000_000)

    def test_million_digit_number(self):
        self.assert_400(b"9" * 1_000_000)

    def test_million_digit_number_in_chat_body(self):
        self.assert_400(b'{"model":"fake-model","messages":[],"temperature":' + b"9" * 1_000_000 + b"}")


if __name__ == "__main__":
    unittest.main()
