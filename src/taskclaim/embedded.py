"""A private PostgreSQL from the ``pgserver`` wheel, for machines with no database configured.

The cluster lives in ``<data_dir>/pgdata`` and listens only on a Unix socket. Every taskclaim process that
uses it registers its pid in ``<data_dir>/users.json`` under a file lock; the server is started by the first
and stopped (fast mode, clean) when the last one leaves, so ``taskclaim token create`` beside a running
``taskclaim serve`` shares its database instead of stopping it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from taskclaim.exceptions import ConfigError, EmbeddedDatabaseError

# Under root, PostgreSQL refuses to run; it runs as this system user instead (the pgserver wheel's choice).
SERVER_USER = "pgserver"
PORT = 5432  # only names the socket file: the server listens on no TCP port


def bin_dir() -> Path:
    """The wheel's binaries, found without importing pgserver (its import has side effects)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the embedded PostgreSQL needs the pgserver package (pip install pgserver)")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _server_user() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/bin/false", SERVER_USER],
            check=True,
            capture_output=True,
        )
    return SERVER_USER


def allow_traverse(path: Path) -> None:
    """Let the server user reach ``path``: add o+x to each parent directory (root only)."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, settings: Mapping[str, str] | None = None) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self.pgdata = self.data_dir / "pgdata"
        self.log_file = self.pgdata / "postgresql.log"
        self.settings = dict(settings or {})
        self.user = _server_user()
        self._registered = False

    # -- where it listens ------------------------------------------------------------------------

    @property
    def socket_dir(self) -> Path:
        candidate = self.data_dir / "run"
        if len(str(candidate)) + len(f"/.s.PGSQL.{PORT}.lock") < 100:
            return candidate
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"taskclaim-{digest}"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={quote(str(self.socket_dir), safe='/')}"

    # -- the shared life cycle ---------------------------------------------------------------------

    def start(self) -> str:
        """Initialise if needed, start if not running, register this process; return the URL."""
        with self._locked():
            self._ensure_initialised()
            if not self.is_running():
                self._start_server()
            self._update_users(add=os.getpid())
            self._registered = True
        return self.url()

    def release(self) -> None:
        """Unregister this process; the last process to leave stops the server, unless ``pin`` kept it."""
        if not self._registered:
            return
        with self._locked():
            users = self._update_users(remove=os.getpid())
            self._registered = False
            if not users and not self.pinned and self.is_running():
                self.stop_server()

    # -- `taskclaim db start|stop`: a server that outlives the commands ---------------------------------

    @property
    def pinned(self) -> bool:
        return (self.data_dir / "pinned").exists()

    def pin(self) -> str:
        """Start (if need be) and keep running after this process exits, until ``unpin``."""
        with self._locked():
            self._ensure_initialised()
            if not self.is_running():
                self._start_server()
            (self.data_dir / "pinned").touch()
        return self.url()

    def unpin(self) -> bool:
        """Let the server stop: now, when no process uses it; else when the last one leaves. True if it
        stopped now."""
        with self._locked():
            (self.data_dir / "pinned").unlink(missing_ok=True)
            if not self._update_users() and self.is_running():
                self.stop_server()
                return True
        return False

    # -- direct control (tests and chaos use these too) ------------------------------------------

    def is_running(self) -> bool:
        if not (self.pgdata / "PG_VERSION").exists():
            return False
        result = self._run("pg_ctl", "status", "-D", str(self.pgdata), check=False)
        return result.returncode == 0

    def stop_server(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "stop", "-D", str(self.pgdata), "-m", mode, "-w", "-t", "60")

    def start_server(self) -> None:
        self._start_server()

    # -- internals ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir / ".lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _update_users(self, add: int | None = None, remove: int | None = None) -> list[int]:
        path = self.data_dir / "users.json"
        try:
            users = [int(p) for p in json.loads(path.read_text())]
        except (FileNotFoundError, ValueError, TypeError):
            users = []
        users = [p for p in users if _pid_alive(p) and p != remove]
        if add is not None and add not in users:
            users.append(add)
        path.write_text(json.dumps(users))
        return users

    def _ensure_initialised(self) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            return
        if self.pgdata.exists():
            shutil.rmtree(self.pgdata)  # a half-made cluster from an interrupted initdb
        self.pgdata.mkdir(mode=0o700, parents=True)
        self._own(self.pgdata)
        self._run(
            "initdb",
            "-D",
            str(self.pgdata),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        )

    def _start_server(self) -> None:
        sockets = self.socket_dir
        sockets.mkdir(parents=True, exist_ok=True)
        self._own(sockets)
        options = ["-c", "listen_addresses=", "-k", str(sockets), "-p", str(PORT)]
        for name, value in self.settings.items():
            options += ["-c", f"{name}={value}"]
        self._run(
            "pg_ctl",
            "start",
            "-D",
            str(self.pgdata),
            "-w",
            "-t",
            "60",
            "-l",
            str(self.log_file),
            "-o",
            " ".join(shlex.quote(o) for o in options),
        )

    def _own(self, path: Path) -> None:
        if self.user is None:
            return
        entry = pwd.getpwnam(self.user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
        allow_traverse(path)

    def _run(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(bin_dir() / program), *args]
        # As the server user with its own group only: under root's group, root-owned 0701 parents
        # would deny the traversal that "others" are allowed.
        identity: dict[str, Any] = {}
        if self.user is not None:
            identity = {
                "user": self.user,
                "group": pwd.getpwnam(self.user).pw_gid,
                "extra_groups": [],
            }
        # A new session: the server must outlive a Ctrl-C sent to this process's group.
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            start_new_session=True,
            cwd="/",
            check=False,
            stdin=subprocess.DEVNULL,
            **identity,
        )
        if check and result.returncode != 0:
            log_tail = ""
            if self.log_file.exists():
                log_tail = self.log_file.read_text(errors="replace")[-2000:]
            raise EmbeddedDatabaseError(
                f"{program} failed ({result.returncode}): {result.stderr.strip()}\n{log_tail}".strip()
            )
        return result
