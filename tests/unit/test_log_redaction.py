"""Specifications for structured log lines and the last-line secret redactor."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from app.log_config import ConsoleFormatter, JsonFormatter, redact, request_id_var
from app.security.secret_box import SecretBox, new_webhook_secret

WEBHOOK_SECRET = new_webhook_secret()
JWT = (
    "eyJhbGciOiJIUzI1NiIsImtpZCI6InRlc3QtaHMifQ"
    ".eyJzdWIiOiJ0ZW5fMDFIWFlaIiwic2NvcGUiOiJzdWJzY3JpcHRpb25zOnJlYWQifQ"
    ".Qm9ndXNTaWduYXR1cmVCeXRlc0Zvck5vd18xMjM0NTY"
)
OPAQUE_BEARER = "abc.def"
FERNET_VALUE = SecretBox(("log-test-key-0123456789-0123456789-xyz",)).seal("s3cr3t")

# (what to log, the parts that must never appear in the output)
SECRETS: dict[str, tuple[str, list[str]]] = {
    "webhook secret": (WEBHOOK_SECRET, [WEBHOOK_SECRET, WEBHOOK_SECRET.removeprefix("whsec_")]),
    "jwt": (JWT, [JWT, *JWT.split(".")]),
    "bearer header": (f"Bearer {OPAQUE_BEARER}", [OPAQUE_BEARER]),
    "lowercase bearer": (f"authorization: bearer {OPAQUE_BEARER}", [OPAQUE_BEARER]),
    "fernet value": (FERNET_VALUE, [FERNET_VALUE, FERNET_VALUE.removeprefix("fernet:")]),
}
FORMATTERS = {"json": JsonFormatter, "console": ConsoleFormatter}


def make_record(
    msg: str,
    *args: object,
    extra: dict[str, Any] | None = None,
    exc_info: Any = None,
    level: int = logging.INFO,
) -> logging.LogRecord:
    logger = logging.getLogger("tests.log_redaction")
    return logger.makeRecord(logger.name, level, __file__, 1, msg, args, exc_info, extra=extra)


def current_exc_info() -> Any:
    return sys.exc_info()


@pytest.fixture
def request_id() -> Iterator[str]:
    token = request_id_var.set("01HXREQUESTID0000000000000")
    yield "01HXREQUESTID0000000000000"
    request_id_var.reset(token)


def assert_redacted(output: str, leaks: list[str]) -> None:
    assert "[REDACTED]" in output
    for leak in leaks:
        assert leak not in output, f"{leak!r} leaked into {output!r}"


# --- JSON lines --------------------------------------------------------------------------


def test_json_lines_are_valid_json_with_level_message_request_id_and_extras(
    request_id: str,
) -> None:
    record = make_record("delivered %s", "dlv_1", extra={"subscription_id": "sub_1", "attempt": 3})
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "info"
    assert entry["message"] == "delivered dlv_1"
    assert entry["logger"] == "tests.log_redaction"
    assert entry["request_id"] == request_id
    assert entry["subscription_id"] == "sub_1"
    assert entry["attempt"] == 3
    assert entry["time"].endswith("+00:00")
    assert "exception" not in entry


def test_json_lines_leave_out_the_request_id_outside_a_request() -> None:
    token = request_id_var.set(None)
    try:
        entry = json.loads(JsonFormatter().format(make_record("idle")))
    finally:
        request_id_var.reset(token)
    assert "request_id" not in entry


def test_json_lines_carry_the_exception_text() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = make_record("failed", exc_info=current_exc_info(), level=logging.ERROR)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "error"
    assert "RuntimeError: boom" in entry["exception"]


def test_json_lines_stringify_values_json_cannot_hold() -> None:
    class Opaque:
        def __str__(self) -> str:
            return "opaque-value"

    entry = json.loads(JsonFormatter().format(make_record("x", extra={"thing": Opaque()})))
    assert entry["thing"] == "opaque-value"


def test_console_lines_hold_level_message_request_id_and_extras(request_id: str) -> None:
    record = make_record("delivered", extra={"attempt": 3}, level=logging.WARNING)
    line = ConsoleFormatter().format(record)
    assert "WARNING" in line
    assert "delivered" in line
    assert f"request_id={request_id}" in line
    assert "attempt=3" in line


# --- redaction ---------------------------------------------------------------------------


@pytest.mark.parametrize("formatter_name", FORMATTERS)
@pytest.mark.parametrize("kind", SECRETS)
def test_secrets_in_the_message_are_redacted(formatter_name: str, kind: str) -> None:
    value, leaks = SECRETS[kind]
    output = FORMATTERS[formatter_name]().format(make_record("calling with %s now", value))
    assert_redacted(output, leaks)
    assert "now" in output
    if formatter_name == "json":
        json.loads(output)


@pytest.mark.parametrize("formatter_name", FORMATTERS)
@pytest.mark.parametrize("kind", SECRETS)
def test_secrets_in_extra_fields_are_redacted(formatter_name: str, kind: str) -> None:
    value, leaks = SECRETS[kind]
    record = make_record(
        "request", extra={"header": value, "nested": {"inner": [value]}, "path": "/v1/x"}
    )
    output = FORMATTERS[formatter_name]().format(record)
    assert_redacted(output, leaks)
    assert "/v1/x" in output
    if formatter_name == "json":
        assert json.loads(output)["path"] == "/v1/x"


@pytest.mark.parametrize("formatter_name", FORMATTERS)
@pytest.mark.parametrize("kind", SECRETS)
def test_secrets_in_exception_text_are_redacted(formatter_name: str, kind: str) -> None:
    value, leaks = SECRETS[kind]
    try:
        raise ValueError(f"upstream refused {value}")
    except ValueError:
        record = make_record("failed", exc_info=current_exc_info(), level=logging.ERROR)
    output = FORMATTERS[formatter_name]().format(record)
    assert_redacted(output, leaks)
    assert "upstream refused" in output


def test_bearer_redaction_keeps_the_scheme_word() -> None:
    assert redact(f"Authorization: Bearer {OPAQUE_BEARER}") == "Authorization: Bearer [REDACTED]"


def test_text_without_secrets_is_unchanged() -> None:
    text = "delivered dlv_01HX to https://93.184.216.34/hook in 12 ms (status 200)"
    assert redact(text) == text


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_a_logger_with_the_json_formatter_redacts_end_to_end() -> None:
    handler = ListHandler()
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.log_redaction.e2e")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("rotated to %s", WEBHOOK_SECRET, extra={"token": JWT})
    finally:
        logger.removeHandler(handler)
    assert len(handler.lines) == 1
    assert_redacted(handler.lines[0], [WEBHOOK_SECRET, JWT])
