"""Runs the benchmarks of atasker-lua and of its peer, atasker 0.7.9, in one go.

Usage (scripts/bench calls it):
    python3 bench/run.py --binary PATH --peer-python PATH [--quick] [--only GROUPS]

--only runs some groups of rows, comma-separated, of: tasks (throughput and latency
of thread tasks), startup, queue, interval, startstop, async (async workers on an
aloop), mp (the process pool), jobs (durable jobs on PostgreSQL, beside pgqueuer and
procrastinate, and on SQLite; a throwaway PostgreSQL cluster of their own). With
--only nothing is written unless --out / --table are given (the full run's files are
left alone); the table is printed. E.g. the process-pool rows alone:
    python3 bench/run.py --binary .build/release/atasker-lua \
        --peer-python .build/bench-venv/bin/python --only mp [--quick]

Every run is a child process with its own time limit: a run that hangs (atasker
deadlocks with many workers) is killed and fails its row with "timeout" instead of
hanging the bench. The scripts print lines `RESULT <key> <number>` that are parsed
here. Writes bench/results/latest.json and bench/README-table.md (via report.py), and
prints the table.
"""
import argparse
import datetime
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import report

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# The start and stop of atasker's supervisor, as bench/python/startup.py documents it.
PEER_STARTUP = (
    "import os, atasker\n"
    "atasker.task_supervisor.start()\n"
    "try:\n"
    "    atasker.task_supervisor.stop(wait=True)\n"
    "except AttributeError:\n"
    "    pass\n"
    "os._exit(0)\n"
)

FULL = dict(tasks=100_000, tasks_default=300, latency=2_000, warmup=200,
            repeat=3, startup_runs=20, rss_runs=5, limit=120,
            # queue workers: items put by atasker-lua / by atasker at poll_delay=0 /
            # at its default poll_delay (it sleeps poll_delay after each item)
            items=1_000_000, items_peer=20_000, items_default=30,
            # interval accuracy: one worker at 10 ms; 1,000 workers at 100 ms
            accuracy_hold=10, many=1_000, many_hold=10,
            # scale: interval workers at 1 s, held this long
            scale=10_000, scale_hold=60,
            # workers started and stopped, one after another
            startstop=10_000, startstop_peer=1_000,
            # process pool, 2 children: trivial tasks by atasker-lua and by a bare
            # multiprocessing.Pool(2) / by atasker (it sleeps poll_delay each time both
            # children are busy); rounds of a child killed
            mp_tasks=20_000, mp_tasks_peer=2_000, mp_kill=20,
            # async interval workers at 100 ms on one aloop, held this long
            async_workers=10_000, async_hold=10,
            # async ping-pong: round trips by atasker-lua / by atasker at poll_delay=0 / at
            # its default poll_delay (it sleeps poll_delay after each item)
            pingpong=300_000, pingpong_peer=5_000, pingpong_default=20,
            # durable jobs: jobs put then done by 1/2/4 hosts, by atasker-lua and by each peer (pgqueuer,
            # procrastinate); concurrency per host; jobs put one at a time for put -> start
            jobs=20_000, jobs_peer=10_000, jobs_conc=64, jobs_latency=500)
QUICK = dict(tasks=10_000, tasks_default=100, latency=500, warmup=100,
             repeat=1, startup_runs=5, rss_runs=2, limit=60,
             items=100_000, items_peer=5_000, items_default=20,
             accuracy_hold=3, many=1_000, many_hold=3,
             scale=1_000, scale_hold=10,
             startstop=2_000, startstop_peer=300,
             mp_tasks=5_000, mp_tasks_peer=500, mp_kill=5,
             async_workers=2_000, async_hold=3,
             pingpong=50_000, pingpong_peer=2_000, pingpong_default=10,
             jobs=5_000, jobs_peer=5_000, jobs_conc=64, jobs_latency=200)


class RunFailed(Exception):
    """A run that timed out, exited with an error or printed no result."""


