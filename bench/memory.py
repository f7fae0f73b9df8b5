"""Memory benchmark: the gateway's peak RSS while serving and listing with 1,000,000 stored instructions.

Target (issue 18): peak RSS < 200 MB for ``gateway serve`` on SQLite with 1M instructions stored.

``gateway serve`` (one process, no partner, the scheduler's default jobs) runs on a copy of the
cached 1M-instruction database that ``bench/export.py`` builds (the real row layout: encrypted
accounts, first events in the audit chain; built once under ``var/bench/``, about a minute) and
is driven over HTTP with a business unit's key:

* **walk**: the whole listing, newest first, page by page through ``next_cursor`` (200 a page;
  ``--pages`` bounds it);
* **filters**: listings by status, by a creation window and by reference;
* **reads**: single instructions and their event histories, by random id;
* **burst**: 16 concurrent clients each walking pages of their own creation window.

Its peak resident set (``VmHWM`` in ``/proc/PID/status``, every thread) is the measure. The
baseline, in the same run: the same gateway and the same request script on an empty database
(where it finds nothing to list), so the ratio is what a million stored instructions add to what
the process needs anyway.

    .venv/bin/python bench/memory.py [--json] [--instructions 1000000] [--pages N] [--fresh]

Not part of the test suite. All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from e2e import GATEWAY, free_port, spawn, stop, wait_listening  # noqa: E402
from export import cached_db  # noqa: E402

TARGET_MB = 200.0
#: the key ring bench/export.py encrypted the cached rows with (bench-only, not a secret)
KEYS = "b:YmVuY2gtb25seS1rZXktYmVuY2gtb25seS1rZXktMDE="
BUSINESS_UNIT = "erp-bench"
BURST_CLIENTS = 16


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def write_config(folder: Path, db: Path, port: int) -> Path:
    path = folder / "gateway.yaml"
    path.write_text(
        f"""
security:
  encryption_keys: "{KEYS}"
database: {{url: "sqlite+aiosqlite:///{db}"}}
server: {{host: 127.0.0.1, port: {port}, public_url: "http://127.0.0.1:{port}"}}
partners: {{}}
""",
        encoding="utf-8",
    )
    return path


def prepare(config: Path) -> str:
    subprocess.run([GATEWAY, "--config", str(config), "db", "upgrade"], check=True, capture_output=True)
    return subprocess.run(
        [GATEWAY, "--config", str(config), "keys", "create", "--business-unit", BUSINESS_UNIT],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def memory_kb(pid: int) -> dict[str, int]:
    """VmHWM (peak) and VmRSS (now) of a process, in kB."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            out[name] = int(value.split()[0])
    return out


class Client:
    def __init__(self, session: aiohttp.ClientSession, base: str, key: str) -> None:
        self.session, self.base, self.headers = session, base, {"Authorization": f"Bearer {key}"}
        self.requests = 0

    async def get(self, path: str, **params: Any) -> Any:
        async with self.session.get(self.base + path, params=params, headers=self.headers) as resp:
            self.requests += 1
            if resp.status != 200:
                raise SystemExit(f"bench: GET {path} {params} answered {resp.status}: {(await resp.text())[:300]}")
            return await resp.json()

    async def walk(self, pages: int, **params: Any) -> list[dict[str, Any]]:
        """Up to ``pages`` pages of the listing through ``next_cursor``; the items seen."""
        seen: list[dict[str, Any]] = []
        cursor = None
        for _ in range(pages):
            page = await self.get("/v1/instructions", limit=200, **params, **({"cursor": cursor} if cursor else {}))
            seen.extend(page["items"])
            cursor = page["next_cursor"]
            if not cursor:
                break
        return seen


async def drive(client: Client, pages: int, rng: random.Random) -> dict[str, Any]:
    """Every phase in turn; the items each listed and the seconds each took."""
    phases: dict[str, Any] = {}
    started = time.perf_counter()
    walked = await client.walk(pages)
    phases["walk"] = {"items": len(walked), "seconds": round(time.perf_counter() - started, 2)}
    started = time.perf_counter()
    sample = rng.sample(walked, min(len(walked), 1000))
    by_status = await client.walk(50, status="received")
    days = sorted({w["created_at"][:10] for w in walked}) or ["2026-01-01"]
    window = await client.walk(50, created_from=days[0] + "T06:00:00Z", created_to=days[0] + "T07:00:00Z")
    found = 0
    for item in sample[:300]:
        found += len((await client.get("/v1/instructions", reference=item["reference"]))["items"])
    phases["filters"] = {
        "items": len(by_status) + len(window) + found,
        "seconds": round(time.perf_counter() - started, 2),
    }
    started = time.perf_counter()
    for item in sample:
        await client.get(f"/v1/instructions/{item['id']}")
        await client.get(f"/v1/instructions/{item['id']}/events")
    phases["reads"] = {"items": len(sample), "seconds": round(time.perf_counter() - started, 2)}
    started = time.perf_counter()
    hours = [f"{d}T{h:02d}:00:00Z" for d in days for h in range(0, 24, 3)]
    windows = [
        (hours[i % len(hours)], hours[(i % len(hours)) + 1] if (i % len(hours)) + 1 < len(hours) else None)
        for i in range(BURST_CLIENTS)
    ]
    results = await asyncio.gather(
        *(client.walk(20, created_from=a, **({"created_to": b} if b else {})) for a, b in windows)
    )
    phases["burst"] = {"items": sum(len(r) for r in results), "seconds": round(time.perf_counter() - started, 2)}
    if pages and len(walked) > 0 and found < min(len(sample), 300):
        raise SystemExit(f"bench: only {found} of the sampled references were found by reference")
    return phases


