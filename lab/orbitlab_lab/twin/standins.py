"""The appliance OS's commands inside a twin container: small stand-ins for OpenRC and apk.

A container of the emulated cluster runs its provisioning script in full (``pct exec``):
the script calls Alpine's ``apk``, ``rc-update`` and ``rc-service``, which this machine
(Debian) does not have. Each container gets these stand-ins, first on its PATH (laid over
``/usr/local/sbin`` inside the container only), mapped to the twin's real daemons:

- ``apk``: installs nothing. A package whose program is on this machine (``frr``: vtysh,
  ``coredns``, ``dnsmasq``, ...) is reported installed (``apk info -e``) and "added"; any
  other package is not there, and ``apk add`` fails as apk does;
- ``rc-update add|del SERVICE [RUNLEVEL]``: a file ``/etc/runlevels/RUNLEVEL/SERVICE`` in
  the container's own ``/etc``;
- ``rc-service SERVICE start|stop|restart|reload|status``: ``nftables`` loads
  ``/etc/nftables.nft`` (stop: flushes it); ``frr`` starts zebra and staticd and loads
  ``/etc/frr/frr.conf`` with ``vtysh -b`` (reload: a restart, as the appliance does without
  frr-reload.py); ``coredns``, ``dnsmasq`` and ``haproxy`` run on their files in
  ``/etc`` (haproxy reloads with ``-sf``); ``sysctl`` applies the container's own
  ``/etc/sysctl.d`` files, ``local`` runs ``/etc/local.d/*.start``; any other service with
  an init script (``orbitlab-forwarding``) runs that script's ``start``/``stop``, as
  ``openrc-run`` does. A service is started when OpenRC would say so: its mark in
  ``/run/openrc/started`` (the container's own ``/run``) and, for a daemon, its process;
- ``openrc RUNLEVEL``: starts the services of a runlevel, in the order their dependencies
  give (what a container does when it starts);
- ``sysctl``: the real one, but only for ``net.ipv4.*`` and ``net.ipv6.*`` (the container's
  namespace); any other key is the whole machine's and is refused.

Each stand-in is a shell script of its own, ``standins/NAME.sh`` (package data, checked by
shellcheck in the tests); the few values only Python knows (the container's directories,
the daemons' arguments, this machine's sysctl) fill its ``__NAME__`` placeholders
(:func:`fill`).

Daemons run the way the plan-built twin runs them (same arguments, pid files and logs in
the twin's run directory of the container), so ``twin test`` finds them there::

    >>> scripts = standin_scripts(Path("/run/t/ns/c/run"), Path("/run/t/ns/c/root"))
    >>> sorted(scripts)
    ['apk', 'openrc', 'rc-service', 'rc-update', 'sysctl']
    >>> "RUN=/run/t/ns/c/run" in scripts["rc-service"]
    True
"""

from __future__ import annotations

import re
import shlex
import shutil
from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path

from orbitlab_lab.twin.appliances import FRR_DAEMONS, dnsmasq_argv, frr_daemon_argv

#: What the provisioning script sets; the stand-ins come first (in /usr/local/sbin).
STANDARD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: Alpine packages the appliances install, and the program that shows one is here.
PACKAGES = {
    "frr": "vtysh",
    "nftables": "nft",
    "iproute2": "ip",
    "conntrack-tools": "conntrack",
    "coredns": "coredns",
    "dnsmasq": "dnsmasq",
    "haproxy": "haproxy",
}
#: The services the stand-in knows, in the order OpenRC's dependencies start them:
#: orbitlab-forwarding needs nftables and comes before frr; local runs last.
BOOT_ORDER = (
    "sysctl",
    "nftables",
    "orbitlab-forwarding",
    "frr",
    "coredns",
    "dnsmasq",
    "haproxy",
    "local",
)
DAEMONS = ("frr", "coredns", "dnsmasq", "haproxy")
ONESHOTS = ("nftables", "sysctl", "local")
#: The processes of each daemon service, by their pid files in the container's run dir.
PIDFILES = {
    "zebra": "frr/zebra.pid",
    "staticd": "frr/staticd.pid",
    "coredns": "coredns.pid",
    "dnsmasq": "dnsmasq.pid",
    "haproxy": "haproxy.pid",
}
#: A value the script's file leaves to the Python side: ``__NAME__``, alone in its place.
PLACEHOLDER = re.compile(r"__([A-Z_]+)__")