def run(cmd, limit, stdout=subprocess.PIPE, env=None):
    """Runs cmd in its own process group; kills the group after limit seconds."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=stdout, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, env=env)
    try:
        out, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise RunFailed(f"timeout ({limit} s)")
    if proc.returncode != 0:
        tail = (err or "").strip().splitlines()[-3:]
        raise RunFailed(f"exit {proc.returncode}: {' | '.join(tail)}")
    return out or ""


def results(cmd, limit, env=None):
    """Runs a benchmark script and returns its RESULT lines as {key: float}."""
    found = {}
    for line in run(cmd, limit, env=env).splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "RESULT":
            found[parts[1]] = float(parts[2])
    if not found:
        raise RunFailed("no RESULT line")
    return found


def repeated(cmd, keys, repeat, limit):
    """Median of each RESULT key over `repeat` runs; keys are required."""
    runs = [results(cmd, limit) for _ in range(repeat)]
    for key in keys:
        if any(key not in r for r in runs):
            raise RunFailed(f"no RESULT {key}")
    common = set.intersection(*(set(r) for r in runs))
    return {key: statistics.median(r[key] for r in runs) for key in sorted(common)}


def startup(cmd, runs, rss_runs, limit):
    """Median wall time in ms of `runs` runs and the largest peak RSS in KB."""
    run(cmd, limit, stdout=subprocess.DEVNULL)  # warm the page cache
    walls = []
    for _ in range(runs):
        t0 = time.perf_counter()
        run(cmd, limit, stdout=subprocess.DEVNULL)
        walls.append((time.perf_counter() - t0) * 1e3)
    peaks = []
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "rss")
        for _ in range(rss_runs):
            run(["/usr/bin/time", "-f", "%M", "-o", out] + cmd, limit,
                stdout=subprocess.DEVNULL)
            with open(out) as f:
                peaks.append(int(f.read().split()[-1]))
    return {"ms": statistics.median(walls), "rss_kb": max(peaks)}


class Measure:
    """Runs each measurement once; a failure is kept and reported in its rows."""

    def __init__(self):
        self.cache = {}

    def __call__(self, name, fn):
        if name not in self.cache:
            print(f"  {name} ...", file=sys.stderr, flush=True)
            try:
                self.cache[name] = fn()
            except RunFailed as e:
                print(f"    failed: {e}", file=sys.stderr, flush=True)
                self.cache[name] = e
        return self.cache[name]


def passes(goal, ours, ratio):
    """A target on our figure alone passes even if the peer failed (it deadlocks in
    some rows); a target on the ratio fails without one (row() passes an infinite
    ratio when the peer hung: it never finished, so any figure of ours beats it)."""
    if isinstance(ours, RunFailed):
        return False
    try:
        return bool(goal(ours, ratio))
    except TypeError:  # ratio is None
        return False


def row(name, unit, better, ours, peer, peer_config, target, goal, note=None,
        words=None, peer_name="atasker", peer_label="atasker 0.7.9"):
    """One row. goal(ours, ratio) -> bool; better is "higher" or "lower".

    peer None: no peer figure (not measured for that row). ratio is None when a side
    failed or a divisor is 0. words: the ratio's words, e.g. ["less", "more"] (report.py
    picks them from the unit otherwise; ["1/", "of X"] shows a ratio below 1 as "1/12.5 of X",
    ["%", "of X"] as "62% of X"). note: a remark shown after the verdict.
    peer_name: who the peer is, in the note of a failed run. peer_label: the peer as the
    table's "run with" cell names it before peer_config (None: peer_config says it all).
    """
    failed = [f"{who}: {v}" for who, v in (("atasker-lua", ours), (peer_name, peer))
              if isinstance(v, RunFailed)]
    ratio = None
    if not failed and peer is not None:
        num, den = (ours, peer) if better == "higher" else (peer, ours)
        ratio = num / den if den else None
    # a peer run killed at its time limit hung (atasker deadlocks with many workers):
    # a target relative to it is met by any figure of ours, and the table says why
    hung = isinstance(peer, RunFailed) and str(peer).startswith("timeout")
    if hung:
        failed[-1] += f"; {peer_name} did not finish, which any figure of ours beats"
    return {
        "name": name, "unit": unit, "better": better,
        "peer_config": f"{peer_label}, {peer_config}" if peer_label else peer_config,
        "ours": None if isinstance(ours, RunFailed) else round(ours, 1),
        "peer": None if isinstance(peer, RunFailed) or peer is None else round(peer, 1),
        "ratio": None if ratio is None else round(ratio, 2),
        "target": target,
        "pass": passes(goal, ours, float("inf") if hung else ratio),
        "note": "; ".join(failed + ([note] if note else [])) or None,
        **({"words": words} if words else {}),
    }


class Busy:
    """One CPU-bound process beside the runs of a busy-machine row: started before them,
    killed after them (`with Busy(): ...`)."""

    def __enter__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"],
                                     stdout=subprocess.DEVNULL, start_new_session=True)
        time.sleep(0.3)  # let it take its CPU before the runs begin
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()
        return False


def busy(fn):
    """fn() run with one CPU-bound process beside it."""
    def measured():
        with Busy():
            return fn()
    return measured


def pick(measured, key, scale=1.0):
    return measured if isinstance(measured, RunFailed) else measured[key] * scale


def machine():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "arch": platform.machine(),
        "cpus": len(os.sched_getaffinity(0)),
        "model": model,
        "kernel": platform.release(),
        "date": datetime.datetime.now(datetime.timezone.utc)
                .strftime("%Y-%m-%d %H:%M UTC"),
    }


def commit():
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                             capture_output=True, text=True, check=True)
        return out.stdout.strip() or "uncommitted"
    except (OSError, subprocess.CalledProcessError):
        return "uncommitted"

def args_floor(binary, *args):
    if not binary:
        raise RunFailed("the floor program did not build (see scripts/bench)")
    return [os.path.abspath(binary)] + [str(a) for a in args]


def floor_note(ours, floor, key, what):
    """The CPU per item of ours and of the floor, for a row's note."""
    o, f = pick(ours, key), pick(floor, key)
    if isinstance(o, RunFailed) or isinstance(f, RunFailed):
        return None
    return f"CPU per {what}: {o:,.2f} µs, the floor {f:,.2f} µs"


