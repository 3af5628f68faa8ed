#!/usr/bin/env python3
"""Chaos soak of the coordinator over fake children (Python 3 standard library only).

4 fake children, 16 client threads sending a mix of streamed and non-streamed chat
requests, while a chaos loop crashes (SIGKILL), hangs (SIGSTOP, SIGCONT a few seconds
later), slows (profile ``_fake.chat_delay``, effective at the next start) and breaks
(profile ``_fake.chat_status`` 500/503 plus a restart) children.  Every request ends in
one of: ok (2xx, complete), error (a non-2xx answer, or a stream ending with the
error event such as ``child_stream_aborted``), lost (no answer within the bound, a connection
error, a stream cut without the error event and without ``[DONE]``) or corrupt (a 2xx
whose body is incomplete or not what the child sent).

Pass: nothing lost or corrupt; the coordinator's RSS and open fds, measured quiescent after
the run (load stopped, children healed and ready), within 5% (fds: +2) of their quiescent
value after warm-up; the coordinator still alive at the end, exits 0 on SIGTERM, and leaves
no child or grandchild behind (the harness's leak check).

Usage: soak.py [--quick] [--duration S] [--clients N] [--children N] [--seed N] [--real-like]
(default 300 s; --quick 30 s).  Exit code 0 = pass, 1 = fail.

--real-like: children that behave like the real AIstudioProxyAPI child (escaping browser trees,
slow starts and stops, one request at a time, quota errors, a logged-out profile, cookie
refreshes) and the chaos that fits them; 0 lost requests and 0 orphan processes (after every
launcher kill, after the coordinator's SIGTERM, and after a kill -9 of the coordinator) are
required.  See real_like.py.
"""

import argparse
import collections
import http.client
import json
import os
import random
import re
import shutil
import signal
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from harness import (  # noqa: E402
    COORDINATOR_BIN, HOST, Coordinator, binary_available, pid_alive, pid_cmdline, ready_names,
    wait_until)
import real_like  # noqa: E402

STREAM_CHUNKS = 10
BASE_FAKE = {"stream_chunks": STREAM_CHUNKS, "stream_interval": 0.02, "chat_delay": 0.05}
COORDINATOR_ARGS = [
    "--unhealthy-restart-after", "3", "--stall-timeout", "5", "--max-restarts", "1000",
    "--health-timeout", "1", "--child-stop-timeout", "3", "--connect-timeout", "2",
    "--queue-timeout", "20", "--request-timeout", "30",
]
# The error answers the chaos may cause: each names a moment when no child could serve the
# request (none serving, every one failed it, the queue wait ran out, the child serving it died
# or stopped mid-answer), or is an erroring child's own 500, relayed until --eject-after of them.
NO_CHILD_COULD_SERVE = {
    "503 no_healthy_children", "502 all_children_failed", "503 queue_timeout",
    "504 upstream_stalled", "504 upstream_timeout", "stream aborted (error event)",
    "500 500",  # the fake child's own error body: {"error": {..., "code": 500}}
    "500 child_error",  # the same 500 ({"detail": ...}) in the coordinator's one error shape
}
REQUEST_BOUND = 60.0  # seconds a request may take before it counts as lost
SERVING = ("ready", "busy")


def log(msg):
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------
# process measurements

def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def fd_kinds(pid):
    """Counter of what the coordinator's fds point at (socket, pipe, file path...)."""
    kinds = collections.Counter()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        kinds[target.split(":")[0] if ":[" in target else target] += 1
    return kinds


# ---------------------------------------------------------------------------
# load

class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = collections.Counter()       # sent / ok / error / lost / corrupt
        self.by_kind = collections.Counter()      # (kind, outcome)
        self.statuses = collections.Counter()     # error statuses / reasons
        self.lost = []                            # (kind, reason) samples
        self.lost_groups = collections.Counter()  # reason without numbers -> count
        self.latencies = []

    def add(self, kind, outcome, detail, took):
        with self.lock:
            self.counts[outcome] += 1
            self.by_kind[(kind, outcome)] += 1
            if outcome == "error":
                self.statuses[detail] += 1
            if outcome in ("lost", "corrupt"):
                self.lost_groups[f"{kind} {outcome}: " + re.sub(r"\d+(\.\d+)?s\b", "Ns", detail)] += 1
                if len(self.lost) < 50:
                    self.lost.append((kind, outcome, detail))
            if outcome == "ok":
                self.latencies.append(took)


def error_detail(status, body):
    """'503 queue_timeout': the status and the OpenAI-style error code, when there is one."""
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return f"{status}"
    return f"{status} {code}"


