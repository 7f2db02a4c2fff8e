"""A real PgBouncer in transaction mode (Debian's ``pgbouncer``) in front of the tests' PostgreSQL, on a free
port, as Supavisor's port 6543 stands in front of a Supabase project's database."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

from taskclaim.embedded import allow_traverse
from tests.processes import free_port

# Under root PgBouncer refuses to run; it then runs as the embedded PostgreSQL's system user.
UNPRIVILEGED_USER = "pgserver"


def pgbouncer_path() -> str | None:
    return os.environ.get("TASKCLAIM_PGBOUNCER") or shutil.which("pgbouncer") or _sbin()


def _sbin() -> str | None:
    return "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None


class PgBouncer:
    def __init__(self, directory: Path, target_url: str) -> None:
        self.directory = directory
        self.target = conninfo_to_dict(target_url)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, dbname: str | None = None) -> str:
        name = dbname or self.target.get("dbname", "postgres")
        return f"postgresql://{self.target.get('user', 'postgres')}@127.0.0.1:{self.port}/{name}"

    def start(self) -> PgBouncer:
        self.directory.mkdir(parents=True, exist_ok=True)
        host, port = self.target.get("host", "127.0.0.1"), self.target.get("port", "5432")
        user = self.target.get("user", "postgres")
        ini = self.directory / "pgbouncer.ini"
        ini.write_text(
            "[databases]\n"
            f"* = host={host} port={port} user={user}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = any\n"
            "pool_mode = transaction\n"
            "max_client_conn = 1000\n"
            "default_pool_size = 20\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
            f"logfile = {self.directory / 'pgbouncer.log'}\n"
            f"pidfile = {self.directory / 'pgbouncer.pid'}\n"
        )
        command = [str(pgbouncer_path()), str(ini)]
        if os.geteuid() == 0:
            entry = pwd.getpwnam(UNPRIVILEGED_USER)
            for path in (self.directory, ini):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            allow_traverse(self.directory)
            command[1:1] = ["-u", UNPRIVILEGED_USER]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return self
            except psycopg.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"pgbouncer did not start:\n{self.log()}") from None
                time.sleep(0.1)

    def log(self) -> str:
        path = self.directory / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