def queue_rows(m, cfg, lua, py, swift, queue_floor):
    """Queue worker throughput, items put from Lua and from Swift."""
    limit, rep, keys = cfg["limit"], cfg["repeat"], ["items_per_s"]
    n, np_, nd = cfg["items"], cfg["items_peer"], cfg["items_default"]
    ours_lua = m("atasker-lua queue worker, put from Lua", lambda: repeated(
        lua + ["bench/lua/queue.lua", str(n)], keys, rep, limit))

    def swift_run():
        if not swift:
            raise RunFailed("bench-queue not built (see scripts/bench)")
        return repeated([os.path.abspath(swift), str(n)], keys, rep, limit)
    ours_swift = m("atasker-lua queue worker, put from Swift", swift_run)
    # atasker is given fewer items and a time limit inside the script (it reports the
    # items that ran by then)
    inner = str(max(5, limit - 20))
    peer0 = m("atasker queue worker, poll_delay=0", lambda: repeated(
        py + ["bench/python/queue_worker.py", str(np_), "0", inner], keys, rep, limit))
    peer1 = m("atasker queue worker, poll_delay=0.1", lambda: repeated(
        py + ["bench/python/queue_worker.py", str(nd), "0.1", inner], keys, rep, limit))
    floor = m("queue floor (bench/c/queue_floor.c)", lambda: repeated(
        args_floor(queue_floor, n), keys, rep, limit))
    busy_lua = m("atasker-lua queue worker, put from Lua, busy machine", busy(lambda: repeated(
        lua + ["bench/lua/queue.lua", str(n)], keys, rep, limit)))
    name = f"Queue worker throughput, {n:,} small items put from"
    floor_rows = [
        row(f"{name} Lua, against the C + Lua floor", "items/s", "higher",
            pick(ours_lua, "items_per_s"), pick(floor, "items_per_s"),
            "Lua put(i) into a mutex ring, one consumer state drains in batches",
            ">= 1/3 of the floor", lambda o, r: r >= 1 / 3, peer_name="the floor",
            peer_label="C floor", words=["1/", "of the floor"],
            note=floor_note(ours_lua, floor, "cpu_us_per_item", "item")),
        row(f"{name} Lua, busy machine (one CPU-bound process beside it)", "items/s",
            "higher", pick(busy_lua, "items_per_s"), pick(ours_lua, "items_per_s"),
            "the same run on a quiet machine", ">= 50% of quiet",
            lambda o, r: r >= 0.5, peer_name="quiet", peer_label="atasker-lua",
            words=["%", "of quiet"]),
    ]
    return floor_rows + [
        row(f"{name} Lua (atasker: {np_:,} from Python)", "items/s", "higher",
            pick(ours_lua, "items_per_s"), pick(peer0, "items_per_s"), "poll_delay=0",
            ">= 1,000,000 items/s", lambda o, r: o >= 1_000_000),
        row(f"{name} Lua (atasker: {nd:,} from Python)", "items/s", "higher",
            pick(ours_lua, "items_per_s"), pick(peer1, "items_per_s"),
            "poll_delay=0.1 (default)", ">= 1,000,000 items/s",
            lambda o, r: o >= 1_000_000),
        row(f"{name} Swift (atasker: {np_:,} from Python)", "items/s", "higher",
            pick(ours_swift, "items_per_s"), pick(peer0, "items_per_s"),
            "poll_delay=0", ">= 2,000,000 items/s", lambda o, r: o >= 2_000_000,
            note="Swift QueueWorker<Int>, built in .build/bench-swift"),
    ]


def interval_rows(m, cfg, lua, py, timer_floor):
    """Interval accuracy (one worker at 10 ms; many at 100 ms) and scale (at 1 s),
    with the machine's timer floor (bench/c/timer_floor.c) measured in the same run."""
    limit = cfg["limit"]
    # (workers, interval, hold): each is one run of each side (they are long), at
    # atasker's default poll_delay (its interval loop does not use poll_delay)
    cases = {
        "accuracy": (1, 0.01, cfg["accuracy_hold"]),
        "many": (cfg["many"], 0.1, cfg["many_hold"]),
        "scale": (cfg["scale"], 1.0, cfg["scale_hold"]),
    }
    measured = {}
    for case, (w, iv, hold) in cases.items():
        argv = [str(w), str(iv), str(hold)]
        # the run lasts the hold, the spread starts and a few ticks after; atasker
        # deadlocks with many workers, and then this limit fails its row
        lim = max(limit, hold + 60)
        label = f"{w:,} interval workers at {iv * 1000:g} ms, {hold:g} s"
        measured[case] = (
            m(f"atasker-lua {label}", lambda argv=argv, lim=lim: results(
                lua + ["bench/lua/interval.lua"] + argv, lim)),
            m(f"atasker {label}, poll_delay=0.1", lambda argv=argv, lim=lim: results(
                py + ["bench/python/interval.py"] + argv + ["0.1"], lim)),
        )
    default = "poll_delay=0.1 (default)"
    less = ["less", "more"]
    # the floor at the 1-worker row's rate (100 ticks/s) and at the rate of the 1,000-
    # and 10,000-worker rows (10,000 ticks/s: a virtual machine wakes up faster when its
    # CPU was idle for less long), each for as many ticks as the 1-worker row has
    rows = []
    ticks = int(round(cfg["accuracy_hold"] / 0.01))
    for spacing, every in ((0.01, "10 ms"), (0.0001, "100 µs")):
        if timer_floor:
            floor = m(f"timer floor every {every}", lambda spacing=spacing: results(
                [timer_floor, str(ticks), str(spacing)], limit))
        else:
            floor = RunFailed("bench/c/timer_floor.c was not built (scripts/bench builds it)")
        fname = (f"Timer floor of this machine: a bare pthread_cond_timedwait every {every},"
                 f" timer slack 1 ns, {ticks:,} ticks")
        floor_note = ("one timed wait until each deadline; a sleep of more than 2 ms ends late,"
                      " so atasker-lua's serving thread wakes 100 µs early and waits the rest")
        figures = [("lateness p50", "p50_us", "µs", floor_note),
                   ("lateness p99", "p99_us", "µs", floor_note)]
        if spacing < 0.01:
            figures.append(("CPU per tick", "cpu_us_per_tick", "µs",
                            "process CPU time (as os.clock()) / ticks: the least CPU per"
                            " execution of a scheduler that wakes up for every tick"))
        rows += [row(f"{fname}: {what}", unit, "lower", pick(floor, key), None,
                     "— (no peer)", "(figure)", lambda o, r: True, note=note)
                 for what, key, unit, note in figures]
    for case, title in (("accuracy", "Interval accuracy, 1 worker at 10 ms for {h:g} s"),
                        ("many", "Interval accuracy, {w:,} workers at 100 ms, starts"
                                 " spread over it, {h:g} s")):
        ours, peer = measured[case]
        w, iv, hold = cases[case]
        name = title.format(w=w, h=hold)

        def r(what, key, unit, target, goal, note=None):
            return row(f"{name}: {what}", unit, "lower", pick(ours, key),
                       pick(peer, key), default, target, goal, note=note, words=less)
        rows += [
            r("lateness p50", "p50_us", "µs", "lower than atasker",
              lambda o, r: r > 1),
            r("lateness p99", "p99_us", "µs", "< 200 µs", lambda o, r: o < 200),
            r("lateness max", "max_us", "µs", "lower than atasker",
              lambda o, r: r > 1),
            r("skipped ticks", "skipped", "ticks", "0", lambda o, r: o == 0),
            r("drift at the end", "drift_us", "µs", "< 1 ms (no drift)",
              lambda o, r: o < 1000,
              note="median lateness of the ticks in the last second of the hold"),
        ]
    ours, peer = measured["scale"]
    w, iv, hold = cases["scale"]
    name = f"Scale, {w:,} interval workers at 1 s, starts spread, held {hold:g} s"
    rows += [
        row(f"{name}: executions/s (nominal {w / iv:,.0f})", "execs/s", "higher",
            pick(ours, "execs_per_s"), pick(peer, "execs_per_s"), default,
            f">= 99% of {w / iv:,.0f}/s", lambda o, r: o >= 0.99 * w / iv),
        row(f"{name}: lag p99", "µs", "lower", pick(ours, "p99_us"),
            pick(peer, "p99_us"), default, "< 200 µs", lambda o, r: o < 200,
            words=less),
        row(f"{name}: memory per worker", "KB", "lower", pick(ours, "kb_per_worker"),
            pick(peer, "kb_per_worker"), default, "<= 24 KB", lambda o, r: o <= 24,
            note="(RSS after the hold - RSS before the workers) / workers"),
        row(f"{name}: CPU per execution", "µs", "lower", pick(ours, "cpu_us_per_exec"),
            pick(peer, "cpu_us_per_exec"), default, "<= 5 µs", lambda o, r: o <= 5,
            words=less),
        row(f"{name}: CPU", "%", "lower", pick(ours, "cpu_pct"), pick(peer, "cpu_pct"),
            default, "(figure)", lambda o, r: True,
            note="process CPU time / wall time over the hold; 100% = one core"),
        row(f"{name}: threads", "threads", "lower", pick(ours, "threads"),
            pick(peer, "threads"), default, "(figure)", lambda o, r: True),
    ]
    return rows


