"""Workers of atasker 0.7.9 started and stopped per second.

Usage: python startstop.py N POLL_DELAY
The same as bench/lua/startstop.lua: N plain background workers with an empty executor;
for each in turn start() and stop(wait=True). atasker's start() waits until the
worker's loop has begun; the loop calls the executor again and again until the stop.
(Not "start all, then stop all": a plain atasker worker holds a pool thread while it
runs, so start() waits for ever once the pool is full; and an executor that returns
False leaks its pool slot in 0.7.9 -- loop() returns before mark_task_completed -- so
start() hangs after pool-size such workers.)
Prints: RESULT workers, RESULT seconds, RESULT workers_per_s, RESULT executions,
RESULT create_per_s. atasker's stop() raises on Python 3.9+, so the script ends with
os._exit.
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

ran = 0


def spin(**kwargs):
    global ran
    ran += 1


c0 = time.perf_counter()
workers = [atasker.background_worker(spin, name=f"spin-{i}") for i in range(n)]
t0 = time.perf_counter()
for worker in workers:
    worker.start()
    worker.stop(wait=True)
elapsed = time.perf_counter() - t0
print(f"RESULT workers {n}")
print(f"RESULT seconds {elapsed:.6f}")
print(f"RESULT workers_per_s {n / elapsed:.1f}")
print(f"RESULT executions {ran}")
print(f"RESULT create_per_s {n / (t0 - c0):.1f}", flush=True)
os._exit(0)
