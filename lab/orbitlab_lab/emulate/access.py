"""Who may do what on the emulated cluster: Proxmox's ACLs, as ``pveum`` commands set them.

The emulated cluster has one API user and its token: the token the provider logs in with,
whatever its name. Their privileges come from ``pveum`` commands (``role add``, ``user token
add``, ``acl modify``), the ones an admin runs on a node, and are computed as
pve-access-control computes them:

- ``src/PVE/AccessControl.pm`` ``roles()``: the path is walked from ``/``; at each level the
  principal's ACL entries there (if they propagate, or the level is the path itself) replace
  the roles found above;
- ``src/PVE/RPCEnvironment.pm`` ``compile_acl_path``: a token with privilege separation (the
  default) holds a privilege on a path only where its user holds it too;
- ``src/PVE/AccessControl.pm`` ``$privgroups`` / ``create_roles``: the valid privilege names
  and the built-in roles (``Administrator``, ``NoAccess``, ``PVEAuditor``, ``PVE<group>Admin``,
  ``PVE<group>User``, ...);
- ``check`` / ``check_any`` (``RPCEnvironment.pm``) refuse with HTTP 403 "Permission check
  failed (<path>, <privilege>)"; an ``or`` of checks refuses with the bare "Permission check
  failed" (``exec_api2_perm_check``, pve-common ``src/PVE/Exception.pm`` ``raise_perm_exc``).

>>> access = parse_pveum('''
... pveum role add Net --privs "SDN.Allocate,SDN.Use"
... pveum user token add ops@pve ci --privsep 1
... pveum acl modify /sdn --users ops@pve --roles Net
... pveum acl modify /sdn --tokens 'ops@pve!ci' --roles Net
... pveum acl modify /sdn/zones/lab --tokens 'ops@pve!ci' --roles PVEAuditor
... ''')
>>> sorted(access.privileges("/sdn/zones/olz1001"))
['SDN.Allocate', 'SDN.Use']
>>> sorted(access.privileges("/sdn/zones/lab/v1"))  # the token: SDN.Audit; its user: not
[]
>>> access.check(Need("/sdn/zones/lab", ("SDN.Allocate",)))
Traceback (most recent call last):
...
orbitlab_lab.emulate.ProxmoxError: Permission check failed (/sdn/zones/lab, SDN.Allocate)
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from orbitlab_lab.emulate import ProxmoxError

ACCESS_CONTROL = "proxmox/pve-access-control 5ccd07d (2026-05-15)"

# src/PVE/AccessControl.pm $privgroups: category -> (root, admin, user, audit) privileges
PRIVILEGE_GROUPS: dict[str, tuple[tuple[str, ...], ...]] = {
    "VM": (
        (),
        (
            "VM.Config.Disk",
            "VM.Config.CPU",
            "VM.Config.Memory",
            "VM.Config.Network",
            "VM.Config.HWType",
            "VM.Config.Options",
            "VM.Allocate",
            "VM.Clone",
            "VM.GuestAgent.Unrestricted",
            "VM.Migrate",
            "VM.Replicate",
            "VM.Snapshot",
            "VM.Snapshot.Rollback",
        ),
        (
            "VM.Config.CDROM",
            "VM.Config.Cloudinit",
            "VM.Console",
            "VM.Backup",
            "VM.GuestAgent.FileRead",
            "VM.GuestAgent.FileSystemMgmt",
            "VM.GuestAgent.FileWrite",
            "VM.PowerMgmt",
        ),
        ("VM.Audit", "VM.GuestAgent.Audit"),
    ),
    "Sys": (
        ("Sys.PowerMgmt", "Sys.Modify", "Sys.Incoming", "Sys.AccessNetwork"),
        ("Sys.Console", "Sys.Syslog"),
        (),
        ("Sys.Audit",),
    ),
    "Datastore": (
        (),
        ("Datastore.Allocate", "Datastore.AllocateTemplate"),
        ("Datastore.AllocateSpace",),
        ("Datastore.Audit",),
    ),
    "SDN": ((), ("SDN.Allocate", "SDN.Audit"), ("SDN.Use",), ("SDN.Audit",)),
    "User": (("Realm.Allocate",), ("User.Modify", "Group.Allocate", "Realm.AllocateUser"), (), ()),
    "Pool": ((), ("Pool.Allocate",), ("Pool.Audit",), ("Pool.Audit",)),
    "Mapping": ((), ("Mapping.Modify",), ("Mapping.Use",), ("Mapping.Audit",)),
}

PRIVILEGES = frozenset(
    {"Permissions.Modify"}
    | {priv for groups in PRIVILEGE_GROUPS.values() for group in groups for priv in group}
)


def _create_roles() -> dict[str, frozenset[str]]:
    roles: dict[str, set[str]] = {"NoAccess": set(), "Administrator": set(PRIVILEGES)}
    for category, (_, admin, user, audit) in PRIVILEGE_GROUPS.items():
        roles.setdefault(f"PVE{category}Admin", set()).update(admin, user, audit)
        roles.setdefault("PVEAdmin", set()).update(admin, user, audit)
        if user:
            roles.setdefault(f"PVE{category}User", set()).update(user, audit)
        roles.setdefault("PVEAuditor", set()).update(audit)
    roles["PVEAdmin"].discard("Mapping.Modify")
    roles["PVETemplateUser"] = {"VM.Clone", "VM.Audit"}
    return {name: frozenset(privs) for name, privs in roles.items()}


BUILTIN_ROLES = _create_roles()


def builtin_roles() -> dict[str, frozenset[str]]:
    """The roles every Proxmox VE cluster has (``create_roles``), as a new mapping."""
    return dict(BUILTIN_ROLES)


@dataclass(frozen=True)
class Grant:
    """One ACL entry of the user or the token: a role on a path."""

    path: str
    role: str
    propagate: bool = True


@dataclass(frozen=True)
class Need:
    """A permission check: every privilege on the path (``check``), or one of them
    (``check_any``, ``any_of``)."""

    path: str
    privileges: tuple[str, ...]
    any_of: bool = False


@dataclass(frozen=True)
class Either:
    """An API method's ``['or', ...]`` check: one of the alternatives passes."""

    options: tuple[Need, ...]


