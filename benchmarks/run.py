"""The whole benchmark: fluxabee vs raw redis-py vs the Python peers, one command.

``benchmarks/run.sh`` makes the benchmark's own environment and calls this module:
it starts a throwaway redis-server, runs every case ``--runs`` times (default 5), prints a
table (median, min, max and the ratio to the baseline measured in the same run) and
writes ``benchmarks/results/latest.json``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fluxabee

from . import baselines, cluster_cases, fanout_cases, fluxabee_cases, io_cases
from ._bodies import SIZES
from ._report import Case, Result, measure
from ._server import flush, run_server

RESULTS = Path(__file__).resolve().parent / "results"


def _summary(results: list[Result]) -> dict[str, Any]:
    numbers = [r for r in results if isinstance(r, float)]
    errors = [r for r in results if isinstance(r, str)]
    if not numbers:
        return {"error": errors[0] if errors else "no result", "runs": results}
    return {
        "median": statistics.median(numbers),
        "min": min(numbers),
        "max": max(numbers),
        "runs": results,
        "errors": errors,
    }


def _row(name: str, s: dict[str, Any], baseline: dict[str, Any] | None, base_name: str) -> str:
    if "error" in s:
        return f"| {name} | error: {str(s['error'])[:70]} | | | |"
    ratio = ""
    if baseline and "median" in baseline:
        ratio = f"{s['median'] / baseline['median']:.2f}x {base_name}"
    return f"| {name} | {s['median']:,.0f} | {s['min']:,.0f} | {s['max']:,.0f} | {ratio} |"


def _section(
    title: str,
    url: str,
    n: int,
    runs: int,
    cases: dict[str, tuple[Case, str | None]],
    report: dict[str, Any],
    lines: list[str],
) -> None:
    """Run ``name -> (case, baseline name)`` and add a table to ``lines``."""
    print(f"== {title}", flush=True)
    raw: dict[str, list[Result]] = {name: [] for name in cases}
    for _ in range(runs):  # round robin, so drift of a noisy machine hits every case alike
        for name, (case, _) in cases.items():
            flush(url)
            raw[name].append(measure(case, url, n))
    section: dict[str, Any] = {}
    for name in cases:
        section[name] = _summary(raw[name])
        shown = section[name].get("median", section[name].get("error"))
        print(f"   {name}: {shown}", flush=True)
    report[title] = section
    lines += [
        f"**{title}** (n={n:,}, {runs} runs, events/s)",
        "",
        "| case | median | min | max | ratio |",
        "|---|---:|---:|---:|---|",
    ]
    for name, (_, base) in cases.items():
        lines.append(_row(name, section[name], section.get(base) if base else None, base or ""))
    lines.append("")


#: The sections of a run, in order (``--sections`` picks some).
SECTIONS = (
    "latency",
    "publish",
    "consume",
    "retention",
    "fanout",
    "peers",
    "payload",
    "cluster",
    "io",
)


def _fanout_section(
    url: str, n: int, runs: int, server: str, report: dict[str, Any], lines: list[str]
) -> None:
    """Fan-out runs (a publisher and one consumer process per group), round robin."""
    title = f"fan-out: one stream, a consumer process per group, publisher beside ({server})"
    print(f"== {title}", flush=True)
    cases = {
        "1 group, XACK + XDEL": (1, "delete"),
        "1 group, retention: trim": (1, "trim"),
        "2 groups": (2, "delete"),
        "3 groups": (3, "delete"),
    }
    raw: dict[str, list[Any]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, (groups, retention) in cases.items():
            flush(url)
            try:
                raw[name].append(fanout_cases.fanout(url, n, groups, retention))
            except Exception as exc:  # one broken run must not kill the whole benchmark
                raw[name].append({"error": f"{type(exc).__name__}: {exc}"})
    report[title] = raw
    lines += [
        f"**{title}** (n={n:,} events per group, {runs} runs, medians)",
        "",
        "| case | slowest group, events/s | fastest group, events/s "
        "| longest stream | stream at the end |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, results in raw.items():
        good = [r for r in results if "error" not in r]
        if not good:
            lines.append(f"| {name} | error: {results[0]['error'][:60]} | | | |")
            continue
        slow = statistics.median(min(r["rates"]) for r in good)
        fast = statistics.median(max(r["rates"]) for r in good)
        longest = statistics.median(r["max_len"] for r in good)
        end = statistics.median(r["end_len"] for r in good)
        lines.append(f"| {name} | {slow:,.0f} | {fast:,.0f} | {longest:,.0f} | {end:,.0f} |")
        print(f"   {name}: {slow:,.0f} .. {fast:,.0f} events/s, max len {longest:,.0f}")
    lines.append("")


def _other_server(kind: str) -> str | None:
    """The path of a server binary of ``kind`` (``redis-8.2``...), if one is installed."""
    for binary in fluxabee.server_binaries():
        if binary.kind == kind:
            return binary.path
    return None


def _machine() -> dict[str, Any]:
    server = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "redis_server": server,
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }


def _peer_cases() -> dict[str, tuple[Case, str | None]]:
    try:
        peers = importlib.import_module("benchmarks.peers")
    except ImportError as exc:  # peers are only in the benchmark environment
        print(f"   (peers skipped: {exc}; run benchmarks/run.sh)", flush=True)
        return {}
    out: dict[str, tuple[Case, str | None]] = {}
    for name, case in peers.cases().items():
        base = "fluxabee_publish_sync" if "publish" in name else "fluxabee_consume_sync"
        out[name] = (case, base)
    return out


def main(argv: list[str]) -> int:
    """Run the benchmark; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20_000, help="events per run")
    parser.add_argument("--runs", type=int, default=5, help="runs per case (>= 5 for reports)")
    parser.add_argument(
        "--peer-n", type=int, default=5_000, help="events per peer run (peers are slow)"
    )
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument("--skip-cluster", action="store_true", help="no 3-master cluster run")
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help=f"comma-separated: {','.join(SECTIONS)}"
    )
    parser.add_argument("--fanout-n", type=int, default=20_000, help="events per fan-out run")
    parser.add_argument("--io-n", type=int, default=2_000, help="events per IO-bound run")
    args = parser.parse_args(argv)
    n, runs = args.n, args.runs
    chosen = set(args.sections.split(","))
    if args.skip_peers:
        chosen.discard("peers")
    if args.skip_cluster:
        chosen.discard("cluster")
    report: dict[str, Any] = {"machine": _machine(), "n": n, "runs": runs}
    lines: list[str] = []
    with run_server() as url:
        if "latency" in chosen:
            _latency(url, n, runs, report, lines)
        if "publish" in chosen:
            body = baselines.body_bytes(100)
            _section(
                "publish + flush, 100 B dict bodies, batches of 1000",
                url,
                n,
                runs,
                {
                    "raw_redis_py_sync": (
                        lambda u, k: baselines.raw_publish_sync(u, k, body),
                        None,
                    ),
                    "raw_redis_py_async": (
                        lambda u, k: baselines.raw_publish_async(u, k, body),
                        None,
                    ),
                    "fluxabee_sync": (fluxabee_cases.publish_sync, "raw_redis_py_sync"),
                    "fluxabee_async": (fluxabee_cases.publish_async, "raw_redis_py_async"),
                },
                report,
                lines,
            )
        if "consume" in chosen:
            _consume_sections(url, n, runs, report, lines)
        if "retention" in chosen:
            _retention_section(url, n, runs, report, lines)
        if "fanout" in chosen:
            _fanout_section(url, args.fanout_n, runs, "redis-server on PATH", report, lines)
            newer = _other_server("redis-8.2")
            if newer is not None:
                with run_server(newer) as url_82:
                    _fanout_section(url_82, args.fanout_n, runs, "Redis 8.2", report, lines)
        if "peers" in chosen:
            _peers_section(url, args.peer_n, runs, report, lines)
        if "payload" in chosen:
            _payload_sections(url, n, runs, report, lines)
        if "io" in chosen:
            has_peer = importlib.util.find_spec("faststream") is not None
            _io_sections(url, args.io_n, runs, has_peer, report, lines)
    if "cluster" in chosen:
        _cluster_sections(n, runs, report, lines)
    machine = report["machine"]
    header = (
        f"Measured {machine['date']} on {machine['platform']}, {machine['cpus']} CPUs, "
        f"Python {machine['python']}, {machine['redis_server']}"
    )
    table = "\n".join([header, "", *lines])
    print()
    print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2, default=str))
    (RESULTS / "latest.md").write_text(table + "\n")
    print(f"\nwrote {RESULTS / 'latest.json'} and latest.md")
    return 0


