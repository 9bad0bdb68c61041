"""Renders bench/results/latest.json as a text table (stdout) or a markdown table.

Usage: python3 bench/report.py [--markdown] [bench/results/latest.json]
scripts/bench writes bench/README-table.md with the markdown form; the README's
benchmark table is pasted from it.
"""
import json
import os
import sys

HEADER = ["Benchmark", "Peer or floor, run with", "atasker-lua", "Peer or floor", "Ratio",
          "Target", "Pass"]


def number(value, unit):
    if value is None:
        return "—"
    if unit.endswith("/s") or unit in ("ticks", "threads"):
        return f"{value:,.0f} {unit}"
    return f"{value:,.1f} {unit}"


def ratio(r):
    """"12.3x faster" (or "x less" for sizes, or the row's own words); below 1,
    "2.0x slower" / "x more"."""
    if r["ratio"] is None:
        return "—"
    size = r["unit"] in ("MB", "KB", "%", "threads", "ticks")
    better, worse = r.get("words") or (("less", "more") if size else ("faster", "slower"))
    value, word = r["ratio"], better
    if better == "%":
        return f"{value * 100:,.0f}% {worse}"
    if better == "1/":
        return f"1/{1 / value:,.1f} {worse}" if value < 1 else f"{value:,.2f}x {worse}"
    if value < 1:
        value, word = 1 / value, worse
    digits = 0 if value >= 100 else 1
    return f"{value:,.{digits}f}x {word}"


def verdict(r):
    text = "pass" if r["pass"] else "FAIL"
    return f"{text} ({r['note']})" if r["note"] else text


def cells(r):
    return [r["name"], r["peer_config"], number(r["ours"], r["unit"]),
            number(r["peer"], r["unit"]), ratio(r), r["target"], verdict(r)]


def footer(doc):
    m = doc["machine"]
    return (f"Made by `scripts/bench` on {m['date']}, commit {doc['commit']}"
            f" ({m['model']}, {m['cpus']} CPUs, {m['arch']}; {doc['peer']};"
            f" {doc['mode']} run).")


