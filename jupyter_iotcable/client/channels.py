"""``cable.channels()``: the channels a user may read or write, as a small table.

``Channels`` is a list of ``ChannelInfo`` (so ``for ch in cable.channels()`` and
``len(...)`` work as before) that prints as an aligned table, shows as an HTML table in a
notebook, finds a channel by name (``channels["telemetry"]``, with a "did you mean" when
the name is wrong) and exports a DataFrame (``channels.to_frame()``).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, SupportsIndex, overload

from .errors import ConnectionFailed
from .names import UnknownName

if TYPE_CHECKING:
    from ..frames import Frame
    from .discovery import Endpoint

__all__ = ["ChannelInfo", "Channels", "parse_channels"]


@dataclass(frozen=True)
class ChannelInfo:
    """A channel the user may read or write, as ``cable.channels()`` lists it.

    ``topics`` are its MQTT filters, ``columns`` the template naming topic levels as
    frame columns (``plant/{site}/{device}/env``), ``format`` how payloads decode,
    ``time_field`` the payload field that holds a reading's time (``None``: the time the
    server received it), ``units`` the unit of each field that has one (``{"temperature":
    "°C"}``), ``read``/``write`` what *you* may do with it.
    """

    name: str
    topics: tuple[str, ...]
    columns: str | None
    format: str
    read: bool
    write: bool
    description: str = ""
    time_field: str | None = None
    units: dict[str, str] = field(default_factory=dict)

    @property
    def access(self) -> str:
        """``read``, ``write``, ``read+write`` (or ``-``)."""
        return (
            "+".join(name for name, ok in (("read", self.read), ("write", self.write)) if ok) or "-"
        )


_HEADERS = ("channel", "access", "format", "topics", "description")


class Channels(list[ChannelInfo]):
    """The channels a user may read or write; a list of ``ChannelInfo`` that reads well."""

    @property
    def names(self) -> list[str]:
        return [info.name for info in self]

    @overload
    def __getitem__(self, key: SupportsIndex) -> ChannelInfo: ...
    @overload
    def __getitem__(self, key: slice) -> list[ChannelInfo]: ...
    @overload
    def __getitem__(self, key: str) -> ChannelInfo: ...
    def __getitem__(self, key: SupportsIndex | slice | str) -> Any:
        """A channel by position, or by name (``channels["telemetry"]``)."""
        if isinstance(key, str):
            for info in self:
                if info.name == key:
                    return info
            raise UnknownName("channel", key, self.names, "channels you may read or write")
        return super().__getitem__(key)

    def __contains__(self, item: object) -> bool:
        if isinstance(item, str):
            return item in self.names
        return super().__contains__(item)

    def _rows(self) -> list[tuple[str, ...]]:
        return [
            (info.name, info.access, info.format, " ".join(info.topics), info.description)
            for info in self
        ]

    def _headers(self) -> tuple[str, ...]:
        # No description column when no channel has one.
        return _HEADERS if any(info.description for info in self) else _HEADERS[:-1]

    def __repr__(self) -> str:
        if not self:
            return "no channels: this token may neither read nor write any channel"
        headers = self._headers()
        rows = [headers, *(row[: len(headers)] for row in self._rows())]
        widths = [max(len(row[i]) for row in rows) for i in range(len(headers))]
        return "\n".join(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in rows
        )

    def _repr_html_(self) -> str:
        if not self:
            return f"<p>{html.escape(repr(self))}</p>"
        headers = self._headers()
        head = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in headers)
        body = "".join(
            "<tr>"
            + "".join(
                f"<td style='text-align:left'>{html.escape(cell)}</td>"
                for cell in row[: len(headers)]
            )
            + "</tr>"
            for row in self._rows()
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def to_frame(self) -> Frame:
        """One row per channel (index ``channel``): access, format, topics, columns, ..."""
        from ..frames import records_frame

        records = [
            {
                "channel": info.name,
                "read": info.read,
                "write": info.write,
                "format": info.format,
                "topics": list(info.topics),
                "columns": info.columns,
                "time_field": info.time_field,
                "description": info.description,
            }
            for info in self
        ]
        columns = ["channel", "read", "write", "format", "topics", "columns", "time_field"]
        return records_frame(records, [*columns, "description"], index="channel")


def parse_channels(body: object, endpoint: Endpoint) -> Channels:
    """The ``GET iotcable/api/channels`` answer as ``Channels``."""
    entries = body.get("channels") if isinstance(body, dict) else None
    if not isinstance(entries, list):
        raise ConnectionFailed(
            f"{endpoint.api_url('channels')} answered without a 'channels' list: "
            "is the server's jupyter-iotcable the same version as this client?"
        )
    infos = Channels()
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            continue
        columns = entry.get("columns")
        time_field = entry.get("time_field")
        units = entry.get("units")
        infos.append(
            ChannelInfo(
                name=entry["name"],
                topics=tuple(str(t) for t in entry.get("topics") or ()),
                columns=columns if isinstance(columns, str) else None,
                format=str(entry.get("format", "")),
                read=entry.get("read") is True,
                write=entry.get("write") is True,
                description=str(entry.get("description") or ""),
                time_field=time_field if isinstance(time_field, str) else None,
                units={str(name): str(unit) for name, unit in units.items()}
                if isinstance(units, dict)
                else {},
            )
        )
    return infos
