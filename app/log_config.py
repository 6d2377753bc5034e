"""Structured logging (JSON or console) with the request id, and a last-line secret redactor."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

from app.settings import LogFormat

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)

# Defence in depth: code never logs secrets on purpose, but a stray f-string must not leak
# a webhook secret, a bearer token, or a Fernet-sealed value either.
_SECRET_PATTERNS = (
    re.compile(r"whsec_[A-Za-z0-9+/=]+"),
    re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"fernet:[A-Za-z0-9_=-]+"),
)
_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    # uvicorn's copy of the message with terminal colour codes: noise in both formats.
    | {"message", "asctime", "color_message"}
)


def redact(text: str) -> str:
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "[REDACTED]", text)
    return text


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        entry.update(_extra_fields(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str))


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S")
        extras = " ".join(f"{k}={v}" for k, v in _extra_fields(record).items())
        request_id = request_id_var.get()
        parts = [stamp, f"{record.levelname:<7}", record.name, record.getMessage()]
        if request_id:
            parts.append(f"request_id={request_id}")
        if extras:
            parts.append(extras)
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


class _HousekeepingAtDebug(logging.Filter):
    """arq's start/finish lines of cron jobs (the sweep runs every 3 s) become DEBUG.

    They say nothing happened almost every time and push everything else off a console;
    what the jobs find is logged by the jobs themselves, and failures keep their level.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or "cron:" not in record.getMessage():
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)


def configure_logging(level: str, log_format: LogFormat) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's access log would print request lines without our fields; we log our own.
    for name in ("uvicorn", "uvicorn.error", "arq", "litestar"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    arq_worker = logging.getLogger("arq.worker")
    if not any(isinstance(f, _HousekeepingAtDebug) for f in arq_worker.filters):
        arq_worker.addFilter(_HousekeepingAtDebug())
