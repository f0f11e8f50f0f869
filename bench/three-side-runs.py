#!/usr/bin/env python3
"""three-side-runs.py OUT...: one line per bench/three-side.sh run, for the
table of runs in bench/README.md: the commit, ratios to the peer and the
ceiling, CPU per bc-authorize of Countersign's server and Redis against the
ceiling's, Redis bytes per low-risk request and the c=8 latencies."""
import json, os, re, statistics, sys


def runs(d, name):
    p = os.path.join(d, name)
    return [r for r in map(json.loads, open(p)) if r.get("type") == "run"] if os.path.exists(p) else []


def med(xs):
    xs = list(xs)
    return statistics.median(xs) if xs else float("nan")


print("| run (UTC) | commit | bc c=16 ÷ peer / ÷ ceiling | bc c=64 | ping c=16 | ping c=64 | server µs per bc (ceiling) | Redis µs per bc (ceiling) | Redis B per bc | c=8 bc p99 / approval-to-ping p99 ms | errors |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for d in sys.argv[1:]:
    env = open(os.path.join(d, "env.txt")).read()
    commit = re.search(r"countersign: (\S+)", env).group(1)
    when = re.search(r"date: \S*T(\d\d:\d\d)", env).group(1)
    mem = re.search(r"bc-authorize \(20,000, INFO used_memory\): (\d+)", env)
    rs = runs(d, "results.jsonl")
    g = {}
    for r in rs:
        g.setdefault((r["target"], r["concurrency"]), []).append(r)
    f = lambda t, c: med(r["flows_per_s"] for r in g.get((t, c), []))
    cpu = lambda t, c, k: med(r[k]["cpu_cores"] / r["flows_per_s"] * 1e6 for r in g.get((t, c), []) if r.get(k))
    cells = []
    for kind, c in (("bc", 16), ("bc", 64), ("ping", 16), ("ping", 64)):
        cs = f(f"countersign-{kind}", c)
        cells.append(f"{cs / f(f'peer-{kind}', c):.2f} / {cs / f(f'ceiling-{kind}', c):.2f}")
    c8 = {}
    for r in runs(d, "c8.jsonl"):
        c8.setdefault(r["target"], []).append(r)
    bcp99 = med(r["bc_authorize_ms"]["p99"] for r in c8.get("countersign-bc", []))
    pingp99 = med(r["ping_delay_ms"]["p99"] for r in c8.get("countersign-ping", []))
    errors = sum(r["error_total"] for r in rs) + sum(r["error_total"] for v in c8.values() for r in v)
    print(f"| {when} | {commit} | " + " | ".join(cells) +
          f" | {cpu('countersign-bc', 16, 'server'):.0f} ({cpu('ceiling-bc', 16, 'server'):.0f})"
          f" | {cpu('countersign-bc', 16, 'aux'):.0f} ({cpu('ceiling-bc', 16, 'aux'):.0f})"
          f" | {mem.group(1) if mem else '–'} | {bcp99:.1f} / {pingp99:.1f} | {errors} |")
