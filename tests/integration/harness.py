"""Shared helpers for black-box integration tests of the ``coordinator`` binary.

Python 3 standard library only.  All traffic goes to 127.0.0.1.

Typical use::

    from harness import Coordinator

    with Coordinator({"alpha": {}, "beta": {"chat_delay": 0.1}}) as c:
        r = c.chat("hi")                      # POST /v1/chat/completions through the coordinator
        assert r.status == 200
        assert r.headers.get("x-fake-child") in ("alpha", "beta")
        print(c.events("alpha", "request"))   # what the fake child saw
    # on exit: SIGTERM (then SIGKILL); then every child/grandchild pid recorded in the
    # state dir, and every process carrying this run's unique FAKE_CHILD_STATE_DIR in
    # its environment, still alive after a grace is SIGKILLed and reported as an
    # AssertionError.

Environment:

* ``COORDINATOR_BIN``  path of the binary (default ``<repo>/build/coordinator``)
* ``FAKE_CHILD``       path of the fake launcher (default
  ``<repo>/tests/fixtures/fake_child/launch_camoufox.py``)
* ``COORDINATOR_TEST_KEEP=1`` keep every temp dir (by default a temp dir is kept, and its path
  printed to stderr, only when the ``with`` block raised).

At import, ``COORDINATOR_BIN --help`` is run once (:data:`HELP_TEXT`): when it lists
``--start-stagger``, every :class:`Coordinator` passes ``--start-stagger 0`` unless the test
asks for another value, and every ``Env:NAME`` it lists is removed from the inherited
environment.

Attach mode (``Coordinator({}, attach={"a": {...}, "b": {...}})``): the harness itself starts
one fake child per ``attach`` entry (same launcher flags, free ports, this run's state dir),
waits for its /health, and runs the coordinator with ``--upstream [LABEL=]http://127.0.0.1:PORT``
instead of ``--profiles``; at exit those children (and their grandchildren) are ended by PID.

The fake child is described in ``docs/fake-child-contract.md``: its ``"_fake"`` options are
what the ``profiles`` dict of :class:`Coordinator` maps each profile name to.

Scaffolding the test modules share: ``setUpModule`` calls :func:`require_binary`;
:class:`SharedCoordinator` (one coordinator per test class), :class:`Background` (a request
in a thread), :class:`SSEStream` and its line helpers (an incremental SSE reader with arrival
times), :func:`chat_body`, :func:`error_of` / :func:`is_json_error` / :func:`is_openai_error`,
:func:`parse_metrics` / :func:`metric`, :func:`run_binary` / :func:`parse_print_config`,
:func:`proc_stat`, :func:`note`, and :meth:`Coordinator.wait_state`.
"""

import collections
import fcntl
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
COORDINATOR_BIN = os.environ.get("COORDINATOR_BIN", str(REPO_ROOT / "build" / "coordinator"))
FAKE_CHILD = os.environ.get(
    "FAKE_CHILD", str(REPO_ROOT / "tests" / "fixtures" / "fake_child" / "launch_camoufox.py"))
HOST = "127.0.0.1"
GRANDCHILD_MARKER = "time.sleep(10**9)"

__all__ = [
    "REPO_ROOT", "COORDINATOR_BIN", "FAKE_CHILD", "HOST",
    "binary_available", "require_binary", "pid_alive", "pid_cmdline", "proc_stat", "wait_until",
    "note", "clean_env", "run_binary", "parse_print_config",
    "port_is_free", "free_port", "free_port_base", "hold_port",
    "Response", "http_request", "get", "post_json", "healthy", "chat_body", "error_of",
    "is_json_error", "is_openai_error", "RawConnection", "raw_exchange",
    "SSEStream", "CHUNK_ID_RE", "data_payload", "parse_event", "chunk_content", "content_chunks",
    "req_id_of", "data_lines", "is_done", "describe", "parse_metrics", "metric",
    "FAST_FAKE_DEFAULTS", "storage_state", "write_profile", "replace_json", "launcher_argv",
    "ready_names", "served_by", "CHILD_STATES", "Coordinator", "Background", "SharedCoordinator",
    "HELP_TEXT", "has_flag", "HAS_START_STAGGER", "log_time",
]


def binary_available():
    """True if COORDINATOR_BIN exists and is executable."""
    return os.path.isfile(COORDINATOR_BIN) and os.access(COORDINATOR_BIN, os.X_OK)