async def measure(label: str, db: Path, folder: Path, pages: int, seed: int) -> dict[str, Any]:
    port = free_port()
    config = write_config(folder, db, port)
    key = prepare(config)
    proc = spawn([GATEWAY, "--config", str(config), "serve"], folder / "serve.log")
    try:
        await wait_listening(port, timeout=120)
        idle = memory_kb(proc.pid)
        timeout = aiohttp.ClientTimeout(total=300)
        async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=64)) as session:
            client = Client(session, f"http://127.0.0.1:{port}", key)
            started = time.perf_counter()
            phases = await drive(client, pages, random.Random(seed))
            seconds = time.perf_counter() - started
        after = memory_kb(proc.pid)
    finally:
        stop(proc)
    log(f"  {label}: {client.requests} requests in {seconds:.1f} s, peak RSS {after['VmHWM'] / 1024:.1f} MB")
    return {
        "requests": client.requests,
        "seconds": round(seconds, 2),
        "rss_idle_mb": round(idle["VmRSS"] / 1024, 1),
        "rss_after_mb": round(after["VmRSS"] / 1024, 1),
        "peak_rss_mb": round(after["VmHWM"] / 1024, 1),
        "phases": phases,
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    cache = Path(args.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    source = cache / "export.db"
    engine = await cached_db(source, args.instructions, args.fresh)
    await engine.dispose()
    with tempfile.TemporaryDirectory(prefix="bench-memory-", dir=args.work_dir) as tmp:
        work = Path(tmp)
        log(f"copying the {args.instructions:,}-instruction database ({source.stat().st_size / 1e9:.1f} GB)")
        shutil.copyfile(source, work / "full.db")
        (work / "empty").mkdir()
        (work / "full").mkdir()
        baseline = await measure("empty database", work / "empty.db", work / "empty", args.pages, args.seed)
        full = await measure(
            f"{args.instructions:,} instructions", work / "full.db", work / "full", args.pages, args.seed
        )
    if full["phases"]["walk"]["items"] < min(args.instructions, args.pages * 200):
        raise SystemExit(f"bench: the walk listed {full['phases']['walk']['items']} instructions, fewer than stored")
    return {
        "instructions": args.instructions,
        "pages": args.pages,
        "baseline": baseline,
        "full": full,
        "peak_rss_mb": full["peak_rss_mb"],
        "baseline_peak_rss_mb": baseline["peak_rss_mb"],
        "ratio_to_empty": round(full["peak_rss_mb"] / baseline["peak_rss_mb"], 2),
        "target_mb": TARGET_MB,
        "target_met": full["peak_rss_mb"] < TARGET_MB,
    }


def print_table(result: dict[str, Any]) -> None:
    base, full = result["baseline"], result["full"]
    print(f"\ngateway serve, SQLite: peak RSS serving and listing ({result['instructions']:,} instructions stored)")
    print(f"{'measure':<34}{'empty database':>16}{'stored':>14}{'ratio':>8}")
    for name, key in (
        ("RSS idle after start (MB)", "rss_idle_mb"),
        ("RSS after the requests (MB)", "rss_after_mb"),
        ("peak RSS (MB)", "peak_rss_mb"),
    ):
        print(f"{name:<34}{base[key]:>16.1f}{full[key]:>14.1f}{full[key] / base[key]:>8.2f}")
    print(f"{'requests':<34}{base['requests']:>16}{full['requests']:>14}")
    for phase in ("walk", "filters", "reads", "burst"):
        b, f = base["phases"][phase], full["phases"][phase]
        print(f"{phase + ' (items / s)':<34}{b['items']:>9} {b['seconds']:>5.1f}s{f['items']:>8} {f['seconds']:>5.1f}s")
    verdict = "met" if result["target_met"] else "NOT met"
    print(f"target: peak RSS < {TARGET_MB:.0f} MB: {verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instructions", type=int, default=1_000_000)
    parser.add_argument("--pages", type=int, default=5_000, help="pages of 200 the walk reads (5,000: all of 1M)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--fresh", action="store_true", help="rebuild the cached database")
    parser.add_argument("--cache-dir", default=str(BENCH.parent / "var" / "bench"))
    parser.add_argument("--work-dir", default=None, help="where the database copy goes (default: the system's temp)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last stdout line")
    args = parser.parse_args(argv)
    result = asyncio.run(main_async(args))
    print_table(result)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
