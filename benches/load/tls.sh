#!/usr/bin/env bash
# TLS benchmark: waygate vs nginx terminating TLS on one core, in front of the
# same loopback HTTP/1.1 backend. Two scenarios:
#   ka: keep-alive HTTPS requests per second (wrk, HTTP/1.1 over TLS 1.3);
#   hs: new full handshakes per second: batches of h2load clients, each one
#       TLS connection with one request; every batch is a new h2load process
#       with no session to resume, so every handshake is a full one.
# Both proxies serve the same ECDSA P-256 certificate. The proxy runs alone on
# PROXY_CPU; clients and the backend share CLIENT_CPU. See benches/README.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export PATH="$PATH:/usr/sbin:/sbin"

TARGETS=${TARGETS:-"nginx waygate"}
SCENARIOS=${SCENARIOS:-"ka hs"}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}            # wrk connections (ka)
BATCH=${BATCH:-50}            # concurrent new connections per h2load batch (hs)
BASE_PORT=${BASE_PORT:-18180} # backend; proxies BASE_PORT+1.., admin +9
PROXY_CPU=${PROXY_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
WAYGATE=${WAYGATE:-$ROOT/target/perf/waygate}
SKIP_BUILD=${SKIP_BUILD:-0}
OUT=${OUT:-}
export WAYGATE_THREADS=1

log() { printf '[tls-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
for c in nginx wrk h2load openssl taskset timeout python3 base64; do
    command -v "$c" >/dev/null || die "required tool '$c' not found (apt-get install nginx-light wrk nghttp2-client openssl)"
done
[[ $ROUNDS =~ ^[0-9]+$ && $DURATION =~ ^[0-9]+$ && $CONNS =~ ^[0-9]+$ && $BATCH =~ ^[0-9]+$ ]] \
    || die "ROUNDS, DURATION, CONNS and BATCH must be integers"

if [[ " $TARGETS " == *" waygate "* ]] && (( SKIP_BUILD == 0 )); then
    log "building waygate: cargo build --profile perf -p waygate"
    exe=$(cd "$ROOT" && cargo build --profile perf -p waygate --message-format=json-render-diagnostics \
          | python3 "$HERE/bench.py" cargo-exe waygate) || die "cargo build failed"
    WAYGATE=$exe
fi
[[ " $TARGETS " != *" waygate "* || -x $WAYGATE ]] || die "waygate binary $WAYGATE missing"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

WORK=$(mktemp -d /tmp/waygate-tls-bench.XXXXXX)
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
vm_hwm() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null; }

BACKEND_PORT=$BASE_PORT
declare -A PORT=([nginx]=$((BASE_PORT + 1)) [waygate]=$((BASE_PORT + 2)))
ADMIN_PORT=$((BASE_PORT + 9))
for p in "$BACKEND_PORT" "${PORT[nginx]}" "${PORT[waygate]}" "$ADMIN_PORT"; do
    python3 "$HERE/bench.py" portfree "$p" || die "port 127.0.0.1:$p is in use (set BASE_PORT)"
done

# --------------------------------------------------------------- material --
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj "/CN=bench.example.com" -addext "subjectAltName=DNS:bench.example.com" \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" >/dev/null 2>&1 || die "openssl req failed"

mkdir -p "$WORK/backend" "$WORK/proxy"
cat >"$WORK/backend/nginx.conf" <<EOF
worker_processes 1; master_process off; daemon off;
pid $WORK/backend/nginx.pid; error_log $WORK/backend/error.log warn;
events { worker_connections 16384; }
http {
    access_log off; client_body_temp_path $WORK/backend/body; proxy_temp_path $WORK/backend/proxy;
    keepalive_requests 100000000; keepalive_timeout 300s;
    server { listen 127.0.0.1:$BACKEND_PORT backlog=4096; location / { return 200 "ok\n"; } }
}
EOF
# TLS 1.2/1.3 as rustls offers; no session cache or tickets on either proxy, so
# nothing is resumed even by a client that tried.
cat >"$WORK/proxy/nginx.conf" <<EOF
worker_processes 1; master_process off; daemon off;
pid $WORK/proxy/nginx.pid; error_log $WORK/proxy/error.log warn;
events { worker_connections 16384; }
http {
    access_log off; client_body_temp_path $WORK/proxy/body; proxy_temp_path $WORK/proxy/proxy;
    keepalive_requests 100000000; keepalive_timeout 300s;
    upstream backend { server 127.0.0.1:$BACKEND_PORT; keepalive 256; }
    server {
        listen 127.0.0.1:${PORT[nginx]} ssl backlog=4096;
        ssl_certificate $WORK/cert.pem; ssl_certificate_key $WORK/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache off; ssl_session_tickets off;
        location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
    }
}
EOF
cat >"$WORK/waygate.yaml" <<EOF
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: bench}
spec:
  gatewayClassName: istio
  listeners:
  - name: https
    port: ${PORT[waygate]}
    protocol: HTTPS
    tls: {certificateRefs: [{name: bench-cert}]}
