"""The ``taskclaim`` command. Every failure is one readable line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg

from taskclaim import __version__, migrations
from taskclaim.client import TaskClient
from taskclaim.config import Settings
from taskclaim.database import database_url
from taskclaim.exceptions import ConfigError, TaskclaimError
from taskclaim.queue import Queue
from taskclaim.tokens import new_token, parse_duration, token_hash
from taskclaim.worker import Worker, WorkerConfig

T = TypeVar("T")


def _uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a UUID: {text!r}") from None


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        raise argparse.ArgumentTypeError("--params must be a JSON object") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("--params must be a JSON object")
    return value


def _with_queue(settings: Settings, action: Callable[[Queue], Awaitable[T]]) -> T:
    """Run ``action`` against the configured (or embedded) database, migrated first."""
    with database_url(settings) as url:
        migrations.migrate(url)

        async def run() -> T:
            pool = Queue.create_pool(url, min_size=1, max_size=2, timeout=10)
            await pool.open(wait=True, timeout=10)
            try:
                return await action(Queue(pool))
            finally:
                await pool.close()

        return asyncio.run(run())


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    cells = [[str(c) for c in columns]] + [["" if r[c] is None else str(r[c]) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


# -- commands -------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from taskclaim.server import serve  # the server's dependencies load only for this command

    serve(settings, args.host, args.port, migrate=not args.no_migrate)
    return 0


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    with database_url(settings) as url:
        applied = migrations.migrate(url)
    for migration in applied:
        print(f"applied {migration.version}_{migration.name}")
    if not applied:
        print("nothing to apply")
    return 0


def cmd_token_create(args: argparse.Namespace, settings: Settings) -> int:
    token = new_token()
    expires = datetime.now(UTC) + args.expires_in if args.expires_in else None
    _with_queue(settings, lambda q: q.create_token(args.user, token_hash(token), args.label, expires))
    print(token)  # the only time the token is shown
    return 0


def cmd_token_list(args: argparse.Namespace, settings: Settings) -> int:
    rows = _with_queue(settings, lambda q: q.list_tokens(args.user))
    print(_table(rows, ["id", "label", "created_at", "expires_at", "last_used_at", "revoked_at"]))
    return 0


def cmd_token_revoke(args: argparse.Namespace, settings: Settings) -> int:
    row = _with_queue(settings, lambda q: q.revoke_token(args.id))
    if row is None:
        raise TaskclaimError(f"no token with id {args.id}")
    print(f"revoked {row['id']} at {row['revoked_at']}")
    return 0


def cmd_project_create(args: argparse.Namespace, settings: Settings) -> int:
    row = _with_queue(settings, lambda q: q.create_project(args.user, project_id=args.id, name=args.name))
    if row is None:
        raise TaskclaimError(f"a project with id {args.id} exists already")
    print(row["id"])
    return 0


def cmd_user_delete(args: argparse.Namespace, settings: Settings) -> int:
    row = _with_queue(settings, lambda q: q.delete_user(args.user))
    print(
        f"deleted user {args.user}: {row['projects']} project(s), {row['tasks']} task(s),"
        f" {row['tokens']} token(s)"
    )
    return 0


def cmd_enqueue(args: argparse.Namespace, settings: Settings) -> int:
    row = _with_queue(
        settings,
        lambda q: q.create_task(
            args.project,
            args.type,
            args.params,
            dependant_on=args.dependant_on,
            idempotency_key=args.idempotency_key,
            max_attempts=args.max_attempts,
        ),
    )
    print(row["task_id"])
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    rows = _with_queue(settings, lambda q: q.task_counts(args.user))
    columns = ["task_type", "queued", "blocked", "in_progress", "complete", "failed", "cancelled"]
    total = {c: sum(r[c] for r in rows) for c in columns[1:]}
    print(_table([*rows, {"task_type": "(all)", **total}], columns))
    return 0


def cmd_reap(args: argparse.Namespace, settings: Settings) -> int:
    rows = _with_queue(settings, lambda q: q.reap(limit=args.limit))
    for row in rows:
        print(f"{row['task_id']} {row['status']} after attempt {row['attempts']}")
    print(f"recovered {len(rows)} task(s)", file=sys.stderr)
    return 0


# -- taskclaim worker ---------------------------------------------------------------------------


def add_worker_parser(sub: Any) -> None:
    defaults = WorkerConfig()
    p = sub.add_parser("worker", help="run the reference worker")
    p.add_argument("--url", help="the claim URL (default: SUPABASE_EDGE_CLAIM_TASK_URL, else SUPABASE_URL's)")
    p.add_argument("--token", help="a service key or user token (default: SUPABASE_ACCESS_TOKEN)")
    p.add_argument(
        "--user",
        help="the user whose tasks the direct-RPC fallback may claim (default: the token's own user)",
    )
    p.add_argument("--exec", dest="command", help="run each task with this shell command")
    p.add_argument(
        "--poll-interval",
        type=float,
        default=defaults.poll_interval,
        help="seconds between claims when the direct RPC served (it cannot long-poll); default %(default)s",
    )
    p.add_argument(
        "--concurrency",
        type=int,
        default=defaults.concurrency,
        help="tasks run at once (default: %(default)s)",
    )
    p.add_argument(
        "--lease-seconds",
        type=int,
        default=defaults.lease_seconds,
        help="each claim's lease (default: %(default)s)",
    )
    p.add_argument(
        "--heartbeat-interval", type=float, help="seconds between heartbeats (default: a third of the lease)"
    )
    p.add_argument(
        "--shutdown-grace",
        type=float,
        default=defaults.shutdown_grace,
        help="seconds running tasks may finish after SIGTERM before they are released (default: %(default)s)",
    )
    p.add_argument(
        "--exit-when-empty",
        action="store_true",
        help="exit 0 once nothing is claimable (1 if a claim failed)",
    )
    p.add_argument("--worker-id", help="default: HOSTNAME-PID")
    p.add_argument(
        "--task-type",
        dest="task_types",
        action="append",
        metavar="TYPE",
        help="claim only tasks of this task_type (repeat for several; default: every type)",
    )
    p.set_defaults(func=run_worker_command)


def run_worker_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.command is None:
        raise ConfigError(
            "taskclaim worker needs --exec CMD (or register handlers in Python: taskclaim.worker)"
        )
    if args.concurrency < 1 or args.lease_seconds < 1 or args.poll_interval < 0:
        raise ConfigError("--concurrency and --lease-seconds must be at least 1, --poll-interval at least 0")
    if args.user is not None:
        try:
            uuid.UUID(args.user)
        except ValueError:
            raise ConfigError(f"--user must be a user's UUID, not {args.user!r}") from None
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    client = TaskClient(args.url, args.token, user_id=args.user)
    if not client.claim_url and not client.database_url:
        raise ConfigError(
            "no claim URL (--url, SUPABASE_EDGE_CLAIM_TASK_URL, SUPABASE_URL) and no DATABASE_URL"
        )
    config = WorkerConfig(
        poll_interval=args.poll_interval,
        concurrency=args.concurrency,
        lease_seconds=args.lease_seconds,
        heartbeat_interval=args.heartbeat_interval,
        shutdown_grace=args.shutdown_grace,
        exit_when_empty=args.exit_when_empty,
        task_types=args.task_types,
    )
    if args.worker_id:
        config.worker_id = args.worker_id
    worker = Worker(client, config, command=args.command)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: worker.stop())
    try:
        worker.run()
    finally:
        client.close()
    print(
        f"worker {config.worker_id} stopped: " + ", ".join(f"{k} {v}" for k, v in worker.counts.items()),
        file=sys.stderr,
    )
    if worker.error is not None:
        print(f"taskclaim: error: {worker.error}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskclaim",
        description="A PostgreSQL task queue that workers claim from over HTTP. With neither "
        "DATABASE_URL nor SUPABASE_DB_URL set, an embedded PostgreSQL is used.",
    )
    parser.add_argument("--version", action="version", version=f"taskclaim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="run the HTTP claim service")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=54321)
    p.add_argument("--no-migrate", action="store_true", help="do not apply migrations at start")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("migrate", help="apply the database migrations")
    p.set_defaults(func=cmd_migrate)

    token = sub.add_parser("token", help="personal access tokens").add_subparsers(
        dest="token_command", required=True, metavar="ACTION"
    )
    p = token.add_parser("create", help="make a token; it is printed once, alone, on stdout")
    p.add_argument("--user", type=_uuid, required=True)
    p.add_argument("--label")
    p.add_argument("--expires-in", type=parse_duration, help="e.g. 30d, 12h (default: never)")
    p.set_defaults(func=cmd_token_create)
    p = token.add_parser("list", help="a user's tokens")
    p.add_argument("--user", type=_uuid, required=True)
    p.set_defaults(func=cmd_token_list)
    p = token.add_parser("revoke", help="revoke a token by its id")
    p.add_argument("id", type=_uuid)
    p.set_defaults(func=cmd_token_revoke)

    project = sub.add_parser("project", help="projects").add_subparsers(
        dest="project_command", required=True, metavar="ACTION"
    )
    p = project.add_parser("create", help="make a project for a user; prints its id")
    p.add_argument("--user", type=_uuid, required=True)
    p.add_argument("--id", type=_uuid, help="the project's id (default: a new one)")
    p.add_argument("--name")
    p.set_defaults(func=cmd_project_create)

    user = sub.add_parser("user", help="users").add_subparsers(
        dest="user_command", required=True, metavar="ACTION"
    )
    p = user.add_parser(
        "delete",
        help="remove a user's projects, tasks and tokens (on Supabase, deleting the auth.users row does it)",
    )
    p.add_argument("user", type=_uuid, metavar="UUID")
    p.set_defaults(func=cmd_user_delete)

    p = sub.add_parser("enqueue", help="create a task; prints its id")
    p.add_argument("--project", type=_uuid, required=True)
    p.add_argument("--type", required=True, help="the task_type")
    p.add_argument("--params", type=_json_object, default={}, help="a JSON object")
    p.add_argument("--dependant-on", type=_uuid)
    p.add_argument("--idempotency-key")
    p.add_argument("--max-attempts", type=int, default=3)
    p.set_defaults(func=cmd_enqueue)

    p = sub.add_parser("status", help="task counts by state and task_type")
    p.add_argument("--user", type=_uuid, help="only this user's tasks")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("reap", help="recover tasks whose lease expired (for cron)")
    p.add_argument("--limit", type=int, default=10_000)
    p.set_defaults(func=cmd_reap)

    add_worker_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        result: int = args.func(args, settings)
        return result
    except (TaskclaimError, psycopg.Error, OSError) as exc:
        message = getattr(exc, "message", None) or str(exc).strip().splitlines()[0]
        print(f"taskclaim: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
