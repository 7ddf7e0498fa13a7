"""The two SQLite stores of a state folder, checked before either is opened.

The ledger (`ledger.sqlite`: what was done to real infrastructure) and the checkpoints
(`checkpoints.sqlite`: where each incident's graph is) only make sense together. SQLite
opens a 0-byte file as a fresh, empty database, so an emptied ledger used to be recreated
silently — an approved action then ran with no row any listing shows — and an emptied
checkpoint store left its incidents awaiting an approval no command could give. A file
that is not a database at all surfaced as a bare `sqlite3.DatabaseError` naming no file.
Here each of those is one `StateStoreError` that names the file(s) and what to do.

It runs at every open, so it stays cheap: a stat, a 16-byte header read and one small
query per file, and it never creates or changes either file.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

LEDGER_FILE = "ledger.sqlite"
CHECKPOINTS_FILE = "checkpoints.sqlite"
_HEADER = b"SQLite format 3\x00"
# The ledger's statuses of an incident whose graph has not ended (ledger.OPEN_STATUSES; not
# imported, because the ledger calls this module).
_OPEN_STATUSES = ("open", "awaiting_approval")
# A checkpoint written after the node that follows the detector (checkpoint N is written once
# step N-1 has run; the detector is step 0): a graph that got that far had opened an incident
# in the ledger. Checkpoints -1 to 1 are written for healthy probes too, which never touch the
# ledger, and the input checkpoint may precede the ledger's very first open. The metadata is
# JSON text stored as a BLOB; the cast keeps SQLite >= 3.45 from reading it as binary JSONB.
_PAST_DETECTOR = (
    "SELECT 1 FROM checkpoints WHERE json_valid(CAST(metadata AS TEXT))"
    " AND json_extract(CAST(metadata AS TEXT), '$.step') >= 2 LIMIT 1"
)
_OPEN = f"status IN ({', '.join('?' * len(_OPEN_STATUSES))})"
# Open incidents whose graph a process on this folder's checkpoints drove: each has a `runs` row
# (Ledger.acquire_run), which one run by a LangGraph server, with its own checkpoints, has not.
_OPEN_HERE = f"SELECT incident_id FROM incidents JOIN runs USING (incident_id) WHERE {_OPEN} LIMIT 3"
# A ledger from before `runs` cannot tell them apart: any open incident counts.
_OPEN_ANY = f"SELECT incident_id FROM incidents WHERE {_OPEN} LIMIT 3"


class StateStoreError(RuntimeError):
    """A ledger or checkpoint file is damaged, or the two disagree; the message names the files and what to do."""


@dataclass(frozen=True)
class _Store:
    path: Path
    exists: bool
    tables: frozenset[str]  # empty for a missing, 0-byte or just-created file

    @property
    def empty(self) -> bool:
        return not self.tables


def check_state_stores(state_dir: Path) -> None:
    """Raise StateStoreError unless the folder's ledger and checkpoints can be used together.

    A fresh folder (neither file, or files with no tables yet) is fine. An error when:
    a file is not an SQLite database; the ledger is missing or empty while the checkpoints
    hold graphs that got past the detector (the record of what was done is lost); the
    checkpoint file was emptied while the ledger has open incidents whose graphs ran on it
    (they would wait for ever). Incidents run on a LangGraph server share the ledger but keep
    their checkpoints there: no error. A missing checkpoint file is left to the reconciler,
    which closes incidents killed before their first checkpoint as abandoned.
    """
    ledger = _inspect(state_dir / LEDGER_FILE)
    checkpoints = _inspect(state_dir / CHECKPOINTS_FILE)
    if ledger.empty and "checkpoints" in checkpoints.tables and _query(checkpoints, _PAST_DETECTOR):
        state = "empty" if ledger.exists else "missing"
        raise StateStoreError(
            f"the ledger {ledger.path} is {state} but {checkpoints.path} holds incidents that ran: the record of "
            f"what OpsGraph did is lost, and acting on these incidents would go unrecorded. Restore {ledger.path} "
            f"from a backup; or, accepting that this history is gone, move both {ledger.path.name} and "
            f"{checkpoints.path.name} out of {state_dir} to start afresh"
        )
    if checkpoints.exists and checkpoints.empty and "incidents" in ledger.tables:
        query = _OPEN_HERE if "runs" in ledger.tables else _OPEN_ANY
        open_ids = [str(row[0]) for row in _query(ledger, query, _OPEN_STATUSES)]
        if open_ids:
            raise StateStoreError(
                f"{checkpoints.path} is empty but the ledger {ledger.path} has open incidents "
                f"({', '.join(open_ids)}{', …' if len(open_ids) == 3 else ''}) whose graphs were checkpointed there: "
                f"they can be neither resumed nor repaired. Restore {checkpoints.path} from a backup; or, accepting "
                f"that their state is gone, move both {ledger.path.name} and {checkpoints.path.name} out of "
                f"{state_dir} to start afresh"
            )


def _inspect(path: Path) -> _Store:
    """What one store file holds, without creating it (sqlite3.connect would) or writing to it."""
    try:
        with path.open("rb") as handle:
            header = handle.read(len(_HEADER))
    except FileNotFoundError:
        return _Store(path, exists=False, tables=frozenset())
    except IsADirectoryError:
        raise StateStoreError(f"{path} is a folder, not an SQLite database; move it out of the way") from None
    if not header:  # 0 bytes: SQLite would open it as a brand-new database
        return _Store(path, exists=True, tables=frozenset())
    if header != _HEADER:
        raise _not_a_database(path, "it does not start with the SQLite header")
    store = _Store(path, exists=True, tables=frozenset())
    rows = _query(store, "SELECT name FROM sqlite_master WHERE type = 'table'")
    return _Store(path, exists=True, tables=frozenset(str(row[0]) for row in rows))


def _query(store: _Store, sql: str, params: tuple[str, ...] = ()) -> list[tuple[object, ...]]:
    try:
        with closing(sqlite3.connect(store.path, timeout=10)) as conn:
            return list(conn.execute(sql, params).fetchall())
    except sqlite3.OperationalError as error:  # locked past the timeout, no permission: not damage
        raise StateStoreError(f"{store.path} could not be read: {error}") from None
    except sqlite3.DatabaseError as error:  # also a damaged page behind an intact header
        raise _not_a_database(store.path, f"SQLite says: {error}") from None


def _not_a_database(path: Path, why: str) -> StateStoreError:
    return StateStoreError(
        f"{path} is not a usable SQLite database ({why}): it was overwritten or damaged. Restore it from a "
        f"backup; or move it out of {path.parent} to start a new one (its history is then lost)"
    )