def async_rows(m, cfg, lua, py):
    """Async workers: many async interval workers on one aloop, and a ping-pong
    between two async queue workers on one aloop."""
    limit, rep = cfg["limit"], cfg["repeat"]
    w, iv, hold = cfg["async_workers"], 0.1, cfg["async_hold"]
    argv = [str(w), str(iv), str(hold)]
    # the starts, the opening of every worker's state, the hold and the last ticks
    lim = max(limit, hold + 90)
    label = f"{w:,} async interval workers at 100 ms on one aloop, {hold:g} s"
    ours = m(f"atasker-lua {label}", lambda: results(
        lua + ["bench/lua/async_interval.lua"] + argv, lim))
    peer = m(f"atasker {label}, poll_delay=0.1", lambda: results(
        py + ["bench/python/async_interval.py"] + argv + ["0.1"], lim))
    n, np_, nd = cfg["pingpong"], cfg["pingpong_peer"], cfg["pingpong_default"]
    keys = ["round_trips_per_s"]
    inner = str(max(5, limit - 20))
    ours_pp = m("atasker-lua async ping-pong", lambda: repeated(
        lua + ["bench/lua/async_pingpong.lua", str(n)], keys, rep, limit))
    peer_pp0 = m("atasker async ping-pong, poll_delay=0", lambda: repeated(
        py + ["bench/python/async_pingpong.py", str(np_), "0", inner], keys, rep, limit))
    peer_pp1 = m("atasker async ping-pong, poll_delay=0.1", lambda: repeated(
        py + ["bench/python/async_pingpong.py", str(nd), "0.1", inner], keys, rep, limit))
    default = "poll_delay=0.1 (default)"
    less = ["less", "more"]
    name = (f"Async, {w:,} interval workers at 100 ms on one aloop, starts spread,"
            f" held {hold:g} s")

    def r(what, key, unit, better, target, goal, note=None, words=None):
        return row(f"{name}: {what}", unit, better, pick(ours, key), pick(peer, key),
                   default, target, goal, note=note, words=words)
    pp = f"Async ping-pong between two queue workers on one aloop, {n:,} round trips"
    return [
        r("lag p50", "p50_us", "µs", "lower", "lower than atasker",
          lambda o, r: r > 1, words=less,
          note="upper edge of a 25 µs bucket"),
        r("lag p99", "p99_us", "µs", "lower", "< 1 ms", lambda o, r: o < 1000,
          words=less, note="upper edge of a 25 µs bucket"),
        r("executions/s (nominal " + f"{w / iv:,.0f})", "execs_per_s", "execs/s",
          "higher", f">= 99% of {w / iv:,.0f}/s", lambda o, r: o >= 0.99 * w / iv),
        r("memory per worker", "kb_per_worker", "KB", "lower", "<= 24 KB (aim 16)",
          lambda o, r: o <= 24, words=less,
          note="(RSS at the end of the hold - RSS before the workers) / workers"),
        r("CPU", "cpu_pct", "%", "lower", "(figure)", lambda o, r: True, words=less,
          note="process CPU time / wall time over the hold; 100% = one core"),
        r("CPU per execution", "cpu_us_per_exec", "µs", "lower", "(figure)",
          lambda o, r: True, words=less),
        r("threads", "threads", "threads", "lower", "(figure)", lambda o, r: True),
        row(f"{pp} (atasker: {np_:,})", "round trips/s", "higher",
            pick(ours_pp, "round_trips_per_s"), pick(peer_pp0, "round_trips_per_s"),
            "poll_delay=0", ">= 20x atasker", lambda o, r: r >= 20),
        row(f"{pp} (atasker: {nd:,})", "round trips/s", "higher",
            pick(ours_pp, "round_trips_per_s"), pick(peer_pp1, "round_trips_per_s"),
            default, ">= 20x atasker", lambda o, r: r >= 20),
    ]


