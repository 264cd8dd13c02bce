#!/usr/bin/env python3
"""Helpers for run.sh (Python 3.11 standard library only).

  bench.py code URL        print the HTTP status of GET URL (000 on error)
  bench.py portfree PORT   exit 0 if nothing listens on 127.0.0.1:PORT
  bench.py report WORKDIR  print the markdown report of a run
  bench.py cargo-exe NAME  read cargo --message-format=json on stdin, print
                           the path of bin target NAME's executable
"""

import http.client
import json
import os
import re
import socket
import statistics
import sys
import urllib.parse


def cmd_code(url: str) -> int:
    u = urllib.parse.urlsplit(url)
    try:
        conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=2)
        conn.request("GET", u.path or "/")
        status = conn.getresponse().status
        conn.close()
    except OSError:
        print("000")
        return 1
    print(status)
    return 0


def cmd_portfree(port: str) -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", int(port)))
    except OSError:
        return 1
    finally:
        s.close()
    return 0


# ------------------------------------------------------------------ report --

UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def parse_wrk(path: str) -> dict:
    text = open(path, encoding="utf-8", errors="replace").read()
    out = {"rps": None, "requests": None, "p50_ms": None, "p99_ms": None,
           "mean_ms": None, "errors": 0}
    m = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    if m:
        out["rps"] = float(m.group(1))
    m = re.search(r"^\s*(\d+) requests in ", text, re.M)
    if m:
        out["requests"] = int(m.group(1))
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
        if m:
            out[key] = float(m.group(1)) * UNIT_MS[m.group(2)]
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if m:
        out["errors"] += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        out["errors"] += sum(int(g) for g in m.groups())
    return out


def parse_h2load(path: str) -> dict:
    """h2load's summary: req/s, finished requests, mean request time, errors."""
    text = open(path, encoding="utf-8", errors="replace").read()
    out = {"rps": None, "requests": None, "p50_ms": None, "p99_ms": None,
           "mean_ms": None, "errors": 0}
    m = re.search(r"^finished in [\d.]+\w*, ([\d.]+) req/s", text, re.M)
    if m:
        out["rps"] = float(m.group(1))
    m = re.search(r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", text, re.M)
    if m:
        total, _started, done, ok, failed, errored, tmo = (int(g) for g in m.groups())
        out["requests"] = done
        # "failed" already includes errored and timed-out requests and those
        # with a 4xx/5xx status; h2load counts a 3xx as a success, we don't.
        out["errors"] += failed
        m2 = re.search(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text, re.M)
        if m2:
            out["errors"] += int(m2.group(2))
    m = re.search(r"^time for request:\s+(\S+)\s+(\S+)\s+(\S+)", text, re.M)
    if m:
        v = re.fullmatch(r"([\d.]+)(us|ms|s|m)", m.group(3))
        if v:
            out["mean_ms"] = float(v.group(1)) * UNIT_MS[v.group(2)]
    return out


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, spec, suffix=""):
    return "n/a" if x is None else format(x, spec) + suffix


SCENARIO_TITLE = {
    "h1": "HTTP/1.1 (wrk)",
    "h2": "HTTP/2 cleartext, prior knowledge (h2load)",
}


