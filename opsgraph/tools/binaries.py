"""Locate the server binaries that the local environment runs.

A missing binary is the most common first-run failure, so the error says exactly
which package to install instead of surfacing a bare ``FileNotFoundError`` from
deep inside ``subprocess``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

# Where Debian's postgresql packages put their binaries (one folder per major
# version); they are not on PATH unless postgresql-client's wrappers are.
POSTGRESQL_ROOT = Path("/usr/lib/postgresql")

# Daemons such as nginx live in sbin, which is not on an ordinary user's PATH on
# Debian: without this fallback we would tell the user to install a package they have.
SBIN_DIRS: tuple[Path, ...] = (
    Path("/usr/local/sbin"),
    Path("/usr/sbin"),
    Path("/sbin"),
)

_POSTGRESQL_BINARIES = frozenset({"initdb", "pg_ctl", "postgres", "psql", "pg_isready"})

# binary -> Debian package that provides it.
_PACKAGES: dict[str, str] = {
    "redis-server": "redis-server",
    "redis-cli": "redis-tools",
    "nginx": "nginx-light",
    "setpriv": "util-linux",
    **{name: "postgresql" for name in _POSTGRESQL_BINARIES},
}


class MissingBinaryError(RuntimeError):
    """A server binary is not installed; the message names the package to install."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = list(names)
        packages = list(dict.fromkeys(_PACKAGES.get(name, name) for name in self.names))
        super().__init__(
            f"{', '.join(self.names)} not found on PATH: "
            f"install {'it' if len(self.names) == 1 else 'them'} with "
            f"`apt-get install {' '.join(packages)}`"
        )


def _newest_postgresql_bin(name: str) -> Path | None:
    """``/usr/lib/postgresql/<newest major>/bin/<name>`` if it exists."""
    candidates: list[tuple[int, Path]] = []
    for folder in POSTGRESQL_ROOT.glob("*/bin"):
        version = folder.parent.name
        binary = folder / name
        if version.isdigit() and binary.is_file() and os.access(binary, os.X_OK):
            candidates.append((int(version), binary))
    return max(candidates)[1] if candidates else None


def _lookup(name: str) -> Path | None:
    found = shutil.which(name)
    if found:
        return Path(found)
    if name in _POSTGRESQL_BINARIES:
        return _newest_postgresql_bin(name)
    sbin = os.pathsep.join(str(folder) for folder in SBIN_DIRS)
    found = shutil.which(name, path=sbin)
    return Path(found) if found else None


def find_binary(name: str) -> Path:
    """Path of the executable ``name``: PATH, then PostgreSQL's versioned folder or sbin.

    Raises MissingBinaryError with the ``apt-get install`` command when absent.
    """
    found = _lookup(name)
    if found is None:
        raise MissingBinaryError([name])
    return found


def find_binaries(names: Iterable[str]) -> dict[str, Path]:
    """Like find_binary for several names, but reports every missing one in a single error."""
    found: dict[str, Path] = {}
    missing: list[str] = []
    for name in dict.fromkeys(names):
        path = _lookup(name)
        if path is None:
            missing.append(name)
        else:
            found[name] = path
    if missing:
        raise MissingBinaryError(missing)
    return found


def postgres_binary(name: str) -> Path:
    """initdb/pg_ctl/postgres of the same installation as `pg_ctl`, so that versions never mix."""
    sibling = find_binary("pg_ctl").resolve().parent / name
    return sibling if sibling.exists() else find_binary(name)


def as_postgres_user() -> list[str]:
    """The argv prefix that runs a PostgreSQL command as the postgres user (empty when we are not root).

    PostgreSQL refuses to run as root; `setpriv` drops to `postgres` but keeps the right to
    write root-owned folders (the state folder, a test's temporary one).
    """
    if os.geteuid() != 0:
        return []
    return [
        str(find_binary("setpriv")),
        "--reuid=postgres",
        "--regid=postgres",
        "--init-groups",
        "--inh-caps=+dac_override",
        "--ambient-caps=+dac_override",
    ]