def startstop_rows(m, cfg, lua, py):
    """Workers started and stopped per second, one after another."""
    limit, rep, keys = cfg["limit"], cfg["repeat"], ["workers_per_s"]
    n, np_ = cfg["startstop"], cfg["startstop_peer"]
    ours = m("atasker-lua start + stop", lambda: repeated(
        lua + ["bench/lua/startstop.lua", str(n)], keys, rep, limit))
    peer = m("atasker start + stop, poll_delay=0.1", lambda: repeated(
        py + ["bench/python/startstop.py", str(np_), "0.1"], keys, rep, limit))
    return [row(f"Workers started and stopped, {n:,} one after another"
                f" (atasker: {np_:,})", "workers/s", "higher",
                pick(ours, "workers_per_s"), pick(peer, "workers_per_s"),
                "poll_delay=0.1 (default)", "higher than atasker", lambda o, r: r > 1)]


def task_rows(m, cfg, lua, py, luv, task_floor):
    """Throughput and submit-to-start latency of thread tasks."""
    limit, rep = cfg["limit"], cfg["repeat"]
    tput_keys, lat_keys = ["tasks_per_s"], ["p50_us", "p99_us"]

    n, nd = cfg["tasks"], cfg["tasks_default"]
    ours_tput = m("atasker-lua throughput", lambda: repeated(
        lua + ["bench/lua/throughput.lua", str(n)], tput_keys, rep, limit))
    peer_tput0 = m("atasker throughput, poll_delay=0", lambda: repeated(
        py + ["bench/python/throughput.py", str(n), "0"], tput_keys, rep, limit))
    peer_tput1 = m("atasker throughput, poll_delay=0.1", lambda: repeated(
        py + ["bench/python/throughput.py", str(nd), "0.1"], tput_keys, rep, limit))

    lat_args = [str(cfg["latency"]), str(cfg["warmup"])]
    ours_lat = m("atasker-lua latency", lambda: repeated(
        lua + ["bench/lua/latency.lua"] + lat_args, lat_keys, rep, limit))
    peer_lat0 = m("atasker latency, poll_delay=0", lambda: repeated(
        py + ["bench/python/latency.py"] + lat_args + ["0"], lat_keys, rep, limit))
    peer_lat1 = m("atasker latency, poll_delay=0.1", lambda: repeated(
        py + ["bench/python/latency.py"] + lat_args + ["0.1"], lat_keys, rep, limit))

    # luv's thread pool (uv.new_work) and the C + Lua floor, in the same run
    luv_keys = ["tasks_per_s", "cpu_us_per_task", "roundtrip_p50_us", "roundtrip_p99_us"]
    peer_luv = m("luv thread pool (uv.new_work)", lambda: repeated(
        luv_cmd(luv, n, cfg["latency"], cfg["warmup"]), luv_keys, rep, limit))
    floor = m("task floor (bench/c/task_floor.c)", lambda: repeated(
        args_floor(task_floor, n), ["tasks_per_s", "cpu_us_per_task"], rep, limit))
    busy_tput = m("atasker-lua throughput, busy machine", busy(lambda: repeated(
        lua + ["bench/lua/throughput.lua", str(n)], tput_keys, rep, limit)))

    tput = f"Throughput, {n:,} trivial tasks"
    lat = f"Submit-to-start latency ({cfg['latency']:,} tasks, one at a time)"
    trip = f"Round trip, submit to result ({cfg['latency']:,} tasks, one at a time)"
    luv_config = "uv.new_work + queue(i), its 4 pool threads"
    rows = [
        row(f"{tput}, against luv", "tasks/s", "higher", pick(ours_tput, "tasks_per_s"),
            pick(peer_luv, "tasks_per_s"), luv_config, ">= 2x luv", lambda o, r: r >= 2,
            peer_name="luv", peer_label="luv 1.44"),
        row(f"{tput}, against the C + Lua floor", "tasks/s", "higher",
            pick(ours_tput, "tasks_per_s"), pick(floor, "tasks_per_s"),
            "C submit(i) queues a record, 2 pool threads' own states pcall each",
            ">= 1/5 of the floor", lambda o, r: r >= 0.2, peer_name="the floor",
            peer_label="C floor", words=["1/", "of the floor"],
            note=floor_note(ours_tput, floor, "cpu_us_per_task", "task")),
        row(f"{tput}, CPU per task", "µs", "lower", pick(ours_tput, "cpu_us_per_task"),
            pick(peer_luv, "cpu_us_per_task"), luv_config, "<= 3 µs",
            lambda o, r: o <= 3, peer_name="luv", peer_label="luv 1.44",
            words=["less", "more"]),
        row(f"{tput}, busy machine (one CPU-bound process beside it)", "tasks/s",
            "higher", pick(busy_tput, "tasks_per_s"), pick(ours_tput, "tasks_per_s"),
            "the same run on a quiet machine", ">= 50% of quiet",
            lambda o, r: r >= 0.5, peer_name="quiet", peer_label="atasker-lua",
            words=["%", "of quiet"]),
        row(f"{trip}, p50", "µs", "lower", pick(ours_lat, "roundtrip_p50_us"),
            pick(peer_luv, "roundtrip_p50_us"), "queue from the after-work callback",
            "lower than luv", lambda o, r: r > 1, peer_name="luv", peer_label="luv 1.44"),
        row(f"{trip}, p99", "µs", "lower", pick(ours_lat, "roundtrip_p99_us"),
            pick(peer_luv, "roundtrip_p99_us"), "queue from the after-work callback",
            "lower than luv", lambda o, r: r > 1, peer_name="luv", peer_label="luv 1.44"),
        row(tput, "tasks/s", "higher",
            pick(ours_tput, "tasks_per_s"), pick(peer_tput0, "tasks_per_s"),
            "poll_delay=0", ">= 20x atasker", lambda o, r: r >= 20),
        row(f"{tput} (atasker: {nd:,})", "tasks/s", "higher",
            pick(ours_tput, "tasks_per_s"), pick(peer_tput1, "tasks_per_s"),
            "poll_delay=0.1 (default)", ">= 1,000x atasker", lambda o, r: r >= 1000),
    ]
    for config, peer in (("poll_delay=0", peer_lat0),
                         ("poll_delay=0.1 (default)", peer_lat1)):
        rows.append(row(f"{lat}, p50", "µs", "lower",
                        pick(ours_lat, "p50_us"), pick(peer, "p50_us"), config,
                        "lower than atasker", lambda o, r: r > 1))
        rows.append(row(f"{lat}, p99", "µs", "lower",
                        pick(ours_lat, "p99_us"), pick(peer, "p99_us"), config,
                        "< 100 µs", lambda o, r: o < 100))
    return rows