@dataclass
class Access:
    """The token's and its user's ACLs, and the cluster's roles."""

    roles: dict[str, frozenset[str]] = field(default_factory=builtin_roles)
    user: list[Grant] = field(default_factory=list)
    token: list[Grant] = field(default_factory=list)
    privsep: bool = True

    def privileges(self, path: str) -> frozenset[str]:
        """What the token holds on ``path``."""
        held = self._held(self.user, path)
        if self.privsep:
            held &= self._held(self.token, path)
        return held

    def _held(self, grants: Sequence[Grant], path: str) -> frozenset[str]:
        levels = [part for part in path.split("/") if part]
        prefixes = ["/"] + ["/" + "/".join(levels[:n]) for n in range(1, len(levels) + 1)]
        roles: set[str] = set()
        for depth, prefix in enumerate(prefixes):
            final = depth == len(prefixes) - 1
            here = {g.role for g in grants if g.path == prefix and (final or g.propagate)}
            if here:
                roles = here
        if "NoAccess" in roles:
            return frozenset()
        return frozenset(priv for role in roles for priv in self.roles.get(role, ()))

    def check(self, need: Need | Either) -> None:
        """Raise Proxmox's 403 if the token fails the check."""
        if isinstance(need, Either):
            if not any(self.passes(option) for option in need.options):
                raise ProxmoxError("Permission check failed", 403)
            return
        if self.passes(need):
            return
        held = self.privileges(need.path)
        if need.any_of:
            raise ProxmoxError(
                f"Permission check failed ({need.path}, {'|'.join(need.privileges)})", 403
            )
        missing = next(priv for priv in need.privileges if priv not in held)
        raise ProxmoxError(f"Permission check failed ({need.path}, {missing})", 403)

    def passes(self, need: Need | Either) -> bool:
        if isinstance(need, Either):
            return any(self.passes(option) for option in need.options)
        held = self.privileges(need.path)
        found = [priv in held for priv in need.privileges]
        return any(found) if need.any_of else all(found)

    def permissions(self, path: str) -> dict[str, dict[str, int]]:
        """``GET /access/permissions?path=<path>``'s answer (propagation flags as 1)."""
        held = self.privileges(path)
        return {path: {priv: 1 for priv in sorted(held)}} if held else {}

    def to_state(self) -> dict[str, object]:
        custom = {n: sorted(p) for n, p in self.roles.items() if BUILTIN_ROLES.get(n) != p}
        return {
            "roles": custom,
            "user": [[g.path, g.role, g.propagate] for g in self.user],
            "token": [[g.path, g.role, g.propagate] for g in self.token],
            "privsep": self.privsep,
        }

    @classmethod
    def from_state(cls, state: dict[str, object]) -> Access:
        roles = builtin_roles()
        roles.update({name: frozenset(p) for name, p in dict(state["roles"]).items()})  # type: ignore[arg-type]
        return cls(
            roles,
            [Grant(*entry) for entry in state["user"]],  # type: ignore[union-attr]
            [Grant(*entry) for entry in state["token"]],  # type: ignore[union-attr]
            bool(state["privsep"]),
        )


