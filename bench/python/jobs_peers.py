"""The peers of the durable-jobs rows: pgqueuer and procrastinate (PostgreSQL job queues from PyPI) doing what
bench/lua/jobs.lua does, on a database of the same server.

Usage (bench/run.py calls it, with the python of .build/bench-jobs-venv):
    jobs_peers.py drive SYSTEM DSN N HOSTS CONC   puts N trivial jobs (in batches of 1,000), then starts HOSTS
                                                  processes of `work` and waits until all of them have exited;
                                                  RESULT jobs_per_s (N over the time from their start to the
                                                  last one's exit, start-up included), RESULT puts_per_s
    jobs_peers.py work SYSTEM DSN CONC            one host: runs jobs until the queue is empty, then exits
    jobs_peers.py latency SYSTEM DSN N            one serving process; N jobs put one at a time, 5 ms apart, each
                                                  carrying its put time; the server appends its start time to a
                                                  file; RESULT latency_p50_ms, latency_p99_ms
    jobs_peers.py serve SYSTEM DSN FILE           the serving process of `latency`

SYSTEM is pgqueuer or procrastinate. Each uses its documented way to run and its settings for throughput:
pgqueuer's QueueManager in drain mode taking batches of CONC jobs (LISTEN/NOTIFY on), procrastinate's worker with
wait=False (it exits once the queue is empty) and `concurrency` CONC (LISTEN/NOTIFY on). The job does nothing.
The database is made empty (its schema installed anew) before each `drive` and `latency`.
"""
import asyncio
import os
import statistics
import subprocess
import sys
import time
from datetime import timedelta

SYSTEMS = ("pgqueuer", "procrastinate")


# ---- pgqueuer

async def pgq_connect(dsn):
    import asyncpg
    from pgqueuer.db import AsyncpgDriver
    conn = await asyncpg.connect(dsn)
    return conn, AsyncpgDriver(conn)


async def pgq_reset(dsn):
    from pgqueuer.queries import Queries
    conn, driver = await pgq_connect(dsn)
    q = Queries(driver)
    try:
        await q.uninstall()
    except Exception:
        pass
    await q.install()
    await conn.close()


async def pgq_put(dsn, payloads):
    from pgqueuer.queries import Queries
    conn, driver = await pgq_connect(dsn)
    q = Queries(driver)
    for i in range(0, len(payloads), 1000):
        chunk = payloads[i:i + 1000]
        await q.enqueue(["bench"] * len(chunk), chunk, [0] * len(chunk))
    await conn.close()


async def pgq_work(dsn, conc, record=None):
    from pgqueuer import PgQueuer
    from pgqueuer.types import QueueExecutionMode
    conn, driver = await pgq_connect(dsn)
    pgq = PgQueuer(driver)
    out = open(record, "a", buffering=1) if record else None

    @pgq.entrypoint("bench")
    async def bench(job):
        if out is not None:
            started = time.time()
            if job.payload == b"stop":
                pgq.shutdown.set()
                return
            out.write(f"{float(job.payload.decode())} {started}\n")

    mode = QueueExecutionMode.continuous if record else QueueExecutionMode.drain
    await pgq.run(batch_size=conc, mode=mode,
                  dequeue_timeout=timedelta(seconds=0.5 if record is None else 30))
    await conn.close()


# ---- procrastinate

def pcr_app(dsn, record=None, stop=None):
    import procrastinate
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))
    out = open(record, "a", buffering=1) if record else None

    @app.task(name="bench")
    async def bench(n):
        if out is not None:
            started = time.time()
            if n == "stop":
                stop.set()
                return
            out.write(f"{n} {started}\n")

    return app, bench


async def pcr_reset(dsn):
    import psycopg
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as c:
        await c.execute("DROP SCHEMA public CASCADE")
        await c.execute("CREATE SCHEMA public")
    app, _ = pcr_app(dsn)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()


async def pcr_put(dsn, values):
    app, task = pcr_app(dsn)
    async with app.open_async():
        for i in range(0, len(values), 1000):
            await task.batch_defer_async(*({"n": v} for v in values[i:i + 1000]))


