#!/usr/bin/env bash
# HBONE benchmark: requests through a waypoint on one core. The load client
# (waygate-hbone-load, one thread) holds one mTLS HTTP/2 connection to the
# waypoint and either keeps CONCURRENCY tunnels open with keep-alive HTTP/1.1
# requests over them (reuse), or opens a new tunnel (CONNECT stream) for every
# request (new). The waypoint routes to a loopback nginx backend. Identities
# come from `waygate dev-ca`. See benches/README.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export PATH="$PATH:/usr/sbin:/sbin"

SCENARIOS=${SCENARIOS:-"reuse new"}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONCURRENCY=${CONCURRENCY:-64}
BASE_PORT=${BASE_PORT:-18280}   # backend; waypoint +1, admin +2
PROXY_CPU=${PROXY_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
SKIP_BUILD=${SKIP_BUILD:-0}
POLICY=${POLICY:-0}             # 1: a VirtualService (5 written-order routes) and an
                                # AuthorizationPolicy (ALLOW by principal and method) on the Service
export WAYGATE_THREADS=1

log() { printf '[hbone-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
for c in nginx taskset timeout python3; do command -v "$c" >/dev/null || die "required tool '$c' not found"; done
[[ $ROUNDS =~ ^[0-9]+$ && $DURATION =~ ^[0-9]+$ && $CONCURRENCY =~ ^[0-9]+$ ]] || die "ROUNDS, DURATION, CONCURRENCY must be integers"

if (( SKIP_BUILD == 0 )); then
    log "building (perf profile): waygate and waygate-hbone-load"
    (cd "$ROOT" && cargo build --profile perf -p waygate -p waygate-conformance --bin waygate --bin waygate-hbone-load >&2) \
        || die "cargo build failed"
fi
WAYGATE=$ROOT/target/perf/waygate
LOAD=$ROOT/target/perf/waygate-hbone-load
[[ -x $WAYGATE && -x $LOAD ]] || die "missing $WAYGATE or $LOAD (build with the perf profile)"

WORK=$(mktemp -d /tmp/waygate-hbone-bench.XXXXXX)
PIDS=()
cleanup() {
    local rc=$? p
    trap - EXIT INT TERM
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.3
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
start_bg() { local name=$1; shift; "$@" >"$WORK/$name.log" 2>&1 & LAST_PID=$!; PIDS+=("$LAST_PID"); }
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12 + $13}'; }

BACKEND=$BASE_PORT
WAYPOINT=$((BASE_PORT + 1))
ADMIN=$((BASE_PORT + 2))
VIP=10.96.0.50
for p in "$BACKEND" "$WAYPOINT" "$ADMIN"; do
    python3 "$HERE/bench.py" portfree "$p" || die "port 127.0.0.1:$p is in use (set BASE_PORT)"
done

"$WAYGATE" dev-ca init --dir "$WORK/ca" >/dev/null
"$WAYGATE" dev-ca issue --dir "$WORK/ca" --ns mesh --sa waypoint >/dev/null
"$WAYGATE" dev-ca issue --dir "$WORK/ca" --ns bench --sa client >/dev/null

mkdir -p "$WORK/backend"
cat >"$WORK/backend/nginx.conf" <<EOF
worker_processes 1; master_process off; daemon off;
pid $WORK/backend/nginx.pid; error_log $WORK/backend/error.log warn;
events { worker_connections 16384; }
http {
    access_log off; client_body_temp_path $WORK/backend/body; proxy_temp_path $WORK/backend/proxy;
    keepalive_requests 100000000; keepalive_timeout 300s;
    server { listen 127.0.0.1:$BACKEND backlog=4096; location / { return 200 "ok\n"; } }
}
EOF
cat >"$WORK/mesh.yaml" <<EOF
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: waypoint, namespace: mesh}
spec:
  gatewayClassName: istio-waypoint
  listeners: [{name: mesh, port: $WAYPOINT, protocol: HBONE, allowedRoutes: {namespaces: {from: All}}}]
---
apiVersion: v1
kind: Service
metadata:
  name: backend
  namespace: bench
  labels: {istio.io/use-waypoint: waypoint, istio.io/use-waypoint-namespace: mesh}
spec:
  clusterIP: $VIP
  ports: [{name: http, port: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: backend-1, namespace: bench, labels: {kubernetes.io/service-name: backend}}
addressType: IPv4
ports: [{name: http, port: $BACKEND}]
endpoints: [{addresses: ["127.0.0.1"]}]
EOF
if (( POLICY == 1 )); then
    cat >>"$WORK/mesh.yaml" <<EOF
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: backend, namespace: bench}
spec:
  hosts: [backend]
  http:
  - match: [{uri: {prefix: /admin}}]
    fault: {abort: {httpStatus: 403, percentage: {value: 100}}}
  - match: [{headers: {x-canary: {exact: "1"}}}]
    route: [{destination: {host: backend}}]
  - match: [{uri: {regex: "/v[0-9]+/.*"}}]
    route: [{destination: {host: backend}}]
  - match: [{method: {exact: POST}}]
    route: [{destination: {host: backend}}]
  - route: [{destination: {host: backend}}]
    headers: {request: {set: {x-bench: "1"}}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: backend, namespace: bench}
spec:
  targetRefs: [{kind: Service, group: "", name: backend}]
  action: ALLOW
  rules:
  - from: [{source: {principals: [cluster.local/ns/bench/sa/client]}}]
    to: [{operation: {methods: [GET, HEAD]}}]
EOF
fi

start_bg backend taskset -c "$CLIENT_CPU" nginx -p "$WORK/backend" -c "$WORK/backend/nginx.conf"
start_bg waygate taskset -c "$PROXY_CPU" "$WAYGATE" run --config "$WORK/mesh.yaml" --bind 127.0.0.1 \
    --admin "127.0.0.1:$ADMIN" --identity-cert "$WORK/ca/mesh.waypoint.crt" \
    --identity-key "$WORK/ca/mesh.waypoint.key" --trust-bundle "$WORK/ca/ca.crt"
WPID=$LAST_PID
for _ in $(seq 100); do
    [[ $(python3 "$HERE/bench.py" code "http://127.0.0.1:$ADMIN/ready" 2>/dev/null) == 200 ]] && break
    sleep 0.2
done

run() { # mode seconds outfile
    timeout --kill-after=5 $(($2 + 30)) taskset -c "$CLIENT_CPU" "$LOAD" --addr "127.0.0.1:$WAYPOINT" \
        --dest "$VIP:80" --ca "$WORK/ca/ca.crt" --cert "$WORK/ca/bench.client.crt" \
        --key "$WORK/ca/bench.client.key" --server-id spiffe://cluster.local/ns/mesh/sa/waypoint \
        --concurrency "$CONCURRENCY" --duration "$2" --mode "$1" >"$3" 2>&1 || die "load client failed: $(tail -3 "$3")"
}
: >"$WORK/rounds.tsv"
for scen in $SCENARIOS; do
    run "$scen" 2 "$WORK/warm.txt"
    for (( r = 1; r <= ROUNDS; r++ )); do
        c0=$(cpu_ticks "$WPID")
        run "$scen" "$DURATION" "$WORK/$scen.$r.txt"
        c1=$(cpu_ticks "$WPID")
        read -r n f s < <(awk '{print $2, $4, $6}' "$WORK/$scen.$r.txt")
        printf '%s\t%s\t%s\t%s\t%s\n' "$scen" "$n" "$f" "$s" $((c1 - c0)) >>"$WORK/rounds.tsv"
        log "[$scen] round $r: $(cat "$WORK/$scen.$r.txt")"
    done
done
RSS=$(awk '/^VmHWM:/ {print $2}' "/proc/$WPID/status")
python3 - "$WORK/rounds.tsv" "$(getconf CLK_TCK)" "$RSS" "$CONCURRENCY" <<'PY'
import statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()]
clk, rss, conc = float(sys.argv[2]), int(sys.argv[3]) / 1024, sys.argv[4]
title = {"reuse": f"requests/s over {conc} long-lived tunnels (keep-alive HTTP/1.1 inside)",
         "new": f"new tunnels/s ({conc} workers, one CONNECT stream + one request each)"}
print("| scenario | per second (median) | failed | waypoint CPU µs each | waypoint CPU % | peak RSS (MiB) |")
print("|---|---:|---:|---:|---:|---:|")
for scen in dict.fromkeys(r[0] for r in rows):
    rs = [r for r in rows if r[0] == scen]
    rate = statistics.median(int(r[1]) / float(r[3]) for r in rs)
    us = statistics.median(1e6 * int(r[4]) / clk / max(int(r[1]), 1) for r in rs)
    cpu = statistics.median(100 * int(r[4]) / clk / float(r[3]) for r in rs)
    failed = sum(int(r[2]) for r in rs)
    print(f"| {title[scen]} | {rate:,.0f} | {failed} | {us:.1f} | {cpu:.0f} | {rss:.1f} |")
PY
