"""``sub.live()`` in JupyterLab 4 and in Notebook 7: the anywidget chart through its life.

One mosquitto, one Jupyter server (Lab and Notebook 7 with the extension) and one
Chromium serve the module (module-scoped: the tests only read from them). Devices publish
from the start, so a subscription with ``history`` has something to backfill. Per
frontend, one test walks a user's path and checks each step on the page:

1. the first render draws the history across the chart (read from the canvas pixels);
2. it keeps moving while the next cell keeps the kernel busy;
3. 200 devices: "12 of 200 series shown", and the chooser reaches every one;
4. closing and reopening the notebook, then reloading the page, draw the full window
   again (the views ask the kernel for it) and the chart keeps moving;
5. after a kernel restart the old chart's status no longer says live.

Screenshots of each step go to ``build/screenshots/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import threading
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, sync_playwright

from tests.brokers import Mosquitto
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, LAB_READY_TIMEOUT_MS
from tests.browser.lab import wait_until
from tests.servers import LiveServer

SHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
DEVICES = 6
FLEET = 200

CELLS = [
    "import time\n"
    "import jupyter_iotcable as iot\n"
    "cable = iot.connect()\n"
    'sub = cable.subscribe("telemetry", topic="plant/lyon/+/env", history="5min")\n'
    "sub.live()",
    'fleet = cable.subscribe("telemetry", topic="plant/fleet/+/env", history="5min")\nfleet.live()',
    "time.sleep(6)",
]


class Plant:
    """Devices publishing on their own thread: ``DEVICES`` pumps at 4 Hz with a status,
    and ``FLEET`` devices once a second (paho, QoS 0)."""

    def __init__(self, mosquitto: Mosquitto) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.started = time.time()
        self._stop = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self._client.connect("127.0.0.1", mosquitto.port)
        self._client.loop_start()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        tick = 0
        while not self._stop.wait(0.25):
            tick += 1
            for n in range(DEVICES):
                payload = {
                    "temperature": 20 + n + (tick % 20) / 10,
                    "humidity": 40.0 + n,
                    "status": "fault" if n == 2 else "ok",
                    "seq": tick,
                }
                self._client.publish(f"plant/lyon/pump{n}/env", json.dumps(payload))
            if tick % 4 == 0:
                for n in range(FLEET):
                    payload = {"temperature": 10 + n / 10 + (tick % 8) / 10}
                    self._client.publish(f"plant/fleet/dev{n:03d}/env", json.dumps(payload))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._client.loop_stop()
        self._client.disconnect()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Plant]]:
    """A broker, a server and publishing devices, shared by the module's tests."""
    workdir = tmp_path_factory.mktemp("live-widget")
    broker = Mosquitto(workdir / "mosquitto")
    broker.start()
    server = LiveServer(workdir / "server", broker)
    server.start()
    plant = Plant(broker)
    try:
        yield server, plant
    finally:
        plant.stop()
        server.stop()
        broker.kill()


@pytest.fixture
def jp_asyncio_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """pytest-jupyter's autouse loop, kept apart from the module's Playwright: its own
    fixture takes the running loop (Playwright's, here) and closes it after each test."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def put_notebook(server: LiveServer, path: str, sources: list[str]) -> None:
    """Write a notebook through the contents API, as the server's owner."""
    import urllib.request

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


def saved_with_chart(server: LiveServer, name: str) -> bool:
    """Does the saved notebook hold the chart's view in its first cell's outputs?"""
    try:
        notebook = server.get(f"api/contents/{name}")["content"]
    except urllib.error.HTTPError:  # caught halfway through the save: look again
        return False
    outputs = notebook["cells"][0].get("outputs", [])
    return any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)


def prompt(page: Page, index: int) -> str:
    return page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-InputPrompt").inner_text()


def dismiss_popups(page: Page) -> None:
    """Accept a dialog (e.g. a kernel choice) and close the news toast, as a user would."""
    dialog = page.locator(".jp-Dialog")
    if dialog.count() and dialog.first.is_visible():
        dialog.first.locator("button.jp-mod-accept").first.click()
    toast = page.locator(".Toastify__toast button", has_text="No")
    if toast.count() and toast.first.is_visible():
        toast.first.click()


