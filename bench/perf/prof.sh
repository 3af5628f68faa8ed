#!/bin/bash
# prof.sh BIN|nginx OUTDIR : perf (dwarf) + strace -c under wrk -c64
set -u
bin=$1; out=$2; mkdir -p "$out"
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)" || exit
if [ "$bin" = nginx ]; then python3 bench/ab.py --serve-nginx --port-base 21200 --work /tmp/perfw/serve > "$out"/serve.json &
else python3 bench/ab.py --serve "$bin" --port-base 21200 --work /tmp/perfw/serve > "$out"/serve.json & fi
spid=$!
for _ in $(seq 100); do [ -s "$out"/serve.json ] && break; sleep 0.3; done
pid=$(python3 -c "import json;print(json.load(open('$out/serve.json'))['pid'])")
port=$(python3 -c "import json;print(json.load(open('$out/serve.json'))['port'])")
echo "pid $pid port $port"
# perf
taskset -c 1 wrk -t1 -c64 -d12s -s bench/conf/chat.lua http://127.0.0.1:"$port"/v1/chat/completions > "$out"/wrk-perf.txt &
wpid=$!
sleep 2
perf record -F 999 -g --call-graph dwarf,16384 -o "$out"/perf.data -p "$pid" -- sleep 8 2> "$out"/perf-record.err
wait $wpid
# strace over the whole of one wrk run: calls / wrk's request count
strace -c -f -p "$pid" -o "$out"/strace.txt &
stpid=$!
sleep 1
taskset -c 1 wrk -t1 -c64 -d5s -s bench/conf/chat.lua http://127.0.0.1:"$port"/v1/chat/completions > "$out"/wrk-strace.txt
sleep 0.5
kill -INT $stpid; wait $stpid
# request count during strace: from the access log we don't have; use a counted run instead
kill -TERM $spid; wait $spid
echo "done"
