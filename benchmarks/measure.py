"""Run one command and report its wall time and peak RSS as one JSON line.

``python benchmarks/measure.py STDOUT_PATH STDERR_PATH -- COMMAND [ARGS...]``

Peak RSS comes from ``os.wait4`` of the one child this small process starts.
Linux carries the spawning process's own high-water mark into the child
(``fork``/``vfork`` then ``exec``), so the spawner must be small: a benchmark
process holding a sandbox with a 100 MB body would otherwise lift every
measurement. This wrapper imports nothing heavy, so that floor is ~10 MB.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time


def main(argv: list[str]) -> int:
    if len(argv) < 5 or argv[3] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    stdout_path, stderr_path, command = argv[1], argv[2], argv[4:]
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:  # noqa: PTH123
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
    report = {
        "wall_seconds": wall,
        "peak_rss_kib": usage.ru_maxrss,
        "user_seconds": usage.ru_utime,
        "system_seconds": usage.ru_stime,
        "returncode": process.returncode,
        "self_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
