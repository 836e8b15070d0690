#!/usr/bin/env python3
"""Turns one invocation of the benchmark suite into benches/results/{summary.md,summary.json,chart.svg}.

With several --criterion directories (scripts/bench.sh --repeat N: N whole runs back
to back), each figure is the median over the runs, and the key ratios are given per
run with their min–max spread, each ratio computed within one run.

Reads criterion's output (<criterion>/**/new/{benchmark,estimates}.json) and the
suite's own result files (<criterion>/rustok/{codec_sizes,latency,paced_publish}.json). Figures
are criterion's median time per iteration (robust to the spikes of a shared
machine); throughput is the iteration's element count divided by it.

Standard library only: the chart is written by hand as SVG.
"""

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
from pathlib import Path


def load_criterion(root: Path) -> dict:
    """full_id -> {median_ns, mean_ns, elements}"""
    results = {}
    for bench in root.rglob("new/benchmark.json"):
        estimates = bench.parent / "estimates.json"
        if not estimates.exists():
            continue
        meta = json.loads(bench.read_text())
        est = json.loads(estimates.read_text())
        throughput = meta.get("throughput") or {}
        results[meta["full_id"]] = {
            "median_ns": est["median"]["point_estimate"],
            "mean_ns": est["mean"]["point_estimate"],
            "elements": throughput.get("Elements", 1),
        }
    return results