def _read_help():
    if not binary_available():
        return ""
    try:
        r = subprocess.run([COORDINATOR_BIN, "--help"], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return (r.stdout + r.stderr).decode("utf-8", "replace")


HELP_TEXT = _read_help()
HAS_START_STAGGER = "--start-stagger" in HELP_TEXT

# Environment variables the coordinator may read as flag defaults, or that it passes on to
# children and the tests check, and systemd's NOTIFY_SOCKET / WATCHDOG_*: never inherited.
_COORDINATOR_ENV = {
    "BASE_API_PORT", "BASE_STREAM_PORT", "BASE_CAMOUFOX_PORT", "PORT_STEP", "LOG_DIR",
    "HEADLESS", "NO_HEADLESS", "SHUTDOWN_GRACE", "READY_TIMEOUT", "HEALTH_INTERVAL",
    "CONNECT_TIMEOUT", "REQUEST_TIMEOUT", "MAX_BODY", "STREAM_IDLE_TIMEOUT", "SSE_HEARTBEAT",
    "AUTO_ROTATE_AUTH_PROFILE", "HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy",
    "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
} | set(re.findall(r"Env:\s*([A-Za-z_][A-Za-z0-9_]*)", HELP_TEXT))


def require_binary():
    """The body of every integration module's setUpModule: the binary must exist
    (``COORDINATOR_SKIP_IF_MISSING=1`` skips instead of failing)."""
    if not binary_available():
        if os.environ.get("COORDINATOR_SKIP_IF_MISSING") == "1":
            raise unittest.SkipTest(f"{COORDINATOR_BIN} not built")
        raise RuntimeError(f"coordinator binary not found at {COORDINATOR_BIN} "
                           f"(build it, or set COORDINATOR_BIN)")


def has_flag(flag):
    """True if `flag` (e.g. "--pool-size") appears in the binary's --help (read at import)."""
    return re.search(re.escape(flag) + r"(?![\w-])", HELP_TEXT) is not None


def clean_env(extra=None):
    """os.environ without anything the coordinator or the fake child would read from it
    (``COORDINATOR_*``, ``FAKE_ENV_*``, every ``Env:`` of --help, the flag defaults and proxy
    variables above, NOTIFY_SOCKET / WATCHDOG_*), plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("COORDINATOR_") and not k.startswith("FAKE_ENV_")
           and k not in _COORDINATOR_ENV}
    env.update(extra or {})
    return env


def run_binary(args, env=None, cwd=None, timeout=15):
    """Run the binary to completion (e.g. ``--print-config``) in :func:`clean_env` plus
    `env`; returns the CompletedProcess (text)."""
    return subprocess.run([COORDINATOR_BIN] + list(args), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, env=clean_env(env), cwd=cwd,
                          timeout=timeout)


def parse_print_config(text):
    """--print-config output -> {key: value} (quotes of string values removed)."""
    out = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise AssertionError(f"--print-config line is not key=value: {line!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        out[key.strip()] = value
    return out


_LOG_TIME_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2}(?:\.\d+)?)")


def log_time(line):
    """The Unix time of a coordinator log line's leading local timestamp
    (``YYYY-MM-DD HH:MM:SS.mmm``), or None."""
    m = _LOG_TIME_RE.match(line)
    if not m:
        return None
    whole, _, frac = m.group(2).partition(".")
    t = time.mktime(time.strptime(f"{m.group(1)} {whole}", "%Y-%m-%d %H:%M:%S"))
    return t + (float("0." + frac) if frac else 0.0)


def note(msg, tag=None):
    """Print a figure worth quoting to stderr as ``[TAG] msg`` on a line of its own; `tag`
    defaults to the calling module's name (e.g. ``test_resilience``)."""
    if tag is None:
        tag = sys._getframe(1).f_globals.get("__name__", "harness")
    print(f"\n[{tag}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# processes and waiting

def pid_alive(pid):
    """True if process `pid` exists and is not a zombie (state Z/X counts as dead)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError):
        return False
    except OSError:
        return True
    state = stat[stat.rfind(")") + 2:][:1]
    return state not in ("Z", "X", "x")


def pid_cmdline(pid):
    """The command line of `pid` as one space-joined string ('' if unreadable)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return ""


ProcStat = collections.namedtuple("ProcStat", "state ppid pgrp session")


def proc_stat(pid):
    """`pid`'s :class:`ProcStat` (state letter, ppid, process group, session) from
    /proc/PID/stat, or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()
    return ProcStat(fields[0], int(fields[1]), int(fields[2]), int(fields[3]))


def wait_until(pred, timeout, interval=0.05):
    """Call `pred()` until it returns a truthy value or `timeout` seconds pass.

    Returns that truthy value, or the last (falsy) value on timeout.  Exceptions from
    `pred` are treated as falsy (the last one is re-raised only if it never succeeded
    and every call raised).
    """
    deadline = time.monotonic() + timeout
    last, last_exc, ok_once = None, None, False
    while True:
        try:
            last = pred()
            ok_once = True
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last_exc = e
        if time.monotonic() >= deadline:
            if not ok_once and last_exc is not None:
                raise last_exc
            return last
        time.sleep(interval)


# ---------------------------------------------------------------------------
# ports

_reserved_ports = set()
_port_lock = threading.Lock()


def port_is_free(port, host=HOST):
    """True if `port` can be bound on `host` right now (no SO_REUSEADDR: strict)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _candidate_range():
    lo, hi = 20000, 60000
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            eph_lo, eph_hi = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        return lo, hi
    # Prefer the part of 20000-60000 below the ephemeral range (fewer collisions with
    # outgoing connections), if there is room.
    if eph_lo - lo >= 5000:
        return lo, min(hi, eph_lo)
    return lo, hi


# Test processes run in parallel (ctest -j): a port verified free here can be taken by
# another test process before our coordinator binds it. Each process therefore claims
# chunks of the port range with an flock on a per-chunk file; the kernel drops the lock
# when the process ends, so a crashed test never leaks a claim.
_PORT_CHUNK = 64
_PORT_LOCK_DIR = os.path.join(tempfile.gettempdir(), "coordinator-test-ports")
_claimed_chunks = {}  # chunk index -> open lock file (kept open: the lock lives with it)


def _claim_chunk(chunk):
    """True if this process holds (or now takes) the cross-process claim on `chunk`."""
    if chunk in _claimed_chunks:
        return True
    os.makedirs(_PORT_LOCK_DIR, exist_ok=True)
    f = open(os.path.join(_PORT_LOCK_DIR, f"{chunk}.lock"), "a")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        return False
    _claimed_chunks[chunk] = f
    return True


def _claim_block(block):
    chunks = range(block[0] // _PORT_CHUNK, block[-1] // _PORT_CHUNK + 1)
    return all(_claim_chunk(c) for c in chunks)


def free_port_base(n, step=1, exclude=()):
    """A base port such that every port in [base, base + n*step) is free.

    Ports are drawn in 20000-60000 (below the ephemeral range when possible), first from
    chunks this process already claimed, verified by binding, and remembered so that
    later calls in this process never return an overlapping block; no other test
    process gets a port of a claimed chunk.
    """
    n, step = max(1, int(n)), max(1, int(step))
    span = n * step
    lo, hi = _candidate_range()
    exclude = set(exclude)

    def usable(base):
        block = range(base, base + span)
        if base < lo or base + span > hi:
            return False
        if any(p in _reserved_ports or p in exclude for p in block):
            return False
        return _claim_block(block) and all(port_is_free(p) for p in block)

    with _port_lock:
        # Reuse claimed chunks first, so a test process holds only a few of them.
        for chunk in sorted(_claimed_chunks):
            for base in range(chunk * _PORT_CHUNK, (chunk + 1) * _PORT_CHUNK):
                if base + span <= (chunk + 1) * _PORT_CHUNK and usable(base):
                    _reserved_ports.update(range(base, base + span))
                    return base
        for _ in range(500):
            base = random.randrange(lo, hi - span)
            if usable(base):
                _reserved_ports.update(range(base, base + span))
                return base
    raise RuntimeError(f"no free block of {span} ports found")


def free_port(exclude=()):
    """One free port on 127.0.0.1 (see :func:`free_port_base`)."""
    return free_port_base(1, 1, exclude)


def hold_port(port, host=HOST):
    """Bind and listen on `port`; returns the socket (close it to release)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((host, port))
    s.listen(16)
    return s


# ---------------------------------------------------------------------------
# HTTP

class Response:
    """An HTTP response: `status`, `reason`, `headers` (dict, lower-case names), `body` bytes."""

    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        """The body parsed as JSON (raises ValueError if it is not JSON)."""
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        body = self.body if len(self.body) < 300 else self.body[:300] + b"..."
        return f"<Response {self.status} {self.reason} {body!r}>"


def _headers_dict(items):
    out = {}
    for k, v in items:
        k = k.lower()
        out[k] = v if k not in out else out[k] + ", " + v
    return out


def http_request(port, method, path, body=None, headers=None, timeout=10.0, host=HOST):
    """One request on a fresh http.client connection; returns a :class:`Response`.

    `body` may be bytes, str, or any other object (sent as JSON with
    Content-Type application/json).  The whole body is read.
    """
    headers = dict(headers or {})
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    elif isinstance(body, str):
        body = body.encode()
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, r.reason, _headers_dict(r.getheaders()), data)
    finally:
        conn.close()


def get(port, path, **kw):
    """GET `path` on 127.0.0.1:`port` (keyword args as :func:`http_request`)."""
    return http_request(port, "GET", path, **kw)


def post_json(port, path, obj, **kw):
    """POST `obj` as JSON to `path` on 127.0.0.1:`port`."""
    return http_request(port, "POST", path, body=obj, **kw)


def healthy(port):
    """True if GET /health on 127.0.0.1:`port` answers 200 within a second."""
    try:
        return get(port, "/health", timeout=1).status == 200
    except (OSError, http.client.HTTPException):
        return False


def chat_body(content="hi", stream=False, model="fake-model", **extra):
    """A minimal chat completion request body (one user message), plus `extra` fields."""
    body = {"model": model, "messages": [{"role": "user", "content": content}]}
    if stream:
        body["stream"] = True
    body.update(extra)
    return body


def _error_object(response):
    try:
        body = response.json()
    except ValueError:
        return None
    err = body.get("error") if isinstance(body, dict) else None
    return err if isinstance(err, dict) else None


def error_of(response):
    """The ``error`` object of a JSON error answer (AssertionError when there is none)."""
    err = _error_object(response)
    assert err is not None, response
    return err


def is_json_error(response):
    """True if the body is JSON with an ``error`` object whose ``message`` is a string."""
    err = _error_object(response)
    return err is not None and isinstance(err.get("message"), str)


def is_openai_error(response):
    """:func:`is_json_error`, and the ``error`` object also has ``type`` and ``code``."""
    err = _error_object(response)
    return is_json_error(response) and "type" in err and "code" in err


class RawConnection:
    """A raw TCP connection for hand-made requests (malformed input, keep-alive checks).

    ``send(bytes)`` writes as-is; ``read_response()`` parses one HTTP/1.1 response
    (Content-Length, chunked, or read-until-close); ``request(...)`` builds a simple
    request with Host and Content-Length and reads its response.  Usable as a
    context manager.
    """

    def __init__(self, port, timeout=10.0, host=HOST):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.port = port
        self.buf = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed by peer")
        self.buf += data

    def _read_line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_response(self, method="GET"):
        """Read one response; raises EOFError if the peer closed before a full one."""
        status_line = self._read_line().decode("latin-1")
        parts = status_line.split(" ", 2)
        status = int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        items = []
        while True:
            line = self._read_line()
            if not line:
                break
            k, _, v = line.decode("latin-1").partition(":")
            items.append((k.strip(), v.strip()))
        headers = _headers_dict(items)
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            chunks = []
            while True:
                size = int(self._read_line().split(b";")[0].strip(), 16)
                if size == 0:
                    while self._read_line():
                        pass
                    break
                chunks.append(self._read_exact(size))
                self._read_exact(2)
            body = b"".join(chunks)
        elif "content-length" in headers:
            body = self._read_exact(int(headers["content-length"]))
        else:
            try:
                while True:
                    self._fill()
            except EOFError:
                pass
            body, self.buf = self.buf, b""
        return Response(status, reason, headers, body)

    def request(self, method, path, body=b"", headers=None):
        """Send a simple request (Host, Content-Length added) and read its response."""
        if isinstance(body, str):
            body = body.encode()
        hdrs = {"Host": f"{HOST}:{self.port}"}
        if body or method in ("POST", "PUT"):
            hdrs["Content-Length"] = str(len(body))
        hdrs.update(headers or {})
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
        self.send(head.encode("latin-1") + b"\r\n" + body)
        return self.read_response(method)

    def read_rest(self, timeout):
        """Read what is left until the peer closes or `timeout` passes (bytes already
        buffered included).  Returns (closed, bytes); a reset counts as closed."""
        extra, self.buf = self.buf, b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return False, extra
            except OSError:
                return True, extra
            if not data:
                return True, extra
            extra += data
        return False, extra

    def peer_closed(self, timeout=0.3):
        """True if the peer closed the connection within `timeout` seconds."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1, socket.MSG_PEEK)
            return data == b""
        except socket.timeout:
            return False
        except OSError:
            return True


def raw_exchange(port, data, timeout=5.0, host=HOST):
    """Send raw bytes, then read until the peer closes or `timeout` passes; returns bytes."""
    with RawConnection(port, timeout=timeout, host=host) as conn:
        conn.send(data)
        return conn.read_rest(timeout)[1]


# ---------------------------------------------------------------------------
# server-sent events

# The real child's stream chunk ids: chatcmpl-{req_id}-{ts}-{rand} (response_generators.py).
CHUNK_ID_RE = re.compile(r"^chatcmpl-([a-z0-9]{7})-(\d+)-(\d{3})$")


class SSEStream:
    """One POST over a raw socket, read incrementally with an arrival time per line.

    ``read_head()`` parses the status line and headers; ``next_line()`` returns the next
    non-empty line of the (de-chunked) body as ``(t, text)`` where ``t`` is the
    ``time.monotonic()`` at which the bytes completing that line arrived, or None once the
    body is complete (terminal chunk / Content-Length reached / EOF).  Every wait is
    bounded and raises TimeoutError when its deadline passes.
    """

    def __init__(self, port, body=None, path="/v1/chat/completions", headers=None,
                 timeout=10.0, host=HOST):
        data = json.dumps(chat_body(stream=True) if body is None else body).encode()
        self.t0 = time.monotonic()
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        hdrs = {"Host": f"{host}:{port}", "Content-Type": "application/json",
                "Accept": "text/event-stream", "Content-Length": str(len(data))}
        hdrs.update(headers or {})
        head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
        self.sock.sendall(head.encode("latin-1") + b"\r\n" + data)
        self.t_sent = time.monotonic()
        self.raw = b""            # received, not yet decoded
        self.body = b""           # decoded body, not yet split into lines
        self.pending = collections.deque()
        self.lines = []           # every (t, line) returned so far
        self.status = None
        self.headers = {}
        self.t_head = None
        self.framing = None       # "chunked" | "length" | "close"
        self.remaining = None
        self.complete = False     # body complete according to its framing
        self.t_complete = None
        self.eof = False          # peer closed (FIN or RST)
        self.t_eof = None
        self.closed = False

    # -- low level ---------------------------------------------------------------
    def _recv(self, deadline, what):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"timed out waiting for {what}")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError(f"timed out waiting for {what}") from None
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        now = time.monotonic()
        if not data:
            self.eof = True
            self.t_eof = now
            return False
        self.raw += data
        return True

    def _decode(self, t):
        if self.framing == "chunked":
            while not self.complete:
                i = self.raw.find(b"\r\n")
                if i < 0:
                    break
                size = int(self.raw[:i].split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    rest = self.raw[i + 2:]
                    if rest.startswith(b"\r\n"):
                        self.raw = rest[2:]
                    else:
                        j = rest.find(b"\r\n\r\n")
                        if j < 0:
                            break
                        self.raw = rest[j + 4:]
                    self.complete = True
                    self.t_complete = t
                    break
                if len(self.raw) < i + 2 + size + 2:
                    break
                self.body += self.raw[i + 2:i + 2 + size]
                self.raw = self.raw[i + 2 + size + 2:]
        elif self.framing == "length":
            take = self.raw[:self.remaining]
            self.raw = self.raw[len(take):]
            self.remaining -= len(take)
            self.body += take
            if self.remaining == 0:
                self.complete = True
                self.t_complete = t
        else:
            self.body += self.raw
            self.raw = b""
        while b"\n" in self.body:
            line, self.body = self.body.split(b"\n", 1)
            line = line.rstrip(b"\r")
            if line:
                self.pending.append((t, line.decode("utf-8", "replace")))

    # -- API ---------------------------------------------------------------------------
    def read_head(self, timeout=10.0):
        """Read the status line and headers; returns the status code."""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.raw:
            if not self._recv(deadline, "the response head"):
                raise EOFError(f"connection closed before the response head: {self.raw!r}")
        self.t_head = time.monotonic()
        head, self.raw = self.raw.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split(" ", 2)[1])
        for line in lines[1:]:
            k, _, v = line.partition(":")
            k = k.strip().lower()
            self.headers[k] = (self.headers[k] + ", " + v.strip()) if k in self.headers \
                else v.strip()
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            self.framing = "chunked"
        elif "content-length" in self.headers:
            self.framing = "length"
            self.remaining = int(self.headers["content-length"])
        else:
            self.framing = "close"
        self._decode(self.t_head)
        return self.status

    def next_line(self, timeout=10.0):
        """The next non-empty body line as (t, text); None at the end of the body."""
        if self.status is None:
            self.read_head(timeout)
        deadline = time.monotonic() + timeout
        while not self.pending:
            if self.complete or self.eof:
                return None
            if self._recv(deadline, "the next SSE line"):
                self._decode(time.monotonic())
            else:
                if self.body.strip():
                    self.pending.append((self.t_eof, self.body.decode("utf-8", "replace")))
                    self.body = b""
        item = self.pending.popleft()
        self.lines.append(item)
        return item

    def read_to_end(self, timeout=10.0):
        """Every remaining line until the body ends (TimeoutError after `timeout` s)."""
        deadline = time.monotonic() + timeout
        out = []
        while True:
            item = self.next_line(max(0.0, deadline - time.monotonic()) or 1e-3)
            if item is None:
                return out
            out.append(item)

    def wait_eof(self, timeout):
        """After the body: True if the peer closes the connection within `timeout` s."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            try:
                self._recv(deadline, "the connection to close")
            except TimeoutError:
                return False
        return True

    def close(self):
        if not self.closed:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def data_payload(line):
    """The payload of an SSE `data:` line, else None."""
    if not line.startswith("data:"):
        return None
    payload = line[5:]
    return payload[1:] if payload.startswith(" ") else payload


def parse_event(line):
    """A `data:` line's JSON object (None for non-data lines and [DONE])."""
    payload = data_payload(line)
    if payload is None or payload.strip() == "[DONE]":
        return None
    try:
        obj = json.loads(payload)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def chunk_content(obj):
    """The ``delta.content`` of a stream chunk object (None if it has none)."""
    try:
        return obj["choices"][0]["delta"].get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        return None


def content_chunks(lines):
    """[(t, content, chunk_id)] of the data events that carry delta content."""
    out = []
    for t, line in lines:
        obj = parse_event(line)
        if obj is None:
            continue
        content = chunk_content(obj)
        if content:
            out.append((t, content, obj.get("id")))
    return out


def req_id_of(chunk_id):
    """The 7-character req_id inside a real-child chunk id (None if it is not one)."""
    m = CHUNK_ID_RE.match(chunk_id or "")
    return m.group(1) if m else None


def data_lines(lines):
    """The (t, line) items that are SSE ``data:`` lines."""
    return [(t, line) for t, line in lines if line.startswith("data:")]


def is_done(line):
    """True for the ``data: [DONE]`` line."""
    payload = data_payload(line)
    return payload is not None and payload.strip() == "[DONE]"


def describe(lines, limit=40):
    """(t, line) items as text for a failure message (the middle cut when over `limit`)."""
    shown = [line for _, line in lines]
    if len(shown) > limit:
        shown = shown[:limit // 2] + ["..."] + shown[-limit // 2:]
    return "\n".join(shown)


# ---------------------------------------------------------------------------
# /metrics

_METRIC_LINE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$")
_METRIC_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """Prometheus text -> {(name, frozenset(label items)): float} (AssertionError on a line
    that is not a sample)."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _METRIC_LINE_RE.match(line)
        if not m:
            raise AssertionError(f"unparsable metrics line: {line!r}")
        labels = frozenset(_METRIC_LABEL_RE.findall(m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def metric(samples, name, absent=0.0, **labels):
    """The value of sample `name` with exactly these labels in :func:`parse_metrics` output
    (`absent` if there is none)."""
    return samples.get((name, frozenset(labels.items())), absent)


# ---------------------------------------------------------------------------
# profiles and the coordinator

# Small timing knobs merged under every profile's own ``_fake`` options (a test's own value
# wins): the fake child's defaults are the real child's (seconds to start and to stop), too slow
# for a suite that starts hundreds of children.  See docs/fake-child-contract.md.
FAST_FAKE_DEFAULTS = {
    "startup_delay": 0.2,          # browser connect + page load before the API port is bound
    "stop_delay": 0.2,             # page and browser close during a clean stop
    "stream_proxy_join": 0.2,      # wait for the (SIGTERM-ignoring) stream proxy before SIGKILL
    "stream_ready_timeout": 3,     # wait for the stream proxy's READY
    "stream_pacing": False,        # the worker's 0.5-1 s gap between consecutive streams
    "quota_attempt_delay": 0.2,    # a prompt submission that meets AI Studio's quota error
    "quota_comment_interval": 0.2,  # ": processing auth rotation..." lines 2 s apart
    "quota_park": 1.0,             # ensure_request_lock parking before 530 (60 s)
    "tool_call_pause": 0.2,        # a stream's pause before function calls with no text (2 s)
}


def storage_state(cookie_value, fake=None):
    """A Playwright storage-state dict holding `cookie_value` and a ``_fake`` object:
    FAST_FAKE_DEFAULTS overridden by `fake` (if given)."""
    state = {
        "cookies": [{
            "name": "__Secure-1PSID", "value": cookie_value, "domain": ".google.com",
            "path": "/", "expires": -1, "httpOnly": True, "secure": True, "sameSite": "None",
        }],
        "origins": [{
            "origin": "https://aistudio.google.com",
            "localStorage": [{"name": "session-token", "value": cookie_value + "-ls"}],
        }],
    }
    state["_fake"] = {**FAST_FAKE_DEFAULTS, **(fake or {})}
    return state


def write_profile(folder, name, fake=None, cookie=None):
    """Write ``folder/NAME.json`` (:func:`storage_state` with `fake`; the cookie value is
    `cookie`, else a unique ``secret-cookie-<uuid>``); returns its path."""
    path = os.path.join(folder, name + ".json")
    with open(path, "w") as f:
        json.dump(storage_state(cookie or f"secret-cookie-{uuid.uuid4().hex}", fake), f)
    return path


def replace_json(path, obj):
    """What an operator does: write `obj` as JSON next to `path`, then rename it over it."""
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".new")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


def launcher_argv(api, stream, debug, profile, launcher=None, python=None):
    """The command line that starts a fake child (as the coordinator does, headless) on
    these ports with `profile` as its --active-auth-json."""
    return [python or sys.executable, os.path.abspath(launcher or FAKE_CHILD),
            "--server-port", str(api), "--stream-port", str(stream),
            "--camoufox-debug-port", str(debug), "--active-auth-json", profile, "--headless"]


def ready_names(body):
    """Names in a /ready or /health body's ``ready_children`` (strings or {"name":..})."""
    return _names(body.get("ready_children", []))


def _names(items):
    out = []
    for item in items or []:
        if isinstance(item, dict):
            out.append(item.get("name"))
        else:
            out.append(item)
    return out


# Every state a child can be in, in GET /ready's ``children`` (needs_relogin aside).
CHILD_STATES = frozenset({"starting", "ready", "busy", "unhealthy", "cooling", "exited", "backoff",
                          "failed", "draining", "retired"})

_NOT_READY_KEYS = ("never_ready", "crash_on_start", "health_hang", "orphan_grandchild")


class Coordinator:
    """Run the coordinator binary over fake children in a private temp dir.

    Parameters
    ----------
    profiles : dict
        name -> ``_fake`` options (dict, or None for none) written as
        ``profiles/NAME.json`` in storage-state shape with a unique secret cookie
        (``secret-cookie-<uuid>``, listed in ``self.secrets``); a ``str``/``bytes``
        value is written verbatim (e.g. invalid JSON).
    extra_args : sequence of str
        appended to the command line.
    wait_ready : int or None
        wait (bounded by `ready_wait`) for GET /ready 200 with at least this many
        ready children.  Default: the number of dict profiles without never_ready,
        crash_on_start, health_hang or orphan_grandchild.  0 or None: do not wait.
    port_step : int
        passed as ``--port-step``; port bases are chosen so that every child port is free.
    health_interval, ready_timeout : float
        ``--health-interval`` and ``--ready-timeout`` values.
    profiles_dir : str or None
        use this path for ``--profiles`` instead of the temp profiles dir (e.g. missing).
    env : dict or None
        extra environment for the coordinator (FAKE_CHILD_STATE_DIR is always set;
        inherited ``COORDINATOR_*`` variables are removed).
    args_override : list or None
        if given, the complete argv after the binary (no defaults are added).
    stop_timeout : float
        bound on waiting for exit after SIGTERM in ``__exit__``/``stop``.
    leak_grace : float
        after the coordinator exits, how long recorded pids may take to die before
        they are counted as leaked.
    check_leaks : bool
        raise AssertionError from ``__exit__`` when processes were leaked: recorded
        child/grandchild pids still alive, or any process carrying this run's
        FAKE_CHILD_STATE_DIR in its environment (see :meth:`tagged_pids`).
    start_stagger : "default", number or None
        ``--start-stagger`` value: by default 0 when the binary's --help lists the flag
        (else the flag is not passed); a number is always passed; None never.
    env_files : dict or None
        name -> dict (written as KEY=VALUE lines) or str (verbatim), written as
        ``profiles/NAME.env`` next to the profile (see :meth:`write_env_file`).
    attach : dict or None
        attach mode: name -> ``_fake`` options of a fake child the harness starts itself
        (profile ``attached/NAME.json``, free ports, stdout/stderr to
        ``attached/NAME.log``, ``spawn_grandchild`` false unless given).  The coordinator
        gets one ``--upstream`` per entry and, when `profiles` is empty, no --profiles,
        --launcher, --python or port-base flags.  At exit each such child is sent SIGTERM
        then SIGKILL by PID (its recorded grandchild too) after the coordinator stopped.
    attach_labels : dict or None
        name -> label for ``--upstream LABEL=URL``; default label = name; None = no label
        (the coordinator then names it HOST:PORT).

    Attributes: ``dir``, ``profiles_dir``, ``log_dir``, ``state_dir``, ``stdout_path``,
    ``stderr_path``, ``port``, ``api_base``, ``stream_base``, ``camoufox_base``,
    ``port_step``, ``names`` (sorted profile names), ``profile_paths`` (name -> abs path),
    ``secrets`` (name -> [secret strings]), ``proc``, ``argv``, ``leaked`` ((pid,
    description) pairs killed by the harness at exit), ``attach_names``, ``attached``
    (name -> {"proc", "port", "url", "label"}).

    Helpers beyond HTTP and the state dir: :meth:`rewrite_profile` (new ``_fake`` options
    for the next restart), :meth:`write_env_file` (``NAME.env``), :meth:`children` /
    :meth:`child` / :meth:`child_states` / :meth:`wait_child` (GET /ready's ``children``),
    :meth:`upstream_name` and :meth:`attached_pid` (attach mode).
    """

    def __init__(self, profiles, extra_args=(), wait_ready="auto", ready_wait=20.0,
                 port_step=1, health_interval=0.2, ready_timeout=10, profiles_dir=None,
                 env=None, args_override=None, stop_timeout=20.0, leak_grace=5.0,
                 check_leaks=True, launcher=None, python=None, start_stagger="default",
                 env_files=None, attach=None, attach_labels=None):
        self.profiles = dict(profiles)
        self.attach = dict(attach or {})
        self.attach_labels = {n: n for n in self.attach}
        self.attach_labels.update(attach_labels or {})
        self.attached = {}  # name -> {"proc", "port", "url", "label", "log"}
        if start_stagger == "default":
            start_stagger = 0 if HAS_START_STAGGER else None
        self.start_stagger = start_stagger
        self.extra_args = list(extra_args)
        if wait_ready == "auto":
            wait_ready = sum(1 for v in list(self.profiles.values()) + list(self.attach.values())
                             if (v is None or isinstance(v, dict))
                             and not any((v or {}).get(k) for k in _NOT_READY_KEYS))
        self.wait_ready_count = wait_ready
        self.ready_wait = ready_wait
        self.port_step = port_step
        self.health_interval = health_interval
        self.ready_timeout = ready_timeout
        self.profiles_dir_override = profiles_dir
        self.env_extra = dict(env or {})
        self.args_override = args_override
        self.stop_timeout = stop_timeout
        self.leak_grace = leak_grace
        self.check_leaks = check_leaks
        self.launcher = os.path.abspath(launcher or FAKE_CHILD)
        self.python = python or sys.executable
        self.proc = None
        self.leaked = []
        self.names = sorted(self.profiles)
        self.attach_names = sorted(self.attach)
        self.secrets = {}
        self.profile_paths = {}
        self._out_files = []

        self.dir = tempfile.mkdtemp(prefix="coord-test-")
        self.profiles_dir = os.path.join(self.dir, "profiles")
        self.log_dir = os.path.join(self.dir, "logs")
        self.state_dir = os.path.join(self.dir, "state")
        self.stdout_path = os.path.join(self.dir, "coordinator.stdout")
        self.stderr_path = os.path.join(self.dir, "coordinator.stderr")
        self.attached_dir = os.path.join(self.dir, "attached")
        for d in (self.profiles_dir, self.log_dir, self.state_dir, self.attached_dir):
            os.makedirs(d)
        for name, value in self.profiles.items():
            self._write_profile(name, value, self.profiles_dir)
        for name, value in self.attach.items():
            fake = dict(value or {})
            fake.setdefault("spawn_grandchild", False)
            self._write_profile(name, fake, self.attached_dir)
        for name, content in (env_files or {}).items():
            self.write_env_file(name, content)

        n = max(1, len(self.profiles))
        self.port = free_port()
        self.api_base = free_port_base(n, port_step)
        self.stream_base = free_port_base(n, port_step)
        self.camoufox_base = free_port_base(n, port_step)

    # -- profiles ----------------------------------------------------------------
    def _write_profile(self, name, value, folder):
        path = os.path.join(folder, name + ".json")
        self.profile_paths[name] = path
        if isinstance(value, (str, bytes)):
            with open(path, "wb") as f:
                f.write(value.encode() if isinstance(value, str) else value)
            return
        secret = f"secret-cookie-{uuid.uuid4().hex}"
        self.secrets[name] = [secret, secret + "-ls"]
        with open(path, "w") as f:
            json.dump(storage_state(secret, value), f, indent=2)

    def rewrite_profile(self, name, fake):
        """Replace profile `name`'s ``_fake`` options (same cookie), atomically.

        A running child keeps the options it read at start; the new ones apply from its
        next (re)start.  `fake` None leaves only :data:`FAST_FAKE_DEFAULTS`.
        """
        replace_json(self.profile_paths[name], storage_state(self.secrets[name][0], fake))

    def env_file_path(self, name):
        return os.path.join(os.path.dirname(self.profile_paths.get(name) or
                                            os.path.join(self.profiles_dir, name + ".json")),
                            name + ".env")

    def write_env_file(self, name, content):
        """Write ``NAME.env`` next to profile `name`: a dict becomes KEY=VALUE lines, a str
        is written verbatim.  Returns the path."""
        if isinstance(content, dict):
            content = "".join(f"{k}={v}\n" for k, v in content.items())
        path = self.env_file_path(name)
        with open(path, "w") as f:
            f.write(content)
        return path

    @property
    def all_names(self):
        """Spawned profile names, then attached child names."""
        return self.names + [n for n in self.attach_names if n not in self.names]

    # -- ports -------------------------------------------------------------------
    def index(self, name):
        """0-based index of profile `name` (profiles sorted by name)."""
        return self.names.index(name)

    def api_port(self, name_or_index):
        """The API port the coordinator should give a child (by name or index)."""
        i = name_or_index if isinstance(name_or_index, int) else self.index(name_or_index)
        return self.api_base + i * self.port_step

    def stream_port(self, name_or_index):
        i = name_or_index if isinstance(name_or_index, int) else self.index(name_or_index)
        return self.stream_base + i * self.port_step

    def camoufox_port(self, name_or_index):
        i = name_or_index if isinstance(name_or_index, int) else self.index(name_or_index)
        return self.camoufox_base + i * self.port_step

    # -- lifecycle -----------------------------------------------------------------
    def build_argv(self):
        """The full argv (binary first) used to start the coordinator."""
        if self.args_override is not None:
            return [COORDINATOR_BIN] + list(self.args_override)
        common = []
        if self.start_stagger is not None:
            common += ["--start-stagger", str(self.start_stagger)]
        for name in self.attach_names:
            label = self.attach_labels.get(name)
            url = f"http://{HOST}:{self.attached[name]['port']}" if name in self.attached \
                else f"http://{HOST}:0"
            common += ["--upstream", f"{label}={url}" if label else url]
        if self.attach and not self.profiles:
            return [
                COORDINATOR_BIN,
                "--coordinator-host", HOST,
                "--coordinator-port", str(self.port),
                "--log-dir", self.log_dir,
                "--health-interval", str(self.health_interval),
                "--ready-timeout", str(self.ready_timeout),
            ] + common + self.extra_args
        return [
            COORDINATOR_BIN,
            "--profiles", self.profiles_dir_override or self.profiles_dir,
            "--launcher", self.launcher,
            "--python", self.python,
            "--coordinator-host", HOST,
            "--coordinator-port", str(self.port),
            "--base-api-port", str(self.api_base),
            "--base-stream-port", str(self.stream_base),
            "--base-camoufox-port", str(self.camoufox_base),
            "--port-step", str(self.port_step),
            "--log-dir", self.log_dir,
            "--health-interval", str(self.health_interval),
            "--ready-timeout", str(self.ready_timeout),
        ] + common + self.extra_args

    def _child_env(self):
        return clean_env({"FAKE_CHILD_STATE_DIR": self.state_dir})

    # -- attach mode -----------------------------------------------------------------
    def start_attached(self, timeout=10.0):
        """Start the fake children of `attach` (free ports) and wait for their /health."""
        env = self._child_env()
        for name in self.attach_names:
            api = free_port()
            stream, debug = free_port(), free_port()
            log = open(os.path.join(self.attached_dir, name + ".log"), "wb")
            self._out_files.append(log)
            argv = launcher_argv(api, stream, debug, self.profile_paths[name],
                                 self.launcher, self.python)
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, env=env,
                                    cwd=os.path.dirname(self.launcher), start_new_session=True)
            self.attached[name] = {"proc": proc, "port": api, "label": self.attach_labels.get(name),
                                   "url": f"http://{HOST}:{api}"}
        for name, info in self.attached.items():
            if any((self.attach.get(name) or {}).get(k) for k in _NOT_READY_KEYS):
                continue  # not meant to become healthy
            if not wait_until(lambda port=info["port"]: healthy(port), timeout):
                raise AssertionError(f"attached fake child {name} not healthy after {timeout}s")

    def upstream_name(self, name):
        """The name the coordinator should give attached child `name`: its label, else HOST:PORT."""
        info = self.attached[name]
        return info["label"] or f"{HOST}:{info['port']}"

    def attached_pid(self, name):
        return self.attached[name]["proc"].pid

    def stop_attached(self, grace=3.0):
        """End the attached fake children (SIGTERM, then SIGKILL) and their recorded
        grandchildren, each by PID."""
        for name, info in self.attached.items():
            proc = info["proc"]
            if proc.poll() is None:
                try:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
                except OSError:
                    pass
            for rec in self.start_records(name):
                gpid = rec.get("grandchild_pid")
                if rec.get("pid") == proc.pid and gpid and pid_alive(gpid) and self._is_ours(gpid):
                    try:
                        os.kill(gpid, signal.SIGKILL)
                    except OSError:
                        pass

    def start(self):
        """Start the binary (stdout/stderr to files, own session); returns self."""
        if self.attach and not self.attached:
            self.start_attached()
        env = self._child_env()
        env.update(self.env_extra)
        self.argv = self.build_argv()
        out = open(self.stdout_path, "wb")
        err = open(self.stderr_path, "wb")
        self._out_files += [out, err]
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                     env=env, cwd=self.dir, start_new_session=True)
        return self

    def __enter__(self):
        try:
            self.start()
            if self.wait_ready_count:
                self.wait_ready(self.wait_ready_count, self.ready_wait)
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def running(self):
        """True while the coordinator process has not exited."""
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, n, timeout=20.0):
        """Wait until GET /ready is 200 with >= n ready children; returns the body.

        Raises AssertionError (with the coordinator's output) on timeout or if the
        coordinator exits.
        """
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if not self.running():
                raise AssertionError(
                    f"coordinator exited (rc={self.proc.returncode}) before {n} children were "
                    f"ready\n{self.output_tail()}")
            try:
                r = self.get("/ready", timeout=2)
                last = r
                if r.status == 200:
                    body = r.json()
                    if len(ready_names(body)) >= n:
                        return body
            except (OSError, http.client.HTTPException, ValueError):
                pass
            time.sleep(0.05)
        raise AssertionError(f"not {n} ready children after {timeout}s; last /ready: {last!r}\n"
                             f"{self.output_tail()}")

    def wait_exit(self, timeout):
        """Wait (bounded) for the coordinator to exit; returns its return code or None."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def signal(self, sig):
        """Send `sig` to the coordinator process (only it, not its group)."""
        if self.running():
            self.proc.send_signal(sig)

    def stop(self, timeout=None):
        """SIGTERM, wait up to `timeout` (default stop_timeout), then SIGKILL; returns rc."""
        if self.proc is None:
            return None
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
            rc = self.wait_exit(self.stop_timeout if timeout is None else timeout)
            if rc is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def __exit__(self, exc_type, exc, tb):
        problem = None
        try:
            if self.proc is not None and self.running():
                self.stop()
            if self.proc is not None:
                self.proc.wait(timeout=10)
            self.stop_attached()
            wait_until(lambda: not self.leftover_pids(), self.leak_grace)
            for pid in self.leftover_pids():
                desc = self.describe_pid(pid)
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    continue
                self.leaked.append((pid, desc))
            if self.leaked:
                problem = (f"processes still alive {self.leak_grace}s after the coordinator "
                           f"exited (killed by the harness): "
                           + ", ".join(f"{p} [{d}]" for p, d in self.leaked))
        finally:
            for f in self._out_files:
                try:
                    f.close()
                except OSError:
                    pass
            failed = exc_type is not None or (problem and self.check_leaks)
            if os.environ.get("COORDINATOR_TEST_KEEP") == "1" or failed:
                print(f"[harness] kept {self.dir}", file=sys.stderr)
            else:
                shutil.rmtree(self.dir, ignore_errors=True)
        if problem and self.check_leaks and exc_type is None:
            raise AssertionError(problem)
        return False

    # -- process bookkeeping ---------------------------------------------------------
    def _is_ours(self, pid):
        cmd = pid_cmdline(pid)
        return self.launcher in cmd or GRANDCHILD_MARKER in cmd

    def describe_pid(self, pid):
        """'child NAME', 'grandchild of NAME', or the command line of `pid`."""
        for rec in self.start_records():
            if rec.get("pid") == pid:
                return f"child {rec.get('name')}"
            if rec.get("grandchild_pid") == pid:
                return f"grandchild of {rec.get('name')}"
        return pid_cmdline(pid)[:120] or "?"

    def tagged_pids(self):
        """Live processes whose environment holds this run's FAKE_CHILD_STATE_DIR.

        The value is a unique temp path given only to this coordinator, so these are
        exactly the coordinator and everything it started (children, grandchildren,
        helper processes), whatever their parent now is.  Zombies are excluded.
        """
        needle = b"\0FAKE_CHILD_STATE_DIR=" + os.fsencode(self.state_dir) + b"\0"
        out = []
        me = os.getpid()
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == me:
                continue
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    env = b"\0" + f.read()
            except OSError:
                continue
            if needle in env and pid_alive(int(entry)):
                out.append(int(entry))
        return out

    def leftover_pids(self):
        """Recorded child/grandchild pids still alive, plus any live tagged process
        (see :meth:`tagged_pids`), excluding the coordinator while it runs."""
        pids = {p for p in self.recorded_pids() if pid_alive(p) and self._is_ours(p)}
        pids.update(self.tagged_pids())
        if self.running():
            pids.discard(self.proc.pid)
        return sorted(pids)

    def recorded_pids(self):
        """Every child and grandchild pid recorded in the state dir's start files."""
        return self.child_pids() + self.grandchild_pids()

    def child_pids(self, name=None):
        """Child pids from the start files (all, or those of profile `name`)."""
        return [r["pid"] for r in self.start_records(name) if r.get("pid")]

    def grandchild_pids(self, name=None):
        """Grandchild ("browser") pids from the start files."""
        return [r["grandchild_pid"] for r in self.start_records(name) if r.get("grandchild_pid")]

    @staticmethod
    def alive(pids):
        """The subset of `pids` that is alive (zombies are dead)."""
        return [p for p in pids if pid_alive(p)]

    def wait_pids_gone(self, pids, timeout):
        """Wait up to `timeout` for every pid to die; returns those still alive."""
        pids = list(pids)
        wait_until(lambda: not self.alive(pids), timeout)
        return self.alive(pids)

    # -- state dir -------------------------------------------------------------------
    def start_records(self, name=None):
        """Parsed ``NAME.start.PID.json`` files (all, or of profile `name`), oldest first."""
        out = []
        try:
            files = os.listdir(self.state_dir)
        except OSError:
            return out
        for fn in files:
            if not fn.endswith(".json") or ".start." not in fn:
                continue
            stem = fn.split(".start.", 1)[0]
            if name is not None and stem != name:
                continue
            try:
                with open(os.path.join(self.state_dir, fn)) as f:
                    rec = json.load(f)
            except (OSError, ValueError):
                continue
            rec.setdefault("name", stem)
            out.append(rec)
        out.sort(key=lambda r: r.get("t", 0))
        return out

    def wait_start_records(self, count, timeout=10.0):
        """Wait until at least `count` start files exist; returns them."""
        wait_until(lambda: len(self.start_records()) >= count, timeout)
        return self.start_records()

    def events(self, name, event=None):
        """Events of profile `name` (list of dicts), optionally only of type `event`."""
        path = os.path.join(self.state_dir, f"{name}.events.jsonl")
        out = []
        try:
            with open(path) as f:
                for line in f:
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        ev = json.loads(line)
                    except ValueError:
                        continue
                    if event is None or ev.get("event") == event:
                        out.append(ev)
        except FileNotFoundError:
            pass
        return out

    def all_events(self, event=None):
        """name -> events, for every profile name."""
        return {n: self.events(n, event) for n in self.all_names}

    def requests(self, name, path=None, method=None):
        """'request' events of profile `name`, filtered by path/method if given."""
        return [e for e in self.events(name, "request")
                if (path is None or e.get("path") == path)
                and (method is None or e.get("method") == method)]

    def chat_requests(self, name):
        """'request' events for POST /v1/chat/completions seen by child `name`."""
        return self.requests(name, "/v1/chat/completions", "POST")

    def wait_event(self, pred, timeout=10.0, name=None):
        """Wait for an event satisfying `pred(event)` (in child `name` or any); returns it."""
        names = [name] if name else self.all_names

        def find():
            for n in names:
                for ev in self.events(n):
                    if pred(ev):
                        ev = dict(ev)
                        ev.setdefault("name", n)
                        return ev
            return None
        return wait_until(find, timeout)

    # -- logs ------------------------------------------------------------------------
    def stdout(self):
        return _read_text(self.stdout_path)

    def stderr(self):
        return _read_text(self.stderr_path)

    def output(self):
        """Coordinator stdout + stderr."""
        return self.stdout() + self.stderr()

    def output_tail(self, n=40):
        lines = self.output().splitlines()
        return "--- coordinator output (tail) ---\n" + "\n".join(lines[-n:])

    def child_log_path(self, name):
        return os.path.join(self.log_dir, f"{name}.log")

    def child_log(self, name):
        """The coordinator's per-child log `{log_dir}/{name}.log` ('' if missing)."""
        return _read_text(self.child_log_path(name))

    def all_log_files(self):
        """Every file the coordinator may have logged to: stdout, stderr, log dir files."""
        files = [self.stdout_path, self.stderr_path]
        for root, _, fns in os.walk(self.log_dir):
            files.extend(os.path.join(root, fn) for fn in fns)
        return files

    # -- HTTP through the coordinator -----------------------------------------------
    def request(self, method, path, body=None, headers=None, timeout=10.0):
        return http_request(self.port, method, path, body=body, headers=headers, timeout=timeout)

    def get(self, path, **kw):
        return get(self.port, path, **kw)

    def post_json(self, path, obj, **kw):
        return post_json(self.port, path, obj, **kw)

    def chat(self, content="hello", stream=False, headers=None, timeout=10.0, model="fake-model"):
        """POST /v1/chat/completions with a minimal body (:func:`chat_body`); returns the
        full Response."""
        return self.post_json("/v1/chat/completions", chat_body(content, stream, model),
                              headers=headers, timeout=timeout)

    def ready(self):
        """GET /ready -> (status, parsed body or None)."""
        r = self.get("/ready", timeout=5)
        try:
            return r.status, r.json()
        except ValueError:
            return r.status, None

    def raw(self, timeout=10.0):
        """A :class:`RawConnection` to the coordinator."""
        return RawConnection(self.port, timeout=timeout)

    # -- /ready's children array -----------------------------------------------------
    def children(self):
        """GET /ready's ``children`` array (list of dicts; [] if absent or unreadable)."""
        try:
            _, body = self.ready()
        except (OSError, http.client.HTTPException):
            return []
        items = (body or {}).get("children") if isinstance(body, dict) else None
        return [c for c in (items or []) if isinstance(c, dict)]

    def child(self, name):
        """The /ready ``children`` entry named `name`, or None."""
        for entry in self.children():
            if entry.get("name") == name:
                return entry
        return None

    def child_states(self):
        """name -> state, from /ready's ``children``."""
        return {e.get("name"): e.get("state") for e in self.children()}

    def wait_child(self, name, pred, timeout=10.0, interval=0.05):
        """Wait until the /ready entry of `name` satisfies `pred(entry)`; returns the entry
        (or the last one seen, possibly None, on timeout)."""
        last = [None]

        def check():
            entry = self.child(name)
            last[0] = entry
            return entry if entry is not None and pred(entry) else None
        got = wait_until(check, timeout, interval)
        return got if got else last[0]

    def wait_state(self, name, state, timeout=10.0, interval=0.05):
        """:meth:`wait_child` until the entry of `name` is in `state` (e.g. "ready")."""
        return self.wait_child(name, lambda e: e.get("state") == state, timeout, interval)


