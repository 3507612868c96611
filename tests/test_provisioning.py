"""The provisioning script: files part against a root directory, commands part in a sandbox.

The files part runs as it will for the twin (``--root DIR``). The commands part runs in a
private mount namespace whose /etc, /run and /usr/local are fresh tmpfs mounts and whose
package and service tools are stubs that log their calls, so the host is never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from orbitlab.plan import PortForwardPlan
from orbitlab.rendering import Bundle, provisioning_script, sector_bundles
from orbitlab.stack import load_plan

EXAMPLE = Path(__file__).parent.parent / "stacks" / "Pulumi.example.yaml"


@pytest.fixture(scope="module")
def bundles() -> dict[str, Bundle]:
    plan = load_plan(str(EXAMPLE))
    return sector_bundles(plan, plan.sector("web"))


def snapshot(root: Path) -> dict[str, tuple[int, int, int, bytes]]:
    """Every file under root: (mode, inode, mtime_ns, content), keyed by in-container path."""
    result = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            stat = path.stat()
            key = "/" + str(path.relative_to(root))
            result[key] = (stat.st_mode & 0o7777, stat.st_ino, stat.st_mtime_ns, path.read_bytes())
    return result


def run_files_part(script: str, root: Path, env: dict[str, str] | None = None):
    return subprocess.run(
        ["sh", "-s", "--", "--root", str(root)],
        input=script,
        text=True,
        capture_output=True,
        env=env,
        check=False,
    )


@pytest.mark.parametrize("role", ["gateway", "dns", "lb"])
def test_files_part_writes_exactly_the_bundle_and_is_idempotent(bundles, tmp_path, role):
    bundle = bundles[role]
    script = provisioning_script(bundle)
    first = run_files_part(script, tmp_path)
    assert first.returncode == 0, first.stderr
    files = snapshot(tmp_path)
    assert set(files) == {spec.path for spec in bundle.files}
    for spec in bundle.files:
        mode, _, _, content = files[spec.path]
        assert content == spec.content.encode()
        assert mode == spec.mode
    assert first.stderr.count("wrote ") == len(bundle.files)

    second = run_files_part(script, tmp_path)
    assert second.returncode == 0, second.stderr
    assert snapshot(tmp_path) == files  # same inodes, mtimes, modes and contents
    assert "wrote" not in second.stderr


def test_files_part_repairs_a_changed_file_and_mode(bundles, tmp_path):
    script = provisioning_script(bundles["gateway"])
    run_files_part(script, tmp_path)
    nft = tmp_path / "etc/nftables.nft"
    nft.write_text("flush ruleset\n")
    nft.chmod(0o600)
    result = run_files_part(script, tmp_path)
    assert result.returncode == 0
    assert result.stderr.count("wrote ") == 1
    assert nft.read_text() == bundles["gateway"].file("/etc/nftables.nft").content
    assert nft.stat().st_mode & 0o777 == 0o755


def test_files_part_runs_no_command(bundles, tmp_path):
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    calls = tmp_path / "calls.log"
    for tool in ("apk", "rc-service", "rc-update", "nft", "vtysh", "haproxy", "sysctl", "ip"):
        stub = stubs / tool
        stub.write_text(f'#!/bin/sh\necho {tool} "$@" >> {calls}\n')
        stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}"}
    for role, bundle in bundles.items():
        result = run_files_part(provisioning_script(bundle), tmp_path / role, env)
        assert result.returncode == 0, result.stderr
    assert not calls.exists()


def test_usage_error_on_unknown_argument(bundles):
    result = subprocess.run(
        ["sh", "-s", "--", "--rot", "/tmp/x"],
        input=provisioning_script(bundles["dns"]),
        text=True,
        capture_output=True,
        check=False,
    )
    assert result.returncode == 64
    assert "usage: provision.sh [--root DIR]" in result.stderr


def test_script_holds_the_files_and_commands_apart(bundles):
    script = provisioning_script(bundles["gateway"])
    files_at = script.index("write_files() {")
    commands_at = script.index("prepare() {")
    assert files_at < commands_at
    assert "apk add" not in script[files_at:commands_at]
    assert "put_file" not in script[commands_at : script.index('if [ "$FILES_ONLY" = 1 ]')]


STUB_RC_SERVICE = """#!/bin/sh
echo "rc-service $*" >> /run/calls.log
case "$2" in
  status) [ -e "/run/running-$1" ] ;;
  start) : > "/run/running-$1" ;;
  *) : ;;
