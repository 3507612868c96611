"""The rollout: what Proxmox serializes, ordered across every component of a program.

Proxmox holds a cluster-wide SDN lock for ``PUT /cluster/sdn`` and every apply reloads the
network of every node; container operations on one node contend for its locks. Pulumi runs
independent resources in parallel, so components that each applied SDN on their own could
apply at the same time. A :class:`Rollout` (``orbitlab:index:Rollout``) is shared by the
Backplane and every Sector of a program:

- **one applier** for all of their SDN objects: created after every one of them and
  replaced whenever a digest of their inputs changes (``replacement_trigger``), so a
  ``pulumi up`` that creates or changes any number of Sectors applies SDN once;
- **finalizers in one chain**: each component (and each Sector subnet) has a finalizer
  applier (``on_create=False``) that its SDN objects depend on, so deleting them is applied
  once they are gone. Every finalizer depends on the one declared before it, so no two can
  apply at the same time; the applier depends on every SDN object, hence on every
  finalizer. A Sector's subnet finalizers are ``deleted_with`` the Sector's finalizer (a
  removed Sector applies its deletion once), and every Sector finalizer is ``deleted_with``
  the rollout's own (``pulumi destroy`` of all Sectors applies once);
- **container lanes**: at most ``containers_per_node`` containers on a node are created
  (or deleted) at once — each waits for the one that many places before it on its node;
- **edges by URN**: every ordering edge of the rollout (the chain, the lanes, "after the
  apply") points back to a resource already declared, so it can close no cycle. It is
  handed to the SDK by URN only (:func:`after`), which spares each new dependency the
  SDK's cycle check: a walk of everything the dependency depends on, which along these
  chains made the program quadratic in Sectors and, past about 1,000 links, a
  ``RecursionError``. The engine records the same dependencies;
- **node checks** (with :meth:`Rollout.check_nodes`): after the apply, a command on every
  node waits until the node reports each zone of the program ``available``, and fails
  naming the node and the zones that are not. Proxmox's apply returns before the nodes
  reload, and a node whose reload fails is only a warning of its task: without the checks
  a ``pulumi up`` would succeed with a node left on the old network.

Declare the components inside the ``with`` block; leaving it declares the applier::

    with Rollout("rollout") as rollout:
        backplane = Backplane("backplane", BackplaneArgs(plan=plan.backplane, rollout=rollout))
        for s in plan.sectors:
            Sector(s.name, SectorArgs(sector=s, stack=plan, backplane=backplane,
                                      template_file_id=..., rollout=rollout))
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import pulumi
import pulumi_command as command
import pulumi_proxmoxve as proxmoxve
from pulumi.resource import DependencyResource

from orbitlab.components import sdn
from orbitlab.components.ssh import SshCredentials, node_connection
from orbitlab.plan import NodePlan

DEFAULT_CONTAINERS_PER_NODE = 2


def after(resources: Iterable[pulumi.Resource]) -> pulumi.Output[None]:
    """``resources`` for a ``depends_on``: waited for, and recorded, by URN alone.

    The output resolves once each resource is registered (on ``pulumi up``: created) and
    carries each as a :class:`pulumi.resource.DependencyResource` (its URN, with no
    dependencies of its own). The engine records and orders exactly as it would for the
    resources themselves; the SDK's cycle check, which on every new dependency walks all
    that the dependency depends on, stops at the URN. Only for edges that point back to
    resources already declared (they cannot close a cycle)::

        Command("c", ..., opts=ResourceOptions(depends_on=[after([container])]))
    """
    done: asyncio.Future[set[pulumi.Resource]] = asyncio.get_event_loop().create_future()
    done.set_result(set(resources))
    return _by_urn_once(done)


def _by_urn_once(resources: Awaitable[set[pulumi.Resource]]) -> pulumi.Output[None]:
    """:func:`after` for resources that are known later (the applier and the node checks)."""

    async def by_urn() -> set[pulumi.Resource]:
        return {DependencyResource(await each.urn.future()) for each in await resources}

    nothing: asyncio.Future[None] = asyncio.get_event_loop().create_future()
    nothing.set_result(None)
    return pulumi.Output(asyncio.ensure_future(by_urn()), nothing, _known())


def _known() -> asyncio.Future[bool]:
    known: asyncio.Future[bool] = asyncio.get_event_loop().create_future()
    known.set_result(True)
    return known


class RolloutError(ValueError):
    """A component was declared outside its rollout, or in the wrong order."""


@dataclass(frozen=True)
class RolloutArgs:
    """How much container work may run at once on one node (Proxmox's per-node locks)."""

    containers_per_node: int = DEFAULT_CONTAINERS_PER_NODE

    def problems(self) -> list[str]:
        if not 1 <= self.containers_per_node <= 64:
            return [f"containers_per_node: {self.containers_per_node} is outside 1-64"]
        return []


class Rollout(pulumi.ComponentResource):
    """One SDN apply for a whole program, finalizers in one chain, bounded container work.

    Children: ``<name>-apply`` (the applier, declared when the ``with`` block ends), the
    node checks ``<name>-check-<node>`` (declared with it), and ``<name>-finalizer`` (the
    Sectors' finalizer, declared with the first Sector).
    """

    applier: proxmoxve.sdn.Applier | None
    #: The checks that every node applied the program's zones (see :meth:`check_nodes`).
    node_checks: tuple[command.remote.Command, ...]
    #: The applier and the node checks once declared, by URN (see :func:`after`): put it in
    #: ``depends_on`` to run after the SDN apply.
    applied: pulumi.Output[None]

    def __init__(
        self,
        name: str,
        args: RolloutArgs | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        args = args or RolloutArgs()
        problems = args.problems()
        if problems:
            raise ValueError(f"Rollout {name!r}: " + "; ".join(problems))
        super().__init__("orbitlab:index:Rollout", name, None, opts)
        self._name = name
        self._per_node = args.containers_per_node
        self._state = "new"
        self._chain: list[proxmoxve.sdn.Applier] = []
        self._sectors_finalizer: proxmoxve.sdn.Applier | None = None
        self._objects: list[pulumi.Resource] = []
        self._digests: dict[str, str] = {}
        self._zones: list[str] = []
        self._checked: tuple[tuple[NodePlan, ...], SshCredentials] | None = None
        self._hosting: dict[str, str] = {}
        self._containers: dict[str, list[pulumi.Resource]] = {}
        self.applier = None
        self.node_checks = ()
        loop = asyncio.get_event_loop()
        self._applier_future: asyncio.Future[Any] = loop.create_future()
        self._resources_future: asyncio.Future[set[pulumi.Resource]] = loop.create_future()
        self.applied = _by_urn_once(self._resources_future)

    def __enter__(self) -> Rollout:
        if self._state != "new":
            raise RolloutError(f"Rollout {self._name!r} was already used; make a new one")
        self._state = "open"
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._state = "closed"
        if error is not None:
            # The program fails with its own error; nothing may wait forever on an applier
            # that will never be declared.
            self._applier_future.set_result(None)
            self._resources_future.set_result(set())
            return
        self._declare_applier()

    @property
    def is_open(self) -> bool:
        return self._state == "open"

    def require_open(self, who: str) -> None:
        """Refuse a component declared outside the ``with`` block (its SDN would be unapplied)."""
        if not self.is_open:
            raise RolloutError(
                f"{who}: declare it inside `with Rollout(...) as rollout:` — the rollout "
                f"{self._name!r} is {self._state}, so its SDN objects would never be applied"
            )

    # --- SDN ---------------------------------------------------------------------------

    def finalizer(
        self,
        name: str,
        opts: pulumi.ResourceOptions,
        *,
        within: proxmoxve.sdn.Applier | None = None,
    ) -> proxmoxve.sdn.Applier:
        """A finalizer at the end of the chain; ``within``: skipped when that one goes too."""
        self.require_open(name)
        final = sdn.finalizer(
            name,
            pulumi.ResourceOptions.merge(
                opts,
                pulumi.ResourceOptions(depends_on=[after(self._chain[-1:])], deleted_with=within),
            ),
        )
        self._chain.append(final)
        return final

    def backplane_finalizer(self, name: str, opts: pulumi.ResourceOptions) -> proxmoxve.sdn.Applier:
        """The Backplane's finalizer: first in the chain, before any Sector's."""
        if self._sectors_finalizer is not None:
            raise RolloutError(
                f"{name}: declare the Backplane before any Sector in rollout {self._name!r}"
            )
        return self.finalizer(name, opts)

    def sector_finalizer(self, name: str, opts: pulumi.ResourceOptions) -> proxmoxve.sdn.Applier:
        """A Sector's finalizer, skipped when every Sector is destroyed at once."""
        self.require_open(name)
        if self._sectors_finalizer is None:
            self._sectors_finalizer = self.finalizer(
                f"{self._name}-finalizer", pulumi.ResourceOptions(parent=self)
            )
        return self.finalizer(name, opts, within=self._sectors_finalizer)

    def track(
        self,
        owner: str,
        objects: Sequence[pulumi.Resource],
        digest: str,
        zones: Sequence[str] = (),
    ) -> None:
        """SDN objects the applier applies, the digest of their inputs, and the zones the
        node checks wait for."""
        self.require_open(owner)
        if owner in self._digests:
            raise RolloutError(f"{owner}: already declared in rollout {self._name!r}")
        self._objects.extend(objects)
        self._digests[owner] = digest
        self._zones.extend(zones)

    def check_nodes(
        self,
        nodes: Sequence[NodePlan],
        ssh: SshCredentials,
        hosting: Mapping[str, str] | None = None,
    ) -> None:
        """After the apply, check on each of ``nodes`` (every node of the cluster) that it
        reports the program's zones ``available``: a node whose network reload failed fails
        the ``pulumi up``, naming the node and the zones; on the ``hosting`` nodes (node ->
        a digest of its appliances; a change checks the node again), first that a new
        container starts with forwarding off. ``applied`` waits for the checks, so what is
        declared after the apply (bridge waits, containers) waits for them too."""
        self.require_open("check_nodes")
        self._checked = (tuple(nodes), ssh)
        self._hosting = dict(hosting or {})

    @property
    def applied_id(self) -> pulumi.Output[str]:
        """The applier's ID once it applied (empty when nothing was tracked)."""
        applier = pulumi.Output(self.applied.resources(), self._applier_future, _known())
        return applier.apply(lambda applier: applier.id if applier is not None else "")

    @property
    def sdn_digest(self) -> str:
        """What the applier is replaced on: every tracked component's SDN digest."""
        return sdn.sdn_digest(self._digests)

    def _declare_applier(self) -> None:
        if self._objects:
            self.applier = sdn.applier(
                f"{self._name}-apply",
                self._objects,
                self.sdn_digest,
                pulumi.ResourceOptions(parent=self),
            )
        if self.applier is not None and self._checked is not None and self._zones:
            self.node_checks = tuple(self._node_check(node) for node in self._checked[0])
        self._applier_future.set_result(self.applier)
        applied = {self.applier, *self.node_checks} if self.applier else set()
        self._resources_future.set_result(applied)
        self.register_outputs({"sdnDigest": self.sdn_digest, "components": sorted(self._digests)})

    def _node_check(self, node: NodePlan) -> command.remote.Command:
        assert self.applier is not None and self._checked is not None
        ssh = self._checked[1]
        appliances = self._hosting.get(node.name)
        script = sdn.node_check_script(
            node.name, sorted(set(self._zones)), ssh.user, hosts_appliances=bool(appliances)
        )
        return command.remote.Command(
            f"{self._name}-check-{node.name}",
            connection=node_connection(node, ssh),
            create=script,
            update=script,
            # checked again after every apply (the digest replaces the applier), and before
            # a new appliance on the node
            triggers=[self.sdn_digest, *([appliances] if appliances else [])],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[after([self.applier])]),
        )

    # --- containers --------------------------------------------------------------------

    def container_predecessors(self, node: str) -> tuple[pulumi.Output[None], ...]:
        """What the next container on ``node`` waits for: the one that many places back."""
        lane = self._containers.get(node, [])
        if len(lane) < self._per_node:
            return ()
        return (after([lane[-self._per_node]]),)

    def add_container(self, node: str, container: pulumi.Resource) -> None:
        self._containers.setdefault(node, []).append(container)