def run_cell(page: Page, index: int) -> None:
    """Select the cell (command mode) and press Shift+Enter; again if the prompt does not
    change (a keypress while the kernel connects can be lost)."""
    for _ in range(4):
        dismiss_popups(page)
        page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-InputPrompt").click()
        page.keyboard.press("Escape")
        page.keyboard.press("Shift+Enter")
        try:
            wait_until(lambda: prompt(page, index) != "[ ]:", timeout=8, what="the cell to run")
            return
        except AssertionError:
            continue
    raise AssertionError(
        f"cell {index} never ran: {page.locator('.jp-InputPrompt').all_inner_texts()}"
    )


def points_shown(page: Page) -> int:
    """Points the first live chart on the page holds (0 before it renders)."""
    charts = page.locator(".iotcable-live")
    if charts.count() == 0:
        return 0
    return int(charts.first.get_attribute("data-points") or 0)


def chart(page: Page, index: int) -> Locator:
    return page.locator(".iotcable-live").nth(index)


def facts(root: Locator) -> dict[str, str]:
    data: dict[str, str] = root.evaluate("e => ({...e.dataset})")
    return data


def ink_by_tenth(root: Locator) -> list[int]:
    """Pixels of saturated color (the series' lines, not axes or grid) in each tenth of the
    first panel's plotting area, read from its canvas."""
    bins: list[int] = root.evaluate(
        """root => {
            const canvas = root.querySelector('canvas');
            const [left, top, width, height] = root.dataset.plotBox.split(',').map(Number);
            const pixels = canvas.getContext('2d').getImageData(left, top, width, height).data;
            const bins = new Array(10).fill(0);
            for (let y = 0; y < height; y++) {
                for (let x = 0; x < width; x++) {
                    const i = 4 * (y * width + x);
                    const r = pixels[i], g = pixels[i + 1], b = pixels[i + 2], a = pixels[i + 3];
                    if (a > 100 && Math.max(r, g, b) - Math.min(r, g, b) > 70) {
                        bins[Math.min(9, Math.floor((10 * x) / width))]++;
                    }
                }
            }
            return bins;
        }"""
    )
    return bins


def shot(page: Page, frontend: str, step: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    dismiss_popups(page)
    page.screenshot(path=str(SHOTS / f"live_widget-{frontend}-{step}.png"), full_page=True)


def has_whole_window(root: Locator, points: int) -> bool:
    """The view got the kernel's whole window, with at least ``points`` points."""
    data = facts(root)
    return data.get("window") == "whole" and int(data.get("points", "0")) >= points


def wait_live(root: Locator, what: str, timeout: float = 60) -> None:
    wait_until(lambda: facts(root).get("state") == "live", timeout=timeout, what=what)


def moves(root: Locator, what: str) -> None:
    """The chart's right edge advances: it keeps following the readings."""
    before = float(facts(root)["x1"])
    wait_until(lambda: float(facts(root)["x1"]) > before + 1, timeout=15, what=what)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("frontend", ["lab", "notebook"])
def test_the_live_chart_through_its_life(
    stack: tuple[LiveServer, Plant], browser: Browser, frontend: str
) -> None:
    server, plant = stack
    name = f"live-{frontend}.ipynb"
    put_notebook(server, name, CELLS)
    context = browser.new_context(viewport={"width": 1300, "height": 1100})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        open_notebook(page, server, frontend, name)
        try:
            _walk(page, server, plant, frontend, name)
        except BaseException:
            shot(page, frontend, "failed")
            raise
        assert not [e for e in errors if "iotcable" in e.lower() or "uplot" in e.lower()], errors
    finally:
        context.close()


def open_notebook(page: Page, server: LiveServer, frontend: str, name: str) -> None:
    where = "lab/tree" if frontend == "lab" else "notebooks"
    url = f"{server.url}{where}/{name}?token={server.token}"
    page.goto(url, timeout=LAB_READY_TIMEOUT_MS)
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=LAB_READY_TIMEOUT_MS)
    wait_until(
        lambda: page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").count() > 0,
        timeout=90,
        what="the kernel to be idle",
    )