def classify_stream(status, body):
    """(outcome, detail) of a streamed request's full answer."""
    if status < 200 or status >= 300:
        return "error", error_detail(status, body)
    text = body.decode("utf-8", "replace")
    data = [ln[len("data: "):] for ln in text.split("\n") if ln.startswith("data: ")]
    if any(d.startswith('{"error":') for d in data):  # child_stream_aborted, queue_timeout ...
        if data and data[-1] == "[DONE]":
            return "error", "stream aborted (error event)"
        return "lost", "error event without [DONE]"
    if not data or data[-1] != "[DONE]":
        return "lost", f"stream cut without error event or [DONE] ({len(body)} bytes)"
    contents = []
    for d in data[:-1]:
        try:
            delta = json.loads(d)["choices"][0]["delta"]
        except (ValueError, KeyError, IndexError, TypeError):
            return "corrupt", f"unparsable event {d[:80]!r}"
        if delta.get("content"):
            contents.append(delta["content"])
    if contents != [f"chunk{n} " for n in range(STREAM_CHUNKS)]:
        return "corrupt", f"stream content {contents!r}"
    return "ok", ""


def classify_plain(status, body):
    if status < 200 or status >= 300:
        return "error", error_detail(status, body)
    try:
        obj = json.loads(body)
        content = obj["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return "corrupt", f"2xx body {body[:120]!r}"
    if obj.get("object") != "chat.completion" or not content.startswith("Hello from "):
        return "corrupt", f"2xx body {body[:120]!r}"
    return "ok", ""


class Client(threading.Thread):
    def __init__(self, index, port, stats, run, stop, seed, real=False):
        super().__init__(name=f"client-{index}", daemon=True)
        self.real = real         # --real-like: classify as real_like does
        self.port = port
        self.stats = stats
        self.run_load = run      # cleared: pause between requests
        self.stop = stop         # set: finish
        self.rng = random.Random(seed)
        self.conn = None
        self.uses = 0
        self.last = None  # (status, kind, outcome, Connection header, time) of the last answer
        self.busy = False
        self.busy_since = None

    def connection(self):
        if self.conn is None:
            self.conn = http.client.HTTPConnection(HOST, self.port, timeout=REQUEST_BOUND)
            self.uses = 0
        return self.conn

    def drop(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def one(self):
        stream = self.rng.random() < 0.5
        kind = "stream" if stream else "plain"
        body = {"model": "fake-model", "messages": [{"role": "user", "content": "soak"}]}
        if stream:
            body["stream"] = True
        payload = json.dumps(body).encode()
        t0 = time.monotonic()
        self.stats.add(kind, "sent", "", 0)
        try:
            conn = self.connection()
            conn.request("POST", "/v1/chat/completions", body=payload,
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            try:
                data = r.read()
            except http.client.IncompleteRead as e:
                data = e.partial
                self.drop()
            status = r.status
            self.uses += 1
            conn_hdr = r.getheader("Connection")
            if r.will_close:
                self.drop()
        except Exception as e:  # noqa: BLE001 - OSError, HTTPException, parse errors: all lost
            reused = self.conn is not None and self.uses > 0
            self.drop()
            took = time.monotonic() - t0
            prev = ""
            if reused and self.last is not None:
                prev = (f"; on a reused keep-alive connection whose previous answer was "
                        f"{self.last[0]} {self.last[1]} ({self.last[2]}), Connection: "
                        f"{self.last[3]!r}, {time.monotonic() - self.last[4]:.2f}s earlier")
            self.stats.add(kind, "lost", f"{type(e).__name__}: {e} after {took:.1f}s{prev}", took)
            return
        took = time.monotonic() - t0
        if self.real:
            retry_after = r.getheader("Retry-After")
            if stream:
                outcome, detail = real_like.classify_stream_real(
                    status, data, retry_after, [f"chunk{n} " for n in range(STREAM_CHUNKS)])
            else:
                outcome, detail = real_like.classify_plain_real(status, data, retry_after)
        else:
            outcome, detail = (classify_stream if stream else classify_plain)(status, data)
        if outcome != "ok":
            # After an error the coordinator may close the connection (an aborted
            # stream ends with the error event, [DONE], then a close, as the
            # streaming spec asks): like any careful client, start a fresh one.
            self.drop()
        if outcome == "ok" and took > REQUEST_BOUND:
            outcome, detail = "lost", f"answered after {took:.1f}s"
        self.last = (status, kind, outcome + (": " + detail if detail else ""), conn_hdr,
                     time.monotonic())
        self.stats.add(kind, outcome, detail, took)
        if self.real and outcome == "error":
            # like a real client, back off after an error (Retry-After, at most 1 s): a fleet
            # with no child serving answers at once, and 16 clients spinning on it would turn
            # the run's numbers into thousands of 503s
            try:
                pause = float(r.getheader("Retry-After") or 0.5)
            except ValueError:
                pause = 0.5
            self.stop.wait(min(max(pause, 0.1), 1.0))

    def run(self):
        while not self.stop.is_set():
            if not self.run_load.is_set():
                self.drop()  # paused for a measurement: hold no connection
                self.run_load.wait(0.2)
                continue
            self.busy, self.busy_since = True, time.monotonic()
            try:
                self.one()
            finally:
                self.busy = False
        self.drop()


# ---------------------------------------------------------------------------
# chaos

class Chaos(threading.Thread):
    """Random faults, at most one every `interval` seconds, never leaving fewer than
    one serving child after a disruptive action."""

    def __init__(self, c, rng, interval, stop):
        super().__init__(name="chaos", daemon=True)
        self.c = c
        self.rng = rng
        self.interval = interval
        self.stop = stop
        self.actions = collections.Counter()
        self.skipped = 0
        self.fake = {name: dict(BASE_FAKE) for name in c.names}
        self.stopped = {}          # pid -> SIGCONT due (monotonic)
        self.heal_due = {}         # name -> time its chat_status is reset (and it restarted)
        self.lock = threading.Lock()
        self.errors = []

    def current_pid(self, name):
        """The live pid of child `name`, from the newest start file of the state dir."""
        recs = self.c.start_records(name)
        if not recs:
            return None
        pid = recs[-1].get("pid")
        if pid and pid_alive(pid) and self.c.launcher in pid_cmdline(pid):
            return pid
        return None

    def serving(self):
        return [e.get("name") for e in self.c.children() if e.get("state") in SERVING]

    def signal(self, pid, sig):
        try:
            os.kill(pid, sig)
            return True
        except ProcessLookupError:
            return False

    def resume_due(self, force=False):
        now = time.monotonic()
        with self.lock:
            for pid, due in list(self.stopped.items()):
                if force or now >= due:
                    if pid_alive(pid) and self.c.launcher in pid_cmdline(pid):
                        self.signal(pid, signal.SIGCONT)
                    del self.stopped[pid]

    def write_profile(self, name):
        self.c.rewrite_profile(name, dict(self.fake[name]))

    def act(self):
        serving = self.serving()
        action = self.rng.choices(["crash", "hang", "slow", "error", "heal"],
                                  weights=[30, 20, 15, 15, 20])[0]
        disruptive = action in ("crash", "hang", "error", "heal")
        if disruptive and len(serving) < 2:
            self.skipped += 1
            return
        name = self.rng.choice(serving if serving else self.c.names)
        pid = self.current_pid(name)
        if action == "crash":
            if pid and self.signal(pid, signal.SIGKILL):
                self.actions["crash (SIGKILL)"] += 1
        elif action == "hang":
            if pid:
                with self.lock:
                    if self.signal(pid, signal.SIGSTOP):
                        self.stopped[pid] = time.monotonic() + self.rng.uniform(2, 5)
                        self.actions["hang (SIGSTOP, SIGCONT 2-5 s later)"] += 1
        elif action == "slow":
            self.fake[name]["chat_delay"] = self.rng.choice([0.5, 1.0, 2.0, 3.0])
            self.write_profile(name)
            self.actions["slow (chat_delay at next start)"] += 1
        elif action == "error":
            # 503 is failed over; 500 is relayed until --eject-after of them in a row take
            # the child out of rotation (an instantly failing child is always free).
            self.fake[name]["chat_status"] = self.rng.choice([500, 503])
            self.write_profile(name)
            if pid and self.signal(pid, signal.SIGTERM):
                self.actions[f"error (chat_status {self.fake[name]['chat_status']} + restart)"] += 1
            # An instantly failing child draws most of the load (it is always free): heal
            # it a few seconds later so the soak keeps exercising the other faults.
            self.heal_due[name] = time.monotonic() + self.rng.uniform(4, 8)
        elif action == "heal":
            self.fake[name] = dict(BASE_FAKE)
            self.write_profile(name)
            if pid and self.signal(pid, signal.SIGTERM):
                self.actions["heal (profile reset + restart)"] += 1

    def run(self):
        next_at = time.monotonic() + self.rng.uniform(*self.interval)
        while not self.stop.is_set():
            self.resume_due()
            for name, due in list(self.heal_due.items()):
                if time.monotonic() >= due:
                    del self.heal_due[name]
                    if self.fake[name].get("chat_status"):
                        self.fake[name].pop("chat_status")
                        self.write_profile(name)
                        pid = self.current_pid(name)
                        if pid and self.signal(pid, signal.SIGTERM):
                            self.actions["heal of an error child (+ restart)"] += 1
            if time.monotonic() >= next_at:
                try:
                    self.act()
                except Exception as e:  # noqa: BLE001 - the soak goes on; reported
                    self.errors.append(repr(e))
                next_at = time.monotonic() + self.rng.uniform(*self.interval)
            self.stop.wait(0.1)
        self.resume_due(force=True)

    def heal_all(self):
        """Resume stopped children, reset every profile, restart children that run with a
        modified profile (so the fleet ends as it began)."""
        self.resume_due(force=True)
        for name in self.c.names:
            if self.fake[name] != BASE_FAKE:
                self.fake[name] = dict(BASE_FAKE)
                self.write_profile(name)
                pid = self.current_pid(name)
                if pid:
                    self.signal(pid, signal.SIGTERM)
            else:
                self.write_profile(name)


# ---------------------------------------------------------------------------

def quiesce(c, clients, run, timeout=REQUEST_BOUND + 10):
    """Pause the load and wait until no request is in flight (client side and in /ready)."""
    run.clear()
    wait_until(lambda: not any(cl.busy for cl in clients), timeout, 0.05)
    wait_until(lambda: all(e.get("in_flight", 0) == 0 for e in c.children()), 5, 0.05)
    time.sleep(1.0)


def prime_pool(c, n):
    """2n sequential requests on fresh connections: with every child idle, dispatch rotates,
    so each child's upstream keep-alive pool holds the same number of connections before
    both measurements."""
    for i in range(2 * n):
        try:
            c.chat(f"prime {i}", timeout=30)
        except (OSError, http.client.HTTPException):
            pass
    time.sleep(0.5)


def measure(c):
    pid = c.proc.pid
    return {"rss_kb": rss_kb(pid), "fds": fd_count(pid), "fd_kinds": fd_kinds(pid)}


def all_ready(c, n):
    try:
        status, body = c.ready()
    except (OSError, http.client.HTTPException):
        return False
    return len(ready_names(body or {})) >= n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="30 s instead of 5 minutes")
    ap.add_argument("--duration", type=float, help="seconds of load (default 300, --quick 30)")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--children", type=int, default=None, help="default 4 (--real-like: 5)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--eject-after", type=int, default=5,
                    help="the coordinator's --eject-after (0: no outlier ejection, for comparison)")
    ap.add_argument("--real-like", action="store_true",
                    help="children like the real AIstudioProxyAPI child, and the chaos that fits "
                         "them (see real_like.py); default 5 children")
    ap.add_argument("--quota-done-first", choices=["default", "yes", "no"], default="default",
                    help="--real-like: the fake's `quota_done_first` (a quota-failed stream sends "
                         "its usage chunk and [DONE] before the error event); default: the fake's "
                         "own default")
    args = ap.parse_args()
    if args.real_like:
        return main_real(args)
    if args.children is None:
        args.children = 4
    duration = args.duration or (30.0 if args.quick else 300.0)
    warmup = min(30.0, max(6.0, duration * 0.2))
    interval = (1.5, 3.0) if duration <= 60 else (3.0, 6.0)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)

    if not binary_available():
        print(f"coordinator binary not found at {COORDINATOR_BIN} (build it, or set COORDINATOR_BIN)",
              file=sys.stderr)
        return 2
    log(f"binary {COORDINATOR_BIN}; {args.children} children, {args.clients} clients, "
        f"{duration:.0f} s (warm-up {warmup:.0f} s), chaos every {interval[0]}-{interval[1]} s, "
        f"seed {seed}")

    profiles = {f"child{i}": dict(BASE_FAKE) for i in range(args.children)}
    stats = Stats()
    run, stop_load, stop_chaos = threading.Event(), threading.Event(), threading.Event()
    failures = []
    result = {}
    c = Coordinator(profiles, extra_args=COORDINATOR_ARGS + ["--eject-after", str(args.eject_after)],
                    health_interval=0.5, start_stagger=0,
                    stop_timeout=30.0, leak_grace=5.0)
    chaos = None
    clients = []
    try:
        with c:
            pid = c.proc.pid
            clients = [Client(i, c.port, stats, run, stop_load, rng.randrange(1 << 30))
                       for i in range(args.clients)]
            chaos = Chaos(c, random.Random(rng.randrange(1 << 30)), interval, stop_chaos)
            for cl in clients:
                cl.start()
            run.set()
            chaos.start()
            t_start = time.monotonic()
            samples = []

            def sample_until(t_end):
                while time.monotonic() < t_end:
                    if not c.running():
                        failures.append(f"coordinator exited (rc={c.proc.returncode}) during the run")
                        return False
                    try:
                        samples.append((round(time.monotonic() - t_start, 1), rss_kb(pid), fd_count(pid)))
                    except OSError:
                        pass
                    time.sleep(min(5.0, max(0.05, t_end - time.monotonic())))
                return True

            # warm-up (load and chaos), then a quiescent baseline
            if sample_until(t_start + warmup):
                stop_chaos.set()
                chaos.join(10)
                chaos.heal_all()
                quiesce(c, clients, run)
                if not wait_until(lambda: all_ready(c, args.children), 100, 0.2):
                    log(f"warning: not every child ready for the baseline: {c.child_states()}")
                time.sleep(1.0)
                prime_pool(c, args.children)
                result["before"] = measure(c)
                log(f"baseline after warm-up: RSS {result['before']['rss_kb']} kB, "
                    f"fds {result['before']['fds']} {dict(result['before']['fd_kinds'])}")
                # the measured run
                stop_chaos.clear()
                chaos_actions_warmup = collections.Counter(chaos.actions)
                chaos2 = Chaos(c, random.Random(rng.randrange(1 << 30)), interval, stop_chaos)
                chaos2.actions = chaos_actions_warmup
                chaos2.skipped = chaos.skipped
                chaos = chaos2
                chaos.start()
                run.set()
                sample_until(t_start + duration)
            # stop chaos, heal, drain the load
            stop_chaos.set()
            chaos.join(10)
            chaos.heal_all()
            stop_load.set()
            run.clear()
            deadline = time.monotonic() + REQUEST_BOUND + 15
            for cl in clients:
                cl.join(max(0.1, deadline - time.monotonic()))
            hung = [cl for cl in clients if cl.is_alive()]
            for cl in hung:
                stats.add("?", "lost", f"client thread still waiting at the end "
                                       f"({time.monotonic() - (cl.busy_since or 0):.0f}s)", 0)
            if c.running():
                ready_ok = wait_until(lambda: all_ready(c, args.children), 100, 0.2)
                if not ready_ok:
                    failures.append(f"not every child ready 100 s after the chaos stopped: "
                                    f"{c.child_states()}")
                wait_until(lambda: all(e.get("in_flight", 0) == 0 for e in c.children()), 10, 0.1)
                time.sleep(1.0)
                prime_pool(c, args.children)
                if "before" in result:
                    result["after"] = measure(c)
                result["child_table"] = c.children()
            else:
                failures.append(f"coordinator not running at the end (rc={c.proc.returncode})\n"
                                f"{c.output_tail()}")
            result["samples"] = samples
            result["restarts"] = {e.get("name"): e.get("restarts") for e in result.get("child_table", [])}
            result["ejections"] = {e.get("name"): e.get("ejections") for e in result.get("child_table", [])}
            per_process = collections.Counter()  # (child, pid) -> its 500 answers
            for name in c.names:
                for ev in c.events(name, "chat_error"):
                    if ev.get("status") == 500:
                        per_process[(name, ev.get("pid"))] += 1
            result["500_per_process"] = per_process
            rc = c.stop()
            if rc != 0:
                failures.append(f"coordinator exit code {rc} after SIGTERM\n{c.output_tail()}")
    except AssertionError as e:  # the harness's leak check (or a start-up failure)
        failures.append(f"harness: {e}")
    finally:
        stop_chaos.set()
        stop_load.set()
        run.set()
        if chaos is not None:
            chaos.resume_due(force=True)

    # ------------------------------------------------------------------- report
    cnt = stats.counts
    lost = cnt["lost"] + cnt["corrupt"]
    if lost:
        failures.append(f"{cnt['lost']} requests lost, {cnt['corrupt']} corrupt")
    unexpected = {k: v for k, v in stats.statuses.items() if k not in NO_CHILD_COULD_SERVE}
    if unexpected:
        failures.append(f"error answers of unexpected kinds (not one where no child could serve): "
                        f"{unexpected}")
    if cnt["sent"] == 0 or cnt["ok"] == 0:
        failures.append("no request succeeded: the soak did not exercise anything")
    if chaos is not None and chaos.errors:
        failures.append(f"chaos loop errors: {chaos.errors[:3]}")
    before, after = result.get("before"), result.get("after")
    if before and after:
        if after["rss_kb"] > before["rss_kb"] * 1.05:
            failures.append(f"RSS grew {before['rss_kb']} -> {after['rss_kb']} kB "
                            f"(+{100.0 * (after['rss_kb'] / before['rss_kb'] - 1):.1f}% > 5%)")
        if after["fds"] > before["fds"] + 2:
            failures.append(f"open fds grew {before['fds']} -> {after['fds']} (> +2): "
                            f"before {dict(before['fd_kinds'])}, after {dict(after['fd_kinds'])}")
    elif not any("coordinator" in f for f in failures):
        failures.append("RSS/fd measurements missing")

    print()
    print(f"=== soak summary ({duration:.0f} s, {args.children} children, {args.clients} clients, "
          f"seed {seed}) ===")
    rows = [("requests sent", cnt["sent"]), ("answered 2xx", cnt["ok"]),
            ("answered with an error", cnt["error"]), ("lost", cnt["lost"]),
            ("corrupt 2xx", cnt["corrupt"])]
    for kind in ("plain", "stream"):
        rows.append((f"  {kind}: sent/ok/error/lost/corrupt",
                     "/".join(str(stats.by_kind[(kind, o)])
                              for o in ("sent", "ok", "error", "lost", "corrupt"))))
    for label, value in rows:
        print(f"{label:<40} {value:>12}")
    if stats.statuses:
        print("errors by kind:".ljust(40),
              ", ".join(f"{k}: {v}" for k, v in stats.statuses.most_common()))
    if stats.latencies:
        lat = sorted(stats.latencies)
        print(f"{'2xx latency p50 / p99 / max (s)':<40} "
              f"{lat[len(lat) // 2]:.2f} / {lat[int(len(lat) * 0.99)]:.2f} / {lat[-1]:.2f}")
    if chaos is not None:
        print("chaos actions:".ljust(40), ", ".join(f"{k}: {v}" for k, v in sorted(chaos.actions.items()))
              + f"; skipped (too few serving): {chaos.skipped}")
    if result.get("restarts"):
        print("restarts per child (from /ready):".ljust(40), result["restarts"])
    if result.get("ejections"):
        print("ejections per child (from /ready):".ljust(40), result["ejections"])
    per_process = result.get("500_per_process")
    if per_process:
        print("500 answers of erroring children:".ljust(40),
              f"{sum(per_process.values())} from {len(per_process)} processes, "
              f"at most {max(per_process.values())} from one (--eject-after {args.eject_after})")
    if before:
        print(f"{'':<24}{'after warm-up':>16}{'after run':>16}")
        print(f"{'coordinator RSS (kB)':<24}{before['rss_kb']:>16}{(after or {}).get('rss_kb', '-'):>16}")
        print(f"{'coordinator open fds':<24}{before['fds']:>16}{(after or {}).get('fds', '-'):>16}")
    if result.get("samples"):
        s = result["samples"]
        print(f"RSS under load (kB): min {min(x[1] for x in s)}, max {max(x[1] for x in s)}; "
              f"fds under load: min {min(x[2] for x in s)}, max {max(x[2] for x in s)} "
              f"({len(s)} samples)")
    if stats.lost_groups:
        print("lost/corrupt requests, by reason:")
        for reason, n in stats.lost_groups.most_common():
            print(f"  {n:>6} x {reason}")
    print()
    if failures:
        print("SOAK FAILED:")
        for f in failures:
            print(f"  - {f}")
        print(f"(coordinator dir kept: {c.dir})" if os.path.isdir(c.dir) else "")
        return 1
    print("SOAK PASSED")
    return 0


