"""Where connect() looks for the server, in which order, and what it says when it finds none."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from jupyter_iotcable.client.discovery import Endpoint, discover, normalize_url
from jupyter_iotcable.client.errors import ServerNotFound

if TYPE_CHECKING:
    from pathlib import Path

IOT = {"IOTCABLE_URL": "http://127.0.0.1:8888/", "IOTCABLE_TOKEN": "kernel-token"}
HUB = {
    "JUPYTERHUB_SERVICE_URL": "http://:8890/user/ann/",
    "JUPYTERHUB_API_TOKEN": "hub-token",
}


def write_runtime(runtime: Path, pid: int, url: str, token: str) -> None:
    runtime.mkdir(parents=True, exist_ok=True)
    (runtime / f"jpserver-{pid}.json").write_text(json.dumps({"url": url, "token": token}))


@pytest.mark.parametrize(
    ("url", "base", "token"),
    [
        ("http://127.0.0.1:8888", "http://127.0.0.1:8888/", None),
        ("http://127.0.0.1:8888/?token=abc", "http://127.0.0.1:8888/", "abc"),
        ("https://hub.example/user/ann", "https://hub.example/user/ann/", None),
        ("ws://127.0.0.1:8888/base/iotcable/cable", "http://127.0.0.1:8888/base/", None),
        ("wss://hub.example/user/ann/iotcable/cable", "https://hub.example/user/ann/", None),
        ("http://:8888/user/ann/", "http://127.0.0.1:8888/user/ann/", None),
    ],
)
def test_normalize_url(url: str, base: str, token: str | None) -> None:
    assert normalize_url(url) == (base, token)


@pytest.mark.parametrize("url", ["127.0.0.1:8888", "ftp://host/", "http://", "localhost"])
def test_bad_urls_say_what_a_url_looks_like(url: str) -> None:
    with pytest.raises(ValueError, match="url must look like") as info:
        normalize_url(url)
    assert str(info.value) == (
        f"url must look like 'http://HOST:PORT/BASE/' (http, https, ws or wss), got {url!r}"
    )


def test_endpoint_urls_never_carry_the_token() -> None:
    endpoint = Endpoint("https://hub.example/user/ann/", "secret", "arguments")
    assert endpoint.websocket_url() == "wss://hub.example/user/ann/iotcable/cable"
    assert endpoint.websocket_url({"sid": "s1"}) == (
        "wss://hub.example/user/ann/iotcable/cable?sid=s1"
    )
    assert endpoint.api_url("channels") == "https://hub.example/user/ann/iotcable/api/channels"
    assert "secret" not in endpoint.display_url


def test_arguments_come_first(tmp_path: Path) -> None:
    found = discover("http://10.0.0.1:9999/", "t", environ={**IOT, **HUB}, runtime_dir=tmp_path)
    assert found == Endpoint("http://10.0.0.1:9999/", "t", "arguments")


def test_iotcable_variables_come_before_jupyterhub(tmp_path: Path) -> None:
    found = discover(environ={**IOT, **HUB}, runtime_dir=tmp_path)
    assert found == Endpoint(
        "http://127.0.0.1:8888/", "kernel-token", "IOTCABLE_URL / IOTCABLE_TOKEN"
    )


def test_jupyterhub_variables(tmp_path: Path) -> None:
    found = discover(environ=HUB, runtime_dir=tmp_path)
    assert found == Endpoint(
        "http://127.0.0.1:8890/user/ann/",
        "hub-token",
        "JUPYTERHUB_SERVICE_URL + JUPYTERHUB_API_TOKEN",
    )


def test_the_parent_servers_runtime_file_and_no_other(tmp_path: Path) -> None:
    write_runtime(tmp_path, 111, "http://127.0.0.1:8001/", "other-users-token")
    write_runtime(tmp_path, 222, "http://127.0.0.1:8002/base/", "parent-token")
    found = discover(environ={"JPY_PARENT_PID": "222"}, runtime_dir=tmp_path)
    assert found == Endpoint(
        "http://127.0.0.1:8002/base/", "parent-token", str(tmp_path / "jpserver-222.json")
    )


def test_a_token_argument_wins_over_the_one_found(tmp_path: Path) -> None:
    found = discover(token="mine", environ=IOT, runtime_dir=tmp_path)
    assert found.token == "mine"
    assert found.base_url == "http://127.0.0.1:8888/"


def test_nothing_found_lists_every_place_tried(tmp_path: Path) -> None:
    write_runtime(tmp_path, 111, "http://127.0.0.1:8001/", "other-users-token")
    environ = {"IOTCABLE_TOKEN": "orphan", "JUPYTERHUB_API_TOKEN": "x", "JPY_PARENT_PID": "4242"}
    with pytest.raises(ServerNotFound) as info:
        discover(environ=environ, runtime_dir=tmp_path)
    assert str(info.value) == "\n".join(
        [
            "could not find a Jupyter server to connect to. Tried, in this order:",
            "  - a URL argument: none given",
            "  - IOTCABLE_URL / IOTCABLE_TOKEN: IOTCABLE_TOKEN is set but IOTCABLE_URL is not",
            "  - JUPYTERHUB_SERVICE_URL + JUPYTERHUB_API_TOKEN: JUPYTERHUB_SERVICE_URL not set",
            "  - runtime file of the server that started this kernel: "
            f"{tmp_path / 'jpserver-4242.json'} does not exist",
            "Pass the server's URL and token yourself:",
            '    cable = jupyter_iotcable.connect("http://127.0.0.1:8888/", token="...")',
            "or set IOTCABLE_URL and IOTCABLE_TOKEN in the environment.",
        ]
    )


def test_nothing_found_outside_a_kernel(tmp_path: Path) -> None:
    with pytest.raises(ServerNotFound) as info:
        discover(environ={}, runtime_dir=tmp_path)
    lines = str(info.value).splitlines()
    assert lines[2:5] == [
        "  - IOTCABLE_URL / IOTCABLE_TOKEN: not set",
        "  - JUPYTERHUB_SERVICE_URL + JUPYTERHUB_API_TOKEN: JUPYTERHUB_SERVICE_URL and "
        "JUPYTERHUB_API_TOKEN not set",
        "  - runtime file of the server that started this kernel: JPY_PARENT_PID not set "
        "(this is not a kernel started by Jupyter)",
    ]


@pytest.mark.parametrize(
    ("content", "why"),
    [("{not json", "could not be read"), ('{"url": "http+unix://x"}', "has no http(s) 'url'")],
)
def test_unusable_runtime_files_are_reported(tmp_path: Path, content: str, why: str) -> None:
    (tmp_path / "jpserver-7.json").write_text(content)
    with pytest.raises(ServerNotFound) as info:
        discover(environ={"JPY_PARENT_PID": "7"}, runtime_dir=tmp_path)
    assert f"{tmp_path / 'jpserver-7.json'} {why}" in str(info.value)


def test_the_real_runtime_dir_is_used_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))
    write_runtime(tmp_path, 99, "http://127.0.0.1:8099/", "tok")
    assert discover(environ={"JPY_PARENT_PID": "99"}).base_url == "http://127.0.0.1:8099/"