def read_json(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def median(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def combine(runs: list) -> dict:
    """Per benchmark id, the median over the runs of each run's median time."""
    ids = sorted({i for run in runs for i in run})
    out = {}
    for i in ids:
        present = [run[i] for run in runs if i in run]
        out[i] = {
            "median_ns": median(r["median_ns"] for r in present),
            "mean_ns": median(r["mean_ns"] for r in present),
            "elements": present[0]["elements"],
        }
    return out


def combine_json(values: list):
    """Median of each numeric field (recursively) of the runs' result files."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    first = values[0]
    if isinstance(first, dict):
        return {k: combine_json([v.get(k) for v in values if isinstance(v, dict)]) for k in first}
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        return median(values)
    return first


class Figures:
    def __init__(self, results):
        self.results = results

    def ns(self, full_id):
        r = self.results.get(full_id)
        return r["median_ns"] if r else None

    def rate(self, full_id):
        """Messages (elements) per second."""
        r = self.results.get(full_id)
        if not r or not r["median_ns"]:
            return None
        return r["elements"] * 1e9 / r["median_ns"]


def fmt_rate(rate):
    if rate is None:
        return "–"
    if rate >= 1e6:
        return f"{rate / 1e6:.2f} M/s"
    if rate >= 1e3:
        return f"{rate / 1e3:.0f} k/s"
    return f"{rate:.0f} /s"


def fmt_mb(rate, size):
    if rate is None:
        return "–"
    return f"{rate * size / 1e6:,.0f} MB/s"


def fmt_ns(ns):
    if ns is None:
        return "–"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.0f} ns"


def us(v):
    if v is None:
        return "–"
    return f"{v / 1000:.1f} ms" if v >= 1000 else f"{v:.0f} µs"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt_x(x, digits=2):
    return "–" if x is None else f"{x:.{digits}f}×"


def fmt_pct(x):
    return "–" if x is None else f"{x * 100:.0f}%"


def verdict(ok):
    return "–" if ok is None else ("met" if ok else "**missed**")


def machine(args):
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gib = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    try:
        rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        rustc = "rustc"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_gib) if mem_gib else None,
        "kernel": platform.release(),
        "rustc": rustc,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": args.seconds,
        "load_before": args.load_before,
        "load_after": args.load_after,
    }


def build(results, sizes, latency, paced=None):
    f = Figures(results)
    out = {
        "codec": [],
        "typed": [],
        "embedded": [],
        "tcp": [],
        "latency": latency or {},
        "paced": paced or {},
        "targets": [],
    }

    # codec
    for event in ["small", "medium", "envelope"]:
        row = {"event": event}
        for op in ["encode", "decode"]:
            for codec in ["json", "postcard"]:
                row[f"{op}_{codec}_ns"] = f.ns(f"codec/{op}/{event}/{codec}")
            row[f"{op}_speedup"] = ratio(row[f"{op}_json_ns"], row[f"{op}_postcard_ns"])
        s = (sizes or {}).get(event, {})
        row["json_bytes"] = s.get("json")
        row["postcard_bytes"] = s.get("postcard")
        row["size_ratio"] = ratio(row["postcard_bytes"], row["json_bytes"])
        out["codec"].append(row)

    # typed overhead
    for codec in ["json", "postcard"]:
        for op in ["publish", "consume"]:
            raw_name = "raw_encode" if op == "publish" else "raw_decode"
            row = {
                "codec": codec,
                "op": op,
                "typed": f.rate(f"typed_overhead/{op}/{codec}/typed"),
                "raw_codec": f.rate(f"typed_overhead/{op}/{codec}/{raw_name}"),
                "raw_bytes": f.rate(f"typed_overhead/{op}/{codec}/raw_bytes"),
            }
            row["cost_vs_raw_codec"] = (
                None if row["typed"] is None or not row["raw_codec"] else 1 - row["typed"] / row["raw_codec"]
            )
            row["cost_vs_raw_bytes"] = (
                None if row["typed"] is None or not row["raw_bytes"] else 1 - row["typed"] / row["raw_bytes"]
            )
            out["typed"].append(row)

    # embedded
    for op, variants in [
        ("publish", ["never", "interval"]),
        ("consume", [None]),
        ("poll", [None]),
    ]:
        for policy in variants:
            for batch in [1, 1000]:
                for size, label in [(100, "100B"), (1000, "1KB")]:
                    fn = f"{op}/{policy}/batch{batch}" if policy else f"{op}/batch{batch}"
                    rate = f.rate(f"embedded/{fn}/{label}")
                    out["embedded"].append(
                        {"op": op, "policy": policy or "never", "batch": batch, "size": size, "rate": rate}
                    )

    # tcp
    for size, label in [(100, "100B"), (1000, "1KB")]:
        for op, clients in [
            ("publish", ["sdk_producer", "remote_connector", "transport"]),
            ("consume", ["sdk_consumer", "remote_connector", "transport"]),
        ]:
            base = f.rate(f"tcp/{op}/{label}/{clients[0]}")
            for client in clients:
                rate = f.rate(f"tcp/{op}/{label}/{client}")
                out["tcp"].append(
                    {"op": op, "size": size, "client": client, "rate": rate, "vs_sdk": ratio(rate, base)}
                )

    # targets
    env = next(r for r in out["codec"] if r["event"] == "envelope")
    out["targets"].append(
        {
            "target": "Postcard encodes the envelope event ≥ 3× faster than JSON",
            "measured": fmt_x(env["encode_speedup"]),
            "ok": None if env["encode_speedup"] is None else env["encode_speedup"] >= 3,
        }
    )
    out["targets"].append(
        {
            "target": "… in ≤ half the bytes",
            "measured": "–"
            if env["size_ratio"] is None
            else f"{env['postcard_bytes']} B vs {env['json_bytes']} B ({env['size_ratio']:.2f})",
            "ok": None if env["size_ratio"] is None else env["size_ratio"] <= 0.5,
        }
    )
    for op in ["publish", "consume"]:
        row = next(r for r in out["typed"] if r["codec"] == "postcard" and r["op"] == op)
        share = ratio(row["typed"], row["raw_codec"])
        baseline = "encode + connector publish" if op == "publish" else "poll + decode"
        out["targets"].append(
            {
                "target": f"`Transport<E>` {op} in process (Postcard, batch 1000) ≥ 90% of {baseline} by hand",
                "measured": "–"
                if share is None
                else f"{fmt_pct(share)} ({fmt_rate(row['typed'])} vs {fmt_rate(row['raw_codec'])})",
                "ok": None if share is None else share >= 0.9,
            }
        )
    for op, client, goal, sdk in [
        ("publish", "transport", 0.9, "`IggyProducer`"),
        ("consume", "transport", 0.9, "`IggyConsumer`"),
        ("consume", "remote_connector", 1.0, "`IggyConsumer`"),
    ]:
        worst = None
        parts = []
        for r in out["tcp"]:
            if r["op"] == op and r["client"] == client and r["vs_sdk"] is not None:
                parts.append(f"{'100 B' if r['size'] == 100 else '1 KB'}: {fmt_pct(r['vs_sdk'])}")
                worst = r["vs_sdk"] if worst is None else min(worst, r["vs_sdk"])
        name = "`RemoteConnector` group" if client == "remote_connector" else "`Transport<E>`"
        out["targets"].append(
            {
                "target": f"{name} {op} over TCP ≥ {goal * 100:.0f}% of the SDK's {sdk}",
                "measured": ", ".join(parts) or "–",
                "ok": None if worst is None else worst >= goal,
            }
        )
    emb = (latency or {}).get("embedded")
    out["targets"].append(
        {
            "target": "embedded in-process publish → delivery p99 < 1 ms at 10,000 events/s",
            "measured": "–" if not emb else f"p99 {emb['p99_us']:.0f} µs (p50 {emb['p50_us']:.0f} µs, p99.9 {emb['p999_us']:.0f} µs)",
            "ok": None if not emb else emb["p99_us"] < 1000,
        }
    )
    base = (latency or {}).get("baseline")
    out["targets"].append(
        {
            "target": "in-process publish → delivery p99 ≤ 1.5× the no-broker channel baseline, 10,000 events/s",
            "measured": "–"
            if not (emb and base)
            else f"{emb['p99_us'] / base['p99_us']:.2f}× (p99 {us(emb['p99_us'])} vs {us(base['p99_us'])})",
            "ok": None if not (emb and base) else emb["p99_us"] <= 1.5 * base["p99_us"],
        }
    )
    tcp = (latency or {}).get("tcp")
    out["targets"].append(
        {
            "target": "TCP publish → delivery p99 < 2 ms at 10,000 events/s (when the baseline allows)",
            "measured": "–"
            if not tcp
            else f"p99 {us(tcp['p99_us'])}, sends late p99 {us(tcp.get('send_late_p99_us'))}"
            + ("" if not base else f" (baseline p99 {us(base['p99_us'])})"),
            "ok": None if not tcp else tcp["p99_us"] < 2000,
        }
    )
    single = (paced or {}).get("tcp")
    floor = (paced or {}).get("tcp_sdk")
    out["targets"].append(
        {
            "target": "one sender awaiting each `Transport<E>::publish` over TCP keeps 10,000 events/s, lateness p99 < 10 ms",
            "measured": "–"
            if not single
            else f"late p99 {us(single['late_p99_us'])}, reached {fmt_rate(single['achieved_per_s'])}"
            + ("" if not floor else f" (SDK `send_messages` alone: late p99 {us(floor['late_p99_us'])})"),
            "ok": None if not single else single["late_p99_us"] < 10_000,
        }
    )
    app = f.rate("embedded/publish/never/batch1000/100B")
    pol = f.rate("embedded/poll/batch1000/100B")
    out["targets"].append(
        {
            "target": "embedded broker append throughput ≥ 3 M msgs/s, batch 1000 × 100 B, policy never",
            "measured": fmt_rate(app),
            "ok": None if app is None else app >= 3e6,
        }
    )
    out["targets"].append(
        {
            "target": "embedded broker poll throughput ≥ 5 M msgs/s, batch 1000 × 100 B",
            "measured": fmt_rate(pol),
            "ok": None if pol is None else pol >= 5e6,
        }
    )
    out["schema_header"] = schema_header(f)
    return out


# Each row: what, the "with the fingerprint" id, the "without" id (schema_header bench).
SCHEMA_HEADER_PAIRS = (
    ("publish, `IggyConnector::publish`", "schema_header/publish/with", "schema_header/publish/without"),
    ("consume, `Subscription<E>` + ack", "schema_header/consume/typed_with", "schema_header/consume/typed_without"),
    ("consume, `poll` + commit (no check)", "schema_header/consume/raw_with", "schema_header/consume/raw_without"),
)


def schema_header(f):
    """The schema fingerprint header's cost: time with / time without, per path."""
    rows = [
        {"name": name, "with_rate": f.rate(w), "without_rate": f.rate(wo), "ratio": ratio(f.ns(w), f.ns(wo))}
        for name, w, wo in SCHEMA_HEADER_PAIRS
    ]
    if all(r["with_rate"] is None for r in rows):
        return None
    return {
        "rows": rows,
        "typed_publish_rate": f.rate("schema_header/publish/typed"),
        "build_ns": f.ns("schema_header/build/fingerprint_header"),
        "check_ns": f.ns("schema_header/check/fingerprint"),
    }


def markdown(data, m):
    lines = []
    add = lines.append
    add("## Benchmark summary")
    add("")
    add(
        f"Measured {m['date']} on {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, Linux {m['kernel']}, "
        f"{m['rustc']}; {m['seconds']} s of measurements; load average {m['load_before']} before, "
        f"{m['load_after']} after (on a shared machine, compare figures only within a run). "
        "Figures are criterion medians; brokers in-process, data on tmpfs, durability `never` unless named."
        + (
            f" {m['runs']} whole runs back to back: each figure is the median over the runs; the spread "
            "table below gives each ratio per run (computed within that run) and its min–max."
            if m.get("runs", 1) > 1
            else ""
        )
    )
    add("")
    add("### Targets")
    add("")
    add("| target | measured | |")
    add("|---|---|---|")
    for t in data["targets"]:
        add(f"| {t['target']} | {t['measured']} | {verdict(t['ok'])} |")
    add("")
    add("### `codec`: JSON vs Postcard (per event)")
    add("")
    add("| event | encode JSON | encode Postcard | speed-up | decode JSON | decode Postcard | speed-up | bytes JSON | bytes Postcard | size |")
    add("|---|---|---|---|---|---|---|---|---|---|")
    for r in data["codec"]:
        add(
            f"| {r['event']} | {fmt_ns(r['encode_json_ns'])} | {fmt_ns(r['encode_postcard_ns'])} | {fmt_x(r['encode_speedup'], 1)} "
            f"| {fmt_ns(r['decode_json_ns'])} | {fmt_ns(r['decode_postcard_ns'])} | {fmt_x(r['decode_speedup'], 1)} "
            f"| {r['json_bytes'] or '–'} | {r['postcard_bytes'] or '–'} | {fmt_pct(r['size_ratio'])} |"
        )
    add("")
    add("### `typed_overhead`: `Transport<E>` vs the connector, embedded, batches of 1000 medium events")
    add("")
    add("| codec | operation | `Transport<E>` | raw + codec | typed cost | raw bytes (pre-encoded) | typed cost |")
    add("|---|---|---|---|---|---|---|")
    for r in data["typed"]:
        add(
            f"| {r['codec']} | {r['op']} | {fmt_rate(r['typed'])} | {fmt_rate(r['raw_codec'])} | {fmt_pct(r['cost_vs_raw_codec'])} "
            f"| {fmt_rate(r['raw_bytes'])} | {fmt_pct(r['cost_vs_raw_bytes'])} |"
        )
    add("")
    add("### `embedded`: in-process throughput (messages/s and payload MB/s)")
    add("")
    add("| operation | batch | 100 B | 1 KB |")
    add("|---|---|---|---|")
    rows = {}
    for r in data["embedded"]:
        key = (r["op"], r["policy"], r["batch"])
        rows.setdefault(key, {})[r["size"]] = r["rate"]
    for (op, policy, batch), by_size in rows.items():
        name = f"publish, policy `{policy}`" if op == "publish" else (
            "consume (group member, commit per poll)" if op == "consume" else "poll by offset (replay read)"
        )
        cells = [f"{fmt_rate(by_size.get(s))} · {fmt_mb(by_size.get(s), s)}" for s in (100, 1000)]
        add(f"| {name} | {batch} | {cells[0]} | {cells[1]} |")
    add("")
    add("### `tcp`: the official SDK vs ours, against the embedded listener over loopback, batches of 1000")
    add("")
    add("| operation | client | 100 B | vs SDK | 1 KB | vs SDK |")
    add("|---|---|---|---|---|---|")
    names = {
        "sdk_producer": "official SDK `IggyProducer` (direct)",
        "sdk_consumer": "official SDK `IggyConsumer` (group)",
        "remote_connector": "`RemoteConnector`",
        "transport": "`Transport<E>` over `RemoteConnector`",
    }
    by = {}
    for r in data["tcp"]:
        by.setdefault((r["op"], r["client"]), {})[r["size"]] = r
    for (op, client), sizes in by.items():
        cells = []
        for s in (100, 1000):
            r = sizes.get(s)
            cells.append(f"{fmt_rate(r and r['rate'])} · {fmt_mb(r and r['rate'], s)}")
            cells.append(fmt_pct(r and r["vs_sdk"]))
        add(f"| {op} | {names[client]} | {' | '.join(cells)} |")
    add("")
    add("### `latency`: publish → delivery at 10,000 events/s (100 B events)")
    add("")
    add("| case | p50 | p99 | p99.9 | max | events | send late, p99 |")
    add("|---|---|---|---|---|---|---|")
    labels = {
        "baseline": "baseline: a tokio channel, no broker (the machine's own scheduling)",
        "embedded": "embedded in-process, `Transport<E>` → `Subscription<E>`, ack each",
        "embedded_raw": "embedded in-process, connector publish → group member, commit per poll",
        "tcp": "TCP loopback, `Transport<E>` over `RemoteConnector`, ack each",
    }
    for mode in ["baseline", "embedded", "embedded_raw", "tcp"]:
        r = data["latency"].get(mode)
        if not r:
            continue
        add(
            f"| {labels[mode]} | {us(r['p50_us'])} | {us(r['p99_us'])} | {us(r['p999_us'])} | {us(r['max_us'])} "
            f"| {r['events']} | {us(r.get('send_late_p99_us'))} |"
        )
    add("")
    if data.get("paced"):
        add("### `paced_publish`: one sender awaiting each publish, due every 100 µs (100 B events)")
        add("")
        add("| case | late p50 | late p99 | late max | call p50 | call p99 | call mean | reached |")
        add("|---|---|---|---|---|---|---|---|")
        labels = {
            "baseline": "baseline: a tokio channel, no broker",
            "embedded": "embedded in-process, `Transport<E>::publish`",
            "tcp": "TCP loopback, `Transport<E>::publish` over `RemoteConnector`",
            "tcp_connector": "TCP loopback, `RemoteConnector::publish`, no headers",
            "tcp_sdk": "TCP loopback, the SDK's `send_messages` (the round trip alone)",
        }
        for mode in ["baseline", "embedded", "tcp", "tcp_connector", "tcp_sdk"]:
            r = data["paced"].get(mode)
            if not r:
                continue
            add(
                f"| {labels[mode]} | {us(r['late_p50_us'])} | {us(r['late_p99_us'])} | {us(r['late_max_us'])} "
                f"| {us(r['call_p50_us'])} | {us(r['call_p99_us'])} | {us(r['call_mean_us'])} "
                f"| {fmt_rate(r['achieved_per_s'])} |"
            )
        add("")
    if data.get("spread"):
        add(f"### Spread over {len(data['spread'][0]['runs'])} runs (each ratio within one run)")
        add("")
        add("| ratio | " + " | ".join(f"run {i + 1}" for i in range(len(data["spread"][0]["runs"]))) + " | min–max |")
        add("|---|" + "---|" * (len(data["spread"][0]["runs"]) + 1))
        for r in data["spread"]:
            known = [v for v in r["runs"] if v is not None]
            span = f"{fmt_pct(min(known))}–{fmt_pct(max(known))}" if known else "–"
            add(f"| {r['name']} | " + " | ".join(fmt_pct(v) for v in r["runs"]) + f" | {span} |")
        add("")
    if data.get("schema_header"):
        sh = data["schema_header"]
        add("### `schema_header`: the schema fingerprint header, with vs without (Postcard, batch 1000)")
        add("")
        add("| path | with | without | time with / without |")
        add("|---|---|---|---|")
        for r in sh["rows"]:
            add(f"| {r['name']} | {fmt_rate(r['with_rate'])} | {fmt_rate(r['without_rate'])} | {fmt_x(r['ratio'], 3)} |")
        add("")
        add(
            f"Per message: building the header {fmt_ns(sh['build_ns'])}, the consumer's check "
            f"{fmt_ns(sh['check_ns'])}; the whole typed publish (header included) {fmt_rate(sh['typed_publish_rate'])}."
        )
        add("")
    if data.get("other"):
        add("### Other benches (`batching`, `pool`, `single_publish`, `commits`, `dedup`)")
        add("")
        add("| benchmark | throughput | min–max over the runs |")
        add("|---|---|---|")
        for r in data["other"]:
            add(f"| `{r['id']}` | {fmt_rate(r['rate'])} | {fmt_rate(r['min'])} – {fmt_rate(r['max'])} |")
        add("")
    if data.get("allocations"):
        add("### `allocations`: heap allocations per event (counting allocator)")
        add("")
        add("| path | allocations per event |")
        add("|---|---|")
        for name, value in data["allocations"].items():
            add(f"| {name} | {'–' if value is None else f'{value:.3f}'} |")
        add("")
    return "\n".join(lines)


# ---------------------------------------------------------------- chart

def esc(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def bar_panel(x0, y0, width, title, bars, unit, lo, hi):
    """Horizontal bars on a log axis. bars: [(label, value, colour)]."""
    label_w = 300
    row_h = 22
    plot_w = width - label_w - 90
    parts = [f'<text x="{x0}" y="{y0}" font-size="15" font-weight="bold">{esc(title)}</text>']
    top = y0 + 16
    decades = range(int(math.floor(math.log10(lo))), int(math.ceil(math.log10(hi))) + 1)

    def xpos(v):
        v = max(v, lo)
        return x0 + label_w + plot_w * (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))

    height = row_h * len(bars)
    for d in decades:
        x = xpos(10**d)
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + height}" stroke="#ddd"/>')
        parts.append(
            f'<text x="{x:.1f}" y="{top + height + 14}" font-size="11" text-anchor="middle" fill="#555">{esc(human(10**d, unit))}</text>'
        )
    for i, (label, value, colour) in enumerate(bars):
        y = top + i * row_h
        parts.append(f'<text x="{x0 + label_w - 8}" y="{y + 15}" font-size="12" text-anchor="end">{esc(label)}</text>')
        if value is None:
            continue
        x1 = xpos(value)
        parts.append(
            f'<rect x="{x0 + label_w}" y="{y + 3}" width="{max(x1 - x0 - label_w, 1):.1f}" height="{row_h - 6}" fill="{colour}"/>'
        )
        parts.append(f'<text x="{x1 + 5:.1f}" y="{y + 15}" font-size="11" fill="#333">{esc(human(value, unit))}</text>')
    return parts, top + height + 30


def human(v, unit):
    if unit == "msg/s":
        if v >= 1e6:
            return f"{v / 1e6:g} M/s" if v / 1e6 == int(v / 1e6) else f"{v / 1e6:.2f} M/s"
        if v >= 1e3:
            return f"{v / 1e3:.0f} k/s"
        return f"{v:.0f} /s"
    if v >= 1000:
        return f"{v / 1000:.1f} ms" if v % 1000 else f"{v / 1000:g} ms"
    return f"{v:.0f} µs"


def chart(data, m):
    colours = {"json": "#e8a33d", "postcard": "#3d7be8", "sdk": "#888888", "ours": "#3d7be8", "typed": "#2a9d6f"}
    f = {(r["codec"], r["op"]): r for r in data["typed"]}
    bars = []
    for op in ["publish", "consume"]:
        for codec in ["json", "postcard"]:
            r = f.get((codec, op), {})
            bars.append((f"embedded {op}, Transport<E>, {codec}", r.get("typed"), colours[codec]))
            bars.append((f"embedded {op}, raw + {codec}", r.get("raw_codec"), colours[codec] + "99"))
    emb = {(r["op"], r["policy"], r["batch"], r["size"]): r["rate"] for r in data["embedded"]}
    bars.append(("embedded publish, raw bytes 100 B", emb.get(("publish", "never", 1000, 100)), "#555"))
    bars.append(("embedded consume, raw bytes 100 B", emb.get(("consume", "never", 1000, 100)), "#555"))
    tcp = {(r["op"], r["client"], r["size"]): r["rate"] for r in data["tcp"]}
    for op, sdk in [("publish", "sdk_producer"), ("consume", "sdk_consumer")]:
        bars.append((f"TCP {op} 100 B, official SDK", tcp.get((op, sdk, 100)), colours["sdk"]))
        bars.append((f"TCP {op} 100 B, RemoteConnector", tcp.get((op, "remote_connector", 100)), colours["ours"]))
        bars.append((f"TCP {op} 100 B, Transport<E> (postcard)", tcp.get((op, "transport", 100)), colours["typed"]))
    values = [v for _, v, _ in bars if v]
    lo = 10 ** math.floor(math.log10(min(values))) if values else 1e3
    hi = 10 ** math.ceil(math.log10(max(values))) if values else 1e7

    width = 900
    parts, y = bar_panel(20, 30, width, "Throughput, messages/s (batches of 1000, log scale)", bars, "msg/s", lo, hi)

    lat_bars = []
    names = {"baseline": "no broker", "embedded": "embedded typed", "embedded_raw": "embedded raw", "tcp": "TCP typed"}
    for mode, r in data["latency"].items():
        name = names.get(mode, mode)
        for p, key, colour in [("p50", "p50_us", "#9cc3f5"), ("p99", "p99_us", "#3d7be8"), ("p99.9", "p999_us", "#1b3f80")]:
            lat_bars.append((f"{name} {p}", r[key], colour))
    if lat_bars:
        lv = [v for _, v, _ in lat_bars if v]
        llo = 10 ** math.floor(math.log10(min(lv)))
        lhi = 10 ** math.ceil(math.log10(max(max(lv), 1000)))
        more, y = bar_panel(
            20, y + 10, width, "Publish → delivery latency at 10,000 events/s, µs (log scale)", lat_bars, "µs", llo, lhi
        )
        parts += more
    footer = f"{m['cores']} cores, {m['memory_gib']} GiB, {m['date']}, criterion medians; load average {m['load_before']} → {m['load_after']}"
    parts.append(f'<text x="20" y="{y + 5}" font-size="11" fill="#666">{esc(footer)}</text>')
    height = y + 20
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'font-family="Helvetica, Arial, sans-serif">\n'
        f'<rect width="{width}" height="{height}" fill="white"/>\n' + "\n".join(parts) + "\n</svg>\n"
    )


