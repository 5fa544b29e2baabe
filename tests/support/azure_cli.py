"""A stub ``az`` command, so that azure-identity's ``AzureCliCredential`` works offline.

``AzureCliCredential`` runs ``az account get-access-token --output json --resource R
[--tenant T] [--subscription S]`` (found on PATH, run from ``/bin``) and reads
``accessToken`` and ``expires_on`` (or ``expiresOn``) from its JSON. :func:`write_az_stub`
writes an executable ``az`` answering exactly that with a given token (and, if given an ACR
refresh token, ``az acr login --expose-token`` as the Azure CLI does), and logs every call's
arguments (one JSON list a line) to ``az-calls.jsonl`` beside it. A test puts the directory
first on PATH. ``logged_in=False`` answers as a machine without ``az login`` does.

Nothing here depends on pytest.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

_STUB = '''#!{python}
import json, sys, time
calls = {calls!r}
with open(calls, "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
args = sys.argv[1:]
if not {logged_in!r}:
    sys.stderr.write("ERROR: Please run 'az login' to setup account.\\n")
    sys.exit(1)
if args[:2] == ["acr", "login"] and "--expose-token" in args and {acr_refresh_token!r}:
    print(json.dumps({{"accessToken": {acr_refresh_token!r}, "loginServer": {login_server!r}}}, indent=2))
    sys.exit(0)
if args[:2] != ["account", "get-access-token"] or "--output" not in args:
    sys.stderr.write("ERROR: the stub az answers 'account get-access-token' and 'acr login --expose-token'\\n")
    sys.exit(2)
expires = int(time.time()) + {lifetime!r}
print(json.dumps({{
    "accessToken": {token!r},
    "expiresOn": time.strftime("%Y-%m-%d %H:%M:%S.000000", time.localtime(expires)),
    "expires_on": expires,
    "subscription": "00000000-0000-4000-8000-0000000005b5",
    "tenant": {tenant!r},
    "tokenType": "Bearer",
}}, indent=2))
'''


def write_az_stub(directory: Path, token: str, *, tenant: str = "", logged_in: bool = True,
                  lifetime: int = 3600, acr_refresh_token: str = "", login_server: str = "") -> Path:
    """Write ``directory/az``; return ``directory`` (to put first on PATH). With
    ``acr_refresh_token`` it also answers ``az acr login --name … --expose-token`` with it."""
    directory.mkdir(parents=True, exist_ok=True)
    az = directory / "az"
    az.write_text(_STUB.format(python=sys.executable, calls=str(directory / "az-calls.jsonl"), token=token,
                               tenant=tenant, logged_in=logged_in, lifetime=lifetime,
                               acr_refresh_token=acr_refresh_token, login_server=login_server))
    az.chmod(0o755)
    return directory


def az_calls(directory: Path) -> list[list[str]]:
    """The arguments of every call the stub in ``directory`` answered."""
    path = directory / "az-calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
