"""Up-front checks of what a command is given: devices, stores, storages and folders.

Every command runs these before it writes anything (an MLflow run, an Optuna study, a cache
folder), so that a mistake costs one line and exit code 2 (`bench.cli.options.BadInput`), not a
failed run per cell or a traceback. Each check raises ValueError with one line that names the
option and the fix. Nothing here creates a file or a folder, except `check_data`, which caches
the data it has checked (bad data are never cached).
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from bench.data.dataset import LandmarkDataset
    from bench.data.sources import Prepared
    from bench.run.cell import CellConfig

CONNECT_TIMEOUT_S = 3  # whole seconds: libpq refuses a fractional connect_timeout
DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:(?P<index>\d+))$")
# MLflow 3.13+ refuses a plain folder (the file store); these are the stores it accepts.
DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
SERVER_SCHEMES = ("http", "https")


def check_device(option: str) -> str:
    """ "auto" -> "cuda" when a GPU is visible, else "cpu"; "cpu", "cuda" and "cuda:K" (K below
    the number of visible GPUs) are kept. Anything else is refused."""
    match = DEVICE_PATTERN.match(option)
    if match is None:
        raise ValueError(
            f"--device {option}: not a device; use auto, cpu, cuda or cuda:K (K a GPU index)"
        )
    if option == "cpu":
        return option
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if option == "auto":
        return "cuda" if count else "cpu"
    if count == 0:
        raise ValueError(f"--device {option}: no CUDA device is visible (use --device cpu)")
    if match["index"] is not None and int(match["index"]) >= count:
        raise ValueError(
            f"--device {option}: only {count} CUDA device(s) are visible "
            f"(cuda:0 .. cuda:{count - 1})"
        )
    return option


def resolve_profile(option: str, device: str) -> str:
    """The profile itself, or for "auto": paper on a CUDA device, else quick."""
    if option != "auto":
        return option
    return "paper" if device.startswith("cuda") else "quick"


def auto_profile_note(chosen: str) -> str:
    """What `--profile auto` picked and why, for stderr."""
    reason = "a CUDA device is in use" if chosen == "paper" else "no CUDA device is in use"
    return f"profile: {chosen} (--profile auto: {reason}; pass --profile to choose)"


def check_writable_folder(folder: Path, what: str) -> None:
    """`folder` is a writable directory, or could be created as one (its nearest existing
    ancestor is a writable directory). `what` names the option in the message."""
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(
            f"{what}: {existing} is a file, so folder {folder} cannot be made; choose another path"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{what}: folder {existing} is not writable; choose another path")


def check_tracking_uri(uri: str, what: str = "--tracking-uri") -> str:
    """An MLflow store MLflow can open: sqlite:///FILE (folder writable), a database URL that
    accepts a connection, or an http(s) server that accepts one. Returns `uri`."""
    scheme = urlsplit(uri).scheme.split("+")[0]
    if scheme == "sqlite":
        check_sqlite_file(uri, what)
    elif scheme in DATABASE_SCHEMES:
        check_database(uri, what)
    elif scheme in SERVER_SCHEMES:
        check_server(uri, what)
    elif scheme == "databricks":
        pass  # Databricks' own client checks its profile and token
    else:
        raise ValueError(
            f"{what} {uri}: not an MLflow store MLflow can open here; use "
            "sqlite:///mlruns/mlflow.db, a database URL (postgresql://USER@HOST/DB) or a server "
            "(http://HOST:5000)"
        )
    return uri


def check_storage_url(url: str, what: str) -> str:
    """An Optuna storage: journal:FILE or sqlite:///FILE (folder writable) or a database URL that
    accepts a connection. Returns `url`."""
    if url.startswith("journal:"):
        path = Path(url[len("journal:") :])
        if not path.name:
            raise ValueError(
                f"{what} {url}: a journal storage needs a file, e.g. journal:queue.log"
            )
        check_writable_folder(path.parent, f"{what} {url}")
        return url
    scheme = urlsplit(url).scheme.split("+")[0]
    if scheme == "sqlite":
        check_sqlite_file(url, what)
    elif scheme in DATABASE_SCHEMES:
        check_database(url, what)
    else:
        raise ValueError(
            f"{what} {url}: not an Optuna storage; use sqlite:///mlruns/optuna.db, "
            "postgresql+psycopg2://USER@HOST/DB or journal:/shared/queue.log"
        )
    return url


def check_sqlite_file(url: str, what: str) -> None:
    if not url.startswith("sqlite:///") or url == "sqlite:///":
        raise ValueError(
            f"{what} {url}: a SQLite URL names a file: sqlite:///relative/path.db or "
            "sqlite:////absolute/path.db"
        )
    path = Path(url[len("sqlite:///") :])
    if path.is_dir():
        raise ValueError(f"{what} {url}: {path} is a folder; name the database file inside it")
    check_writable_folder(path.parent, f"{what} {url}")
    if path.exists():
        check_sqlite_writable(path, f"{what} {url}")


SQLITE_LOCK_WAIT_S = (
    10  # a store busy with another run's write frees within this; a lock held longer is not
)


def check_sqlite_writable(path: Path, what: str) -> None:
    """An existing SQLite file can be opened and written: not read-only (no write permission
    for anyone, or a read-only file system), a database, and not locked by another process for
    longer than SQLITE_LOCK_WAIT_S. The probe takes the write lock and rolls back: nothing is
    written."""
    import sqlite3
    import stat

    if not path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        raise ValueError(
            f"{what}: {path} is read-only (mode {stat.filemode(path.stat().st_mode)}); make it "
            "writable or use another store"
        )
    try:
        connection = sqlite3.connect(
            f"file:{path.resolve()}?mode=rw", uri=True, timeout=SQLITE_LOCK_WAIT_S
        )
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("PRAGMA schema_version").fetchone()
            connection.rollback()
        finally:
            connection.close()
    except sqlite3.Error as error:
        reason = str(error)
        fix = {
            "database is locked": "another process holds it; wait for it or use another store",
            "file is not a database": "it is some other file; name a new or an MLflow database",
        }.get(reason, "check the file or use another store")
        raise ValueError(f"{what}: {path} cannot be written ({reason}); {fix}") from None


def check_server(url: str, what: str) -> None:
    """Something accepts a TCP connection at the URL's host and port within the timeout."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"{what} {url}: no host in the URL; use e.g. http://127.0.0.1:5000")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ValueError(
            f"{what} {url}: no server answers at {parts.hostname}:{port} ({reason}); start it "
            "(mlflow server --port ...) or use another store"
        ) from None