---
apiVersion: v1
kind: Secret
metadata: {name: bench-cert, namespace: bench}
type: kubernetes.io/tls
data:
  tls.crt: $(base64 -w0 "$WORK/cert.pem")
  tls.key: $(base64 -w0 "$WORK/key.pem")
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: route, namespace: bench}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: backend, port: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: backend, namespace: bench}
spec: {ports: [{name: http, port: 80, targetPort: $BACKEND_PORT}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: backend-1, namespace: bench, labels: {kubernetes.io/service-name: backend}}
addressType: IPv4
ports: [{name: http, port: $BACKEND_PORT}]
endpoints: [{addresses: ["127.0.0.1"]}]
EOF

start_bg backend taskset -c "$CLIENT_CPU" nginx -p "$WORK/backend" -c "$WORK/backend/nginx.conf"
declare -A PID=()
for t in $TARGETS; do
    case $t in
        nginx) start_bg nginx taskset -c "$PROXY_CPU" nginx -p "$WORK/proxy" -c "$WORK/proxy/nginx.conf" ;;
        waygate) start_bg waygate taskset -c "$PROXY_CPU" "$WAYGATE" run --config "$WORK/waygate.yaml" \
                     --bind 127.0.0.1 --admin "127.0.0.1:$ADMIN_PORT" ;;
        *) die "unknown target $t" ;;
    esac
    PID[$t]=$LAST_PID
done
url_of() { echo "https://127.0.0.1:${PORT[$1]}/"; }
for t in $TARGETS; do
    ok=0
    for _ in $(seq 100); do
        if curl -sk --resolve "bench.example.com:${PORT[$t]}:127.0.0.1" -o /dev/null -w '%{http_code}' \
               "https://bench.example.com:${PORT[$t]}/" 2>/dev/null | grep -q 200; then ok=1; break; fi
        sleep 0.2
    done
    (( ok )) || { tail -n 20 "$WORK/$t.log" >&2; die "$t does not answer over HTTPS"; }
done

