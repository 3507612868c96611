"""``twin test``: what the running twin proves, one row per check, printed as a table.

Every check sends real traffic between namespaces and compares what came back with what
the stack declares (SPEC §6, §7, §9, §11). One module per concern:

- :mod:`~orbitlab_lab.twin.checks.egress` — egress SNAT, overlapping Sectors, egress policy;
- :mod:`~orbitlab_lab.twin.checks.isolation` — what no Sector reaches, invalid packets;
- :mod:`~orbitlab_lab.twin.checks.routing` — between a Sector's subnets, ICMP redirects;
- :mod:`~orbitlab_lab.twin.checks.dns` — the Sector DNS's names and its spoofed address;
- :mod:`~orbitlab_lab.twin.checks.lb` — load balancer listeners and port forwards;
- :mod:`~orbitlab_lab.twin.checks.appliance` — the appliances' own rules and limits;
- :mod:`~orbitlab_lab.twin.checks.leases` — the Sector DHCP (leases, names, their changes);
- :mod:`~orbitlab_lab.twin.checks.guard` — the Sector guard against misbehaving hosts;
- :mod:`~orbitlab_lab.twin.checks.failover` — a stopped gateway.

:mod:`~orbitlab_lab.twin.checks.registry` lists every check once (its groups, when it runs,
on what); :mod:`~orbitlab_lab.twin.checks.scheduler` runs them
(:func:`~orbitlab_lab.twin.checks.scheduler.run_checks`). Results are
:class:`~orbitlab_lab.twin.results.CheckResult` rows, printed by
:func:`~orbitlab_lab.twin.results.render_table`.
"""
