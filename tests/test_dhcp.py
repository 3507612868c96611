"""The Sector DHCP's names, for real: the rendered lease script run by ``sh`` against a hosts
file, and the real dnsmasq re-reading its lease file when it starts.

Both run in a private mount namespace (``unshare --mount``, a temporary directory bound over
the lease directory), so the host's /var/lib/misc is never touched. The plan is the ``farm``
Sector of the golden DHCP case: declared names gateway, dns, lb, barn, silo, mill and shed;
``tractor`` bound to bc:24:11:30:01:99; domain farm.home.arpa.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from orbitlab.plan import SectorPlan
from orbitlab.rendering import DHCP_HOSTS, DHCP_SCRIPT, LEASE_DIR, LEASE_FILE, sector_bundles
from orbitlab.stack import load_plan
from tests.golden import CASES_DIR

pytestmark = [
    pytest.mark.tools,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a private mount namespace)"),
    pytest.mark.skipif(
        not all(shutil.which(tool) for tool in ("unshare", "dnsmasq")),
        reason="needs unshare and dnsmasq (run scripts/setup.sh)",
    ),
]
PLAN = load_plan(CASES_DIR / "dhcp" / "Pulumi.dhcp.yaml")
FARM = PLAN.sector("farm")
DOMAIN = "farm.home.arpa"
TRACTOR_MAC = "bc:24:11:30:01:99"
OTHER_MAC = "bc:24:11:aa:00:01"
SECOND_MAC = "bc:24:11:aa:00:02"


def render_root(root: Path, sector: SectorPlan = FARM) -> None:
    """The DNS appliance's files under ``root``, and an empty lease directory."""
    for spec in sector_bundles(PLAN, sector)["dns"].files:
        target = root / spec.path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(spec.content)
        target.chmod(spec.mode)
    (root / LEASE_DIR.lstrip("/")).mkdir(parents=True, exist_ok=True)