esac
"""
STUB_CHECK = """#!/bin/sh
echo "{tool} $*" >> /run/calls.log
case "$*" in *-c*|*-C*) [ ! -e /run/fail-check ] || exit 1 ;; esac
"""
# `nft list table inet orbitlab` answers whether the ruleset is loaded
STUB_NFT = """#!/bin/sh
echo "nft $*" >> /run/calls.log
case "$1" in list) [ -e /run/running-nftables ] ; exit ;; esac
case "$*" in *-c*) [ ! -e /run/fail-check ] || exit 1 ;; esac
"""
STUB_APK = """#!/bin/sh
echo "apk $*" >> /run/calls.log
case "$1" in
  info) [ -e /run/apk-installed ] ;;
  add) : > /run/apk-installed ;;
esac
"""
STUB_IP = """#!/bin/sh
echo "ip $*" >> /run/calls.log
case "$*" in "route show default") echo "default via 10.200.0.1 dev eth1" ;; esac
"""
# rc-update stands for "the run is interrupted here" when /run/interrupt exists
STUB_RC_UPDATE = """#!/bin/sh
echo "rc-update $*" >> /run/calls.log
[ ! -e /run/interrupt ] || kill -9 $PPID
"""


def sandbox_run(stubs: Path, steps: str) -> subprocess.CompletedProcess:
    """Run shell steps with /etc, /run and /usr/local private (tmpfs) and stubs on PATH."""
    prelude = f"""
