"""Names a user types (channels, fields): "did you mean" when one is wrong, the choices listed."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from .errors import IoTCableError

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["UnknownName", "close_matches", "suggestion", "unknown_name_message"]

_SHOWN = 20
"""Choices listed in a message at most; the rest are counted."""


def close_matches(name: str, choices: Iterable[str]) -> list[str]:
    """Up to three choices that look like ``name`` (case-insensitive), best first."""
    by_folded: dict[str, str] = {}
    for choice in choices:
        by_folded.setdefault(choice.casefold(), choice)
    found = difflib.get_close_matches(name.casefold(), list(by_folded), n=3, cutoff=0.6)
    return [by_folded[folded] for folded in found]


def listing(choices: Iterable[str]) -> str:
    """``'a', 'b' and 'c'``; long lists end with ``and 12 more``."""
    names = sorted(choices)
    shown = [repr(name) for name in names[:_SHOWN]]
    if len(names) > _SHOWN:
        shown.append(f"{len(names) - _SHOWN} more")
    if len(shown) <= 1:
        return "".join(shown)
    return ", ".join(shown[:-1]) + " and " + shown[-1]


def unknown_name_message(what: str, name: str, choices: Iterable[str], plural: str = "") -> str:
    """``unknown channel 'telemtry': did you mean 'telemetry'? Channels: 'commands' and ...``."""
    options = list(choices)
    return f"unknown {what} {name!r}" + suggestion(name, options, plural or f"{what}s")


def suggestion(name: str, choices: Iterable[str], label: str) -> str:
    """``: did you mean 'telemetry'? The channels ... are 'commands' and 'telemetry'.``"""
    options = list(choices)
    matches = close_matches(name, options)
    text = f": did you mean {' or '.join(repr(m) for m in matches)}?" if matches else "."
    if options:
        return text + f" The {label} are {listing(options)}."
    return text + f" There are no {label}."


class UnknownName(IoTCableError, KeyError):
    """A channel or field name that does not exist; ``choices`` are the names that do."""

    def __init__(self, what: str, name: str, choices: Iterable[str], plural: str = "") -> None:
        self.what = what
        self.name = name
        self.choices = sorted(choices)
        self.message = unknown_name_message(what, name, self.choices, plural)
        super().__init__(self.message)

    def __str__(self) -> str:
        # KeyError prints the repr of its argument (quotes and escapes): print the text.
        return self.message
