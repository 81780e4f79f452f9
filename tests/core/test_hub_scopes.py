"""Custom scopes for channels, and the ``scope:`` principal (pure; the real hub is in tests/hub)."""

from __future__ import annotations

import pytest

from jupyter_iotcable.hubservice.scopes import (
    ScopeNameError,
    custom_scopes,
    granted,
    oauth_client_allowed_scopes,
    scope_for,
    server_token_scopes,
)
from jupyter_iotcable.server.auth import Identity, allowed, identity_of


def test_scope_names_and_the_hub_definitions() -> None:
    assert scope_for("read", "telemetry") == "custom:iotcable:read:telemetry"
    assert custom_scopes(["commands", "Bad.Name"]) == {
        "custom:iotcable:read:commands": {"description": "Read the iotcable channel 'commands'"},
        "custom:iotcable:write:commands": {
            "description": "Publish to the iotcable channel 'commands'",
            "subscopes": ["custom:iotcable:read:commands"],
        },
    }
    assert oauth_client_allowed_scopes(["b", "a"]) == [
        "custom:iotcable:read:a",
        "custom:iotcable:write:a",
        "custom:iotcable:read:b",
        "custom:iotcable:write:b",
    ]
    token_scopes = server_token_scopes("iotcable", ["t"])
    assert "access:services!service=iotcable" in token_scopes
    assert "users:activity!user" in token_scopes  # the hub needs it for activity


@pytest.mark.parametrize("name", ["Telemetry", "a.b", "", "x y", "é"])
def test_a_channel_name_jupyterhub_refuses_says_why(name: str) -> None:
    with pytest.raises(ScopeNameError, match="cannot be gated by a JupyterHub custom scope"):
        scope_for("read", name)
    assert not granted([f"custom:iotcable:read:{name}"], "read", name)


def test_granted_write_implies_read_not_the_reverse() -> None:
    assert granted(["custom:iotcable:write:c"], "read", "c")
    assert granted(["custom:iotcable:write:c"], "write", "c")
    assert not granted(["custom:iotcable:read:c"], "write", "c")
    assert not granted(["custom:iotcable:read:cc"], "read", "c")


class HubUser:
    def __init__(self, model: dict[str, object]) -> None:
        self.username = str(model["name"])
        self.hub_user = model


def test_scope_principals_use_the_requests_own_scopes() -> None:
    user = HubUser({"name": "bob", "groups": [], "scopes": ["custom:iotcable:write:commands"]})
    who = identity_of(user, owner="svc", under_hub=True, configured_groups={})
    assert who == Identity("bob", frozenset(), False, frozenset({"custom:iotcable:write:commands"}))
    assert allowed(["group:operators", "scope:custom:iotcable:write:commands"], who)
    assert not allowed(["scope:custom:iotcable:write:telemetry"], who)
    # A kernel-token request stands for the owner with another credential's model: its
    # scopes do not count.
    kernel = identity_of(
        user, owner="bob", under_hub=True, configured_groups={}, via_kernel_token=True
    )
    assert kernel.scopes == frozenset()
    assert not allowed(["scope:custom:iotcable:write:commands"], kernel)
