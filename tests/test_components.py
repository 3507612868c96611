"""The resource graph of the example stack (stacks/Pulumi.example.yaml) under Pulumi mocks:
types, counts, parents, dependencies, options, IDs, and the appliances' inputs.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter

import pytest

from orbitlab.program import appliance_digests, main
from orbitlab.rendering import (
    guard_path,
    guard_ruleset,
    guard_table,
    provisioning_script,
    sector_bundles,
)
from orbitlab.stack import load_plan
from tests.pulumi_mocks import (
    EXAMPLE_STACK,
    ROOT,
    FakeCluster,
    Run,
    is_secret,
    reveal,
    run_program,
    stack_file_config,
)

SDN_ID = re.compile(r"^[a-zA-Z][a-zA-Z0-9]*[a-zA-Z0-9]$")
CONTAINER = "proxmoxve:index/containerLegacy:ContainerLegacy"
COMMAND = "command:remote:Command"
APPLIER = "proxmoxve:sdn/applier:Applier"
EXAMPLE = load_plan(str(EXAMPLE_STACK))


@pytest.fixture(scope="module")
def run() -> Run:
    return run_program(main, config=stack_file_config(), cluster=FakeCluster())


def test_example_stack_declares_the_expected_resources(run: Run) -> None:
    counts = Counter(r.type for r in run.registrations.values())
    assert counts == {
        "orbitlab:index:Backplane": 1,
        "orbitlab:index:Sector": 2,
        "orbitlab:index:Appliance": 5,  # web: gateway, dns, lb; lab: gateway, dns
        "orbitlab:index:ApplianceTemplates": 1,
        "orbitlab:index:Rollout": 1,
        "proxmoxve:sdn/controller/evpn:Evpn": 1,
        "proxmoxve:sdn/zone/evpn:Evpn": 1,
        "proxmoxve:sdn/zone/vxlan:Vxlan": 2,
        "proxmoxve:sdn/vnet:Vnet": 3,
        "proxmoxve:sdn/subnet:Subnet": 4,  # Backplane, web x2, lab
        # one applier (the rollout's); finalizers: the Backplane's, the rollout's (for all
        # Sectors), one per Sector and one per Sector subnet
        APPLIER: 1 + 1 + 1 + (1 + 2) + (1 + 1),
        CONTAINER: 5,
        # provisioning per appliance, bridge wait per Sector, the SDN check per node, the
        # Sector guard per Sector and node
        COMMAND: 5 + 2 + 2 + 2 * 2,
        "proxmoxve:download/file:File": len(
            {s.node for s in load_plan(str(EXAMPLE_STACK)).sectors}
        ),
    }


def test_every_resource_has_its_component_as_parent(run: Run) -> None:
    components = {r.urn: r for r in run.registrations.values() if not r.custom}
    for registration in run.registrations.values():
        if registration.type.startswith("orbitlab:index:") and registration.name in (
            "backplane",
            "templates",
            "web",
            "lab",
            "rollout",
        ):
            assert registration.parent.endswith("orbitlab-example"), registration.name
            continue
        assert registration.parent in components, registration.name
        owner = components[registration.parent].name
        assert registration.name.startswith(f"{owner}-"), (registration.name, owner)


def test_backplane_sdn_objects_are_ordered_protected_and_applied(run: Run) -> None:
    controller = run.named("backplane-controller")
    zone, vnet, subnet = (run.named(f"backplane-{n}") for n in ("zone", "vnet", "subnet"))
    final, apply = run.named("backplane-finalizer"), run.named("rollout-apply")
    assert run.depends_on(zone.urn, controller.urn)
    assert run.depends_on(vnet.urn, zone.urn)
    assert run.depends_on(subnet.urn, vnet.urn)
    for obj in (controller, zone, vnet, subnet):
        assert final.urn in obj.dependencies, obj.name  # deleted before the finalizer applies
        assert obj.protect and obj.delete_before_replace, obj.name
        assert obj.urn in apply.dependencies
    assert final.protect and final.inputs == {"onCreate": False, "onDestroy": True}
    # The applier must stay replaceable: protecting it would block every re-apply.
    assert not apply.protect
    assert apply.inputs == {"onCreate": True, "onDestroy": False}
    assert re.fullmatch(r"[0-9a-f]{64}", apply.replacement_trigger)


def test_backplane_inputs_follow_the_spec(run: Run) -> None:
    assert run.named("backplane-controller").inputs == {
        "sdnControllerEvpnId": "olevpn",
        "asn": 65001.0,
        "peers": ["192.0.2.11", "192.0.2.12"],
    }
    zone = run.named("backplane-zone").inputs
    assert zone["vrfVxlan"] == 10 and zone["controller"] == "olevpn"
    assert zone["exitNodes"] == zone["nodes"] == ["pve1", "pve2"]
    assert zone["primaryExitNode"] == "pve1" and zone["advertiseSubnets"] is True
    assert zone["mtu"] == 1450
    vnet = run.named("backplane-vnet").inputs
    assert (vnet["tag"], vnet["alias"]) == (100, "orbitlab backplane 10.200.0.0-16")
    assert run.named("backplane-subnet").inputs == {
        "cidr": "10.200.0.0/16",
        "vnet": "olbpvn",
        "gateway": "10.200.0.1",
        "snat": True,
    }


def test_proxmox_ids_fit_eight_characters(run: Run) -> None:
    ids = [
        r.inputs.get("resourceId") or r.inputs.get("sdnControllerEvpnId")
        for r in run.registrations.values()
        if r.type.startswith(
            ("proxmoxve:sdn/zone", "proxmoxve:sdn/vnet", "proxmoxve:sdn/controller")
        )
    ]
    assert sorted(ids) == [
        "olbpvn",
        "olbpz",
        "olevpn",
        "olvn1001",
        "olvn1002",
        "olvz1001",
        "olvz1002",
    ]
    assert all(2 <= len(i) <= 8 and SDN_ID.match(i) for i in ids)
    hostnames = [r.inputs["initialization"]["hostname"] for r in run.of_type(CONTAINER)]
    assert sorted(hostnames) == sorted(
        ["olvn1001-router", "olvn1001-dns", "olvn1001-lb", "olvn1002-router", "olvn1002-dns"]
    )


def test_sector_sdn_ordering_and_apply(run: Run) -> None:
    zone, vnet = run.named("web-zone"), run.named("web-vnet")
    subnets = [run.named(f"web-subnet-172-16-{i}-0-24") for i in (0, 1)]
    final, apply = run.named("web-finalizer"), run.named("rollout-apply")
    assert zone.inputs == {
        "resourceId": "olvz1001",
        "peers": ["192.0.2.11", "192.0.2.12"],
        "mtu": 1450.0,
        "nodes": ["pve1", "pve2"],
    }
    assert vnet.inputs == {
        "resourceId": "olvn1001",
        "zone": "olvz1001",
        "tag": 1001.0,
        "alias": "ol example web",
    }
    assert [s.inputs["gateway"] for s in subnets] == ["172.16.0.1", "172.16.1.1"]
    assert run.depends_on(vnet.urn, zone.urn)
    assert all(run.depends_on(s.urn, vnet.urn) for s in subnets)
    assert final.urn in zone.dependencies and final.urn in vnet.dependencies
    for subnet in subnets:
        # Its own finalizer applies the deletion of a subnet removed from a living Sector.
        own = run.named(f"{subnet.name}-finalizer")
        assert own.urn in subnet.dependencies and own.inputs["onCreate"] is False
    assert {zone.urn, vnet.urn, *(s.urn for s in subnets)} <= apply.dependencies
    assert all(r.delete_before_replace for r in (zone, vnet, *subnets))
    assert not any(r.protect for r in (zone, vnet, *subnets, apply))
    # The Backplane and the Sector are applied together, by the one applier.
    assert run.depends_on(apply.urn, run.named("backplane-subnet").urn)


def test_containers_start_after_the_bridges_exist_and_go_before_their_vnet(run: Run) -> None:
    for sector in ("web", "lab"):
        wait = run.named(f"{sector}-bridges")
        assert run.named("rollout-apply").urn in wait.dependencies
        script = wait.inputs["create"]
        assert "/sys/class/net/$bridge" in script and "olbpvn" in script and "exit 1" in script
        assert reveal(wait.inputs["connection"])["host"] in ("192.0.2.11", "192.0.2.12")
        for container in run.of_type(CONTAINER):
            if not container.name.startswith(f"{sector}-"):
                continue
            assert wait.urn in container.dependencies, container.name
            # Depending on the VNet makes Pulumi delete the container before the VNet.
            assert run.named(f"{sector}-vnet").urn in container.dependencies
            assert container.delete_before_replace


def test_every_node_gets_each_sectors_guard_before_its_appliances_start(run: Run) -> None:
    """The Sector guard is a command per Sector and node (so preview shows it), its script
    on stdin: the rendered ruleset, checked, kept for boot and loaded; deleting it unloads
    the Sector's table."""
    for sector in EXAMPLE.sectors:
        for node in EXAMPLE.backplane.nodes:
            guard = run.named(f"{sector.name}-guard-{node.name}")
            assert reveal(guard.inputs["connection"])["host"] == str(node.address)
            assert guard.inputs["create"] == guard.inputs["update"] == "sh -s"
            script = guard.inputs["stdin"]
            assert guard_ruleset(sector) in script
            assert f"nft -c -f {guard_path(sector)}.new" in script
            assert script.rstrip().endswith(f"nft -f {guard_path(sector)}")
            assert "systemctl enable --quiet orbitlab-guard.service" in script
            assert f"delete table bridge {guard_table(sector)}" in guard.inputs["delete"]
            assert run.named("rollout-apply").urn in guard.dependencies
            for container in run.of_type(CONTAINER):
                if container.name.startswith(f"{sector.name}-"):
                    assert run.depends_on(container.urn, guard.urn), container.name


