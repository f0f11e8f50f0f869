#!/usr/bin/env bash
# two-nodes.sh: two Countersign nodes on one Redis, each loaded at once by
# its own cibaload (bc-authorize only, C in flight each, DUR), to see what
# two nodes writing the same audit chains cost: flows/s of each, errors,
# and script calls per request from Redis INFO commandstats (a write that
# finds the chain head moved by the other node is sent again).
#
#   bash bench/two-nodes.sh           # from the repo root; needs ../shared/bench
#
# Env: WORK (/tmp/countersign-threeside, shared with three-side.sh) C (16) DUR (15s) USERS (10000)
set -u
REPO=$(cd "$(dirname "$0")/.." && pwd)
SHARED_BENCH=${SHARED_BENCH:-$REPO/../shared/bench}
WORK=${WORK:-/tmp/countersign-threeside}
C=${C:-16}; DUR=${DUR:-15s}; USERS=${USERS:-10000}
[ -d "$WORK/bench" ] || { mkdir -p "$WORK" && cp -r "$SHARED_BENCH" "$WORK/bench"; } || exit 1
B=$WORK/bench
OUT=${OUT:-$B/runs/two-nodes-$(date -u +%Y%m%dT%H%M%SZ)}; mkdir -p "$OUT" "$B/bin"
(cd "$B/cibaload" && go build -o "$B/bin/cibaload" .) && (cd "$REPO" && go build -o "$B/bin/countersign" ./cmd/countersign) || exit 1
ADMIN=bench-admin-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; }
trap cleanup EXIT
redis-server --port 18383 --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 & PIDS+=($!); R=$!
sleep 0.5
for n in 1 2; do
  COUNTERSIGN_ADMIN_TOKEN=$ADMIN "$B/bin/countersign" serve --listen 127.0.0.1:1828$n --issuer http://127.0.0.1:18281 \
    --redis-url redis://127.0.0.1:18383 --dev --log-level warn \
    --rate-limit-per-client 1000000000 --rate-limit-per-ip 1000000000 >"$OUT/node$n.log" 2>&1 & PIDS+=($!)
done
N1=${PIDS[1]}; N2=${PIDS[2]}
for u in 18281 18282; do
  for _ in $(seq 150); do curl -fs http://127.0.0.1:$u/.well-known/openid-configuration >/dev/null && break; sleep 0.2; done
done
node "$REPO/bench/setup-ours.mjs" http://127.0.0.1:18281 "$ADMIN" "$USERS" 0 >"$OUT/ours.json" || exit 1
ID=$(node -p "require('$OUT/ours.json').poll.client_id"); SECRET=$(node -p "require('$OUT/ours.json').poll.client_secret")
AD='[{"type":"agent_action","action":"read","resource":"calendar"}]'
echo "date: $(date -u +%FT%TZ) load before: $(cut -d' ' -f1-3 /proc/loadavg) countersign: $(cd "$REPO" && git rev-parse --short HEAD)" | tee "$OUT/env.txt"
redis-cli -p 18383 config resetstat >/dev/null
LOADS=()
for n in 1 2; do
  pid=$N1; [ $n = 2 ] && pid=$N2
  "$B/bin/cibaload" -bc-endpoint http://127.0.0.1:1828$n/bc-authorize -token-endpoint http://127.0.0.1:1828$n/token \
    -client-id "$ID" -client-secret "$SECRET" -mode authorize-only -c "$C" -d "$DUR" -warmup 0s \
    -login-hint 'user-{rand}' -hint-cardinality "$USERS" -param 'binding_message=bench-{seq}' \
    -param "authorization_details=$AD" -server-pid $pid -aux-pid $R > "$OUT/node$n.jsonl" 2> "$OUT/node$n.txt" & LOADS+=($!)
done
wait "${LOADS[@]}"
redis-cli -p 18383 info commandstats | grep -E 'evalsha|xadd' | tee -a "$OUT/env.txt"
grep -h 'flows/s' "$OUT"/node?.txt | grep round | tee -a "$OUT/env.txt"
"$B/bin/countersign" audit verify --server http://127.0.0.1:18281 --admin-token "$ADMIN" 2>&1 | tail -1 | tee -a "$OUT/env.txt"
echo "out: $OUT"
