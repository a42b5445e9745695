"""Starting or joining Ray without exposing it to the network by accident.

Two ways in, one function (:func:`connect`):

* **local** (``address=None`` and no ``RAY_ADDRESS`` in the environment): a
  private single-node Ray is started in this process, dashboard off, every
  Ray server bound to 127.0.0.1. Ray normally picks the machine's routable
  address and listens on all interfaces even for a local instance; Ray's
  ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` switch makes a node use the
  loopback address instead (it then refuses a second node, which is what a
  private instance wants). The switch is read from the environment by every
  Ray process at start-up, and by this process when ``ray`` is first
  imported, so :func:`connect` sets both.
* **join** (``"auto"``, ``"HOST:PORT"``, or ``RAY_ADDRESS`` set, as inside
  ``ray job submit``): connects to a running cluster. Ray 2.60 clusters use
  token authentication by default (``ray start`` writes the token to
  ``~/.ray/auth_token``), and a joining process must run with
  ``RAY_AUTH_MODE=token``; :func:`connect` sets it when a token is available
  and the user has not chosen a mode.

If Ray is already initialised in this process (a test fixture, a user's own
``ray.init``), :func:`connect` reuses it and the returned session does not shut
it down.

>>> auth_mode_for_join({"RAY_AUTH_TOKEN": "x"})
'token'
>>> auth_mode_for_join({"RAY_AUTH_MODE": "disabled", "RAY_AUTH_TOKEN": "x"}) is None
True
"""

from __future__ import annotations

import logging
import math
import os
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from rltk.core.errors import UserError

LOOPBACK = "127.0.0.1"
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": nodes use 127.0.0.1, no second node
AUTH_MODE_ENV = "RAY_AUTH_MODE"


@dataclass
class RaySession:
    """A connection to Ray; ``close`` shuts Ray down only if this session started the connection."""

    address: str  # the GCS address ("127.0.0.1:PORT" for a local instance)
    local: bool  # a private instance started here (True) or a cluster joined / reused (False)
    owned: bool  # this session called ray.init, so close() calls ray.shutdown()
    saved_env: dict[str, str | None] = field(default_factory=dict)  # environment to put back on close

    def close(self) -> None:
        import ray

        if self.owned and ray.is_initialized():
            ray.shutdown()
        self.owned = False
        for key, value in self.saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if LOOPBACK_ENV in self.saved_env and "ray" in sys.modules:
            from ray._private import ray_constants

            ray_constants.ENABLE_RAY_CLUSTER = os.environ.get(LOOPBACK_ENV, "1").lower() not in ("0", "false")
        self.saved_env = {}


def default_token_path() -> Path:
    return Path.home() / ".ray" / "auth_token"


def auth_mode_for_join(env: Mapping[str, str]) -> str | None:
    """The ``RAY_AUTH_MODE`` a joining process needs: ``"token"`` when a token is at hand, else None (Ray's default)."""
    if env.get(AUTH_MODE_ENV):
        return None  # the user chose; respect it
    token_path = env.get("RAY_AUTH_TOKEN_PATH")
    has_token = bool(env.get("RAY_AUTH_TOKEN")) or Path(token_path or default_token_path()).expanduser().is_file()
    return "token" if has_token else None


def _bind_loopback() -> dict[str, str | None]:
    """Make this process and every Ray process it starts use 127.0.0.1 (see the module docstring)."""
    saved = {LOOPBACK_ENV: os.environ.get(LOOPBACK_ENV)}
    os.environ[LOOPBACK_ENV] = "0"  # inherited by gcs_server, raylet and every worker
    if "ray" in sys.modules:  # ray read the variable at import time; tell this process too
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False
    return saved


def connect(address: str | None = None, num_cpus: float | None = None, num_gpus: float | None = None,
            quiet: bool = True) -> RaySession:
    """Start a private local Ray bound to loopback (``address=None``) or join a cluster (``"auto"`` / ``"HOST:PORT"``).

    ``num_cpus`` / ``num_gpus`` size a local instance (ignored when joining: a cluster has its own).
    """
    import ray

    if ray.is_initialized():  # reuse; a Ray on this machine's loopback counts as local
        gcs = _gcs_address(ray.get_runtime_context())
        return RaySession(address=gcs, local=gcs.startswith(f"{LOOPBACK}:"), owned=False)
    join = address or os.environ.get("RAY_ADDRESS")
    level = logging.WARNING if quiet else logging.INFO
    if not join:
        saved = _bind_loopback()
        kwargs: dict = {"num_cpus": int(math.ceil(num_cpus))} if num_cpus is not None else {}
        if num_gpus is not None:
            kwargs["num_gpus"] = int(math.ceil(num_gpus))
        try:
            ray.init(address="local", include_dashboard=False, log_to_driver=not quiet, logging_level=level,
                     configure_logging=True, **kwargs)
        except BaseException:
            RaySession("", local=True, owned=False, saved_env=saved).close()
            raise
        return RaySession(address=_gcs_address(ray.get_runtime_context()), local=True, owned=True, saved_env=saved)
    _probe(join)
    mode = auth_mode_for_join(os.environ)
    saved = {}
    if mode is not None:
        saved[AUTH_MODE_ENV] = os.environ.get(AUTH_MODE_ENV)
        os.environ[AUTH_MODE_ENV] = mode
    try:
        ray.init(address=join, log_to_driver=not quiet, logging_level=level)
    except Exception as e:  # ConnectionError, AuthenticationError, ValueError for a malformed address...
        RaySession("", local=False, owned=False, saved_env=saved).close()
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(
            f"cannot join the Ray cluster at {join!r}: {first} "
            f"(is `ray start --head` running there, and does this machine have the cluster's token in "
            f"~/.ray/auth_token or RAY_AUTH_TOKEN, with {AUTH_MODE_ENV}=token?)"
        ) from e
    return RaySession(address=_gcs_address(ray.get_runtime_context()), local=False, owned=True, saved_env=saved)


def _probe(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast with a clear message when nothing listens at ``HOST:PORT`` (ray.init would retry for minutes)."""
    if address == "auto" or "://" in address:
        return  # "auto" reads the local node's address file; ray:// is Ray Client, which reports its own errors
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UserError(f"Ray address {address!r} must be 'auto' or HOST:PORT (e.g. 10.0.0.1:6379)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise UserError(f"cannot join the Ray cluster at {address!r}: nothing answers there ({e.strerror or e}); "
                        "start it with `ray start --head --port PORT` or check the address") from None


def _gcs_address(ctx) -> str:
    return str(getattr(ctx, "gcs_address", "") or "")


__all__ = ["LOOPBACK", "LOOPBACK_ENV", "RaySession", "auth_mode_for_join", "connect", "default_token_path"]
