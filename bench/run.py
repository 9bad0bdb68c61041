"""Runs the benchmarks of atasker-lua and of its peer, atasker 0.7.9, in one go.

Usage (scripts/bench calls it):
    python3 bench/run.py --binary PATH --peer-python PATH [--quick]

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
            repeat=3, startup_runs=20, rss_runs=5, limit=120)
QUICK = dict(tasks=10_000, tasks_default=100, latency=500, warmup=100,
             repeat=1, startup_runs=5, rss_runs=2, limit=60)


class RunFailed(Exception):
    """A run that timed out, exited with an error or printed no result."""


def run(cmd, limit, stdout=subprocess.PIPE):
    """Runs cmd in its own process group; kills the group after limit seconds."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=stdout, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
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


def results(cmd, limit):
    """Runs a benchmark script and returns its RESULT lines as {key: float}."""
    found = {}
    for line in run(cmd, limit).splitlines():
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


def row(name, unit, better, ours, peer, peer_config, target, goal):
    """One row. goal(ours, ratio) -> bool; better is "higher" or "lower"."""
    failed = [f"{who}: {v}" for who, v in (("atasker-lua", ours), ("atasker", peer))
              if isinstance(v, RunFailed)]
    ratio = None
    if not failed:
        ratio = ours / peer if better == "higher" else peer / ours
    return {
        "name": name, "unit": unit, "better": better, "peer_config": peer_config,
        "ours": None if isinstance(ours, RunFailed) else round(ours, 1),
        "peer": None if isinstance(peer, RunFailed) else round(peer, 1),
        "ratio": None if ratio is None else round(ratio, 2),
        "target": target,
        "pass": not failed and bool(goal(ours, ratio)),
        "note": "; ".join(failed) or None,
    }


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", required=True, help="atasker-lua executable")
    parser.add_argument("--peer-python", required=True,
                        help="python of a venv with atasker==0.7.9")
    parser.add_argument("--quick", action="store_true", help="smaller counts")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "latest.json"))
    parser.add_argument("--table", default=os.path.join(HERE, "README-table.md"))
    parser.add_argument("--limit", type=float, help="time limit of each run, s")
    args = parser.parse_args()
    cfg = dict(QUICK if args.quick else FULL)
    if args.limit:
        cfg["limit"] = args.limit
    lua = [os.path.abspath(args.binary)]
    py = [args.peer_python]
    limit, rep = cfg["limit"], cfg["repeat"]
    m = Measure()
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

    runs, rss_runs = cfg["startup_runs"], cfg["rss_runs"]
    ours_start = m("atasker-lua start-up", lambda: startup(
        lua + ["bench/lua/empty.lua"], runs, rss_runs, limit))
    peer_start = m("atasker start-up", lambda: startup(
        py + ["-c", PEER_STARTUP], runs, rss_runs, limit))

    tput = f"Throughput, {n:,} trivial tasks"
    lat = f"Submit-to-start latency ({cfg['latency']:,} tasks, one at a time)"
    rows = [
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
    empty = "import atasker, start + stop supervisor"
    rows += [
        row("Start-up + shutdown of an empty script, wall time", "ms", "lower",
            pick(ours_start, "ms"), pick(peer_start, "ms"), empty, "< 20 ms",
            lambda o, r: o < 20),
        row("Start-up + shutdown of an empty script, peak RSS", "MB", "lower",
            pick(ours_start, "rss_kb", 1 / 1024), pick(peer_start, "rss_kb", 1 / 1024),
            empty, "< 15 MB", lambda o, r: o < 15),
    ]

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
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=2, ensure_ascii=False)
        f.write("\n")
    with open(args.table, "w") as f:
        f.write(report.markdown(doc))
    print(report.text(doc))
    print(f"\nwrote {os.path.relpath(args.out, ROOT)} and "
          f"{os.path.relpath(args.table, ROOT)}")
    passed = sum(r["pass"] for r in rows)
    print(f"{passed} of {len(rows)} rows pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())
