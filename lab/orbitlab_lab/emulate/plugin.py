"""The provider-protocol server both stand-ins share (``pulumi.provider.experimental``).

A stand-in is a :class:`StandIn` with a :class:`ResourceType` per resource token and a
function per invoke token. This module does what is the same for all of them:

- ``check``: every input against the provider's schema, and the real provider's plan-time
  validators (:data:`~orbitlab_lab.emulate.rules.PLAN_RULES`): a problem is a check failure
  worded as the bridge words it (``pulumi preview`` shows it);
- ``diff``: the inputs that changed; a change the provider cannot make in place is a
  replacement, as the real provider reports it (:mod:`~orbitlab_lab.emulate.rules.updates`);
- ``create`` / ``update`` / ``delete``: Proxmox's API formats first
  (:data:`~orbitlab_lab.emulate.rules.APPLY_RULES`), then the type's handler, on a worker
  thread (the engine sends several requests at once); in a preview only the outputs it can
  know;
- errors the emulated cluster raises reach the engine as their message alone, an API's
  answer worded as bpg's client and resource word it;
- secrets stay secret: outputs keep the secrecy of their inputs, and every log line is
  stripped of the secret strings the request held.

Run as a plugin: ``main(stand_in)`` (the engine starts the executable ``pulumi-resource-<name>``
found on PATH and reads the port it prints).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
from pulumi.provider.experimental import provider as p
from pulumi.provider.experimental import server

from orbitlab.components.reboots import changed_paths
from orbitlab_lab.emulate import ProxmoxError, param_error
from orbitlab_lab.emulate.rules import Rule, violations
from orbitlab_lab.emulate.rules.api import http_error
from orbitlab_lab.emulate.rules.provider import check_failure, invoke_failure
from orbitlab_lab.emulate.schema import function_problems, input_problems, resource
from orbitlab_lab.emulate.store import Store, emulate_dir
from orbitlab_lab.emulate.wire import (
    UNKNOWN,
    Secret,
    from_plain_map,
    has_unknown,
    reveal,
    secret_strings,
    to_plain_map,
)


@dataclass
class Call:
    """One request to a handler: who asked (the resource's name) and what it may log."""

    store: Store
    name: str
    config: Mapping[str, Any]
    secrets: set[str] = field(default_factory=set)

    def log(self, message: str) -> None:
        self.store.log(self.name, message, self.secrets)


#: ``create(call, inputs) -> (id, outputs)``; inputs are revealed (secrets unwrapped).
Create = Callable[[Call, dict[str, Any]], tuple[str, dict[str, Any]]]
#: ``update(call, id, olds, news) -> outputs``
Update = Callable[[Call, str, dict[str, Any], dict[str, Any]], dict[str, Any]]
#: ``delete(call, id, olds)``
Delete = Callable[[Call, str, dict[str, Any]], None]
#: ``invoke(call, args) -> result``
Invoke = Callable[[Call, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class ResourceType:
    """How a stand-in handles one resource type."""

    create: Create
    update: Update
    delete: Delete
    #: Inputs whose change replaces the resource (the real provider's ForceNew ones).
    replace_on: frozenset[str] = frozenset()
    #: Or, from the changed paths (``disk.size``), the inputs whose change replaces it.
    replaces: Callable[[list[str]], list[str]] | None = None
    #: How the real provider introduces an error of the API, per action (``create``:
    #: ``Unable to Create SDN VNet``).
    wording: Mapping[str, str] = field(default_factory=dict)
    #: Outputs known before the resource exists (shown by ``preview``), from its inputs.
    preview: Callable[[dict[str, Any]], dict[str, Any]] = lambda inputs: {}
    #: What the provider fills in for an input left out (a diff compares with it).
    defaults: Mapping[str, Any] = field(default_factory=dict)


class StandIn(p.Provider):
    """A provider plugin backed by the emulated cluster."""

    def __init__(
        self,
        package: str,
        version: str,
        types: Mapping[str, ResourceType],
        functions: Mapping[str, Invoke],
        configure: Callable[[dict[str, Any]], dict[str, Any]] = lambda config: config,
        plan_rules: tuple[Rule, ...] = (),
        apply_rules: tuple[Rule, ...] = (),
    ) -> None:
        self.package = package
        self.plan_rules = plan_rules
        self.apply_rules = apply_rules
        self.version = version
        self.types = types
        self.functions = functions
        self._configure = configure
        self.config: dict[str, Any] = {}
        self._config_error: str | None = None
        self._store: Store | None = None

    # --- plumbing ------------------------------------------------------------------------

    def store(self) -> Store:
        if self._store is None:
            store = Store(emulate_dir())
            if not store.exists:
                raise ProxmoxError(
                    f"no emulated cluster in {store.root}: run `orbitlab emulate start "
                    'STACKFILE` and `eval "$(orbitlab emulate env)"` first'
                )
            self._store = store
        return self._store

    def call(self, urn: str, *values: Any) -> Call:
        if self._config_error:
            raise ProxmoxError(self._config_error)
        secrets = set().union(*(secret_strings(value) for value in values))
        secrets |= secret_strings(self.config)
        return Call(self.store(), urn.rsplit("::", 1)[-1], self.config, secrets)

    async def run(self, work: Callable[[], Any]) -> Any:
        return await asyncio.to_thread(work)

    # --- provider protocol ---------------------------------------------------------------

    async def get_schema(self, request: p.GetSchemaRequest) -> p.GetSchemaResponse:
        return p.GetSchemaResponse(f'{{"name": "{self.package}", "version": "{self.version}"}}')

    async def configure(self, request: p.ConfigureRequest) -> p.ConfigureResponse:
        config = to_plain_map(request.args)
        for key, value in request.variables.items():
            config.setdefault(key.rsplit(":", 1)[-1], value)
        try:
            self.config = self._configure(config)
        except ProxmoxError as error:
            self._config_error = str(error)
        return p.ConfigureResponse(
            accept_secrets=True, supports_preview=True, accept_resources=True, accept_outputs=True
        )

    async def check(self, request: p.CheckRequest) -> p.CheckResponse:
        token = type_of(request.urn)
        if token not in self.types:
            reason = (
                f"the emulated cluster does not emulate {token} (it emulates "
                f"{', '.join(sorted(self.types))})"
            )
            return p.CheckResponse(inputs=request.new_inputs, failures=[p.CheckFailure("", reason)])
        news = to_plain_map(request.new_inputs)
        problems = input_problems(self.package, token, news)
        failures = [p.CheckFailure(path, reason) for path, reason in problems]
        name = request.urn.rsplit("::", 1)[-1]
        for found in violations(self.plan_rules, token, news):
            if not found.path:  # a rule of the whole resource: Check fails with it alone
                raise ProxmoxError(found.message)
            failures.append(p.CheckFailure("", check_failure(name, found)))
        return p.CheckResponse(inputs=request.new_inputs, failures=failures or None)

    async def diff(self, request: p.DiffRequest) -> p.DiffResponse:
        handler = self.types[type_of(request.urn)]
        olds = to_plain_map(request.old_state)
        news = {**handler.defaults, **to_plain_map(request.new_inputs)}
        inputs = resource(self.package, type_of(request.urn)).get("inputProperties", {})
        keys = [key for key in sorted(inputs) if key not in request.ignore_changes]
        paths = changed_paths(
            {key: _normal(reveal(olds.get(key))) for key in keys},
            {key: _normal(reveal(news.get(key))) for key in keys},
        )
        # a value the engine does not know yet has changed, whatever it was
        paths += [key for key in keys if has_unknown(news.get(key)) and key not in paths]
        changed = sorted({path.split(".", 1)[0].split("[", 1)[0] for path in paths})
        if handler.replaces is not None:
            replaces = handler.replaces(paths)
        else:
            replaces = [key for key in changed if key in handler.replace_on]
        kinds = {
            key: p.PropertyDiff(
                p.PropertyDiffKind.UPDATE_REPLACE if key in replaces else p.PropertyDiffKind.UPDATE,
                input_diff=True,
            )
            for key in changed
        }
        return p.DiffResponse(
            changes=bool(changed), replaces=replaces, diffs=changed, detailed_diff=kinds
        )

    async def create(self, request: p.CreateRequest) -> p.CreateResponse:
        handler = self.types[type_of(request.urn)]
        inputs = to_plain_map(request.properties)
        if request.preview:
            outputs = {**inputs, **_unknowns(handler.preview(inputs))}
            return p.CreateResponse("", from_plain_map(outputs))
        call = self.call(request.urn, inputs)
        token = type_of(request.urn)
        resource_id, outputs = await self.run(
            lambda: self.api(token, "create", lambda: handler.create(call, reveal(inputs)), inputs)
        )
        return p.CreateResponse(resource_id, from_plain_map(_keep_secrets(inputs, outputs)))

    async def update(self, request: p.UpdateRequest) -> p.UpdateResponse:
        handler = self.types[type_of(request.urn)]
        olds, news = to_plain_map(request.olds), to_plain_map(request.news)
        if request.preview:
            return p.UpdateResponse(from_plain_map({**olds, **news}))
        call = self.call(request.urn, olds, news)
        token = type_of(request.urn)
        outputs = await self.run(
            lambda: self.api(
                token,
                "update",
                lambda: handler.update(call, request.resource_id, reveal(olds), reveal(news)),
                news,
            )
        )
        return p.UpdateResponse(from_plain_map(_keep_secrets(news, outputs)))

    async def delete(self, request: p.DeleteRequest) -> None:
        handler = self.types[type_of(request.urn)]
        olds = to_plain_map(request.properties)
        call = self.call(request.urn, olds)
        token = type_of(request.urn)
        await self.run(
            lambda: self.api(
                token, "delete", lambda: handler.delete(call, request.resource_id, reveal(olds))
            )
        )

    def api(self, token: str, action: str, work: Callable[[], Any], inputs: Any = None) -> Any:
        """Run ``work`` as a call of the API: the request's formats checked first; a refusal
        worded as bpg's client (``received an HTTP ...``) and resource (``Unable to Create
        SDN VNet: ...``) word it."""
        wording = self.types[token].wording.get(action, "")
        try:
            if inputs is not None:
                refused = [v.message for v in violations(self.apply_rules, token, reveal(inputs))]
                if refused:
                    raise param_error(*refused)
            return work()
        except ProxmoxError as error:
            if error.code is None:  # not an answer of the API
                raise
            message = http_error(error.code, error.reason, error.errors)
            raise ProxmoxError(f"{wording}: {message}" if wording else message) from None

    async def read(self, request: p.ReadRequest) -> p.ReadResponse:
        return p.ReadResponse(request.resource_id, request.properties, request.inputs)

    async def invoke(self, request: p.InvokeRequest) -> p.InvokeResponse:
        args = to_plain_map(request.args)
        failures = [
            p.CheckFailure(path, reason)
            for path, reason in function_problems(self.package, request.tok, args)
        ]
        failures += [
            p.CheckFailure(found.path.split(".", 1)[0], invoke_failure(found))
            for found in violations(self.plan_rules, request.tok, args)
        ]
        if failures:
            return p.InvokeResponse(failures=failures)
        function = self.functions.get(request.tok)
        if function is None:
            raise ProxmoxError(f"the stand-in {self.package} does not emulate {request.tok}")
        call = self.call(f"invoke::{request.tok}", args)
        result = await self.run(lambda: function(call, reveal(args)))
        return p.InvokeResponse(return_value=from_plain_map(result))


def type_of(urn: str) -> str:
    """A resource's type token from its URN (a child's type follows its parents' ``$``).

    >>> type_of("urn:pulumi:s::p::orbitlab:index:Sector$proxmoxve:sdn/vnet:Vnet::web-vnet")
    'proxmoxve:sdn/vnet:Vnet'
    """
    return urn.split("::")[-2].rsplit("$", 1)[-1]


def _normal(value: Any) -> Any:
    """Compare numbers as numbers (the wire has floats only), absent as None."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def _unknowns(outputs: dict[str, Any]) -> dict[str, Any]:
    return {key: UNKNOWN for key in outputs}


def _keep_secrets(inputs: dict[str, Any], outputs: dict[str, Any]) -> dict[str, Any]:
    """Outputs named like a secret input stay secret (as the real providers keep them)."""
    kept = dict(outputs)
    for key, value in inputs.items():
        if isinstance(value, Secret) and key in kept and not isinstance(kept[key], Secret):
            kept[key] = Secret(kept[key])
    return kept


class Servicer(server.ProviderServicer):
    """The SDK's servicer, with errors of the emulated cluster sent as their message alone
    (the SDK appends a Python traceback to every error)."""


def _clean(method: Any) -> Any:
    async def wrapper(self: Servicer, request: Any, context: Any) -> Any:
        try:
            return await method(self, request, context)
        except Exception as error:
            cause = error if isinstance(error, ProxmoxError) else error.__context__
            if isinstance(cause, ProxmoxError):
                await context.abort(grpc.StatusCode.UNKNOWN, str(cause))
            raise

    return wrapper


for _name in ("Check", "Create", "Update", "Delete", "Invoke", "Read"):
    setattr(Servicer, _name, _clean(getattr(server.ProviderServicer, _name)))


def main(stand_in: StandIn) -> None:
    """Serve ``stand_in`` as a plugin (what ``pulumi-resource-<name>`` runs)."""
    server.ProviderServicer = Servicer  # type: ignore[misc]
    server.main(sys.argv[1:], stand_in.version, stand_in)