# ---------------------------------------------------------------------------
# --real-like

REAL_COORDINATOR_ARGS = [
    "--unhealthy-restart-after", "3", "--stall-timeout", "5", "--max-restarts", "1000",
    "--health-timeout", "1", "--connect-timeout", "2", "--queue-timeout", "20",
    "--request-timeout", "30",
    # a real child's clean stop (drain, cookie save, stream proxy, page and browser) takes seconds
    "--child-stop-timeout", "15",
    # a spent account comes back after this (the default is an hour)
    "--quota-cooldown", "6",
]


def log_counts(text):
    """What the coordinator's log says it did, for the summary."""
    lines = text.splitlines()

    def count(*needles):
        return sum(1 for ln in lines if all(n in ln for n in needles))
    return {
        "cooling for quota": count("-> cooling: out of quota"),
        "needs_relogin": count("-> needs_relogin"),
        "cookie write-backs to the operator's file": count("refreshed cookies are copied back"),
        "operator changes left alone": count("was changed by someone else"),
        "trees outliving their launcher (SIGTERM)": count("outlived the launcher"),
        "trees needing SIGKILL": count("SIGKILL to what is left of its tree"),
        "trees it could not end": count("could not end"),
        "reload restarts": count("reload: profile", "restarting its child"),
    }


