"""Ping-pong between two async queue workers of atasker 0.7.9 on one aloop.

Usage: python async_pingpong.py N POLL_DELAY LIMIT
The same measurement as bench/lua/async_pingpong.lua: two queue workers
(background_worker(q=True) on `async def` executors, on one aloop created with
create_aloop(default=True)); each executor puts the item it got, plus one, into the
other's queue (put_threadsafe), until N round trips are done or LIMIT seconds have
passed. atasker's queue loop sleeps the supervisor's poll_delay after each item.
Prints: RESULT round_trips (done), RESULT seconds, RESULT round_trips_per_s,
RESULT complete (1 if all N were done). atasker's stop() raises on Python 3.9+, so the
script ends with os._exit.
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
supervisor.create_aloop("pingpong", default=True)

last = 2 * n
state = {"item": 0}
done = threading.Event()
peers = {}


async def ping(item, **kwargs):
    state["item"] = item
    if item >= last:
        done.set()
        return False
    peers["pong"].put_threadsafe(item + 1)


async def pong(item, **kwargs):
    state["item"] = item
    if item >= last:
        done.set()
        return False
    peers["ping"].put_threadsafe(item + 1)


peers["ping"] = atasker.background_worker(ping, q=True, name="ping")
peers["pong"] = atasker.background_worker(pong, q=True, name="pong")
peers["ping"].start()
peers["pong"].start()
time.sleep(0.1)
t0 = time.perf_counter()
peers["ping"].put_threadsafe(1)
done.wait(limit)
elapsed = time.perf_counter() - t0
trips = state["item"] // 2
print(f"RESULT round_trips {trips}")
print(f"RESULT seconds {elapsed:.6f}")
print(f"RESULT round_trips_per_s {trips / elapsed:.1f}")
print(f"RESULT complete {int(done.is_set())}", flush=True)
os._exit(0)