def _walk(page: Page, server: LiveServer, plant: Plant, frontend: str, name: str) -> None:
    # 1. The first render draws the backfilled history across the chart.
    run_cell(page, 0)
    root = chart(page, 0)
    root.wait_for(timeout=60_000)
    wait_live(root, "the chart to go live")
    wait_until(lambda: facts(root).get("window") == "whole", timeout=30, what="the window")
    first = facts(root)
    assert float(first["x0"]) <= plant.started + 2, (first, plant.started)
    assert first["shown"] == str(DEVICES) and first["series"] == str(DEVICES)
    ink = ink_by_tenth(root)
    assert all(count > 0 for count in ink[:2]), f"no history drawn on the left: {ink}"
    assert sum(ink) > 500, ink
    status = root.locator(".iotcable-live-status").inner_text()
    assert status.startswith("live"), status
    legend = root.locator(".iotcable-live-legend").inner_text()
    assert "pump0" in legend and "plant/lyon" not in legend, "series named by the device"
    table = root.locator(".iotcable-latest tbody tr")
    wait_until(lambda: table.count() == DEVICES, timeout=15, what="one table row per device")
    assert root.locator(".iotcable-badge.is-bad", has_text="fault").count() == 1
    # Hover: a crosshair and each series' value with its unit.
    box = root.locator(".u-over").first.bounding_box()
    assert box is not None
    # A few places: on a loaded machine the plant may have stalled for a second or two, and
    # the tooltip rightly says "no reading here" over such a stretch.
    tooltip = root.locator(".iotcable-live-tooltip").first
    seen = []
    for across in (0.6, 0.75, 0.45, 0.9, 0.3):
        page.mouse.move(box["x"] + box["width"] * across, box["y"] + box["height"] / 2)
        tooltip.wait_for(state="visible")
        with contextlib.suppress(AssertionError):
            wait_until(lambda: "pump0" in tooltip.inner_text(), timeout=1, what="a reading")
        seen.append(tooltip.inner_text())
        if "pump0" in seen[-1]:
            break
    assert "pump0" in seen[-1] and "°C" in seen[-1], seen
    shot(page, frontend, "1-first-render")
    # Legend toggle; pause, then zoom by dragging; resume.
    root.locator(".iotcable-live-item", has_text="pump1").click()
    assert "is-hidden" in (
        root.locator(".iotcable-live-item", has_text="pump1").get_attribute("class") or ""
    )
    root.locator(".iotcable-live-pause").click()
    # The click sets the status itself (it once waited for the next animation frame, which
    # a busy page held back past the test's read: CI saw 'live' after the click).
    wait_until(lambda: facts(root).get("paused") == "yes", timeout=10, what="the pause")
    status = root.locator(".iotcable-live-status").inner_text()
    assert status.startswith("paused (readings keep arriving)"), status
    assert root.locator(".iotcable-live-pause").inner_text() == "resume"
    span = float(facts(root)["x1"]) - float(facts(root)["x0"])
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + 20)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + 20, steps=5)
    page.mouse.up()
    wait_until(
        lambda: float(facts(root)["x1"]) - float(facts(root)["x0"]) < 0.5 * span,
        timeout=10,
        what="the drag to zoom in",
    )
    root.locator(".iotcable-live-pause").click()  # resume
    wait_until(lambda: facts(root).get("paused") == "no", timeout=10, what="the resume")
    assert root.locator(".iotcable-live-status").inner_text().startswith("live"), status
    root.locator(".iotcable-live-item", has_text="pump1").click()
    wait_live(root, "the chart to follow again")

    # 2. 200 devices: a dozen drawn, and every one reachable from the chooser.
    run_cell(page, 1)
    fleet = chart(page, 1)
    fleet.wait_for(timeout=60_000)
    wait_until(lambda: facts(fleet).get("series") == str(FLEET), timeout=60, what="200 series")
    count = fleet.locator(".iotcable-live-shown")
    assert count.inner_text().startswith(f"12 of {FLEET} series shown")
    count.click()
    fleet.locator(".iotcable-live-chooserbar button", has_text="show only these").click()
    wait_until(lambda: facts(fleet).get("shown") == str(FLEET), timeout=15, what="all shown")
    assert count.inner_text().startswith(f"{FLEET} of {FLEET} series shown")
    assert fleet.locator(".iotcable-live-legend .iotcable-live-item").count() == FLEET
    assert fleet.locator(".iotcable-live-item", has_text="dev199").count() == 1
    fleet.locator(".iotcable-live-filter").fill("dev19")
    fleet.locator(".iotcable-live-chooserbar button", has_text="show only these").click()
    wait_until(lambda: facts(fleet).get("shown") == "10", timeout=15, what="dev190 to dev199")
    assert count.inner_text().startswith(f"10 of {FLEET} series shown")
    shot(page, frontend, "2-200-devices")

    # 3. It keeps moving while the kernel's main thread is busy.
    run_cell(page, 2)
    wait_until(lambda: "[*]" in prompt(page, 2), timeout=20, what="the sleep cell running")
    moves(root, "the chart to move while a cell computes")
    assert "[*]" in prompt(page, 2), "the sleep cell ended before the chart moved"
    wait_until(lambda: "[*]" not in prompt(page, 2), timeout=30, what="the sleep to end")
    before = facts(root)

    # 4. Close and reopen the notebook, then reload the page: the full window again.
    if frontend == "lab":
        page.locator(
            ".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current .lm-TabBar-tabCloseIcon"
        ).click()
        save = page.locator(".jp-Dialog").get_by_role("button", name="Save", exact=True)
        save.wait_for(timeout=10_000)  # the outputs changed: Lab asks whether to save them
        save.click()
        wait_until(lambda: page.locator(".iotcable-live").count() == 0, timeout=15, what="closed")
        page.locator(".jp-DirListing-item", has_text=name).first.dblclick()
    else:
        page.keyboard.press("Escape")
        page.keyboard.press("Control+s")  # save (a closed notebook reopens as saved)
        wait_until(lambda: saved_with_chart(server, name), timeout=20, what="the save")
        page.goto(f"{server.url}tree?token={server.token}")
        page.locator(".jp-DirListing").first.wait_for(timeout=LAB_READY_TIMEOUT_MS)
        page.goto(f"{server.url}notebooks/{name}?token={server.token}")
    for step in ("reopened", "reloaded"):
        if step == "reloaded":
            page.reload()
        root = chart(page, 0)
        root.wait_for(timeout=60_000)
        wait_live(root, f"the {step} chart to go live")
        try:
            wait_until(
                functools.partial(has_whole_window, root, int(before["points"])),
                timeout=30,
                what=f"the {step} chart to hold the whole window ({before['points']} points)",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {facts(root)}") from None
        again = facts(root)
        assert abs(float(again["x0"]) - float(before["x0"])) < 30, (step, again, before)
        ink = ink_by_tenth(root)
        assert all(count > 0 for count in ink[:2]), f"{step}: the window's start not drawn: {ink}"
        moves(root, f"the {step} chart to keep moving")
        shot(page, frontend, f"3-{step}")
        before = facts(root)

    # 5. A kernel restart: the old chart no longer claims to be live.
    page.locator(".lm-MenuBar-itemLabel", has_text="Kernel").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Restart Kernel").first.click()
    page.locator(".jp-Dialog button.jp-mod-accept").first.click()
    wait_until(
        lambda: facts(root).get("state") in ("disconnected", "stale"), timeout=30, what="not live"
    )
    status = root.locator(".iotcable-live-status").inner_text()
    assert "live" not in status.split("·")[0], status
    shot(page, frontend, "4-kernel-restarted")
