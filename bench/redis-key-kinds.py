#!/usr/bin/env python3
"""redis-key-kinds.py PORT [N]: the key kinds of a Redis (ids replaced by *),
how many keys of each, and the mean MEMORY USAGE of up to N (200) of each,
as a Markdown table, largest total first."""
import collections, re, subprocess, sys

port, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 200


def cli(*args):
    return subprocess.run(["redis-cli", "-p", port, *args], capture_output=True, text=True).stdout


kinds = collections.defaultdict(list)
for k in cli("--scan").split():
    kind = re.sub(r"\{s\d+\}", "{sNN}", k)
    kind = re.sub(r"(?<=:)[A-Za-z0-9_.@-]{16,}|user-\d+|(?<=:)\d{6,}", "*", kind)
    kinds[kind].append(k)
rows = []
for kind, keys in kinds.items():
    sample = keys[:n]
    sizes = [int(cli("memory", "usage", k, "samples", "0").strip() or 0) for k in sample]
    mean = sum(sizes) / len(sizes)
    rows.append((mean * len(keys), kind, len(keys), mean, cli("type", sample[0]).strip()))
print("| key kind | type | keys | bytes per key | bytes in all |")
print("| --- | --- | --- | --- | --- |")
for total, kind, count, mean, typ in sorted(rows, reverse=True):
    print(f"| `{kind}` | {typ} | {count:,} | {mean:,.0f} | {total:,.0f} |")
