"""The Redis job queue connection, with msgspec (msgpack) instead of pickle on the wire."""

from __future__ import annotations

from typing import Any

import msgspec
from arq.connections import ArqRedis, RedisSettings
from redis.asyncio import ConnectionPool

QUEUE_NAME = "pwbi:deliveries"

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()


def serialize_job(job: dict[str, Any]) -> bytes:
    # pickle would turn a write to Redis into code execution in every worker (decision 4).
    return _encoder.encode(job)


def deserialize_job(raw: bytes) -> dict[str, Any]:
    value = _decoder.decode(raw)
    if not isinstance(value, dict):
        raise ValueError("job payload is not a map")
    return value


def redis_settings(url: str) -> RedisSettings:
    return RedisSettings.from_dsn(url)


def queue_connection(url: str) -> ArqRedis:
    """A lazily-connecting client: the gateway starts even while Redis is down (readyz says so)."""
    pool = ConnectionPool.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    return ArqRedis(
        connection_pool=pool,
        job_serializer=serialize_job,
        job_deserializer=deserialize_job,
        default_queue_name=QUEUE_NAME,
    )