def test_the_guard_lets_only_the_sector_dns_send_dhcp_replies() -> None:
    plan = load_plan(str(ROOT / "tests" / "data" / "twin" / "Pulumi.three.yaml"))
    shop = plan.sector("shop")
    lab = EXAMPLE.sector("lab")
    lab = dataclasses.replace(lab, dns=dataclasses.replace(lab.dns, dhcp=None))  # enabled: false
    text = guard_ruleset(shop)
    assert 'meta ibrname != "olvn1001" accept' in text
    assert f"udp sport 67 udp dport 68 ether saddr != {shop.dns.mac} counter drop" in text
    for host in shop.hosts:
        if host.mac is not None:
            assert f"ether saddr != {host.mac} counter drop" in text
    assert "icmpv6 type nd-router-advert counter drop" in text
    # a Sector without DHCP: no DHCP rule (a server of its own is the user's), RAs dropped
    assert "udp sport 67" not in guard_ruleset(lab)
    assert "nd-router-advert" in guard_ruleset(lab)


def test_gateway_is_provisioned_before_dns_and_lb(run: Run) -> None:
    gateway = run.named("web-gateway-provision")
    for role in ("dns", "lb"):
        assert gateway.urn in run.named(f"web-{role}-provision").dependencies
    assert not run.depends_on(gateway.urn, run.named("web-dns-provision").urn)


