"""A small stand-in for the Proxmox VE API on 127.0.0.1, for ``discover`` and ``show``.

It answers the calls OrbitLab makes, shaped as Proxmox VE answers them (``{"data": ...}``;
errors as ``{"data": null, "errors": {...}, "message": ...}``; vmbr0's ``mtu`` as a string,
absent when ``/etc/network/interfaces`` sets none; SDN VNets and zones as their config
sections, ``vrf-vxlan`` included), and it checks the ``Authorization: PVEAPIToken=...``
header on every request.
"""

from __future__ import annotations

import json
import ssl
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

SECRET = "5f0c1e2a-0000-4a4a-9b9b-c0ffee000001"
TOKEN = f"orbitlab@pve!discover={SECRET}"


def bridge(cidr: str | None, mtu: str | None = None, **extra: Any) -> dict[str, Any]:
    """A ``GET /nodes/{node}/network/vmbr0`` answer as Proxmox VE 8 gives it."""
    data: dict[str, Any] = {
        "iface": "vmbr0",
        "type": "bridge",
        "method": "static" if cidr else "manual",
        "method6": "manual",
        "families": ["inet"],
        "bridge_ports": "eno1",
        "bridge_stp": "off",
        "bridge_fd": "0",
        "autostart": 1,
        "active": 1,
        "priority": 5,
    }
    if cidr:
        address, _, prefix = cidr.partition("/")
        data |= {"cidr": cidr, "address": address, "netmask": prefix, "gateway": "192.0.2.1"}
    if mtu is not None:
        data["mtu"] = mtu
    return data | extra


def node_entry(name: str, status: str = "online") -> dict[str, Any]:
    """A ``GET /nodes`` list entry as Proxmox VE gives it."""
    entry: dict[str, Any] = {"node": name, "status": status, "id": f"node/{name}", "type": "node"}
    if status == "online":
        entry |= {"cpu": 0.02, "maxcpu": 8, "mem": 2 << 30, "maxmem": 32 << 30, "uptime": 86400}
        entry |= {"level": "", "ssl_fingerprint": "AB:CD"}
    return entry


@dataclass
class Cluster:
    """What the stand-in serves (nodes, their bridges, SDN VNets and zones), and what it saw."""

    nodes: list[dict[str, Any]] = field(default_factory=list)
    bridges: dict[str, dict[str, Any]] = field(default_factory=dict)
    vnets: list[dict[str, Any]] = field(default_factory=list)
    zones: list[dict[str, Any]] = field(default_factory=list)
    controllers: list[dict[str, Any]] = field(default_factory=list)
    #: Each VNet's subnets (``GET /cluster/sdn/vnets/{vnet}/subnets``).
    subnets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: ``GET /cluster/resources?type=vm`` entries (VMs and containers).
    guests: list[dict[str, Any]] = field(default_factory=list)
    storages: list[dict[str, Any]] = field(default_factory=list)
    #: The token's ACLs (an emulator ``Access``): ``GET /access/permissions?path=`` answers.
    access: Any = None
    token: str = TOKEN
    forbidden: bool = False
    #: Answer every request with a redirect there (``302 Found``, ``Location``).
    redirect_to: str | None = None
    requests: list[tuple[str, str]] = field(default_factory=list)

    def answer(self, path: str, authorization: str) -> tuple[int, str, Any]:
        """``(status, reason, body)`` for a GET, as pveproxy would answer it."""
        self.requests.append((path, authorization))
        if authorization != f"PVEAPIToken={self.token}":
            return 401, "authentication failure", {"data": None}
        if self.forbidden:
            return 403, "Permission check failed (/nodes/pve1, Sys.Audit)", {"data": None}
        if path == "/api2/json/nodes":
            return 200, "OK", {"data": self.nodes}
        if path == "/api2/json/cluster/sdn/vnets":
            return 200, "OK", {"data": self.vnets}
        if path == "/api2/json/cluster/sdn/zones":
            return 200, "OK", {"data": self.zones}
        if path == "/api2/json/cluster/sdn/controllers":
            return 200, "OK", {"data": self.controllers}
        if path == "/api2/json/cluster/resources?type=vm":
            return 200, "OK", {"data": self.guests}
        if path == "/api2/json/storage":
            return 200, "OK", {"data": self.storages}
        if path.startswith("/api2/json/access/permissions?") and self.access is not None:
            query = urllib.parse.parse_qs(path.split("?", 1)[1])
            return 200, "OK", {"data": self.access.permissions(query["path"][0])}
        parts = path.removeprefix("/api2/json/").split("/")
        if parts[:3] == ["cluster", "sdn", "vnets"] and len(parts) == 5 and parts[4] == "subnets":
            return 200, "OK", {"data": self.subnets.get(parts[3], [])}
        if len(parts) == 3 and parts[0] == "nodes" and parts[2] == "network":
            interfaces = self.bridges.get(parts[1], {})
            return 200, "OK", {"data": [{"iface": k, **v} for k, v in interfaces.items()]}
        if len(parts) == 4 and parts[0] == "nodes" and parts[2] == "network":
            found = self.bridges.get(parts[1], {}).get(parts[3])
            if found is None:
                reason = "Parameter verification failed."
                errors = {"iface": "interface does not exist"}
                return 400, reason, {"data": None, "errors": errors, "message": reason + "\n"}
            return 200, "OK", {"data": found}
        return 501, f"Method 'GET {path}' not implemented", {"data": None}


def make_handler(cluster: Cluster) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if cluster.redirect_to is not None:
                self.send_response(302, "Found")
                self.send_header("Location", cluster.redirect_to)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status, reason, body = cluster.answer(self.path, self.headers.get("Authorization", ""))
            raw = json.dumps(body).encode()
            self.send_response(status, reason)
            self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def serve(cluster: Cluster, tls: ssl.SSLContext | None = None) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(cluster))
    if tls:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        scheme = "https" if tls else "http"
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def vnet_entry(vnet: str, zone: str, tag: int, alias: str | None = None) -> dict[str, Any]:
    """A ``GET /cluster/sdn/vnets`` list entry as Proxmox VE 8 gives it."""
    entry: dict[str, Any] = {"vnet": vnet, "zone": zone, "tag": tag, "type": "vnet"}
    entry["digest"] = "0c1f3e"
    return entry | ({"alias": alias} if alias else {})


def zone_entry(zone: str, kind: str, **extra: Any) -> dict[str, Any]:
    """A ``GET /cluster/sdn/zones`` list entry (``vrf-vxlan`` as a keyword: ``vrf_vxlan``)."""
    entry: dict[str, Any] = {"zone": zone, "type": kind, "digest": "0c1f3e", "ipam": "pve"}
    if "vrf_vxlan" in extra:
        entry["vrf-vxlan"] = extra.pop("vrf_vxlan")
    return entry | extra


def api_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The token is set; nothing else from the caller's environment leaks in."""
    for name in ("PROXMOX_VE_ENDPOINT", "PROXMOX_VE_INSECURE", "SSL_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PROXMOX_VE_API_TOKEN", TOKEN)