def luv_cmd(luv, n, rounds, warmup):
    if not luv:
        raise RunFailed("no lua5.4 with lua-luv (scripts/bench installs them)")
    return [luv, "bench/luv/throughput.lua", str(n), str(rounds), str(warmup)]


def startup_rows(m, cfg, lua, py):
    """Start-up + shutdown of an empty script: wall time and peak RSS."""
    limit, runs, rss_runs = cfg["limit"], cfg["startup_runs"], cfg["rss_runs"]
    ours_start = m("atasker-lua start-up", lambda: startup(
        lua + ["bench/lua/empty.lua"], runs, rss_runs, limit))
    peer_start = m("atasker start-up", lambda: startup(
        py + ["-c", PEER_STARTUP], runs, rss_runs, limit))
    empty = "import atasker, start + stop supervisor"
    return [
        row("Start-up + shutdown of an empty script, wall time", "ms", "lower",
            pick(ours_start, "ms"), pick(peer_start, "ms"), empty, "< 20 ms",
            lambda o, r: o < 20),
        row("Start-up + shutdown of an empty script, peak RSS", "MB", "lower",
            pick(ours_start, "rss_kb", 1 / 1024), pick(peer_start, "rss_kb", 1 / 1024),
            empty, "< 15 MB", lambda o, r: o < 15),
    ]


def mp_rows(m, cfg, lua, py):
    """The process pool with 2 children: round trip, throughput, a child killed."""
    limit, rep = cfg["limit"], cfg["repeat"]
    keys = ["p50_us", "p99_us", "tasks_per_s"]
    nl, warm = cfg["latency"], cfg["warmup"]
    n, np_, k = cfg["mp_tasks"], cfg["mp_tasks_peer"], cfg["mp_kill"]
    ours = m("atasker-lua mp, 2 children", lambda: repeated(
        lua + ["bench/lua/mp.lua", str(nl), str(warm), str(n)], keys, rep, limit))
    peer = m("atasker mp, 2 children, poll_delay=0.001", lambda: repeated(
        py + ["bench/python/mp.py", "atasker", str(nl), str(warm), str(np_), "0.001"],
        keys, rep, limit))
    pool = m("bare multiprocessing.Pool(2)", lambda: repeated(
        py + ["bench/python/mp.py", "pool", str(nl), str(warm), str(n)],
        keys, rep, limit))
    kill = m(f"atasker-lua mp, a child killed, {k} rounds", lambda: results(
        lua + ["bench/lua/mp_kill.lua", str(k)], limit))

    config = "poll_delay=0.001, set_mp_pool(pool_size=2)"
    bare = "none: bare multiprocessing.Pool(2)"

    def bare_note(key, unit, what):
        v = pick(pool, key)
        if isinstance(v, RunFailed):
            return f"bare multiprocessing.Pool(2): {v}"
        return f"bare multiprocessing.Pool(2), {what}: {v:,.1f} {unit}"

    lat = f"mp round trip, trivial task, 2 children ({nl:,} one at a time)"
    tput = f"mp throughput, {n:,} trivial tasks, 2 children"
    rows = [
        row(f"{lat}, p50", "µs", "lower", pick(ours, "p50_us"), pick(peer, "p50_us"),
            config, "lower than atasker", lambda o, r: r > 1,
            note=bare_note("p50_us", "µs", "apply_async().get()")),
        row(f"{lat}, p99", "µs", "lower", pick(ours, "p99_us"), pick(peer, "p99_us"),
            config, "< 200 µs", lambda o, r: o < 200,
            note=bare_note("p99_us", "µs", "apply_async().get()")),
        row(f"{tput} (atasker: {np_:,})", "tasks/s", "higher",
            pick(ours, "tasks_per_s"), pick(peer, "tasks_per_s"), config,
            ">= 10x atasker", lambda o, r: r >= 10),
        row(tput, "tasks/s", "higher", pick(ours, "tasks_per_s"),
            pick(pool, "tasks_per_s"), bare, ">= 4x bare Pool", lambda o, r: r >= 4,
            note="the Pool: N apply_async, then .get() each, no chunksize",
            peer_name="multiprocessing.Pool", peer_label=None),
        row(f"{lat}, p99 against the p50 of the same run", "µs", "lower",
            pick(ours, "p99_us"), pick(ours, "p50_us"), "its p50", "p99 <= 3x p50",
            lambda o, r: r >= 1 / 3, peer_name="p50", peer_label="atasker-lua",
            words=["less", "more"]),
    ]
    none = ("no peer: a multiprocessing.Pool task whose child is killed stays pending"
            " for ever")
    tight = pick(kill, "tight")
    if isinstance(tight, RunFailed):
        how = None
    elif tight:
        how = "killed = bash's $EPOCHREALTIME just before kill(2) in the child"
    else:
        how = ("no bash: killed = the time before os.execute forks sh to run kill (sh's"
               " fork + exec included)")
    kname = f"mp child killed with SIGKILL ({k} rounds, pool of 1)"
    for key, what, target, bound in (
            ("fail_p50_ms", "to its task failing, median", "< 50 ms", 50),
            ("fail_max_ms", "to its task failing, max", "< 50 ms", 50),
            ("ready_p50_ms", "to a replacement ready, median", "< 250 ms", 250),
            ("ready_max_ms", "to a replacement ready, max", "< 250 ms", 250)):
        parts = [none]
        if how:
            parts.append(how)
        if tight and not isinstance(tight, RunFailed):
            upper = pick(kill, key.replace("_p50", "_upper_p50")
                         .replace("_max", "_upper_max"))
            parts.append(f"from before os.execute (sh + bash start included):"
                         f" {upper:,.1f} ms")
        rows.append(row(f"{kname}: {what}", "ms", "lower", pick(kill, key), None,
                        "— (no peer)", target, lambda o, r, b=bound: o < b,
                        note="; ".join(parts), peer_label=None))
    return rows