def test_provisioning_runs_the_rendered_script_in_the_container_on_its_node(run: Run) -> None:
    plan = load_plan(str(EXAMPLE_STACK))
    node_addresses = {n.name: str(n.address) for n in plan.backplane.nodes}
    for sector in plan.sectors:
        for role, bundle in sector_bundles(plan, sector).items():
            script = provisioning_script(bundle)
            command = run.named(f"{sector.name}-{role}-provision")
            container = run.named(f"{sector.name}-{role}-ct")
            vmid = int(container.inputs["vmId"])
            assert vmid == sector.vmid(role)
            assert (
                command.inputs["create"]
                == command.inputs["update"]
                == f"pct exec {vmid} -- /bin/sh -s"
            )
            assert command.inputs["stdin"] == script
            # the container alone: a changed script is an update of stdin, not a replacement
            assert command.inputs["triggers"] == [str(vmid)]
            assert reveal(command.inputs["connection"])["host"] == node_addresses[sector.node]
            assert container.inputs["nodeName"] == sector.node
            # A replaced container takes its provisioning with it (so it runs again).
            assert command.deleted_with == container.urn


def test_every_node_checks_the_programs_zones_after_the_apply(run: Run) -> None:
    """Proxmox's apply returns before the nodes reload, and a failed reload is only a
    warning: a check on every node waits for the zones, and what comes after the apply
    (bridge waits, hence containers) waits for every check."""
    applier = run.named("rollout-apply")
    for node in ("pve1", "pve2"):
        check = run.named(f"rollout-check-{node}")
        assert applier.urn in check.dependencies
        script = check.inputs["create"]
        assert check.inputs["update"] == script
        assert f"pvesh get /nodes/{node}/sdn/zones --output-format json" in script
        assert "for zone in olbpz olvz1001 olvz1002; do" in script
        # checked again whenever the applier applies again; pve2, which hosts the
        # appliances, also before a new one starts there
        hosting = [appliance_digests(EXAMPLE)["pve2"]] if node == "pve2" else []
        assert check.inputs["triggers"] == [applier.replacement_trigger, *hosting]
        assert (
            reveal(check.inputs["connection"])["host"]
            == {"pve1": "192.0.2.11", "pve2": "192.0.2.12"}[node]
        )
        for sector in ("web", "lab"):
            assert run.depends_on(run.named(f"{sector}-bridges").urn, check.urn)


