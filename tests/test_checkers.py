"""Every rendered file is accepted by the real tool that will read it, and a deliberately
broken copy is rejected by the same tool.

- nftables: ``nft -c -f`` inside a throwaway network namespace (``unshare --net``), so the
  check never sees the host's ruleset;
- FRR: ``vtysh -C -f`` (exit 2 on error; never ``zebra -C``);
- HAProxy: ``haproxy -c -f``;
- dnsmasq: ``dnsmasq --test -C`` (what provisioning runs before it restarts the DHCP server);
- CoreDNS: started for real on the rendered Corefile in a throwaway network and mount
  namespace (the rendered /etc bind-mounted over /etc so absolute paths hold, and a hosts
  file of DHCP names over the lease directory) and asked forward, reverse, NXDOMAIN and an
  out-of-ACL query, and forward and reverse for a name from a lease.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from netaddr import IPAddress

from orbitlab.plan import SectorPlan
from orbitlab.rendering import DHCP_HOSTS, DNSMASQ_CONF, LEASE_DIR, Bundle, sector_bundles
from orbitlab.stack import load_plan
from tests.golden import cases, stack_file

pytestmark = [
    pytest.mark.tools,
    pytest.mark.skipif(os.geteuid() != 0, reason="the checkers need root (network namespaces)"),
]
TOOLS = ("nft", "vtysh", "haproxy", "coredns", "dnsmasq", "dig", "unshare")
MISSING = [tool for tool in TOOLS if shutil.which(tool) is None]
if MISSING:
    pytestmark.append(pytest.mark.skip(reason=f"missing tools (run scripts/setup.sh): {MISSING}"))


def all_bundles() -> list[tuple[str, SectorPlan, dict[str, Bundle]]]:
    found = []
    for case in cases():
        plan = load_plan(str(stack_file(case)))
        for sector in plan.sectors:
            found.append((f"{case.name}-{sector.name}", sector, sector_bundles(plan, sector)))
    return found


BUNDLES = all_bundles()
IDS = [name for name, _, _ in BUNDLES]
DHCP_BUNDLES = [b for b in BUNDLES if b[1].dns.dhcp is not None]


def run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)


def nft_check(path: Path) -> subprocess.CompletedProcess:
    return run(["unshare", "--net", "nft", "-c", "-f", str(path)])


def vtysh_check(path: Path) -> subprocess.CompletedProcess:
    return run(["vtysh", "-C", "-f", str(path)])


def haproxy_check(path: Path) -> subprocess.CompletedProcess:
    return run(["haproxy", "-c", "-q", "-f", str(path)])


def dnsmasq_check(path: Path) -> subprocess.CompletedProcess:
    return run(["dnsmasq", "--test", "-C", str(path)])


def write(tmp_path: Path, bundle: Bundle, path: str, content: str | None = None) -> Path:
    target = tmp_path / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(bundle.file(path).content if content is None else content)
    return target


@pytest.mark.parametrize(("name", "sector", "bundles"), BUNDLES, ids=IDS)
def test_nftables_ruleset_is_accepted(name, sector, bundles, tmp_path):
    result = nft_check(write(tmp_path, bundles["gateway"], "/etc/nftables.nft"))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("name", "sector", "bundles"),
    [b for b in BUNDLES if "lb" in b[2]],
    ids=[b[0] for b in BUNDLES if "lb" in b[2]],
)
def test_the_load_balancers_ruleset_is_accepted(name, sector, bundles, tmp_path):
    ruleset = bundles["lb"].file("/etc/nftables.nft").content
    assert nft_check(write(tmp_path, bundles["lb"], "/etc/nftables.nft")).returncode == 0
    broken = write(tmp_path, bundles["lb"], "/etc/nftables.nft", ruleset.replace("dport", "dprt"))
    assert nft_check(broken).returncode != 0


@pytest.mark.parametrize(("name", "sector", "bundles"), BUNDLES, ids=IDS)
def test_frr_config_is_accepted(name, sector, bundles, tmp_path):
    result = vtysh_check(write(tmp_path, bundles["gateway"], "/etc/frr/frr.conf"))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("name", "sector", "bundles"),
    [b for b in BUNDLES if "lb" in b[2]],
    ids=[b[0] for b in BUNDLES if "lb" in b[2]],
)
def test_haproxy_config_is_accepted(name, sector, bundles, tmp_path):
    result = haproxy_check(write(tmp_path, bundles["lb"], "/etc/haproxy/haproxy.cfg"))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("name", "sector", "bundles"), DHCP_BUNDLES, ids=[b[0] for b in DHCP_BUNDLES]
)
def test_dnsmasq_config_is_accepted(name, sector, bundles, tmp_path):
    result = dnsmasq_check(write(tmp_path, bundles["dns"], DNSMASQ_CONF))
    assert result.returncode == 0, result.stderr
    assert "syntax check OK" in result.stderr


def test_every_case_renders_dhcp_and_some_render_it_off():
    assert len(DHCP_BUNDLES) >= 6
    off = [name for name, sector, _ in BUNDLES if sector.dns.dhcp is None]
    assert off == ["dhcp-vault"]


def test_broken_dnsmasq_configs_are_rejected(tmp_path):
    _, sector, bundles = next(b for b in DHCP_BUNDLES if b[0] == "dhcp-farm")
    config = bundles["dns"].file(DNSMASQ_CONF).content
    typo = config.replace("dhcp-range=", "dhcp-rnage=", 1)
    # a pool that leaves its netmask, as a mis-rendered range would
    assert sector.dns.dhcp is not None and str(sector.dns.dhcp.pool_end) in config
    outside = config.replace(str(sector.dns.dhcp.pool_end), "10.30.9.99", 1)
    for broken, message in ((typo, "bad option"), (outside, "inconsistent DHCP range")):
        result = dnsmasq_check(write(tmp_path, bundles["dns"], DNSMASQ_CONF, broken))
        assert result.returncode != 0
        assert message in result.stderr


def test_broken_files_are_rejected(tmp_path):
    _, _, bundles = next(b for b in BUNDLES if "lb" in b[2])
    nft = bundles["gateway"].file("/etc/nftables.nft").content
    frr = bundles["gateway"].file("/etc/frr/frr.conf").content
    haproxy = bundles["lb"].file("/etc/haproxy/haproxy.cfg").content
    broken_nft = write(
        tmp_path, bundles["gateway"], "/etc/nftables.nft", nft.replace("masquerade", "masquerad")
    )
    broken_frr = write(
        tmp_path,
        bundles["gateway"],
        "/etc/frr/frr.conf",
        frr.replace(" ip address", " ip adress", 1),
    )
    broken_haproxy = write(
        tmp_path,
        bundles["lb"],
        "/etc/haproxy/haproxy.cfg",
        haproxy.replace("balance roundrobin", "balance sometimes", 1),
    )
    assert nft_check(broken_nft).returncode != 0
    assert vtysh_check(broken_frr).returncode == 2
    assert haproxy_check(broken_haproxy).returncode != 0


DNS_PROBE = """
set -eu
ip link set lo up
ip link add dns0 type veth peer name client0
ip addr add {dns}/{prefix} dev dns0
ip addr add {client}/{prefix} dev dns0
ip link set dns0 up
ip link set client0 up
mount --bind {root}/etc /etc
mount --bind {root}{lease_dir} {lease_dir}
coredns -conf /etc/coredns/Corefile > {log} 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null' EXIT
for _ in $(seq 50); do
  dig +time=1 +tries=1 @{dns} -b {client} dns.{domain} | grep -q "status: NOERROR" && break
  sleep 0.1