def _latency(url: str, n: int, runs: int, report: dict[str, Any], lines: list[str]) -> None:
    """Latency first, on a fresh server; raw redis-py and fluxabee in turn."""
    print("== latency: publish -> handler at 1 000 events/s", flush=True)
    runs_lat: dict[str, list[dict[str, float]]] = {"raw_redis_py": [], "fluxabee": []}
    for _ in range(runs):
        for name, func in (
            ("raw_redis_py", fluxabee_cases.raw_latency),
            ("fluxabee", fluxabee_cases.latency),
        ):
            flush(url)
            runs_lat[name].append(func(url, min(n, 5000), 1000.0))
    report["latency"] = runs_lat
    lines += [
        "**latency, publish -> handler, 1 000 events/s, blocking consumer, publisher in "
        "another process (ms)**",
        "",
        "| run | raw p50 | raw p99 | raw p99.9 | fluxabee p50 | fluxabee p99 | fluxabee p99.9 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for i, (raw, own) in enumerate(
        zip(runs_lat["raw_redis_py"], runs_lat["fluxabee"], strict=True), 1
    ):
        lines.append(
            f"| {i} | {raw['p50_ms']:.3f} | {raw['p99_ms']:.3f} | {raw['p999_ms']:.3f} "
            f"| {own['p50_ms']:.3f} | {own['p99_ms']:.3f} | {own['p999_ms']:.3f} |"
        )
    med = {name: statistics.median(r["p99_ms"] for r in rs) for name, rs in runs_lat.items()}
    lines += [f"| median p99 | | {med['raw_redis_py']:.3f} | | | {med['fluxabee']:.3f} | |", ""]


