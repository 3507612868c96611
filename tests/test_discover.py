"""``orbitlab discover`` against a small stand-in for the Proxmox API on 127.0.0.1
(:mod:`tests.proxmox_api`)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import yaml

import orbitlab.discover
from orbitlab.cli import main
from orbitlab.discover import node_from_bridge, splice_nodes
from orbitlab.settings import NodeSettings
from orbitlab.stack import load_stack_file
from tests.proxmox_api import SECRET, TOKEN, Cluster, api_environment, bridge, node_entry, serve

REPO = Path(__file__).parent.parent
EXAMPLE = REPO / "stacks" / "Pulumi.example.yaml"
#: The network of every node's vmbr0 in the cluster below.
LAN = ["192.0.2.0/24"]


@pytest.fixture
def cluster() -> Cluster:
    """Three nodes: pve2 leaves vmbr0's MTU unset, pve3 runs jumbo frames."""
    return Cluster(
        nodes=[node_entry("pve2"), node_entry("pve1"), node_entry("pve3")],
        bridges={
            "pve1": {"vmbr0": bridge("192.0.2.11/24", "1500")},
            "pve2": {"vmbr0": bridge("192.0.2.12/24")},
            "pve3": {"vmbr0": bridge("192.0.2.13/24", "9000")},
        },
    )


@pytest.fixture
def endpoint(cluster: Cluster) -> Iterator[str]:
    yield from serve(cluster)


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    api_environment(monkeypatch)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["discover", *argv])
    out, err = capsys.readouterr()
    assert SECRET not in out + err, "the token's secret must never be printed"
    return code, out, err


def test_prints_every_online_node_with_defaults_filled_in(capsys, cluster, endpoint):
    code, out, err = run(capsys, "--endpoint", endpoint)
    assert code == 0, err
    document = yaml.safe_load(out)
    assert document == {
        "orbitlab:backplane": {
            "nodes": [
                {"name": "pve1", "address": "192.0.2.11", "mtu": 1500, "networks": LAN},
                {"name": "pve2", "address": "192.0.2.12", "mtu": 1500, "networks": LAN},
                {"name": "pve3", "address": "192.0.2.13", "mtu": 9000, "networks": LAN},
            ]
        }
    }
    for node in document["orbitlab:backplane"]["nodes"]:
        NodeSettings.model_validate(node)
    assert {auth for _, auth in cluster.requests} == {f"PVEAPIToken={TOKEN}"}
    assert err == ""


def test_every_other_ipv4_address_of_a_node_is_filled_in(capsys, cluster, endpoint):
    cluster.bridges["pve1"]["vmbr1"] = bridge("198.51.100.11/24", iface="vmbr1")
    cluster.bridges["pve1"]["eno3"] = {"iface": "eno3", "type": "eth", "method": "manual"}
    cluster.bridges["pve1"]["eno4"] = {
        "iface": "eno4",
        "type": "eth",
        "address": "203.0.113.11",
        "netmask": "24",
    }
    code, out, err = run(capsys, "--endpoint", endpoint)
    assert code == 0, err
    nodes = yaml.safe_load(out)["orbitlab:backplane"]["nodes"]
    assert nodes[0] == {
        "name": "pve1",
        "address": "192.0.2.11",
        "mtu": 1500,
        "other_addresses": ["198.51.100.11", "203.0.113.11"],
        "networks": ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"],
    }
    assert "other_addresses" not in nodes[1]
    assert nodes[1]["networks"] == LAN


