#!/usr/bin/env python3
"""A/B of the coordinator's CPU per proxied request (the overhead figure's 64-connection run).

  bench/ab.py --bin A=/tmp/coord-A --bin B=/tmp/coord-B [--nginx] [--rounds 3] [--duration 10]
  bench/ab.py --serve /tmp/coord-A      # one coordinator under load, for perf/strace (prints its PID)
  bench/ab.py --bin floor="build-floor/floor_proxy --executor typed" ...   # PATH may carry its own flags

Four nginx upstreams (one worker, core 1) answer like bench/bench.py's; each coordinator runs in
attach mode pinned to core 0 with --max-inflight-per-child 1000, wrk -t1 -c64 on core 1 with
bench/conf/chat.lua. Per run: the proxy's CPU seconds (utime+stime) per 10,000 requests.
Targets are interleaved within each round, in a rotated order. Ports: --port-base .. +199.
"""
import argparse
import json
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
CONF = os.path.join(HERE, "conf")
sys.path.insert(0, HERE)
from bench import chat_json  # noqa: E402

TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        fields = stat[stat.rfind(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])
    return total / TCK


def children(pid):
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def render(template, dest, fields):
    text = open(os.path.join(CONF, template)).read()
    for k, v in fields.items():
        text = text.replace(f"@{k}@", str(v))
    assert not re.findall(r"@[A-Z0-9_]+@", text), template
    open(dest, "w").write(text)
    return dest


def get(port, path, timeout=1):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return r.status, r.read()


def wait(what, check, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} did not come up")


def wrk(port, duration, conns=64):
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--timeout", "5s", "-s",
                          os.path.join(CONF, "chat.lua"), f"http://127.0.0.1:{port}/v1/chat/completions"],
                         capture_output=True, text=True).stdout
    m = re.search(r"^BENCH_JSON (\{.*\})$", out, re.M)
    res = json.loads(m.group(1))
    errs = sum(res["errors"].values())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errs or non2xx:
        print(f"  !! errors {res['errors']} non2xx {non2xx and non2xx.group(1)}", flush=True)
    return res