class PgCluster:
    """A throwaway PostgreSQL cluster (scripts/pg-cluster) for the jobs rows: started when first asked for, on a
    free loopback port in a temporary folder, stopped and removed at the end of the bench (`with`)."""

    def __init__(self):
        self.dir = None
        self.url = None
        self.error = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.dir:
            subprocess.run([os.path.join(ROOT, "scripts", "pg-cluster"), "stop", self.dir], cwd=ROOT,
                           stdout=subprocess.DEVNULL)
        return False

    def database(self, name):
        """The URL of a new, empty database `name` on the cluster (dropped first if it was there)."""
        if self.error:
            raise RunFailed(self.error)
        if not self.url:
            self.dir = tempfile.mkdtemp(prefix="atasker-bench-pg.")
            try:
                self.url = run([os.path.join(ROOT, "scripts", "pg-cluster"), "start", self.dir], 300).strip()
            except RunFailed as e:
                self.error = f"no PostgreSQL cluster: {e}"
                raise RunFailed(self.error)
        for sql in (f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name}"):
            run(["psql", "-qX", "-v", "ON_ERROR_STOP=1", self.url, "-c", sql], 60)
        return self.url.rsplit("/", 1)[0] + "/" + name


def jobs_rows(m, cfg, lua, py, args):
    """Durable jobs end to end: jobs/s with 1, 2 and 4 host processes on one PostgreSQL queue (beside pgqueuer and
    procrastinate on the same server) and on one SQLite file; put -> start latency on PostgreSQL."""
    limit, n, n_peer, conc = cfg["limit"], cfg["jobs"], cfg["jobs_peer"], cfg["jobs_conc"]
    pg = args.pg_cluster
    jpy = [args.jobs_python] if args.jobs_python else None
    binary = lua[0]

    def ours(store_url, argv):
        return results(lua + ["bench/lua/jobs.lua"] + argv, limit, env=dict(os.environ, ATASKER_STORE=store_url))

    def peer(system, argv):
        if not jpy:
            raise RunFailed("no venv with pgqueuer and procrastinate (scripts/bench makes .build/bench-jobs-venv)")
        return results(jpy + ["bench/python/jobs_peers.py", argv[0], system, pg.database(f"bench_{system}")]
                       + argv[1:], limit)

    def sqlite_url():
        folder = tempfile.mkdtemp(prefix="atasker-bench-jobs.")
        return f"sqlite://{folder}/jobs.db"

    rows = []
    for hosts in (1, 2, 4):
        argv = ["drive", str(n), str(hosts), str(conc), binary]
        mine = m(f"atasker-lua jobs, PostgreSQL, {hosts} host(s)",
                 lambda argv=argv: ours(pg.database("bench_ours"), argv))
        peers = {system: m(f"{system} jobs, {hosts} host(s)", lambda system=system, hosts=hosts: peer(
            system, ["drive", str(n_peer), str(hosts), str(conc)])) for system in ("pgqueuer", "procrastinate")}
        ok = {k: v for k, v in peers.items() if not isinstance(v, RunFailed)}
        best_name = max(ok, key=lambda k: ok[k]["jobs_per_s"]) if ok else "pgqueuer"
        best = peers[best_name]
        note = "; ".join(f"{k}: {'failed: ' + str(v) if isinstance(v, RunFailed) else format(v['jobs_per_s'], ',.0f') + ' jobs/s'}"
                         for k, v in peers.items())
        rows.append(row(
            f"Durable jobs on PostgreSQL, trivial jobs done end to end, {hosts} host process(es) x {conc}",
            "jobs/s", "higher", pick(mine, "jobs_per_s"), pick(best, "jobs_per_s"),
            f"the faster of pgqueuer 1.6.0 (drain mode, batches of {conc}) and procrastinate 3.10.0"
            f" (concurrency {conc}), {hosts} process(es), the same server",
            ">= 2x the faster peer", lambda o, r: r >= 2, peer_name=best_name, peer_label=None,
            note=f"{n:,} jobs ours (concurrency={conc}), {n_peer:,} each peer, put first, then the hosts start;"
                 f" {note}"))
    for hosts in (1, 2, 4):
        argv = ["drive", str(n), str(hosts), str(conc), binary]
        mine = m(f"atasker-lua jobs, SQLite, {hosts} host(s)", lambda argv=argv: ours(sqlite_url(), argv))
        rows.append(row(
            f"Durable jobs on SQLite (one file), trivial jobs done end to end, {hosts} host process(es) x {conc}",
            "jobs/s", "higher", pick(mine, "jobs_per_s"), None, "— (no peer)", "(figure)", lambda o, r: True,
            peer_label=None, note=f"{n:,} jobs, put first, then the hosts start"))
    nl = cfg["jobs_latency"]
    mine = m("atasker-lua jobs latency, PostgreSQL",
             lambda: ours(pg.database("bench_ours_latency"), ["latency", str(nl), binary]))
    peers = {system: m(f"{system} jobs latency", lambda system=system: peer(system, ["latency", str(nl)]))
             for system in ("pgqueuer", "procrastinate")}
    for key, what, bound in (("latency_p50_ms", "p50", 5), ("latency_p99_ms", "p99", 20)):
        ok = {k: v for k, v in peers.items() if not isinstance(v, RunFailed)}
        best_name = min(ok, key=lambda k: ok[k][key]) if ok else "pgqueuer"
        note = "; ".join(f"{k}: {'failed: ' + str(v) if isinstance(v, RunFailed) else format(v[key], '.2f') + ' ms'}"
                         for k, v in peers.items())
        rows.append(row(
            f"Durable jobs on PostgreSQL, put -> start across processes ({nl:,} jobs, 5 ms apart), {what}", "ms",
            "lower", pick(mine, key), pick(peers[best_name], key),
            "the lower of pgqueuer and procrastinate, each with LISTEN/NOTIFY, one serving process",
            f"< {bound} ms", lambda o, r, b=bound: o < b, peer_name=best_name, peer_label=None,
            words=["less", "more"], note=note))
    return rows