KNOWN_GROUPS = ("codec/", "typed_overhead/", "embedded/", "tcp/", "schema_header/")


def spread(per_run: list) -> list:
    """The key ratios of each run, computed within that run."""
    rows = []
    first = per_run[0]
    for i, row in enumerate(first["typed"]):
        if row["codec"] != "postcard":
            continue
        rows.append(
            {
                "name": f"`Transport<E>` {row['op']} / by hand, in process (Postcard)",
                "runs": [ratio(run["typed"][i]["typed"], run["typed"][i]["raw_codec"]) for run in per_run],
            }
        )
    for i, row in enumerate(first["tcp"]):
        if row["client"] in ("sdk_producer", "sdk_consumer"):
            continue
        size = "100 B" if row["size"] == 100 else "1 KB"
        rows.append(
            {
                "name": f"`{row['client']}` {row['op']} over TCP / SDK, {size}",
                "runs": [run["tcp"][i]["vs_sdk"] for run in per_run],
            }
        )
    if first.get("schema_header"):
        for i, row in enumerate(first["schema_header"]["rows"]):
            rows.append(
                {
                    "name": f"schema fingerprint header: {row['name']}, time with / without",
                    "runs": [(run.get("schema_header") or {"rows": [{}] * (i + 1)})["rows"][i].get("ratio") for run in per_run],
                }
            )
    return rows