set -u
mount -t tmpfs orbitlab-test /etc
mount -t tmpfs orbitlab-test /run
mount -t tmpfs orbitlab-test /usr/local
mkdir -p /usr/local/sbin /etc/apk
cp {stubs}/* /usr/local/sbin/
echo 'https://mirror.invalid/alpine/v3.22/main' > /etc/apk/repositories
"""
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", prelude + steps],
        text=True,
        capture_output=True,
        check=False,
        timeout=60,
    )


def write_stubs(stubs: Path) -> None:
    stubs.mkdir()
    (stubs / "rc-service").write_text(STUB_RC_SERVICE)
    (stubs / "rc-update").write_text(STUB_RC_UPDATE)
    (stubs / "ip").write_text(STUB_IP)
    (stubs / "nft").write_text(STUB_NFT)
    (stubs / "vtysh").write_text(STUB_CHECK.format(tool="vtysh"))
    (stubs / "apk").write_text(STUB_APK)
    for tool in ("sysctl", "nslookup", "conntrack"):
        (stubs / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >> /run/calls.log\n')
    for stub in stubs.iterdir():
        stub.chmod(0o755)


RUNS = ("first", "second", "changed", "broken", "retry", "interrupted", "after")


@pytest.fixture(scope="module")
def gateway_runs(bundles, tmp_path_factory) -> dict[str, list[str]]:
    """The gateway's script run in a sandbox, one scenario after the other; each run's log."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root")
    tmp_path = tmp_path_factory.mktemp("gateway")
    write_stubs(tmp_path / "stubs")
    bundle = bundles["gateway"]
    changed = changed_gateway_bundle(PortForwardPlan("udp", 5353, bundle_target(bundles)))
    more = changed_gateway_bundle(PortForwardPlan("udp", 5354, bundle_target(bundles)))
    for name, version in (("v1", bundle), ("v2", changed), ("v3", more)):
        (tmp_path / f"{name}.sh").write_text(provisioning_script(version))
    out = tmp_path / "out"
    out.mkdir()
    steps = f"""
run() {{ : > /run/calls.log; sh {tmp_path}/$1.sh 2>/dev/null; echo "exit=$?" >> /run/calls.log;
         cp /run/calls.log {out}/$2.log; }}
: > /run/fail-check
run v1 failed-first
rm /run/fail-check
run v1 first
run v1 second
run v2 changed
: > /run/fail-check
run v1 broken
rm /run/fail-check
run v1 retry
: > /run/interrupt
rm -f /etc/runlevels/boot/sysctl
run v3 interrupted
rm /run/interrupt
run v3 after
cp /etc/nftables.nft {out}/nftables.nft
"""
    result = sandbox_run(tmp_path / "stubs", steps)
    assert result.returncode == 0, result.stderr
    logs = {name: (out / f"{name}.log").read_text().splitlines() for name in RUNS}
    logs["failed-first"] = (out / "failed-first.log").read_text().splitlines()
    logs["nftables.nft"] = (out / "nftables.nft").read_text().splitlines()
    return logs


FORWARDING_OFF = "sysctl -q -w net.ipv4.ip_forward=0"


def test_a_first_run_installs_checks_and_starts_in_order(gateway_runs) -> None:
    installing = gateway_runs["failed-first"]  # packages come first, before any check
    assert installing.index("apk update --quiet") < installing.index(
        "apk add --quiet --no-progress frr nftables iproute2 conntrack-tools"
    )
    assert installing.index(
        "apk add --quiet --no-progress frr nftables iproute2 conntrack-tools"
    ) < (installing.index("nft -c -f /etc/nftables.nft"))
    first = gateway_runs["first"]
    assert first[-1] == "exit=0"
    assert first.index("nft -c -f /etc/nftables.nft") < first.index("rc-service nftables start")
    # forwarding is off until the ruleset is loaded, then its service turns it on, then FRR
    assert first.index(FORWARDING_OFF) < first.index("rc-service nftables start")
    assert first.index("rc-service nftables start") < first.index(
        "rc-service orbitlab-forwarding start"
    )
    assert first.index("rc-service orbitlab-forwarding start") < first.index("rc-service frr start")
    assert "vtysh -C -f /etc/frr/frr.conf" in first
    assert "sysctl -q -p /etc/sysctl.d/90-orbitlab.conf" in first


def test_a_failed_check_on_a_first_run_leaves_forwarding_off(gateway_runs) -> None:
    failed = gateway_runs["failed-first"]
    assert failed[-1] != "exit=0"
    assert FORWARDING_OFF in failed
    assert not [line for line in failed if line.startswith("rc-service") and "start" in line]


def test_a_second_run_changes_nothing(gateway_runs) -> None:
    second = gateway_runs["second"]
    assert second[-1] == "exit=0"
    assert not [line for line in second if line.startswith(("apk update", "apk add", "nslookup"))]
    assert not [
        line for line in second if "reload" in line or " start" in line or "restart" in line
    ]
    # the ruleset is loaded: forwarding is left alone
    assert FORWARDING_OFF not in second


def test_a_changed_ruleset_is_reloaded_and_flushes_connection_tracking(gateway_runs) -> None:
    changed = gateway_runs["changed"]
    assert changed.index("rc-service nftables reload") < changed.index("conntrack -F")
    assert not [line for line in changed if line.startswith("rc-service frr re")]


def test_a_failed_check_reloads_nothing_and_the_next_run_catches_up(gateway_runs) -> None:
    broken = gateway_runs["broken"]
    assert broken[-1] != "exit=0"
    assert "rc-service nftables reload" not in broken
    retry = gateway_runs["retry"]
    assert retry[-1] == "exit=0"
    assert "rc-service nftables reload" in retry


def test_an_interrupted_run_is_caught_up_by_the_next(gateway_runs) -> None:
    interrupted = gateway_runs["interrupted"]  # killed after writing, before reloading
    assert "rc-service nftables reload" not in interrupted
    assert interrupted[-1] != "exit=0"
    after = gateway_runs["after"]  # the files are already written: still reloaded
    assert after[-1] == "exit=0"
    assert "rc-service nftables reload" in after
    assert any("udp dport 5354" in line for line in gateway_runs["nftables.nft"])


def forwarding_service(bundles) -> str:
    return bundles["gateway"].file("/etc/init.d/orbitlab-forwarding").content


@pytest.mark.parametrize("loaded", [True, False])
def test_the_forwarding_service_turns_forwarding_on_only_with_the_ruleset(
    bundles, tmp_path, loaded: bool
) -> None:
    """The rendered OpenRC script's start(), with stubs for nft and sysctl."""
    calls = tmp_path / "calls"
    body = forwarding_service(bundles).split("\n", 1)[1]  # without the openrc-run shebang
    script = f"""
ebegin() {{ :; }}
eend() {{ return "$1"; }}
nft() {{ echo "nft $*" >> {calls}; {"true" if loaded else "false"}; }}
sysctl() {{ echo "sysctl $*" >> {calls}; }}
{body}
start
"""
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=False)
    logged = calls.read_text().splitlines()
    assert logged[0] == "nft list table inet orbitlab"
    if loaded:
        assert result.returncode == 0
        assert logged[1:] == ["sysctl -q -w net.ipv4.ip_forward=1"]
    else:
        assert result.returncode != 0
        assert logged[1:] == []
    assert "need nftables" in forwarding_service(bundles)


def bundle_target(bundles):
    plan = load_plan(str(EXAMPLE))
    return plan.sector("web").port_forwards[0].to


def changed_gateway_bundle(extra: PortForwardPlan) -> Bundle:
    import dataclasses

    plan = load_plan(str(EXAMPLE))
    web = plan.sector("web")
    web = dataclasses.replace(web, port_forwards=(*web.port_forwards, extra))
    return sector_bundles(plan, web)["gateway"]


STUB_APK_SERVICES = """#!/bin/sh
echo "apk $*" >> /run/calls.log
case "$1" in
  info) [ -e /run/apk-installed ] ;;
  add) : > /run/apk-installed; mkdir -p /etc/init.d
       for package in "$@"; do [ -e "/etc/init.d/$package" ] || : > "/etc/init.d/$package"; done ;;
esac
"""
STUB_RC_UPDATE_RUNLEVELS = """#!/bin/sh
echo "rc-update $*" >> /run/calls.log
mkdir -p /etc/runlevels/default
case "$1" in
  add) : > "/etc/runlevels/default/$2" ;;
  del) rm -f "/etc/runlevels/default/$2" ;;
esac
"""


def dns_bundle_variants() -> dict[str, Bundle]:
    """The web Sector's DNS bundle as declared, with one more declared host, and with DHCP off."""
    import dataclasses

    from netaddr import IPAddress

    from orbitlab.plan import HostPlan

    plan = load_plan(str(EXAMPLE))
    web = plan.sector("web")
    more = dataclasses.replace(web, hosts=(*web.hosts, HostPlan("app9", IPAddress("172.16.0.29"))))
    off = dataclasses.replace(web, dns=dataclasses.replace(web.dns, dhcp=None))
    return {
        name: sector_bundles(plan, sector)["dns"]
        for name, sector in (("v1", web), ("v2", more), ("off", off))
    }


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root")
def test_dns_commands_check_dnsmasq_restart_it_on_change_and_retire_it(tmp_path):
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    (stubs / "rc-service").write_text(STUB_RC_SERVICE)
    (stubs / "rc-update").write_text(STUB_RC_UPDATE_RUNLEVELS)
    (stubs / "apk").write_text(STUB_APK_SERVICES)
    (stubs / "ip").write_text(STUB_IP)
    (stubs / "dnsmasq").write_text(STUB_CHECK.format(tool="dnsmasq"))
    (stubs / "nslookup").write_text('#!/bin/sh\necho "nslookup $*" >> /run/calls.log\n')
    for stub in stubs.iterdir():
        stub.chmod(0o755)
    for name, bundle in dns_bundle_variants().items():
        (tmp_path / f"{name}.sh").write_text(provisioning_script(bundle))
    out = tmp_path / "out"
    out.mkdir()
    steps = f"""
mount -t tmpfs orbitlab-test /var
run() {{ : > /run/calls.log; sh {tmp_path}/$1.sh 2>/dev/null; echo "exit=$?" >> /run/calls.log;
         cp /run/calls.log {out}/$2.log; }}
run v1 first
run v1 second
: > /run/fail-check
run v2 broken
rm /run/fail-check
run v2 changed
run off off
ls -d /var/lib/misc > {out}/state-dir
"""
    result = sandbox_run(stubs, steps)
    assert result.returncode == 0, result.stderr
    log = {
        name: (out / f"{name}.log").read_text().splitlines()
        for name in ("first", "second", "broken", "changed", "off")
    }
    first = log["first"]
    assert first[-1] == "exit=0"
    assert "apk add --quiet --no-progress coredns dnsmasq" in first
    assert first.index("dnsmasq --test -C /etc/dnsmasq.conf") < first.index(
        "rc-service dnsmasq start"
    )
    assert "rc-update add dnsmasq default" in first
    assert (out / "state-dir").read_text().strip() == "/var/lib/misc"  # made for the leases

    second = log["second"]
    assert second[-1] == "exit=0"
    assert not [line for line in second if "start" in line or "restart" in line]

    broken = log["broken"]  # dnsmasq --test fails: nothing is restarted, the run fails
    assert broken[-1] != "exit=0"
    assert "rc-service dnsmasq restart" not in broken
    changed = log["changed"]  # a new host: the zone and the lease script's names changed
    assert changed[-1] == "exit=0"
    assert changed.index("dnsmasq --test -C /etc/dnsmasq.conf") < changed.index(
        "rc-service dnsmasq restart"
    )
    assert "rc-service coredns restart" in changed

    off = log["off"]  # DHCP off: dnsmasq is stopped and taken out of the runlevel
    assert off[-1] == "exit=0"
    assert "rc-service dnsmasq stop" in off
    assert "rc-update del dnsmasq default" in off
    assert not [line for line in off if line.startswith("dnsmasq")]
