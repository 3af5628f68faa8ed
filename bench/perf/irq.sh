#!/bin/bash
# irq.sh BIN OUT : instructions (callgrind Ir) per proxied request, 64 connections, user space only
set -u
bin=$1; out=$2; base=${3:-21600}
mkdir -p "$out"; cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)" || exit
python3 - "$bin" "$out" "$base" <<'PY'
import sys, os, subprocess, time, json, re, signal, shlex
sys.path.insert(0, "bench")
import ab
binary, out, base = sys.argv[1], sys.argv[2], int(sys.argv[3])
env = ab.Env(base, out + "/env")
try:
    port = base + 150
    args = ["taskset", "-c", "0", "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}/cg.out",
            *shlex.split(binary), "--coordinator-host", "127.0.0.1", "--coordinator-port", str(port), "--max-inflight-per-child", "1000"]
    for i, u in enumerate(env.up):
        args += ["--upstream", f"u{i}=http://127.0.0.1:{u}"]
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=open(out + "/vg.log", "w"), stderr=subprocess.STDOUT, start_new_session=True)
    env.procs.append(p)
    ab.wait("coordinator", lambda: len(json.loads(ab.get(port, "/health", 5)[1])["ready_children"]) == 4, 120)
    ab.wrk(port, 3)
    def count():
        try:
            body = ab.get(port, "/metrics", 10)[1].decode()
        except Exception:  # a proxy without /metrics (its upstream says 404)
            return 0
        return sum(float(m) for m in re.findall(r'^coordinator_requests_total\{route="/v1/chat/completions".*\} (\S+)$', body, re.M))
    subprocess.run(["callgrind_control", "-i", "on", str(p.pid)], capture_output=True); subprocess.run(["callgrind_control", "-z", str(p.pid)], capture_output=True)
    c0 = count()
    res = ab.wrk(port, 10)
    time.sleep(1)
    c1 = count()
    if c1 == c0:  # no coordinator_requests_total (bench/floor/floor_proxy): wrk's own count
        c0, c1 = 0, res["requests"]
    subprocess.run(["callgrind_control", "-i", "off", str(p.pid)], capture_output=True)
    subprocess.run(["callgrind_control", "-d", str(p.pid)], capture_output=True)
    time.sleep(1)
    env.stop(p)
    print(json.dumps({"requests": c1 - c0}))
    open(out + "/requests.json", "w").write(json.dumps({"requests": c1 - c0}))
finally:
    env.close()
PY
