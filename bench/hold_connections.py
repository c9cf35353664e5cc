#!/usr/bin/env python3
"""Holds idle and slow-header connections against HTTP listeners (bench C4, docs/benchmarks.md).

  bench/hold_connections.py --seconds S --idle N --slow M [--source-addresses A-B] HOST:PORT ...

For each listener: N idle connections (connected, nothing sent) and M slow-header connections
(a request line and then one header byte every --drip seconds, never finishing the head). When the
server closes one (its header or idle timeout), it is opened again at once, so the pressure stays
at N + M per listener for the whole run. Prints one JSON line at the end: per listener, how many
connections were open at the end, opened in total, and closed by the server. Needs a descriptor
limit above the total (raised here to the hard limit). --source-addresses spreads the
connections round-robin over a range of loopback addresses (e.g. 127.0.0.100-127.0.0.139), as
many clients would come from many addresses (the Console caps connections per address).
"""
import argparse
import asyncio
import json
import resource


def address_range(text):
    """'127.0.0.100-127.0.0.139' -> the addresses from the first to the last (last octet)."""
    first, _, last = text.partition("-")
    prefix, _, start = first.rpartition(".")
    end = last.rpartition(".")[2] if last else start
    return [f"{prefix}.{i}" for i in range(int(start), int(end) + 1)]


async def hold(host, port, kind, stop, stats, drip, source=None):
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(
                host, port, local_addr=(source, 0) if source else None)
        except OSError:
            stats["connect_errors"] += 1
            await asyncio.sleep(0.2)
            continue
        stats["opened"] += 1
        stats["open"] += 1
        try:
            if kind == "slow":
                writer.write(b"POST /api/v1/defender/heartbeat HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                await writer.drain()
            while not stop.is_set():
                if kind == "slow":
                    writer.write(b"a")
                    await writer.drain()
                try:
                    data = await asyncio.wait_for(reader.read(4096), timeout=drip)
                    if not data:
                        stats["closed_by_server"] += 1
                        break
                except asyncio.TimeoutError:
                    pass
        except OSError:
            stats["closed_by_server"] += 1
        finally:
            stats["open"] -= 1
            writer.close()


async def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--idle", type=int, default=5000)
    p.add_argument("--slow", type=int, default=1000)
    p.add_argument("--drip", type=float, default=1.0, help="seconds between header bytes")
    p.add_argument("--ramp-per-second", type=float, default=2000)
    p.add_argument("--source-addresses", default="", help="e.g. 127.0.0.100-127.0.0.139")
    p.add_argument("listeners", nargs="+")
    a = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    need = (a.idle + a.slow) * len(a.listeners) + 64
    if need > hard:
        raise SystemExit(f"{need} descriptors needed, RLIMIT_NOFILE hard limit is {hard}")
    stop = asyncio.Event()
    all_stats = {}
    tasks = []
    n = 0
    sources = address_range(a.source_addresses) if a.source_addresses else [None]
    for listener in a.listeners:
        host, port = listener.rsplit(":", 1)
        stats = {"open": 0, "opened": 0, "closed_by_server": 0, "connect_errors": 0}
        all_stats[listener] = stats
        for kind, count in (("idle", a.idle), ("slow", a.slow)):
            for _ in range(count):
                source = sources[n % len(sources)]
                tasks.append(
                    asyncio.create_task(hold(host, int(port), kind, stop, stats, a.drip, source)))
                n += 1
                if n % 100 == 0:
                    await asyncio.sleep(100 / a.ramp_per_second)
    await asyncio.sleep(a.seconds)
    at_end = {k: v["open"] for k, v in all_stats.items()}
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    for k, v in all_stats.items():
        v["open_at_end"] = at_end[k]
        del v["open"]
    print(json.dumps(all_stats), flush=True)


asyncio.run(main())