def _read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def served_by(response):
    """Which fake child answered: the X-Fake-Child header, else from the body."""
    name = response.headers.get("x-fake-child")
    if name:
        return name
    try:
        body = response.json()
        content = body["choices"][0]["message"]["content"]
        if content.startswith("Hello from "):
            return content[len("Hello from "):]
    except (ValueError, KeyError, IndexError, TypeError):
        pass
    return None


# ---------------------------------------------------------------------------
# test scaffolding

class Background:
    """Run `fn(i)` in a (daemon) thread; `result` is its return value or the exception it
    raised, `t_end` the monotonic time it finished."""

    def __init__(self, fn, i=0):
        self.result = None
        self.t_start = time.monotonic()
        self.t_end = None
        self.thread = threading.Thread(target=self._run, args=(fn, i), daemon=True)
        self.thread.start()

    def _run(self, fn, i):
        try:
            self.result = fn(i)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.result = e
        self.t_end = time.monotonic()

    def join(self, timeout):
        """Wait up to `timeout` s; True if `fn` has returned."""
        self.thread.join(timeout)
        return not self.thread.is_alive()

    @property
    def elapsed(self):
        return None if self.t_end is None else self.t_end - self.t_start

    @property
    def status(self):
        """The HTTP status of `result` (None while running, or for an exception)."""
        return getattr(self.result, "status", None)


class SharedCoordinator(unittest.TestCase):
    """One coordinator (``self.c``) for every test of the class, started once in setUpClass
    over `PROFILES` with `EXTRA_ARGS`, ended (with the leak check) in tearDownClass."""

    PROFILES = {"alpha": {}, "beta": {}}
    EXTRA_ARGS = ()

    @classmethod
    def setUpClass(cls):
        cls.c = Coordinator(cls.PROFILES, extra_args=list(cls.EXTRA_ARGS))
        cls.c.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.c.__exit__(None, None, None)

    def assert_alive(self):
        """The coordinator still runs and answers GET /live."""
        c = self.c
        self.assertTrue(c.running(), f"coordinator exited (rc={c.proc.returncode})\n{c.output_tail()}")
        r = c.get("/live", timeout=5)
        self.assertEqual(r.status, 200, r)
