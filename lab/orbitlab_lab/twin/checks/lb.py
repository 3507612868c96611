"""Ingress from the home LAN: the load balancer's listeners and the port forwards.

- lb ingress: every listener answers the home LAN client, spreading over its backends;
- lb client address: an HTTP listener passes the client's address on in X-Forwarded-For,
  a PROXY-protocol listener in PROXY v2;
- port forward: each answers from the declared host with the client's address kept; an
  undeclared port does not.
"""

from __future__ import annotations

import time
from typing import Any

from orbitlab_lab.twin.context import TwinContext
from orbitlab_lab.twin.probing import probe, shown
from orbitlab_lab.twin.results import CheckResult
from orbitlab_lab.twin.topology import Namespace, SectorTwin

LB_SETTLE_S = 15


def check_lb(twin: TwinContext, sector: SectorTwin) -> list[CheckResult]:
    """Every listener answers the home LAN client; requests spread over all backends."""
    lb = sector.plan.load_balancer
    if lb is None:
        return []
    client = twin.topology.external.client
    results = []
    for listener in lb.listeners:
        protocol = "http" if listener.mode == "http" else "tcp"
        wanted = {b.host or str(b.address) for b in listener.backends}
        answered = _lb_answers(twin, client, lb.backplane_address, listener.port, protocol, wanted)
        results.append(
            CheckResult(
                "lb ingress",
                client.label,
                f"{sector.name} LB {lb.backplane_address}:{listener.port} ({listener.mode})",
                "answered by " + ", ".join(sorted(wanted)),
                ", ".join(sorted(answered)),
                answered == wanted,
            )
        )
        results.append(_client_address_row(twin, sector, listener))
    return results


def _passed_on(body: str) -> dict[str, str]:
    """``xff=`` and ``proxy=`` entries of an echo answer."""
    return dict(part.split("=", 1) for part in body.split()[2:] if "=" in part)


def _client_address_row(twin: TwinContext, sector: SectorTwin, listener: Any) -> CheckResult:
    """What the backend learns of the client: an HTTP listener sets X-Forwarded-For to the
    client's address (the client claims another one in its own header: it is replaced), a
    PROXY-protocol listener sends PROXY v2; a plain TCP listener passes on nothing."""
    lb = sector.plan.load_balancer
    assert lb is not None
    client = twin.topology.external
    protocol = "http-forged" if listener.mode == "http" else "tcp"
    found = probe(twin, client.client, protocol, lb.backplane_address, listener.port)
    passed = _passed_on(found.get("body", "")) if found["result"] == "ok" else {}
    expected = {}
    if listener.mode == "http":
        expected["xff"] = str(client.client_lan)
    if listener.proxy_protocol:
        expected["proxy"] = str(client.client_lan)
    shown_as = " ".join(f"{k}={v}" for k, v in sorted(passed.items())) or "nothing"
    wanted = " ".join(f"{k}={v}" for k, v in sorted(expected.items())) or "nothing"
    return CheckResult(
        "lb client address",
        client.client.label,
        f"{sector.name} LB :{listener.port} -> backend",
        wanted,
        shown_as if found["result"] == "ok" else shown(found),
        found["result"] == "ok" and passed == expected,
    )


def _lb_answers(
    twin: TwinContext,
    client: Namespace,
    address: object,
    port: int,
    protocol: str,
    wanted: set[str],
) -> set[str]:
    """Who answers a round of requests to a listener, asking again until a round reaches
    every backend and nothing else, or the time is up: a backend HAProxy marked down (while
    its gateway was stopped, or before a host joined) comes back after its checks, and until
    then HAProxy may answer 503. The last round is the answer."""
    deadline = time.monotonic() + LB_SETTLE_S
    while True:
        answered: set[str] = set()
        for _ in range(2 * len(wanted)):
            found = probe(twin, client, protocol, address, port)
            answered.add(found["body"].split()[0] if found["result"] == "ok" else found["result"])
        if answered == wanted or time.monotonic() > deadline:
            return answered
        time.sleep(1)


def check_port_forwards(twin: TwinContext, sector: SectorTwin) -> list[CheckResult]:
    """Declared forwards answer from their host with the client's address; others don't."""
    client = twin.topology.external.client
    address = sector.plan.gateway.backplane_address
    results = []
    for forward in sector.plan.port_forwards:
        found = probe(twin, client, forward.protocol, address, forward.port)
        name = forward.to.host or str(forward.to.address)
        expected = f"{name} {twin.topology.external.client_lan}"
        results.append(
            CheckResult(
                "port forward",
                client.label,
                f"{sector.name} {address}:{forward.port}/{forward.protocol} -> "
                f"{forward.to.address}:{forward.to.port}",
                expected,
                shown(found),
                found.get("body") == expected,
            )
        )
    declared = {forward.port for forward in sector.plan.port_forwards}
    undeclared = next(port for port in range(2223, 65535) if port not in declared)
    found = probe(twin, client, "tcp", address, undeclared)
    results.append(
        CheckResult(
            "port forward",
            client.label,
            f"{sector.name} {address}:{undeclared}/tcp (undeclared)",
            "blocked",
            found["result"],
            found["result"] in ("rejected", "timeout"),
        )
    )
    return results
