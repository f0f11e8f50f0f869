#!/usr/bin/env bash
# run-peer.sh: Countersign against node-oidc-provider, side by side, in one
# interleaved cibaload run. See bench/README.md for what it measures.
#
#   bench/run-peer.sh                 # from the repo root; needs ../shared/bench
#
# It copies the peer kit (SHARED_BENCH, default ../shared/bench) to WORK,
# builds cibaload and Countersign, installs the peer (npm ci), starts two
# redis-servers (one per side), Countersign on real Redis, the peer with its
# Redis adapter and the peer with its memory adapter, registers Countersign's
# agents and USERS users, then runs cibaload twice:
#   A  bc-authorize only, poll (-poll-immediate, 50 ms re-poll) and, when
#      Countersign has outbox delivery (PING=auto), ping: c=CONC, ROUNDS rounds
#   B  poll honouring the server's interval (CIBA §7.3; Countersign says 0
#      for policy-approved requests, the peer says nothing, so 5 s): one round
# and prints the tables. Every process it started is stopped by PID on exit.
# Everything listens on, and all traffic goes to, 127.0.0.1 only.
#
# Env: WORK (/tmp/countersign-peerbench) SHARED_BENCH ROUNDS (3) CONC (16,64)
#      DUR (8s) WARMUP (2s) USERS (10000) PING (auto|0|1) PHASES (AB, A or B)
#      OURS_PORT (18180) PEER_PORT (18080) PEER_MEM_PORT (18081)
#      REDIS_OURS_PORT (18379) REDIS_PEER_PORT (18380) CB_PORT (18091)
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
SHARED_BENCH=${SHARED_BENCH:-$REPO/../shared/bench}
WORK=${WORK:-/tmp/countersign-peerbench}
ROUNDS=${ROUNDS:-3}
CONC=${CONC:-16,64}
DUR=${DUR:-8s}
WARMUP=${WARMUP:-2s}
USERS=${USERS:-10000}
PING=${PING:-auto}
PHASES=${PHASES:-AB}
OURS_PORT=${OURS_PORT:-18180}
PEER_PORT=${PEER_PORT:-18080}
PEER_MEM_PORT=${PEER_MEM_PORT:-18081}
REDIS_OURS_PORT=${REDIS_OURS_PORT:-18379}
REDIS_PEER_PORT=${REDIS_PEER_PORT:-18380}
CB_PORT=${CB_PORT:-18091}
ADMIN_TOKEN=bench-admin-token-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
READ_DETAILS='[{"type":"agent_action","action":"read","resource":"calendar"}]'

for tool in go node npm redis-server redis-cli curl; do
  command -v "$tool" >/dev/null || { echo "run-peer.sh: $tool is missing (apt-get install -y redis-server nodejs npm curl; Go >= 1.26)" >&2; exit 2; }
done
[ -d "$SHARED_BENCH/cibaload" ] || { echo "run-peer.sh: no peer kit at $SHARED_BENCH (set SHARED_BENCH)" >&2; exit 2; }
# Never drive someone else's process: every port must be free.
for p in "$OURS_PORT" "$PEER_PORT" "$PEER_MEM_PORT" "$REDIS_OURS_PORT" "$REDIS_PEER_PORT" "$CB_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "run-peer.sh: 127.0.0.1:$p is in use" >&2; exit 2; fi
done

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done; done
}
trap cleanup EXIT

mkdir -p "$WORK"
cp -r "$SHARED_BENCH/." "$WORK/"
chmod -R u+w "$WORK"
# cibaload reads an explicit "interval": 0 as if it were absent (5 s); CIBA
# Core §7.3 defaults to 5 only "if no value is provided". One-line fix in the
# copy, so the compliant poll run (B) waits what the server says.
sed -i 's/if err != nil || f <= 0 {/if err != nil || f < 0 {/' "$WORK/cibaload/flow.go"
OUT="$WORK/runs/$(date -u +%Y%m%dT%H%M%SZ)-countersign-vs-node"
mkdir -p "$OUT"
echo "output: $OUT"