METHOD = (
    "Throughput: submit N tasks of an empty function as fast as possible, then"
    " wait until all are completed; median of the runs. Latency: take the clock in"
    " the submitting thread, submit one task whose first statement takes the clock,"
    " wait for it; `atasker.monotonic()` in Lua, `time.perf_counter()` in Python;"
    " nearest-rank percentiles, median of the runs. Start-up: median wall time of"
    " repeated runs; peak RSS is the largest `/usr/bin/time -f %M`. Ratios are"
    " ours/peer for rates, peer/ours for times and sizes. Each run has its own time"
    " limit; a peer run killed at its limit (atasker deadlocks with many workers) has"
    " no figure, and a target relative to it is met by any figure of ours."
    "\n\n"
    "Queue workers: put N integers into one queue worker with an empty executor, from"
    " the main Lua state, from Swift (an ATasker `QueueWorker<Int>` in a throwaway"
    " package under `.build/bench-swift`) and from Python (`put_threadsafe`), then wait"
    " until all ran (`stop{drain=true}` here); atasker sleeps poll_delay after each"
    " item, so it gets fewer items. Interval workers: each execution compares the"
    " monotonic clock with t0 + k × interval (t0 taken just before `start`, k the"
    " tick's index, skipped ticks included); the first execution of a worker (which"
    " opens its Lua state here) is left out; lateness is histogrammed in 1 µs buckets"
    " below 1 ms (10 µs to 10 ms) and the histogram is copied at the start and the end"
    " of the hold, so the percentiles are over the ticks of the hold, which begins one"
    " interval after the first start once every worker has run twice (as the async"
    " rows wait for one run: thousands of new states can keep the pool busy, and"
    " behind on the ticks that came due meanwhile, for a while after the last start);"
    " drift is the median lateness of the ticks in the last second of the hold"
    " (a lateness that grows with time; the worst single tick is the lateness max)."
    " Starts are spread evenly over one interval, after a warm-up worker has started,"
    " run and stopped (in both scripts). The timer floor is `bench/c/timer_floor.c`:"
    " one thread, nothing else, one timed wait (with 1 ns timer slack, as the pool"
    " thread that serves the timers) until each deadline, every 10 ms (the 1-worker row's rate) and every"
    " 100 µs (the tick rate of the 1,000- and 10,000-worker rows; a virtual machine's"
    " CPU wakes up faster from a shorter idle), with the CPU time that one wake-up"
    " takes, on the clock of `os.clock()`; our serving thread, when the next deadline is"
    " more than 2 ms away, sleeps until 100 µs before it and then the rest of the way,"
    " since a long sleep ends late. Scale: executions/s,"
    " CPU (`os.clock()` / `time.process_time()`) and threads over the hold; memory per"
    " worker = (VmRSS at the end of the hold − VmRSS before the workers were created) /"
    " workers, each worker's own Lua state included; the interval and scale rows are"
    " one run each. Start/stop: for each of N plain workers with an empty executor,"
    " `start()` then `stop(wait)`. Async: N async interval workers"
    " (`background_worker{async=true, interval=0.1}` / an `async def` executor in"
    " atasker) on one aloop, first ticks spread evenly over one interval with"
    " `_delay_before`, held once every worker has run; each worker keeps a 32-slot"
    " histogram of its lags in its own state (25 µs buckets; percentiles are the upper"
    " edge of their bucket) and adds it to a shared table at its last tick, so the hold"
    " makes no host call per execution; memory per worker as for the scale row."
    " Ping-pong: two async queue workers on one aloop, each putting the item it got plus"
    " one into the other's queue (`put_threadsafe` in atasker), N round trips; atasker"
    " sleeps poll_delay after each item."
    "\n\n"
    "Process pool (mp): two children (`set_mp_pool{pool_size=2, reserve_normal=0,"
    " reserve_high=0}`; atasker: `set_mp_pool(pool_size=2, ...)`, which makes a"
    " `multiprocessing.Pool(2)`, and `background_task(f, tt=TT_MP)`), warmed up until"
    " both children answered; the task returns its argument. Round trip: the clock"
    " before the submit to the clock after `wait_completed` returned the result, one"
    " task at a time; the bare `multiprocessing.Pool(2)` (no atasker) figure in the note"
    " is `apply_async(f, (i,)).get()`. Throughput: submit N tasks, then wait for all;"
    " the bare Pool does N `apply_async`, then `.get()` each (no chunksize); atasker's"
    " task processor sleeps poll_delay whenever both children are busy, so it gets"
    " fewer tasks. Killed child: a pool of one child (so the next task needs the"
    " replacement); a task stores `atasker.monotonic()` in a shared table, then, as the"
    " Lua API has no kill, runs `os.execute` of `exec bash -c 'printf %s"
    " \"$EPOCHREALTIME\" > FILE; kill -KILL <own pid>'`: bash's $EPOCHREALTIME (read"
    " without a fork, just before kill(2)) is the kill time, compared with"
    " `atasker.time()` in the parent (the note gives the figure from the monotonic time"
    " before `os.execute`, sh's and bash's start included; without bash the rows use"
    " that one); failing = when `wait_completed` raises (the error names"
    " SIGKILL) in the parent; ready = when a trivial task submitted right after that"
    " has completed in a new child. No peer: a `multiprocessing.Pool` task whose child"
    " is killed stays pending for ever (the Pool replaces the child but never fails the"
    " task), and so does atasker's.")


def markdown(doc):
    lines = ["| " + " | ".join(HEADER) + " |",
             "|" + "|".join(["---"] * 2 + ["---:"] * 3 + ["---"] * 2) + "|"]
    for r in doc["rows"]:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells(r)) + " |")
    return "\n".join(lines) + "\n\n" + METHOD + "\n\n" + footer(doc) + "\n"


def text(doc):
    table = [HEADER] + [cells(r) for r in doc["rows"]]
    widths = [max(len(row[i]) for row in table) for i in range(len(HEADER))]
    out = []
    for k, row in enumerate(table):
        out.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out) + "\n\n" + footer(doc)


def main(argv):
    md = "--markdown" in argv
    paths = [a for a in argv if a != "--markdown"]
    path = paths[0] if paths else os.path.join(os.path.dirname(__file__), "results",
                                               "latest.json")
    with open(path) as f:
        doc = json.load(f)
    sys.stdout.write(markdown(doc) if md else text(doc) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
