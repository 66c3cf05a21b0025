"""OAuth client credentials (`POST /oauth/token`) and bearer-token checks (genesys-api.md §4.1, §1.5).

- Token request: `Authorization: Basic base64(id:secret)` + form `grant_type=client_credentials`
  (VERIFIED). Answer `{access_token, token_type: "bearer", expires_in}`; lifetime configurable (default
  86399 s). Wrong grant type -> 400; unknown client or wrong secret -> 401 ErrorBody (the OAuth-style
  `error`/`error_description` fields are added too, so either parser works).
- API calls: `Authorization: Bearer <token>`; a missing, unknown, expired or revoked token -> 401 ErrorBody
  (code configurable, default `bad.credentials`: FOLKLORE).
- Permissions come from the client's roles (VERIFIED model): a client lacking every permission a route
  accepts -> 403 `missing.permissions` naming them.
Tokens and secrets are never logged or echoed. Not thread-safe: the Simulation lock guards it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from connector.testbed.simulator.errors import MISSING_PERMISSIONS, ApiProblem

DETAIL_VIEW = "analytics:conversationDetail:view"
AGENT_DETAIL_VIEW = "analytics:agentConversationDetail:view"
ALL_PERMISSIONS: tuple[str, ...] = (DETAIL_VIEW, AGENT_DETAIL_VIEW)


@dataclass(frozen=True)
class ClientCredentials:
    """An OAuth client the simulated org knows, with the permissions its roles grant."""

    client_id: str
    client_secret: str
    permissions: tuple[str, ...] = ALL_PERMISSIONS

    def __repr__(self) -> str:  # never show the secret
        return f"ClientCredentials(client_id={self.client_id!r}, permissions={self.permissions!r})"


@dataclass
class AccessToken:
    """One issued bearer token."""

    token: str
    client_id: str
    issued_ms: int
    expires_ms: int
    revoked: bool = False


class AuthService:
    """Issues and checks tokens."""

    def __init__(
        self,
        clients: Iterable[ClientCredentials],
        *,
        token_ttl_s: int,
        now_ms: Callable[[], int],
        unauthorized_code: str = "bad.credentials",
    ) -> None:
        self._clients = {c.client_id: c for c in clients}
        self._tokens: dict[str, AccessToken] = {}
        self._now_ms = now_ms
        self.token_ttl_s = token_ttl_s
        self.unauthorized_code = unauthorized_code

    def add_client(self, client: ClientCredentials) -> None:
        """Register (or replace) a client."""
        self._clients[client.client_id] = client

    def client(self, client_id: str) -> ClientCredentials | None:
        """The registered client with this id."""
        return self._clients.get(client_id)

    def issue(self, authorization: str | None, grant_type: str | None) -> dict[str, object]:
        """Handle a token request; returns the JSON body or raises ApiProblem (400/401)."""
        client = self._basic_client(authorization)
        if grant_type != "client_credentials":
            raise ApiProblem(
                400,
                f"Unsupported grant_type {grant_type!r}; this endpoint accepts grant_type=client_credentials",
                code="bad.request",
                extra={"error": "unsupported_grant_type", "error_description": "grant type not supported"},
            )
        now = self._now_ms()
        token = AccessToken(secrets.token_urlsafe(48), client.client_id, now, now + self.token_ttl_s * 1000)
        self._tokens[token.token] = token
        return {"access_token": token.token, "token_type": "bearer", "expires_in": self.token_ttl_s}

    def _basic_client(self, authorization: str | None) -> ClientCredentials:
        def invalid(reason: str) -> ApiProblem:
            return ApiProblem(
                401,
                reason,
                code=self.unauthorized_code,
                extra={"error": "invalid_client", "error_description": reason},
            )

        if not authorization or not authorization.lower().startswith("basic "):
            raise invalid("Client authentication is required: send 'Authorization: Basic base64(id:secret)'")
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise invalid("The Basic authorization header is not valid base64") from None
        client_id, sep, secret = decoded.partition(":")
        client = self._clients.get(client_id)
        if not sep or client is None or not hmac.compare_digest(secret, client.client_secret):
            raise invalid("Invalid client credentials")
        return client

    def authenticate(self, authorization: str | None) -> AccessToken:
        """The live token behind a `Bearer` header, or a 401 ApiProblem."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise ApiProblem(
                401,
                "No authentication bearer token specified in authorization header.",
                code=self.unauthorized_code,
            )
        token = self._tokens.get(authorization[7:].strip())
        if token is None:
            raise ApiProblem(401, "Invalid login credentials.", code=self.unauthorized_code)
        if token.revoked:
            raise ApiProblem(401, "The access token has been revoked.", code=self.unauthorized_code)
        if self._now_ms() >= token.expires_ms:
            raise ApiProblem(401, "The access token has expired.", code=self.unauthorized_code)
        return token

    def require_any(self, token: AccessToken, permissions: tuple[str, ...]) -> None:
        """403 unless the token's client holds at least one of `permissions`."""
        client = self._clients.get(token.client_id)
        granted = set(client.permissions) if client else set()
        if granted.intersection(permissions):
            return
        names = ", ".join(permissions)
        raise ApiProblem(
            403,
            f"You are missing the following permission(s): {names}",
            code=MISSING_PERMISSIONS,
            message_params={"permissions": names},
        )

    def issued(self) -> list[str]:
        """Every token issued so far (revoked and expired ones too), oldest first."""
        return list(self._tokens)

    def revoke(self, *, token: str | None = None, client_id: str | None = None) -> int:
        """Revoke one token, every token of a client, or (no argument) every token; returns how many."""
        count = 0
        for item in self._tokens.values():
            if item.revoked:
                continue
            if (token is None or item.token == token) and (client_id is None or item.client_id == client_id):
                item.revoked = True
                count += 1
        return count