class Env:
    def __init__(self, base, work):
        self.base, self.work = base, work
        self.procs = []
        os.makedirs(work, exist_ok=True)
        tmp = os.path.join(work, "nginx-tmp")
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(tmp, sub), exist_ok=True)
        self.up = [base + i for i in range(4)]
        self.nginx_port = base + 10
        fields = {"TMP": tmp, "CHAT_JSON": chat_json(), "U0": self.up[0], "U1": self.up[1], "U2": self.up[2],
                  "U3": self.up[3], "F0": base + 20, "F1": base + 21, "F2": base + 22, "F3": base + 23,
                  "NGINX_FAST": self.nginx_port, "NGINX_SSE": base + 11}
        conf = render("nginx-upstreams.conf.in", os.path.join(work, "up.conf"),
                      dict(fields, PID=os.path.join(work, "up.pid"), ERRLOG=os.path.join(work, "up.err")))
        self.upstream = self.start(["taskset", "-c", "1", "nginx", "-p", tmp, "-e", os.path.join(work, "up.err"),
                                    "-c", conf])
        conf = render("nginx-proxy.conf.in", os.path.join(work, "proxy.conf"),
                      dict(fields, PID=os.path.join(work, "proxy.pid"), ERRLOG=os.path.join(work, "proxy.err")))
        self.nginx = self.start(["taskset", "-c", "0", "nginx", "-p", tmp, "-e", os.path.join(work, "proxy.err"),
                                 "-c", conf])
        for p in self.up:
            wait(f"upstream {p}", lambda p=p: get(p, "/health")[0] == 200)
        wait("nginx proxy", lambda: get(self.nginx_port, "/v1/models")[0] == 200)
        self.seq = 0

    def start(self, cmd, **kw):
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True, cwd=self.work, **kw)
        self.procs.append(p)
        return p

    def stop(self, p):
        kids = children(p.pid)
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for k in kids:
            try:
                os.kill(k, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if p in self.procs:
            self.procs.remove(p)

    def coordinator(self, binary, extra=()):
        self.seq = (self.seq + 1) % 90
        port = self.base + 100 + self.seq
        command = shlex.split(binary)
        if "/" in command[0]:  # relative to where ab.py was started, not to its work directory
            command[0] = os.path.abspath(command[0])
        args = ["taskset", "-c", "0", *command, "--coordinator-host", "127.0.0.1", "--coordinator-port", str(port),
                "--max-inflight-per-child", "1000"]
        for i, u in enumerate(self.up):
            args += ["--upstream", f"u{i}=http://127.0.0.1:{u}"]
        p = self.start(args + list(extra))

        def ready():
            if p.poll() is not None:
                raise SystemExit(f"{binary} exited {p.returncode}")
            return len(json.loads(get(port, "/health")[1])["ready_children"]) == 4
        wait(binary, ready)
        return p, port

    def close(self):
        for p in list(reversed(self.procs)):
            self.stop(p)


def measure(pids, port, duration):
    c0 = cpu_seconds(pids)
    res = wrk(port, duration)
    cpu = cpu_seconds(pids) - c0
    return cpu / res["requests"] * 1e4, res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", action="append", default=[], help="NAME=PATH")
    ap.add_argument("--nginx", action="store_true")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--warm", type=int, default=2)
    ap.add_argument("--port-base", type=int, default=21000)
    ap.add_argument("--work", default="/tmp/perfw/ab")
    ap.add_argument("--serve", help="start this binary and the upstreams, print PID and port, wait for SIGINT")
    ap.add_argument("--serve-nginx", action="store_true", help="like --serve, for the nginx peer")
    ap.add_argument("--json", help="write the raw results here")
    args = ap.parse_args()
    env = Env(args.port_base, args.work)
    try:
        if args.serve or args.serve_nginx:
            if args.serve:
                p, port = env.coordinator(args.serve)
                pid = p.pid
            else:
                port, pid = env.nginx_port, children(env.nginx.pid)[0]
            wrk(port, args.warm)
            print(json.dumps({"pid": pid, "port": port}), flush=True)
            def leave(*_):
                raise KeyboardInterrupt
            signal.signal(signal.SIGTERM, leave)
            signal.signal(signal.SIGINT, leave)
            try:
                while True:
                    signal.pause()
            except KeyboardInterrupt:
                pass
            return
        targets = [tuple(b.split("=", 1)) for b in args.bin]
        if args.nginx:
            targets.append(("nginx", None))
        # Every target is started once and stays up (idle between its runs): runs can be short and
        # many, so that A and B alternate closely and drift in the machine's load cancels in the
        # paired ratios.
        live = {}
        for name, binary in targets:
            if binary is None:
                live[name] = (env.nginx_port, children(env.nginx.pid), None)
            else:
                p, port = env.coordinator(binary)
                live[name] = (port, [p.pid], p)
            wrk(live[name][0], args.warm)
        raw = {name: [] for name, _ in targets}
        for r in range(args.rounds):
            order = targets[r % len(targets):] + targets[:r % len(targets)]
            for name, _ in order:
                port, pids, _ = live[name]
                per10k, res = measure(pids, port, args.duration)
                rps = res["requests"] / (res["duration_us"] / 1e6)
                raw[name].append({"cpu_s_per_10k": per10k, "rps": rps, "p50_us": res["p50_us"],
                                  "p99_us": res["p99_us"], "requests": res["requests"]})
                print(f"round {r + 1} {name:12s} cpu/10k {per10k:.4f} s  {rps:8.0f} req/s  p50 {res['p50_us']} "
                      f"p99 {res['p99_us']} us  load {os.getloadavg()[0]:.2f}", flush=True)
        for name, (_, _, p) in live.items():
            if p is not None:
                env.stop(p)
        first = targets[0][0]
        print(f"\nover {args.rounds} rounds of {args.duration} s (ratio: paired with {first} in the same round)")
        for name, runs in raw.items():
            vals = [x["cpu_s_per_10k"] for x in runs]
            ratios = [x["cpu_s_per_10k"] / raw[first][i]["cpu_s_per_10k"] for i, x in enumerate(runs)]
            print(f"{name:12s} cpu/10k median {statistics.median(vals):.4f} s  min {min(vals):.4f}  "
                  f"ratio median {statistics.median(ratios):.3f}  req/s median "
                  f"{statistics.median(x['rps'] for x in runs):.0f}  runs: {', '.join(f'{v:.3f}' for v in vals)}")
        if args.json:
            json.dump(raw, open(args.json, "w"), indent=1)
    finally:
        env.close()


if __name__ == "__main__":
    main()
