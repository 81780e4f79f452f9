"""Generate docs/configuration.md from the traitlets of IoTCableApp and the channel keys.

``python -m jupyter_iotcable.server.configdoc > docs/configuration.md``; a test checks the
file is up to date, so the reference never drifts from the code.
"""

from __future__ import annotations

from .app import IoTCableApp
from .config import CHANNEL_KEYS

HEADER = """# Configuration reference

Generated from the code by `python -m jupyter_iotcable.server.configdoc`; do not edit.

Set these in `jupyter_server_config.py` (or pass them as `--IoTCableApp.NAME=VALUE`):

```python
c.IoTCableApp.broker_url = "mqtts://broker.plant:8883"   # unset: embedded broker
c.IoTCableApp.broker_username = "bridge"
c.IoTCableApp.broker_password_env = "IOTCABLE_BROKER_PASSWORD"
c.IoTCableApp.channels = {
    "telemetry": {
        "topics": ["plant/+/+/env"],
        "columns": "plant/{site}/{device}/env",
        "format": "json",
        "read": ["*"],
    },
    "commands": {
        "topics": ["plant/+/+/cmd"],
        "read": ["group:operators"],
        "write": ["group:operators"],
    },
}
```

## `c.IoTCableApp` settings

| setting | type | default | what it does |
|---|---|---|---|
"""


def render() -> str:
    lines = [HEADER.rstrip("\n")]
    traits = IoTCableApp.class_own_traits(config=True)
    for name in sorted(traits):
        trait = traits[name]
        default = trait.default_value_repr()
        kind = type(trait).__name__
        helptext = " ".join(str(trait.help).split()).replace("|", "\\|")
        lines.append(f"| `{name}` | {kind} | `{default}` | {helptext} |")
    lines += [
        "",
        "## Channel settings",
        "",
        "Each entry of `c.IoTCableApp.channels` is a dict with these keys:",
        "",
        "| key | meaning |",
        "|---|---|",
    ]
    for key, meaning in CHANNEL_KEYS.items():
        lines.append(f"| `{key}` | {meaning.replace('|', chr(92) + '|')} |")
    lines += [
        "",
        "Principals: `*` (every authenticated user), `user:NAME`, `group:NAME` (JupyterHub",
        "groups, or `c.IoTCableApp.groups`). Every action is also checked with the server's",
        "Authorizer: resource `iotcable`, actions `read` and `write`, whatever the credential",
        "(the kernel token exported as `IOTCABLE_TOKEN` acts as the server's owner, with the",
        "owner's JupyterHub groups and scopes under a hub).",
        "",
        "## Metrics",
        "",
        "The server's `/metrics` (Jupyter's Prometheus endpoint, open to every authenticated",
        "user of the server) carries iotcable's totals only, without channel names:",
        "`iotcable_messages_in_total`, `iotcable_readings_out_total`,",
        "`iotcable_readings_conflated_total`, `iotcable_continuity_gaps_total`, publishes by",
        "outcome, connections, the broker link and the bridge's back-pressure.",
        "",
        "`GET {base_url}iotcable/api/metrics` serves the same counters per channel (label",
        "`channel`), in Prometheus' text format, labelled with **only the channels the caller",
        "may read**: the Authorizer's `read` on `iotcable` and the channel's `read`",
        "principals, the rule `status` and `channels` follow. A user who may not read a",
        "channel learns neither its name nor its traffic there; a user the Authorizer keeps",
        "out of `iotcable` gets 403. To scrape every channel, give the scraper a token of a",
        "user who may read them all.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")
