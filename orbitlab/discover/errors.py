"""The errors of ``orbitlab discover``, and of ``orbitlab show --cluster`` and ``orbitlab
check``, which read the Proxmox API with its client: each one a message a user can act on.

Example::

    >>> error = ApiError("GET /nodes failed (HTTP 500 boom)", 500, {"iface": "unknown"})
    >>> isinstance(error, DiscoverError), error.status, error.errors
    (True, 500, {'iface': 'unknown'})
"""

from __future__ import annotations

from orbitlab.errors import OrbitLabError


class DiscoverError(OrbitLabError):
    """Discovery failed for a reason the user can fix (token, endpoint, cluster setup)."""


class ApiError(DiscoverError):
    """The Proxmox API answered with an HTTP error; ``errors`` holds its per-field errors."""

    def __init__(self, message: str, status: int, errors: dict[str, str]) -> None:
        self.status = status
        self.errors = errors
        super().__init__(message)
