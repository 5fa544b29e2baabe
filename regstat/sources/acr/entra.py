"""Microsoft Entra ID credentials for ACR (`--azure-credential`), through azure-identity.

azure-identity (the optional extra `regstat[azure]`) gets an Entra access token for Azure
Resource Manager's audience; ACR's `POST /oauth2/exchange` (`grant_type=access_token`) swaps
it for an ACR refresh token, which then buys access tokens per scope like any refresh token
(`registry_api.auth`). Kinds: `default` (DefaultAzureCredential: environment, workload
identity, managed identity, Azure CLI, …), `cli`, `environment`, `workload-identity`,
`managed-identity`.

Sovereign clouds: `--azure-authority-host` (else AZURE_AUTHORITY_HOST, which azure-identity
reads too, read here for the audience only) names the cloud's Entra host; the audience is that
cloud's Resource Manager. The tokens live in memory only and are never written or shown.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any
from urllib.parse import urlencode, urlsplit

from ...errors import AuthError, SourceError, TransportError
from ..registry_api.auth import Credentials
from ..registry_api.http import HttpClient

REFRESH_TOKEN_USER = "00000000-0000-0000-0000-000000000000"  # the password is an ACR refresh token
KINDS = ("default", "cli", "environment", "workload-identity", "managed-identity")
AUTHORITY_VARIABLE = "AZURE_AUTHORITY_HOST"
PUBLIC_AUTHORITY = "login.microsoftonline.com"
# Each cloud's Entra host and its Resource Manager audience, as ACR's SDKs name them.
AUDIENCES = {
    PUBLIC_AUTHORITY: "https://management.azure.com",
    "login.chinacloudapi.cn": "https://management.chinacloudapi.cn",
    "login.microsoftonline.us": "https://management.usgovcloudapi.net",
}
INSTALL = "pip install 'regstat[azure]'"
# What to do when a kind of credential finds no identity.
SIGN_IN = {
    "default": "sign in with az login, set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, "
               "or run where a managed identity is",
    "cli": "sign in with az login",
    "environment": "set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or AZURE_CLIENT_CERTIFICATE_PATH)",
    "workload-identity": "set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_FEDERATED_TOKEN_FILE (AKS sets them)",
    "managed-identity": "run on an Azure host with a managed identity (AZURE_CLIENT_ID picks a user-assigned one)",
}


def authority_host(option: str | None) -> str:
    """The Entra host: `--azure-authority-host`, else AZURE_AUTHORITY_HOST, else the public cloud."""
    given = option or os.environ.get(AUTHORITY_VARIABLE) or PUBLIC_AUTHORITY
    return (urlsplit(given if "://" in given else f"https://{given}").hostname or given).lower()


def audience_scope(authority: str) -> str:
    audience = AUDIENCES.get(authority)
    if audience is None:
        known = ", ".join(sorted(AUDIENCES))
        raise SourceError(f"unknown Entra authority host {authority}: regstat knows {known}")
    return f"{audience}/.default"


def entra_credential(kind: str, authority: str | None) -> Any:
    """An azure-identity credential of `kind`; `authority` only when one was chosen."""
    try:
        import azure.identity as identity
    except ImportError:
        raise SourceError(f"--azure-credential needs azure-identity: {INSTALL}") from None
    # azure-identity logs each failed attempt as a warning, which Python would print on stderr
    # beside regstat's own one-line error: that line says it all.
    logging.getLogger("azure").addHandler(logging.NullHandler())
    host = {"authority": authority} if authority else {}
    if kind == "default":
        return identity.DefaultAzureCredential(**host)
    if kind == "cli":
        return identity.AzureCliCredential()  # az's own cloud setting decides its authority
    if kind == "environment":
        return identity.EnvironmentCredential(**host)
    if kind == "workload-identity":
        return identity.WorkloadIdentityCredential(**host)
    if kind == "managed-identity":
        return identity.ManagedIdentityCredential()
    raise SourceError(f"--azure-credential is one of {', '.join(KINDS)}, not {kind!r}")


class EntraExchange:
    """The Authenticator's credential lookup for `--azure-credential`: an Entra token from
    azure-identity, exchanged once at the registry for an ACR refresh token."""

    def __init__(self, http: HttpClient, base: str, kind: str, authority_option: str | None) -> None:
        self.http = http
        self.base = base
        self.kind = kind
        self.authority = authority_host(authority_option)
        self.scope = audience_scope(self.authority)
        self.credential = entra_credential(kind, authority_option)

    def __call__(self) -> tuple[Credentials | None, str]:
        entra_token = self._entra_token()
        service = urlsplit(self.base).netloc
        form = urlencode({"grant_type": "access_token", "service": service, "access_token": entra_token})
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json",
                   "User-Agent": "regstat"}
        where = f"the registry's token exchange {self.base}/oauth2/exchange"
        try:
            response = self.http.request("POST", f"{self.base}/oauth2/exchange", headers, form.encode())
        except TransportError as e:
            raise AuthError(f"{where} failed: {e}") from None
        if response.status != 200 or response.truncated:
            raise AuthError(f"{where} refused the Entra token of --azure-credential {self.kind} "
                            f"({response.status} {response.reason}); is the identity granted a role on the registry?")
        try:
            refresh = json.loads(response.body).get("refresh_token")
        except (ValueError, AttributeError):
            refresh = None
        if not isinstance(refresh, str) or not refresh or not refresh.isascii() or not refresh.isprintable():
            raise AuthError(f"{where} answered something that is not a refresh token")
        return Credentials(REFRESH_TOKEN_USER, refresh, f"--azure-credential {self.kind}", identity_token=True), ""

    def _entra_token(self) -> str:
        try:
            from azure.core.exceptions import ClientAuthenticationError
        except ImportError:
            raise SourceError(f"--azure-credential needs azure-identity: {INSTALL}") from None
        try:
            return str(self.credential.get_token(self.scope).token)
        except ClientAuthenticationError as e:
            first = (str(e.message or e).strip().splitlines() or [type(e).__name__])[0][:300]
            raise AuthError(f"--azure-credential {self.kind} got no Entra token ({first}); "
                            f"{SIGN_IN.get(self.kind, 'choose another --azure-credential')}") from None
