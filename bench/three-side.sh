#!/usr/bin/env bash
# three-side.sh: Countersign, node-oidc-provider and the naive Go ceiling in
# one interleaved cibaload run on this machine (issue 14's measurement).
#
#   bash bench/three-side.sh          # from the repo root; needs ../shared/bench
#
# The peer kit (SHARED_BENCH, default ../shared/bench: cibaload, the peer's
# setup, the ceiling) is copied to WORK and built there. Started, each on
# 127.0.0.1 and each with its own redis-server (no persistence):
#   countersign (this checkout, real Redis, default ruleset, every rate limit
#     counted but set out of reach, --dev for the loopback ping receiver,
#     --pprof-listen on PPROF_PORT),
#   node-oidc-provider 9 (Redis adapter, 2 workers: the peer to beat),
#   the ceiling (no rules, no audit, no validation: what the machine allows).
# Phases:
#   mem    20,000 low-risk bc-authorize on Countersign alone: INFO memory
#          before and after, MEMORY USAGE of a sample of each key kind
#   main   bc-authorize only and full ping flows, all three, C (16,64),
#          ROUNDS rounds of DUR, interleaved; Redis INFO commandstats and
#          cpu of each Redis over the phase
#   c8     Countersign alone at c=8 (latency targets), ROUNDS rounds
#   prof   (PROF=1) Countersign ping flows at c=16 while pprof takes CPU,
#          allocation, block and mutex profiles and redis-cli --latency runs
# Then prints the table of medians and ratios. Every process it started is
# stopped by PID on exit. Output: OUT (WORK/runs/three-side-<time>).
#
# Env: WORK (/tmp/countersign-threeside) SHARED_BENCH C (16,64) ROUNDS (3)
#      DUR (10s) USERS (10000) PROF (1) PHASES (mem main c8 prof)
#      CS_REDIS_ARGS (extra redis-server arguments for Countersign's Redis)
set -u
REPO=$(cd "$(dirname "$0")/.." && pwd)
SHARED_BENCH=${SHARED_BENCH:-$REPO/../shared/bench}
WORK=${WORK:-/tmp/countersign-threeside}
C=${C:-16,64}; ROUNDS=${ROUNDS:-3}; DUR=${DUR:-10s}; USERS=${USERS:-10000}; PROF=${PROF:-1}
PHASES=${PHASES:-mem main c8 prof}
PPROF_PORT=${PPROF_PORT:-18290}
[ -d "$WORK/bench" ] || { mkdir -p "$WORK" && cp -r "$SHARED_BENCH" "$WORK/bench"; } || exit 1
B=$WORK/bench
OUT=${OUT:-$B/runs/three-side-$(date -u +%Y%m%dT%H%M%SZ)}; mkdir -p "$OUT"
ADMIN=bench-admin-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
mkdir -p "$B/bin"
(cd "$B/cibaload" && go build -o "$B/bin/cibaload" .) && (cd "$B/ceiling" && go build -o "$B/bin/ceiling" .) \
  && (cd "$REPO" && go build -o "$B/bin/countersign" ./cmd/countersign) || exit 1
[ -d "$B/peers/node-oidc/node_modules" ] || (cd "$B/peers/node-oidc" && npm ci --no-audit --no-fund >/dev/null) || exit 1
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; sleep 1; for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; }
trap cleanup EXIT
for port in 18379 18380 18381; do
  extra=(); [ $port = 18381 ] && extra=(${CS_REDIS_ARGS:-})
  redis-server --port $port --bind 127.0.0.1 --save '' --appendonly no "${extra[@]}" >/dev/null 2>&1 & PIDS+=($!)
