"""Who a request is, for the channel principals: owner, hub users, the kernel token."""

from __future__ import annotations

from typing import Any

from jupyter_server.auth import User

from jupyter_iotcable.server.auth import (
    HubOwner,
    Identity,
    allowed,
    identity_of,
    kernel_token_user,
)

ANN_MODEL = {
    "kind": "user",
    "name": "ann",
    "groups": ["operators", "lyon"],
    "scopes": ["access:servers!server=ann/", "read:users:groups!user=ann"],
}


class HubUser(User):
    """What JupyterHub's identity provider hands the handlers: a User with ``hub_user``."""

    def __init__(self, model: dict[str, Any]) -> None:
        super().__init__(username=model["name"])
        self.hub_user = model


def test_kernel_token_under_a_hub_has_the_owners_hub_groups() -> None:
    owner = HubOwner("ann")
    assert owner.learn(ANN_MODEL)
    user = kernel_token_user("ann", owner)
    # JupyterHub's Authorizer reads the scopes from here.
    assert getattr(user, "hub_user", None) == ANN_MODEL
    who = identity_of(
        user, owner="ann", under_hub=True, configured_groups={}, via_kernel_token=True
    )
    assert who == Identity("ann", frozenset({"operators", "lyon"}), via_kernel_token=True)
    assert allowed(["group:operators"], who)
    assert not allowed(["group:admins"], who)


def test_kernel_token_before_the_owner_model_is_known_has_no_hub_groups() -> None:
    user = kernel_token_user("ann", HubOwner("ann"))
    assert getattr(user, "hub_user", None) == {"name": "ann", "groups": [], "scopes": []}
    who = identity_of(
        user,
        owner="ann",
        under_hub=True,
        configured_groups={"local": ["ann"]},
        via_kernel_token=True,
    )
    assert who.groups == frozenset({"local"})


def test_kernel_token_without_a_hub_carries_no_hub_model() -> None:
    user = kernel_token_user("ann", None)
    assert not hasattr(user, "hub_user")
    who = identity_of(
        user, owner="ann", under_hub=False, configured_groups={}, via_kernel_token=True
    )
    assert who == Identity("ann", frozenset(), via_kernel_token=True)


def test_hub_users_get_their_own_name_and_groups() -> None:
    bob = HubUser({"name": "bob", "groups": ["lyon"]})
    who = identity_of(
        bob, owner="ann", under_hub=True, configured_groups={"extra": ["bob", "carl"]}
    )
    assert who == Identity("bob", frozenset({"lyon", "extra"}))
    # Not under a hub, whoever authenticates is the owner.
    assert identity_of(bob, owner="ann", under_hub=False, configured_groups={}).username == "ann"


def test_hub_owner_learns_only_the_owner_and_keeps_groups_it_cannot_see() -> None:
    owner = HubOwner("ann")
    assert not owner.learn({"name": "bob", "groups": ["admins"]})
    assert not owner.learn("not a model")
    assert owner.model is None and owner.groups == frozenset()
    assert owner.learn(ANN_MODEL)
    # A token without read:users:groups gets a model without "groups": keep the known ones.
    assert owner.learn({"name": "ann", "scopes": ["access:servers!server=ann/"]})
    assert owner.groups == frozenset({"operators", "lyon"})
    assert owner.model == {
        "name": "ann",
        "groups": ["operators", "lyon"],
        "scopes": ["access:servers!server=ann/"],
    }
    # A model that does list groups replaces them (the owner left a group).
    owner.learn({"name": "ann", "groups": ["lyon"]})
    assert owner.groups == frozenset({"lyon"})
    # A string is not a list of groups.
    owner.learn({"name": "ann", "groups": "lyon"})
    assert owner.groups == frozenset()