# the groups of rows, in the table's order (--only picks some)
GROUPS = {
    "tasks": lambda m, cfg, lua, py, args: task_rows(m, cfg, lua, py, args.luv,
                                                     args.task_floor),
    "startup": lambda m, cfg, lua, py, args: startup_rows(m, cfg, lua, py),
    "queue": lambda m, cfg, lua, py, args: queue_rows(m, cfg, lua, py,
                                                      args.swift_queue, args.queue_floor),
    "interval": lambda m, cfg, lua, py, args: interval_rows(m, cfg, lua, py,
                                                            args.timer_floor),
    "startstop": lambda m, cfg, lua, py, args: startstop_rows(m, cfg, lua, py),
    "async": lambda m, cfg, lua, py, args: async_rows(m, cfg, lua, py),
    "mp": lambda m, cfg, lua, py, args: mp_rows(m, cfg, lua, py),
    "jobs": lambda m, cfg, lua, py, args: jobs_rows(m, cfg, lua, py, args),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", required=True, help="atasker-lua executable")
    parser.add_argument("--peer-python", required=True,
                        help="python of a venv with atasker==0.7.9")
    parser.add_argument("--quick", action="store_true", help="smaller counts")
    parser.add_argument("--only", help="comma-separated groups of rows: "
                        + ", ".join(GROUPS) + " (default: all); then nothing is"
                        " written unless --out / --table are given")
    parser.add_argument("--out", help="the JSON results (default:"
                        " bench/results/latest.json)")
    parser.add_argument("--table", help="the markdown table (default:"
                        " bench/README-table.md)")
    parser.add_argument("--limit", type=float, help="time limit of each run, s")
    parser.add_argument("--timer-floor", default="",
                        help="timer_floor executable (bench/c/timer_floor.c, built by"
                             " scripts/bench); empty: the floor rows fail")
    parser.add_argument("--task-floor", default="",
                        help="task_floor executable (bench/c/task_floor.c); empty: its"
                             " rows fail")
    parser.add_argument("--queue-floor", default="",
                        help="queue_floor executable (bench/c/queue_floor.c); empty: its"
                             " rows fail")
    parser.add_argument("--luv", default="",
                        help="a lua5.4 that can require luv (Debian's lua5.4 + lua-luv);"
                             " empty: the luv rows fail")
    parser.add_argument("--jobs-python", default="",
                        help="python of a venv with pgqueuer and procrastinate (scripts/bench makes"
                             " .build/bench-jobs-venv); empty: the peers of the jobs rows fail")
    parser.add_argument("--swift-queue", default="",
                        help="bench-queue executable (bench/swift, built by scripts/bench"
                             " in .build/bench-swift); empty: that row fails")
    args = parser.parse_args()
    groups = list(GROUPS)
    if args.only:
        groups = [g.strip() for g in args.only.split(",") if g.strip()]
        unknown = [g for g in groups if g not in GROUPS]
        if unknown or not groups:
            parser.error(f"--only: unknown group(s) {', '.join(unknown) or '(none)'};"
                         f" groups: {', '.join(GROUPS)}")
    else:
        args.out = args.out or os.path.join(HERE, "results", "latest.json")
        args.table = args.table or os.path.join(HERE, "README-table.md")
    cfg = dict(QUICK if args.quick else FULL)
    if args.limit:
        cfg["limit"] = args.limit
    lua = [os.path.abspath(args.binary)]
    py = [args.peer_python]
    limit = cfg["limit"]
    m = Measure()

    rows = []
    with PgCluster() as args.pg_cluster:
        for name in GROUPS:  # the table's order, whatever the order given to --only
            if name in groups:
                rows += GROUPS[name](m, cfg, lua, py, args)

    doc = {
        "commit": commit(),
        "machine": machine(),
        "mode": "quick" if args.quick else "full",
        "peer": "atasker 0.7.9 (PyPI) on Python "
                + run(py + ["-c", "import platform; print(platform.python_version())"],
                      limit).strip(),
        "rows": rows,
        # every measurement as the scripts printed it (medians over the runs)
        "details": {name: str(v) if isinstance(v, RunFailed) else v
                    for name, v in m.cache.items()},
    }
    if args.only:
        doc["only"] = groups
    written = []
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(doc, f, indent=2, ensure_ascii=False)
            f.write("\n")
        written.append(os.path.relpath(args.out, ROOT))
    if args.table:
        with open(args.table, "w") as f:
            f.write(report.markdown(doc))
        written.append(os.path.relpath(args.table, ROOT))
    print(report.text(doc))
    if written:
        print(f"\nwrote {' and '.join(written)}")
    passed = sum(r["pass"] for r in rows)
    print(f"{passed} of {len(rows)} rows pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())
