"""One snapshot run in its own process, as the function or the CLI runs it; prints its time.

The time excludes the interpreter's start and the imports (as the ceilings' does). The peak RSS
is this process's own high-water mark (``VmHWM``): the ``ru_maxrss`` a parent reads with
``wait4`` keeps the parent's size from before ``exec``, and the benchmark's parent is large.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.contract.registry import default_registry
from shared.settings import get_settings
from shared.storage.gcs import get_storage_client
from shared.storage.hot.engine import get_engine
from shared.storage.warm.snapshot import Snapshotter


def main() -> None:
    settings = get_settings()
    bucket = get_storage_client(settings).bucket(settings.telemetry_bucket)
    snapshotter = Snapshotter(settings, get_engine(), bucket, default_registry())
    started = time.perf_counter()
    (run,) = snapshotter.run(["telemetry_events"])
    elapsed = time.perf_counter() - started
    status = Path("/proc/self/status").read_text()
    peak_kb = int(status.split("VmHWM:")[1].split()[0])
    print(
        json.dumps(
            {
                "seconds": elapsed,
                "rows": run.rows,
                "files": len(run.files),
                "peak_mb": peak_kb / 1024,
            }
        )
    )


if __name__ == "__main__":
    main()