def script_text(name: str) -> str:
    """The file of stand-in ``name`` (``standins/NAME.sh`` of this package), placeholders and
    all: read as package data, so an installed wheel has it too."""
    return files("orbitlab_lab.twin").joinpath("standins", f"{name}.sh").read_text()


def fill(template: str, values: Mapping[str, str]) -> str:
    """``template`` with each ``__NAME__`` replaced by ``values[NAME]``; a placeholder without
    a value, or a value without a placeholder, is an error (nothing is left half-filled).

    >>> fill("RUN=__RUN__ # __RUN__", {"RUN": "/run/x"})
    'RUN=/run/x # /run/x'
    >>> fill("RUN=__RUN__", {})
    Traceback (most recent call last):
    ...
    ValueError: placeholders without a value: RUN; values without a placeholder: none
    """
    wanted = set(PLACEHOLDER.findall(template))
    if wanted != set(values):
        missing = ", ".join(sorted(wanted - set(values))) or "none"
        unused = ", ".join(sorted(set(values) - wanted)) or "none"
        raise ValueError(
            f"placeholders without a value: {missing}; values without a placeholder: {unused}"
        )
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def _case_lines(mapping: dict[str, str]) -> str:
    return "\n".join(f"\t{name}) echo {program} ;;" for name, program in mapping.items())


def _frr_start(state_dir: Path) -> str:
    lines = []
    for daemon in FRR_DAEMONS:
        argv = " ".join(shlex.quote(part) for part in frr_daemon_argv(daemon, state_dir))
        pidfile = shlex.quote(str(state_dir / f"{daemon}.pid"))
        lines.append(f"\trm -f {pidfile}")
        lines.append(f'\t{argv} < /dev/null >> "$RUN/frr.log" 2>&1 || return 1')
    return "\n".join(lines)


def real_sysctl() -> str:
    """This machine's sysctl (the stand-in calls it by its absolute path)."""
    for candidate in ("/usr/sbin/sysctl", "/sbin/sysctl"):
        if Path(candidate).exists():
            return candidate
    return shutil.which("sysctl") or "/sbin/sysctl"


def standin_scripts(run: Path, root: Path) -> dict[str, str]:
    """The stand-ins of one container: ``run`` is its run directory on the twin (pid files,
    logs), ``root`` its own files (what it wrote over ``/etc``, ``/var``, ``/run``)."""
    dnsmasq = " ".join(shlex.quote(part) for part in dnsmasq_argv(run / "dnsmasq.pid"))
    values = {
        "apk": {"PACKAGES": _case_lines(PACKAGES)},
        "rc-update": {"KNOWN": " | ".join((*DAEMONS, *ONESHOTS))},
        "rc-service": {
            "RUN": shlex.quote(str(run)),
            "ROOT": shlex.quote(str(root)),
            "FRR_START": _frr_start(run / "frr"),
            "DNSMASQ": dnsmasq,
            "DAEMONS": " | ".join(DAEMONS),
            "ONESHOTS": " | ".join(ONESHOTS),
        },
        "openrc": {"ORDER": " ".join(BOOT_ORDER)},
        "sysctl": {"REAL": real_sysctl()},
    }
    return {name: fill(script_text(name), named) for name, named in values.items()}


INIT_SCRIPT = """#!/sbin/openrc-run
# {service}: installed, as apk (a stand-in) reports it; rc-service (a stand-in) runs it with
# the OrbitLab twin's daemon.
"""


def write_init_scripts(etc: Path) -> None:
    """``/etc/init.d`` entries of the services the packages bring (those apk reports
    installed) and OpenRC's own (``sysctl``, ``local``), as an appliance template with its
    packages has them: a script that retires a service finds it there."""
    init_d = etc / "init.d"
    init_d.mkdir(parents=True, exist_ok=True)
    for service in (*DAEMONS, *ONESHOTS):
        path = init_d / service
        if not path.exists():
            path.write_text(INIT_SCRIPT.format(service=service))
            path.chmod(0o755)


def write_standins(directory: Path, run: Path, root: Path) -> list[Path]:
    """Write a container's stand-ins into ``directory`` (executable); return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in standin_scripts(run, root).items():
        path = directory / name
        path.write_text(text)
        path.chmod(0o755)
        written.append(path)
    return written
