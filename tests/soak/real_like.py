"""The chaos soak's ``--real-like`` mode: fake children that behave like the real
AIstudioProxyAPI child (docs/fake-child-contract.md), and the faults that fit them.

Children (``_fake`` knobs of tests/fixtures/fake_child/launch_camoufox.py):
  every child: ``browser_tree: "escape"`` (a "browser" in its own session holding the camoufox
  port, a "firefox" detached from it, a stream proxy in the launcher's group), ``startup_delay``
  1-2 s (the API port is bound late), ``stop_delay`` 1-3 s (a clean SIGTERM saves the cookies
  into the profile first), ``serial`` (one request at a time, the rest in the child's queue),
  ``stream_pacing``, cookie refreshes every 3 requests and every 4 s (the child rewrites its own
  profile), short quota parking (``quota_park`` 2 s, then 530) and a short ``response_timeout``
  (the child's own 504 for a request it could not finish);
  child 1: ``quota_after`` N (AI Studio's quota error after N answers, rotation off: the flag is
  reset at once, a streamed request gets ``: processing auth rotation...`` comments then
  ``data: {"error":"Auth rotation failed."}``, a non-streamed one is re-queued until the child's
  response timeout);
  child 2: the same with ``quota_sticky`` (the flag stays: later requests are parked, then 530);
  the last child: ``logged_out`` (prints "Auth failed in headless mode, auth file update
  required." and exits at start: the coordinator must put it in ``needs_relogin``, not restart it).

Chaos (one action every 1.5-3 s with --quick, 3-6 s otherwise): SIGKILL of a launcher (then its
whole tree, whatever its session or group, must be gone within TREE_BOUND), SIGKILL of the
browser or of firefox, SIGSTOP/SIGCONT of a launcher or a browser, an operator's profile
replacement (a fresh login renamed over the file) + SIGHUP (the child must restart with it, and
its old child's last cookie save must not land on the new file), quota exhaustion (a profile
replaced with ``quota_exhausted``) + SIGHUP, a log-out (``logged_out``) + SIGHUP (the child must
reach ``needs_relogin`` with one start, no restart loop), and a SIGHUP with no change (cookie
refreshes copied back are not a change: nothing may restart).
"""

import collections
import json
import os
import signal
import threading
import time
import uuid

from harness import Coordinator, pid_alive, pid_cmdline, storage_state, wait_until

TREE_BOUND = 10.0       # seconds a killed launcher's tree gets to disappear
RESTART_BOUND = 90.0    # seconds a replaced profile's child gets to start again (a child in
                        # restart backoff waits for it: up to 72 s)
RELOGIN_HOLD = 8.0      # seconds a needs_relogin child must stay without a new start
KILL9_BOUND = 5.0       # seconds after kill -9 of the coordinator before nothing may be left
SERVING = ("ready", "busy")

# Error answers a real-like fleet may legitimately give, each with why (see docs/reliability.md).
REAL_ALLOWED = {
    # nothing could serve the request: every child restarting, stopped, cooling or logged out
    "503 no_healthy_children": "no child was serving (restarting, stopped, cooling, needs_relogin)",
    # every serving child failed it before doing any work (refused, reset, 503, 530)
    "502 all_children_failed": "every serving child failed it before any work was done",
    # waited longer than --queue-timeout: every child busy (serial children, one request each)
    "503 queue_timeout": "every child stayed busy for --queue-timeout",
    # a SIGSTOPped child mid-stream: the stall watchdog
    "504 upstream_stalled": "its child was stopped (SIGSTOP) before it answered",
    # --request-timeout, or the child's own 504 after its response timeout: a spent account
    # re-queues a non-streamed request until then (rotation off); the page may have run the
    # prompt, so it is relayed, not retried
    "504 upstream_timeout": "the child (a spent account re-queueing it) or --request-timeout gave up",
    # every child that could take it answered 530 or is cooling for its quota
    "429 quota_exhausted": "every child able to take it is out of quota (cooling)",
    # stream error events (then [DONE]) of the same kinds, for a stream whose head was sent
    "stream error child_stream_aborted": "its child died (SIGKILL) after the stream started",
    "stream error upstream_stalled": "its child was stopped (SIGSTOP) mid-stream",
    "stream error queue_timeout": "a streamed request waited longer than --queue-timeout",
    "stream error no_healthy_children": "no child was serving",
    "stream error all_children_failed": "every serving child failed it before any work",
    "stream error quota_exhausted": "every child able to take it is out of quota",
    "stream error upstream_timeout": "the child or --request-timeout gave up",
}