async def pcr_work(dsn, conc, record=None):
    stop = asyncio.Event()
    app, _ = pcr_app(dsn, record, stop)
    async with app.open_async():
        worker = asyncio.create_task(app.run_worker_async(concurrency=conc, wait=record is not None,
                                                          install_signal_handlers=False))
        if record is None:
            await worker
            return
        await stop.wait()  # the "stop" job of `latency`
        worker.cancel()
        try:
            await worker
        except asyncio.CancelledError:
            pass


async def put_slowly(system, dsn, n):
    """N jobs, one at a time and 5 ms apart, each with its put time, on one open connection; then "stop"."""
    if system == "pgqueuer":
        from pgqueuer.queries import Queries
        conn, driver = await pgq_connect(dsn)
        q = Queries(driver)
        for _ in range(n):
            await q.enqueue("bench", repr(time.time()).encode())
            await asyncio.sleep(0.005)
        await q.enqueue("bench", b"stop")
        await conn.close()
    else:
        app, task = pcr_app(dsn)
        async with app.open_async():
            for _ in range(n):
                await task.defer_async(n=repr(time.time()))
                await asyncio.sleep(0.005)
            await task.defer_async(n="stop")


# ---- the commands

def reset(system, dsn):
    asyncio.run(pgq_reset(dsn) if system == "pgqueuer" else pcr_reset(dsn))


def put(system, dsn, values):
    if system == "pgqueuer":
        asyncio.run(pgq_put(dsn, [str(v).encode() for v in values]))
    else:
        asyncio.run(pcr_put(dsn, values))


def main():
    cmd, system, dsn = sys.argv[1], sys.argv[2], sys.argv[3]
    if system not in SYSTEMS:
        sys.exit(f"unknown system {system}: one of {', '.join(SYSTEMS)}")
    me = [sys.executable, os.path.abspath(__file__)]
    if cmd == "work":
        conc = int(sys.argv[4])
        asyncio.run(pgq_work(dsn, conc) if system == "pgqueuer" else pcr_work(dsn, conc))
    elif cmd == "serve":
        record = sys.argv[4]
        try:
            asyncio.run(pgq_work(dsn, 1, record) if system == "pgqueuer" else pcr_work(dsn, 1, record))
        except SystemExit:
            pass
    elif cmd == "drive":
        n, hosts, conc = int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
        reset(system, dsn)
        t0 = time.monotonic()
        put(system, dsn, list(range(n)))
        t1 = time.monotonic()
        procs = [subprocess.Popen(me + ["work", system, dsn, conc]) for _ in range(hosts)]
        codes = [p.wait() for p in procs]
        t2 = time.monotonic()
        if any(codes):
            sys.exit(f"a host exited with {codes}")
        print(f"{system}: put {n} jobs in {t1 - t0:.2f} s; {hosts} host(s) x {conc} did them in {t2 - t1:.2f} s")
        print(f"RESULT jobs_per_s {n / (t2 - t1):.1f}")
        print(f"RESULT puts_per_s {n / (t1 - t0):.1f}")
    elif cmd == "latency":
        n = int(sys.argv[4])
        reset(system, dsn)
        record = f"/tmp/atasker-bench-{system}-{os.getpid()}.lat"
        open(record, "w").close()
        server = subprocess.Popen(me + ["serve", system, dsn, record])
        time.sleep(2)  # it starts and listens
        asyncio.run(put_slowly(system, dsn, n))
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
        lines = open(record).read().split()
        os.unlink(record)
        pairs = [(float(lines[i]), float(lines[i + 1])) for i in range(0, len(lines) - 1, 2)]
        if len(pairs) < n:
            sys.exit(f"only {len(pairs)} of {n} jobs started")
        lat = sorted((s - p) * 1000 for p, s in pairs)
        p50 = lat[max(0, int(round(0.5 * n)) - 1)]
        p99 = lat[max(0, int(round(0.99 * n)) - 1)]
        print(f"{system}: put -> start, {n} jobs: p50 {p50:.2f} ms, p99 {p99:.2f} ms"
              f" (mean {statistics.mean(lat):.2f})")
        print(f"RESULT latency_p50_ms {p50:.3f}")
        print(f"RESULT latency_p99_ms {p99:.3f}")
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
