"""The Proxmox API client: the token, the endpoint, TLS, and ``GET`` with JSON ``data`` back.

The only module of :mod:`orbitlab.discover` that talks HTTP (standard library ``urllib``). The
token's secret never appears in a ``repr`` or a message, plain ``http`` is refused except to a
loopback address, and a redirect is never followed (it would take the token with it).

Example::

    >>> token = parse_token("orbitlab@pve!discover=1234")
    >>> base = api_base("https://192.0.2.11:8006/")
    >>> base, token
    ('https://192.0.2.11:8006/api2/json', ApiToken('orbitlab@pve!discover', secret=...))
    >>> client = ProxmoxClient(base, token, ssl_context(insecure=False, ca_file=None))
    >>> client.get("/nodes")  # doctest: +SKIP
    [{'node': 'pve1', 'status': 'online', ...}]
"""

from __future__ import annotations

import ipaddress
import json
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any, NoReturn

from orbitlab.discover.errors import ApiError, DiscoverError

TOKEN_ENV = "PROXMOX_VE_API_TOKEN"
ENDPOINT_ENV = "PROXMOX_VE_ENDPOINT"
INSECURE_ENV = "PROXMOX_VE_INSECURE"
API_PREFIX = "/api2/json"
TOKEN_SHAPE = re.compile(r"[^\s@!=]+@[^\s@!=]+![A-Za-z][A-Za-z0-9._-]*=\S+")
PRIVILEGE_HINT = (
    "the token needs Sys.Audit on /nodes, e.g. `pveum acl modify /nodes --tokens "
    "'USER@REALM!TOKENID' --roles PVEAuditor` (with privilege separation the token's own "
    "ACL counts, not only its user's)"
)

SDN_PRIVILEGE_HINT = (
    "reading the SDN configuration needs SDN.Audit on /sdn, e.g. `pveum acl modify /sdn "
    "--tokens 'USER@REALM!TOKENID' --roles PVEAuditor`"
)


@dataclass(frozen=True)
class ApiToken:
    """A Proxmox API token; its secret never appears in ``repr`` or a message.

    >>> token = parse_token("orbitlab@pve!discover=1234")
    >>> token.token_id, token
    ('orbitlab@pve!discover', ApiToken('orbitlab@pve!discover', secret=...))
    """

    token_id: str
    secret: str = field(repr=False)

    def __repr__(self) -> str:
        return f"ApiToken({self.token_id!r}, secret=...)"

    def header(self) -> str:
        """The ``Authorization`` header value: ``PVEAPIToken=USER@REALM!TOKENID=SECRET``."""
        return f"PVEAPIToken={self.token_id}={self.secret}"


def parse_token(value: str | None, privileges: str = PRIVILEGE_HINT) -> ApiToken:
    """Read ``USER@REALM!TOKENID=SECRET`` (as ``PROXMOX_VE_API_TOKEN`` holds it).

    A leading ``PVEAPIToken=`` is accepted. Messages never repeat the value; a missing
    token's message ends with ``privileges``, what the command needs.

    >>> parse_token("PVEAPIToken=root@pam!ol=abc").token_id
    'root@pam!ol'
    """
    if not value or not value.strip():
        raise DiscoverError(
            f"{TOKEN_ENV} is not set: create an API token (Datacenter > Permissions > "
            f"API Tokens) and export {TOKEN_ENV}='USER@REALM!TOKENID=SECRET'; "
            f"{privileges}"
        )
    value = value.strip().removeprefix("PVEAPIToken=")
    if not TOKEN_SHAPE.fullmatch(value):
        raise DiscoverError(
            f"{TOKEN_ENV} is not in the form USER@REALM!TOKENID=SECRET "
            "(e.g. orbitlab@pve!discover=<uuid>); its value is not shown here"
        )
    token_id, _, secret = value.partition("=")
    return ApiToken(token_id, secret)


def api_base(endpoint: str | None) -> str:
    """Turn an endpoint (as ``PROXMOX_VE_ENDPOINT`` holds it) into the API's base URL.

    Plain ``http`` is refused except to a loopback address (an SSH tunnel, a test), so
    the token is never sent in clear over a network.

    >>> api_base("https://192.0.2.11:8006/")
    'https://192.0.2.11:8006/api2/json'
    """
    url = _endpoint_url(endpoint)
    path = url.path.rstrip("/").removesuffix(API_PREFIX)
    return urllib.parse.urlunsplit((url.scheme, url.netloc, path + API_PREFIX, "", ""))