def in_private_mounts(root: Path, script: str, net: bool = False) -> str:
    """Run ``script`` with ``root``'s lease directory over the real one; its stdout."""
    mounts = f"mount --bind {root}{LEASE_DIR} {LEASE_DIR}\n"
    argv = ["unshare", "--mount", "--propagation", "private", *(["--net"] if net else [])]
    result = subprocess.run(
        [*argv, "sh", "-euc", mounts + script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def lease_names(tmp_path: Path, *calls: tuple[str, ...]) -> list[str]:
    """Run the rendered lease script once per call (ACTION MAC IP [NAME]); the hosts file."""
    render_root(tmp_path)
    script = tmp_path / DHCP_SCRIPT.lstrip("/")
    lines = [" ".join(["sh", str(script), *map(shlex.quote, call)]) for call in calls]
    in_private_mounts(tmp_path, "\n".join(lines) + f"\ncat {DHCP_HOSTS} 2>/dev/null || true\n")
    hosts = tmp_path / DHCP_HOSTS.lstrip("/")
    return hosts.read_text().splitlines() if hosts.exists() else []


def test_a_lease_name_comes_and_goes(tmp_path):
    assert lease_names(tmp_path, ("add", OTHER_MAC, "10.30.1.20", "drone")) == [
        f"10.30.1.20 drone.{DOMAIN}"
    ]
    gone = lease_names(
        tmp_path,
        ("add", OTHER_MAC, "10.30.1.20", "drone"),
        ("del", OTHER_MAC, "10.30.1.20", "drone"),
    )
    assert gone == []


def test_the_names_stay_readable_whatever_the_umask(tmp_path):
    render_root(tmp_path)
    script = tmp_path / DHCP_SCRIPT.lstrip("/")
    in_private_mounts(tmp_path, f"umask 077\nsh {script} add {OTHER_MAC} 10.30.1.20 drone\n")
    assert (tmp_path / DHCP_HOSTS.lstrip("/")).stat().st_mode & 0o777 == 0o644


def test_a_renamed_lease_keeps_one_line(tmp_path):
    calls = (("add", OTHER_MAC, "10.30.1.20", "drone"), ("old", OTHER_MAC, "10.30.1.20", "Cam2"))
    assert lease_names(tmp_path, *calls) == [f"10.30.1.20 cam2.{DOMAIN}"]


@pytest.mark.parametrize(
    "name",
    ["gateway", "dns", "lb", "barn", "Silo", "shed", "tractor", "wpad", "ISATAP", "localhost"],
)
def test_appliance_and_declared_names_are_never_published(tmp_path, name):
    assert lease_names(tmp_path, ("add", OTHER_MAC, "10.30.1.21", name)) == []


def test_a_bound_name_only_for_its_own_mac_and_never_taken_from_it(tmp_path):
    calls = (
        ("add", TRACTOR_MAC, "10.30.1.22", "tractor"),
        ("add", OTHER_MAC, "10.30.1.23", "tractor"),
    )
    assert lease_names(tmp_path, *calls) == [f"10.30.1.22 tractor.{DOMAIN}"]


def test_the_last_client_claiming_a_free_name_takes_it(tmp_path):
    """As dnsmasq does: the name moves to the newest lease, the older lease loses it."""
    calls = (("add", OTHER_MAC, "10.30.1.24", "cam"), ("add", SECOND_MAC, "10.30.1.25", "cam"))
    assert lease_names(tmp_path, *calls) == [f"10.30.1.25 cam.{DOMAIN}"]


@pytest.mark.parametrize("name", ["", "-cam", "cam-", "cam_1", "cam.other.domain", "x" * 64])
def test_names_that_are_no_dns_label_are_never_published(tmp_path, name):
    assert lease_names(tmp_path, ("add", OTHER_MAC, "10.30.1.26", name)) == []


def test_a_63_character_label_is_published(tmp_path):
    label = "a" * 63
    assert lease_names(tmp_path, ("add", OTHER_MAC, "10.30.1.27", label)) == [
        f"10.30.1.27 {label}.{DOMAIN}"
    ]


@pytest.mark.parametrize(
    "call",
    [("init",), ("tftp", "1024", "10.30.1.28", "/boot"), ("add", OTHER_MAC, "fd00::5", "v6")],
)
def test_other_actions_and_ipv6_change_nothing(tmp_path, call):
    kept = ("add", OTHER_MAC, "10.30.1.29", "kept")
    assert lease_names(tmp_path, kept, call) == [f"10.30.1.29 kept.{DOMAIN}"]


# --- the real dnsmasq: leases on disk, checked again at every start ---------------------------

#: The DNS appliance's /etc over the real one, its eth0 (a veth, its peer peer0) and dnsmasq
#: running on it until the script ends.
DNSMASQ_UP = """
mount -t overlay olt-test-etc -o lowerdir={root}/etc:/etc /etc
ip link set lo up
ip link add eth0 type veth peer name peer0
ip addr add {dns}/{prefix} dev eth0
ip link set eth0 up
dnsmasq -k -C /etc/dnsmasq.conf --pid-file={root}/dnsmasq.pid --log-facility=- \\
    > {root}/dnsmasq.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
"""
DNSMASQ_START = (
    DNSMASQ_UP
    + """ip link set peer0 up
for _ in $(seq 50); do
  [ "$(cat {hosts})" = "{wanted}" ] && break
  sleep 0.1
done
cat {hosts}
"""
)


def test_dnsmasq_rechecks_every_lease_on_disk_when_it_starts(tmp_path):
    """Expired leases lose their name (``del``), a lease whose name is now declared loses it,
    a valid lease keeps its name; the lease file keeps the valid leases (a restart loses
    nothing)."""
    render_root(tmp_path)
    now = int(time.time())
    leases = [
        f"{now - 60} {OTHER_MAC} 10.30.1.30 drone *",  # expired a minute ago
        f"{now + 3600} {SECOND_MAC} 10.30.1.31 barn *",  # barn is declared since
        f"{now + 3600} bc:24:11:aa:00:03 10.30.1.32 plough *",
    ]
    (tmp_path / LEASE_FILE.lstrip("/")).write_text("\n".join(leases) + "\n")
    stale = [
        f"10.30.1.30 drone.{DOMAIN}",
        f"10.30.1.31 barn.{DOMAIN}",
        f"10.30.1.32 plough.{DOMAIN}",
    ]
    (tmp_path / DHCP_HOSTS.lstrip("/")).write_text("\n".join(stale) + "\n")
    wanted = f"10.30.1.32 plough.{DOMAIN}"
    out = in_private_mounts(
        tmp_path,
        DNSMASQ_START.format(
            root=tmp_path,
            dns=FARM.dns.sector_address,
            prefix=FARM.first_subnet.cidr.prefixlen,
            hosts=DHCP_HOSTS,
            wanted=wanted,
        ),
        net=True,
    )
    log = (tmp_path / "dnsmasq.log").read_text()
    assert out.splitlines() == [wanted], log
    kept = (tmp_path / LEASE_FILE.lstrip("/")).read_text()
    assert "10.30.1.32" in kept and "10.30.1.31" in kept
    assert "10.30.1.30" not in kept  # the expired lease is gone from disk too


# --- the real dnsmasq answering udhcpc: who gets a lease ---------------------------------

CLIENTS = (
    DNSMASQ_UP
    + """printf '#!/bin/sh\\n[ "$1" = bound ] && echo "$ip" || true\\n' > {root}/bound.sh
chmod 755 {root}/bound.sh
{clients}
"""
)


def leases_given(tmp_path: Path, sector: str, clients: list[tuple[str, str | None]]) -> list[str]:
    """Run dnsmasq for ``sector`` and one udhcpc after the other on its link, each with a MAC
    and a client identifier (hex, or None: none sent); the address each was given ("" for
    none)."""
    plan = PLAN.sector(sector)
    render_root(tmp_path, plan)
    runs = []
    for mac, clid in clients:
        options = f"-C -x 0x3d:{clid}" if clid else "-C"
        runs.append(
            f"ip link set peer0 down; ip link set peer0 address {mac}; ip link set peer0 up\n"
            f'echo "lease=$(udhcpc -f -q -n -i peer0 {options} -t 4 -T 1 -A 1 '
            f'-s {tmp_path}/bound.sh 2>/dev/null | tail -n 1)"'
        )
    script = CLIENTS.format(
        root=tmp_path,
        dns=plan.dns.sector_address,
        prefix=plan.first_subnet.cidr.prefixlen,
        clients="\n".join(runs),
    )
    out = in_private_mounts(tmp_path, script, net=True)
    return [line.removeprefix("lease=") for line in out.splitlines() if line.startswith("lease=")]


def test_a_client_rotating_its_client_id_keeps_one_lease(tmp_path):
    rotating = [(OTHER_MAC, f"01{n:02x}aabbccddee") for n in range(4)]
    given = leases_given(tmp_path, "den", [*rotating, (SECOND_MAC, None)])
    assert len(given) == 5 and all(given), given
    assert len(set(given[:4])) == 1  # one MAC, one address, whatever the client-id
    assert given[4] != given[0]


def test_known_only_answers_the_declared_macs_alone(tmp_path):
    given = leases_given(
        tmp_path,
        "pen",
        [("bc:24:11:60:00:02", None), (OTHER_MAC, None), ("bc:24:11:60:00:01", None)],
    )
    goat, stranger, sheep = given
    assert goat == "10.60.0.20"
    assert stranger == ""
    assert sheep.startswith("10.60.0.")
