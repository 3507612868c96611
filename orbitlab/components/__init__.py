"""Pulumi components of OrbitLab: the Backplane, Sectors and their appliances.

>>> from orbitlab.components import Backplane, Sector
>>> Backplane.__name__, Sector.__name__
('Backplane', 'Sector')
"""

from orbitlab.components.appliance import (
    Appliance,
    ApplianceArgs,
    ApplianceTemplates,
    ApplianceTemplatesArgs,
    Nic,
)
from orbitlab.components.backplane import (
    Backplane,
    BackplaneArgs,
    backplane_facts,
    backplane_from_facts,
)
from orbitlab.components.rollout import Rollout, RolloutArgs, RolloutError
from orbitlab.components.sector import Sector, SectorArgs, warn_reboots
from orbitlab.components.ssh import SshCredentials

__all__ = [
    "Appliance",
    "ApplianceArgs",
    "ApplianceTemplates",
    "ApplianceTemplatesArgs",
    "Backplane",
    "BackplaneArgs",
    "Nic",
    "Rollout",
    "RolloutArgs",
    "RolloutError",
    "Sector",
    "SectorArgs",
    "SshCredentials",
    "backplane_facts",
    "backplane_from_facts",
    "warn_reboots",
]
