#!/usr/bin/env bash
# Load benchmark: waygate vs nginx vs HAProxy as a reverse proxy on one core,
# in front of the same loopback HTTP/1.1 backend. Two scenarios: clients speak
# HTTP/1.1 (wrk) or HTTP/2 cleartext with prior knowledge (h2load). See
# benches/README.md.
#
# Everything listens on 127.0.0.1 only; every wait and every client run is
# bounded in time; every process this script starts is killed on exit.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export PATH="$PATH:/usr/sbin:/sbin"

# ---------------------------------------------------------------- settings --
TARGETS=${TARGETS:-"nginx haproxy waygate"}
SCENARIOS=${SCENARIOS:-"h1 h2"} # h1: wrk over HTTP/1.1; h2: h2load over h2c
ROUNDS=${ROUNDS:-5}             # interleaved rounds of every target
DURATION=${DURATION:-10}        # seconds of load per target per round and scenario
WARMUP=${WARMUP:-3}             # seconds of load per target before round 1
CONNS=${CONNS:-64}              # wrk connections (1 wrk thread)
H2_CONNS=${H2_CONNS:-16}        # h2load connections (1 h2load thread)
H2_STREAMS=${H2_STREAMS:-4}     # h2load concurrent streams per connection
CALLGRIND=${CALLGRIND:-1}       # 0 skips the instructions-per-request phase
CG_WARMUP=${CG_WARMUP:-2000}    # requests before the counters are zeroed
CG_REQUESTS=${CG_REQUESTS:-20000} # requests counted under callgrind
H2_CALLGRIND=${H2_CALLGRIND:-$CALLGRIND} # 0 skips instructions/request over h2c
CG_TIMEOUT=${CG_TIMEOUT:-900}   # seconds allowed for one callgrind client run
BASE_PORT=${BASE_PORT:-18080}   # backend; proxies use BASE_PORT+1..+6
PROXY_CPU=${PROXY_CPU:-0}       # the proxy under test runs here, alone
CLIENT_CPU=${CLIENT_CPU:-1}     # wrk/h2load and the backend run here
WAYGATE=${WAYGATE:-$ROOT/target/perf/waygate}
SKIP_BUILD=${SKIP_BUILD:-0}     # 1: never run cargo; fail if binary missing
SKIP_INSTALL=${SKIP_INSTALL:-0} # 1: never run apt-get
FORCE_INSTALL=${FORCE_INSTALL:-0} # 1: run the apt-get step even if all is there
KEEP_WORK=${KEEP_WORK:-0}       # 1: keep the temp dir (configs, logs, raw)
READY_TIMEOUT=${READY_TIMEOUT:-30}        # seconds for a normal start
CG_READY_TIMEOUT=${CG_READY_TIMEOUT:-300} # seconds for a start under valgrind
OUT=${OUT:-}
export WAYGATE_THREADS=1        # one worker thread, like the other proxies

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
check_range() { # name value min max
    is_uint "$2" && (( $2 >= $3 && $2 <= $4 )) || die "$1=$2 must be an integer in [$3, $4]"
}
check_range ROUNDS "$ROUNDS" 1 100
check_range DURATION "$DURATION" 1 3600
check_range WARMUP "$WARMUP" 0 600
check_range CONNS "$CONNS" 1 1000
check_range H2_CONNS "$H2_CONNS" 1 1000
check_range H2_STREAMS "$H2_STREAMS" 1 100
check_range CG_WARMUP "$CG_WARMUP" 1 10000000
check_range CG_REQUESTS "$CG_REQUESTS" 1 10000000
check_range CG_TIMEOUT "$CG_TIMEOUT" 10 86400
check_range BASE_PORT "$BASE_PORT" 1024 65000
check_range READY_TIMEOUT "$READY_TIMEOUT" 1 3600
check_range CG_READY_TIMEOUT "$CG_READY_TIMEOUT" 1 3600
check_range PROXY_CPU "$PROXY_CPU" 0 4095
check_range CLIENT_CPU "$CLIENT_CPU" 0 4095
check_range SKIP_BUILD "$SKIP_BUILD" 0 1
check_range SKIP_INSTALL "$SKIP_INSTALL" 0 1
check_range FORCE_INSTALL "$FORCE_INSTALL" 0 1
check_range KEEP_WORK "$KEEP_WORK" 0 1
check_range CALLGRIND "$CALLGRIND" 0 1
check_range H2_CALLGRIND "$H2_CALLGRIND" 0 1
for t in $TARGETS; do
    case $t in nginx|haproxy|waygate) ;; *) die "unknown target '$t' (nginx haproxy waygate)";; esac
