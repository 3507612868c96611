"""The API token's privileges: what a stack's API calls need, the ``pveum`` commands that
grant exactly that, and what a live token lacks (``orbitlab check``).

Each requirement is a privilege Proxmox checks, on the path it checks it, for a call the
provider (bpg/terraform-provider-proxmox) makes for this stack:

- the SDN: ``SDN.Allocate`` to create the controller (``/sdn/controllers``), zones
  (``/sdn/zones``), a zone's VNets (``/sdn/zones/<zone>``), a VNet's subnets and changes
  (``/sdn/zones/<zone>/<vnet>``) and to apply (``/sdn``); a read-back accepts
  ``SDN.Allocate`` as well as ``SDN.Audit`` (pve-network ``src/PVE/API2/Network/SDN*.pm``);
- a container on a VNet: ``SDN.Use`` on ``/sdn/zones/<zone>/<vnet>`` (pve-guest-common
  ``check_vnet_access``);
- a container: ``VM.Allocate`` (create, destroy), ``VM.Config.*`` for what it sets (CPU,
  memory, root disk, NICs and names, options), ``VM.PowerMgmt`` (start, shutdown, reboot),
  ``VM.Audit`` (the provider reads it back) on ``/vms/<vmid>`` (pve-container
  ``src/PVE/API2/LXC.pm``, ``src/PVE/LXC.pm`` ``check_ct_modify_config_perm``);
  ``Datastore.AllocateSpace`` on its root storage;
- the template: ``Datastore.AllocateTemplate`` to download it and ``Datastore.Allocate`` to
  delete it (pve-storage ``src/PVE/API2/Storage/Status.pm`` ``download_url``,
  ``Content.pm`` ``delete``) on its storage, which the container's create reads
  (``Datastore.AllocateSpace`` or ``Datastore.Audit``); ``Sys.AccessNetwork`` on the
  downloading node (or ``Sys.Audit`` and ``Sys.Modify`` on ``/``).

Nothing else: ``SDN.Audit``, ``Datastore.Audit`` and ``Sys.Audit`` are not needed, since
every listing and read the program makes accepts the allocation privilege instead.

>>> from orbitlab.plan import plan_stack
>>> from orbitlab.stack import parse_settings
>>> plan = plan_stack("dev", parse_settings({
...     "backplane": {"nodes": [{"name": "pve1", "address": "192.0.2.11"}]},
...     "sectors": [{"name": "web", "subnets": ["172.16.0.0/24"]}],
... }))
>>> print(pveum_script(plan).splitlines()[-1])
pveum acl modify /storage/local --tokens 'orbitlab@pve!pulumi' --roles OrbitLab,OrbitLabTemplates
>>> held = {"/sdn": {"SDN.Allocate"}}
>>> [need.describe() for need in missing(requirements(plan), lambda p: held.get(p, ()))][:2]
['SDN.Allocate on /sdn/controllers: create the EVPN controller', \
'SDN.Allocate on /sdn/controllers/olevpn: read it back']
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

from orbitlab.plan import StackPlan, template_downloads

ROLE = "OrbitLab"
TEMPLATE_ROLE = "OrbitLabTemplates"
DEFAULT_USER = "orbitlab@pve"
DEFAULT_TOKEN = "pulumi"

VM_PRIVILEGES = (
    "VM.Allocate",
    "VM.Audit",
    "VM.Config.CPU",
    "VM.Config.Disk",
    "VM.Config.Memory",
    "VM.Config.Network",
    "VM.Config.Options",
    "VM.PowerMgmt",
)
#: The role on /sdn, /vms, /storage and /nodes (each path takes the privileges of its kind).
ROLE_PRIVILEGES = (
    "SDN.Allocate",
    "SDN.Use",
    *VM_PRIVILEGES,
    "Datastore.AllocateSpace",
    "Sys.AccessNetwork",
)
#: Added on the template storage: download the template, delete it at destroy.
TEMPLATE_PRIVILEGES = ("Datastore.Allocate", "Datastore.AllocateTemplate")
ROLE_PATHS = ("/sdn", "/vms", "/storage", "/nodes")


@dataclass(frozen=True)
class Requirement:
    """A privilege on a path, why the stack needs it, and what Proxmox accepts instead
    (``alternatives``: (path, privileges) pairs, each enough on its own)."""

    path: str
    privilege: str
    why: str
    alternatives: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def met(self, held: Callable[[str], Collection[str]]) -> bool:
        if self.privilege in held(self.path):
            return True
        return any(all(p in held(path) for p in privs) for path, privs in self.alternatives)

    def describe(self) -> str:
        instead = "".join(
            f" (or {' and '.join(privs)} on {path})" for path, privs in self.alternatives
        )
        return f"{self.privilege} on {self.path}{instead}: {self.why}"


def requirements(plan: StackPlan) -> list[Requirement]:
    """Every privilege the stack's ``pulumi up`` and ``destroy`` need, path by path."""
    needs = [Requirement("/sdn", "SDN.Allocate", "apply the SDN configuration")]
    zones: list[tuple[str, str]] = [(s.zone_id, s.vnet_id) for s in plan.sectors]
    backplane = plan.backplane
    if backplane.owner_stack is None:
        controller = backplane.controller_id
        needs += [
            Requirement("/sdn/controllers", "SDN.Allocate", "create the EVPN controller"),
            Requirement(f"/sdn/controllers/{controller}", "SDN.Allocate", "read it back"),
        ]
        zones.insert(0, (backplane.zone_id, backplane.vnet_id))
    if zones:
        needs.append(Requirement("/sdn/zones", "SDN.Allocate", "create the zones"))
    for zone, vnet in zones:
        needs += [
            Requirement(f"/sdn/zones/{zone}", "SDN.Allocate", f"change zone {zone}, add {vnet}"),
            Requirement(
                f"/sdn/zones/{zone}/{vnet}", "SDN.Allocate", f"change VNet {vnet}, its subnets"
            ),
        ]
    for sector in plan.sectors:
        bridges = [(sector.zone_id, sector.vnet_id)]
        bridges.append((backplane.zone_id, backplane.vnet_id))
        for zone, vnet in bridges:
            needs.append(
                Requirement(
                    f"/sdn/zones/{zone}/{vnet}", "SDN.Use", f"put {sector.name}'s NICs on {vnet}"
                )
            )
        for role in sector.roles:
            vmid = sector.vmid(role)
            needs += [
                Requirement(f"/vms/{vmid}", privilege, f"{sector.name}'s {role} container")
                for privilege in VM_PRIVILEGES
            ]
        storage = plan.storage(sector.node).rootdir
        needs.append(
            Requirement(
                f"/storage/{storage}", "Datastore.AllocateSpace", f"root disks on {sector.node}"
            )
        )
    needs += _template_requirements(plan)
    return _unique(needs)


