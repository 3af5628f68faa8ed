#!/usr/bin/env python3
"""The coordinator's benchmark suite (issue 5). Run it through bench/run.sh.

    bench/run.sh            full run (about 15 min): bench/results/full/, then docs/benchmarks.md
    bench/run.sh --quick    every figure for a second or two, no judgement (CI): bench/results/quick/

Python 3 standard library only. It starts every process it uses (nginx, HAProxy,
fake children, the coordinator, wrk) on 127.0.0.1, writes their PIDs to
RESULTS/pids (bench/run.sh's trap ends them if this script dies), and stops them
all itself on the way out, on failure too.

Sections (each figure: targets interleaved A B C A B C..., median over rounds, min-max kept):
  overhead   wrk at 64 and at 1 connection through direct / coordinator / nginx / HAProxy
             over four nginx upstreams; throughput, latency, CPU per 10k requests, RSS under load
  sse        time to first chunk and inter-chunk gap of streamed answers (fake child, 20 x 50 ms)
  scheduling 4 serial fake children, heavy-tailed durations, 200 requests at 80% load:
             coordinator least-busy, coordinator round-robin, HAProxy maxconn 1, ideal FIFO
  fleet      spawn mode: start to listening, to all ready, idle RSS with 4 / 32 / 64 fake children
"""

import argparse
import asyncio
import heapq
import http.client
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
CONF = os.path.join(BENCH, "conf")
FAKE_CHILD = os.path.join(ROOT, "tests", "fixtures", "fake_child", "launch_camoufox.py")
CHAT_BODY = b'{"model":"fake-model","messages":[{"role":"user","content":"Say hello."}]}'

# Scheduling workload (fixed seed: every target sees the same arrivals and durations).
SCHED_SEED = 20240605
SCHED_SHORT, SCHED_LONG, SCHED_LONG_SHARE = 0.2, 2.0, 0.2
SCHED_SERVERS = 4
SCHED_LOAD = 0.8


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class BenchError(Exception):
    pass