def cmd_report(work: str) -> int:
    meta = {}
    with open(os.path.join(work, "meta.tsv"), encoding="utf-8") as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("\t")
            meta[k] = v
    clk = float(meta.get("clk_tck", "100"))
    targets = meta.get("targets", "").split()
    scenarios = meta.get("scenarios", "h1").split()

    rounds = []  # dicts
    with open(os.path.join(work, "rounds.tsv"), encoding="utf-8") as f:
        for line in f:
            (scen, t, r, ticks, wall, proc, irq, clientfile,
             cbusy, bticks, client_s) = line.rstrip("\n").split("\t")
            w = parse_wrk(clientfile) if scen == "h1" else parse_h2load(clientfile)
            ticks, wall, proc, irq = int(ticks), float(wall), int(proc), int(irq)
            cbusy, bticks, client_ticks = int(cbusy), int(bticks), float(client_s) * clk
            row = {"scenario": scen, "target": t, "round": int(r), **w}
            pct = (lambda x: 100.0 * x / clk / wall) if wall > 0 else (lambda x: None)
            row["cpu_pct"] = pct(ticks)
            # The kernel charges softirq time both to the CPU's softirq column
            # and to the task it interrupted, so the CPU's busy time (all
            # columns but idle/iowait) minus the proxy's time is what other
            # processes (and softirq outside the proxy) used.
            row["busy_pct"] = pct(proc + irq)
            row["other_pct"] = pct(max(proc + irq - ticks, 0))
            # The same on the client's CPU, where the client and the backend run.
            row["cother_pct"] = pct(max(cbusy - bticks - client_ticks, 0))
            row["us_per_req"] = (1e6 * ticks / clk / w["requests"]) if w["requests"] else None
            rounds.append(row)

    extra = {}  # (scenario, target) -> {key: value}
    with open(os.path.join(work, "extra.tsv"), encoding="utf-8") as f:
        for line in f:
            scen, t, k, v = line.rstrip("\n").split("\t")
            extra.setdefault((scen, t), {})[k] = v

    def is_clean(x):
        return (x is not None and x["other_pct"] is not None and x["other_pct"] <= 5
                and x["cother_pct"] is not None and x["cother_pct"] <= 5)

    o = []
    o.append(f"# waygate load benchmark, {meta.get('date', '')}")
    o.append("")
    o.append(
        "Reverse proxy, one route (any host, prefix `/`) to one loopback nginx backend "
        "answering `200 \"ok\\n\"` over HTTP/1.1, keep-alive on both sides. The proxy "
        "runs alone on CPU {p} with one worker; the load generator (one thread) and the "
        "backend share CPU {cl}. {n} rounds of {d} s per target and scenario, "
        "interleaved in a rotating order; medians over the rounds."
        .format(p=meta.get("proxy_cpu", "?"), cl=meta.get("client_cpu", "?"),
                n=meta.get("rounds", "?"), d=meta.get("duration", "?"))
    )

    for scen in scenarios:
        srounds = [x for x in rounds if x["scenario"] == scen]
        if not srounds:
            continue
        by_round = {}
        for row in srounds:
            by_round.setdefault(row["round"], {})[row["target"]] = row
        cg_key = "cg_requests" if scen == "h1" else "h2_cg_requests"
        cg_n = meta.get(cg_key, "0")
        o.append("")
        o.append(f"## {SCENARIO_TITLE.get(scen, scen)}")
        o.append("")
        if scen == "h1":
            o.append(
                "Clients speak HTTP/1.1: wrk, 1 thread, {c} keep-alive connections.{cg}".format(
                    c=meta.get("conns", "?"),
                    cg=(" Instructions per request: callgrind, %s keep-alive requests on one "
                        "connection (`h2load --h1 -c 1`) after a warm-up." % cg_n)
                    if cg_n != "0" else " Callgrind phase skipped."))
        else:
            c, m = meta.get("h2_conns", "?"), meta.get("h2_streams", "?")
            inflight = (int(c) * int(m)) if c.isdigit() and m.isdigit() else "?"
            o.append(
                "Clients speak HTTP/2 cleartext with prior knowledge (h2c): h2load, 1 thread, "
                "{c} connections × {m} concurrent streams ({f} requests in flight). The proxies "
                "still talk HTTP/1.1 keep-alive to the backend.{cg}".format(
                    c=c, m=m, f=inflight,
                    cg=(" Instructions per request: callgrind, %s requests on one h2c "
                        "connection, one stream at a time (`h2load -c 1 -m 1`), after a "
                        "warm-up." % cg_n)
                    if cg_n != "0" else " Callgrind phase skipped."))
        o.append("")

        summary = {}
        for t in targets:
            rows = [x for x in srounds if x["target"] == t]
            rps = [x["rps"] for x in rows if x["rps"] is not None]
            ratios = []
            for rr in by_round.values():
                if t in rr and "nginx" in rr and rr[t]["rps"] and rr["nginx"]["rps"]:
                    ratios.append(rr[t]["rps"] / rr["nginx"]["rps"])
            e = extra.get((scen, t), {})
            ir_req = None
            cg_fail = None
            if "cg_ir" in e and e["cg_ir"] and int(e.get("cg_n", "0")) > 0:
                ir_req = int(e["cg_ir"]) / int(e["cg_n"])
                cg_fail = max(int(e["cg_n"]) - int(e.get("cg_ok", "0") or 0), 0)
            rss = int(e["rss_kb"]) / 1024 if e.get("rss_kb") else None
            summary[t] = {
                "rps": med(rps),
                "rps_min": min(rps) if rps else None,
                "rps_max": max(rps) if rps else None,
                "ratio": med(ratios),
                "us": med([x["us_per_req"] for x in rows]),
                "cpu": med([x["cpu_pct"] for x in rows]),
                "p50": med([x["p50_ms"] for x in rows]),
                "p99": med([x["p99_ms"] for x in rows]),
                "mean": med([x["mean_ms"] for x in rows]),
                "rss": rss,
                "ir": ir_req,
                "errors": sum(x["errors"] for x in rows) + (cg_fail or 0),
            }
        ng_ir = summary.get("nginx", {}).get("ir")

        lat_head = "p50 / p99 latency (ms)" if scen == "h1" else "mean latency (ms)"
        o.append(
            f"| target | req/s (median) | ratio to nginx | req/s min–max | CPU µs/req "
            f"| proxy CPU % | {lat_head} | peak RSS (MiB) | instr/req (callgrind) "
            f"| instr vs nginx | errors |"
        )
        o.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for t in targets:
            s = summary[t]
            ir_ratio = (s["ir"] / ng_ir) if (s["ir"] and ng_ir) else None
            lat = (f"{fmt(s['p50'], '.2f')} / {fmt(s['p99'], '.2f')}" if scen == "h1"
                   else fmt(s["mean"], ".2f"))
            o.append(
                "| {t} | {rps} | {ratio} | {lo}–{hi} | {us} | {cpu} | {lat} | {rss} | {ir} | {irr} | {err} |".format(
                    t=t,
                    rps=fmt(s["rps"], ",.0f"),
                    ratio=fmt(s["ratio"], ".2f", "×"),
                    lo=fmt(s["rps_min"], ",.0f"),
                    hi=fmt(s["rps_max"], ",.0f"),
                    us=fmt(s["us"], ".1f"),
                    cpu=fmt(s["cpu"], ".0f"),
                    lat=lat,
                    rss=fmt(s["rss"], ".1f"),
                    ir=fmt(s["ir"], ",.0f"),
                    irr=fmt(ir_ratio, ".2f", "×"),
                    err=s["errors"],
                )
            )
        o.append("")
        disturbed = sum(1 for x in srounds if not is_clean(x))
        o.append(
            f"Disturbed rounds (other processes took > 5% of the proxy's or the client's CPU): "
            f"{disturbed} of {len(srounds)}." + (" The req/s and CPU columns are noisy; "
            "instructions per request are not affected." if disturbed else "")
        )
        if disturbed:
            clean = is_clean
            parts = []
            for t in targets:
                rps = [x["rps"] for x in srounds if x["target"] == t and clean(x) and x["rps"]]
                ratios = [rr[t]["rps"] / rr["nginx"]["rps"] for rr in by_round.values()
                          if clean(rr.get(t)) and clean(rr.get("nginx"))
                          and rr[t]["rps"] and rr["nginx"]["rps"]]
                us = [x["us_per_req"] for x in srounds if x["target"] == t and clean(x)]
                parts.append(
                    f"{t} {fmt(med(rps), ',.0f')} req/s (n={len(rps)}), ratio to "
                    f"nginx {fmt(med(ratios), '.2f', '×')}, {fmt(med(us), '.1f')} CPU µs/req"
                )
            o.append("")
            if disturbed == len(srounds):
                o.append("No undisturbed round: rerun on an idle machine for throughput numbers.")
            else:
                o.append("Undisturbed rounds only (medians): " + "; ".join(parts) + ".")

    o.append("")
    o.append(
        "*proxy CPU %*: the proxy's utime+stime over the wall time of a round; well "
        "under 100 means the proxy was not the bottleneck (client/backend core was), "
        "so its req/s is a lower bound. *errors*: non-2xx responses and socket "
        "errors seen by wrk, or failed and non-2xx requests seen by h2load, plus "
        "callgrind requests that got no 2xx." + (
            " *mean latency* (h2): h2load's mean time for a request (it reports no "
            "percentiles)." if any(x["scenario"] == "h2" for x in rounds) else "")
    )
    o.append("")
    o.append("## Machine and settings")
    o.append("")
    for k in ("cpu", "kernel", "nginx", "haproxy", "waygate", "wrk", "h2load",
              "valgrind", "settings", "loadavg_start", "loadavg_end"):
        if k in meta:
            o.append(f"- {k}: {meta[k]}")
    o.append("")
    o.append("## Rounds")
    o.append("")
    o.append("| scenario | round | target | req/s | CPU µs/req | proxy CPU % | CPU busy % | other % | client-CPU other % | latency (ms) | errors |")
    o.append("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rounds:
        lat = (fmt(row["p99_ms"], ".2f") + " p99" if row["scenario"] == "h1"
               else fmt(row["mean_ms"], ".2f") + " mean")
        o.append(
            "| {s} | {r} | {t} | {rps} | {us} | {cpu} | {busy} | {oth} | {coth} | {lat} | {err} |".format(
                s=row["scenario"], r=row["round"], t=row["target"], rps=fmt(row["rps"], ",.0f"),
                us=fmt(row["us_per_req"], ".1f"), cpu=fmt(row["cpu_pct"], ".0f"),
                busy=fmt(row["busy_pct"], ".0f"), oth=fmt(row["other_pct"], ".0f"),
                coth=fmt(row["cother_pct"], ".0f"), lat=lat, err=row["errors"],
            )
        )
    o.append("")
    o.append(
        "Percentages are of the proxy's CPU over the round. *CPU busy %*: all "
        "non-idle time of that CPU. *other %*: busy minus the proxy's own time, "
        "i.e. other processes (and softirq outside the proxy). *client-CPU other %*: "
        "the same on the client's CPU (its busy time minus the load generator's and "
        "the backend's). Above a few percent in either, the round was disturbed and "
        "its req/s is not trustworthy."
    )
    print("\n".join(o))
    return 0


def cmd_cargo_exe(name: str) -> int:
    """Print the executable of bin target NAME from cargo's JSON messages."""
    exe = None
    for line in sys.stdin:
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        t = msg.get("target") or {}
        if (msg.get("reason") == "compiler-artifact" and t.get("name") == name
                and "bin" in t.get("kind", []) and msg.get("executable")):
            exe = msg["executable"]
    if exe is None:
        return 1
    print(exe)
    return 0


def main(argv) -> int:
    if len(argv) == 3 and argv[1] == "code":
        return cmd_code(argv[2])
    if len(argv) == 3 and argv[1] == "portfree":
        return cmd_portfree(argv[2])
    if len(argv) == 3 and argv[1] == "cargo-exe":
        return cmd_cargo_exe(argv[2])
    if len(argv) == 3 and argv[1] == "report":
        return cmd_report(argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