(cd "$WORK/cibaload" && go build -o "$WORK/bin/cibaload" .)
(cd "$REPO" && go build -o "$WORK/bin/countersign" ./cmd/countersign)
[ -d "$WORK/peers/node-oidc/node_modules" ] || (cd "$WORK/peers/node-oidc" && npm ci --no-audit --no-fund)

if [ "$PING" = auto ]; then
  if grep -rqE "XReadGroup|XREADGROUP" "$REPO/ciba"; then PING=1; else PING=0; fi
fi

wait_http() { for _ in $(seq 150); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.2; done; echo "run-peer.sh: $1 did not come up" >&2; exit 1; }
start_redis() {
  redis-server --port "$1" --bind 127.0.0.1 --save '' --appendonly no --daemonize no >"$OUT/redis-$1.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p "$1" ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis-cli -h 127.0.0.1 -p "$1" flushall >/dev/null
}
start_redis "$REDIS_OURS_PORT"; REDIS_OURS_PID=${PIDS[-1]}
start_redis "$REDIS_PEER_PORT"; REDIS_PEER_PID=${PIDS[-1]}

# Countersign: real Redis, default ruleset, --dev for the loopback ping endpoint.
COUNTERSIGN_ADMIN_TOKEN=$ADMIN_TOKEN "$WORK/bin/countersign" serve --listen "127.0.0.1:$OURS_PORT" \
  --issuer "http://127.0.0.1:$OURS_PORT" --redis-url "redis://127.0.0.1:$REDIS_OURS_PORT" --dev --log-level warn \
  >"$OUT/countersign.log" 2>&1 &