done
[[ -n ${TARGETS// /} ]] || die "TARGETS is empty"
for s in $SCENARIOS; do
    case $s in h1|h2) ;; *) die "unknown scenario '$s' (h1 h2)";; esac
done
[[ -n ${SCENARIOS// /} ]] || die "SCENARIOS is empty"
has_scenario() { [[ " $SCENARIOS " == *" $1 "* ]]; }

BACKEND_PORT=$BASE_PORT
# PORT: the HTTP/1.1 listeners. H2PORT: the h2c (prior knowledge) listeners.
# An h2 listener of nginx 1.22 (`listen ... http2` without ssl) or HAProxy
# (`bind ... proto h2`) speaks nothing but h2c, so those two get a second
# port; waygate serves HTTP/1.1 and h2c on the same port.
declare -A PORT=([nginx]=$((BASE_PORT + 1)) [haproxy]=$((BASE_PORT + 2)) [waygate]=$((BASE_PORT + 3)))
WAYGATE_ADMIN_PORT=$((BASE_PORT + 4))
declare -A H2PORT=([nginx]=$((BASE_PORT + 5)) [haproxy]=$((BASE_PORT + 6)) [waygate]=${PORT[waygate]})
# port_of SCENARIO TARGET
port_of() { if [[ $1 == h2 ]]; then echo "${H2PORT[$2]}"; else echo "${PORT[$2]}"; fi; }

# ----------------------------------------------------------------- install --
SUDO=()
if (( EUID != 0 )) && command -v sudo >/dev/null; then SUDO=(sudo); fi
APT_UPDATED=0
apt_install() {
    if (( APT_UPDATED == 0 )); then
        log "apt-get update"
        "${SUDO[@]}" apt-get update >&2
        APT_UPDATED=1
    fi
    log "apt-get install -y $*"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >&2
}
missing=()
for c in nginx haproxy wrk h2load valgrind callgrind_control; do
    command -v "$c" >/dev/null || missing+=("$c")
done
if (( ${#missing[@]} > 0 || FORCE_INSTALL )); then
    (( SKIP_INSTALL == 0 )) || die "missing tools: ${missing[*]} (and SKIP_INSTALL=1)"
    log "missing tools: ${missing[*]:-none (FORCE_INSTALL=1)}"
    apt_install nginx-light haproxy wrk nghttp2-client valgrind
fi
for c in nginx haproxy wrk h2load valgrind callgrind_control taskset timeout python3; do
    command -v "$c" >/dev/null || die "required tool '$c' not found"
done
NCPU=$(nproc)
(( PROXY_CPU < NCPU && CLIENT_CPU < NCPU )) || die "PROXY_CPU/CLIENT_CPU must be < nproc ($NCPU)"
(( PROXY_CPU != CLIENT_CPU )) || log "WARNING: PROXY_CPU == CLIENT_CPU; proxy and client share a core"

# ------------------------------------------------------------------- build --
# The measured binary is the `perf` profile (fat LTO, one codegen unit; see Cargo.toml), rebuilt
# here unless SKIP_BUILD=1 so a run always measures the current source (a no-op when up to date).
if [[ " $TARGETS " == *" waygate "* ]]; then
    if (( SKIP_BUILD == 0 )); then
        log "building waygate: cargo build --profile perf -p waygate"
        exe=$(cd "$ROOT" && cargo build --profile perf -p waygate --message-format=json-render-diagnostics \
              | python3 "$HERE/bench.py" cargo-exe waygate) || die "cargo build failed"
        [[ -n $exe && -x $exe ]] || die "cargo build finished but reported no waygate executable"
        log "built $exe"
        WAYGATE=$exe
    fi
    [[ -x $WAYGATE ]] || die "waygate binary $WAYGATE missing (SKIP_BUILD=1 needs WAYGATE=path, or drop waygate from TARGETS)"
fi

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ------------------------------------------------------- processes, traps --
WORK=$(mktemp -d /tmp/waygate-bench.XXXXXX)
PIDS=()
# is_ours PID: PID is still a child of this shell (not a recycled pid).
is_ours() {
    [[ $(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $2}') == "$$" ]]
}
cleanup() {
    local rc=$? p i ours=()
    trap - EXIT INT TERM
    for p in "${PIDS[@]}"; do is_ours "$p" && ours+=("$p"); done
    PIDS=("${ours[@]}")
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for i in $(seq 50); do
        local alive=0
        for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        (( alive )) || break
        sleep 0.1
    done
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if (( KEEP_WORK )); then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_bg NAME CMD... : start CMD in the background, output to $WORK/NAME.log;
# sets LAST_PID (the pid of CMD itself: taskset/valgrind exec in place).
start_bg() {
    local name=$1; shift
    "$@" >"$WORK/$name.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}
# forget_pid PID: drop PID from PIDS, so the exit trap never signals a
# recycled pid.
forget_pid() {
    local keep=() q
    for q in "${PIDS[@]}"; do [[ $q == "$1" ]] || keep+=("$q"); done
    PIDS=("${keep[@]}")
}
stop_pid() {
    local p=$1 i
    kill -TERM "$p" 2>/dev/null || true
    for i in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    forget_pid "$p"
}
# run_wait CMD...: run CMD (a client run) and return its status. It runs as
# a background job that this shell waits for: bash defers a trap until a
# foreground child exits, but `wait` returns at once, so SIGTERM/SIGINT to the
# script reach the exit trap immediately, and the trap stops CMD too.
run_wait() {
    "$@" &
    local p=$! rc=0
    PIDS+=("$p")
    wait "$p" || rc=$?
    forget_pid "$p"
    return "$rc"
}

helper() { python3 "$HERE/bench.py" "$@"; }

# wait_http URL PID TIMEOUT NAME: poll until URL answers 200 (bounded).
wait_http() {
    local url=$1 pid=$2 timeout=$3 name=$4 deadline code
    deadline=$(( $(date +%s) + timeout ))
    while (( $(date +%s) < deadline )); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$WORK/$name.log" >&2 || true
            die "$name exited before $url answered"
        fi
        code=$(helper code "$url" 2>/dev/null || true)
        [[ $code == 200 ]] && return 0
        sleep 0.2
    done
    tail -n 30 "$WORK/$name.log" >&2 || true
    die "$name: $url did not answer 200 within ${timeout}s (last: ${code:-none})"
}

for p in "$BACKEND_PORT" "${PORT[nginx]}" "${PORT[haproxy]}" "${PORT[waygate]}" "$WAYGATE_ADMIN_PORT" \
         "${H2PORT[nginx]}" "${H2PORT[haproxy]}"; do
    helper portfree "$p" || die "port 127.0.0.1:$p is in use (set BASE_PORT)"
done

# ----------------------------------------------------------------- configs --
mkdir -p "$WORK/nginx-backend" "$WORK/nginx-proxy"
cat >"$WORK/nginx-backend/nginx.conf" <<EOF
worker_processes 1;
master_process off;
daemon off;
pid $WORK/nginx-backend/nginx.pid;
error_log $WORK/nginx-backend/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx-backend/body;
    proxy_temp_path $WORK/nginx-backend/proxy;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    server {
        listen 127.0.0.1:$BACKEND_PORT backlog=4096;
        location / { return 200 "ok\n"; }
    }
}
EOF

# nginx runs single-process (master_process off) everywhere so one pid does
# all the work, for /proc accounting and for callgrind alike.
cat >"$WORK/nginx-proxy/nginx.conf" <<EOF
worker_processes 1;
master_process off;
daemon off;
pid $WORK/nginx-proxy/nginx.pid;
error_log $WORK/nginx-proxy/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx-proxy/body;
    proxy_temp_path $WORK/nginx-proxy/proxy;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    upstream backend {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive 256;
        keepalive_requests 100000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:${PORT[nginx]} backlog=4096;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
    # h2c with prior knowledge (nginx < 1.25: http2 on a plaintext listen).
    # keepalive_requests/keepalive_timeout also bound HTTP/2 connections.
    server {
        listen 127.0.0.1:${H2PORT[nginx]} http2 backlog=4096;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF

cat >"$WORK/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4000

defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s
    timeout http-request 30s

frontend fe
    bind 127.0.0.1:${PORT[haproxy]}
    default_backend be

frontend fe_h2
    bind 127.0.0.1:${H2PORT[haproxy]} proto h2
    default_backend be

backend be
    http-reuse always
    server backend 127.0.0.1:$BACKEND_PORT
EOF

cat >"$WORK/waygate.yaml" <<EOF
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
  namespace: bench
spec:
  gatewayClassName: istio
  listeners:
  - name: http
    port: ${PORT[waygate]}
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: Same
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: route
  namespace: bench
spec:
  parentRefs:
  - name: gw
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /
    backendRefs:
    - name: backend
      port: 80
---
apiVersion: v1
kind: Service
metadata:
  name: backend
  namespace: bench
spec:
  ports:
  - name: http
    port: 80
    targetPort: $BACKEND_PORT
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: backend-1
  namespace: bench
  labels:
    kubernetes.io/service-name: backend
addressType: IPv4
ports:
- name: http
  port: $BACKEND_PORT
endpoints:
- addresses: ["127.0.0.1"]
  conditions:
    ready: true
EOF

# target_cmd TARGET: the proxy's command line (no pinning/valgrind prefix).
target_cmd() {
    case $1 in
        nginx)   CMD=(nginx -p "$WORK/nginx-proxy" -c "$WORK/nginx-proxy/nginx.conf") ;;
        haproxy) CMD=(haproxy -db -f "$WORK/haproxy.cfg") ;;
        # WAYGATE_THREADS is exported above, not set with env(1): under
        # valgrind an exec'd child would run uninstrumented.
        waygate) CMD=("$WAYGATE" run --config "$WORK/waygate.yaml"
                      --bind 127.0.0.1 --admin "127.0.0.1:$WAYGATE_ADMIN_PORT") ;;
    esac
}
# h2_ok FILE: h2load's output in FILE says all its requests got a 2xx.
h2_ok() {
    awk '/^requests:/ { n = $2; ok = $8 } /^status codes:/ { x = $3 }
         END { exit !(n > 0 && ok == n && x == n) }' "$1" 2>/dev/null
}
# wait_h2 URL PID TIMEOUT NAME: poll until one h2c (prior knowledge) request
# to URL gets a 2xx (bounded).
wait_h2() {
    local url=$1 pid=$2 timeout=$3 name=$4 deadline f="$WORK/$4.h2check.txt"
    deadline=$(( $(date +%s) + timeout ))
    while (( $(date +%s) < deadline )); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$WORK/$name.log" >&2 || true
            die "$name exited before $url answered over h2c"
        fi
        timeout --kill-after=2 10 h2load -n 1 -c 1 "$url" >"$f" 2>&1 || true
        h2_ok "$f" && return 0
        sleep 0.2
    done
    tail -n 30 "$WORK/$name.log" "$f" >&2 || true
    die "$name: $url did not answer 2xx over h2c within ${timeout}s"
}
# start_target TARGET LOGNAME TIMEOUT PREFIX...: start pinned to PROXY_CPU,
# wait until it proxies a request (HTTP/1.1, and h2c when that scenario is
# on); sets LAST_PID.
start_target() {
    local t=$1 name=$2 timeout=$3; shift 3
    target_cmd "$t"
    start_bg "$name" taskset -c "$PROXY_CPU" "$@" "${CMD[@]}"
    local pid=$LAST_PID
    if [[ $t == waygate ]]; then
        wait_http "http://127.0.0.1:$WAYGATE_ADMIN_PORT/ready" "$pid" "$timeout" "$name"
    fi
    wait_http "http://127.0.0.1:${PORT[$t]}/" "$pid" "$timeout" "$name"
    if has_scenario h2; then
        wait_h2 "http://127.0.0.1:${H2PORT[$t]}/" "$pid" "$timeout" "$name"
    fi
    LAST_PID=$pid
}

# cpu_ticks PID: utime+stime (clock ticks) of PID and its descendants.
cpu_ticks() {
    local pid=$1 total=0 v c
    v=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13}') || v=0
    total=$(( total + ${v:-0} ))
    for c in $(pgrep -P "$pid" 2>/dev/null || true); do
        total=$(( total + $(cpu_ticks "$c") ))
    done
    echo "$total"
}
# cpu_stat CPU: "<process ticks> <irq+softirq ticks>" of one CPU from
# /proc/stat (process ticks = user+nice+system+steal: the proxy's own time
# plus anything else that ran there).
cpu_stat() {
    awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $9, $7 + $8 }' /proc/stat
}
# child_cpu VAR: set VAR to the CPU seconds (user+sys) of all waited-for
# children of this shell so far; wrk's time lands here once it exits. Must
# not run in a subshell (a subshell has its own, empty, account).
child_cpu() {
    times >"$WORK/times"
    printf -v "$1" '%s' "$(awk 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); t += a[1] * 60 + a[2] }
                                      printf "%.3f\n", t }' "$WORK/times")"
}
# vm_hwm PID: peak RSS in kB of PID plus its descendants.
vm_hwm() {
    local pid=$1 total=0 v c
    v=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || v=0
    total=$(( total + ${v:-0} ))
    for c in $(pgrep -P "$pid" 2>/dev/null || true); do
        total=$(( total + $(vm_hwm "$c") ))
    done
    echo "$total"
}

# ------------------------------------------------------------------- meta --
: >"$WORK/rounds.tsv"
: >"$WORK/extra.tsv"
meta() { printf '%s\t%s\n' "$1" "$2" >>"$WORK/meta.tsv"; }
: >"$WORK/meta.tsv"
meta date "$(date -u '+%Y-%m-%d %H:%M UTC')"
meta cpu "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo) × $NCPU"
meta kernel "$(uname -r)"
meta nginx "$(nginx -v 2>&1 | sed 's/^nginx version: //')"
meta haproxy "$(haproxy -v 2>/dev/null | awk 'NR==1 {print $3}')"
meta wrk "$(wrk -v 2>&1 | awk 'NR==1 {print $2}')"
meta h2load "$(h2load --version 2>&1 | awk 'NR==1 {print $2}')"
meta valgrind "$(valgrind --version)"
if [[ " $TARGETS " == *" waygate "* ]]; then
    meta waygate "$WAYGATE, modified $(date -u -r "$WAYGATE" '+%Y-%m-%d %H:%M UTC'); source tree git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)$(git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null || echo ' + local changes')"
fi
meta targets "$TARGETS"
meta scenarios "$SCENARIOS"
meta settings "SCENARIOS=\"$SCENARIOS\" ROUNDS=$ROUNDS DURATION=${DURATION}s WARMUP=${WARMUP}s CONNS=$CONNS (wrk -t1) H2_CONNS=$H2_CONNS H2_STREAMS=$H2_STREAMS (h2load -t1) CALLGRIND=$CALLGRIND H2_CALLGRIND=$H2_CALLGRIND CG_WARMUP=$CG_WARMUP CG_REQUESTS=$CG_REQUESTS PROXY_CPU=$PROXY_CPU CLIENT_CPU=$CLIENT_CPU"
for kv in "proxy_cpu $PROXY_CPU" "client_cpu $CLIENT_CPU" "conns $CONNS" "rounds $ROUNDS" \
          "h2_conns $H2_CONNS" "h2_streams $H2_STREAMS" \
          "duration $DURATION" "cg_requests $( (( CALLGRIND )) && echo "$CG_REQUESTS" || echo 0)" \
          "h2_cg_requests $( (( H2_CALLGRIND )) && echo "$CG_REQUESTS" || echo 0)"; do
    meta "${kv%% *}" "${kv#* }"
done
meta loadavg_start "$(cut -d' ' -f1-3 /proc/loadavg)"
CLK_TCK=$(getconf CLK_TCK)
meta clk_tck "$CLK_TCK"
read -r la _ </proc/loadavg
if awk -v l="$la" 'BEGIN { exit !(l > 0.5) }'; then
    log "WARNING: load average is $la before the run; other work on this machine will skew the numbers"
fi

# ----------------------------------------------------------------- backend --
log "work dir $WORK"
log "starting backend nginx on 127.0.0.1:$BACKEND_PORT (CPU $CLIENT_CPU)"
start_bg backend taskset -c "$CLIENT_CPU" nginx -p "$WORK/nginx-backend" -c "$WORK/nginx-backend/nginx.conf"
BACKEND_PID=$LAST_PID
wait_http "http://127.0.0.1:$BACKEND_PORT/" "$BACKEND_PID" "$READY_TIMEOUT" backend

# ---------------------------------------------------- phase 1: throughput --
# run_client SCENARIO TARGET SECONDS OUTFILE: one bounded load run from
# CLIENT_CPU: wrk over HTTP/1.1 (h1) or h2load over h2c prior knowledge (h2).
run_client() {
    local s=$1 t=$2 secs=$3 out=$4 url n
    url="http://127.0.0.1:$(port_of "$s" "$t")/"
    if [[ $s == h1 ]]; then
        run_wait timeout --kill-after=5 $(( secs + 30 )) \
            taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"$secs"s --latency "$url" >"$out" 2>&1 \
            || die "wrk against $t failed: $(tail -n 5 "$out")"
    else
        run_wait timeout --kill-after=5 $(( secs + 30 )) \
            taskset -c "$CLIENT_CPU" h2load -t 1 -c "$H2_CONNS" -m "$H2_STREAMS" -D "$secs" "$url" >"$out" 2>&1 \
            || die "h2load against $t failed: $(tail -n 5 "$out")"
        n=$(awk '/^requests:/ {print $8}' "$out")
        (( ${n:-0} > 0 )) || die "h2load against $t: no request succeeded: $(tail -n 12 "$out")"
    fi
}
# rps_of SCENARIO FILE: the req/s the client reported.
rps_of() {
    if [[ $1 == h1 ]]; then awk '/^Requests\/sec/ {print $2}' "$2"
    else awk '/^finished in/ {print $4}' "$2"; fi
}

read -r -a TLIST <<<"$TARGETS"
NT=${#TLIST[@]}
for scen in $SCENARIOS; do
    # Fresh proxy processes for each scenario, so peak RSS is per scenario.
    unset PID
    declare -A PID=()
    for t in $TARGETS; do
        log "[$scen] starting $t on 127.0.0.1:$(port_of "$scen" "$t") (CPU $PROXY_CPU)"
        start_target "$t" "$t.$scen" "$READY_TIMEOUT"
        PID[$t]=$LAST_PID
    done

    if (( WARMUP > 0 )); then
        for t in $TARGETS; do
            log "[$scen] warm-up $t ${WARMUP}s"
            run_client "$scen" "$t" "$WARMUP" "$WORK/client.$scen.$t.warmup.txt"
        done
    fi

    for (( r = 1; r <= ROUNDS; r++ )); do
        for (( i = 0; i < NT; i++ )); do
            t=${TLIST[$(( (i + r - 1) % NT ))]}   # rotate the order every round
            kill -0 "${PID[$t]}" 2>/dev/null || die "$t (pid ${PID[$t]}) died; see $WORK/$t.$scen.log"
            f="$WORK/client.$scen.$t.$r.txt"
            child_cpu w0; k0=$(cpu_ticks "$BACKEND_PID"); read -r cp0 cq0 < <(cpu_stat "$CLIENT_CPU")
            c0=$(cpu_ticks "${PID[$t]}"); read -r p0 q0 < <(cpu_stat "$PROXY_CPU"); s0=$(date +%s.%N)
            run_client "$scen" "$t" "$DURATION" "$f"
            c1=$(cpu_ticks "${PID[$t]}"); read -r p1 q1 < <(cpu_stat "$PROXY_CPU"); s1=$(date +%s.%N)
            read -r cp1 cq1 < <(cpu_stat "$CLIENT_CPU"); k1=$(cpu_ticks "$BACKEND_PID"); child_cpu w1
            # columns: scenario target round proxy_ticks wall_s
            # proxy_cpu_proc_ticks proxy_cpu_irq_ticks clientfile
            # client_cpu_busy_ticks backend_ticks client_s
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$scen" "$t" "$r" $(( c1 - c0 )) \
                "$(awk -v a="$s0" -v b="$s1" 'BEGIN { printf "%.3f", b - a }')" \
                $(( p1 - p0 )) $(( q1 - q0 )) "$f" $(( cp1 - cp0 + cq1 - cq0 )) $(( k1 - k0 )) \
                "$(awk -v a="$w0" -v b="$w1" 'BEGIN { printf "%.3f", b - a }')" >>"$WORK/rounds.tsv"
            log "[$scen] round $r/$ROUNDS $t: $(rps_of "$scen" "$f") req/s"
        done
    done

    for t in $TARGETS; do
        printf '%s\t%s\trss_kb\t%s\n' "$scen" "$t" "$(vm_hwm "${PID[$t]}")" >>"$WORK/extra.tsv"
        stop_pid "${PID[$t]}"
    done
done
meta loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"

# ------------------------------------------- phase 2: instructions/request --
# One connection, one request at a time: h2load --h1 for h1, h2load -m 1
# over h2c for h2.
CG_SCENARIOS=()
if (( CALLGRIND )) && has_scenario h1; then CG_SCENARIOS+=(h1); fi
if (( H2_CALLGRIND )) && has_scenario h2; then CG_SCENARIOS+=(h2); fi
for scen in "${CG_SCENARIOS[@]}"; do
    if [[ $scen == h1 ]]; then CG_ARGS=(--h1 -c 1); else CG_ARGS=(-c 1 -m 1); fi
    for t in $TARGETS; do
        log "[$scen] callgrind $t: starting under valgrind"
        out="$WORK/cg.$scen.$t.out"
        rm -f "$out"*
        start_target "$t" "cg-$scen-$t" "$CG_READY_TIMEOUT" \
            valgrind --tool=callgrind --callgrind-out-file="$out"
        pid=$LAST_PID
        url="http://127.0.0.1:$(port_of "$scen" "$t")/"
        log "[$scen] callgrind $t: $CG_WARMUP warm-up requests"
        f="$WORK/h2load.cg.$scen.$t"
        run_wait timeout --kill-after=5 "$CG_TIMEOUT" taskset -c "$CLIENT_CPU" \
            h2load "${CG_ARGS[@]}" -n "$CG_WARMUP" "$url" >"$f.warmup.txt" 2>&1 \
            || die "h2load warm-up against $t failed: $(tail -n 5 "$f.warmup.txt")"
        timeout 60 callgrind_control -z "$pid" >>"$WORK/cg-$scen-$t.control.log" 2>&1 \
            || die "callgrind_control -z $pid failed"
        log "[$scen] callgrind $t: $CG_REQUESTS counted requests"
        run_wait timeout --kill-after=5 "$CG_TIMEOUT" taskset -c "$CLIENT_CPU" \
            h2load "${CG_ARGS[@]}" -n "$CG_REQUESTS" "$url" >"$f.txt" 2>&1 \
            || die "h2load against $t failed: $(tail -n 5 "$f.txt")"
        timeout 60 callgrind_control -d "$pid" >>"$WORK/cg-$scen-$t.control.log" 2>&1 \
            || die "callgrind_control -d $pid failed"
        dump="$out.1"
        for i in $(seq 100); do [[ -s $dump ]] && break; sleep 0.1; done
        [[ -s $dump ]] || die "no callgrind dump $dump (valgrind does not follow exec: \$WAYGATE must be the ELF binary, not a wrapper script)"
        ir=$(awk '/^summary:/ {print $2; exit}' "$dump")
        [[ -n $ir ]] || ir=$(awk '/^totals:/ {print $2; exit}' "$dump")
        # Requests that completed with a 2xx status.
        ok=$(awk '/^status codes:/ {print $3}' "$f.txt")
        printf '%s\t%s\tcg_ir\t%s\n%s\t%s\tcg_n\t%s\n%s\t%s\tcg_ok\t%s\n' \
            "$scen" "$t" "$ir" "$scen" "$t" "$CG_REQUESTS" "$scen" "$t" "${ok:-0}" >>"$WORK/extra.tsv"
        log "[$scen] callgrind $t: $ir Ir / $CG_REQUESTS requests (${ok:-0} got a 2xx)"
        stop_pid "$pid"
    done
done

# ------------------------------------------------------------------ report --
if [[ -z $OUT ]]; then
    OUT="$ROOT/benches/results-$(date +%Y-%m-%d).md"
    [[ -e $OUT ]] && OUT="$ROOT/benches/results-$(date +%Y-%m-%d-%H%M%S).md"
fi
helper report "$WORK" >"$OUT"
cat "$OUT"
log "wrote $OUT"
log "copy the summary table into benches/RESULTS.md to keep it"
