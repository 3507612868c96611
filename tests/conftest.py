"""Shared fixtures: a valid stack as plain data, and helpers to build plans from it.

hypothesis is imported here, before any test runs: imported late (by its pytest plugin at
session end, after the Pulumi tests printed deep tracebacks) it trips CPython 3.11.7's
"AST constructor recursion depth mismatch" (gh-106905, fixed in 3.11.8).
"""

from __future__ import annotations

import copy
from typing import Any

import hypothesis  # noqa: F401
import pytest

VALID_STACK: dict[str, Any] = {
    "backplane": {
        "cidr": "10.200.0.0/16",
        "nodes": [
            {"name": "pve1", "address": "192.0.2.11", "mtu": 1500},
            {"name": "pve2", "address": "192.0.2.12"},
        ],
    },
    "sectors": [
        {
            "name": "web",
            "subnets": ["172.16.0.0/24", "172.16.1.0/24"],
            "hosts": [
                {"name": "app1", "address": "172.16.0.21"},
                {"name": "app2", "address": "172.16.1.22"},
            ],
            "load_balancer": {"listeners": [{"port": 80, "backends": ["app1:8080"]}]},
            "port_forwards": [{"port": 2222, "to": "app1:22"}],
        },
        {"name": "lab", "subnets": ["172.16.0.0/24"]},
    ],
}


@pytest.fixture
def raw_stack() -> dict[str, Any]:
    """A fresh, valid ``orbitlab:*`` mapping that a test may change."""
    return copy.deepcopy(VALID_STACK)