def test_a_user_other_than_root_provisions_through_sudo() -> None:
    """pct runs only as root: another SSH user runs it with ``sudo -n``."""
    config = stack_file_config()
    config["orbitlab:appliances"]["ssh_user"] = "orbitlab"
    run = run_program(main, config=config, cluster=FakeCluster())
    command = run.named("web-gateway-provision")
    assert command.inputs["create"] == "sudo -n pct exec 10011 -- /bin/sh -s"
    assert reveal(command.inputs["connection"])["user"] == "orbitlab"
    # the bridge wait reads /sys only: no sudo; pvesh runs as root
    assert "sudo" not in run.named("web-bridges").inputs["create"]
    assert (
        "sudo -n pvesh get /nodes/pve1/sdn/zones"
        in run.named("rollout-check-pve1").inputs["create"]
    )


def test_the_dns_appliance_is_provisioned_with_its_dhcp_server(run: Run) -> None:
    stdin = run.named("web-dns-provision").inputs["stdin"]
    assert "apk add --quiet --no-progress coredns dnsmasq" in stdin
    assert "put_file /etc/dnsmasq.conf 644" in stdin
    assert "put_file /etc/orbitlab/dhcp-names.sh 755" in stdin
    assert "dnsmasq --test -C /etc/dnsmasq.conf" in stdin
    assert "dhcp-range=set:subnet0,172.16.0.128,172.16.0.254,255.255.255.0,3600" in stdin
    description = run.named("web-dns-ct").inputs["description"]
    assert "Sector DNS (CoreDNS, dnsmasq DHCP)" in description