def test_networks_are_vmbr0s_first_then_the_others_once_ipv4_only(capsys, cluster, endpoint):
    interfaces = cluster.bridges["pve2"]
    interfaces["vmbr0"] = bridge("192.0.2.12/24")
    interfaces["eno2"] = bridge("10.0.0.12/24", iface="eno2", type="eth")
    interfaces["vmbr2"] = bridge("10.0.0.112/24", iface="vmbr2")  # the same network again
    interfaces["vmbr3"] = bridge("10.9.9.12/31", iface="vmbr3")  # a link, no broadcast
    interfaces["eno5"] = {"iface": "eno5", "type": "eth", "cidr6": "2001:db8::12/64"}
    interfaces["eno6"] = {"iface": "eno6", "type": "eth", "cidr": "2001:db8:1::12/64"}
    code, out, err = run(capsys, "--endpoint", endpoint)
    assert code == 0, err
    pve2 = yaml.safe_load(out)["orbitlab:backplane"]["nodes"][1]
    assert pve2["networks"] == ["192.0.2.0/24", "10.0.0.0/24", "10.9.9.12/31"]
    assert NodeSettings.model_validate(pve2).networks[0].prefixlen == 24


def test_a_vmbr0_without_a_prefix_gives_no_network(capsys, cluster, endpoint):
    cluster.bridges["pve3"]["vmbr0"] = {"iface": "vmbr0", "type": "bridge", "address": "192.0.2.13"}
    code, out, err = run(capsys, "--endpoint", endpoint)
    assert code == 0, err
    pve3 = yaml.safe_load(out)["orbitlab:backplane"]["nodes"][2]
    assert pve3 == {"name": "pve3", "address": "192.0.2.13", "mtu": 1500}


def test_endpoint_from_the_environment_with_api_path(capsys, monkeypatch, endpoint):
    monkeypatch.setenv("PROXMOX_VE_ENDPOINT", endpoint + "api2/json")
    code, out, _ = run(capsys)
    assert code == 0
    assert "address: 192.0.2.13" in out


def test_offline_node_is_skipped_with_a_warning_and_not_queried(capsys, cluster, endpoint):
    cluster.nodes.append(node_entry("pve4", "offline"))
    code, out, err = run(capsys, "--endpoint", endpoint)
    assert code == 0
    assert "pve4" not in out
    assert "warning: node pve4 is offline and was skipped" in err
    assert not any("pve4" in path for path, _ in cluster.requests)


def test_stack_file_update_keeps_other_keys_comments_and_host_keys(
    capsys, cluster, endpoint, tmp_path
):
    stack = tmp_path / "Pulumi.home.yaml"
    pve1_end = "        networks: [192.0.2.0/24]\n      - name: pve2"
    text = EXAMPLE.read_text().replace(
        pve1_end, "        host_key: ssh-ed25519 AAAAC3NzaKEY\n" + pve1_end
    )
    assert "AAAAC3NzaKEY" in text
    stack.write_text(text)
    before = yaml.safe_load(text)

    code, out, err = run(capsys, "--endpoint", endpoint, "--stack-file", str(stack))

    assert code == 0, err
    assert out == ""
    after = yaml.safe_load(stack.read_text())
    assert after["config"]["orbitlab:backplane"]["nodes"] == [
        {
            "name": "pve1",
            "address": "192.0.2.11",
            "mtu": 1500,
            "networks": LAN,
            "host_key": "ssh-ed25519 AAAAC3NzaKEY",
        },
        {"name": "pve2", "address": "192.0.2.12", "mtu": 1500, "networks": LAN},
        {"name": "pve3", "address": "192.0.2.13", "mtu": 9000, "networks": LAN},
    ]
    after["config"]["orbitlab:backplane"].pop("nodes")
    before["config"]["orbitlab:backplane"].pop("nodes")
    assert after == before
    assert stack.read_text().startswith(text.split("  orbitlab:backplane:")[0])
    assert "# Example stack: two nodes" in stack.read_text()
    assert "orbitlab:backplane.nodes = pve1, pve2, pve3" in err
    assert "comments were not kept" not in err
    _, settings = load_stack_file(stack)
    assert [node.mtu for node in settings.backplane.nodes] == [1500, 1500, 9000]


