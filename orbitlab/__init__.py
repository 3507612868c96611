"""OrbitLab Networks as code: a Proxmox VE EVPN Backplane and isolated Sectors, in Pulumi."""

__version__ = "0.1.0"
