"""``cable.channels()``: a list of ChannelInfo that reads as a table and finds by name."""

from __future__ import annotations

import pytest

from jupyter_iotcable.client import ChannelInfo, Channels, UnknownName
from jupyter_iotcable.client.channels import parse_channels
from jupyter_iotcable.client.discovery import Endpoint

ENDPOINT = Endpoint("http://127.0.0.1:8888/", "tok", "a test")
BODY = {
    "channels": [
        {
            "name": "telemetry",
            "topics": ["plant/+/+/env"],
            "columns": "plant/{site}/{device}/env",
            "format": "json",
            "time_field": "ts",
            "description": "readings of the simulated plant",
            "read": True,
            "write": False,
        },
        {
            "name": "commands",
            "topics": ["plant/+/+/cmd"],
            "format": "json",
            "description": "",
            "read": True,
            "write": True,
        },
    ]
}


def channels() -> Channels:
    return parse_channels(BODY, ENDPOINT)


def test_it_is_a_list_of_channel_infos() -> None:
    infos = channels()
    assert isinstance(infos, list)
    assert infos[0] == ChannelInfo(
        "telemetry",
        ("plant/+/+/env",),
        "plant/{site}/{device}/env",
        "json",
        True,
        False,
        "readings of the simulated plant",
        "ts",
    )
    assert [info.name for info in infos] == infos.names == ["telemetry", "commands"]
    assert "commands" in infos  # type: ignore[comparison-overlap]
    assert infos["commands"].access == "read+write"


def test_it_prints_as_a_table() -> None:
    assert repr(channels()) == (
        "channel    access      format  topics         description\n"
        "telemetry  read        json    plant/+/+/env  readings of the simulated plant\n"
        "commands   read+write  json    plant/+/+/cmd"
    )
    assert repr(Channels()) == "no channels: this token may neither read nor write any channel"


def test_it_shows_as_an_html_table_with_everything_escaped() -> None:
    infos = Channels([ChannelInfo("<b>", ("a/#",), None, "json", True, False, "x & y")])
    html = infos._repr_html_()
    assert html.startswith("<table><thead><tr><th style='text-align:left'>channel</th>")
    assert "<td style='text-align:left'>&lt;b&gt;</td>" in html
    assert "x &amp; y" in html
    assert "<b>" not in html


def test_a_wrong_name_says_did_you_mean_and_lists_the_channels() -> None:
    with pytest.raises(UnknownName) as unknown:
        channels()["telemtry"]
    assert str(unknown.value) == (
        "unknown channel 'telemtry': did you mean 'telemetry'? The channels you may read or "
        "write are 'commands' and 'telemetry'."
    )
    assert isinstance(unknown.value, KeyError)
    with pytest.raises(UnknownName, match=r"^unknown channel 'x'\. The channels"):
        channels()["x"]


def test_it_exports_a_dataframe() -> None:
    frame = channels().to_frame()
    assert list(frame.index) == ["telemetry", "commands"]
    assert frame.loc["telemetry", "time_field"] == "ts"
    assert frame.loc["commands", "write"]
    assert list(frame.columns) == [
        "read",
        "write",
        "format",
        "topics",
        "columns",
        "time_field",
        "description",
    ]