OURS_PID=$!; PIDS+=($OURS_PID)
# The peer: one Node process each (no cluster), Redis adapter and memory adapter.
(cd "$WORK/peers/node-oidc" && NODE_ENV=production PORT=$PEER_PORT ADAPTER=redis REDIS_URL=redis://127.0.0.1:$REDIS_PEER_PORT \
  PING_URL=https://127.0.0.1:$CB_PORT/cb exec node server.js) >"$OUT/peer-redis.log" 2>&1 &
PEER_PID=$!; PIDS+=($PEER_PID)
(cd "$WORK/peers/node-oidc" && NODE_ENV=production PORT=$PEER_MEM_PORT ADAPTER=memory \
  PING_URL=https://127.0.0.1:$CB_PORT/cb exec node server.js) >"$OUT/peer-memory.log" 2>&1 &
PEER_MEM_PID=$!; PIDS+=($PEER_MEM_PID)
wait_http "http://127.0.0.1:$OURS_PORT/.well-known/openid-configuration"
wait_http "http://127.0.0.1:$PEER_PORT/.well-known/openid-configuration"
wait_http "http://127.0.0.1:$PEER_MEM_PORT/.well-known/openid-configuration"

node "$REPO/bench/setup-ours.mjs" "http://127.0.0.1:$OURS_PORT" "$ADMIN_TOKEN" "$USERS" "$PING" "http://127.0.0.1:$CB_PORT/cb" >"$OUT/ours-clients.json"
jsget() { node -p "JSON.parse(require('fs').readFileSync('$OUT/ours-clients.json','utf8')).$1"; }
POLL_ID=$(jsget poll.client_id); POLL_SECRET=$(jsget poll.client_secret)
if [ "$PING" = 1 ]; then PING_ID=$(jsget ping.client_id); PING_SECRET=$(jsget ping.client_secret); fi

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "nproc: $(nproc); cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); mem: $(free -g | awk '/^Mem:/{print $2" GiB"}')"
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "$(go version); node $(node --version); $(redis-server --version | cut -d' ' -f1-3)"
  echo "countersign: $(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo '?') ($(cd "$REPO" && git status --porcelain 2>/dev/null | wc -l) uncommitted paths)"
  echo "ping benchmarked: $PING; users: $USERS; rounds: $ROUNDS; c: $CONC; duration: $WARMUP + $DUR"
} | tee "$OUT/env.txt"

# target NAME MODE URL ID SECRET SERVER_PID AUX_PID EXTRA_JSON
target() {
  local aux=""; [ -n "$7" ] && aux=", \"aux_pids\": [$7]"
  printf '{"name": "%s", "mode": "%s", "discovery": "%s/.well-known/openid-configuration", "client_id": "%s", "client_secret": "%s", "server_pids": [%s]%s%s}' \
    "$1" "$2" "$3" "$4" "$5" "$6" "$aux" "$8"
}
OURS="http://127.0.0.1:$OURS_PORT"; PEER="http://127.0.0.1:$PEER_PORT"; PEERM="http://127.0.0.1:$PEER_MEM_PORT"
OURS_PARAMS=", \"params\": {\"binding_message\": \"bench-{seq}\", \"authorization_details\": $(node -p "JSON.stringify('$READ_DETAILS')")}"
FAST=', "poll_immediate": true, "poll_interval": 0.05'
targets_for() { # MODE SUFFIX EXTRA
  local ours_id=$POLL_ID ours_secret=$POLL_SECRET peer_id=ciba-poll peer_secret=poll-secret-0123456789
  if [ "$1" = ping ]; then ours_id=$PING_ID ours_secret=$PING_SECRET peer_id=ciba-ping peer_secret=ping-secret-0123456789; fi
  target "countersign-redis-$2" "$1" "$OURS" "$ours_id" "$ours_secret" "$OURS_PID" "$REDIS_OURS_PID" "$OURS_PARAMS$3"; echo ","
  target "node-redis-$2" "$1" "$PEER" "$peer_id" "$peer_secret" "$PEER_PID" "$REDIS_PEER_PID" "$3"; echo ","
  target "node-memory-$2" "$1" "$PEERM" "$peer_id" "$peer_secret" "$PEER_MEM_PID" "" "$3"
}
{
  echo "["
  targets_for authorize-only bc ""; echo ","
  targets_for poll poll-fast "$FAST"
  if [ "$PING" = 1 ]; then echo ","; targets_for ping ping ""; fi
  echo "]"
} >"$OUT/targets-A.json"
{ echo "["; targets_for poll poll-compliant ""; echo "]"; } >"$OUT/targets-B.json"

COMMON=(-login-hint 'user-{rand}' -hint-cardinality "$USERS" -param 'binding_message=bench-{seq}'
  -callback-listen "127.0.0.1:$CB_PORT")
if [[ $PHASES == *A* ]]; then
  echo "A: c=$CONC, $ROUNDS rounds; load $(cut -d' ' -f1-3 /proc/loadavg)"
  timeout 30m "$WORK/bin/cibaload" -targets "$OUT/targets-A.json" "${COMMON[@]}" -c "$CONC" -rounds "$ROUNDS" \
    -d "$DUR" -warmup "$WARMUP" >"$OUT/results-A.jsonl" 2>"$OUT/cibaload-A.log"
  echo "load after A: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/env.txt"
fi
if [[ $PHASES == *B* ]]; then
  # The peer's flows take >= 5 s here (its default interval): warm-up 6 s, 10 s window, one round.
  timeout 10m "$WORK/bin/cibaload" -targets "$OUT/targets-B.json" "${COMMON[@]}" -c "$CONC" -rounds 1 \
    -d 10s -warmup 6s >"$OUT/results-B.jsonl" 2>"$OUT/cibaload-B.log"
  echo "load after B: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/env.txt"
fi

{
  echo "RSS after the runs (pid rss_kb args):"
  ps -o pid=,rss=,args= -p "$OURS_PID,$PEER_PID,$PEER_MEM_PID,$REDIS_OURS_PID,$REDIS_PEER_PID" || true
  for p in "$REDIS_OURS_PORT" "$REDIS_PEER_PORT"; do
    echo "redis :$p $(redis-cli -h 127.0.0.1 -p "$p" info memory | grep -E '^used_memory_human|^used_memory_rss_human' | tr -d '\r' | tr '\n' ' ') keys=$(redis-cli -h 127.0.0.1 -p "$p" dbsize)"
  done
} | tee "$OUT/after.txt"
node "$REPO/bench/summarize.mjs" "$OUT"/results-*.jsonl | tee "$OUT/summary.md"
echo "results: $OUT"
