"""The delivery job: a thin arq entry point over AttemptRunner."""

from __future__ import annotations

from typing import Any

from app.delivery.attempts import AttemptRunner


async def deliver_attempts(ctx: dict[str, Any], refs: list[list[Any]]) -> int:
    runner: AttemptRunner = ctx["runner"]
    return await runner.run([(str(d), int(n)) for d, n in refs])