def test_stack_file_keeps_order_and_offline_entries_and_drops_departed_nodes(
    capsys, cluster, endpoint, tmp_path
):
    cluster.nodes = [node_entry("pve1"), node_entry("pve2", "offline"), node_entry("pve3")]
    stack = tmp_path / "Pulumi.home.yaml"
    stack.write_text(
        "config:\n"
        "  orbitlab:backplane:\n"
        "    nodes: [{name: pve3, address: 192.0.2.99}, {name: pve2, address: 192.0.2.12},\n"
        "            {name: pve9, address: 192.0.2.19}]\n"
        "    primary_exit_node: pve3  # keep me\n"
    )
    code, _, err = run(capsys, "--endpoint", endpoint, "--stack-file", str(stack))
    assert code == 0, err
    text = stack.read_text()
    assert yaml.safe_load(text)["config"]["orbitlab:backplane"]["nodes"] == [
        {"name": "pve3", "address": "192.0.2.13", "mtu": 9000, "networks": LAN},
        {"name": "pve2", "address": "192.0.2.12"},
        {"name": "pve1", "address": "192.0.2.11", "mtu": 1500, "networks": LAN},
    ]
    assert "primary_exit_node: pve3  # keep me" in text
    assert "node pve2 is offline: kept its entry from the stack file as is" in err
    assert "node pve9 is not in the cluster any more: removed" in err


def test_stack_file_without_nodes_is_rewritten_with_a_warning(
    capsys, endpoint, tmp_path, monkeypatch
):
    stack = tmp_path / "Pulumi.new.yaml"
    stack.write_text(f"# new stack\nconfig:\n  proxmoxve:endpoint: {endpoint}\n")
    code, _, err = run(capsys, "--stack-file", str(stack))  # endpoint from the stack file
    assert code == 0, err
    assert "comments were not kept" in err
    document = yaml.safe_load(stack.read_text())
    assert document["config"]["proxmoxve:endpoint"] == endpoint
    assert len(document["config"]["orbitlab:backplane"]["nodes"]) == 3
    assert "is not a valid stack yet" not in err


def test_splice_handles_indentless_sequences_and_trailing_comments():
    text = (
        "config:\n"
        "  orbitlab:backplane:\n"
        "    nodes:\n"
        "    - name: old   # gone with the old list\n"
        "      address: 192.0.2.1\n"
        "    # about the cidr\n"
        "    cidr: 10.200.0.0/16\n"
    )
    nodes = [{"name": "pve1", "address": "192.0.2.11", "mtu": 1500}]
    updated = splice_nodes(text, nodes)
    assert updated == (
        "config:\n"
        "  orbitlab:backplane:\n"
        "    nodes:\n"
        "    - name: pve1\n"
        "      address: 192.0.2.11\n"
        "      mtu: 1500\n"
        "    # about the cidr\n"
        "    cidr: 10.200.0.0/16\n"
    )
    assert splice_nodes("config:\n  orbitlab:backplane:\n    nodes:\n", nodes) is None


def test_node_names_that_yaml_would_misread_are_quoted():
    node = node_from_bridge("no", bridge("192.0.2.5/24"))
    text = splice_nodes("config:\n  orbitlab:backplane:\n    nodes: []\n", [node])
    assert yaml.safe_load(text)["config"]["orbitlab:backplane"]["nodes"][0]["name"] == "no"


def discover_modules() -> list[ModuleType]:
    """The package :mod:`orbitlab.discover` and each of its modules."""
    package = orbitlab.discover
    names = [f"{package.__name__}.{found.name}" for found in pkgutil.iter_modules(package.__path__)]
    return [package, *map(importlib.import_module, names)]


@pytest.mark.parametrize("module", discover_modules(), ids=lambda module: module.__name__)
def test_docstring_examples_hold(module: ModuleType):
    assert doctest.testmod(module).failed == 0