def normalize_path(path: str) -> str:
    """``PVE::AccessControl::normalize_path``: one ``/`` between levels, none at the end."""
    cleaned = "/" + "/".join(part for part in path.split("/") if part)
    return cleaned


class PveumError(ProxmoxError):
    """A ``pveum`` command the emulator cannot take, with its line."""


def parse_pveum(text: str) -> Access:
    """The ACLs a script of ``pveum`` commands sets up (comments and blank lines skipped;
    ``pveum user add`` and ``pveum user token add`` set the privilege separation)."""
    access = Access()
    for number, line in enumerate(text.splitlines(), 1):
        words = shlex.split(line, comments=True)
        if not words:
            continue
        try:
            _apply(access, words)
        except PveumError as error:
            raise PveumError(f"line {number}: {line.strip()}: {error.reason}") from None
    return access


def _apply(access: Access, words: list[str]) -> None:
    if words[0] != "pveum":
        raise PveumError("not a pveum command")
    command, options = _split(words[1:])
    if command[:2] == ["role", "add"] or command[:1] == ["roleadd"]:
        names = command[2:] if command[0] == "role" else command[1:]
        if len(names) != 1:
            raise PveumError("expected: pveum role add <role> --privs <privileges>")
        access.roles[names[0]] = frozenset(_privileges(options.get("privs", "")))
    elif command[:3] == ["user", "token", "add"]:
        access.privsep = options.get("privsep", "1") not in ("0", "false")
    elif command[:2] == ["user", "add"] or command[:1] == ["useradd"]:
        return
    elif command[:2] in (["acl", "modify"], ["aclmod"]):
        _acl(access, command, options)
    else:
        raise PveumError(
            "the emulator takes pveum role add, user add, user token add and acl modify"
        )


def _split(words: list[str]) -> tuple[list[str], dict[str, str]]:
    command: list[str] = []
    options: dict[str, str] = {}
    iterator = iter(words)
    for word in iterator:
        if word.startswith("--"):
            options[word[2:]] = next(iterator, "")
        else:
            command.append(word)
    return command, options


def _privileges(value: str) -> Iterable[str]:
    for priv in (part.strip() for part in value.replace(";", ",").split(",")):
        if not priv:
            continue
        if priv not in PRIVILEGES:
            raise PveumError(f"invalid privilege '{priv}'")
        yield priv


def _acl(access: Access, command: list[str], options: dict[str, str]) -> None:
    if len(command) < 2 or not command[-1].startswith("/"):
        raise PveumError("expected: pveum acl modify <path> --users|--tokens ... --roles ...")
    path = normalize_path(command[-1])
    roles = [role for role in options.get("roles", "").split(",") if role]
    for role in roles:
        if role not in access.roles:
            raise PveumError(f"role '{role}' does not exist")
    if not roles:
        raise PveumError("--roles is required")
    propagate = options.get("propagate", "1") not in ("0", "false")
    grants = [Grant(path, role, propagate) for role in roles]
    if "users" in options:
        access.user.extend(grants)
    if "tokens" in options:
        access.token.extend(grants)
    if not ({"users", "tokens"} & options.keys()):
        raise PveumError("the emulator grants to --users or --tokens (its one user and token)")