# ---------------------------------------------------------------------------
# classification of answers (what a client that stops at the first [DONE] sees)

def _error_code(obj):
    err = obj.get("error") if isinstance(obj, dict) else None
    if isinstance(err, dict):
        return str(err.get("code"))
    if isinstance(err, str):
        return "unwrapped child error event"  # the child's own {"error": "..."}: not rewrapped
    return None


def error_detail_real(status, body, retry_after):
    """'503 queue_timeout': status and OpenAI error code; a child's {"detail": ...} that reached
    the client unchanged, or a 429 without Retry-After, is a kind of its own (never allowed)."""
    try:
        obj = json.loads(body)
    except ValueError:
        return f"{status} non-JSON error body"
    if isinstance(obj, dict) and "detail" in obj and "error" not in obj:
        return f"{status} unwrapped child error {{\"detail\": ...}}"
    code = _error_code(obj)
    if code is None:
        return f"{status} error body of unknown shape"
    if status == 429 and not retry_after:
        return f"{status} {code} without Retry-After"
    return f"{status} {code}"


def classify_stream_real(status, body, retry_after, expected):
    """(outcome, detail) of a streamed answer, read like an OpenAI client: up to the first
    [DONE]. An error event before it is an error answer of its code; a [DONE] with incomplete
    content is corrupt (the client sees a short or empty answer), also when an error event
    follows it."""
    if status < 200 or status >= 300:
        return "error", error_detail_real(status, body, retry_after)
    text = body.decode("utf-8", "replace")
    data = [ln[len("data: "):] for ln in text.split("\n") if ln.startswith("data: ")]
    if "[DONE]" in data:
        first_done = data.index("[DONE]")
        before, after = data[:first_done], data[first_done + 1:]
    else:
        before, after = data, None
    contents = []
    for d in before:
        try:
            obj = json.loads(d)
        except ValueError:
            return "corrupt", f"unparsable event {d[:80]!r}"
        code = _error_code(obj)
        if code is not None:
            if after is None:
                return "lost", "error event without [DONE]"
            return "error", f"stream error {code}"
        try:
            delta = obj["choices"][0]["delta"]
        except (KeyError, IndexError, TypeError):
            return "corrupt", f"event without choices[0].delta {d[:80]!r}"
        if delta.get("content"):
            contents.append(delta["content"])
    if after is None:
        return "lost", f"stream cut without error event or [DONE] ({len(body)} bytes)"
    if contents != expected:
        later = [_error_code(_loads(d)) for d in after]
        later = [c for c in later if c]
        if later:
            return "corrupt", (f"[DONE] after {len(contents)} of {len(expected)} chunks, then an error "
                               f"event ({later[0]}): the client saw a complete, short answer")
        return "corrupt", f"stream content {contents!r}"
    if after:
        return "corrupt", f"{len(after)} data event(s) after [DONE]"
    return "ok", ""


def _loads(d):
    try:
        return json.loads(d)
    except ValueError:
        return None