def _template_requirements(plan: StackPlan) -> list[Requirement]:
    if plan.appliances.template_file_id is not None:
        storage = plan.appliances.template_file_id.split(":", 1)[0]
        return [_template_read(storage)]
    needs: list[Requirement] = []
    for node, storage in template_downloads(plan.hosting_nodes, plan.storage):
        path = f"/storage/{storage.vztmpl}"
        needs += [
            Requirement(path, "Datastore.AllocateTemplate", f"download the template on {node}"),
            Requirement(path, "Datastore.Allocate", "delete the template at destroy"),
            _template_read(storage.vztmpl),
            Requirement(
                f"/nodes/{node}",
                "Sys.AccessNetwork",
                "let the node fetch the template's URL",
                (("/", ("Sys.Audit", "Sys.Modify")),),
            ),
        ]
    return needs


def _template_read(storage: str) -> Requirement:
    return Requirement(
        f"/storage/{storage}",
        "Datastore.AllocateSpace",
        "create containers from the template",
        ((f"/storage/{storage}", ("Datastore.Audit",)),),
    )


def _unique(needs: Iterable[Requirement]) -> list[Requirement]:
    seen: dict[tuple[str, str], Requirement] = {}
    for need in needs:
        seen.setdefault((need.path, need.privilege), need)
    return list(seen.values())


def missing(
    needs: Iterable[Requirement], held: Callable[[str], Collection[str]]
) -> list[Requirement]:
    """The requirements a token does not meet (``held``: its privileges on a path)."""
    return [need for need in needs if not need.met(held)]


def template_storages(plan: StackPlan) -> list[str]:
    """The storages the stack downloads its template to."""
    if plan.appliances.template_file_id is not None:
        return []
    found = {storage.vztmpl for _, storage in template_downloads(plan.hosting_nodes, plan.storage)}
    return sorted(found)


def pveum_script(plan: StackPlan, user: str = DEFAULT_USER, token: str = DEFAULT_TOKEN) -> str:
    """The ``pveum`` commands, run as root on a node, that create a user, its
    privilege-separated API token and exactly the privileges the stack needs (on the user
    and on the token: a separated token holds only what both hold)."""
    token_id = f"{user}!{token}"
    downloads = template_storages(plan)
    lines = [f'pveum role add {ROLE} --privs "{",".join(ROLE_PRIVILEGES)}"']
    if downloads:
        lines.append(f'pveum role add {TEMPLATE_ROLE} --privs "{",".join(TEMPLATE_PRIVILEGES)}"')
    lines += [f"pveum user add {user}", f"pveum user token add {user} {token} --privsep 1"]
    grants = [(path, ROLE) for path in ROLE_PATHS]
    # an ACL on a storage replaces the one on /storage there: both roles go on it
    grants += [(f"/storage/{storage}", f"{ROLE},{TEMPLATE_ROLE}") for storage in downloads]
    for path, roles in grants:
        for who in (f"--users {user}", f"--tokens '{token_id}'"):
            lines.append(f"pveum acl modify {path} {who} --roles {roles}")
    return "\n".join(lines) + "\n"