done
RP=${PIDS[0]}; RC=${PIDS[1]}; RO=${PIDS[2]}
sleep 0.5
(cd "$B/peers/node-oidc" && NODE_ENV=production PORT=18080 ADAPTER=redis WORKERS=2 REDIS_URL=redis://127.0.0.1:18379 \
  PING_URL=https://127.0.0.1:18091/cb PING_PLAIN_HTTP=1 exec node server.js) >"$OUT/peer.log" 2>&1 & PIDS+=($!); P=$!
"$B/bin/ceiling" -listen 127.0.0.1:18180 -redis redis://127.0.0.1:18380 >"$OUT/ceiling.log" 2>&1 & PIDS+=($!); CE=$!
COUNTERSIGN_ADMIN_TOKEN=$ADMIN "$B/bin/countersign" serve --listen 127.0.0.1:18280 --issuer http://127.0.0.1:18280 \
  --redis-url redis://127.0.0.1:18381 --dev --log-level warn --pprof-listen 127.0.0.1:$PPROF_PORT \
  --rate-limit-per-client 1000000000 --rate-limit-per-ip 1000000000 >"$OUT/countersign.log" 2>&1 & PIDS+=($!); CS=$!
for u in 18080 18180 18280; do
  for _ in $(seq 150); do curl -fs http://127.0.0.1:$u/.well-known/openid-configuration >/dev/null && break; sleep 0.2; done
done
node "$REPO/bench/setup-ours.mjs" http://127.0.0.1:18280 "$ADMIN" "$USERS" 1 http://127.0.0.1:18091/cb >"$OUT/ours.json" || exit 1
js() { node -p "JSON.parse(require('fs').readFileSync('$OUT/ours.json','utf8')).$1"; }
AD=$(node -p "JSON.stringify(JSON.stringify([{type:'agent_action',action:'read',resource:'calendar'}]))")
cat > "$OUT/targets.json" <<JSON
[
 {"name":"countersign-bc","discovery":"http://127.0.0.1:18280/.well-known/openid-configuration","mode":"authorize-only","client_id":"$(js poll.client_id)","client_secret":"$(js poll.client_secret)","server_pids":[$CS],"aux_pids":[$RO],"params":{"authorization_details":$AD}},
 {"name":"peer-bc","discovery":"http://127.0.0.1:18080/.well-known/openid-configuration","mode":"authorize-only","client_id":"ciba-poll","client_secret":"poll-secret-0123456789","server_pids":[$P],"aux_pids":[$RP]},
 {"name":"ceiling-bc","discovery":"http://127.0.0.1:18180/.well-known/openid-configuration","mode":"authorize-only","client_id":"poll","client_secret":"poll-secret","server_pids":[$CE],"aux_pids":[$RC]},
 {"name":"countersign-ping","discovery":"http://127.0.0.1:18280/.well-known/openid-configuration","mode":"ping","client_id":"$(js ping.client_id)","client_secret":"$(js ping.client_secret)","server_pids":[$CS],"aux_pids":[$RO],"params":{"authorization_details":$AD}},
 {"name":"peer-ping","discovery":"http://127.0.0.1:18080/.well-known/openid-configuration","mode":"ping","client_id":"ciba-ping","client_secret":"ping-secret-0123456789","server_pids":[$P],"aux_pids":[$RP]},
 {"name":"ceiling-ping","discovery":"http://127.0.0.1:18180/.well-known/openid-configuration","mode":"ping","client_id":"ping","client_secret":"ping-secret","server_pids":[$CE],"aux_pids":[$RC]}
]
JSON
pick() { python3 - "$OUT/targets.json" "$1" "$2" <<'PY'
import json, sys
names = sys.argv[3].split(",")
json.dump([x for x in json.load(open(sys.argv[1])) if x["name"] in names], open(sys.argv[2], "w"))
PY
}
load() { "$B/bin/cibaload" -login-hint 'user-{rand}' -hint-cardinality "$USERS" -param 'binding_message=bench-{seq}' \
  -callback-listen 127.0.0.1:18091 "$@"; }
echo "date: $(date -u +%FT%TZ) load before: $(cut -d' ' -f1-3 /proc/loadavg) countersign: $(cd "$REPO" && git rev-parse --short HEAD)$(cd "$REPO" && git diff --quiet HEAD || echo '+changes')" | tee "$OUT/env.txt"
has() { case " $PHASES " in *" $1 "*) return 0;; esac; return 1; }

