"""Fixtures of the scale-out tests: the local PostgreSQL server and fresh databases on it.

Every test gets its own uniquely named database (dropped at the end), so parallel test runs
never share one. The server is the one `.ci/run` starts (Debian's `postgresql`, trust
authentication on 127.0.0.1); PGHOST, PGPORT and PGUSER override where it is. When no server
answers and none can be started, the PostgreSQL tests are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import glob
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str

    def url(self, database: str) -> str:
        return f"postgresql+psycopg2://{self.user}@{self.host}:{self.port}/{database}"

    def execute(self, statement: str) -> None:
        """One statement outside a transaction (CREATE/DROP DATABASE need that)."""
        import psycopg2

        connection = psycopg2.connect(
            host=self.host, port=self.port, user=self.user, dbname="postgres", connect_timeout=5
        )
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(statement)
        finally:
            connection.close()

    def create_database(self, prefix: str, template: str | None = None) -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return name

    def drop_database(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _reachable(server: PostgresServer) -> str | None:
    """None when the server answers, else why not."""
    try:
        server.execute("SELECT 1")
    except Exception as error:  # psycopg2.OperationalError and a missing driver alike
        return str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
    return None


def _start_local_cluster() -> None:
    """Starts Debian's local cluster, as `.ci/run` does; quietly does nothing elsewhere."""
    for version in sorted(glob.glob("/etc/postgresql/*")):
        subprocess.run(
            [
                "pg_ctlcluster",
                "--skip-systemctl-redirect",
                os.path.basename(version),
                "main",
                "start",
            ],
            capture_output=True,
            timeout=60,
            check=False,
        )


@pytest.fixture(scope="session")
def postgres() -> PostgresServer:
    server = PostgresServer(
        os.environ.get("PGHOST", "127.0.0.1"),
        int(os.environ.get("PGPORT", "5432")),
        os.environ.get("PGUSER", "postgres"),
    )
    problem = _reachable(server)
    if problem is not None:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            _start_local_cluster()
        problem = _reachable(server)
    if problem is not None:
        service_missing(f"no PostgreSQL server at {server.host}:{server.port} ({problem})")
    return server


def service_missing(reason: str) -> None:
    """Skip a test whose service (PostgreSQL, Chromium) is missing here, but fail it in CI
    (`CI` set), where `.ci/run` provides them: a green skip there would hide a broken setup."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must provide it (.ci/run)")
    pytest.skip(reason)


@pytest.fixture
def chromium() -> str:
    """The headless browser of the page tests: Debian's chromium, which .ci/run installs."""
    import shutil

    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        service_missing("Chromium is not installed (Debian's chromium package)")
    assert found is not None
    return found


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> Iterator[str]:
    """A fresh, empty database for one test (an Optuna storage), dropped afterwards."""
    name = postgres.create_database("bench_optuna")
    try:
        yield postgres.url(name)
    finally:
        postgres.drop_database(name)


@pytest.fixture(scope="session")
def mlflow_postgres_template(postgres: PostgresServer) -> Iterator[str]:
    """A database with MLflow's schema, migrated once per session (several seconds) in a child
    process, so that no connection of this process keeps it from being copied."""
    name = postgres.create_database("bench_mlflow_template")
    try:
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from bench.track.tracking import open_store; open_store(sys.argv[1])",
                postgres.url(name),
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
        yield name
    finally:
        postgres.drop_database(name)


@pytest.fixture
def mlflow_postgres_uri(postgres: PostgresServer, mlflow_postgres_template: str) -> Iterator[str]:
    """A fresh MLflow store on PostgreSQL for one test: a copy of the migrated template."""
    name = postgres.create_database("bench_mlflow", template=mlflow_postgres_template)
    try:
        yield postgres.url(name)
    finally:
        postgres.drop_database(name)
