"""Structured logs: one JSON object per line on stdout (and optionally a file), secrets scrubbed.

Every line has ``ts``, ``level`` and ``event``; callers add fields with
:func:`log_event`. Lines from libraries (uvicorn, psycopg) go through the same
formatter, as ``event: "log"`` with their ``message``, so that the whole stream is
machine-readable: that stream is what OpsGraph reads when it diagnoses the shop.

Passwords are removed twice over: the ones the app knows (from its URLs) are
replaced wherever they appear, and anything shaped like a credential in a URL
(``scheme://user:secret@``) or a conninfo (``password=secret``) is masked.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict

MASK = "***"
LOGGER_NAME = "shop"

_URL_CREDENTIALS = re.compile(r"(?P<prefix>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+(?=@)", re.IGNORECASE)
_CONNINFO_PASSWORD = re.compile(r"(?P<prefix>\bpassword\s*=\s*)(?:'(?:[^'\\]|\\.)*'|[^\s'\"]+)", re.IGNORECASE)
# Loggers whose INFO lines are per-operation chatter (psycopg.pool logs every getconn).
_QUIET = ("psycopg", "psycopg.pool")
_UVICORN = ("uvicorn", "uvicorn.error", "uvicorn.access")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with known secrets and credential-shaped substrings masked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    text = _URL_CREDENTIALS.sub(rf"\g<prefix>{MASK}", text)
    return _CONNINFO_PASSWORD.sub(rf"\g<prefix>{MASK}", text)


def url_passwords(*urls: str) -> set[str]:
    """The passwords inside URLs or libpq conninfo strings, both raw and percent-decoded."""
    found: set[str] = set()
    for url in urls:
        if "://" in url:
            password = urlsplit(url).password
            if password:
                found |= {password, unquote(password)}
            continue
        try:
            value = conninfo_to_dict(url).get("password")
        except psycopg.ProgrammingError:
            continue  # not a valid conninfo: connecting will fail and say so, without it
        if isinstance(value, str) and value:
            found.add(value)
    return found


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object; see the module docstring for the fields."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first, so that a secret containing another is masked whole.
        self.secrets = sorted(set(secrets), key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "level": record.levelname.lower(),
            "event": getattr(record, "event", "log"),
            "logger": record.name,
        }
        if not hasattr(record, "event"):
            payload["message"] = record.getMessage()
        payload.update(getattr(record, "fields", {}))
        if record.exc_info:
            payload["traceback"] = self.formatException(record.exc_info)
        return json.dumps(self._scrub(payload), default=str, ensure_ascii=False)

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            return redact(value, self.secrets)
        if isinstance(value, dict):
            return {key: self._scrub(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self._scrub(item) for item in value]
        return value


class _ShopHandler(logging.Handler):
    """Marker mixin: handlers installed by :func:`configure_logging` (so it can replace them)."""


class _StdoutHandler(logging.StreamHandler[Any], _ShopHandler):
    pass


class _FileHandler(logging.FileHandler, _ShopHandler):
    pass


def configure_logging(*, secrets: Iterable[str] = (), log_file: Path | None = None) -> None:
    """Send every log record, the app's and the libraries', through the JSON formatter.

    Idempotent: calling it again (once the settings, hence the secrets and the log
    file, are known) replaces the handlers it installed before. Uvicorn's own
    handlers are removed so its lines become JSON too, and its access log is
    switched off because the request middleware logs richer request lines.
    """
    formatter = JsonFormatter(secrets)
    root = logging.getLogger()
    for installed in [h for h in root.handlers if isinstance(h, _ShopHandler)]:
        root.removeHandler(installed)
        installed.close()
    handlers: list[logging.Handler] = [_StdoutHandler(sys.stdout)]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(_FileHandler(log_file, mode="a", encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    for name in _UVICORN:
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)


def log_event(level: int, event: str, /, **fields: Any) -> None:
    """Log one structured event on the shop logger: ``log_event(logging.INFO, "startup", port=8000)``."""
    logging.getLogger(LOGGER_NAME).log(level, event, extra={"event": event, "fields": fields})