# --- errors a user can cause ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (None, "PROXMOX_VE_API_TOKEN is not set"),
        ("", "PROXMOX_VE_API_TOKEN is not set"),
        (SECRET, "PROXMOX_VE_API_TOKEN is not in the form USER@REALM!TOKENID=SECRET"),
        (f"orbitlab@pve={SECRET}", "is not in the form USER@REALM!TOKENID=SECRET"),
    ],
)
def test_missing_or_malformed_token(capsys, monkeypatch, endpoint, token, expected):
    if token is None:
        monkeypatch.delenv("PROXMOX_VE_API_TOKEN")
    else:
        monkeypatch.setenv("PROXMOX_VE_API_TOKEN", token)
    code, _, err = run(capsys, "--endpoint", endpoint)
    assert code == 1
    assert expected in err


def test_a_redirect_is_not_followed_and_the_token_goes_nowhere_else(capsys, cluster, endpoint):
    elsewhere = Cluster(nodes=[node_entry("pve1")])
    served = serve(elsewhere)
    other = next(served)
    try:
        cluster.redirect_to = f"{other}api2/json/nodes"
        code, _, err = run(capsys, "--endpoint", endpoint)
    finally:
        served.close()
    assert code == 1
    assert (
        f"GET {endpoint}api2/json/nodes answered with a redirect (HTTP 302) to "
        f"{other}api2/json/nodes: not followed, so the API token is not sent there"
    ) in err
    assert elsewhere.requests == []


def test_storage_servers_are_proposed_as_protected_networks(capsys, cluster, endpoint, tmp_path):
    cluster.storages = [
        {"storage": "local", "type": "dir", "content": "vztmpl,iso"},
        {"storage": "nas", "type": "nfs", "server": "198.51.100.20", "export": "/tank"},
        {"storage": "backup", "type": "pbs", "server": "pbs.home.arpa", "datastore": "b"},
        {"storage": "media", "type": "cifs", "server": "198.51.100.30", "share": "m"},
    ]
    code, _, err = run(capsys, "--endpoint", endpoint)
    assert code == 0
    proposals = [line for line in err.splitlines() if line.startswith("proposal: ")]
    assert proposals == [
        "proposal: storage nas (nfs) is served by 198.51.100.20, which every node trusts: add "
        "198.51.100.20/32 to orbitlab:backplane.protected_networks so that no Sector reaches "
        "it (under egress: allow, Sector traffic to the LAN leaves as the exit node's address)",
        "proposal: storage backup (pbs) is served by pbs.home.arpa: add its address to "
        "orbitlab:backplane.protected_networks",
        "proposal: storage media (cifs) is served by 198.51.100.30, which every node trusts: "
        "add 198.51.100.30/32 to orbitlab:backplane.protected_networks so that no Sector "
        "reaches it (under egress: allow, Sector traffic to the LAN leaves as the exit node's "
        "address)",
    ]
    stack = tmp_path / "Pulumi.home.yaml"
    document = yaml.safe_load(EXAMPLE.read_text())
    document["config"]["orbitlab:backplane"]["protected_networks"] = ["198.51.100.0/27"]
    stack.write_text(yaml.safe_dump(document))
    code, _, err = run(capsys, "--endpoint", endpoint, "--stack-file", str(stack))
    assert code == 0
    assert [line for line in err.splitlines() if line.startswith("proposal: ")] == [
        "proposal: storage backup (pbs) is served by pbs.home.arpa: add its address to "
        "orbitlab:backplane.protected_networks",
    ]


def test_wrong_token_is_a_401_with_advice(capsys, monkeypatch, endpoint):
    monkeypatch.setenv("PROXMOX_VE_API_TOKEN", f"orbitlab@pve!discover={SECRET}x")
    code, _, err = run(capsys, "--endpoint", endpoint)
    assert code == 1
    assert "the Proxmox API refused the token (HTTP 401 authentication failure)" in err
    assert "check PROXMOX_VE_API_TOKEN" in err


def test_missing_privilege_names_sys_audit(capsys, cluster, endpoint):
    cluster.forbidden = True
    code, _, err = run(capsys, "--endpoint", endpoint)
    assert code == 1
    assert "permission denied for GET /nodes (HTTP 403" in err
    assert "Sys.Audit on /nodes" in err


