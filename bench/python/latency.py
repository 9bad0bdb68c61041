"""Submit-to-start latency of atasker 0.7.9, tasks submitted one at a time.

Usage: python latency.py N WARMUP POLL_DELAY
Each round: take time.perf_counter() in the submitting thread, submit one task whose
first statement takes time.perf_counter(), wait for it. latency = start - submit.
Prints: RESULT samples, RESULT p50_us, RESULT p99_us, and the percentiles of atasker's
own fields (_tstarted - _tqueued) as RESULT fields_p50_us / fields_p99_us.
atasker's stop() raises on Python 3.9+, so the script ends with os._exit.
"""
import math
import os
import sys
import time

import atasker

n = int(sys.argv[1])
warmup = int(sys.argv[2])
poll_delay = float(sys.argv[3])

supervisor = atasker.task_supervisor
supervisor.poll_delay = poll_delay
supervisor.start()


def started_at():
    return time.perf_counter()


task = atasker.background_task(started_at)
latencies, fields = [], []
for i in range(warmup + n):
    submitted = time.perf_counter()
    t = task()
    started = atasker.wait_completed(t)
    if i >= warmup:
        latencies.append(started - submitted)
        # atasker's own fields: put_task to the event loop's _start_task, before the
        # hand-off to a pool thread
        fields.append(t._tstarted - t._tqueued)


def percentile(sorted_values, p):
    # nearest rank, the same formula as bench/lua/latency.lua
    return sorted_values[max(0, math.ceil(p / 100 * len(sorted_values)) - 1)]


latencies.sort()
fields.sort()
print(f"RESULT samples {len(latencies)}")
print(f"RESULT p50_us {percentile(latencies, 50) * 1e6:.1f}")
print(f"RESULT p99_us {percentile(latencies, 99) * 1e6:.1f}")
print(f"RESULT fields_p50_us {percentile(fields, 50) * 1e6:.1f}")
print(f"RESULT fields_p99_us {percentile(fields, 99) * 1e6:.1f}", flush=True)
os._exit(0)