def _consume_sections(
    url: str, n: int, runs: int, report: dict[str, Any], lines: list[str]
) -> None:
    for count in (1000, 100, 10):
        _section(
            f"consume + decode + ack (XACK + XDEL), count {count}",
            url,
            n,
            runs,
            {
                "raw_redis_py_sync": (_bind(baselines.raw_consume_sync, count), None),
                "raw_redis_py_async": (_bind(baselines.raw_consume_async, count), None),
                "fluxabee_sync": (_bind(fluxabee_cases.consume_sync, count), "raw_redis_py_sync"),
                "fluxabee_async": (
                    _bind(fluxabee_cases.consume_async, count),
                    "raw_redis_py_async",
                ),
            },
            report,
            lines,
        )


def _retention_section(
    url: str, n: int, runs: int, report: dict[str, Any], lines: list[str]
) -> None:
    """One group: XACK + XDEL against ``retention: trim`` (XACK + an exact MINID trim per
    10 000 acks), raw redis-py and fluxabee, every ratio to the raw XACK + XDEL loop."""
    raw = "raw_xack_xdel_sync"
    raw_async = "raw_xack_xdel_async"
    _section(
        "retention, one group: consume + decode + ack, count 1000 (ratio = case / raw XACK + XDEL)",
        url,
        n,
        runs,
        {
            raw: (_bind(baselines.raw_consume_sync, 1000), None),
            "raw_xack_trim_sync": (_bind(baselines.raw_consume_trim_sync, 1000), raw),
            "fluxabee_xack_xdel_sync": (_bind(fluxabee_cases.consume_sync, 1000), raw),
            "fluxabee_trim_sync": (
                lambda u, k: fluxabee_cases.consume_sync(u, k, 1000, retention="trim"),
                raw,
            ),
            raw_async: (_bind(baselines.raw_consume_async, 1000), None),
            "fluxabee_trim_async": (
                lambda u, k: fluxabee_cases.consume_async(u, k, 1000, retention="trim"),
                raw_async,
            ),
        },
        report,
        lines,
    )


def _peers_section(url: str, n: int, runs: int, report: dict[str, Any], lines: list[str]) -> None:
    peer_cases = _peer_cases()
    if peer_cases:
        own: dict[str, tuple[Case, str | None]] = {
            "fluxabee_publish_sync": (fluxabee_cases.publish_sync, None),
            "fluxabee_consume_sync": (fluxabee_cases.consume_sync, None),
        }
        _section(
            "Python peers, 100 B dict bodies (ratio = peer / fluxabee sync)",
            url,
            n,
            runs,
            {**own, **peer_cases},
            report,
            lines,
        )


