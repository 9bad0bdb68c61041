"""Async interval workers of atasker 0.7.9 on one aloop: schedule lag, CPU, memory.

Usage: python async_interval.py WORKERS INTERVAL HOLD POLL_DELAY
The same measurement as bench/lua/async_interval.lua: WORKERS async interval workers
(background_worker(interval=...) on an `async def` executor) on one aloop created with
create_aloop(default=True), their first ticks spread evenly over one interval (each
start gets the _delay_before that puts its first tick at base + i * interval / WORKERS),
held HOLD seconds once every worker has run. Each execution takes time.perf_counter()
first and compares it with its tick's ideal time t0 + k * interval; the lags of the ticks
whose ideal time falls in the hold go into the same 32 buckets as the Lua script's
(percentiles are the bucket's upper edge). RSS and threads come from /proc/self/status,
CPU from time.process_time(). atasker may not keep up with many workers: then the lags
show it, or bench/run.py's time limit fails the row. atasker's stop() raises on Python
3.9+, so the script ends with os._exit.
"""
import math
import os
import sys
import threading
import time

import atasker

nworkers = int(sys.argv[1])
interval = float(sys.argv[2])
hold = float(sys.argv[3])
poll_delay = float(sys.argv[4])

supervisor = atasker.task_supervisor
supervisor.poll_delay = poll_delay
supervisor.start()
supervisor.create_aloop("bench", default=True)


def status():
    with open("/proc/self/status") as f:
        text = f.read()
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["Threads"])


lock = threading.Lock()
hist = [0] * 32
stats = {"max": 0.0, "skipped": 0}
done = threading.Semaphore(0)
runs = [0] * nworkers
ticks = [0] * nworkers
marks = {}


async def tick(idx, t0, **kwargs):
    now = time.perf_counter()
    k = math.floor((now - t0) / interval)
    if runs[idx] > 0 and k <= ticks[idx]:
        k = ticks[idx] + 1
    ideal = t0 + k * interval
    inhold = marks["h0"] <= ideal < marks["h1"]
    skipped = k - ticks[idx] - 1 if runs[idx] > 0 and inhold else 0
    ticks[idx] = k
    runs[idx] += 1
    if runs[idx] > 1 and inhold:
        us = (now - ideal) * 1e6
        b = int(us // 25) if us < 750 else (30 if us < 1000 else 31)
        with lock:
            hist[b] += 1
            stats["max"] = max(stats["max"], us)
            stats["skipped"] += max(0, skipped)
    if ideal >= marks["h1"]:
        done.release()
        return False
    return None


rss_before, _ = status()
workers = [atasker.background_worker(tick, interval=interval, name=f"tick-{i}")
           for i in range(nworkers)]
base = time.perf_counter() + 0.2 + nworkers * 200e-6
step = interval / nworkers
marks["h0"] = base + interval + max(1.0, nworkers * 500e-6)
marks["h1"] = marks["h0"] + hold
for i, worker in enumerate(workers):
    t0 = base + i * step
    worker.start(idx=i, t0=t0, _delay_before=max(0.0, t0 - time.perf_counter()))
started = time.perf_counter()

if marks["h0"] > time.perf_counter():
    time.sleep(marks["h0"] - time.perf_counter())
t1 = time.perf_counter()
cpu1, ex1 = time.process_time(), sum(runs)
time.sleep(max(0.0, marks["h1"] - time.perf_counter()))
t2 = time.perf_counter()
cpu2, ex2 = time.process_time(), sum(runs)
rss_after, threads = status()

for _ in range(nworkers):
    done.acquire()

edges = [25 * (b + 1) for b in range(30)] + [1000, stats["max"]]
total = sum(hist)


def percentile(p):
    rank, seen = max(1, math.ceil(p / 100 * total)), 0
    for b in range(32):
        seen += hist[b]
        if seen >= rank:
            return edges[b]
    return 0


elapsed = t2 - t1
print(f"RESULT workers {nworkers}")
print(f"RESULT samples {total}")
print(f"RESULT p50_us {percentile(50):.1f}")
print(f"RESULT p99_us {percentile(99):.1f}")
print(f"RESULT max_us {stats['max']:.1f}")
print(f"RESULT skipped {stats['skipped']}")
print(f"RESULT execs_per_s {(ex2 - ex1) / elapsed:.1f}")
print(f"RESULT nominal_per_s {nworkers / interval:.1f}")
print(f"RESULT cpu_us_per_exec {(cpu2 - cpu1) / max(1, ex2 - ex1) * 1e6:.2f}")
print(f"RESULT cpu_pct {(cpu2 - cpu1) / elapsed * 100:.1f}")
print(f"RESULT threads {threads}")
print(f"RESULT rss_before_kb {rss_before}")
print(f"RESULT rss_after_kb {rss_after}")
print(f"RESULT kb_per_worker {(rss_after - rss_before) / nworkers:.2f}")
print(f"RESULT start_s {started - (base - 0.2 - nworkers * 200e-6):.3f}", flush=True)
os._exit(0)
