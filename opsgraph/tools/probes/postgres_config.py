"""Settings on disk that PostgreSQL would reject, found before anyone reloads or restarts.

`pg_file_settings` re-reads the configuration files as they are now; its `error`
column only flags what the parser catches (a syntax error, an unknown parameter, a
missing include). A value the server cannot parse (`max_connections = 'abc'`, a bad
unit, out of range) is not flagged there, yet it makes the next reload ignore the line
or the next start fail outright. So the effective line of each boolean and numeric
parameter is checked here against `pg_settings` (type, unit, min, max), as the server
would check it. Enum and string values are left to the server: their accepted
spellings include hidden aliases, and a false alarm would open an incident.

Reading `pg_file_settings` needs a superuser (or an explicit grant); without it the
check is skipped and says so.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

import psycopg
from psycopg.rows import dict_row

CAN_READ_SQL = "SELECT has_function_privilege('pg_show_all_file_settings()', 'EXECUTE') AS allowed"

# Every line with a parse error, and the last line of each parameter (the one a reload applies).
_FILE_SETTINGS = """
WITH f AS MATERIALIZED (
    SELECT *, max(seqno) OVER (PARTITION BY name) AS last_seqno FROM pg_file_settings
)
SELECT f.sourcefile, f.sourceline, f.name, f.setting, f.error, s.vartype, s.unit, s.min_val, s.max_val
FROM f LEFT JOIN pg_settings s ON s.name = f.name
WHERE f.error IS NOT NULL OR f.seqno = f.last_seqno
ORDER BY f.seqno
"""

_MEMORY_BYTES = {"B": 1, "kB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_TIME_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "min": 60_000.0, "h": 3_600_000.0, "d": 86_400_000.0}
# A number as PostgreSQL's parse_int/parse_real read it (decimal, hex, fraction, exponent), then a unit.
_NUMBER = re.compile(r"^\s*([+-]?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?))\s*([A-Za-z]*)\s*$")
_BASE_UNIT = re.compile(r"^(\d*)([A-Za-z]+)$")
_BOOLEANS = ("true", "false", "yes", "no")


@dataclass(frozen=True)
class ConfigError:
    """One line of the configuration files that the server would reject."""

    file: str
    line: int | None
    name: str | None
    setting: str | None
    error: str

    def describe(self) -> str:
        where = f"{PurePath(self.file).name}:{self.line}" if self.line is not None else self.file
        what = f"{self.name} = {self.setting!r}: " if self.name else ""
        return f"{where}: {what}{self.error}"

    def summary(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "name": self.name, "setting": self.setting, "error": self.error}


def _boolean_ok(value: str) -> bool:
    """parse_bool: on/off, 1/0, and any unique prefix of true/false/yes/no."""
    text = value.strip().lower()
    return text in ("on", "off", "of", "1", "0") or (text != "" and any(word.startswith(text) for word in _BOOLEANS))


def _unit_factor(unit: str, base: str | None) -> float | None:
    """How many of the parameter's base units one `unit` is; None when the unit does not apply."""
    if base is None:
        return None
    match = _BASE_UNIT.match(base)
    if match is None:
        return None
    multiplier = int(match.group(1) or 1)
    for table in (_MEMORY_BYTES, _TIME_MS):
        if match.group(2) in table and unit in table:
            return table[unit] / (table[match.group(2)] * multiplier)
    return None


def _number_problem(row: dict[str, Any]) -> str | None:
    """Why the server would reject this integer or real value, or None."""
    kind = "an integer" if row["vartype"] == "integer" else "a number"
    match = _NUMBER.match(row["setting"] or "")
    if match is None:
        return f"invalid value: {row['name']} takes {kind}{' with a unit' if row['unit'] else ''}"
    text, unit = match.groups()
    number = float(int(text, 16)) if text.lower().lstrip("+-").startswith("0x") else float(text)
    if unit:
        factor = _unit_factor(unit, row["unit"])
        if factor is None:
            accepted = f"its unit is {row['unit']}" if row["unit"] else "it takes no unit"
            return f"invalid unit {unit!r} for {row['name']} ({accepted})"
        number *= factor
    if row["vartype"] == "integer":
        number = float(math.floor(number + 0.5))
    low, high = float(row["min_val"]), float(row["max_val"])
    if not low <= number <= high:
        return f"{number:g} is outside the valid range for {row['name']} ({row['min_val']} .. {row['max_val']})"
    return None


def _problem(row: dict[str, Any]) -> str | None:
    if row["error"] is not None:
        return str(row["error"])
    if row["vartype"] == "bool" and not _boolean_ok(row["setting"] or ""):
        return f"invalid value: {row['name']} takes a boolean (on/off)"
    if row["vartype"] in ("integer", "real"):
        return _number_problem(row)
    return None


def config_errors(conn: psycopg.Connection[Any]) -> list[ConfigError] | None:
    """Lines the server would reject, in file order; None when this role may not read pg_file_settings."""
    with conn.cursor(row_factory=dict_row) as cursor:  # whatever row factory the connection has
        allowed = cursor.execute(CAN_READ_SQL).fetchone()
        if allowed is None or not allowed["allowed"]:
            return None
        rows = cursor.execute(_FILE_SETTINGS).fetchall()
    return [
        ConfigError(file=row["sourcefile"] or "?", line=row["sourceline"], name=row["name"], setting=row["setting"],
                    error=problem)
        for row in rows
        if (problem := _problem(row)) is not None
    ]  # fmt: skip
