"""OrbitLab's lab, beside the library it tests: the twin (:mod:`orbitlab_lab.twin`, the real
daemons of a plan in network namespaces) and the emulated Proxmox cluster
(:mod:`orbitlab_lab.emulate`, stand-in provider plugins for the real Pulumi CLI).

The lab imports the library (:mod:`orbitlab`); the library never imports the lab. Its
command-line commands (``orbitlab twin``, ``orbitlab emulate``) reach the library's
``orbitlab`` command through the ``orbitlab.commands`` entry points.
"""
