"""The dashboard's overview at scale: render time and Redis round trips per refresh.

``python -m benchmarks.dashboard [--streams 200] [--groups 2] [--runs 7]``: a throwaway
server, ``--streams`` streams of ``--groups`` groups each (10 entries per stream, 3 of them
pending in the first group), then the overview page (``GET /``) and its live refresh
(``GET /fragments/overview``) of :func:`fluxabee.dashboard.create_app`, served in-process
(httpx's ASGI transport), each refresh reading Redis anew. Round trips are counted by the
server (``INFO commandstats``: one ``TIME`` opens each statistics pipeline) for the full
count and for a tenth of the streams, to show the number does not grow with the streams.
Prints a table and writes ``benchmarks/results/dashboard.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import redis

from fluxabee import Config, Engine, RedisPool, Stream
from fluxabee.dashboard import create_app

from ._server import flush, run_server

RESULTS = Path(__file__).resolve().parent / "results" / "dashboard.json"


def _commandstats(client: redis.Redis) -> dict[str, int]:
    stats: dict[str, Any] = client.info("commandstats")
    return {name: int(value["calls"]) for name, value in stats.items()}


def populate(url: str, streams: int, groups: int) -> Config:
    """``streams`` streams of ``groups`` groups; 10 entries each, 3 pending in one group."""
    names = [f"bench-{i:04d}" for i in range(streams)]
    group_names = tuple(f"g{j}" for j in range(groups))
    config = Config(
        redis_pools=[RedisPool(uri=url, streams=[Stream(n, groups=group_names) for n in names])]
    )
    client = redis.Redis.from_url(url)
    with Engine(config) as engine:
        broker = engine.new_context().event_broker()
        for name in names:
            for k in range(10):
                broker.publish(name, {"n": k, "stream": name})
        broker.flush()
    pipe = client.pipeline(transaction=False)
    for name in names:
        for group in group_names:
            pipe.xgroup_create(name, group, id="0")
        pipe.xreadgroup(group_names[0], "consumer-bench", {name: ">"}, count=3)
    pipe.execute()
    client.close()
    return config


async def measure(url: str, config: Config, runs: int) -> dict[str, Any]:
    """Median times of the page and the refresh; round trips and commands per refresh."""
    app = create_app(config, refresh=3600.0)  # the sampler stays out of the measurement
    client = redis.Redis.from_url(url)
    transport = httpx.ASGITransport(app=app)
    pages: list[float] = []
    refreshes: list[float] = []
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://dashboard") as http:
            (await http.get("/")).raise_for_status()  # connect, warm up
            for _ in range(runs):
                app.service.invalidate()
                started = time.perf_counter()
                reply = await http.get("/")
                pages.append(time.perf_counter() - started)
                reply.raise_for_status()
                app.service.invalidate()
                started = time.perf_counter()
                reply = await http.get("/fragments/overview")
                refreshes.append(time.perf_counter() - started)
                reply.raise_for_status()
            before = _commandstats(client)
            app.service.invalidate()
            (await http.get("/fragments/overview")).raise_for_status()
            after = _commandstats(client)
    finally:
        await app.aclose()
        client.close()
    calls = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    calls["cmdstat_info"] = 0  # our own INFO is no part of the refresh
    return {
        "page_s": statistics.median(pages),
        "refresh_s": statistics.median(refreshes),
        "round_trips": calls.get("cmdstat_time", 0),
        "commands": sum(calls.values()),
        "rows": len(config.streams) * len(config.stream(config.streams[0]).groups),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--groups", type=int, default=2)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    results = []
    with run_server() as url:
        for count in (max(1, args.streams // 10), args.streams):
            flush(url)
            config = populate(url, count, args.groups)
            figures = asyncio.run(measure(url, config, args.runs))
            results.append({"streams": count, "groups": args.groups, **figures})
    print(f"{'streams':>8} {'rows':>6} {'page (GET /)':>14} {'refresh':>10} "
          f"{'round trips':>12} {'commands':>9}")  # fmt: skip
    for r in results:
        print(
            f"{r['streams']:>8} {r['rows']:>6} {r['page_s'] * 1000:>11.1f} ms "
            f"{r['refresh_s'] * 1000:>7.1f} ms {r['round_trips']:>12} {r['commands']:>9}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
