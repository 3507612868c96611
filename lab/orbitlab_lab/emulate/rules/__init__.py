"""The real provider's and Proxmox's rules, each one entry in a table that cites its source.

The stand-in ``proxmoxve`` plugin is a test double: it refuses what the real provider
(bpg/terraform-provider-proxmox, which pulumi-proxmoxve bridges) and Proxmox refuse, with
their messages — no more, no less. Each rule was read from their source and written here
as data:

- :mod:`~orbitlab_lab.emulate.rules.core` — a rule (token, input path, check, source, family)
  and finding the values it applies to;
- :mod:`~orbitlab_lab.emulate.rules.messages` — how each source words a refusal (the Terraform
  plugin framework's validators, the plugin SDK's, Proxmox's JSON schema);
- :mod:`~orbitlab_lab.emulate.rules.provider` — :data:`PLAN_RULES`, bpg's plan-time validators:
  the stand-in enforces them at ``check``, so ``pulumi preview`` fails where the real one
  would;
- :mod:`~orbitlab_lab.emulate.rules.api` — :data:`APPLY_RULES`, Proxmox's API formats: enforced
  when an object is created or updated (``pulumi up``);
- :mod:`~orbitlab_lab.emulate.rules.updates` — what replaces a resource, what updates it in
  place, and what reboots a running container.
"""

from orbitlab_lab.emulate.rules.api import APPLY_RULES
from orbitlab_lab.emulate.rules.core import Rule, Violation, violations
from orbitlab_lab.emulate.rules.provider import PLAN_RULES

__all__ = ["APPLY_RULES", "PLAN_RULES", "Rule", "Violation", "violations"]
