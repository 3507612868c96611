"""The stack program: ``orbitlab:*`` config → settings → cluster facts → plan → components.

``__main__.py`` calls :func:`main`. Everything is validated and planned — against the tags
and the Backplane already on the cluster — before the first resource is declared; a bad
stack stops ``pulumi preview`` with a message naming the field.

The provider comes from the usual ``proxmoxve:*`` config or ``PROXMOX_VE_*`` environment
(endpoint, API token as a secret); provisioning SSH uses ``orbitlab:sshPrivateKey``
(secret) or the SSH agent.

Example (what ``__main__.py`` does)::

    from orbitlab.program import main
    main()
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi

from orbitlab.cluster import read_cluster
from orbitlab.components import (
    ApplianceTemplates,
    ApplianceTemplatesArgs,
    Backplane,
    BackplaneArgs,
    Rollout,
    Sector,
    SectorArgs,
    SshCredentials,
    warn_reboots,
)
from orbitlab.components.appliance import template_identity
from orbitlab.components.sdn import sdn_digest
from orbitlab.errors import OrbitLabError
from orbitlab.facts import plan_for_cluster
from orbitlab.plan import StackPlan
from orbitlab.settings import CONFIG_NAMESPACE, StackSettings
from orbitlab.stack import settings_from_config

#: Program-level config (not a setting): the SSH key provisioning uses; set it as a secret.
SSH_KEY_CONFIG = "sshPrivateKey"

BackplaneRef = Backplane | pulumi.Output[Any]


def _decode(value: Any) -> Any:
    """Pulumi hands structured config over as JSON text; plain strings stay strings."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def stack_config() -> dict[str, Any]:
    """Every ``orbitlab:*`` config value (decoded), keyed with the namespace.

    Unknown keys are kept so that settings can reject typos; the SSH key is left out.
    """
    keys = {
        key for key in pulumi.runtime.get_config_env() if key.startswith(CONFIG_NAMESPACE + ":")
    }
    keys |= {f"{CONFIG_NAMESPACE}:{name}" for name in StackSettings.model_fields}
    keys.discard(f"{CONFIG_NAMESPACE}:{SSH_KEY_CONFIG}")
    config = {}
    for key in sorted(keys):
        value = pulumi.runtime.get_config(key)
        if value is not None:
            config[key] = _decode(value)
    return config


@dataclass(frozen=True)
class Deployment:
    """What the program declared."""

    plan: StackPlan
    #: The Backplane declared here, or the owner stack's exported facts.
    backplane: BackplaneRef
    templates: ApplianceTemplates
    sectors: dict[str, Sector]
    rollout: Rollout

    def outputs(self) -> dict[str, Any]:
        return {
            "backplane": (
                self.backplane.facts if isinstance(self.backplane, Backplane) else self.backplane
            ),
            "sectors": {name: sector.summary() for name, sector in self.sectors.items()},
            "appliances": {
                appliance: record
                for sector in self.sectors.values()
                for appliance, record in sector.appliance_records().items()
            },
        }


def deployed_appliances() -> pulumi.Output[Any] | None:
    """This stack's ``appliances`` output as last deployed (None before the first ``up``),
    in a preview; None in an update.

    Read through a reference to the stack itself, so that ``pulumi preview`` (and the
    preview ``pulumi up`` shows first) names the appliances a change will reboot. Only in a
    preview: while an update runs, the engine rewrites the stack's checkpoint, and a file
    backend's reader can meet a half-written one ("failed to load checkpoint: EOF"; seen in
    the rehearsal on a first ``up --skip-preview``).
    """
    if not pulumi.runtime.is_dry_run():
        return None
    me = f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}"
    return pulumi.StackReference("deployed", stack_name=me).get_output("appliances")


def appliance_digests(plan: StackPlan) -> dict[str, str]:
    """Per node that hosts appliances, a digest of what creates or replaces one there (the
    template, the VMIDs, the root storage): a change re-runs that node's check, so its
    settings are checked again before a new appliance starts there.

    >>> from orbitlab.stack import load_plan
    >>> sorted(appliance_digests(load_plan("stacks/Pulumi.example.yaml")))
    ['pve2']
    """
    digests = {}
    for node in plan.hosting_nodes:
        appliances = [
            (sector.name, [sector.vmid(role) for role in sector.roles])
            for sector in plan.sectors
            if sector.node == node
        ]
        identity = {
            "template": template_identity(plan.appliances),
            "storage": plan.storage(node).rootdir,
            "appliances": appliances,
        }
        digests[node] = sdn_digest(identity)
    return digests


def deploy(
    plan: StackPlan,
    ssh: SshCredentials | None = None,
    opts: pulumi.ResourceOptions | None = None,
    deployed: pulumi.Input[Any] = None,
) -> Deployment:
    """Declare the Backplane, the appliance templates and every Sector of a plan.

    With ``orbitlab:backplane.stack`` set, no Backplane is declared: the Sectors attach to
    the owner stack's exported facts through a ``StackReference``. ``deployed``: the
    appliances as last deployed (:func:`deployed_appliances`), for the reboot warnings.
    """
    ssh = ssh or SshCredentials(user=plan.appliances.ssh_user)
    templates = ApplianceTemplates(
        "templates",
        ApplianceTemplatesArgs(
            appliances=plan.appliances, nodes=plan.hosting_nodes, storages=plan.storages
        ),
        opts,
    )
    backplane: BackplaneRef
    # One rollout: the Backplane's and every Sector's SDN objects are applied once, and no
    # two SDN applies (or container creations beyond the per-node bound) run at once.
    with Rollout("rollout", opts=opts) as rollout:
        if plan.backplane.owner_stack is not None:
            owner = pulumi.StackReference(plan.backplane.owner_stack, opts=opts)
            backplane = owner.require_output("backplane")
        else:
            backplane = Backplane(
                "backplane", BackplaneArgs(plan=plan.backplane, rollout=rollout), opts
            )
        sectors = {
            sector.name: Sector(
                sector.name,
                SectorArgs(
                    sector=sector,
                    stack=plan,
                    backplane=backplane,
                    template_file_id=templates.file_id(sector.node),
                    rollout=rollout,
                    ssh=ssh,
                ),
                opts,
            )
            for sector in plan.sectors
        }
        # after the apply, every node must report the program's zones applied
        rollout.check_nodes(plan.backplane.nodes, ssh, appliance_digests(plan))
    if deployed is not None:
        warn_reboots(deployed, sectors.values())
    return Deployment(plan, backplane, templates, sectors, rollout)


def main() -> Deployment:
    """Run the stack program; errors a user can fix end it with a clean message."""
    try:
        settings = settings_from_config(stack_config())
        plan = plan_for_cluster(
            pulumi.get_stack(), settings, read_cluster(nodes=settings.backplane.node_names)
        )
    except OrbitLabError as error:
        raise pulumi.RunError(f"invalid OrbitLab stack:\n{error}") from None
    key = pulumi.Config(CONFIG_NAMESPACE).get_secret(SSH_KEY_CONFIG)
    ssh = SshCredentials(user=settings.appliances.ssh_user, private_key=key)
    deployment = deploy(plan, ssh, deployed=deployed_appliances())
    for name, value in deployment.outputs().items():
        pulumi.export(name, value)
    return deployment