def _payload_sections(
    url: str, n: int, runs: int, report: dict[str, Any], lines: list[str]
) -> None:
    for label, size in SIZES.items():
        if label == "100B":
            continue
        sized_n = max(1000, min(n, (32 * 1024 * 1024) // size))
        sized_body = baselines.body_bytes(size)
        _section(
            f"payload {label}",
            url,
            sized_n,
            runs,
            {
                "raw_redis_py_publish_sync": (
                    lambda u, k, b=sized_body: baselines.raw_publish_sync(u, k, b),
                    None,
                ),
                "fluxabee_publish_sync": (
                    _sized(fluxabee_cases.publish_sync, size),
                    "raw_redis_py_publish_sync",
                ),
                "fluxabee_publish_async": (_sized(fluxabee_cases.publish_async, size), None),
                "fluxabee_consume_sync": (_sized(fluxabee_cases.consume_sync, size), None),
                "fluxabee_consume_async": (_sized(fluxabee_cases.consume_async, size), None),
            },
            report,
            lines,
        )


def _cluster_sections(n: int, runs: int, report: dict[str, Any], lines: list[str]) -> None:
    """Publish and consume over six streams: one server beside a 3-master cluster."""
    with run_server() as single, cluster_cases.run_cluster() as seed:
        for what in ("publish", "consume"):
            cases: dict[str, tuple[Case, str | None]] = {}
            for api in ("sync", "async"):
                func = getattr(cluster_cases, f"{what}_{api}")
                cases[f"single_{api}"] = (
                    lambda _u, k, f=func: f(single, k, cluster=False),
                    None,
                )
                cases[f"cluster_{api}"] = (
                    lambda _u, k, f=func: f(seed, k, cluster=True),
                    f"single_{api}",
                )
            _section(
                f"{what} over 6 streams: one server and a 3-master cluster (same machine)",
                single,
                n,
                runs,
                cases,
                report,
                lines,
            )


def _io_sections(
    url: str, n: int, runs: int, peers: bool, report: dict[str, Any], lines: list[str]
) -> None:
    """IO-bound handlers: ``process`` at several window sizes, FastStream ``max_workers=100``
    and the ideal window on exactly the same events (the ratio column: case / ideal)."""
    workloads: dict[str, tuple[list[float], list[str] | None]] = {
        "uniform 10 ms": (io_cases.uniform(n), None),
        "10 ms, 1 in 50 takes 1 s": (io_cases.tail(n), None),
        f"10 ms, {io_cases.KEYS:,} keys, key=": (io_cases.uniform(n), io_cases.keys_of(n)),
    }
    for label, (durations, keys) in workloads.items():
        cases: dict[str, tuple[Case, str | None]] = {}
        windows = [("async", c) for c in (1, 10, 100)] + [("threads", c) for c in (8, 32)]
        if keys:
            windows = [("async", 100), ("threads", 32)]
        for api, size in windows:
            # concurrency 1: a tenth of the events tells the same, ten times sooner
            part = durations if size > 1 else durations[: max(100, n // 10)]
            ideal = io_cases.ideal(part, size, keys)
            ideal_name = f"ideal window of {size}"
            cases[ideal_name] = (lambda _u, _n, v=ideal: v, None)
            func = io_cases.process_async if api == "async" else io_cases.process_threads
            cases[f"process {api}, concurrency {size}"] = (
                lambda u, _n, f=func, d=part, c=size, k=keys: f(u, d, c, k),
                ideal_name,
            )
        if peers:
            cases["FastStream 0.7, max_workers=100"] = (
                lambda u, _n, d=durations: io_cases.faststream(u, d, 100),
                "ideal window of 100",
            )
        _section(f"IO-bound handlers, {label}", url, n, runs, cases, report, lines)
    _section(
        "a handler that does nothing: process (concurrency 100) against run (count 100)",
        url,
        20_000,
        runs,
        {
            "run, count 100, asyncio": (io_cases.noop_run_async, None),
            "process, concurrency 100, asyncio": (
                io_cases.noop_process_async,
                "run, count 100, asyncio",
            ),
        },
        report,
        lines,
    )


def _bind(func: Callable[..., float], count: int) -> Case:
    return lambda url, n: func(url, n, count)


def _sized(func: Callable[..., float], size: int) -> Case:
    return lambda url, n: func(url, n, size=size)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