def test_appliance_containers_are_small_unprivileged_and_addressed_per_plan(run: Run) -> None:
    def nics(name: str) -> list[tuple[str, str, str, str | None, float]]:
        inputs = run.named(name).inputs
        return [
            (n["name"], n["bridge"], ip["ipv4"]["address"], ip["ipv4"].get("gateway"), n["mtu"])
            for n, ip in zip(
                inputs["networkInterfaces"], inputs["initialization"]["ipConfigs"], strict=True
            )
        ]

    assert nics("web-gateway-ct") == [
        ("eth0", "olvn1001", "172.16.0.1/24", None, 1450),
        ("eth1", "olbpvn", "10.200.0.10/16", "10.200.0.1", 1450),
    ]
    assert nics("web-dns-ct") == [("eth0", "olvn1001", "172.16.0.2/24", "172.16.0.1", 1450)]
    assert nics("web-lb-ct") == [
        ("eth0", "olbpvn", "10.200.0.11/16", "10.200.0.1", 1450),
        ("eth1", "olvn1001", "172.16.0.3/24", None, 1450),
    ]
    assert nics("lab-gateway-ct")[1][2] == "10.200.0.12/16"
    for container in run.of_type(CONTAINER):
        inputs = container.inputs
        assert inputs["unprivileged"] is True and inputs["started"] is True
        assert inputs["memory"]["dedicated"] == 128
        assert inputs["operatingSystem"] == {
            "templateFileId": "local:vztmpl/orbitlab-example-"
            "alpine-3.22-default_20250617_amd64.tar.xz",
            "type": "alpine",
        }
        assert inputs["initialization"]["dns"]["servers"] == ["192.0.2.53"]


def test_the_sector_dns_resolves_through_its_own_forwarders() -> None:
    """Its own lookups (e.g. for its packages) go to its upstream: under deny by default the
    gateway lets it reach its forwarders only. Found by the twin of the emulated cluster:
    it declared the appliances' nameservers, which a deny-by-default Sector rejected."""
    config = stack_file_config()
    lab = config["orbitlab:sectors"][1]
    lab["dns"] = {"forwarders": ["198.51.100.53"]}
    lab["egress"] = {"default": "deny"}
    declared = run_program(main, config=config, cluster=FakeCluster())

    def servers(name: str) -> list[str]:
        return declared.named(name).inputs["initialization"]["dns"]["servers"]

    assert servers("lab-dns-ct") == ["198.51.100.53"]
    assert servers("lab-gateway-ct") == ["192.0.2.53"]  # the appliances' nameservers
    assert servers("web-dns-ct") == ["192.0.2.53"]  # no forwarders: the nameservers


def test_template_is_downloaded_once_per_node_hosting_appliances(run: Run) -> None:
    downloads = run.of_type("proxmoxve:download/file:File")
    hosting = {c.inputs["nodeName"] for c in run.of_type(CONTAINER)}
    assert sorted(d.inputs["nodeName"] for d in downloads) == sorted(hosting)
    assert all(d.inputs["contentType"] == "vztmpl" for d in downloads)
    for container in run.of_type(CONTAINER):
        download = next(
            d for d in downloads if d.inputs["nodeName"] == container.inputs["nodeName"]
        )
        assert download.urn in container.dependencies


def test_ssh_key_reaches_commands_only_inside_their_secret_connection() -> None:
    key = (
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH KEY-----\n"
    )
    config = {**stack_file_config(), "orbitlab:sshPrivateKey": key}
    run = run_program(
        main, config=config, cluster=FakeCluster(), secret_keys=["orbitlab:sshPrivateKey"]
    )
    commands = run.of_type(COMMAND)
    assert len(commands) == 13  # provisioning, bridge waits, node checks, Sector guards
    for command in commands:
        connection = command.inputs["connection"]
        assert is_secret(connection) and reveal(connection)["privateKey"] == key, command.name
        others = {k: v for k, v in command.inputs.items() if k != "connection"}
        assert "b3BlbnNzaC1rZXktdjEAAAAA" not in str(others), command.name
    assert "b3BlbnNzaC1rZXktdjEAAAAA" not in str([c.inputs for c in run.of_type(CONTAINER)])


