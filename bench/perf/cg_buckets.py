#!/usr/bin/env python3
"""Exclusive user-space instructions per proxied request, by library, from bench/perf/irq.sh output.

  bench/perf/cg_buckets.py OUT [OUT ...]      # OUT: a directory irq.sh wrote (cg.out.1, requests.json)

Buckets by the source file callgrind attributes each line to, so inlined code counts where it was
written: "Beast HTTP parsers" includes what Beast's headers inlined into the caller.
"""
import json
import re
import subprocess
import sys

# (bucket, test on (source file, function)); the first that matches wins.
BUCKETS = [
    ("malloc / free / new", lambda p, f: "malloc.c" in p or "operator new" in f or "operator delete" in f),
    ("pthread mutex (scheduler lock)", lambda p, f: "pthread_mutex" in p),
    ("Beast HTTP parsers + fields", lambda p, f: "boost/beast/http" in p),
    ("timers (expires_after, clock)",
     lambda p, f: "basic_stream.hpp" in p or "timer_queue" in p or "chrono" in p or "clock_gettime" in f),
    ("Beast core (buffers)", lambda p, f: "boost/beast" in p),
    ("Asio executors (any_executor)",
     lambda p, f: "any_executor.hpp" in p or "asio/io_context.hpp" in p or "asio/execution/" in p),
    ("coroutine machinery", lambda p, f: re.search(r"asio/(impl/)?(awaitable|co_spawn|use_awaitable|redirect_error)", p)),
    ("Asio scheduler + reactor + ops", lambda p, f: "boost/asio" in p),
    ("libc memcpy / memchr", lambda p, f: "/string/" in p or "memchr" in p or "memmove" in p),
    ("libstdc++ (strings, containers)", lambda p, f: "/c++/12/" in p),
    ("logging (fmt, spdlog)", lambda p, f: "fmt" in p or "spdlog" in p),
    # Paths under the current directory come out relative; glibc's as ./malloc/..., unknown as ???.
    ("the proxy's own code", lambda p, f: not p.startswith(("/usr/", "./", "???"))),
]


def run(out_dir):
    requests = json.load(open(out_dir + "/requests.json"))["requests"]
    text = subprocess.run(["callgrind_annotate", "--threshold=100", "--auto=no", out_dir + "/cg.out.1"],
                          capture_output=True, text=True).stdout
    # irq.sh zeroes the counters mid-run, which leaves PROGRAM TOTALS wrapped: sum the lines instead.
    totals, everything = {}, 0
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \([^)]*\)\s+([^:]*):(.*)$", line)
        if not m or "PROGRAM TOTALS" in line:
            continue
        ir = int(m.group(1).replace(",", ""))
        everything += ir
        name = next((b for b, test in BUCKETS if test(m.group(2), m.group(3))), "other")
        totals[name] = totals.get(name, 0) + ir
    print(f"== {out_dir}: {everything / requests / 1000:.1f}k instructions per request over {requests:.0f} requests")
    for name, ir in sorted(totals.items(), key=lambda x: -x[1]):
        print(f"  {name:34s} {ir / requests / 1000:6.1f}k  {100 * ir / everything:5.1f}%")


if __name__ == "__main__":
    for d in sys.argv[1:]:
        run(d)
