"""Queue worker throughput of atasker 0.7.9: N small items into one queue worker.
(Not named queue.py: the script's folder comes first on sys.path and would shadow the
standard module queue.)

Usage: python queue_worker.py N POLL_DELAY LIMIT
Starts background_worker(q=True) with an executor that counts, puts N integers with
put_threadsafe, and waits until all ran or LIMIT seconds have passed; the rate is the
items that ran over the time from the first put. atasker's queue loop sleeps the
supervisor's poll_delay after each item, so at its default (0.1 s) it runs about 10
items/s: bench/run.py gives it far fewer items than atasker-lua.
Prints: RESULT items (that ran), RESULT seconds, RESULT items_per_s, RESULT complete
(1 if all N ran). atasker's stop() raises on Python 3.9+, so the script ends with
os._exit.
"""
import os
import sys
import threading
import time

import atasker

n = int(sys.argv[1])
poll_delay = float(sys.argv[2])
limit = float(sys.argv[3])

supervisor = atasker.task_supervisor
supervisor.poll_delay = poll_delay
supervisor.start()

count = 0
done = threading.Event()


def sink(item, **kwargs):
    global count
    count += 1  # one executor at a time: the worker never overlaps its executions
    if count == n:
        done.set()


worker = atasker.background_worker(sink, q=True)
worker.start()
t0 = time.perf_counter()
for i in range(n):
    worker.put_threadsafe(i)
done.wait(max(0.0, limit - (time.perf_counter() - t0)))
elapsed = time.perf_counter() - t0
ran = count
print(f"RESULT items {ran}")
print(f"RESULT seconds {elapsed:.6f}")
print(f"RESULT items_per_s {ran / elapsed:.1f}")
print(f"RESULT complete {int(ran == n)}", flush=True)
os._exit(0)
