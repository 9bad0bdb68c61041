"""The trivial function of the mp benchmarks (bench/python/mp.py).

A function sent to a process pool is pickled by reference (module + name), so the
children must be able to import it: it lives in this module, next to mp.py, not in the
script that runs as __main__.
"""
import os


def echo(x=None):
    """The trivial mp task: returns its argument."""
    return x


def pid(delay=0.0):
    """Sleeps `delay` seconds and returns the child's pid (the warm-up)."""
    if delay:
        import time
        time.sleep(delay)
    return os.getpid()
