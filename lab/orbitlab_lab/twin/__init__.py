"""The twin: the declared network running for real in Linux namespaces on one machine.

``orbitlab twin up STACKFILE`` builds the Backplane and every Sector (SPEC §9) as network
namespaces: two or more "nodes" joined by VXLAN, every appliance running its rendered files
with the real daemons, every declared host as a namespace (with a real DHCP client when it
leases its address), and an "external" side standing in for the home LAN and the internet.
``twin test`` proves the traffic rules, ``twin down`` removes everything.

Modules, one concern each:

- :mod:`~orbitlab_lab.twin.topology` — pure: the plan turned into namespaces, links, addresses;
- :mod:`~orbitlab_lab.twin.system` — running commands in namespaces, processes, preflight;
- :mod:`~orbitlab_lab.twin.state` — the state file that lets separate CLI calls find the twin;
- :mod:`~orbitlab_lab.twin.appliances` — materialized roots and the appliance daemons;
- :mod:`~orbitlab_lab.twin.network` — nodes, Backplane, Sector L2 and the external side;
- :mod:`~orbitlab_lab.twin.runner` — bring-up and complete cleanup;
- :mod:`~orbitlab_lab.twin.dhcp` — the hosts' DHCP clients and the leases a Sector DNS keeps;
- :mod:`~orbitlab_lab.twin.checks` — what ``twin test`` proves (a module per concern, one
  registry, its scheduler), printed as a table (:mod:`~orbitlab_lab.twin.results`);
- :mod:`~orbitlab_lab.twin.echo` / :mod:`~orbitlab_lab.twin.probe` — tiny service and client
  programs run inside namespaces;
- :mod:`~orbitlab_lab.twin.cli` — the ``orbitlab twin`` commands.
"""

from orbitlab.errors import OrbitLabError


class TwinError(OrbitLabError):
    """The twin cannot be built, found or checked (not root, tool missing, not up, ...)."""
