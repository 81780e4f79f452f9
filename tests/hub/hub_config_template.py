# ruff: noqa
# The test hub's jupyterhub_config.py, after a generated `SETTINGS = {...}` line
# (tests/hub/jupyterhub.py). What a real deployment writes is in docs/jupyterhub.md.
import os

c = get_config()  # type: ignore[name-defined]
S = SETTINGS  # type: ignore[name-defined]

c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = S["public_port"]
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = S["hub_port"]
c.ConfigurableHTTPProxy.command = [S["proxy"]]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{S['proxy_api_port']}"
c.ConfigurableHTTPProxy.should_start = True
c.JupyterHub.db_url = f"sqlite:///{S['hub_dir']}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{S['hub_dir']}/jupyterhub_cookie_secret"
c.JupyterHub.cleanup_servers = True
c.JupyterHub.log_level = "INFO"

c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = S["login_password"]
c.Authenticator.allowed_users = {"alice", "bob"}
c.JupyterHub.load_groups = {
    "operators": {"users": ["alice"]},
    S["commanders"]: {"users": []},
}

# The iotcable channels' scopes, and who holds them.
c.JupyterHub.custom_scopes = S["custom_scopes"]
c.JupyterHub.load_roles = [
    # Every user may reach the service; the channels decide what they may do there.
    {"name": "user", "scopes": ["self", f"access:services!service={S['service']}"]},
    # Members of the commanders group may publish commands (by scope, not by principal).
    {"name": "iotcable-commanders", "scopes": S["commanders_scopes"], "groups": [S["commanders"]]},
    {
        "name": "test-admin",
        "scopes": [
            "admin:users",
            "admin:servers",
            "admin:groups",
            "tokens",
            "access:servers",
            "access:services",
            "read:hub",
        ],
        "services": ["test-admin"],
    },
]

c.JupyterHub.services = [
    {
        "name": S["service"],
        "url": f"http://127.0.0.1:{S['service_port']}",
        "command": [
            S["python"],
            "-m",
            "jupyter_iotcable.hubservice",
            f"--config={S['service_config']}",
        ],
        "user": S["service_user"],
        "cwd": S["service_dir"],
        "environment": {
            "JUPYTER_CONFIG_DIR": S["service_dir"],
            "JUPYTER_RUNTIME_DIR": S["service_dir"] + "/runtime",
            "JUPYTER_DATA_DIR": S["service_dir"] + "/data",
            "JUPYTER_PLATFORM_DIRS": "1",
        },
        "oauth_client_allowed_scopes": S["oauth_scopes"],
    },
    {"name": "test-admin", "api_token": S["admin_token"]},
]

c.JupyterHub.allow_named_servers = True
c.Spawner.cmd = [S["python"], "-m", "jupyterhub.singleuser"]
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
c.Spawner.server_token_scopes = S["server_token_scopes"]
c.Spawner.environment = dict(S["users_env"])


def _mode(spawner):  # type: ignore[no-untyped-def]
    """Named server 'today': the extension inside the user's server with the broker's
    password in its environment (how it was done before the service); any other server
    is a client of the service and holds no broker setting."""
    env = spawner.environment = dict(S["users_env"])
    if spawner.name == "today":
        env["IOTCABLE_BROKER_PASSWORD"] = S["broker_password"]
        env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(
            [S["today_config_path"], S["venv_config_path"]]
        )
    else:
        env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(
            [S["service_config_path"], S["venv_config_path"]]
        )


c.Spawner.pre_spawn_hook = _mode
