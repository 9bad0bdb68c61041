"""Process-pool (mp) tasks with two children: atasker 0.7.9's mp pool, or a bare
multiprocessing.Pool(2) (no atasker), in one script.

Usage: python mp.py atasker N WARMUP TASKS POLL_DELAY
       python mp.py pool N WARMUP TASKS
The function is mp_trivial.echo (it returns its argument; the children import it).
Warm-up: pairs of tasks that sleep 50 ms and return their pid, until both children have
answered; then WARMUP round trips that are not counted.
Round trip, N times one at a time: take time.perf_counter(), submit one task, wait for
its result, take the clock again.
  atasker: background_task(echo, tt=TT_MP)(i), then wait_completed(task) (the result
           comes back through the pool's callback, which completes atasker's task)
  pool:    pool.apply_async(echo, (i,)).get()
Throughput: submit TASKS tasks as fast as possible, then wait for all of them (atasker:
wait_completed on the list; pool: apply_async each, then .get() each, the best a Python
user does without chunksize/map); tasks/s = TASKS / (time of the last result - time of
the first submit).
atasker 0.7.9: set_mp_pool(pool_size=2, reserve_normal=0, reserve_high=0) before
start() (it makes multiprocessing.Pool(2)); its task processor sleeps poll_delay each
time it finds both children busy, which bounds its throughput.
Prints: RESULT children, RESULT samples, RESULT p50_us, RESULT p99_us, RESULT tasks,
RESULT seconds, RESULT tasks_per_s. Percentiles are nearest-rank, as in latency.py.
The pool's children are killed before the script ends (atasker's stop() raises on
Python 3.9+ and never ends its pool, so the script ends with os._exit).
"""
import math
import multiprocessing
import os
import signal
import sys
import threading
import time

import mp_trivial

mode = sys.argv[1]
n = int(sys.argv[2])
warmup = int(sys.argv[3])
tasks_n = int(sys.argv[4])

if mode == "atasker":
    import atasker

    supervisor = atasker.task_supervisor
    supervisor.poll_delay = float(sys.argv[5])
    supervisor.set_mp_pool(pool_size=2, reserve_normal=0, reserve_high=0)
    supervisor.start()
    pool = supervisor.mp_pool
    echo_task = atasker.background_task(mp_trivial.echo, tt=atasker.TT_MP)
    pid_task = atasker.background_task(mp_trivial.pid, tt=atasker.TT_MP)

    def call(i):
        return atasker.wait_completed(echo_task(i))

    def pids(delay):
        return atasker.wait_completed([pid_task(delay), pid_task(delay)])

    def burst(count):
        done = atasker.wait_completed([echo_task(i) for i in range(count)])
        return done[-1]
elif mode == "pool":
    pool = multiprocessing.Pool(2)

    def call(i):
        return pool.apply_async(mp_trivial.echo, (i,)).get()

    def pids(delay):
        pending = [pool.apply_async(mp_trivial.pid, (delay,)) for _ in range(2)]
        return [p.get() for p in pending]

    def burst(count):
        pending = [pool.apply_async(mp_trivial.echo, (i,)) for i in range(count)]
        return [p.get() for p in pending][-1]
else:
    sys.exit(f"unknown mode {mode!r}: atasker or pool")


def finish(code):
    """Kills the pool's children (terminate, bounded) and leaves."""
    sys.stdout.flush()
    ender = threading.Thread(target=pool.terminate, daemon=True)
    ender.start()
    ender.join(5)
    for child in multiprocessing.active_children():
        try:
            os.kill(child.pid, signal.SIGKILL)
        except OSError:
            pass
    os._exit(code)


try:
    seen = set()
    for _ in range(40):
        seen.update(pids(0.05))
        if len(seen) >= 2:
            break
    if len(seen) < 2:
        raise RuntimeError(f"only {len(seen)} child answered the warm-up")

    for i in range(warmup):
        call(i)
    latencies = []
    for i in range(n):
        t0 = time.perf_counter()
        r = call(i)
        latencies.append(time.perf_counter() - t0)
        if r != i:
            raise RuntimeError(f"task {i} returned {r!r}")

    t0 = time.perf_counter()
    last = burst(tasks_n)
    elapsed = time.perf_counter() - t0
    if last != tasks_n - 1:
        raise RuntimeError(f"the last task returned {last!r}")
except BaseException as e:  # noqa: BLE001 -- report and still kill the children
    print(f"mp.py: {type(e).__name__}: {e}", file=sys.stderr)
    finish(1)


def percentile(sorted_values, p):
    # nearest rank, the same formula as bench/lua/mp.lua
    return sorted_values[max(0, math.ceil(p / 100 * len(sorted_values)) - 1)]


latencies.sort()
print(f"RESULT children {len(seen)}")
print(f"RESULT samples {len(latencies)}")
print(f"RESULT p50_us {percentile(latencies, 50) * 1e6:.1f}")
print(f"RESULT p99_us {percentile(latencies, 99) * 1e6:.1f}")
print(f"RESULT tasks {tasks_n}")
print(f"RESULT seconds {elapsed:.6f}")
print(f"RESULT tasks_per_s {tasks_n / elapsed:.1f}")
finish(0)
