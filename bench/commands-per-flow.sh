#!/usr/bin/env bash
# commands-per-flow.sh: Redis commands per flow, from INFO commandstats of a
# redis-server of its own, after N flows (default 2000) at 4 in flight of
# each kind: bc-authorize only (approved by policy) and full ping flows.
# Commands inside scripts are counted with the script call; the outbox's
# blocking reads are left out (one read serves many entries).
#
#   bash bench/commands-per-flow.sh   # from the repo root; needs ../shared/bench (cibaload)
#
# Env: WORK (/tmp/countersign-threeside, shared with three-side.sh) N (2000)
set -u
REPO=$(cd "$(dirname "$0")/.." && pwd)
SHARED_BENCH=${SHARED_BENCH:-$REPO/../shared/bench}
WORK=${WORK:-/tmp/countersign-threeside}
N=${N:-2000}
[ -d "$WORK/bench" ] || { mkdir -p "$WORK" && cp -r "$SHARED_BENCH" "$WORK/bench"; } || exit 1
B=$WORK/bench
mkdir -p "$B/bin"
(cd "$B/cibaload" && go build -o "$B/bin/cibaload" .) && (cd "$REPO" && go build -o "$B/bin/countersign" ./cmd/countersign) || exit 1
ADMIN=bench-admin-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; }
trap cleanup EXIT
redis-server --port 18395 --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 & PIDS+=($!)
sleep 0.3
COUNTERSIGN_ADMIN_TOKEN=$ADMIN "$B/bin/countersign" serve --listen 127.0.0.1:18296 --issuer http://127.0.0.1:18296 \
  --redis-url redis://127.0.0.1:18395 --dev --log-level warn \
  --rate-limit-per-client 1000000000 --rate-limit-per-ip 1000000000 >/dev/null 2>&1 & PIDS+=($!)
for _ in $(seq 50); do curl -fs http://127.0.0.1:18296/.well-known/openid-configuration >/dev/null && break; sleep 0.2; done
OURS=$(mktemp --suffix .json)
node "$REPO/bench/setup-ours.mjs" http://127.0.0.1:18296 "$ADMIN" "$N" 1 http://127.0.0.1:18097/cb > "$OURS" || exit 1
AD='[{"type":"agent_action","action":"read","resource":"calendar"}]'
load() {
  "$B/bin/cibaload" -discovery http://127.0.0.1:18296/.well-known/openid-configuration -client-id "$1" -client-secret "$2" \
    -mode "$3" -c 4 -n "$4" -warmup 0s -login-hint 'user-{rand}' -hint-cardinality "$N" -param 'binding_message=bench-{seq}' \
    -param "authorization_details=$AD" -callback-listen 127.0.0.1:18097 >/dev/null 2>&1
}
for mode in authorize-only ping; do
  k=poll; [ $mode = ping ] && k=ping
  ID=$(node -p "require('$OURS').$k.client_id"); SE=$(node -p "require('$OURS').$k.client_secret")
  load "$ID" "$SE" $mode 200 # warm-up: scripts loaded, counters created
  sleep 1
  redis-cli -p 18395 config resetstat >/dev/null
  load "$ID" "$SE" $mode "$N"
  sleep 1.5
  echo "== $mode: commands per flow"
  redis-cli -p 18395 info commandstats | grep -v '^#' | grep -v 'xreadgroup\|xautoclaim\|cmdstat_hello\|config' |
    sed 's/cmdstat_//; s/:calls=/ /; s/,usec=/ /; s/,.*//' | sort -k2 -n -r |
    awk -v n="$N" '{c += $2; printf "%-18s %6.2f per flow, %6.1f µs per flow\n", $1, $2 / n, $3 / n} END {printf "total %.1f commands per flow\n", c / n}'
done
rm -f "$OURS"