def other(runs: list, combined: dict) -> list:
    f = Figures(combined)
    rows = []
    for i in sorted(combined):
        if i.startswith(KNOWN_GROUPS):
            continue
        rates = [Figures(run).rate(i) for run in runs if i in run]
        rows.append({"id": i, "rate": f.rate(i), "min": min(rates), "max": max(rates)})
    return rows


def main():
    p = argparse.ArgumentParser()
    p.add_argument(
        "--criterion",
        action="append",
        help="a run's criterion directory; repeat it for several runs (default target/criterion)",
    )
    p.add_argument("--out", default="benches/results")
    p.add_argument("--seconds", default="?")
    p.add_argument("--load-before", default="?")
    p.add_argument("--load-after", default="?")
    args = p.parse_args()
    roots = [Path(r) for r in (args.criterion or ["target/criterion"])]
    runs = [load_criterion(root) for root in roots]
    sizes = [read_json(root / "rustok" / "codec_sizes.json") for root in roots]
    latencies = [read_json(root / "rustok" / "latency.json") for root in roots]
    paced = [read_json(root / "rustok" / "paced_publish.json") for root in roots]
    combined = combine(runs)
    data = build(combined, combine_json(sizes), combine_json(latencies), combine_json(paced))
    if len(runs) > 1:
        data["spread"] = spread([build(run, s, l, p) for run, s, l, p in zip(runs, sizes, latencies, paced)])
    data["other"] = other(runs, combined)
    data["allocations"] = combine_json([read_json(root / "rustok" / "allocations.json") for root in roots])
    m = machine(args)
    m["runs"] = len(runs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text(markdown(data, m))
    (out / "summary.json").write_text(json.dumps({"machine": m, **data}, indent=2, ensure_ascii=False) + "\n")
    (out / "chart.svg").write_text(chart(data, m))


if __name__ == "__main__":
    main()
