"""Stopping and restarting appliances during ``twin test``, in either kind of twin.

The checks stop a gateway (failover) and restart a Sector DNS (DHCP leases on disk). In the
plan-built twin the twin started the daemons itself and starts them again the same way
(:mod:`~orbitlab_lab.twin.appliances`). In a twin of the emulated cluster the appliance is a
container: a restart starts it as its boot would — its links and declared addresses, then
the services its own runlevels enable (:func:`~orbitlab_lab.twin.containers.restart`).

    >>> restart_gateway.__name__, restart_dns.__name__
    ('restart_gateway', 'restart_dns')
"""

from __future__ import annotations

from orbitlab_lab.twin import appliances, containers, system
from orbitlab_lab.twin.context import TwinContext
from orbitlab_lab.twin.topology import SectorTwin

READY_S = 10


def stop_gateway(twin: TwinContext, sector: SectorTwin) -> None:
    """Stop the gateway as a dead container is: its daemons gone and its links down."""
    appliances.stop_gateway(twin, sector)


def restart_gateway(twin: TwinContext, sector: SectorTwin) -> None:
    """Bring a stopped gateway back and wait until it routes again."""
    ns = sector.gateway.name
    if not twin.state.is_container(ns):
        appliances.restart_gateway(twin, sector)
        return
    containers.restart(twin, ns)
    system.wait_until(
        f"{sector.gateway.label} routes", lambda: appliances.gateway_routed(twin, sector), READY_S
    )


def restart_dns(twin: TwinContext, sector: SectorTwin) -> None:
    """Restart the Sector DNS's daemons (its leases stay on disk) and wait until it answers
    and serves DHCP again."""
    ns = sector.dns.name
    if not twin.state.is_container(ns):
        appliances.restart_dns(twin, sector)
        return
    system.stop_processes(twin.forget(ns))
    twin.save()
    containers.restart(twin, ns)
    system.wait_until(
        f"{sector.dns.label} to answer again",
        lambda: appliances.dns_answers(twin, sector),
        READY_S,
    )
    system.wait_until(
        f"{sector.dns.label} to serve DHCP", lambda: appliances.dhcp_serves(twin, sector), READY_S
    )