def check_database(url: str, what: str) -> None:
    """The database accepts a connection within the timeout (nothing is written)."""
    import sqlalchemy

    from bench.track.tracking import database_url

    url = database_url(url)
    parts = urlsplit(url)
    shown = url if parts.password is None else url.replace(f":{parts.password}@", ":***@")
    connect_args = (
        {} if parts.scheme.startswith("mssql") else {"connect_timeout": CONNECT_TIMEOUT_S}
    )
    try:
        engine = sqlalchemy.create_engine(url, connect_args=connect_args)
        with engine.connect():
            pass
        engine.dispose()
    except ImportError as error:
        raise ValueError(f"{what} {shown}: missing database driver ({error})") from None
    except Exception as error:  # the drivers' errors span several lines; the first says why
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{what} {shown}: cannot connect: {first}") from None


def check_clocks(cells: Sequence[CellConfig], prepared: Sequence[Prepared]) -> None:
    """Each cell's schedule clock fits its epochs and batches (`updates`); `prepared` holds one
    dataset per distinct `cell.data_identity`, in cell order."""
    import math

    from bench.run.schedule import updates_per_epoch

    datasets: dict[tuple[object, ...], LandmarkDataset] = {}
    for cell in cells:
        identity = cell.data_identity
        if identity not in datasets:
            datasets[identity] = prepared[len(datasets)].dataset
        batches = math.ceil(len(datasets[identity].split("train")) / cell.batch_size)
        try:
            updates_per_epoch(cell.schedule, cell.epochs, batches)
        except ValueError as error:
            raise ValueError(f"grid {cell.grid}: methods.{cell.method}: {error}") from None


def check_data(cells: Sequence[CellConfig], data_root: Path | None) -> list[str]:
    """Load (or generate), check and cache every dataset the cells train on, and check each
    cell's task options against its data (`bench.data.sources.prepare_cells`); one line per
    dataset saying what was done. Bad data or options raise ValueError with the loader's line."""
    from bench.data.sources import prepare_cells

    try:
        prepared = prepare_cells(cells, data_root)
    except OSError as error:
        if error.filename is None:  # raised by bench with its one line (a missing source)
            raise ValueError(str(error)) from None
        raise ValueError(
            f"{error.filename}: cannot be read ({error.strerror}); check it exists and its "
            "permissions"
        ) from None
    except RuntimeError as error:
        raise ValueError(str(error)) from None
    check_clocks(cells, prepared)
    lines = []
    for item in prepared:
        sizes = "/".join(str(len(item.dataset.split(name))) for name in ("train", "val", "test"))
        layout = item.dataset.layout
        lines.append(
            f"data {item.directory.parent.name}/{item.directory.name}: {item.action} in "
            f"{item.seconds:.1f} s; {sizes} train/val/test images, {len(layout.landmark_names)} "
            f"landmark(s), {'multi' if layout.multi_instance else 'single'}-instance, "
            f"{layout.channels} channel(s)"
        )
    return lines
