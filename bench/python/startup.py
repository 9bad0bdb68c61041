"""Start-up and shutdown of atasker 0.7.9: import, start and stop the supervisor.

The same code runs as `python -c` in bench/run.py; this file documents it.
stop() raises AttributeError on Python 3.9+ (asyncio.Task.all_tasks is gone), after
the supervisor's loops have been told to end, so the script ends with os._exit.
"""
import os

import atasker

atasker.task_supervisor.start()
try:
    atasker.task_supervisor.stop(wait=True)
except AttributeError:
    pass
os._exit(0)
