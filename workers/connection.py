"""The Redis connection RQ runs on (Redis is a transport: nothing in it is the truth)."""

from __future__ import annotations

from redis import Redis

CONNECT_TIMEOUT_S = 2.0
"""Fail fast when Redis is down, so /readyz and start-up say so instead of hanging."""

SOCKET_TIMEOUT_S = 10.0
"""Longest single Redis command we wait for."""


def redis_connection(url: str) -> Redis:
    return Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=SOCKET_TIMEOUT_S,
        health_check_interval=30,
    )
