"""The client's frame codec: orjson's speed with the standard codec's exact answers.

The protocol core decodes with its standard-library codec (``protocol/codec.py``), whose
refusals are the contract every client shares (the TypeScript mirror is checked against
it): numbers a 64-bit float cannot hold, lone surrogates, invalid UTF-8, NaN. orjson
refuses all of those too, and decodes several times faster; where the two could differ,
the standard codec decides:

- whatever orjson refuses is decoded again by the standard codec, which raises exactly
  its own error (so the messages stay the same) or, for nesting orjson finds too deep,
  decides by its own limit;
- orjson reads an integer beyond 64 bits as a float (losing digits) where the standard
  codec keeps it exact: a text holding a run of 19 digits or more is decoded by the
  standard codec (such runs are rare: offsets, times and sensor values are shorter).

Every frame the server writes is within protocol/limits.py (numbers that fit a 64-bit
float, nesting at most ``MAX_FRAME_DEPTH``, at most ``MAX_FRAME_BYTES``), which both
decoders take: orjson nests 1024 deep, the standard codec about 950, so no frame of
hostile readings is refused (tests/core/test_hostile_payloads.py and the TypeScript
client's labextension/test/hostile.test.ts decode the same frames).

Encoding (commands, a few a second) stays with the standard codec, so that what the
client sends is byte for byte what the transcripts record.
"""

from __future__ import annotations

import orjson

from ..protocol.codec import JSON_CODEC

__all__ = ["FRAME_CODEC", "FrameCodec"]

# 19 digits may already exceed a 64-bit integer (-9999999999999999999); shorter runs
# cannot. Found by mapping every ASCII digit to "0" and every other byte to " ", then a
# substring search: about 4x cheaper than orjson itself (a regex is 10x dearer).
_DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_LONG_RUN = b"0" * 19


def _has_long_digit_run(text: str | bytes) -> bool:
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    return _LONG_RUN in data.translate(_DIGITS_AS_ZEROS)


class FrameCodec:
    """``Codec`` for ``ClientConnection``: orjson, the standard codec where they differ."""

    def dumps(self, obj: object) -> str:
        return JSON_CODEC.dumps(obj)

    def loads(self, text: str | bytes) -> object:
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            return JSON_CODEC.loads(text)
        if _has_long_digit_run(text):
            return JSON_CODEC.loads(text)
        return value


FRAME_CODEC = FrameCodec()
