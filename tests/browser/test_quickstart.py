"""The demo's quickstart as a new user runs it: JupyterLab in Chromium, the notebook opened
from the demo's own Lab, each cell run with Shift+Enter, what each one shows read from the
page. The screenshots the test takes are saved in its temporary directory
(``screenshots/``), one per step worth looking at.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import BrowserContext, Locator, Page

from tests.browser.lab import wait_until
from tests.browser.test_live_widget import points_shown, prompt, run_cell

if TYPE_CHECKING:
    from tests.demos import RunningDemo

FIVE_MINUTES = 300.0
"""The history the quickstart asks for: a demo younger than this has a gap to show."""
CELL_TIMEOUT = 60.0
"""Seconds a cell may run (the slowest waits up to 20 s for readings, on a loaded machine)."""
FINISHED = re.compile(r"\[\d+\]:")


def cells(page: Page) -> Locator:
    return page.locator(".jp-Notebook .jp-Cell")


def source(cell: Locator) -> str:
    return cell.locator(".jp-InputArea-editor").inner_text()


def outputs_of(cell: Locator) -> str:
    """What the cell's outputs show (without their ``[n]:`` prompts)."""
    return "\n".join(cell.locator(".jp-OutputArea-output").all_inner_texts())


def errors_in(page: Page) -> list[str]:
    """Tracebacks and stderr lines shown anywhere in the notebook."""
    shown = page.locator(
        '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
    ).all_inner_texts()
    return [text for text in shown if text.strip()]


def kernel_ready(demo: RunningDemo, page: Page) -> bool:
    """The notebook's kernel is idle, as the server and the page both say (the page's
    indicator also says idle before the kernel has started)."""
    sessions = demo.api("GET", "api/sessions")
    states = [
        s["kernel"]["execution_state"] for s in sessions if s["path"].endswith("quickstart.ipynb")
    ]
    indicator = page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")
    return states == ["idle"] and indicator.count() == 1


def dirty(page: Page) -> bool:
    """Whether Lab marks the notebook's tab as having unsaved changes."""
    return page.locator(".lm-TabBar-tab.jp-mod-dirty").count() > 0


def slug(code: str) -> str:
    """A file name from a cell's first line: ``sub.frame.tail()`` -> ``sub-frame-tail``."""
    return re.sub(r"[^a-z0-9]+", "-", code.split("\n", 1)[0].lower()).strip("-")[:40]


def dismiss_news_prompt(page: Page) -> None:
    """Lab's own first-run question ("get notified about official Jupyter news?") covers a
    corner of the notebook: answer No, as a user would."""
    toast = page.locator(".Toastify__toast", has_text="Jupyter news")
    if toast.count():
        toast.get_by_role("button", name="No", exact=True).click()
        toast.wait_for(state="detached")


