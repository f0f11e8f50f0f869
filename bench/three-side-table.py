#!/usr/bin/env python3
"""three-side-table.py OUT: the tables of a bench/three-side.sh run.

Medians over rounds of each target x mode x concurrency (results.jsonl),
ratios of Countersign to the peer and to the ceiling, CPU per request of each
server and its Redis (cores / flows per second), and the c=8 latencies
(c8.jsonl)."""
import json, os, statistics, sys

out = sys.argv[1]


def runs(name):
    p = os.path.join(out, name)
    if not os.path.exists(p):
        return []
    return [r for r in map(json.loads, open(p)) if r.get("type") == "run"]


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def group(rs):
    g = {}
    for r in rs:
        g.setdefault((r["target"], r["concurrency"]), []).append(r)
    return g


main = group(runs("results.jsonl"))
if main:
    print("| flow | c | Countersign | peer | ceiling | ÷ peer | ÷ ceiling | errors (cs/peer/ceiling) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for kind, label in (("bc", "bc-authorize only"), ("ping", "full ping flow")):
        for c in sorted({c for (_, c) in main}):
            v = {s: med(r["flows_per_s"] for r in main.get((f"{s}-{kind}", c), [])) for s in ("countersign", "peer", "ceiling")}
            e = "/".join(str(sum(r["error_total"] for r in main.get((f"{s}-{kind}", c), []))) for s in ("countersign", "peer", "ceiling"))
            print(f"| {label} | {c} | {v['countersign']:,.0f}/s | {v['peer']:,.0f}/s | {v['ceiling']:,.0f}/s | "
                  f"**{v['countersign'] / v['peer']:.2f}** | **{v['countersign'] / v['ceiling']:.2f}** | {e} |")
    print()
    print("CPU per request (medians of cores ÷ flows/s, µs), p50 / p99 ms of bc-authorize and of the whole flow:")
    print()
    print("| target | c | server µs | its Redis µs | bc p50 / p99 ms | flow p50 / p99 ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    for (t, c), rs in sorted(main.items(), key=lambda kv: (kv[0][0].split("-")[1], kv[0][1], kv[0][0])):
        srv = med(r["server"]["cpu_cores"] / r["flows_per_s"] * 1e6 for r in rs if r.get("server"))
        aux = med(r["aux"]["cpu_cores"] / r["flows_per_s"] * 1e6 for r in rs if r.get("aux"))
        bc = f"{med(r['bc_authorize_ms']['p50'] for r in rs):.1f} / {med(r['bc_authorize_ms']['p99'] for r in rs):.1f}"
        fl = f"{med(r['flow_ms']['p50'] for r in rs):.1f} / {med(r['flow_ms']['p99'] for r in rs):.1f}" if "ping" in t else "–"
        print(f"| {t} | {c} | {srv:.0f} | {aux:.0f} | {bc} | {fl} |")
    print()

c8 = group(runs("c8.jsonl"))
if c8:
    print("Countersign alone at c=8 (medians of per-round percentiles):")
    print()
    print("| target | flows/s | bc p50 / p99 ms | approval-to-ping p50 / p99 ms | errors |")
    print("| --- | --- | --- | --- | --- |")
    for (t, c), rs in sorted(c8.items()):
        ping = f"{med(r['ping_delay_ms']['p50'] for r in rs):.2f} / {med(r['ping_delay_ms']['p99'] for r in rs):.2f}" if "ping" in t else "–"
        print(f"| {t} | {med(r['flows_per_s'] for r in rs):,.0f} | {med(r['bc_authorize_ms']['p50'] for r in rs):.2f} / "
              f"{med(r['bc_authorize_ms']['p99'] for r in rs):.2f} | {ping} | {sum(r['error_total'] for r in rs)} |")
