"""``sub.live()``: a live chart and table of a subscription, as an anywidget.

``chart.py`` has the widget and the thread that feeds it, ``lines.py`` the chart's data in
the kernel, ``downsample.py`` the min/max reduction, ``naming.py`` how fields are chosen
and series named. The view is ``labextension/widget/`` (TypeScript, uPlot), bundled into
``jupyter_iotcable/static/livechart.js`` at build time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .chart import OPTIONS, LiveChart, LiveView

if TYPE_CHECKING:
    from ..client.subscription import Subscription


def live_view(sub: Subscription, **options: Any) -> LiveChart:
    """A new ``LiveChart`` following ``sub`` (options: see ``Subscription.live``)."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise TypeError(
            f"sub.live() got unknown option(s) {unknown}; it takes {', '.join(OPTIONS)}"
        )
    return LiveView(sub, **options).widget


__all__ = ["LiveChart", "LiveView", "live_view"]
