#!/usr/bin/env python3
"""Measure what the coordinator adds to a streamed chat completion (not a test).

The fake child streams 20 chunks 50 ms apart.  For each run, over a fresh connection:
* time to first chunk (TTFC): request sent -> first content chunk received;
* mean inter-chunk gap: (last chunk - first chunk) / 19.
Runs alternate between the child's own port (direct) and the coordinator, 10 each by
default; medians (and min/max) are printed with the difference coordinator - direct.

Usage:  cd tests/integration && python3 measure_stream.py [--runs N] [--json]
Python 3 standard library only; uses harness.Coordinator and harness.SSEStream.
"""

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (  # noqa: E402
    COORDINATOR_BIN, Coordinator, SSEStream, binary_available, content_chunks, data_lines, is_done)

N_CHUNKS = 20
INTERVAL = 0.05


def one_run(port):
    with SSEStream(port, timeout=10) as s:
        status = s.read_head(10)
        lines = s.read_to_end(10)
    if status != 200:
        raise RuntimeError(f"status {status}")
    chunks = content_chunks(lines)
    dl = data_lines(lines)
    if len(chunks) != N_CHUNKS or not dl or not is_done(dl[-1][1]):
        raise RuntimeError(f"incomplete stream: {len(chunks)} chunks")
    ttfc = chunks[0][0] - s.t_sent
    gap = (chunks[-1][0] - chunks[0][0]) / (len(chunks) - 1)
    return ttfc, gap


def summary(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--json", action="store_true", help="also print the numbers as JSON")
    args = ap.parse_args()
    if not binary_available():
        sys.exit(f"coordinator binary not found at {COORDINATOR_BIN}")

    profiles = {"bench": {"stream_chunks": N_CHUNKS, "stream_interval": INTERVAL}}
    results = {"direct": {"ttfc": [], "gap": []}, "coordinator": {"ttfc": [], "gap": []}}
    with Coordinator(profiles) as c:
        ports = {"direct": c.api_port("bench"), "coordinator": c.port}
        for port in ports.values():  # warm-up, not counted
            one_run(port)
        for _ in range(args.runs):
            for path, port in ports.items():
                ttfc, gap = one_run(port)
                results[path]["ttfc"].append(ttfc)
                results[path]["gap"].append(gap)

    out = {}
    print(f"fake child: {N_CHUNKS} chunks, {INTERVAL * 1000:.0f} ms apart; "
          f"{args.runs} runs per path (alternating), fresh connection each run")
    print(f"{'path':<12} {'TTFC median':>12} {'TTFC min-max':>16} {'gap median':>12} "
          f"{'gap min-max':>16}")

    def rng(d):
        return f"{d['min'] * 1000:.2f}-{d['max'] * 1000:.2f}ms"
    for path, r in results.items():
        t, g = summary(r["ttfc"]), summary(r["gap"])
        out[path] = {"ttfc_ms": {k: v * 1000 for k, v in t.items()},
                     "gap_ms": {k: v * 1000 for k, v in g.items()}}
        print(f"{path:<12} {t['median'] * 1000:>10.2f}ms {rng(t):>16} "
              f"{g['median'] * 1000:>10.2f}ms {rng(g):>16}")
    d_ttfc = out["coordinator"]["ttfc_ms"]["median"] - out["direct"]["ttfc_ms"]["median"]
    d_gap = out["coordinator"]["gap_ms"]["median"] - out["direct"]["gap_ms"]["median"]
    out["difference_ms"] = {"ttfc_median": d_ttfc, "gap_median": d_gap}
    print(f"{'difference':<12} {d_ttfc:>+10.2f}ms {'':>16} {d_gap:>+10.2f}ms "
          f"{'':>16} (coordinator - direct, medians)")
    if args.json:
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
