#!/bin/bash
# sc.sh BIN|nginx OUT [PORT_BASE] : strace -c -f over one 5 s wrk -c64 run; calls per request
set -u
bin=$1; out=$2; base=${3:-21800}; mkdir -p "$out"; cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)" || exit
if [ "$bin" = nginx ]; then python3 bench/ab.py --serve-nginx --port-base "$base" --work "$out"/env > "$out"/serve.json &
else python3 bench/ab.py --serve "$bin" --port-base "$base" --work "$out"/env > "$out"/serve.json & fi
spid=$!
for _ in $(seq 100); do [ -s "$out"/serve.json ] && break; sleep 0.3; done
pid=$(python3 -c "import json;print(json.load(open('$out/serve.json'))['pid'])")
port=$(python3 -c "import json;print(json.load(open('$out/serve.json'))['port'])")
strace -c -f -p "$pid" -o "$out"/strace.txt & stpid=$!
sleep 1
taskset -c 1 wrk -t1 -c64 -d5s -s bench/conf/chat.lua http://127.0.0.1:"$port"/v1/chat/completions > "$out"/wrk.txt
sleep 0.5; kill -INT $stpid; wait $stpid
kill -TERM $spid; wait $spid
n=$(grep -o '"requests":[0-9]*' "$out"/wrk.txt | cut -d: -f2)
echo "requests $n"
awk -v n="$n" '$1 ~ /^[0-9.]+$/ && NF>=5 {name=$NF; calls=($4 ~ /^[0-9]+$/)?$4:$4; printf "%-16s %6.3f per request\n", name, calls/n}' "$out"/strace.txt | grep -v total
awk -v n="$n" '/total/ {printf "total %.3f per request\n", $4/n}' "$out"/strace.txt
