"""Throughput of atasker 0.7.9: submit N trivial background tasks, wait all completed.

Usage: python throughput.py N POLL_DELAY
Prints: RESULT tasks_per_s <float>   RESULT tasks <int>   RESULT seconds <float>
atasker's stop() raises on Python 3.9+, so the script ends with os._exit.
"""
import os
import sys
import time

import atasker

n = int(sys.argv[1])
poll_delay = float(sys.argv[2])

supervisor = atasker.task_supervisor
supervisor.poll_delay = poll_delay
supervisor.start()


def trivial():
    return None


task = atasker.background_task(trivial)
t0 = time.perf_counter()
tasks = [task() for _ in range(n)]
atasker.wait_completed(tasks)
elapsed = time.perf_counter() - t0
print(f"RESULT tasks {n}")
print(f"RESULT seconds {elapsed:.6f}")
print(f"RESULT tasks_per_s {n / elapsed:.1f}", flush=True)
os._exit(0)