def _endpoint_url(endpoint: str | None) -> urllib.parse.SplitResult:
    """The endpoint, split; refused unless it is ``https`` (or ``http`` to a loopback address).

    >>> _endpoint_url("http://127.0.0.1:8006/").hostname
    '127.0.0.1'
    """
    if not endpoint or not endpoint.strip():
        raise DiscoverError(
            f"no Proxmox endpoint: pass --endpoint https://<node>:8006/ or set {ENDPOINT_ENV}"
        )
    url = urllib.parse.urlsplit(endpoint.strip())
    if url.scheme not in ("https", "http") or not url.hostname:
        raise DiscoverError(
            f"{endpoint!r} is not a Proxmox endpoint URL; expected e.g. https://192.0.2.11:8006/"
        )
    if url.scheme == "http" and not _is_loopback(url.hostname):
        raise DiscoverError(
            f"refusing to send the API token over plain http to {url.hostname}; "
            f"Proxmox serves its API on https://{url.hostname}:8006/"
        )
    return url


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def describe_http_error(path: str, status: int, reason: str, body: bytes) -> ApiError:
    """Turn an HTTP error answer of the Proxmox API into a message a user can act on.

    >>> str(describe_http_error("/nodes", 401, "authentication failure", b""))[:40]
    'the Proxmox API refused the token (HTTP '
    """
    errors = _field_errors(body)
    message = _http_error_message(path, status, reason, errors)
    return ApiError(message, status, {str(k): str(v) for k, v in errors.items()})


def _field_errors(body: bytes) -> dict[Any, Any]:
    """The ``errors`` mapping of an error answer's JSON body (per field), or ``{}``.

    >>> _field_errors(b'{"errors": {"iface": "does not exist"}}'), _field_errors(b"<html>")
    ({'iface': 'does not exist'}, {})
    """
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        payload = {}
    errors = payload.get("errors") if isinstance(payload, dict) else None
    return errors if isinstance(errors, dict) else {}


def _http_error_message(path: str, status: int, reason: str, errors: dict[Any, Any]) -> str:
    if status == 401:
        return (
            f"the Proxmox API refused the token (HTTP 401 {reason}): check {TOKEN_ENV} "
            "(USER@REALM!TOKENID=SECRET) and that the token exists and has not expired"
        )
    if status == 403:
        return f"permission denied for GET {path} (HTTP 403 {reason}): {PRIVILEGE_HINT}"
    details = "; ".join(f"{k}: {v}" for k, v in sorted(errors.items()))
    return f"GET {path} failed (HTTP {status} {reason})" + (f": {details}" if details else "")


def ssl_context(insecure: bool, ca_file: str | None) -> ssl.SSLContext:
    """Verify the API's certificate unless ``insecure``; ``ca_file`` adds a trusted CA."""
    if insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as error:
        raise DiscoverError(f"cannot load the CA file {ca_file}: {error}") from None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is refused: urllib would send the request's headers, the API token with
    them, to wherever the answer points."""

    def redirect_request(
        self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> NoReturn:
        raise DiscoverError(
            f"GET {req.full_url} answered with a redirect (HTTP {code}) to {newurl}: not "
            "followed, so the API token is not sent there; use the endpoint the Proxmox API "
            "itself answers on (https://<node address>:8006/)"
        )


class ProxmoxClient:
    """A read-only client of the Proxmox API: ``GET`` with an API token, JSON ``data`` back.

    >>> client = ProxmoxClient("https://192.0.2.11:8006/api2/json", token)  # doctest: +SKIP
    >>> client.get("/nodes")  # doctest: +SKIP
    [{'node': 'pve1', 'status': 'online', ...}]
    """

    def __init__(
        self,
        base: str,
        token: ApiToken,
        context: ssl.SSLContext | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.base = base
        self.token = token
        self.timeout = timeout
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=context), _NoRedirects()
        )

    def get(self, path: str) -> Any:
        """``GET {base}{path}`` and return the answer's ``data``."""
        return self._data(path, self._fetch(path))

    def _fetch(self, path: str) -> bytes:
        """The body of ``GET {base}{path}``; an HTTP error or no answer as a DiscoverError."""
        request = urllib.request.Request(
            self.base + path,
            headers={"Authorization": self.token.header(), "Accept": "application/json"},
        )
        try:
            with self.opener.open(request, timeout=self.timeout) as answer:
                return answer.read()
        except urllib.error.HTTPError as error:
            raise describe_http_error(path, error.code, error.reason, error.read()) from None
        except urllib.error.URLError as error:
            raise self._unreachable(error.reason) from None
        except (OSError, TimeoutError) as error:
            raise self._unreachable(error) from None

    def _data(self, path: str, body: bytes) -> Any:
        """The ``data`` of a Proxmox API answer's JSON body."""
        try:
            return json.loads(body)["data"]
        except (ValueError, KeyError, TypeError):
            raise DiscoverError(
                f"GET {path}: the answer is not Proxmox API JSON; is {self.base} a Proxmox VE "
                "endpoint?"
            ) from None

    def _unreachable(self, reason: Any) -> DiscoverError:
        if isinstance(reason, ssl.SSLCertVerificationError):
            return DiscoverError(
                f"the TLS certificate of {self.base} is not trusted ({reason.verify_message}): "
                "Proxmox uses a self-signed certificate unless you installed one; pass "
                f"--ca-file with the cluster CA (/etc/pve/pve-root-ca.pem on a node), or "
                f"--insecure (or {INSECURE_ENV}=true) to skip verification"
            )
        detail = getattr(reason, "strerror", None) or str(reason) or type(reason).__name__
        return DiscoverError(f"cannot reach the Proxmox API at {self.base}: {detail}")