def test_without_a_key_provisioning_uses_the_ssh_agent(run: Run) -> None:
    for command in run.of_type(COMMAND):
        connection = reveal(command.inputs["connection"])
        assert "privateKey" not in connection and connection["user"] == "root"


def test_node_host_key_is_pinned_when_given() -> None:
    config = stack_file_config()
    host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOrbitLabTestKey"
    for node in config["orbitlab:backplane"]["nodes"]:
        node["host_key"] = host_key
    run = run_program(main, config=config, cluster=FakeCluster())
    assert {reveal(c.inputs["connection"])["hostKey"] for c in run.of_type(COMMAND)} == {host_key}


def test_appliance_nics_have_pinned_locally_administered_macs(run: Run) -> None:
    macs = {
        (container.name, nic["name"]): nic["macAddress"]
        for container in run.of_type(CONTAINER)
        for nic in container.inputs["networkInterfaces"]
    }
    # the Sector DNS of web (tag 1001 = 0x03e9): the gateway matches this MAC with its address
    assert macs[("web-dns-ct", "eth0")] == "02:4f:4c:20:03:e9"
    assert macs[("lab-dns-ct", "eth0")] == "02:4f:4c:20:03:ea"
    assert macs[("web-gateway-ct", "eth1")] == "02:4f:4c:11:03:e9"
    assert len(set(macs.values())) == len(macs) == 8
    assert all(int(mac.split(":")[0], 16) & 0b11 == 0b10 for mac in macs.values())


def test_an_appliance_refuses_a_multicast_mac() -> None:
    from orbitlab.components import Appliance, ApplianceArgs, Nic

    plan = load_plan(str(EXAMPLE_STACK))
    args = ApplianceArgs(
        node=plan.backplane.nodes[0],
        vmid=10012,
        hostname="olvn1001-dns",
        nics=(Nic("eth0", "olvn1001", "172.16.0.2/24", 1450, mac="01:00:5e:00:00:01"),),
        script="#!/bin/sh\n",
        template_file_id="local:vztmpl/x.tar.xz",
    )
    with pytest.raises(
        ValueError, match=r"nics\[eth0\]\.mac: '01:00:5e:00:00:01' is not a unicast"
    ):
        Appliance("web-dns", args)


def test_a_template_checksum_verifies_the_download_and_none_is_warned_about(monkeypatch) -> None:
    warnings: list[str] = []
    monkeypatch.setattr("pulumi.log.warn", lambda message, *a, **k: warnings.append(message))
    config = stack_file_config()
    run = run_program(main, config=config, cluster=FakeCluster())
    assert all("checksum" not in d.inputs for d in run.of_type("proxmoxve:download/file:File"))
    assert [w for w in warnings if "without a checksum" in w]
    # no node of the example pins its host key: preview says so
    assert [w for w in warnings if "SSH to node(s) pve2 is not pinned" in w]

    warnings.clear()
    digest = "0f" * 64
    config["orbitlab:appliances"] = {"template_checksum": f"sha512:{digest}"}
    for node in config["orbitlab:backplane"]["nodes"]:
        node["host_key"] = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOrbitLabTestKey"
    run = run_program(main, config=config, cluster=FakeCluster())
    for download in run.of_type("proxmoxve:download/file:File"):
        assert download.inputs["checksum"] == digest
        assert download.inputs["checksumAlgorithm"] == "sha512"
    assert warnings == []


def test_a_new_template_checks_the_hosting_node_again() -> None:
    """What creates or replaces an appliance changes its node's check digest, so the node's
    settings (new containers start with forwarding off) are checked again first."""
    before = appliance_digests(EXAMPLE)
    appliances = EXAMPLE.appliances.model_copy(
        update={"template_url": "https://x.example/b.tar.xz"}
    )
    after = appliance_digests(dataclasses.replace(EXAMPLE, appliances=appliances))
    assert before.keys() == after.keys() == {"pve2"}
    assert before["pve2"] != after["pve2"]
