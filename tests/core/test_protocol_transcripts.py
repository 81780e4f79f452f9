"""Replay the recorded conversations in tests/transcripts against each machine alone.

The files are the contract shared with the TypeScript client; they are regenerated only
by ``python -m tests.core.transcripts --write``, never by this test.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from jupyter_iotcable.protocol import Subprotocol

from .transcripts import (
    DIRECTORY,
    ReplayError,
    every_transcript,
    path_for,
    record,
    render,
    replay_client,
    replay_server,
)

CASES = every_transcript()
IDS = [f"{name}.{sub.value}" for name, sub in CASES]


def load(name: str, subprotocol: Subprotocol) -> dict[str, Any]:
    path = path_for(name, subprotocol)
    assert path.exists(), f"{path.name} is missing: run python -m tests.core.transcripts --write"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@pytest.mark.parametrize(("name", "subprotocol"), CASES, ids=IDS)
def test_recording_matches_the_file(name: str, subprotocol: Subprotocol) -> None:
    path = path_for(name, subprotocol)
    assert path.read_text() == render(record(name, subprotocol)), (
        f"{path.name} differs from what the machines now do; if the change is deliberate, "
        "run python -m tests.core.transcripts --write and review the diff"
    )


@pytest.mark.parametrize(("name", "subprotocol"), CASES, ids=IDS)
def test_server_replays_the_transcript(name: str, subprotocol: Subprotocol) -> None:
    replay_server(load(name, subprotocol))


@pytest.mark.parametrize(("name", "subprotocol"), CASES, ids=IDS)
def test_client_replays_the_transcript(name: str, subprotocol: Subprotocol) -> None:
    replay_client(load(name, subprotocol))


def test_no_stale_transcripts() -> None:
    expected = {path_for(name, sub) for name, sub in CASES}
    assert set(DIRECTORY.glob("*.json")) == expected


def test_every_server_frame_kind_is_covered_in_each_subprotocol_where_it_applies() -> None:
    kinds: dict[str, set[str]] = {sub.value: set() for sub in Subprotocol}
    for name, sub in CASES:
        for step in load(name, sub)["steps"]:
            if step.get("from") == "server" and not step.get("foreign"):
                frame = json.loads(step["frame"])
                kind = frame.get("type") or (
                    "batch" if "batch" in frame else "data" if "offset" in frame else "transmission"
                )
                kinds[sub.value].add(kind)
    common = {
        "welcome", "ping", "confirm_subscription", "reject_subscription", "disconnect",
        "reject_history", "transmission", "broker", "error",
    }  # fmt: skip
    assert kinds["actioncable-v1-json"] == common | {"data"}
    assert kinds["actioncable-v1-ext-json"] == common | {"data", "confirm_history"}
    assert kinds["iotcable-v1-json"] == common | {"batch", "confirm_history"}


def _ours(steps: list[dict[str, Any]], side: str) -> list[int]:
    """Indexes of the frames a machine on ``side`` produced itself."""
    return [i for i, s in enumerate(steps) if s.get("from") == side and not s.get("foreign")]


@pytest.mark.parametrize("side", ["server", "client"])
def test_a_changed_frame_fails_the_replay(side: str) -> None:
    transcript = load("history_reject", Subprotocol.IOTCABLE)
    broken = copy.deepcopy(transcript)
    step = broken["steps"][_ours(broken["steps"], side)[0]]
    step["frame"] = step["frame"].replace('"', "'", 1)
    replay = replay_server if side == "server" else replay_client
    with pytest.raises(ReplayError, match=f"recorded {side} frame"):
        replay(broken)


@pytest.mark.parametrize("side", ["server", "client"])
def test_a_missing_frame_fails_the_replay(side: str) -> None:
    transcript = load("duplicate_subscribe", Subprotocol.PLAIN)
    del transcript["steps"][_ours(transcript["steps"], side)[-1]]
    replay = replay_server if side == "server" else replay_client
    with pytest.raises(ReplayError, match="produced more than recorded"):
        replay(transcript)


def test_a_changed_event_fails_the_replay() -> None:
    transcript = load("publish", Subprotocol.EXT)
    index = next(i for i, s in enumerate(transcript["steps"]) if "server_event" in s)
    transcript["steps"][index]["server_event"]["identifier"] = "x"
    with pytest.raises(ReplayError, match="recorded server event"):
        replay_server(transcript)