# ------------------------------------------------------------------ rounds --
# run SCENARIO TARGET OUT: one bounded round; prints "<completed> <seconds>".
run() {
    local s=$1 t=$2 out=$3 url
    url=$(url_of "$t")
    if [[ $s == ka ]]; then
        timeout --kill-after=5 $((DURATION + 30)) taskset -c "$CLIENT_CPU" \
            wrk -t1 -c"$CONNS" -d"${DURATION}s" -H "Host: bench.example.com" "$url" >"$out" 2>&1 \
            || die "wrk against $t failed"
        awk '/requests in/ {n=$1} /Non-2xx/ {bad=$NF} END {print n - bad}' "$out"
    else
        local end=$(( $(date +%s) + DURATION )) done_total=0 n
        : >"$out"
        while (( $(date +%s) < end )); do
            timeout --kill-after=5 60 taskset -c "$CLIENT_CPU" \
                h2load --h1 -c "$BATCH" -n "$BATCH" "$url" >>"$out" 2>&1 || die "h2load against $t failed"
            n=$(awk '/^requests:/ {v=$8} END {print v+0}' <(tail -n 20 "$out"))
            done_total=$(( done_total + n ))
        done
        echo "$done_total"
    fi
}
: >"$WORK/rounds.tsv"
read -r -a TL <<<"$TARGETS"
for scen in $SCENARIOS; do
    for t in $TARGETS; do run "$scen" "$t" "$WORK/warm.txt" >/dev/null; done
    for (( r = 1; r <= ROUNDS; r++ )); do
        for (( i = 0; i < ${#TL[@]}; i++ )); do
            t=${TL[$(( (i + r - 1) % ${#TL[@]} ))]}
            c0=$(cpu_ticks "${PID[$t]}"); s0=$(date +%s.%N)
            n=$(run "$scen" "$t" "$WORK/$scen.$t.$r.txt")
            c1=$(cpu_ticks "${PID[$t]}"); s1=$(date +%s.%N)
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$scen" "$t" "$r" "$n" \
                "$(awk -v a="$s0" -v b="$s1" 'BEGIN {printf "%.3f", b - a}')" $((c1 - c0)) >>"$WORK/rounds.tsv"
            log "[$scen] round $r $t: $n in $(awk -v a="$s0" -v b="$s1" 'BEGIN {printf "%.1f", b - a}') s"
        done
    done
done
for t in $TARGETS; do printf 'rss\t%s\t%s\n' "$t" "$(vm_hwm "${PID[$t]}")" >>"$WORK/rss.tsv"; done

REPORT=$(python3 - "$WORK" "$(getconf CLK_TCK)" <<'PY'
import statistics, sys
work, clk = sys.argv[1], float(sys.argv[2])
rows = [l.rstrip("\n").split("\t") for l in open(f"{work}/rounds.tsv")]
rss = {l.split("\t")[1]: int(l.split("\t")[2]) / 1024 for l in open(f"{work}/rss.tsv")}
title = {"ka": "Keep-alive HTTPS requests/s (wrk, HTTP/1.1 over TLS)",
         "hs": "New TLS connections/s, full handshake + 1 request (h2load batches)"}
out = []
for scen in dict.fromkeys(r[0] for r in rows):
    out.append(f"### {title.get(scen, scen)}\n")
    out.append("| target | per second (median) | ratio to nginx | proxy CPU µs each | proxy CPU % | peak RSS (MiB) |")
    out.append("|---|---:|---:|---:|---:|---:|")
    med = {}
    for t in dict.fromkeys(r[1] for r in rows if r[0] == scen):
        rs = [r for r in rows if r[0] == scen and r[1] == t]
        rate = statistics.median(int(r[3]) / float(r[4]) for r in rs)
        us = statistics.median(1e6 * int(r[5]) / clk / max(int(r[3]), 1) for r in rs)
        cpu = statistics.median(100 * int(r[5]) / clk / float(r[4]) for r in rs)
        med[t] = rate
        ratio = rate / med["nginx"] if "nginx" in med else float("nan")
        out.append(f"| {t} | {rate:,.0f} | {ratio:.2f}× | {us:.1f} | {cpu:.0f} | {rss.get(t, 0):.1f} |")
    out.append("")
print("\n".join(out))
PY
)
{
    echo "## TLS ($(date -u '+%Y-%m-%d'), $(nginx -v 2>&1 | sed 's/^nginx version: //'), ECDSA P-256, TLS 1.3)"
    echo
    echo "Settings: ROUNDS=$ROUNDS DURATION=${DURATION}s CONNS=$CONNS BATCH=$BATCH PROXY_CPU=$PROXY_CPU CLIENT_CPU=$CLIENT_CPU; waygate git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)."
    echo
    echo "$REPORT"
} >"$WORK/report.md"
cat "$WORK/report.md"
if [[ -n $OUT ]]; then cp "$WORK/report.md" "$OUT"; log "wrote $OUT"; fi
log "done"
