"""One consumer process of the drain benchmark (``bench.drain`` starts these): it connects, prints ``ready``,
waits for a line on stdin, drains the queue with no-op tasks, and prints its own CPU seconds spent after
the start signal as JSON.

    python -m bench.drain_worker taskclaim URL KEY CONCURRENCY   the reference Worker over HTTP
    python -m bench.drain_worker pgqueuer DSN BATCH_SIZE          one pgqueuer QueueManager, drain mode
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any


def _ready() -> float:
    print("ready", flush=True)
    sys.stdin.readline()
    return time.process_time()


def taskclaim(url: str, key: str, concurrency: int) -> float:
    from taskclaim.client import TaskClient
    from taskclaim.worker import Worker, WorkerConfig

    client = TaskClient(url + "/functions/v1/claim-next-task", key)
    worker = Worker(client, WorkerConfig(concurrency=concurrency, exit_when_empty=True, worker_id="drain"))

    @worker.handler("bench")
    def noop(task: Any) -> None:
        return None

    started = _ready()
    worker.run()
    client.close()
    assert worker.error is None, worker.error
    return time.process_time() - started


def pgqueuer(dsn: str, batch_size: int) -> float:
    import asyncpg
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.models import Job
    from pgqueuer.qm import QueueManager
    from pgqueuer.queries import Queries
    from pgqueuer.types import QueueExecutionMode

    async def main() -> float:
        connection = await asyncpg.connect(dsn)
        manager = QueueManager(Queries(AsyncpgDriver(connection)))

        @manager.entrypoint("bench")
        async def noop(job: Job) -> None:
            return None

        started = await asyncio.get_running_loop().run_in_executor(None, _ready)
        await manager.run(batch_size=batch_size, mode=QueueExecutionMode.drain)
        await connection.close()
        return time.process_time() - started

    return asyncio.run(main())


if __name__ == "__main__":
    kind, *rest = sys.argv[1:]
    cpu = (
        taskclaim(rest[0], rest[1], int(rest[2])) if kind == "taskclaim" else pgqueuer(rest[0], int(rest[1]))
    )
    print(json.dumps({"cpu_seconds": cpu}), flush=True)
