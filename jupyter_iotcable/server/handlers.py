"""REST endpoints: the channel list, the status, and publish."""

from __future__ import annotations

import time
from typing import Any

import orjson
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import ensure_async
from tornado import web

from .._version import __version__
from . import metrics
from .base import RESOURCE, IoTCableAuthMixin, ScrubbedLogMixin
from .engine import CableEngine
from .limits import BucketMap
from .publish import Refusal


class IoTCableAPIHandler(IoTCableAuthMixin, APIHandler):  # type: ignore[misc]
    engine: CableEngine

    def initialize(self, engine: CableEngine) -> None:
        self.engine = engine

    def write_json(self, status: int, body: dict[str, Any]) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps(body))

    async def readable_channels(self) -> set[str]:
        """Channels this user may read; 403 for a user the Authorizer keeps out entirely."""
        read_ok = await self.authorized_for("read")
        if not (read_ok or await self.authorized_for("write")):
            raise web.HTTPError(403, "not allowed to use iotcable channels")
        return {
            name
            for name, channel in self.engine.channels.items()
            if read_ok and self.allowed(channel.read)
        }


class ChannelsHandler(IoTCableAPIHandler):
    """``GET iotcable/api/channels``: what this user may read and write."""

    @web.authenticated
    async def get(self) -> None:
        channels = self.engine.channel_list(await self.access_of_user())
        self.write_json(200, {"channels": channels, "user": self.identity.username})


class StatusHandler(IoTCableAPIHandler):
    """``GET iotcable/api/status``: broker health, uptime and counters. No secrets.

    Per-channel counters are shown for the channels this user may read only: the others'
    names, topics and traffic are none of their business.
    """

    @web.authenticated
    async def get(self) -> None:
        readable = await self.readable_channels()
        status = self.engine.status()
        counters = status.get("channels")
        if isinstance(counters, dict):
            status["channels"] = {n: c for n, c in counters.items() if n in readable}
        self.write_json(200, status)


class MetricsHandler(IoTCableAPIHandler):
    """``GET iotcable/api/metrics``: the per-channel Prometheus metrics, in Prometheus' text
    format, labelled with the channels this user may read and no other (the server's
    ``/metrics`` has the totals only: it is open to every authenticated user)."""

    @web.authenticated
    async def get(self) -> None:
        readable = await self.readable_channels()
        self.set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.finish(metrics.channel_metrics(readable))


class NotConfiguredStatusHandler(ScrubbedLogMixin, APIHandler):
    """``GET iotcable/api/status`` while no channel is configured: why, and how to fix it.

    The package enables itself on every Jupyter server where it is installed; one that
    nobody configured answers here (to an authenticated, authorized user) instead of 404.
    """

    def initialize(self, hint: str) -> None:
        self.hint = hint

    @web.authenticated
    async def get(self) -> None:
        decision = await ensure_async(
            self.authorizer.is_authorized(self, self.current_user, "read", RESOURCE)
        )
        if not decision:
            raise web.HTTPError(403, "not allowed to use iotcable channels")
        self.set_header("Content-Type", "application/json")
        self.finish(
            orjson.dumps(
                {
                    "version": __version__,
                    "configured": False,
                    "hint": self.hint,
                    "broker": {"state": "not_configured", "detail": self.hint},
                    "channels": {},
                }
            )
        )


class PublishHandler(IoTCableAPIHandler):
    """``POST iotcable/api/channels/NAME/publish`` with ``{"topic", "payload"}``."""

    @web.authenticated
    async def post(self, name: str) -> None:
        channel = self.engine.channels.get(name)
        if channel is None:
            self.write_json(404, {"ok": False, "reason": f"unknown channel {name!r}"})
            return
        try:
            body = orjson.loads(self.request.body or b"null")
        except orjson.JSONDecodeError as e:
            self.write_json(400, {"ok": False, "reason": f"body is not valid JSON: {e}"})
            return
        if not isinstance(body, dict) or "topic" not in body or "payload" not in body:
            self.write_json(
                400,
                {
                    "ok": False,
                    "reason": 'body must be a JSON object {"topic": ..., "payload": ...}',
                },
            )
            return
        refused = (await self.access_of_user()).can_write(channel)
        if refused is not None:
            self.write_json(403, {"ok": False, "reason": refused})
            return
        # One bucket per user for REST publishes (a websocket has its own per connection).
        buckets: BucketMap = self.settings["iotcable_rest_buckets"]
        empty = buckets.allow(self.identity.username, time.time())
        if empty is not None:
            self.write_json(
                429,
                {
                    "ok": False,
                    "reason": f"publish rate limit reached ({buckets.rate:g}/s); "
                    f"retry in {empty.retry_after():.1f}s",
                },
            )
            return
        try:
            topic = await self.engine.publish(channel, body["topic"], body["payload"])
        except Refusal as e:
            self.write_json(e.status, {"ok": False, "reason": e.reason})
            return
        self.write_json(200, {"ok": True, "topic": topic})