def main_real(args):
    n = args.children if args.children is not None else 5
    duration = args.duration or (30.0 if args.quick else 300.0)
    warmup = min(30.0, max(6.0, duration * 0.2))
    interval = (1.5, 3.0) if duration <= 60 else (3.0, 6.0)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    done_first = {"default": None, "yes": True, "no": False}[args.quota_done_first]
    if not binary_available():
        print(f"coordinator binary not found at {COORDINATOR_BIN} (build it, or set COORDINATOR_BIN)",
              file=sys.stderr)
        return 2
    log(f"real-like: binary {COORDINATOR_BIN}; {n} children, {args.clients} clients, "
        f"{duration:.0f} s (warm-up {warmup:.0f} s), chaos every {interval[0]}-{interval[1]} s, "
        f"seed {seed}")
    roles = real_like.real_roles(n, random.Random(rng.randrange(1 << 30)), STREAM_CHUNKS, done_first)
    for name in sorted(roles):
        r = roles[name]["initial"]
        extra = {k: r[k] for k in ("quota_after", "quota_sticky", "logged_out") if k in r}
        log(f"  {name}: startup {r['startup_delay']} s, stop {r['stop_delay']} s"
            + (f", {extra}" if extra else ""))
    # keep the coordinators' folders (logs, state) until the verdict: removed if the soak passes
    keep_env = os.environ.get("COORDINATOR_TEST_KEEP")
    os.environ["COORDINATOR_TEST_KEEP"] = "1"
    profiles = {name: dict(r["initial"]) for name, r in roles.items()}
    starts_serving = sum(1 for r in roles.values() if not r["initial"].get("logged_out"))
    extra_args = REAL_COORDINATOR_ARGS + ["--eject-after", str(args.eject_after)]

    stats = Stats()
    run, stop_load = threading.Event(), threading.Event()
    failures = []
    result = {}
    c = Coordinator(profiles, extra_args=extra_args, health_interval=0.5, start_stagger=0,
                    wait_ready=starts_serving, ready_wait=60, ready_timeout=30,
                    stop_timeout=60.0, leak_grace=5.0)
    chaos = None
    clients = []
    t_begin = time.monotonic()
    try:
        with c:
            pid = c.proc.pid
            clients = [Client(i, c.port, stats, run, stop_load, rng.randrange(1 << 30), real=True)
                       for i in range(args.clients)]
            chaos = real_like.RealChaos(c, random.Random(rng.randrange(1 << 30)), interval, roles)
            for cl in clients:
                cl.start()
            run.set()
            chaos.start()
            t_start = time.monotonic()
            samples = []

            def sample_until(t_end):
                while time.monotonic() < t_end:
                    if not c.running():
                        failures.append(f"coordinator exited (rc={c.proc.returncode}) during the run")
                        return False
                    try:
                        samples.append((round(time.monotonic() - t_start, 1), rss_kb(pid), fd_count(pid)))
                    except OSError:
                        pass
                    time.sleep(min(5.0, max(0.05, t_end - time.monotonic())))
                return True

            def healed_and_measured(label):
                chaos.pause()
                chaos.heal_all()
                quiesce(c, clients, run)
                if not wait_until(lambda: all_ready(c, n), 100, 0.2):
                    failures.append(f"not every child ready 100 s after the heal ({label}): "
                                    f"{c.child_states()}")
                wait_until(lambda: all(e.get("in_flight", 0) == 0 for e in c.children()), 10, 0.1)
                time.sleep(1.0)
                prime_pool(c, n)
                return measure(c)

            if sample_until(t_start + warmup):
                result["before"] = healed_and_measured("after warm-up")
                log(f"baseline after warm-up: RSS {result['before']['rss_kb']} kB, "
                    f"fds {result['before']['fds']} {dict(result['before']['fd_kinds'])}")
                chaos.rearm()
                chaos.resume()
                run.set()
                sample_until(max(t_start + duration, time.monotonic() + 5))
            chaos.pause()
            stop_load.set()
            run.clear()
            deadline = time.monotonic() + REQUEST_BOUND + 15
            for cl in clients:
                cl.join(max(0.1, deadline - time.monotonic()))
            for cl in [cl for cl in clients if cl.is_alive()]:
                stats.add("?", "lost", f"client thread still waiting at the end "
                                       f"({time.monotonic() - (cl.busy_since or 0):.0f}s)", 0)
            if c.running():
                if "before" in result:
                    result["after"] = healed_and_measured("at the end")
                chaos.finish_checks(real_like.RESTART_BOUND + 10)
                result["child_table"] = c.children()
            else:
                failures.append(f"coordinator not running at the end (rc={c.proc.returncode})\n"
                                f"{c.output_tail()}")
            chaos.end()
            result["samples"] = samples
            result["restarts"] = {e.get("name"): e.get("restarts") for e in result.get("child_table", [])}
            result["log"] = log_counts(c.stderr())
            rc = c.stop()
            at_exit, left = real_like.orphans_after_exit(c, 5.0)
            result["exit_orphans"] = (at_exit, left)
            result["log"] = log_counts(c.stderr())
            if rc != 0:
                failures.append(f"coordinator exit code {rc} after SIGTERM\n{c.output_tail()}")
            log(f"coordinator stopped (rc {rc}): {len(at_exit)} marked process(es) alive at its exit, "
                f"{len(left)} after 5 s")
    except AssertionError as e:  # the harness's leak check (or a start-up failure)
        failures.append(f"harness: {str(e)[:800]}")
    finally:
        stop_load.set()
        run.set()
        if chaos is not None:
            chaos.end()
    t_main = time.monotonic() - t_begin

    # kill -9 of the coordinator over the same (plain) real-like children
    t9 = time.monotonic()
    base_profiles = {name: dict(r["base"]) for name, r in roles.items()}
    kill9 = real_like.kill9_phase(base_profiles, extra_args, n, log)
    t_kill9 = time.monotonic() - t9

    # ------------------------------------------------------------------- report
    cnt = stats.counts
    lost = cnt["lost"] + cnt["corrupt"]
    if lost:
        failures.append(f"{cnt['lost']} requests lost, {cnt['corrupt']} corrupt")
    unexpected = {k: v for k, v in stats.statuses.items() if k not in real_like.REAL_ALLOWED}
    if unexpected:
        failures.append(f"error answers of kinds not allowed for real-like children: {unexpected}")
    if cnt["sent"] == 0 or cnt["ok"] == 0:
        failures.append("no request succeeded: the soak did not exercise anything")
    orphans = []
    if chaos is not None:
        if chaos.errors:
            failures.append(f"chaos loop errors: {chaos.errors[:3]}")
        failures.extend(chaos.failures)
        orphans += [(what, pid, desc) for what, pid, desc in chaos.orphans]
    at_exit, left = result.get("exit_orphans", ([], []))
    orphans += [("5 s after the coordinator's SIGTERM exit", p, d) for p, d in left]
    if not kill9.get("ran"):
        failures.append(f"kill -9 phase did not run: {kill9.get('error', '?')}")
    orphans += [(f"{real_like.KILL9_BOUND:.0f} s after kill -9 of the coordinator", p, d)
                for p, d in kill9.get("left", [])]
    if orphans:
        failures.append(f"{len(orphans)} orphan process(es): "
                        + "; ".join(f"{what}: {pid} ({desc})" for what, pid, desc in orphans[:8]))
    before, after = result.get("before"), result.get("after")
    if before and after:
        if after["rss_kb"] > before["rss_kb"] * 1.05:
            failures.append(f"RSS grew {before['rss_kb']} -> {after['rss_kb']} kB "
                            f"(+{100.0 * (after['rss_kb'] / before['rss_kb'] - 1):.1f}% > 5%)")
        if after["fds"] > before["fds"] + 2:
            failures.append(f"open fds grew {before['fds']} -> {after['fds']} (> +2): "
                            f"before {dict(before['fd_kinds'])}, after {dict(after['fd_kinds'])}")
    elif not any("coordinator" in f or "harness" in f for f in failures):
        failures.append("RSS/fd measurements missing")

    print()
    print(f"=== real-like soak summary ({duration:.0f} s, {n} children, {args.clients} clients, "
          f"seed {seed}) ===")
    rows = [("requests sent", cnt["sent"]), ("answered 2xx", cnt["ok"]),
            ("answered with an error", cnt["error"]), ("lost", cnt["lost"]),
            ("corrupt 2xx", cnt["corrupt"])]
    for kind in ("plain", "stream"):
        rows.append((f"  {kind}: sent/ok/error/lost/corrupt",
                     "/".join(str(stats.by_kind[(kind, o)])
                              for o in ("sent", "ok", "error", "lost", "corrupt"))))
    rows.append(("orphans", len(orphans)))
    for label, value in rows:
        print(f"{label:<40} {value:>12}")
    if stats.statuses:
        print("errors by kind:".ljust(40),
              ", ".join(f"{k}: {v}" for k, v in stats.statuses.most_common()))
    if stats.latencies:
        lat = sorted(stats.latencies)
        print(f"{'2xx latency p50 / p99 / max (s)':<40} "
              f"{lat[len(lat) // 2]:.2f} / {lat[int(len(lat) * 0.99)]:.2f} / {lat[-1]:.2f}")
    if chaos is not None:
        print("chaos actions:".ljust(40), ", ".join(f"{k}: {v}" for k, v in sorted(chaos.actions.items()))
              + f"; skipped: {chaos.skipped}")
        print("checks:".ljust(40), ", ".join(f"{k}: {v}" for k, v in sorted(chaos.stats.items())) or "-")
        if chaos.tree_clear_times:
            print("killed launchers' trees gone after (s):".ljust(40),
                  f"max {max(chaos.tree_clear_times):.2f}, mean "
                  f"{sum(chaos.tree_clear_times) / len(chaos.tree_clear_times):.2f} "
                  f"({len(chaos.tree_clear_times)} kills)")
    print("marked processes after SIGTERM exit:".ljust(40),
          f"{len(at_exit)} at exit, {len(left)} after 5 s")
    if kill9.get("ran"):
        print("kill -9 of the coordinator:".ljust(40),
              f"{len(kill9['before'])} processes in its trees, {len(kill9['left'])} left after "
              f"{real_like.KILL9_BOUND:.0f} s"
              + (f" (all gone after {kill9['cleared_after']} s)" if kill9.get("cleared_after") is not None else ""))
    if result.get("log"):
        print("coordinator log:".ljust(40), ", ".join(f"{k}: {v}" for k, v in result["log"].items()))
    if result.get("restarts"):
        print("restarts per child (from /ready):".ljust(40), result["restarts"])
    if before:
        print(f"{'':<24}{'after warm-up':>16}{'after run':>16}")
        print(f"{'coordinator RSS (kB)':<24}{before['rss_kb']:>16}{(after or {}).get('rss_kb', '-'):>16}")
        print(f"{'coordinator open fds':<24}{before['fds']:>16}{(after or {}).get('fds', '-'):>16}")
    if result.get("samples"):
        s = result["samples"]
        print(f"RSS under load (kB): min {min(x[1] for x in s)}, max {max(x[1] for x in s)}; "
              f"fds under load: min {min(x[2] for x in s)}, max {max(x[2] for x in s)} "
              f"({len(s)} samples)")
    print(f"wall time: main run {t_main:.0f} s, kill -9 phase {t_kill9:.0f} s")
    if stats.lost_groups:
        print("lost/corrupt requests, by reason:")
        for reason, k in stats.lost_groups.most_common():
            print(f"  {k:>6} x {reason}")
    print()
    dirs = [d for d in (c.dir, kill9.get("dir")) if d and os.path.isdir(d)]
    if failures:
        print("SOAK FAILED:")
        for f in failures:
            print(f"  - {f}")
        if dirs:
            print(f"(coordinator dirs kept: {', '.join(dirs)})")
        return 1
    if keep_env != "1":
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
    print("SOAK PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
