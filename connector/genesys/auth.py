"""OAuth client-credentials tokens for Genesys Cloud: fetched once, shared, refreshed before they expire.

The token request itself is an HTTP call like any other, so it goes through the client's single choke point
(pacing, retries, metrics): `TokenProvider` does no I/O of its own and receives a `request_token` callable
from `GenesysClient` that POSTs `grant_type=client_credentials` with Basic auth to `{login}/oauth/token` and
returns the parsed JSON. The client secret therefore never reaches this module.

Refresh rule: a token is replaced once less than `max(15 % of its lifetime, min(60 s, half its lifetime))`
is left, i.e. at 85 % of a long-lived token's `expires_in`, a minute before expiry for a 5-minute one.
Concurrent callers share one in-flight refresh. After a 401 the client calls `invalidate(token)` and retries
once with a fresh token; a second 401 is an `AuthenticationError`.

Every token obtained is reported to the injected `SecretRegistry` (the process's log redactor) before it is
handed out, so a bare token is masked wherever it might later appear: a log line, an error, a traceback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from connector.clock import Clock
from connector.errors import ApiContractError, AuthenticationError
from connector.metrics import ConnectorMetrics
from connector.secrets import SecretRegistry

log = logging.getLogger(__name__)

TokenRequest = Callable[[], Awaitable[Mapping[str, Any]]]
"""Performs the token request through the client and returns the parsed JSON response."""

ENDPOINT = "oauth_token"
#: Refresh when this share of the lifetime is left (85 % used)...
_REFRESH_FRACTION_LEFT = 0.15
#: ...or when less than this many seconds are left (capped at half the lifetime for very short tokens).
_REFRESH_MARGIN_S = 60.0


class TokenProvider:
    """Hands out a valid bearer token; one instance per OAuth client, shared by every request."""

    def __init__(
        self,
        *,
        client_id: str,
        request_token: TokenRequest,
        clock: Clock,
        metrics: ConnectorMetrics,
        secrets: SecretRegistry | None = None,
    ) -> None:
        self._client_id = client_id
        self._secrets = secrets
        self._request_token = request_token
        self._clock = clock
        self._metrics = metrics
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0  # monotonic
        self._expires_at = 0.0  # monotonic

    @property
    def client_id(self) -> str:
        return self._client_id

    def has_valid_token(self) -> bool:
        """True while the cached token has not expired (for `/readyz`)."""
        return self._token is not None and self._clock.monotonic() < self._expires_at

    async def token(self) -> str:
        """A token that is not about to expire; fetches one if needed (one fetch for all callers)."""
        current = self._token
        if current is not None and self._clock.monotonic() < self._refresh_at:
            return current
        async with self._lock:
            if self._token is not None and self._clock.monotonic() < self._refresh_at:
                return self._token  # another caller refreshed it while we waited
            return await self._fetch()

    def invalidate(self, token: str) -> None:
        """The server rejected `token` (401): forget it unless it was already replaced."""
        if token == self._token:
            self._token = None
            self._refresh_at = self._expires_at = 0.0

    async def _fetch(self) -> str:
        try:
            payload = await self._request_token()
        except (AuthenticationError, ApiContractError) as exc:
            self._metrics.oauth_token_requests.labels("rejected").inc()
            raise AuthenticationError(
                f"Genesys rejected the OAuth client credentials for client id {self._client_id!r}: "
                f"{exc.message} (check genesys.client_id / client_secret and the region)",
                status=exc.status,
                code=exc.code,
                correlation_id=exc.correlation_id,
                endpoint=ENDPOINT,
            ) from None
        except BaseException:
            self._metrics.oauth_token_requests.labels("error").inc()
            raise
        token, expires_in = self._parse(payload)
        if self._secrets is not None:
            self._secrets.add(token)
        now = self._clock.monotonic()
        margin = max(expires_in * _REFRESH_FRACTION_LEFT, min(_REFRESH_MARGIN_S, expires_in / 2))
        self._token = token
        self._expires_at = now + expires_in
        self._refresh_at = now + expires_in - margin
        self._metrics.oauth_token_requests.labels("success").inc()
        self._metrics.oauth_token_expiry_timestamp_seconds.set(self._clock.now().timestamp() + expires_in)
        log.info("obtained an OAuth token for client id %s, valid for %ds", self._client_id, expires_in)
        return token

    def _parse(self, payload: Mapping[str, Any]) -> tuple[str, float]:
        token = payload.get("access_token")
        expires_in = payload.get("expires_in", 3600)
        valid_ttl = (
            isinstance(expires_in, int | float) and not isinstance(expires_in, bool) and expires_in > 0
        )
        if not isinstance(token, str) or not token or not valid_ttl:
            self._metrics.oauth_token_requests.labels("error").inc()
            raise ApiContractError(
                "the token response lacks a usable access_token/expires_in", endpoint=ENDPOINT
            )
        return token, float(expires_in)