class Shots:
    """Numbered screenshots of the page or of one cell, in the test's directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.taken: list[Path] = []

    def take(self, target: Page | Locator, name: str) -> None:
        path = self.directory / f"{len(self.taken) + 1:02d}-{name}.png"
        target.screenshot(path=str(path))
        self.taken.append(path)


@pytest.mark.timeout(420)
def test_the_quickstart_cell_by_cell_in_jupyterlab(
    shared_demo: RunningDemo, browser_context: BrowserContext, tmp_path: Path
) -> None:
    demo = shared_demo
    shots = Shots(tmp_path / "screenshots")
    page = browser_context.new_page()
    page.set_default_timeout(30_000)
    # ?reset: a fresh workspace, as on a first visit.
    page.goto(f"{demo.url}lab/tree/quickstart.ipynb?reset&token={demo.token}", timeout=90_000)
    cells(page).first.wait_for(timeout=90_000)
    wait_until(lambda: kernel_ready(demo, page), timeout=90, what="the notebook's kernel")

    # It opens clean: once the kernel is up, and Lab has set the kernel's spec and
    # language in the notebook's metadata, nothing is marked unsaved. (While Lab loads the
    # file, before the kernel starts, its tab shows unsaved for a moment whatever the file.)
    for _ in range(10):
        assert not dirty(page), "the quickstart shows unsaved changes once its kernel is up"
        time.sleep(0.3)
    dismiss_news_prompt(page)
    shots.take(page, "opened")

    count = cells(page).count()
    code = [
        i
        for i in range(count)
        if "jp-CodeCell" in (cells(page).nth(i).get_attribute("class") or "")
    ]
    assert len(code) >= 10
    shown: dict[str, str] = {}
    images: dict[str, int] = {}
    started_at: dict[str, float] = {}
    for index in code:
        cell = cells(page).nth(index)
        text = source(cell)
        started_at[text] = time.monotonic() - demo.ready_at
        run_cell(page, index)
        wait_until(
            lambda index=index: FINISHED.fullmatch(prompt(page, index).strip()) is not None,  # type: ignore[misc]
            timeout=CELL_TIMEOUT,
            what=f"cell {index} to finish: {text[:60]!r}",
        )
        assert errors_in(page) == [], f"cell {index} ({text[:60]!r}) showed an error"
        shown[text] = outputs_of(cell)
        images[text] = cell.locator('.jp-OutputArea-output[data-mime-type="image/png"]').count()
        # Each cell with what it shows (Lab renders only the cells near the view: now).
        shots.take(cell, slug(text))

    def output(start: str) -> str:
        (found,) = [text for source_text, text in shown.items() if source_text.startswith(start)]
        return found

    # What the user sees, step by step.
    assert "Cable" in output("import time")
    channels = output("cable.channels()")
    assert "telemetry" in channels and "commands" in channels
    assert int(output('sub = cable.subscribe("telemetry"')) > 0  # len(sub): the backfill
    gaps = output("for gap in sub.gaps")
    age = started_at[next(s for s in shown if s.startswith('sub = cable.subscribe("telemetry"'))]
    if age < FIVE_MINUTES - 20:  # the history asked for reaches back before the server
        assert "are unknown: the server did not keep them" in gaps, gaps
    elif age > FIVE_MINUTES + 20:
        assert gaps.strip() == "no gaps: the server holds the whole five minutes"
    assert re.search(r"\d+ readings so far", output("deadline = time.monotonic() + 20"))
    assert "temperature" in output("sub.frame.tail()")
    assert "reported setpoint" in output("deadline = time.monotonic() + 15")
    assert "faulted device(s)" in output("faulted = ")
    (plot,) = [text for text in images if text.startswith("one = sub.frame")]
    assert images[plot] == 1  # matplotlib's chart of the commanded device
    assert output("%load_ext jupyter_iotcable").startswith("iotcable: using the open `cable`")
    tail = output("%iot tail telemetry")
    assert "temperature" in tail and "lyon" in tail
    assert re.fullmatch(r"published to plant/lyon/\w+/cmd\s*", output("%iot publish"))

    # The live chart, last: it fills while the user looks at it.
    chart = page.locator(".iotcable-live").first
    wait_until(lambda: points_shown(page) > 0, timeout=30, what="the live chart's points")
    before = points_shown(page)
    wait_until(lambda: points_shown(page) > before, timeout=15, what="the chart to keep moving")
    chart.scroll_into_view_if_needed()
    shots.take(cells(page).nth(code[-1]), "live-a-moment-later")

    # What the new user tried next: the whole frame, plotted. The device's clock is
    # the index, not a float column of epoch seconds that squashes everything to 0.
    add_cell_below(page, PLOT_ALL)
    last = cells(page).count() - 1
    run_cell(page, last)
    wait_until(lambda: FINISHED.fullmatch(prompt(page, last).strip()) is not None, timeout=60)
    drawn = outputs_of(cells(page).nth(last))
    largest = float(re.search(r"largest value drawn: (\S+)", drawn).group(1))  # type: ignore[union-attr]
    assert 0 < largest < 10_000, drawn  # hPa, °C, %, counts: not 1.8e9 seconds
    assert cells(page).nth(last).locator('[data-mime-type="image/png"]').count() == 1
    shots.take(cells(page).nth(last), "sub-frame-plot")
    assert not errors_in(page)


PLOT_ALL = (
    "ax = sub.frame.plot(figsize=(10, 4)); "
    'print("largest value drawn:", max(abs(float(y)) for line in ax.get_lines() '
    "for y in line.get_ydata()))"
)


def add_cell_below(page: Page, code: str) -> None:
    """Below the selected cell, a new code cell holding ``code`` (typed as one paste: no
    editor auto-closing of brackets)."""
    page.keyboard.press("Escape")
    page.keyboard.press("b")
    page.keyboard.press("Enter")
    page.keyboard.insert_text(code)
    page.keyboard.press("Escape")