# ---------------------------------------------------------------------------
# statistics
def pct(values, p):
    """Percentile with linear interpolation between closest ranks (numpy's default)."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summary(values):
    """{"median", "min", "max", "values"} of one figure over the rounds."""
    vals = [v for v in values if v is not None]
    if not vals:
        return {"median": None, "min": None, "max": None, "values": []}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "values": vals}


# ---------------------------------------------------------------------------
# processes
class Procs:
    """Every process this run starts; each PID also goes to RESULTS/pids for run.sh's trap."""

    def __init__(self, pidfile):
        self.pidfile = pidfile
        self.live = []  # (name, Popen)
        open(pidfile, "w").close()

    def start(self, name, cmd, cpus=None, stdout=None, stderr=None, env=None, cwd=None):
        if cpus is not None:
            cmd = ["taskset", "-c", cpus] + list(cmd)
        files = []

        def target(spec):
            if spec is None:
                return subprocess.DEVNULL
            if spec is subprocess.PIPE:
                return spec
            f = open(spec, "ab")
            files.append(f)
            return f

        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=target(stdout), stderr=target(stderr),
                             env=env, cwd=cwd, start_new_session=True)
        for f in files:
            f.close()
        with open(self.pidfile, "a") as f:
            f.write(f"{p.pid}\n")
        self.live.append((name, p))
        return p

    def own_cpu_seconds(self):
        """CPU used by this script and everything it started (waited-for or still running)."""
        t = os.times()
        total = t.user + t.system + t.children_user + t.children_system
        for _, p in self.live:
            total += tree_cpu_seconds(p.pid)
        return total

    def stop(self, p, sig=signal.SIGTERM, timeout=30.0):
        """Signal `p`, wait up to `timeout`, then SIGKILL; nginx workers left behind are ended too."""
        kids = children_of(p.pid)
        if p.poll() is None:
            try:
                p.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log(f"pid {p.pid} did not stop in {timeout:.0f} s: SIGKILL")
                try:
                    p.kill()
                except ProcessLookupError:
                    pass
                p.wait(timeout=10)
        for kid, comm in kids:
            if comm_of(kid) == comm:  # same process still there (not a reused PID)
                try:
                    os.kill(kid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.live = [(n, q) for (n, q) in self.live if q is not p]
        with open(self.pidfile, "w") as f:  # only what is still running, for run.sh's trap
            f.write("".join(f"{q.pid}\n" for _, q in self.live))

    def stop_all(self):
        for name, p in reversed(list(self.live)):
            try:
                self.stop(p, timeout=20.0)
            except Exception as e:  # keep stopping the others
                log(f"stopping {name} (pid {p.pid}): {e}")


def children_of(pid):
    """[(pid, comm)] of the direct children of `pid`."""
    out = []
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            for tok in f.read().split():
                out.append((int(tok), comm_of(int(tok))))
    except OSError:
        pass
    return out


def comm_of(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


def cpu_split(pids):
    """(utime, stime) of these processes (all threads), in seconds: user space and the kernel."""
    user = system = 0
    tck = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            fields = stat[stat.rfind(")") + 2:].split()
            user += int(fields[11])
            system += int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return user / tck, system / tck


def cpu_seconds(pids):
    """utime + stime of these processes (all threads), in seconds."""
    return sum(cpu_split(pids))


def status_kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_mib(pids):
    vals = [status_kb(pid, "VmRSS") for pid in pids]
    vals = [v for v in vals if v is not None]
    return sum(vals) / 1024.0 if vals else None


def busy_cpu_seconds():
    """CPU time all cores spent running processes since boot (user, nice, system), from /proc/stat.

    Interrupt and softirq time is left out: the kernel does not charge it to any process
    (loopback networking runs there), so it cannot be told apart from the benchmark's own."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system = fields[:3]
    return (user + nice + system) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid):
    """CPU of a live process, its waited-for children and its live descendants."""
    total = 0.0
    tck = os.sysconf("SC_CLK_TCK")
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        fields = stat[stat.rfind(")") + 2:].split()
        total += sum(int(x) for x in fields[11:15]) / tck
    except (OSError, ValueError):
        return 0.0
    for kid, _ in children_of(pid):
        total += tree_cpu_seconds(kid)
    return total


# ---------------------------------------------------------------------------
# ports and readiness
def port_free(port):
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def allocate_ports(base):
    """A block of 400 ports starting at `base` (moved up by 1000 while any is taken)."""
    for attempt in range(20):
        b = base + attempt * 1000
        layout = {f"U{i}": b + i for i in range(4)}
        layout.update({f"F{i}": b + 4 + i for i in range(4)})
        layout.update({f"S{i}": b + 8 + i for i in range(4)})
        layout.update({"NGINX_FAST": b + 20, "NGINX_SSE": b + 21, "HAPROXY_FAST": b + 22,
                       "HAPROXY_SSE": b + 23, "HAPROXY_SCHED": b + 24,
                       "COORD": b + 30, "FAKE_AUX": b + 40, "SPAWN_API": b + 100,
                       "SPAWN_STREAM": b + 200, "SPAWN_CAMOUFOX": b + 300})
        needed = [p for k, p in layout.items() if not k.startswith("SPAWN") and k != "FAKE_AUX"]
        needed += [b + 30 + i for i in range(10)]
        needed += [b + 40 + i for i in range(16)]  # the standalone fakes' stream and debug ports
        needed += [layout[k] + i for k in ("SPAWN_API", "SPAWN_STREAM", "SPAWN_CAMOUFOX") for i in range(64)]
        if all(port_free(p) for p in needed):
            return layout
    raise BenchError(f"no free block of 400 ports from {base}")


def http_request(port, method, path, body=None, timeout=5.0, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        hdrs = {"Content-Type": "application/json"} if body is not None else {}
        hdrs.update(headers or {})
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def wait_until(what, check, timeout, step=0.02):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as e:  # not up yet
            last = e
        time.sleep(step)
    raise BenchError(f"{what} not ready after {timeout:.0f} s ({last})")


def wait_health_ok(port, timeout=20.0):
    wait_until(f"127.0.0.1:{port}/health", lambda: http_request(port, "GET", "/health", timeout=1)[0] == 200,
               timeout)


def wait_coordinator_ready(port, n, timeout=60.0, proc=None):
    def check():
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"coordinator exited with {proc.returncode}")
        status, body = http_request(port, "GET", "/health", timeout=1)
        return status == 200 and len(json.loads(body)["ready_children"]) == n
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except BenchError:
            raise
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise BenchError(f"coordinator on {port}: not all {n} children ready after {timeout:.0f} s")
        time.sleep(0.02)


def check_post(port, what):
    status, body = http_request(port, "POST", "/v1/chat/completions", CHAT_BODY)
    if status != 200 or b"chat.completion" not in body:
        raise BenchError(f"{what}: POST /v1/chat/completions answered {status}: {body[:200]!r}")
    return len(body)


# ---------------------------------------------------------------------------
# configuration files
def chat_json(size=600):
    """A fixed chat.completion JSON of exactly `size` bytes (what the nginx upstreams answer)."""
    head = ('{"id":"chatcmpl-bench0000001","object":"chat.completion","created":1700000000,'
            '"model":"fake-model","choices":[{"index":0,"message":{"role":"assistant","content":"')
    tail = ('"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":96,'
            '"total_tokens":108}}')
    words = "Hello! This is a fixed answer from a fast upstream used to measure proxy overhead. "
    content = (words * 20)[: size - len(head) - len(tail)]
    text = head + content + tail
    assert len(text) == size and json.loads(text)
    return text


def render(template, dest, fields):
    with open(os.path.join(CONF, template)) as f:
        text = f.read()
    for k, v in fields.items():
        text = text.replace(f"@{k}@", str(v))
    left = re.findall(r"@[A-Z0-9_]+@", text)
    if left:
        raise BenchError(f"{template}: unfilled {left}")
    with open(dest, "w") as f:
        f.write(text)
    return dest


# ---------------------------------------------------------------------------
# load generation
class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.out = args.results
        os.makedirs(self.out, exist_ok=True)
        self.procs = Procs(os.path.join(self.out, "pids"))
        # A copy, so a rebuild during the run cannot change the binary under test.
        self.coordinator = os.path.join(self.out, "coordinator")
        shutil.copy2(os.path.abspath(args.coordinator), self.coordinator)
        self.python = sys.executable  # the real interpreter (not a shell shim) runs the fake children
        ncpu = os.cpu_count() or 1
        if ncpu >= 2 and not args.no_pin:
            self.cpu_proxy, self.cpu_load, self.cpu_all = "0", "1", f"0-{ncpu - 1}"
        else:
            self.cpu_proxy = self.cpu_load = self.cpu_all = None
        if self.quick:
            self.rounds, self.d64, self.d1, self.warm = 1, 2, 1, 1
            self.sse_streams, self.sched_rounds, self.sched_n, self.sched_scale = 4, 1, 40, 0.25
            self.fleet_rounds = 1
        else:
            self.rounds, self.d64, self.d1, self.warm = args.rounds, 10, 5, 2
            self.sse_streams, self.sched_rounds, self.sched_n, self.sched_scale = 16, 3, 200, 1.0
            self.fleet_rounds = 3
        self.results = {"mode": "quick" if self.quick else "full", "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                        "config": {"rounds": self.rounds, "duration_64": self.d64, "duration_1": self.d1,
                                   "warmup": self.warm, "sse_streams_per_round": self.sse_streams,
                                   "sched_rounds": self.sched_rounds, "sched_requests": self.sched_n,
                                   "sched_scale": self.sched_scale, "fleet_rounds": self.fleet_rounds,
                                   "cpu_proxy": self.cpu_proxy, "cpu_load": self.cpu_load}}

    # -- helpers -----------------------------------------------------------------
    def path(self, name):
        return os.path.join(self.out, name)

    def start_coordinator(self, name, extra, cpus, stderr=None):
        cmd = [self.coordinator, "--coordinator-host", "127.0.0.1", "--coordinator-port",
               str(self.ports["COORD"] + self._coord_seq())] + extra
        p = self.procs.start(name, cmd, cpus=cpus, stderr=stderr, stdout=stderr)
        p.bench_port = int(cmd[cmd.index("--coordinator-port") + 1])
        return p

    def _coord_seq(self):
        # A fresh port per coordinator start (no TIME_WAIT games), cycling over 10.
        self._seq = (getattr(self, "_seq", -1) + 1) % 10
        return self._seq

    def attach_args(self, keys):
        return [a for i, k in enumerate(keys) for a in ("--upstream", f"{k.lower()}=http://127.0.0.1:{self.ports[k]}")]

    def wrk(self, port, conns, duration, sample=None):
        """One wrk run (one thread, pinned to the load core). `sample()` runs mid-run."""
        cmd = ["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--timeout", "5s",
               "-s", os.path.join(CONF, "chat.lua"), f"http://127.0.0.1:{port}/v1/chat/completions"]
        p = self.procs.start("wrk", cmd, cpus=self.cpu_load, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        sampled = None
        try:
            if sample is not None:
                time.sleep(duration / 2.0)
                sampled = sample()
            out, err = p.communicate(timeout=duration + 30)
        finally:
            self.procs.stop(p, timeout=5)
        m = re.search(r"^BENCH_JSON (\{.*\})$", out.decode(), re.M)
        if p.returncode != 0 or not m:
            raise BenchError(f"wrk failed ({p.returncode}): {err.decode()[-500:]} {out.decode()[-500:]}")
        r = json.loads(m.group(1))
        r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
        bad = sum(r["errors"].values())
        if r["requests"] == 0 or bad > 0:
            raise BenchError(f"wrk on port {port}: {r['requests']} requests, errors {r['errors']}")
        return r, sampled

    # -- setup ---------------------------------------------------------------------
    def machine(self):
        model, info = "unknown", {}
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if not line.strip():
                        break
                    k, _, v = line.partition(":")
                    info[k.strip()] = v.strip()
            model = info.get("model name", model)
            if "cpu family" in info:
                model += f" (family {info['cpu family']}, model {info.get('model')}, {info.get('cpu MHz', '?')} MHz)"
        except OSError:
            pass
        mem = None
        try:
            with open("/proc/meminfo") as f:
                mem = int(f.readline().split()[1]) / 1024 / 1024
        except (OSError, ValueError, IndexError):
            pass

        def version(cmd, pattern):
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
                m = re.search(pattern, r.stdout + r.stderr)
                return m.group(1) if m else None
            except OSError:
                return None
        try:
            commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                    text=True, timeout=10).stdout.strip()
            dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "src", "include"],
                                   capture_output=True, text=True, timeout=10).stdout.strip() != ""
        except OSError:
            commit, dirty = None, False
        hypervisor = None
        try:
            r = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10)
            m = re.search(r"Hypervisor vendor:\s*(\S+)", r.stdout)
            hypervisor = m.group(1) if m else None
        except OSError:
            pass
        debian = None
        try:
            with open("/etc/debian_version") as f:
                debian = f.read().strip()
        except OSError:
            pass
        return {"cpus": os.cpu_count(), "cpu_model": model, "hypervisor": hypervisor, "mem_gib": mem,
                "kernel": platform.release(), "debian": debian,
                "nginx": version(["nginx", "-v"], r"nginx/(\S+)"),
                "haproxy": version(["haproxy", "-v"], r"version (\S+)"),
                "wrk": version(["wrk", "-v"], r"wrk (\S+)"),
                "python": platform.python_version(), "commit": commit, "src_dirty": dirty}

    def setup(self):
        self.sse_state = self.path("fake-state")
        os.makedirs(self.sse_state, exist_ok=True)
        tmp = self.path("nginx-tmp")
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(tmp, sub), exist_ok=True)
        fields = dict(self.ports)
        fields.update({"TMP": tmp, "CHAT_JSON": chat_json()})
        # Upstreams: one nginx (one worker) on the load core, with wrk.
        conf = render("nginx-upstreams.conf.in", self.path("nginx-upstreams.conf"),
                      dict(fields, PID=self.path("nginx-upstreams.pid"), ERRLOG=self.path("nginx-upstreams.err")))
        self.upstreams = self.procs.start("nginx-upstreams", ["nginx", "-p", tmp, "-e", self.path("nginx-upstreams.err"),
                                                              "-c", conf], cpus=self.cpu_load,
                                          stderr=self.path("nginx-upstreams.err"))
        # Fake children (standalone, the same flags the coordinator would give them), on the load core.
        self.fakes = []
        # The SSE children share the proxy's core, so that direct, a child's write never wakes the
        # Python client on the child's own core (which would lengthen the direct gaps); the
        # scheduling children sit with the load.
        for group, serial, cpus in (("F", False, self.cpu_proxy), ("S", True, self.cpu_load)):
            for i in range(4):
                name = f"{group.lower()}{i}"
                profile = self.path(f"profile-{name}.json")
                with open(profile, "w") as f:
                    # Real-like children, minus what only slows a benchmark down: start-up and
                    # stop delays, the gap between streams (docs/fake-child-contract.md).
                    json.dump({"cookies": [], "_fake": {"serial": serial, "spawn_grandchild": False,
                                                        "startup_delay": 0.2, "stop_delay": 0.2,
                                                        "stream_proxy_join": 0.2, "stream_pacing": False}}, f)
                port = self.ports[f"{group}{i}"]
                # Each fake binds its stream port (the real stream proxy): two ports of its own.
                aux = self.ports["FAKE_AUX"] + 2 * len(self.fakes)
                env = dict(os.environ, FAKE_CHILD_STATE_DIR=self.sse_state) if group == "F" else None
                self.fakes.append(self.procs.start(
                    f"fake-{name}", [self.python, FAKE_CHILD, "--server-port", str(port), "--stream-port",
                                     str(aux), "--camoufox-debug-port", str(aux + 1), "--active-auth-json", profile,
                                     "--headless"],
                    cpus=cpus, stdout=self.path(f"fake-{name}.log"), stderr=self.path(f"fake-{name}.log"), env=env))
        # Peers, on the proxy core.
        conf = render("nginx-proxy.conf.in", self.path("nginx-proxy.conf"),
                      dict(fields, PID=self.path("nginx-proxy.pid"), ERRLOG=self.path("nginx-proxy.err")))
        self.nginx = self.procs.start("nginx-proxy", ["nginx", "-p", tmp, "-e", self.path("nginx-proxy.err"),
                                                      "-c", conf], cpus=self.cpu_proxy,
                                      stderr=self.path("nginx-proxy.err"))
        conf = render("haproxy.cfg.in", self.path("haproxy.cfg"), fields)
        self.haproxy = self.procs.start("haproxy", ["haproxy", "-db", "-f", conf], cpus=self.cpu_proxy,
                                        stdout=self.path("haproxy.log"), stderr=self.path("haproxy.log"))
        for k in ("U0", "U1", "U2", "U3", "F0", "F1", "F2", "F3", "S0", "S1", "S2", "S3"):
            wait_health_ok(self.ports[k])
        for what, port in (("nginx", self.ports["NGINX_FAST"]), ("haproxy", self.ports["HAPROXY_FAST"]),
                           ("nginx sse", self.ports["NGINX_SSE"]), ("haproxy sse", self.ports["HAPROXY_SSE"]),
                           ("haproxy sched", self.ports["HAPROXY_SCHED"])):
            wait_until(what, lambda port=port: http_request(port, "GET", "/v1/models", timeout=1)[0] == 200, 20)
        log(f"upstreams, fake children, nginx and HAProxy up (ports from {self.ports['U0']})")

    # -- proxy overhead ------------------------------------------------------------
    def overhead(self):
        coord = self.start_coordinator("coordinator", self.attach_args(["U0", "U1", "U2", "U3"]) +
                                       ["--max-inflight-per-child", "1000"], self.cpu_proxy)
        try:
            wait_coordinator_ready(coord.bench_port, 4, proc=coord)
            time.sleep(0.3)
            idle_rss = rss_mib([coord.pid])
            targets = {"direct": self.ports["U0"], "coordinator": coord.bench_port,
                       "nginx": self.ports["NGINX_FAST"], "haproxy": self.ports["HAPROXY_FAST"]}
            pids = {"direct": lambda: [self.upstreams.pid] + [k for k, _ in children_of(self.upstreams.pid)],
                    "coordinator": lambda: [coord.pid],
                    "nginx": lambda: [self.nginx.pid] + [k for k, _ in children_of(self.nginx.pid)],
                    "haproxy": lambda: [self.haproxy.pid]}
            sizes = {name: check_post(port, name) for name, port in targets.items()}
            log(f"answer sizes: {sizes}")
            for name, port in targets.items():
                self.wrk(port, 64, self.warm)
            raw = {name: {"c64": [], "c1": []} for name in targets}
            for r in range(self.rounds):
                for conns, duration in ((64, self.d64), (1, self.d1)):
                    for name, port in targets.items():
                        ps = pids[name]()
                        cpu0 = cpu_split(ps)
                        t0, busy0, own0 = time.monotonic(), busy_cpu_seconds(), self.procs.own_cpu_seconds()
                        res, rss = self.wrk(port, conns, duration, sample=lambda: rss_mib(pids[name]()))
                        # Other processes' CPU during this run, in cores (the benchmark's own subtracted).
                        res["foreign_cores"] = max(0.0, ((busy_cpu_seconds() - busy0) - (self.procs.own_cpu_seconds() - own0))
                                                   / (time.monotonic() - t0))
                        cpu1 = cpu_split(ps)
                        res["cpu_s"] = sum(cpu1) - sum(cpu0)
                        res["cpu_s_per_10k"] = res["cpu_s"] / res["requests"] * 1e4
                        # User space against the kernel's loopback TCP, which every proxy pays alike.
                        res["user_s_per_10k"] = (cpu1[0] - cpu0[0]) / res["requests"] * 1e4
                        res["system_s_per_10k"] = (cpu1[1] - cpu0[1]) / res["requests"] * 1e4
                        res["rss_mib_under_load"] = rss
                        raw[name][f"c{conns}"].append(res)
                        log(f"round {r + 1}/{self.rounds} c{conns} {name:12s} {res['rps']:9.0f} req/s  "
                            f"p50 {res['p50_us']:6d} us  p99 {res['p99_us']:6d} us  cpu/10k {res['cpu_s_per_10k']:.3f} s  "
                            f"(others: {res['foreign_cores']:.2f} cores)")
            hwm = status_kb(coord.pid, "VmHWM")
        finally:
            self.procs.stop(coord)
        figs = {}
        for name in targets:
            f = {}
            for c in ("c64", "c1"):
                runs = raw[name][c]
                f[c] = {k: summary([run[k] for run in runs]) for k in
                        ("rps", "p50_us", "p99_us", "mean_us", "cpu_s_per_10k", "user_s_per_10k",
                         "system_s_per_10k", "rss_mib_under_load")}
                if name != "direct":
                    d = raw["direct"][c]
                    f[c]["added_p50_us"] = summary([run["p50_us"] - d[i]["p50_us"] for i, run in enumerate(runs)])
                    f[c]["added_p99_us"] = summary([run["p99_us"] - d[i]["p99_us"] for i, run in enumerate(runs)])
            figs[name] = f
        self.results["overhead"] = {"targets": list(targets), "answer_bytes": sizes, "raw": raw, "figures": figs,
                                    "coordinator_idle_rss_mib_attach4": idle_rss,
                                    "coordinator_vmhwm_mib": hwm / 1024.0 if hwm else None}

    # -- SSE -------------------------------------------------------------------------
    async def _sse_worker(self, ports, k, count, out):
        port = ports[k % len(ports)]  # direct: worker k talks to child k (same load per child as via a proxy)
        await asyncio.sleep(k * 0.0125)  # staggered over the 50 ms chunk interval: independent samples
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        body = b'{"model":"fake-model","stream":true,"messages":[{"role":"user","content":"Say hello."}]}'
        req = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
               f"Accept: text/event-stream\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
        # The real child's chunk id is chatcmpl-{req_id}-{ts}-{rand}; the fake's content
        # "chunk{n} " gives the chunk's number (its chunk_sent record has the same n).
        event_id = re.compile(rb'"id":"chatcmpl-([a-z0-9]{7})-[0-9-]+".*"content":"chunk([0-9]+) ')
        try:
            for _ in range(count):
                # Wall-clock times (time.time), comparable with the child's own chunk_sent events.
                t0 = time.time()
                writer.write(req)
                await writer.drain()
                status, headers = await read_head(reader)
                if status != 200:
                    raise BenchError(f"SSE on {port}: status {status}")
                received = []  # (req_id, n, time read)
                buf = b""
                async for _t, data in read_body_timed(reader, headers):
                    t = time.time()
                    buf += data
                    while b"\n\n" in buf:
                        event, buf = buf.split(b"\n\n", 1)
                        m = event_id.search(event)
                        if m and b'"content"' in event:
                            received.append((m.group(1).decode(), int(m.group(2)), t))
                if len(received) < 2:
                    raise BenchError(f"SSE on {port}: {len(received)} content events")
                times = [t for _, _, t in received]
                out.append({"ttfc_ms": (times[0] - t0) * 1e3,
                            "gap_ms": (times[-1] - times[0]) / (len(times) - 1) * 1e3,
                            "events": len(times), "req_id": received[0][0],
                            "received": [(n, t) for _, n, t in received]})
        finally:
            writer.close()

    def sse_run(self, ports, streams, conc=4):
        out = []

        async def main():
            per = [streams // conc + (1 if i < streams % conc else 0) for i in range(conc)]
            await asyncio.wait_for(asyncio.gather(*(self._sse_worker(ports, k, n, out) for k, n in enumerate(per) if n)),
                                   timeout=30 + streams * 2)
        asyncio.run(main())
        # When the child sent each chunk (its events file, written just after each chunk): the gap at the
        # child, so that what the path adds to the gap is known apart from the child's own timer jitter.
        sent = {}
        for name in os.listdir(self.sse_state):
            if name.endswith(".events.jsonl"):
                with open(os.path.join(self.sse_state, name)) as f:
                    for line in f:
                        if '"chunk_sent"' in line:
                            e = json.loads(line)
                            sent[(e["req_id"], e["n"])] = e["t"]
        for s in out:
            pairs = [(sent.get((s["req_id"], n)), t) for n, t in s.pop("received")]
            if any(ts is None for ts, _ in pairs):
                raise BenchError(f"SSE: the child's chunk_sent events for {s['req_id']} are missing")
            s["child_gap_ms"] = (pairs[-1][0] - pairs[0][0]) / (len(pairs) - 1) * 1e3
            s["path_gap_ms"] = s["gap_ms"] - s["child_gap_ms"]
        return out

    def sse(self):
        coord = self.start_coordinator("coordinator-sse", self.attach_args(["F0", "F1", "F2", "F3"]) +
                                       ["--max-inflight-per-child", "1000"], self.cpu_proxy,
                                       stderr=self.path("coordinator-sse.log"))
        keys = ("ttfc_ms", "gap_ms", "child_gap_ms", "path_gap_ms")
        try:
            wait_coordinator_ready(coord.bench_port, 4, proc=coord)
            targets = {"direct": [self.ports[f"F{i}"] for i in range(4)], "coordinator": [coord.bench_port],
                       "nginx": [self.ports["NGINX_SSE"]], "haproxy": [self.ports["HAPROXY_SSE"]]}
            for name, port in targets.items():  # warm-up: connections, code paths
                self.sse_run(port, 4)
            raw = {name: [] for name in targets}
            for r in range(self.rounds):
                for name, port in targets.items():
                    streams = self.sse_run(port, self.sse_streams)
                    rec = {k: (statistics.median if k == "ttfc_ms" else statistics.mean)(
                        s[k] for s in streams) for k in keys}
                    rec["events"] = min(s["events"] for s in streams)
                    rec["streams"] = streams
                    raw[name].append(rec)
                    log(f"round {r + 1}/{self.rounds} SSE {name:12s} first chunk {rec['ttfc_ms']:.2f} ms  "
                        f"gap {rec['gap_ms']:.3f} ms (child {rec['child_gap_ms']:.3f}, path {rec['path_gap_ms']:+.3f})  "
                        f"({rec['events']} events)")
        finally:
            self.procs.stop(coord)
        figs = {}
        for name in targets:
            runs = raw[name]
            f = {k: summary([x[k] for x in runs]) for k in keys}
            if name != "direct":
                d = raw["direct"]
                f["added_ttfc_ms"] = summary([x["ttfc_ms"] - d[i]["ttfc_ms"] for i, x in enumerate(runs)])
                # The gap a proxy adds: its path's share of the gap, less the direct path's.
                f["added_gap_ms"] = summary([x["path_gap_ms"] - d[i]["path_gap_ms"] for i, x in enumerate(runs)])
            figs[name] = f
        self.results["sse"] = {"targets": list(targets), "raw": raw, "figures": figs}

    # -- scheduling --------------------------------------------------------------------
    def workload(self):
        """Durations (80% short, 20% long) and Poisson arrivals, from a fixed seed.

        The arrival times are rescaled so that this sample's offered load is exactly
        SCHED_LOAD of the fleet's capacity (its own mean duration, its own mean gap)."""
        rng = random.Random(SCHED_SEED)
        scale = self.sched_scale
        durations = [(SCHED_LONG if rng.random() < SCHED_LONG_SHARE else SCHED_SHORT) * scale
                     for _ in range(self.sched_n)]
        rate = SCHED_LOAD * SCHED_SERVERS / statistics.mean(durations)
        gaps = [rng.expovariate(rate) for _ in range(self.sched_n - 1)]
        k = (1.0 / rate) / statistics.mean(gaps)
        arrivals = [0.0]
        for g in gaps:
            arrivals.append(arrivals[-1] + g * k)
        return arrivals, durations, rate

    @staticmethod
    def ideal(arrivals, durations, servers=SCHED_SERVERS):
        """FIFO queue feeding `servers` servers, no overhead: latencies and time to finish all."""
        free = [0.0] * servers
        lat, end = [], 0.0
        for a, d in zip(arrivals, durations):
            start = max(a, heapq.heappop(free))
            heapq.heappush(free, start + d)
            lat.append(start + d - a)
            end = max(end, start + d)
        return lat, end - arrivals[0]

    async def _sched_one(self, port, t0, arrival, duration, out, i):
        await asyncio.sleep(max(0.0, t0 + arrival - time.perf_counter()))
        sent = time.perf_counter()
        body = json.dumps({"model": "fake-model", "messages": [{"role": "user", "content": "Say hello."}],
                           "fake_duration": duration}).encode()
        req = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
               f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(req)
            await writer.drain()
            status, headers = await read_head(reader)
            async for _t, _d in read_body_timed(reader, headers):
                pass
            done = time.perf_counter()
        finally:
            writer.close()
        out[i] = {"status": status, "latency": done - (t0 + arrival), "late_send": sent - (t0 + arrival),
                  "child": headers.get("x-fake-child"), "done": done - t0}

    def sched_run(self, port, arrivals, durations):
        out = [None] * len(arrivals)

        async def main():
            t0 = time.perf_counter() + 0.2
            await asyncio.wait_for(asyncio.gather(*(self._sched_one(port, t0, a, d, out, i) for i, (a, d) in
                                                     enumerate(zip(arrivals, durations)))),
                                   timeout=arrivals[-1] + sum(durations) + 60)
        asyncio.run(main())
        bad = [o for o in out if o is None or o["status"] != 200]
        if bad:
            raise BenchError(f"scheduling on {port}: {len(bad)} requests failed: {bad[:3]}")
        lat = [o["latency"] for o in out]
        return {"latencies": lat, "p50": pct(lat, 50), "p99": pct(lat, 99), "mean": statistics.mean(lat),
                "finish_all": max(o["done"] for o in out) - arrivals[0],
                "max_late_send": max(o["late_send"] for o in out),
                "per_child": {c: sum(1 for o in out if o["child"] == c) for c in sorted({o["child"] for o in out})}}

    def scheduling(self):
        arrivals, durations, rate = self.workload()
        ideal_lat, ideal_end = self.ideal(arrivals, durations)
        ideal = {"latencies": ideal_lat, "p50": pct(ideal_lat, 50), "p99": pct(ideal_lat, 99),
                 "mean": statistics.mean(ideal_lat), "finish_all": ideal_end}
        log(f"scheduling: {len(arrivals)} requests at {rate:.2f}/s, {sum(1 for d in durations if d > 0.5 * self.sched_scale * 2)} long; "
            f"ideal p50 {ideal['p50']:.3f} s p99 {ideal['p99']:.3f} s all done {ideal_end:.1f} s")
        s_args = self.attach_args(["S0", "S1", "S2", "S3"])
        variants = {"coordinator": [], "coordinator-rr": ["--balance", "round-robin"]}
        names = ["coordinator", "coordinator-rr", "haproxy"]
        raw = {n: [] for n in names}
        for r in range(self.sched_rounds):
            for name in names:
                coord = None
                try:
                    if name in variants:
                        coord = self.start_coordinator(name, s_args + variants[name], self.cpu_proxy,
                                                       stderr=self.path(f"{name}-sched.log"))
                        wait_coordinator_ready(coord.bench_port, 4, proc=coord)
                        port = coord.bench_port
                    else:
                        port = self.ports["HAPROXY_SCHED"]
                    res = self.sched_run(port, arrivals, durations)
                finally:
                    if coord is not None:
                        self.procs.stop(coord)
                raw[name].append(res)
                log(f"round {r + 1}/{self.sched_rounds} scheduling {name:15s} p50 {res['p50']:.3f} s  "
                    f"p99 {res['p99']:.3f} s  all done {res['finish_all']:.1f} s  per child {res['per_child']}")
                time.sleep(0.3)
        figs = {n: {k: summary([x[k] for x in raw[n]]) for k in ("p50", "p99", "mean", "finish_all")} for n in names}
        self.results["scheduling"] = {
            "seed": SCHED_SEED, "requests": len(arrivals), "rate_per_s": rate, "scale": self.sched_scale,
            "short_s": SCHED_SHORT * self.sched_scale, "long_s": SCHED_LONG * self.sched_scale,
            "long_count": sum(1 for d in durations if d == SCHED_LONG * self.sched_scale),
            "arrivals": arrivals, "durations": durations, "ideal": ideal, "raw": raw, "figures": figs,
            "targets": names}

    # -- fleet: start-up and idle memory (spawn mode) ------------------------------------------
    def fleet(self):
        sizes = [4, 32, 64]
        raw = {n: [] for n in sizes}
        for n in sizes:
            d = self.path(f"profiles-{n}")
            os.makedirs(d, exist_ok=True)
            for i in range(n):
                with open(os.path.join(d, f"acct{i:03d}.json"), "w") as f:
                    # The fake's own start-up and stop delays (seconds, like a real browser's)
                    # would hide the coordinator's share: small ones, as in the tests.
                    json.dump({"cookies": [], "origins": [],
                               "_fake": {"startup_delay": 0.2, "stop_delay": 0.2, "stream_proxy_join": 0.2}}, f)
        for r in range(self.fleet_rounds):
            for n in sizes:
                logfile = self.path(f"fleet-{n}-{r}.log")
                port = self.ports["COORD"] + self._coord_seq()
                cmd = [self.coordinator, "--coordinator-host", "127.0.0.1", "--coordinator-port", str(port),
                       "--profiles", self.path(f"profiles-{n}"), "--launcher", FAKE_CHILD, "--python", self.python,
                       "--base-api-port", str(self.ports["SPAWN_API"]),
                       "--base-stream-port", str(self.ports["SPAWN_STREAM"]),
                       "--base-camoufox-port", str(self.ports["SPAWN_CAMOUFOX"]),
                       "--log-dir", self.path("fleet-child-logs"), "--start-stagger", "0"]
                t0 = time.perf_counter()
                p = self.procs.start(f"coordinator-fleet-{n}", cmd, cpus=self.cpu_all, stderr=logfile, stdout=logfile)
                try:
                    t_listen = None
                    deadline = time.monotonic() + 10
                    while t_listen is None and time.monotonic() < deadline:
                        try:
                            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                                t_listen = time.perf_counter() - t0
                        except OSError:
                            if p.poll() is not None:
                                raise BenchError(f"coordinator ({n} children) exited with {p.returncode}")
                            time.sleep(0.001)
                    if t_listen is None:
                        raise BenchError(f"coordinator ({n} children) not listening after 10 s")
                    wait_coordinator_ready(port, n, timeout=120, proc=p)
                    t_ready = time.perf_counter() - t0
                    time.sleep(2.0 if not self.quick else 1.0)
                    rss = rss_mib([p.pid])
                    pss = None
                    try:
                        with open(f"/proc/{p.pid}/smaps_rollup") as f:
                            for line in f:
                                if line.startswith("Pss:"):
                                    pss = int(line.split()[1]) / 1024.0
                    except OSError:
                        pass
                    # The orphan guard is a fork of the coordinator (comm "coordinator-gd").
                    guard = [k for k, c in children_of(p.pid) if c and c.startswith("coordinator")]
                    guard_rss = rss_mib(guard) if guard else None
                finally:
                    t_stop0 = time.perf_counter()
                    self.procs.stop(p, timeout=40)
                    t_stop = time.perf_counter() - t_stop0
                own = None
                with open(logfile, errors="replace") as f:
                    m = re.search(r"all \d+ children ready in ([0-9.]+) s", f.read())
                    own = float(m.group(1)) if m else None
                rec = {"listen_ms": t_listen * 1e3, "ready_s": t_ready, "ready_s_own_log": own, "rss_mib": rss,
                       "pss_mib": pss, "guard_rss_mib": guard_rss, "stop_s": t_stop}
                raw[n].append(rec)
                log(f"round {r + 1}/{self.fleet_rounds} fleet {n:2d} children: listening {rec['listen_ms']:.1f} ms, "
                    f"all ready {t_ready:.2f} s, idle RSS {rss:.1f} MiB (guard {guard_rss}), stopped in {t_stop:.2f} s")
                time.sleep(0.5)
                self.check_no_leftover_children(n)
        figs = {n: {k: summary([x[k] for x in raw[n]]) for k in ("listen_ms", "ready_s", "ready_s_own_log",
                                                                   "rss_mib", "pss_mib", "guard_rss_mib", "stop_s")}
                for n in sizes}
        self.results["fleet"] = {"sizes": sizes, "raw": raw, "figures": figs}

    def check_no_leftover_children(self, n):
        base = self.ports["SPAWN_API"]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if all(port_free(base + i) for i in range(n)):
                return
            time.sleep(0.1)
        raise BenchError(f"a spawned fake child still holds a port in {base}..{base + n - 1} after stop")

    # -- all ---------------------------------------------------------------------------------
    def run(self):
        t_begin = time.monotonic()
        self.results["machine"] = self.machine()
        if self.cpu_load is not None:
            os.sched_setaffinity(0, {int(self.cpu_load)})  # this script is the SSE and scheduling client
        sections = self.args.only or ["fleet", "overhead", "sse", "scheduling"]
        self.ports = allocate_ports(self.args.port_base)
        self.results["loadavg"] = {}
        self.results["foreign_cores"] = {}
        mark = {}

        def loadavg(when):
            """Notes the load average, and how many cores other processes kept busy since the last mark."""
            try:
                with open("/proc/loadavg") as f:
                    self.results["loadavg"][when] = [float(x) for x in f.read().split()[:3]]
                now = (time.monotonic(), busy_cpu_seconds(), self.procs.own_cpu_seconds())
                if mark:
                    wall = now[0] - mark["t"][0]
                    foreign = (now[1] - mark["t"][1]) - (now[2] - mark["t"][2])
                    self.results["foreign_cores"][mark["name"]] = max(0.0, foreign / wall) if wall > 0 else None
                mark.update(t=now, name=when)
            except (OSError, ValueError):
                pass
        try:
            if "fleet" in sections:
                log("== fleet: start-up and idle memory in spawn mode")
                loadavg("fleet")
                self.fleet()
            if set(sections) & {"overhead", "sse", "scheduling"}:
                self.setup()
            if "overhead" in sections:
                log("== proxy overhead")
                loadavg("overhead")
                self.overhead()
            if "sse" in sections:
                log("== SSE")
                loadavg("sse")
                self.sse()
            if "scheduling" in sections:
                log("== scheduling")
                loadavg("scheduling")
                self.scheduling()
            loadavg("end")
        finally:
            self.procs.stop_all()
            self.results["elapsed_s"] = time.monotonic() - t_begin
            with open(self.path("results.json"), "w") as f:
                json.dump(self.results, f, indent=1)
        log(f"results in {self.path('results.json')} ({self.results['elapsed_s']:.0f} s)")


# ---------------------------------------------------------------------------
# minimal HTTP/1.1 response reading (asyncio)
async def read_head(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return status, headers


async def read_body_timed(reader, headers):
    """Yields (time it arrived, bytes) for each piece of the body."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            line = await reader.readuntil(b"\r\n")
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return
            data = await reader.readexactly(size + 2)
            yield time.perf_counter(), data[:-2]
    elif "content-length" in headers:
        left = int(headers["content-length"])
        while left > 0:
            data = await reader.read(min(left, 65536))
            if not data:
                raise BenchError("connection closed inside a body")
            left -= len(data)
            yield time.perf_counter(), data
    else:
        while True:
            data = await reader.read(65536)
            if not data:
                return
            yield time.perf_counter(), data


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a second or two per figure, one round (CI)")
    ap.add_argument("--results", default=None, help="results folder (default bench/results/full or /quick)")
    ap.add_argument("--coordinator", default=os.path.join(ROOT, "build", "coordinator"))
    ap.add_argument("--rounds", type=int, default=5, help="rounds of the overhead and SSE figures (full mode)")
    ap.add_argument("--port-base", type=int, default=int(os.environ.get("BENCH_PORT_BASE", "20000")))
    ap.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    ap.add_argument("--only", nargs="+", choices=["fleet", "overhead", "sse", "scheduling"],
                    help="run only these sections")
    args = ap.parse_args()
    if args.results is None:
        args.results = os.path.join(BENCH, "results", "quick" if args.quick else "full")
    if args.rounds < 3 and not args.quick:
        ap.error("--rounds must be at least 3")
    if not os.access(args.coordinator, os.X_OK):
        ap.error(f"{args.coordinator} is not an executable (build it: scripts/build.sh)")

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    bench = Bench(args)
    try:
        bench.run()
    except BenchError as e:
        log(f"FAILED: {e}")
        return 1
    except KeyboardInterrupt as e:
        log(f"interrupted ({e})")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
