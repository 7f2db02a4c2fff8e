"""The ``taskclaim`` command. Every failure is one readable line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import psycopg

from taskclaim import __version__, limits, migrations
from taskclaim.client import TaskClient
from taskclaim.config import Settings, ensure_service_key, session_url
from taskclaim.database import database_url
from taskclaim.embedded import EmbeddedPostgres, bin_dir
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
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc}): {text[:60]!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object, not {type(value).__name__}: {text[:60]!r}")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port (1 to 65535): {text!r}")
    return int(text)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return int(text)


def _duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _list_limit(text: str) -> int:
    value = _positive(text)
    if value > limits.MAX_LIST_TASKS:
        raise argparse.ArgumentTypeError(f"at most {limits.MAX_LIST_TASKS}, not {value}")
    return value


def _with_queue(settings: Settings, action: Callable[[Queue], Awaitable[T]]) -> T:
    """Run ``action`` against the configured (or embedded) database. An admin command never changes
    the schema: with migrations pending it refuses, naming ``taskclaim migrate``."""
    with database_url(settings) as url:
        if not settings.database_url:
            print(f"taskclaim: using the embedded PostgreSQL in {settings.data_dir}", file=sys.stderr)
        pending = migrations.pending(url)
        if pending:
            raise TaskclaimError(
                f"the database has {len(pending)} migration(s) pending ({pending[0].version} first):"
                " run `taskclaim migrate`"
            )

        async def run() -> T:
            pool = Queue.create_pool(url, min_size=1, max_size=2, timeout=10, pooler=settings.pooler)
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

    serve(settings, args.host, args.port, migrate=not args.no_migrate, workers=args.workers)
    return 0


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    with database_url(settings) as url:
        applied = migrations.migrate(session_url(settings, url))
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


def cmd_project_list(args: argparse.Namespace, settings: Settings) -> int:
    rows = _with_queue(settings, lambda q: q.list_projects(args.user))
    print(_table(rows, ["id", "user_id", "name", "created_at", "tasks"]))
    return 0


def cmd_task_show(args: argparse.Namespace, settings: Settings) -> int:
    text = _with_queue(settings, lambda q: q.get_task(args.id, user_id=args.user))
    print(json.dumps(json.loads(text), indent=2, sort_keys=True))
    return 0


def cmd_task_list(args: argparse.Namespace, settings: Settings) -> int:
    rows = _with_queue(
        settings,
        lambda q: q.list_tasks(
            user_id=args.user,
            status=args.status,
            task_type=args.type,
            project_id=args.project,
            worker_id=args.worker,
            oldest_first=args.oldest,
            cursor=args.cursor,
            limit=args.limit,
        ),
    )
    tasks = [json.loads(row["task"]) for row in rows]
    next_cursor = rows[-1]["cursor"] if len(rows) == args.limit else None
    if args.json:
        print(json.dumps({"tasks": tasks, "next_cursor": next_cursor}, indent=2))
        return 0
    for t in tasks:
        t["attempts"] = f"{t['attempts']}/{t['max_attempts']}"
        t["error"] = (t["error"] or "").splitlines()[0][:60] if t["error"] else None
    print(_table(tasks, ["task_id", "status", "task_type", "attempts", "worker_id", "created_at", "error"]))
    if next_cursor:
        print(f"more: --cursor {next_cursor}", file=sys.stderr)
    return 0


def cmd_task_cancel(args: argparse.Namespace, settings: Settings) -> int:
    text = _with_queue(settings, lambda q: q.cancel_task(args.id, reason=args.reason, user_id=args.user))
    print(f"{args.id} {json.loads(text)['status']}")
    return 0


def cmd_task_retry(args: argparse.Namespace, settings: Settings) -> int:
    shown = json.loads(_with_queue(settings, lambda q: q.retry_task(args.id, user_id=args.user)))
    print(f"{args.id} {shown['status']} ({shown['dependants_requeued']} dependant(s) queued again)")
    return 0


def _embedded(settings: Settings) -> EmbeddedPostgres:
    if settings.database_url:
        raise ConfigError(
            "DATABASE_URL (or SUPABASE_DB_URL) is set: taskclaim db manages the embedded one only"
        )
    return EmbeddedPostgres(settings.data_dir)


def cmd_db_start(args: argparse.Namespace, settings: Settings) -> int:
    url = _embedded(settings).pin()
    migrations.migrate(url)
    print(url)
    print(
        f"taskclaim: the embedded PostgreSQL in {settings.data_dir} runs until `taskclaim db stop`",
        file=sys.stderr,
    )
    return 0


def cmd_db_stop(args: argparse.Namespace, settings: Settings) -> int:
    server = _embedded(settings)
    stopped = server.unpin()
    print(
        "stopped"
        if stopped
        else "not running"
        if not server.is_running()
        else "stops when its last user exits"
    )
    return 0


def cmd_db_url(args: argparse.Namespace, settings: Settings) -> int:
    server = _embedded(settings)
    if not server.is_running():
        raise TaskclaimError("the embedded PostgreSQL is not running: `taskclaim db start` first")
    print(server.url())
    return 0


def cmd_db_psql(args: argparse.Namespace, settings: Settings) -> int:
    with database_url(settings) as url:
        return subprocess.call([str(bin_dir() / "psql"), url, *args.psql_args])


def cmd_service_key(args: argparse.Namespace, settings: Settings) -> int:
    settings, key_file = ensure_service_key(settings)
    print(settings.service_role_key or settings.secret_keys[0])
    if key_file is not None:
        print(f"taskclaim: the service key kept in {key_file}", file=sys.stderr)
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
        "--long-poll",
        type=float,
        default=defaults.long_poll_seconds,
        metavar="SECONDS",
        help="the longest an idle claim waits on the service for a task, within --poll-interval (default:"
        " %(default)s; lowered to the service's maximum when it has a lower one)",
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
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no line per task on stderr (default: one each); the summary at exit is printed either way",
    )
    p.set_defaults(func=run_worker_command)


def run_worker_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.command is None:
        raise ConfigError(
            "taskclaim worker needs --exec CMD (or register handlers in Python: taskclaim.worker)"
        )
    if args.long_poll < 0:
        raise ConfigError("--long-poll must be at least 0")
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
        long_poll_seconds=args.long_poll,
        concurrency=args.concurrency,
        lease_seconds=args.lease_seconds,
        heartbeat_interval=args.heartbeat_interval,
        shutdown_grace=args.shutdown_grace,
        exit_when_empty=args.exit_when_empty,
        task_types=args.task_types,
        progress=not args.quiet,
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
    p.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: %(default)s)")
    p.add_argument("--port", type=_port, default=54321, help="the TCP port (default: %(default)s)")
    p.add_argument("--no-migrate", action="store_true", help="do not apply migrations at start")
    p.add_argument(
        "--workers",
        type=_positive,
        default=1,
        help="server processes sharing the port, each with its own connections (default: %(default)s)",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("migrate", help="apply the database migrations")
    p.set_defaults(func=cmd_migrate)

    token = sub.add_parser("token", help="personal access tokens").add_subparsers(
        dest="token_command", required=True, metavar="ACTION"
    )
    p = token.add_parser("create", help="make a token; it is printed once, alone, on stdout")
    p.add_argument("--user", type=_uuid, required=True, help="the user's UUID")
    p.add_argument("--label", help="a name to tell it by (default: none)")
    p.add_argument("--expires-in", type=_duration, help="e.g. 30d, 12h, 90m (default: never)")
    p.set_defaults(func=cmd_token_create)
    p = token.add_parser("list", help="a user's tokens")
    p.add_argument("--user", type=_uuid, required=True, help="the user's UUID")
    p.set_defaults(func=cmd_token_list)
    p = token.add_parser("revoke", help="revoke a token by its id")
    p.add_argument("id", type=_uuid, help="the token's id (from token list)")
    p.set_defaults(func=cmd_token_revoke)

    project = sub.add_parser("project", help="projects").add_subparsers(
        dest="project_command", required=True, metavar="ACTION"
    )
    p = project.add_parser("create", help="make a project for a user; prints its id")
    p.add_argument("--user", type=_uuid, required=True, help="the owner's UUID")
    p.add_argument("--id", type=_uuid, help="the project's id (default: a new one)")
    p.add_argument("--name", help="(default: none)")
    p.set_defaults(func=cmd_project_create)
    p = project.add_parser("list", help="projects with their task counts")
    p.add_argument("--user", type=_uuid, help="only this user's (default: every user's)")
    p.set_defaults(func=cmd_project_list)

    task = sub.add_parser("task", help="single tasks: show, list, cancel, retry").add_subparsers(
        dest="task_command", required=True, metavar="ACTION"
    )
    scope = "act only on this user's tasks, as their token would (default: every user's)"
    p = task.add_parser("show", help="every field of one task, as JSON")
    p.add_argument("id", type=_uuid, help="the task's id")
    p.add_argument("--user", type=_uuid, help=scope)
    p.set_defaults(func=cmd_task_show)
    p = task.add_parser("list", help="tasks, newest first, a page at a time")
    p.add_argument(
        "--status",
        choices=["Queued", "In Progress", "Complete", "Failed", "Cancelled"],
        help="only tasks in this state (default: any)",
    )
    p.add_argument("--type", help="only this task_type (default: any)")
    p.add_argument("--project", type=_uuid, help="only this project's (default: any)")
    p.add_argument("--worker", help="only tasks held or last held by this worker_id (default: any)")
    p.add_argument("--user", type=_uuid, help=scope)
    p.add_argument("--oldest", action="store_true", help="oldest first (default: newest first)")
    p.add_argument(
        "--limit",
        type=_list_limit,
        default=limits.DEFAULT_LIST_TASKS,
        help=f"tasks per page, at most {limits.MAX_LIST_TASKS} (default: %(default)s)",
    )
    p.add_argument("--cursor", help="the page after this cursor (printed after a full page)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_task_list)
    p = task.add_parser("cancel", help="cancel a Queued or In Progress task (and its dependants)")
    p.add_argument("id", type=_uuid, help="the task's id")
    p.add_argument("--reason", help="stored as its error (default: cancelled by an operator)")
    p.add_argument("--user", type=_uuid, help=scope)
    p.set_defaults(func=cmd_task_cancel)
    p = task.add_parser(
        "retry", help="queue a Failed or Cancelled task again, with the dependants it cancelled"
    )
    p.add_argument("id", type=_uuid, help="the task's id")
    p.add_argument("--user", type=_uuid, help=scope)
    p.set_defaults(func=cmd_task_retry)

    db = sub.add_parser("db", help="the embedded PostgreSQL").add_subparsers(
        dest="db_command", required=True, metavar="ACTION"
    )
    p = db.add_parser(
        "start", help="start it (migrated) and keep it running after this command; prints its URL"
    )
    p.set_defaults(func=cmd_db_start)
    p = db.add_parser("stop", help="stop it (or let it stop when the last service using it exits)")
    p.set_defaults(func=cmd_db_stop)
    p = db.add_parser("url", help="its DATABASE_URL, for psql, the client's fallback and the Edge Functions")
    p.set_defaults(func=cmd_db_url)
    p = db.add_parser("psql", help="psql on the database taskclaim uses (the embedded one, or DATABASE_URL)")
    p.set_defaults(func=cmd_db_psql, psql_args=[])  # whatever follows `db psql` goes to psql (see main)

    p = sub.add_parser(
        "service-key",
        help="print the service key taskclaim serve uses: SUPABASE_SERVICE_ROLE_KEY, else the one kept in"
        " the data directory (made on first use)",
    )
    p.set_defaults(func=cmd_service_key)

    user = sub.add_parser("user", help="users").add_subparsers(
        dest="user_command", required=True, metavar="ACTION"
    )
    p = user.add_parser(
        "delete",
        help="remove a user's projects, tasks and tokens (on Supabase, deleting the auth.users row does it)",
    )
    p.add_argument("user", type=_uuid, metavar="UUID", help="the user's UUID")
    p.set_defaults(func=cmd_user_delete)

    p = sub.add_parser("enqueue", help="create a task; prints its id")
    p.add_argument("--project", type=_uuid, required=True, help="the project's id")
    p.add_argument("--type", required=True, help="the task_type")
    p.add_argument("--params", type=_json_object, default={}, help="a JSON object (default: {})")
    p.add_argument("--dependant-on", type=_uuid, help="a task that must complete first (default: none)")
    p.add_argument("--idempotency-key", help="enqueueing again with this key creates nothing (default: none)")
    p.add_argument(
        "--max-attempts",
        type=_positive,
        default=limits.DEFAULT_MAX_ATTEMPTS,
        help="attempts before the task fails (default: %(default)s)",
    )
    p.set_defaults(func=cmd_enqueue)

    p = sub.add_parser("status", help="task counts by state and task_type")
    p.add_argument("--user", type=_uuid, help="only this user's tasks (default: every user's)")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("reap", help="recover tasks whose lease expired (for cron)")
    p.add_argument(
        "--limit", type=_positive, default=10_000, help="recover at most this many (default: %(default)s)"
    )
    p.set_defaults(func=cmd_reap)

    add_worker_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    psql_args = words[2:] if words[:2] == ["db", "psql"] else []
    args = build_parser().parse_args(words[: len(words) - len(psql_args)])
    if psql_args:
        args.psql_args = psql_args
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
