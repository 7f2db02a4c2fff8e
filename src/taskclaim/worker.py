"""The reference worker: claim, run, heartbeat, complete or fail; ``taskclaim worker`` on the command line.

A task runs either a Python callable registered for its ``task_type`` (``Worker.handler``) or, with
``--exec CMD``, a shell command that gets the params as JSON on stdin: its stdout becomes the result
(JSON when it parses, else the text), a non-zero exit fails the task with the end of its stderr.

On SIGTERM or SIGINT the worker stops claiming, lets running tasks finish for ``shutdown_grace``
seconds, then stops what still runs and releases those tasks back to the queue, and exits 0.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from taskclaim import limits
from taskclaim.client import Task, TaskClient
from taskclaim.exceptions import ClientError, NotHeld, TaskFailed

log = logging.getLogger("taskclaim.worker")

Handler = Callable[[Task], Any]
# An idle worker's long poll lasts at most this long by default, which also bounds how long SIGTERM
# waits for it (see _shutdown).
LONG_POLL_SECONDS = 5.0
_MAX_WAIT = re.compile(r"wait_seconds: Expected `float` <= ([0-9.]+)")


@dataclass
class WorkerConfig:
    poll_interval: float = 10.0  # between claims when the RPC served (it cannot wait); caps a long poll
    long_poll_seconds: float = LONG_POLL_SECONDS  # an idle claim waits at most this long on the service
    concurrency: int = 1
    lease_seconds: int = limits.DEFAULT_LEASE_SECONDS
    heartbeat_interval: float | None = None  # default: a third of the lease
    shutdown_grace: float = 10.0
    exit_when_empty: bool = False
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    # Claim only these task types. Default: every type with a command, else the types with a handler.
    task_types: list[str] | None = None
    progress: bool = True  # one line per task on stderr (the summary at exit is printed either way)


class _Running:
    """One task in flight: when its next heartbeat is due and, for --exec, its child process."""

    def __init__(self, task: Task, beat_every: float) -> None:
        self.task = task
        self.lost = threading.Event()  # the lease was taken back: do not complete
        self.next_beat = time.monotonic() + beat_every
        self.process: subprocess.Popen[bytes] | None = None
        self.cancelled = False
        self.started = time.monotonic()


# What a runner hands the reporter: the task, whether it succeeded, its result or error, its seconds.
_Outcome = tuple[_Running, bool, Any, float]


class Worker:
    def __init__(
        self, client: TaskClient, config: WorkerConfig | None = None, command: str | None = None
    ) -> None:
        self.client = client
        self.config = config or WorkerConfig()
        self.command = command
        self.handlers: dict[str, Handler] = {}
        self.stopping = threading.Event()
        # Why the worker stopped on its own, when it was not for an empty queue or a signal.
        self.error: str | None = None
        self.counts = {"complete": 0, "failed": 0, "released": 0, "lost": 0}
        self._lock = threading.Lock()
        self._running: dict[str, _Running] = {}

    def handler(self, task_type: str) -> Callable[[Handler], Handler]:
        """Register ``fn(task) -> result`` for ``task_type``."""

        def register(fn: Handler) -> Handler:
            self.handlers[task_type] = fn
            return fn

        return register

    # -- the loop ---------------------------------------------------------------------------------
    #
    # One claimer thread takes tasks for every free slot in one call (claim_many) and hands them to
    # ``concurrency`` runner threads; an idle worker so holds one long poll, not one per slot. What a
    # runner finished goes to ``_done``. A completion rides on the next claim when one is about to be sent
    # (``_carry``: the claimer only waits for a free slot, and finishing a task frees one), so a busy
    # worker makes one request per round instead of two. Everything else (failures, releases, and
    # completions while a claim is in flight or the claimer sleeps) goes to one reporter thread, which
    # sends every completion waiting at that moment in one complete-tasks call: none waits for a timer.
    # One heartbeat thread extends the leases of every running task that is due, in one call.

    def run(self) -> None:
        self._free = self.config.concurrency
        self._ready: queue.SimpleQueue[Task | None] = queue.SimpleQueue()
        self._done: list[_Outcome] = []
        self._carry = False  # the claimer will claim as soon as a slot is free: completions may ride on it
        self._changed = threading.Condition(self._lock)  # a slot freed, a task done, the claimer's state
        self._runners_left = self.config.concurrency
        self._finished = threading.Event()
        self._long_poll = self.config.long_poll_seconds
        runners = [
            threading.Thread(target=self._run_tasks, daemon=True) for _ in range(self.config.concurrency)
        ]
        threads = [
            threading.Thread(target=self._claim_tasks, daemon=True),
            *runners,
            threading.Thread(target=self._report, daemon=True),
        ]
        beats = threading.Thread(target=self._heartbeats, daemon=True)
        for thread in [*threads, beats]:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
                if self.stopping.is_set():
                    self._shutdown(threads)
        self._finished.set()
        beats.join(5)

    def stop(self) -> None:
        self.stopping.set()

    def task_types(self) -> list[str] | None:
        """What this worker claims: the configured types; else, with no command to run any type, only
        the types it has a handler for (a task it cannot run stays in the queue for another worker)."""
        if self.config.task_types is not None:
            return self.config.task_types
        if self.command is None and self.handlers:
            return sorted(self.handlers)
        return None

    def _claim_tasks(self) -> None:
        try:
            while not self.stopping.is_set():
                with self._changed:
                    self._carry = True
                    while self._free == 0 and not self.stopping.is_set():
                        self._changed.wait(0.2)
                    self._carry = False
                    free = self._free
                    carried = self._take("carriable")
                    self._changed.notify_all()  # the reporter: what did not ride is its own now
                if self.stopping.is_set():
                    self._give_back(carried)
                    return
                # Idle workers long-poll: the service answers as soon as a task is ready. When the RPC
                # fallback served (it cannot wait) or the claim failed, the worker sleeps the interval.
                idle_wait = min(self.config.poll_interval, self._long_poll)
                wait = 0.0 if self.config.exit_when_empty else idle_wait
                try:
                    tasks = self._claim(free, wait, carried)
                    waited = wait > 0 and self.client.last_path == "edge"
                except ClientError as exc:
                    self._give_back(carried)
                    if exc.status == 400 and (longest := _MAX_WAIT.search(exc.message)):
                        # The service waits less than asked (its TASKCLAIM_MAX_WAIT_SECONDS): its most, then.
                        self._long_poll = float(longest.group(1))
                        log.warning("the service waits at most %ss: long-polling that long", longest.group(1))
                        continue
                    if exc.status in (401, 403):  # a token refused now is refused on every retry
                        self.error = f"the service refused the token ({exc.status}: {exc.message})"
                        self.stopping.set()
                        return
                    if self.config.exit_when_empty:  # it was asked to drain; it could not even look
                        self.error = f"claim failed: {exc.message}"
                        return
                    log.warning("claim failed: %s", exc)  # the service and the database both out
                    tasks, waited = [], False
                except Exception:  # a bug must not stop the fleet either: say it, wait, try again
                    log.exception("claim failed unexpectedly")
                    self._give_back(carried)
                    tasks, waited = [], False
                if tasks:
                    with self._lock:
                        self._free -= len(tasks)
                    for task in tasks:  # a runner that finds the worker stopping gives it straight back
                        self._ready.put(task)
                    continue
                if self.config.exit_when_empty:
                    return
                if not waited:
                    jitter = random.uniform(0.8, 1.2)  # spreads idle workers' polls
                    self.stopping.wait(self.config.poll_interval * jitter)
        finally:
            with self._changed:
                self._carry = False
                self._changed.notify_all()
            for _ in range(self.config.concurrency):
                self._ready.put(None)  # the runners end once the tasks handed out before are done

    def _claim(self, free: int, wait: float, carried: list[_Outcome]) -> list[Task]:
        """Claim up to ``free`` tasks; the carried completions ride on the claim, made before it."""
        options: dict[str, Any] = {
            "worker_id": self.config.worker_id,
            "lease_seconds": self.config.lease_seconds,
            "wait_seconds": wait,
            "task_types": self.task_types(),
        }
        if not carried:
            return self.client.claim_many(free, **options)
        answers, tasks = self.client.complete_and_claim(
            [(running.task, outcome) for running, _, outcome, _ in carried], free, **options
        )
        self._completed([(running, seconds) for running, _, _, seconds in carried], answers)
        return tasks

    def _take(self, kind: Literal["carriable", "other", "any"]) -> list[_Outcome]:
        """Under the lock: finished tasks to send now, at most one request's worth. ``carriable`` are
        completions a claim may carry; ``other`` are failures, releases and tasks whose lease was lost."""
        taken: list[_Outcome] = []
        kept: list[_Outcome] = []
        for item in self._done:
            running, ok = item[0], item[1]
            carriable = ok and not running.cancelled and not running.lost.is_set()
            wanted = kind == "any" or (kind == "carriable") == carriable
            if len(taken) < limits.MAX_COMPLETE_TASKS and wanted:
                taken.append(item)
            else:
                kept.append(item)
        self._done = kept
        return taken

    def _give_back(self, carried: list[_Outcome]) -> None:
        """A claim that failed did not make its completions (or not surely): the reporter sends them.
        Completing again is safe: the same holder's second completion is answered as the first."""
        if carried:
            with self._changed:
                self._done[:0] = carried
                self._changed.notify_all()

    def _run_tasks(self) -> None:
        try:
            while (task := self._ready.get()) is not None:
                outcome: _Outcome | None = None
                try:
                    if self.stopping.is_set():
                        outcome = (_cancelled(task), False, None, 0.0)
                    else:
                        outcome = self._run_one(task)
                except Exception:  # the slot must survive a bug; the task's lease returns it to the queue
                    log.exception("task %s: the worker could not run it", task.task_id)
                finally:
                    with self._changed:  # the task is done and its slot free at once: see _carry
                        if outcome is not None:
                            self._done.append(outcome)
                        self._free += 1
                        self._changed.notify_all()
        finally:
            with self._changed:
                self._runners_left -= 1  # the reporter ends once the last is gone and all is sent
                self._changed.notify_all()

    def _run_one(self, task: Task) -> _Outcome:
        running = _Running(task, self._beat_every())
        with self._lock:
            self._running[task.task_id] = running
        try:
            ok, outcome = self._execute(running)
        finally:
            with self._lock:
                self._running.pop(task.task_id, None)
        return (running, ok, outcome, time.monotonic() - running.started)

    def _execute(self, running: _Running) -> tuple[bool, Any]:
        task = running.task
        handler = self.handlers.get(task.task_type)
        if handler is not None:
            try:
                return True, handler(task)
            except TaskFailed as exc:
                return False, str(exc)
            except Exception:
                return False, traceback.format_exc()[-2000:]
        if self.command is None:
            return False, f"no handler for task_type {task.task_type!r}"
        env = {**os.environ, "TASKCLAIM_TASK_ID": task.task_id, "TASKCLAIM_TASK_TYPE": task.task_type}
        running.process = subprocess.Popen(  # noqa: S602 - the operator's own command line
            self.command,
            shell=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        stdout, stderr = running.process.communicate(json.dumps(task.params).encode())
        if running.process.returncode != 0:
            tail = stderr.decode(errors="replace")[-2000:].strip()
            return False, f"exit {running.process.returncode}: {tail}"
        text = stdout.decode(errors="replace")
        try:
            return True, json.loads(text)
        except ValueError:
            return True, text

    def _report(self) -> None:
        """Send what the runners finished and no claim carries: the completions waiting now in one call,
        the rest one by one. Ends when the runners have ended and everything is sent."""
        while True:
            with self._changed:
                # While a claim is coming, the completions wait for it; the rest are sent now.
                while not (batch := self._take("other" if self._carry else "any")):
                    if self._runners_left == 0 and not self._done:
                        return
                    self._changed.wait()
            try:
                self._send(batch)
            except Exception:  # the reporter must survive a bug; the tasks' leases return them
                log.exception("could not report %d task(s)", len(batch))

    def _send(self, batch: list[_Outcome]) -> None:
        completions = []
        for running, ok, outcome, seconds in batch:
            task = running.task
            if running.lost.is_set():
                self._progress(task, "lost its lease; not completed", seconds, "lost")
            elif ok and not running.cancelled:
                completions.append((running, outcome, seconds))
            else:
                self._send_one(running, outcome, seconds)
        if not completions:
            return
        try:
            answers = self.client.complete_many([(r.task, outcome) for r, outcome, _ in completions])
        except ClientError as exc:
            log.error("could not report %d completion(s): %s", len(completions), exc)
            return
        self._completed([(running, seconds) for running, _, seconds in completions], answers)

    def _completed(
        self, completions: list[tuple[_Running, float]], answers: list[dict[str, Any] | ClientError]
    ) -> None:
        for (running, seconds), answer in zip(completions, answers, strict=True):
            if isinstance(answer, NotHeld):
                self._progress(running.task, f"not held any more ({answer})", seconds, "lost")
            elif isinstance(answer, ClientError):
                log.error("could not report task %s: %s", running.task.task_id, answer)
            else:
                self._progress(running.task, "Complete", seconds, "complete")

    def _send_one(self, running: _Running, outcome: Any, seconds: float) -> None:
        task = running.task
        try:
            if running.cancelled:
                self.client.release(task)
                self._progress(task, "released (shutting down)", seconds, "released")
            else:
                self.client.fail(task, str(outcome))
                self._progress(
                    task, f"Failed: {str(outcome).splitlines()[-1] if outcome else ''}", seconds, "failed"
                )
        except NotHeld as exc:
            self._progress(task, f"not held any more ({exc})", seconds, "lost")
        except ClientError as exc:
            log.error("could not report task %s: %s", task.task_id, exc)

    def _beat_every(self) -> float:
        return self.config.heartbeat_interval or self.config.lease_seconds / 3

    def _heartbeats(self) -> None:
        """One thread for every running task's lease: those whose interval has passed are extended together,
        in one heartbeat-tasks call."""
        tick = min(1.0, self._beat_every())
        while not self._finished.wait(tick):
            now = time.monotonic()
            with self._lock:
                due = [r for r in self._running.values() if r.next_beat <= now and not r.lost.is_set()]
            if not due:
                continue
            for running in due:
                running.next_beat = now + self._beat_every()
            try:
                answers = self.client.heartbeat_many([r.task for r in due], self.config.lease_seconds)
            except ClientError as exc:
                log.warning("heartbeat for %d task(s) failed: %s", len(due), exc)
                continue
            except Exception:  # keep beating: a dead heartbeat thread would lose every task at lease end
                log.exception("heartbeat for %d task(s) failed unexpectedly", len(due))
                continue
            for running, answer in zip(due, answers, strict=True):
                if isinstance(answer, NotHeld):
                    running.lost.set()
                    self._kill(running)
                elif isinstance(answer, ClientError):
                    log.warning("heartbeat for %s failed: %s", running.task.task_id, answer)

    def _kill(self, running: _Running) -> None:
        process = running.process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)

    def _shutdown(self, threads: list[threading.Thread]) -> None:
        """Running tasks get ``shutdown_grace`` seconds, then are stopped and released. A long poll in
        flight is waited for (at most ``long_poll_seconds``): a runtime that does not notice its client
        leaving would otherwise claim a task for a worker that has exited."""
        deadline = time.monotonic() + self.config.shutdown_grace
        while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
            time.sleep(0.1)
        with self._lock:
            still = list(self._running.values())
        for running in still:  # out of time: stop it and give the task back
            running.cancelled = True
            self._kill(running)
        for thread in threads:
            thread.join(30 + self._long_poll)

    def _progress(self, task: Task, what: str, seconds: float, counter: str) -> None:
        with self._lock:
            self.counts[counter] += 1
        if not self.config.progress:
            return
        print(
            f"task {task.task_id} {task.task_type} attempt {task.attempt}: {what} in {seconds:.2f}s"
            f" (via {self.client.last_path})",
            file=sys.stderr,
            flush=True,
        )


def _cancelled(task: Task) -> _Running:
    running = _Running(task, 0.0)
    running.cancelled = True
    return running
