"""Interval workers of atasker 0.7.9: schedule accuracy, and the cost of many of them.

Usage: python interval.py WORKERS INTERVAL HOLD POLL_DELAY
The same measurement as bench/lua/interval.lua: WORKERS background_worker(interval=...)
workers, their start times spread evenly over one interval, held HOLD seconds from one
interval after the first start, once every worker has run twice. Each execution takes
time.perf_counter() first and compares it with t0 + k * interval (t0 taken just before
start(), k the worker's execution count: atasker never skips a tick; k = 0 is counted
apart, as first_*). Lateness goes into the same histogram buckets as the Lua script's;
the histogram is copied at the start of the hold, one second (or one interval, if longer)
before its end and at its end, so percentiles are over the ticks of the hold and the
drift over those of its last second. RSS and threads come from /proc/self/status, CPU from
time.process_time(). atasker deadlocks with many workers: then this script hangs and
bench/run.py's time limit fails the row. atasker's stop() raises on Python 3.9+, so
the script ends with os._exit.
"""
import collections
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


def status():
    with open("/proc/self/status") as f:
        text = f.read()
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["Threads"])


def bucket(us):
    if us < 1000:
        return math.floor(us)
    if us < 10000:
        return 1000 + math.floor((us - 1000) / 10) * 10
    return 10000 + math.floor((us - 10000) / 1000) * 1000


lock = threading.Lock()
histogram = collections.Counter()
stats = {"first_sum": 0.0, "first_max": -math.inf, "second_done": 0}
executions = [0] * nworkers


def tick(idx, t0, **kwargs):
    now = time.perf_counter()
    k = executions[idx]
    executions[idx] = k + 1
    late = (now - (t0 + k * interval)) * 1e6
    with lock:
        if k == 0:
            stats["first_sum"] += late
            stats["first_max"] = max(stats["first_max"], late)
            return None
        histogram[bucket(max(late, 0))] += 1
        if k == 1:
            stats["second_done"] += 1
    return None


def snapshot():
    with lock:
        return collections.Counter(histogram)


def sleep_until(t):
    wait = t - time.perf_counter()
    if wait > 0:
        time.sleep(wait)


# a warm-up worker, started, run twice and stopped before anything is measured (as in
# interval.lua): the first start of a program runs code that nothing ran before
warm_runs = threading.Semaphore(0)


def warm_tick(**kwargs):
    warm_runs.release()


warm = atasker.background_worker(warm_tick, interval=interval, name="warm-up")
warm.start()
for _ in range(2):
    if not warm_runs.acquire(timeout=30):
        raise SystemExit("the warm-up worker did not run")
warm.stop(wait=False)

rss_before, _ = status()
workers = [atasker.background_worker(tick, interval=interval, name=f"tick-{i}")
           for i in range(nworkers)]
base = time.perf_counter() + 0.05
step = interval / nworkers
for i, worker in enumerate(workers):
    wait = base + i * step - time.perf_counter()
    if wait > 0.0005:
        time.sleep(wait)
    worker.start(idx=i, t0=time.perf_counter())
started = time.perf_counter()

deadline = time.perf_counter() + 60 + 2 * interval + nworkers * 0.001
while True:
    with lock:
        if stats["second_done"] >= nworkers:
            break
    if time.perf_counter() > deadline:
        raise SystemExit("the workers did not all run twice")
    time.sleep(min(0.01, interval / 2))
sleep_until(base + interval)
t1 = time.perf_counter()
before = snapshot()
cpu1, ex1 = time.process_time(), sum(executions)
t2 = t1 + hold
sleep_until(t2 - max(interval, 1.0))
last = snapshot()
sleep_until(t2)
t2 = time.perf_counter()
after = snapshot()
cpu2, ex2 = time.process_time(), sum(executions)
rss_after, threads = status()


def between(start, end):
    counts = {key: n - start.get(key, 0) for key, n in end.items()
              if n - start.get(key, 0) > 0}
    return sorted(counts), counts, sum(counts.values())


def percentile(h, p):
    keys, counts, total = h
    if total == 0:
        return math.nan
    rank, seen = max(1, math.ceil(p / 100 * total)), 0
    for key in keys:
        seen += counts[key]
        if seen >= rank:
            return key


def largest(h):
    return h[0][-1] if h[0] else math.nan


held = between(before, after)
ending = between(last, after)
startup = between(collections.Counter(), before)
elapsed = t2 - t1
print(f"RESULT workers {nworkers}")
print(f"RESULT samples {held[2]}")
print(f"RESULT p50_us {percentile(held, 50):.1f}")
print(f"RESULT p99_us {percentile(held, 99):.1f}")
print(f"RESULT max_us {largest(held):.1f}")
print(f"RESULT first_max_us {stats['first_max']:.1f}")
print(f"RESULT first_mean_us {stats['first_sum'] / nworkers:.1f}")
print(f"RESULT startup_max_us {largest(startup) if startup[2] else 0:.1f}")
print("RESULT skipped 0")
print(f"RESULT drift_us {percentile(ending, 50):.1f}")
print(f"RESULT drift_max_us {largest(ending):.1f}")
print(f"RESULT execs_per_s {(ex2 - ex1) / elapsed:.1f}")
print(f"RESULT nominal_per_s {nworkers / interval:.1f}")
print(f"RESULT cpu_us_per_exec {(cpu2 - cpu1) / max(1, ex2 - ex1) * 1e6:.2f}")
print(f"RESULT cpu_pct {(cpu2 - cpu1) / elapsed * 100:.1f}")
print(f"RESULT threads {threads}")
print(f"RESULT rss_before_kb {rss_before}")
print(f"RESULT rss_after_kb {rss_after}")
print(f"RESULT kb_per_worker {(rss_after - rss_before) / nworkers:.2f}")
print(f"RESULT start_s {started - base:.3f}")
print(f"RESULT wait_s {t1 - started:.3f}", flush=True)
os._exit(0)
