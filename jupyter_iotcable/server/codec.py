"""The orjson codec the server injects into the protocol core (which stays stdlib-only).

orjson encodes and decodes several times faster than the standard library; the core's
default json codec is kept for the pure tests and for clients without orjson.
"""

from __future__ import annotations

import json

import orjson


class OrjsonCodec:
    def dumps(self, obj: object) -> str:
        try:
            return orjson.dumps(obj).decode()
        except TypeError:
            # orjson refuses integers beyond 64 bits, which a JSON payload may carry;
            # the standard library encodes them (rare, so the slow path is fine).
            return json.dumps(obj, separators=(",", ":"), allow_nan=False)

    def loads(self, text: str | bytes) -> object:
        return orjson.loads(text)


ORJSON_CODEC = OrjsonCodec()


def orjson_bytes(obj: object) -> bytes:
    """Compact, strict JSON as UTF-8 (what the hub encodes each payload with, once).

    orjson refuses integers beyond 64 bits and nesting deeper than 254 levels, which a
    decoded payload may hold: the standard library writes those (rare, so the slow path
    is fine), or raises for what JSON cannot carry at all.

    The result is an exact-size copy: orjson (3.x) hands back its growing output buffer
    without shrinking it, so a 200 kB payload of ``[{},{},...]`` held 16 MB and a 20-byte
    one 4 kB. The hub keeps these bytes in its history ring, where the difference was the
    23x memory of issue 12 (tests/core/test_history_bytes.py measures it).
    """
    try:
        return memoryview(orjson.dumps(obj)).tobytes()
    except TypeError:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