def classify_plain_real(status, body, retry_after):
    if status < 200 or status >= 300:
        return "error", error_detail_real(status, body, retry_after)
    try:
        obj = json.loads(body)
        content = obj["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return "corrupt", f"2xx body {body[:120]!r}"
    if obj.get("object") != "chat.completion" or not content.startswith("Hello from "):
        return "corrupt", f"2xx body {body[:120]!r}"
    return "ok", ""


# ---------------------------------------------------------------------------
# processes

def proc_start(pid):
    """The start time (clock ticks after boot) of `pid`, or None: with the pid, names one process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
        return int(stat[stat.rfind(")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def same_alive(pid, start):
    return pid_alive(pid) and proc_start(pid) == start


def environ_value(pid, name):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read()
    except OSError:
        return None
    key = name.encode() + b"="
    for entry in env.split(b"\0"):
        if entry.startswith(key):
            return entry[len(key):].decode("utf-8", "replace")
    return None


def describe(pid):
    cmd = pid_cmdline(pid)
    for tag in ("fake-firefox", "fake-browser"):
        if tag in cmd:
            return tag[len("fake-"):]
    if "launch_camoufox.py" in cmd:
        return "launcher or stream proxy"
    return cmd[:60] or "?"


def tree_of(c, rec):
    """{pid: (start, what)} of a child's tree: the launcher, its browser, firefox and stream
    proxy from its start file, plus every process marked with its COORDINATOR_TREE (when the
    coordinator marks trees)."""
    members = {}
    for key, what in (("pid", "launcher"), ("browser_pid", "browser"), ("firefox_pid", "firefox"),
                      ("stream_proxy_pid", "stream proxy")):
        pid = rec.get(key)
        if pid and pid_alive(pid):
            start = proc_start(pid)
            if start is not None:
                members[pid] = (start, what)
    marker = environ_value(rec.get("pid"), "COORDINATOR_TREE") if rec.get("pid") else None
    if marker:
        for pid in c.tagged_pids():
            if pid in members:
                continue
            value = environ_value(pid, "COORDINATOR_TREE")
            if value is not None and (value == marker or value.startswith(marker + "/")):
                start = proc_start(pid)
                if start is not None:
                    members[pid] = (start, describe(pid))
    return members


# ---------------------------------------------------------------------------
# profiles

def real_base(rng, stream_chunks, done_first):
    """The `_fake` knobs every real-like child has (timings drawn once per child)."""
    fake = {
        "stream_chunks": stream_chunks, "stream_interval": 0.02, "chat_delay": 0.05,
        "browser_tree": "escape", "serial": True, "stream_pacing": True,
        "startup_delay": round(rng.uniform(1.0, 2.0), 2),
        "stop_delay": round(rng.uniform(1.0, 3.0), 2),
        "stream_proxy_join": 1.0,
        "cookie_refresh_every": 3, "cookie_refresh_interval": 4,
        "quota_park": 2.0, "quota_comment_lines": 2, "quota_comment_interval": 0.3,
        "quota_attempt_delay": 0.3, "response_timeout": 6,
    }
    if done_first is not None:
        fake["quota_done_first"] = done_first
    return fake


def real_roles(n, rng, stream_chunks, done_first):
    """name -> (initial `_fake`, healed `_fake`): the role each child plays."""
    roles = {}
    for i in range(n):
        name = f"child{i}"
        base = real_base(rng, stream_chunks, done_first)
        role = dict(base)
        if n >= 3 and i == 1:
            role["quota_after"] = rng.randint(8, 20)
        elif n >= 4 and i == 2:
            role.update(quota_after=rng.randint(8, 20), quota_sticky=True)
        initial = dict(role)
        if n >= 3 and i == n - 1:
            initial["logged_out"] = True
        roles[name] = {"base": base, "role": role, "initial": initial}
    return roles


# ---------------------------------------------------------------------------
# chaos

class RealChaos:
    """Faults of real children, at most one every `interval` seconds; disruptive ones only while
    at least two children serve, and at most `max_impaired` profiles made spent or logged out
    by the chaos at once. Checks of what must follow (a tree gone, a restart, needs_relogin,
    nothing restarted, the operator's file intact) are polled by the same thread and, after it
    stops, by `finish_checks`."""

    def __init__(self, c, rng, interval, roles):
        self.c = c
        self.rng = rng
        self.interval = interval
        self.stop = threading.Event()     # set: the thread ends
        self.paused = threading.Event()   # set: no new action (checks still polled)
        self.thread = None
        self.roles = roles
        self.fake = {name: dict(r["initial"]) for name, r in roles.items()}
        self.generation = {name: 0 for name in roles}
        self.last_replaced = {name: 0.0 for name in roles}
        self.actions = collections.Counter()
        self.skipped = 0
        self.errors = []
        self.failures = []          # what the coordinator got wrong (reported, fails the soak)
        self.stats = collections.Counter()
        self.tree_clear_times = []
        self.orphans = []           # (what, pid, description)
        self.stopped = {}           # (pid, start) -> SIGCONT due
        self.checks = []
        self.lock = threading.RLock()
        self.max_impaired = max(1, len(roles) - 3)
        self.sighups = 0            # sent to the coordinator (each logs one "reload: ..." line)

    # -- helpers -------------------------------------------------------------
    def current(self, name):
        """The newest start record of `name` whose launcher is alive, or None."""
        recs = self.c.start_records(name)
        if not recs:
            return None
        rec = recs[-1]
        pid = rec.get("pid")
        if pid and pid_alive(pid) and self.c.launcher in pid_cmdline(pid):
            return rec
        return None

    def serving(self):
        return [e.get("name") for e in self.c.children() if e.get("state") in SERVING]

    def impaired(self):
        return [n for n, f in self.fake.items() if f.get("quota_exhausted") or f.get("logged_out")]

    def kill(self, pid, sig):
        try:
            os.kill(pid, sig)
            return True
        except ProcessLookupError:
            return False

    def resume_due(self, force=False):
        now = time.monotonic()
        with self.lock:
            for (pid, start), due in list(self.stopped.items()):
                if force or now >= due:
                    if same_alive(pid, start):
                        self.kill(pid, signal.SIGCONT)
                    del self.stopped[(pid, start)]

    def write(self, name, fake):
        """An operator's replacement: a fresh login (new cookie value) renamed over the file,
        with a generation number in `_fake` (the fake child ignores it) to tell versions apart."""
        self.generation[name] += 1
        fake = dict(fake)
        fake["soak_generation"] = self.generation[name]
        secret = f"secret-cookie-{uuid.uuid4().hex}"
        self.c.secrets[name] = [secret, secret + "-ls"]
        path = self.c.profile_paths[name]
        tmp = os.path.join(os.path.dirname(path), f".{name}.replace.tmp")
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            json.dump(storage_state(secret, fake), f, indent=2)
        os.replace(tmp, path)
        self.fake[name] = {k: v for k, v in fake.items() if k != "soak_generation"}
        self.last_replaced[name] = time.time()
        return self.generation[name]

    def replace(self, names_fakes, why):
        """Replace each profile, then one SIGHUP; register the checks that must follow."""
        olds = {}
        for name, fake in names_fakes:
            rec = self.current(name)
            olds[name] = (rec, tree_of(self.c, rec) if rec else {})
            gen = self.write(name, fake)
            olds[name] = olds[name] + (gen,)
        self.sighup()
        now = time.monotonic()
        for name, fake in names_fakes:
            rec, tree, gen = olds[name]
            self.checks.append({"kind": "restart", "name": name, "t_wall": self.last_replaced[name],
                                "gen": gen,
                                "deadline": now + RESTART_BOUND, "why": why,
                                "relogin": bool(fake.get("logged_out"))})
            if rec is not None:
                self.checks.append({"kind": "file", "name": name, "gen": gen, "tree": tree,
                                    "deadline": now + RESTART_BOUND, "why": why})

    def reload_lines(self):
        return [ln for ln in self.c.stderr().splitlines() if " reload: " in ln and " restarted" in ln]

    def sighup(self):
        self.sighups += 1
        self.c.signal(signal.SIGHUP)

    # -- actions -------------------------------------------------------------
    def act(self):
        serving = self.serving()
        action = self.rng.choices(
            ["kill launcher", "kill browser", "kill firefox", "hang launcher", "hang browser",
             "replace", "quota", "logout", "reload"],
            weights=[20, 8, 8, 10, 4, 15, 8, 6, 10])[0]
        disruptive = action in ("kill launcher", "hang launcher", "quota", "logout")
        if disruptive and len(serving) < 2:
            self.skipped += 1
            return
        if action in ("quota", "logout") and len(self.impaired()) >= self.max_impaired:
            self.skipped += 1
            return
        if action == "replace":
            # a fresh login: for a spent or logged-out profile first, else any child
            impaired = [n for n in self.c.names if self.fake[n] != self.roles[n]["role"]]
            name = self.rng.choice(impaired or self.c.names)
            if name not in impaired and len(serving) < 2:
                self.skipped += 1
                return
            self.replace([(name, self.roles[name]["role"])], "fresh login")
            self.actions["operator replaces a profile (fresh login) + SIGHUP"] += 1
            return
        if action == "reload":
            self.reload_without_change()
            return
        if not serving:
            self.skipped += 1
            return
        name = self.rng.choice(serving)
        rec = self.current(name)
        if rec is None:
            return
        if action == "kill launcher":
            tree = tree_of(self.c, rec)
            if self.kill(rec["pid"], signal.SIGKILL):
                self.actions["SIGKILL of a launcher"] += 1
                self.checks.append({"kind": "tree", "name": name, "tree": tree,
                                    "t0": time.monotonic(), "deadline": time.monotonic() + TREE_BOUND})
        elif action in ("kill browser", "kill firefox"):
            key = "browser_pid" if action == "kill browser" else "firefox_pid"
            pid = rec.get(key)
            if pid and pid_alive(pid) and f"fake-{key.split('_')[0]}" in pid_cmdline(pid):
                if self.kill(pid, signal.SIGKILL):
                    self.actions[f"SIGKILL of the {key.split('_')[0]}"] += 1
        elif action in ("hang launcher", "hang browser"):
            pid = rec.get("pid") if action == "hang launcher" else rec.get("browser_pid")
            start = proc_start(pid) if pid else None
            if start is not None:
                with self.lock:
                    if self.kill(pid, signal.SIGSTOP):
                        self.stopped[(pid, start)] = time.monotonic() + self.rng.uniform(2, 5)
                        self.actions[f"SIGSTOP of a {action.split()[1]}, SIGCONT 2-5 s later"] += 1
        elif action == "quota":
            fake = dict(self.roles[name]["role"], quota_exhausted=True,
                        quota_sticky=self.rng.random() < 0.5)
            self.replace([(name, fake)], "quota exhausted")
            self.actions["quota exhaustion (profile replaced) + SIGHUP"] += 1
        elif action == "logout":
            fake = dict(self.roles[name]["role"], logged_out=True)
            self.replace([(name, fake)], "logged out")
            self.actions["log-out (profile replaced) + SIGHUP"] += 1

    def reload_without_change(self):
        """SIGHUP with no operator change: the children's cookie refreshes (copied back into
        the operator's files by the coordinator) must not count as changes."""
        # Only once every replaced profile's child has started again: a child still stopping
        # for an earlier replacement is counted again by the next reload ("restarted"), without
        # a second stop or start; that is not what this checks.
        if any(chk["kind"] == "restart" and not chk.get("started") for chk in self.checks):
            self.skipped += 1
            return
        # every earlier SIGHUP's reload has been logged first (so the next line is this one's)
        if not wait_until(lambda: len(self.reload_lines()) >= self.sighups, 10, 0.05):
            self.errors.append(f"{self.sighups} SIGHUPs sent but {len(self.reload_lines())} reload "
                               "lines in the coordinator log after 10 s")
            return
        before = len(self.reload_lines())
        self.sighup()
        got = wait_until(lambda: len(self.reload_lines()) > before, 5, 0.05)
        self.actions["SIGHUP with no change"] += 1
        if not got:
            self.errors.append("no reload line in the coordinator log within 5 s of a SIGHUP")
            return
        line = self.reload_lines()[before]
        try:
            restarted = int(line.rsplit(" restarted", 1)[0].rsplit(",", 1)[1].strip().split()[0])
        except (ValueError, IndexError):
            self.errors.append(f"cannot read the reload line: {line[-120:]}")
            return
        self.stats["no-change reloads"] += 1
        if restarted:
            self.failures.append(f"a SIGHUP with no profile changed restarted {restarted} child(ren): "
                                 f"{line[-160:]}")

    # -- checks ---------------------------------------------------------------
    def poll_checks(self, final=False):
        now = time.monotonic()
        keep = []
        for chk in self.checks:
            done = getattr(self, "_check_" + chk["kind"])(chk, now, final)
            if not done:
                keep.append(chk)
        self.checks = keep

    def _check_tree(self, chk, now, final):
        left = {p: v for p, v in chk["tree"].items() if same_alive(p, v[0])}
        if not left:
            self.stats["launcher kills: trees gone"] += 1
            self.tree_clear_times.append(now - chk["t0"])
            return True
        if now >= chk["deadline"]:
            self.stats["launcher kills: trees NOT gone"] += 1
            for pid, (_, what) in left.items():
                self.orphans.append((f"{TREE_BOUND:.0f} s after SIGKILL of {chk['name']}'s launcher",
                                     pid, what))
            return True
        return False

    def _check_restart(self, chk, now, final):
        name = chk["name"]
        if self.last_replaced[name] > chk["t_wall"]:
            self.stats["replaced profiles: replaced again before the check"] += 1
            return True  # replaced again since: the newer check decides
        recs = [r for r in self.c.start_records(name)
                if r.get("t", 0) >= chk["t_wall"] and self._runs_generation(r, chk["gen"])]
        if recs:
            chk["started"] = True
        if recs and not chk["relogin"]:
            self.stats["replaced profiles: child restarted"] += 1
            return True
        if recs and chk["relogin"]:
            entry = self.c.child(name)
            if entry and entry.get("state") == "needs_relogin":
                chk.setdefault("relogin_at", now)
                if now - chk["relogin_at"] >= RELOGIN_HOLD or final:
                    starts = len([r for r in self.c.start_records(name) if r.get("t", 0) >= chk["t_wall"]])
                    self.stats["log-outs: needs_relogin reached"] += 1
                    if starts > 1:
                        self.failures.append(f"{name}: {starts} starts after its log-out, not 1 "
                                             "(a restart loop)")
                    return True
        if now >= chk["deadline"] or final:
            if chk["relogin"]:
                state = (self.c.child(name) or {}).get("state")
                self.failures.append(f"{name}: not in needs_relogin {RESTART_BOUND:.0f} s after its "
                                     f"profile was replaced with a logged-out one (state {state}, "
                                     f"{len(recs)} start(s))")
            else:
                self.failures.append(f"{name}: no new start {RESTART_BOUND:.0f} s after its profile "
                                     f"was replaced ({chk['why']}) and SIGHUP")
            return True
        return False

    @staticmethod
    def _runs_generation(rec, gen):
        """False when the child's working copy (its --active-auth-json, still there while it
        runs) holds an older version than `gen`: a start that raced the replacement."""
        try:
            with open(rec.get("profile_path") or "") as f:
                have = (json.load(f).get("_fake") or {}).get("soak_generation", 0)
        except (OSError, ValueError):
            return True  # gone (the child stopped) or being rewritten: judged by time
        return have >= gen

    def _check_file(self, chk, now, final):
        """Once the old child's tree is gone (its last cookie save done and synced), the
        operator's file must still hold the replacement (or a later one)."""
        alive = [p for p, v in chk["tree"].items() if same_alive(p, v[0])]
        if alive and now < chk["deadline"] and not final:
            return False
        chk.setdefault("gone_at", now)
        if now - chk["gone_at"] < 2.0 and not final:
            return False  # the coordinator's final sync after the exit
        try:
            with open(self.c.profile_paths[chk["name"]]) as f:
                gen = (json.load(f).get("_fake") or {}).get("soak_generation", 0)
        except (OSError, ValueError):
            if now < chk["deadline"] and not final:
                return False
            gen = None
        self.stats["replaced profiles: file checked after the old child stopped"] += 1
        if gen is None or gen < chk["gen"]:
            self.failures.append(f"{chk['name']}: the operator's new profile (generation {chk['gen']}) "
                                 f"was overwritten (file holds generation {gen}) after the old "
                                 "child stopped")
        return True

    def finish_checks(self, timeout):
        deadline = time.monotonic() + timeout
        while self.checks and time.monotonic() < deadline:
            self.poll_checks()
            time.sleep(0.1)
        if self.checks:
            self.poll_checks(final=True)

    # -- loop -----------------------------------------------------------------
    def start(self):
        self.thread = threading.Thread(target=self.run, name="chaos", daemon=True)
        self.thread.start()

    def pause(self):
        """No new action from now on; resumes stopped processes at once. Checks go on."""
        self.paused.set()
        with self.lock:
            self.resume_due(force=True)

    def resume(self):
        self.paused.clear()

    def end(self, timeout=10):
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout)
        self.resume_due(force=True)

    def run(self):
        next_at = time.monotonic() + self.rng.uniform(*self.interval)
        while not self.stop.is_set():
            with self.lock:
                try:
                    self.resume_due()
                    self.poll_checks()
                    if self.paused.is_set():
                        next_at = time.monotonic() + self.rng.uniform(*self.interval)
                    elif time.monotonic() >= next_at:
                        self.act()
                        next_at = time.monotonic() + self.rng.uniform(*self.interval)
                except Exception as e:  # noqa: BLE001 - the soak goes on; reported
                    self.errors.append(repr(e))
                    next_at = time.monotonic() + self.rng.uniform(*self.interval)
            self.stop.wait(0.1)
        self.resume_due(force=True)

    def heal_all(self):
        """(Paused) every profile back to a plain real-like child (no quota, logged in): one
        replacement per changed profile, then one SIGHUP. For the quiescent measurements."""
        with self.lock:
            self.resume_due(force=True)
            todo = [(n, self.roles[n]["base"]) for n in self.c.names
                    if self.fake[n] != self.roles[n]["base"]]
            if todo:
                self.replace(todo, "heal")
                self.actions["heal: profiles back to plain children + SIGHUP"] += 1

    def rearm(self):
        """Every profile back to its role (quota after N answers, logged out...) + SIGHUP."""
        with self.lock:
            todo = [(n, self.roles[n]["initial"]) for n in self.c.names
                    if self.fake[n] != self.roles[n]["initial"]]
            if todo:
                self.replace(todo, "roles")
                self.actions["re-arm: profiles back to their roles + SIGHUP"] += 1


# ---------------------------------------------------------------------------
# orphans at the end

def orphans_after_exit(c, grace):
    """(tagged processes alive when the coordinator has exited, those alive `grace` s later
    as [(pid, what)])."""
    at_exit = [(p, describe(p)) for p in c.tagged_pids()]
    wait_until(lambda: not c.tagged_pids(), grace, 0.1)
    return at_exit, [(p, describe(p)) for p in c.tagged_pids()]


def kill9_phase(profiles, extra_args, n_ready, log):
    """A fresh coordinator over the same (healed) real-like children: wait until they serve,
    put a long streamed request on each, SIGKILL the coordinator, and list what carries the
    run's marker KILL9_BOUND seconds later. Returns a dict for the summary."""
    import http.client
    from harness import HOST
    result = {"ran": False}
    c = Coordinator(profiles, extra_args=extra_args, health_interval=0.5, start_stagger=0,
                    wait_ready=n_ready, ready_wait=60, stop_timeout=30.0, leak_grace=1.0,
                    check_leaks=False)
    threads = []

    def long_stream():
        try:
            conn = http.client.HTTPConnection(HOST, c.port, timeout=20)
            conn.request("POST", "/v1/chat/completions", body=json.dumps(
                {"model": "fake-model", "stream": True, "fake_duration": 10,
                 "messages": [{"role": "user", "content": "kill -9"}]}),
                headers={"Content-Type": "application/json"})
            conn.getresponse().read()
        except (OSError, http.client.HTTPException):
            pass
    try:
        with c:
            for _ in range(n_ready):
                t = threading.Thread(target=long_stream, daemon=True)
                t.start()
                threads.append(t)
            time.sleep(1.5)
            before = [(p, describe(p)) for p in c.tagged_pids() if p != c.proc.pid]
            c.proc.kill()
            t0 = time.monotonic()
            c.proc.wait(timeout=10)
            # once nothing marked is alive nothing can start again (the coordinator is dead):
            # no need to sit out the rest of the bound
            gone = wait_until(lambda: not c.tagged_pids(), KILL9_BOUND, 0.05)
            took = time.monotonic() - t0
            left = [(p, describe(p)) for p in c.tagged_pids()]
            result.update(ran=True, before=before, left=left, dir=c.dir,
                          cleared_after=round(took, 2) if gone else None)
            log(f"kill -9 of the coordinator with {len(before)} processes in its trees: "
                f"{len(left)} left after {KILL9_BOUND:.0f} s"
                + (f" (all gone after {took:.2f} s)" if gone else ""))
    except AssertionError as e:
        result["error"] = str(e)[:500]
    return result
