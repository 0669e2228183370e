"""The HTTP API's bearer token: where it comes from and how a request's header is checked.

One module for every endpoint that needs it (/sql, write endpoints, live ingestion), so that the
rules are the same everywhere: constant-time comparison, the token never logged or echoed.
"""

from __future__ import annotations

import hmac
import ipaddress
from pathlib import Path


class TokenError(ValueError):
    """The token settings cannot be used (unreadable or empty token file, both sources set)."""


def read_api_token(token: str, token_file: str) -> str:
    """The configured token: STREAMS_API_TOKEN, or the first line of STREAMS_API_TOKEN_FILE; '' for none."""
    if token and token_file:
        raise TokenError("set STREAMS_API_TOKEN or STREAMS_API_TOKEN_FILE, not both")
    if token_file:
        try:
            first = Path(token_file).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise TokenError(f"STREAMS_API_TOKEN_FILE: cannot read {token_file}: {exc.strerror}") from exc
        value = first[0].strip() if first else ""
        if not value:
            raise TokenError(f"STREAMS_API_TOKEN_FILE: {token_file} is empty")
        return value
    return token.strip()


def bearer_matches(authorization: str | None, expected: str) -> bool:
    """Does an `Authorization: Bearer <token>` header carry `expected`? Constant time in the token."""
    if not expected:
        return True
    if not authorization:
        return False
    scheme, _, presented = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), expected.encode())


def is_loopback(host: str) -> bool:
    """Is `host` (a bind address or name) reachable only from this machine?"""
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