def test_node_without_vmbr0(capsys, cluster, endpoint):
    del cluster.bridges["pve2"]["vmbr0"]
    code, _, err = run(capsys, "--endpoint", endpoint)
    assert code == 1
    assert "error: node pve2 has no vmbr0 bridge" in err


def test_vmbr0_without_ipv4(capsys, cluster, endpoint):
    cluster.bridges["pve3"]["vmbr0"] = bridge(None, families=["inet6"], cidr6="2001:db8::3/64")
    code, _, err = run(capsys, "--endpoint", endpoint)
    assert code == 1
    assert "error: node pve3: vmbr0 has no static IPv4 address (method manual)" in err


def test_mtu_too_small_for_vxlan(capsys, cluster, endpoint):
    cluster.bridges["pve1"]["vmbr0"] = bridge("192.0.2.11/24", "1300")
    code, _, err = run(capsys, "--endpoint", endpoint)
    assert code == 1
    assert "node pve1: cannot be used as a Backplane node: mtu:" in err


def test_no_node_online(capsys, cluster, endpoint):
    cluster.nodes = [node_entry("pve1", "offline"), node_entry("pve2", "unknown")]
    code, _, err = run(capsys, "--endpoint", endpoint)
    assert code == 1
    assert "no node is online (offline or unknown: pve1, pve2)" in err


def test_unreachable_endpoint(capsys):
    import socket

    with socket.socket() as probe:  # a loopback port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, _, err = run(capsys, "--endpoint", f"http://127.0.0.1:{port}/", "--timeout", "2")
    assert code == 1
    assert f"cannot reach the Proxmox API at http://127.0.0.1:{port}/api2/json" in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], "no Proxmox endpoint: pass --endpoint"),
        (["--endpoint", "192.0.2.11:8006"], "is not a Proxmox endpoint URL"),
        (["--endpoint", "http://192.0.2.11:8006/"], "refusing to send the API token over plain"),
    ],
)
def test_missing_or_unsafe_endpoint(capsys, argv, expected):
    code, _, err = run(capsys, *argv)
    assert code == 1
    assert expected in err


def test_stack_file_errors_leave_it_untouched(capsys, cluster, endpoint, tmp_path):
    code, _, err = run(capsys, "--endpoint", endpoint, "--stack-file", str(tmp_path / "no.yaml"))
    assert code == 1
    assert "cannot read the stack file" in err
    stack = tmp_path / "Pulumi.home.yaml"
    stack.write_text(EXAMPLE.read_text())
    del cluster.bridges["pve1"]["vmbr0"]
    code, _, err = run(capsys, "--endpoint", endpoint, "--stack-file", str(stack))
    assert code == 1
    assert stack.read_text() == EXAMPLE.read_text()


# --- TLS --------------------------------------------------------------------------------------


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, as a fresh Proxmox node has."""
    if not shutil.which("openssl"):
        pytest.skip("needs openssl to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=pve1", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def tls_endpoint(cluster: Cluster, self_signed: tuple[Path, Path]) -> Iterator[str]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*self_signed)
    yield from serve(cluster, context)


def test_tls_is_verified_by_default(capsys, tls_endpoint, self_signed, monkeypatch):
    code, _, err = run(capsys, "--endpoint", tls_endpoint)
    assert code == 1
    assert "is not trusted (self-signed certificate)" in err
    assert "--insecure" in err and "--ca-file" in err

    code, out, err = run(capsys, "--endpoint", tls_endpoint, "--ca-file", str(self_signed[0]))
    assert code == 0, err
    code, out, err = run(capsys, "--endpoint", tls_endpoint, "--insecure")
    assert code == 0, err
    assert "mtu: 9000" in out
    monkeypatch.setenv("PROXMOX_VE_INSECURE", "true")
    assert run(capsys, "--endpoint", tls_endpoint)[0] == 0
