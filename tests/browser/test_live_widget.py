"""``sub.live()`` in JupyterLab: the LiveChart widget, drawn by the labextension.

A notebook subscribes in its kernel and shows ``sub.live()``; the chart fills with the
points a device publishes, and keeps filling while the next cell keeps the kernel's main
thread busy (the live view's own thread sends the points).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page

from tests.brokers import Mosquitto
from tests.browser.conftest import OpenLab
from tests.browser.lab import wait_until
from tests.browser.test_lab_extension import Publisher
from tests.servers import LiveServer

CELLS = [
    "import time\n"
    "import jupyter_iotcable as iot\n"
    "cable = iot.connect()\n"
    'sub = cable.subscribe("telemetry")\n'
    "sub.live()",
    "time.sleep(8)",
]


@pytest.fixture
def device(mosquitto: Mosquitto, live_server: LiveServer) -> Iterator[Publisher]:
    publisher = Publisher(mosquitto, "plant/lyon/pump1/env")
    try:
        yield publisher
    finally:
        publisher.stop()


def put_notebook(server: LiveServer, path: str, sources: list[str]) -> None:
    """Write a notebook through the contents API, as the server's owner."""
    cells: list[dict[str, Any]] = [
        {"cell_type": "code", "source": src, "metadata": {}, "outputs": [], "execution_count": None}
        for src in sources
    ]
    notebook = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "cells": [dict(cell, id=f"cell{i}") for i, cell in enumerate(cells)],
    }
    body = json.dumps({"type": "notebook", "format": "json", "content": notebook}).encode()
    req = urllib.request.Request(
        f"{server.url}api/contents/{path}",
        data=body,
        method="PUT",
        headers={"Authorization": f"token {server.token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status in (200, 201)


def points_shown(page: Page) -> int:
    chart = page.locator(".jp-IoTCable-livechart")
    if chart.count() == 0:
        return 0
    text = chart.first.get_attribute("data-points")
    return int(text) if text else 0


def prompt(page: Page, index: int) -> str:
    return page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-InputPrompt").inner_text()


DIALOGS: list[str] = []  # the texts of the dialogs run_cell accepted, for a failure message


def accept_dialog(page: Page) -> None:
    """Accept a dialog that Lab may show while the kernel starts (e.g. a kernel choice)."""
    dialog = page.locator(".jp-Dialog")
    if dialog.count() and dialog.first.is_visible():
        DIALOGS.append(dialog.first.inner_text())
        dialog.first.locator("button.jp-mod-accept").first.click()


def run_cell(page: Page, index: int) -> None:
    """Select the cell (command mode) and press Shift+Enter, as a user would; again if the
    prompt does not change (a keypress while the kernel connects can be lost)."""
    for _ in range(4):
        accept_dialog(page)
        try:
            prompt_of = page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-InputPrompt")
            prompt_of.click(timeout=5_000)
        except PlaywrightError:
            continue
        page.keyboard.press("Escape")
        page.keyboard.press("Shift+Enter")
        try:
            wait_until(lambda: prompt(page, index) != "[ ]:", timeout=8, what="the cell to run")
            return
        except AssertionError:
            continue
    prompts = page.locator(".jp-InputPrompt").all_inner_texts()
    raise AssertionError(f"cell {index} never ran: {prompts}; dialogs: {DIALOGS}")


@pytest.mark.timeout(180)
def test_the_live_chart_fills_while_the_kernel_is_busy(
    live_server: LiveServer, open_lab: OpenLab, device: Publisher
) -> None:
    put_notebook(live_server, "live.ipynb", CELLS)
    page = open_lab(live_server)
    page.goto(f"{live_server.url}lab/tree/live.ipynb?token={live_server.token}")
    page.locator(".jp-Notebook .jp-Cell").first.wait_for()
    # Wait for the kernel before running, so that Run All is not lost on a slow start.
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=60_000)
    run_cell(page, 0)
    try:
        wait_until(lambda: points_shown(page) > 0, timeout=60, what="the live chart's first points")
    except AssertionError:
        outputs = page.locator(".jp-OutputArea").all_inner_texts()
        raise AssertionError(f"no points; outputs: {outputs}") from None
    # The sleep cell keeps the kernel's main thread busy: the chart must keep growing.
    run_cell(page, 1)
    wait_until(lambda: "[*]" in prompt(page, 1), timeout=20, what="the sleep cell running")
    before = points_shown(page)
    wait_until(
        lambda: points_shown(page) > before, timeout=6, what="more points while the kernel sleeps"
    )
    assert "[*]" in prompt(page, 1), "the sleep cell ended before the chart moved"
    chart = page.locator(".jp-IoTCable-livechart").first
    assert "telemetry" in chart.locator(".jp-IoTCable-livechart-status").inner_text()
    assert "plant/lyon/pump1/env" in chart.locator(".jp-IoTCable-livechart-legend").inner_text()
    assert chart.locator("polyline").count() == 1
    wait_until(
        lambda: chart.locator(".jp-IoTCable-livechart-table tbody tr").count() == 1,
        timeout=10,
        what="the latest table's row",
    )