done
q() {{ echo "=== $*"; dig +time=1 +tries=1 @{dns} "$@" || true; }}
q -b {client} {host}.{domain} A
q -b {client} -x {host_address}
q -b {client} no-such-host.{domain} A
q -b 127.0.0.1 {host}.{domain} A
q -b {client} lease1.{domain} A
q -b {client} -x {lease_address}
"""


@pytest.mark.parametrize(("name", "sector", "bundles"), BUNDLES, ids=IDS)
def test_coredns_serves_the_rendered_corefile(name, sector, bundles, tmp_path):
    for spec in bundles["dns"].files:
        write(tmp_path, bundles["dns"], spec.path)
    # What Proxmox gives the container: its resolver is the upstream, not itself.
    (tmp_path / "etc" / "resolv.conf").write_text("nameserver 192.0.2.53\n")
    # A name from a DHCP lease, as the lease script writes it (ignored with DHCP off).
    first = sector.subnets[0].cidr
    lease_address = sector.dns.dhcp.pool_end if sector.dns.dhcp else IPAddress(first.last - 1)
    hosts = tmp_path / DHCP_HOSTS.lstrip("/")
    hosts.parent.mkdir(parents=True)
    hosts.write_text(f"{lease_address} lease1.{sector.domain}\n")
    host_name, host_address = ("gateway", sector.gateway_address)
    fixed = sector.fixed_hosts
    if fixed:
        host_name, host_address = fixed[0].name, fixed[0].address
    script = DNS_PROBE.format(
        dns=sector.dns.sector_address,
        client=fixed[-1].address if fixed else IPAddress(first.first + 9),
        prefix=first.prefixlen,
        root=tmp_path,
        log=tmp_path / "coredns.log",
        domain=sector.domain,
        host=host_name,
        host_address=host_address,
        lease_dir=LEASE_DIR,
        lease_address=lease_address,
    )
    result = subprocess.run(
        ["unshare", "--net", "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr + (tmp_path / "coredns.log").read_text()
    forward, reverse, missing, outsider, lease, lease_reverse = parse_answers(result.stdout)
    assert forward == ["NOERROR", str(host_address)], result.stdout
    assert reverse == ["NOERROR", f"{host_name}.{sector.domain}."]
    assert missing == ["NXDOMAIN"]
    assert outsider == ["REFUSED"]
    if sector.dns.dhcp is None:  # no hosts plugin: the file is never read
        assert (lease, lease_reverse) == (["NXDOMAIN"], ["NXDOMAIN"])
    else:
        assert lease == ["NOERROR", str(lease_address)], result.stdout
        assert lease_reverse == ["NOERROR", f"lease1.{sector.domain}."]


def parse_answers(output: str) -> list[list[str]]:
    """Per ``dig`` call: its status, then the data of each A/PTR answer."""
    answers = []
    for block in output.split("=== ")[1:]:
        status = re.search(r"status: (\w+)", block)
        records = re.findall(r"^\S+\s+\d+\s+IN\s+(?:A|PTR)\s+(\S+)$", block, re.MULTILINE)
        answers.append(([status.group(1)] if status else ["NO-ANSWER"]) + records)
    return answers


def test_broken_corefile_is_rejected(tmp_path):
    _, _, bundles = BUNDLES[0]
    corefile = bundles["dns"].file("/etc/coredns/Corefile").content
    broken = write(
        tmp_path,
        bundles["dns"],
        "/etc/coredns/Corefile",
        corefile.replace("forward .", "forwrd .", 1),
    )
    result = run(["timeout", "10", "coredns", "-conf", str(broken)])
    assert result.returncode == 1
    assert "Unknown directive 'forwrd'" in result.stdout + result.stderr