if has mem; then
  pick "$OUT/mem-target.json" countersign-bc
  mem() { redis-cli -p 18381 info memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p'; }
  M0=$(mem)
  load -targets "$OUT/mem-target.json" -c 16 -n 20000 -warmup 0s > "$OUT/mem.jsonl" 2> "$OUT/mem.txt"
  M1=$(mem)
  echo "redis bytes per low-risk bc-authorize (20,000, INFO used_memory): $(( (M1 - M0) / 20000 ))" | tee -a "$OUT/env.txt"
  # MEMORY USAGE of up to 200 keys of each kind (ids replaced by *), with the count of each kind.
  python3 "$REPO/bench/redis-key-kinds.py" 18381 | tee "$OUT/key-kinds.md"
fi

if has main; then
  for port in 18379 18380 18381; do redis-cli -p $port config resetstat >/dev/null; done
  load -targets "$OUT/targets.json" -c "$C" -d "$DUR" -rounds "$ROUNDS" -warmup 2s > "$OUT/results.jsonl" 2> "$OUT/cibaload.txt"
  for port in 18379 18380 18381; do echo "== redis :$port"; redis-cli -p $port info commandstats | grep -v '^#'; redis-cli -p $port info cpu | grep used_cpu; done > "$OUT/commandstats.txt"
fi

if has c8; then
  pick "$OUT/c8-targets.json" countersign-bc,countersign-ping
  load -targets "$OUT/c8-targets.json" -c 8 -d "$DUR" -rounds "$ROUNDS" -warmup 2s > "$OUT/c8.jsonl" 2> "$OUT/c8.txt"
fi

if has prof && [ "$PROF" = 1 ]; then
  pick "$OUT/prof-target.json" countersign-ping
  load -targets "$OUT/prof-target.json" -c 16 -d 25s -rounds 1 -warmup 1s > "$OUT/prof.jsonl" 2> "$OUT/prof.txt" &
  LP=$!
  sleep 3
  PP=http://127.0.0.1:$PPROF_PORT/debug/pprof
  curl -s "$PP/allocs" -o "$OUT/allocs0.pb.gz"
  curl -s "$PP/block" -o "$OUT/block0.pb.gz"; curl -s "$PP/mutex" -o "$OUT/mutex0.pb.gz"
  (timeout 15 redis-cli -p 18381 --latency --raw > "$OUT/redis-latency.txt" 2>&1 &)
  redis-cli -p 18381 slowlog reset >/dev/null
  curl -s "$PP/profile?seconds=15" -o "$OUT/cpu.pb.gz"
  curl -s "$PP/allocs" -o "$OUT/allocs.pb.gz"
  curl -s "$PP/block" -o "$OUT/block.pb.gz"; curl -s "$PP/mutex" -o "$OUT/mutex.pb.gz"
  redis-cli -p 18381 slowlog get 10 > "$OUT/slowlog.txt"
  wait $LP
  for k in cpu allocs block mutex; do
    base=""; [ -f "$OUT/${k}0.pb.gz" ] && base="-diff_base=$OUT/${k}0.pb.gz"
    [ $k = allocs ] && base="$base -sample_index=alloc_space"
    go tool pprof -top -nodecount=25 $base "$B/bin/countersign" "$OUT/$k.pb.gz" > "$OUT/$k-top.txt" 2>/dev/null
  done
fi

echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/env.txt"
for port in 18379 18380 18381; do echo "redis :$port $(redis-cli -p $port info memory | grep -E '^used_memory:' | tr -d '\r') keys=$(redis-cli -p $port dbsize)"; done | tee -a "$OUT/env.txt"
python3 "$REPO/bench/three-side-table.py" "$OUT" | tee "$OUT/table.md"
echo "out: $OUT"
