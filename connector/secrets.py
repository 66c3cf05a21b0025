"""What counts as a secret, and how it is masked: the one rule every output of the connector applies.

Used by `check-config` (`kafka.extra` values), the librdkafka settings log line and its errors, the log
redactor (messages, extras, tracebacks), the checkpoint's `last_error` and `status`. Two parts:

- **names**: `is_secret_name()` says whether a setting or field name holds a credential. librdkafka's own
  sensitive properties (flagged `_RK_SENSITIVE` in rdkafka_conf.c: `sasl.password`,
  `sasl.oauthbearer.config`, `ssl.key.password`, `ssl.key.pem`, `ssl.keystore.password`...) are listed
  explicitly; beyond them a name is secret when its *last word* is one of `password`, `secret`, `token`,
  `credentials`, `authorization`, `api key`, `private key`, `passphrase` (`client_secret`, `access_token`,
  `sasl.oauthbearer.client.secret` yes; `token_type`, `client_secret_file`, `token.endpoint.url` no).
  `sasl.username` and file locations are not secrets here, although librdkafka flags some of them.
- **text**: `Redactor.redact()` masks values, never prose. A value is masked when it is a registered
  secret (also URL-encoded or JSON-escaped), a bearer token (`Bearer <token>`), an `Authorization`
  header's credentials, or the value of a secret-named key written as a pair: `key=value`,
  `"key": "value"`, `'key': 'value'`, `key: "value"`. A secret-named word followed by `: ` and unquoted
  text is prose, not a pair: `oauth_token: attempt 1/6 failed` stays as it is.

Registered secrets live in a `Redactor` instance that is passed to whoever obtains a secret (the client
registers each OAuth token it receives); there is one per process because logging is process-wide.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Protocol
from urllib.parse import quote, quote_plus

MASK = "***"

#: librdkafka properties whose value is a credential (rdkafka_conf.c `_RK_SENSITIVE`, minus the username
#: and file locations), plus OIDC ones newer librdkafka versions add.
LIBRDKAFKA_SECRET_PROPERTIES = frozenset(
    {
        "sasl.password",
        "sasl.oauthbearer.config",
        "sasl.oauthbearer.client.secret",
        "sasl.oauthbearer.assertion.private.key.passphrase",
        "sasl.oauthbearer.assertion.private.key.pem",
        "ssl.key.password",
        "ssl.key.pem",
        "ssl_key",
        "ssl.keystore.password",
        "sasl.jaas.config",  # a Java property librdkafka rejects, but it holds a password when tried
    }
)

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SECRET_LAST_WORD = re.compile(
    r"(?:^|[._\s-])(?:password|passwd|pwd|secret|token|credentials?|authorization|passphrase"
    r"|api[._-]?key|private[._-]?key|key[._-]pem)$"
)

# --- text patterns ------------------------------------------------------------------------------
_TOKEN_CHARS = r"[A-Za-z0-9._~+/-]"  # noqa: S105 - a character class, not a password
#: `Bearer <token>`: the token has a digit or punctuation, or is long; `the bearer token expired` is prose.
#: A `word=` after it is the next key of a `key=value` list, not a token.
_BEARER = re.compile(
    rf"(?i)\b(bearer)\s+(?:(?={_TOKEN_CHARS}*[0-9._~+/-]){_TOKEN_CHARS}{{6,}}={{0,2}}|[A-Za-z]{{20,}})"
    r"(?![=\w.~+/-])"
)
#: `Authorization: Basic <credentials>` (any scheme word followed by a credential).
_AUTH_HEADER = re.compile(
    r"(?i)\b(authorization[\"']?\s*[:=]\s*[\"']?)(?:basic|bearer|digest|negotiate|ntlm|token)\s+"
    r"[^\s\"',;)\]}]+"
)
_QUOTED = r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'"
#: `key=value` (value quoted or up to a delimiter) or `key: "value"` / `"key": "value"` (value quoted).
_PAIR = re.compile(
    rf"(?P<key>[A-Za-z_][\w.-]*)(?P<sep>[\"']?\s*=\s*)(?P<value>{_QUOTED}|[^\s\"'&,;)\]}}]+)"
    rf"|(?P<key2>[A-Za-z_][\w.-]*)(?P<sep2>[\"']?\s*:\s*)(?P<value2>{_QUOTED})"
)


def is_secret_name(name: str) -> bool:
    """True if a setting, field or key called `name` holds a credential (see the module docstring)."""
    lowered = name.strip().lower()
    if lowered in LIBRDKAFKA_SECRET_PROPERTIES:
        return True
    words = _CAMEL.sub("_", name.strip()).lower()
    return bool(_SECRET_LAST_WORD.search(words))


def mask_settings(settings: Mapping[str, object]) -> dict[str, object]:
    """A copy of a flat settings mapping (librdkafka properties, `kafka.extra`) with secret values masked."""
    return {key: (MASK if is_secret_name(str(key)) else value) for key, value in settings.items()}


class SecretRegistry(Protocol):
    """Where a component reports a secret it has obtained (an OAuth token) so that it is never shown."""

    def add(self, secret: str | None) -> None: ...


class Redactor:
    """Masks secrets in text: registered literal values plus the value patterns of the module docstring.

    Thread-safe; `add` may be called at any time (each new OAuth token is added when it arrives).
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._literal: re.Pattern[str] | None = None
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        """Mask `secret` from now on, also URL-encoded or JSON-escaped. Empty values are ignored."""
        if not secret:
            return
        forms = {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]}
        with self._lock:
            if forms <= self._secrets:
                return
            self._secrets |= {f for f in forms if f}
            ordered = sorted(self._secrets, key=len, reverse=True)  # longest first: no partial leftovers
            self._literal = re.compile("|".join(_literal_pattern(s) for s in ordered))

    def redact(self, text: str) -> str:
        """`text` with every secret value replaced by `***`; everything else unchanged."""
        literal = self._literal
        if literal is not None:
            text = literal.sub(MASK, text)
        text = _AUTH_HEADER.sub(rf"\g<1>{MASK}", text)
        text = _BEARER.sub(rf"\1 {MASK}", text)
        return _PAIR.sub(_mask_pair, text)

    def redact_value(self, value: object, *, key: str | None = None) -> object:
        """Redact strings inside `value` (recursing into mappings and sequences); mask secret-named keys."""
        if key is not None and value is not None and is_secret_name(key):
            return MASK
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, Mapping):
            return {k: self.redact_value(v, key=str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.redact_value(v) for v in value]
        if isinstance(value, int | float | bool | datetime) or value is None:
            return value
        return self.redact(str(value))


#: Secrets shorter than this are masked only where they stand alone, not inside a longer run of letters and
#: digits: a one-letter test password must not turn "genesys" into "genes***s" in every log line.
SHORT_SECRET = 8


def _literal_pattern(secret: str) -> str:
    """The regex for one registered secret: anywhere when long, as a whole token when short."""
    if len(secret) >= SHORT_SECRET:
        return re.escape(secret)
    return rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])"


def _mask_pair(match: re.Match[str]) -> str:
    key, sep, value = match.group("key", "sep", "value")
    if key is None:
        key, sep, value = match.group("key2", "sep2", "value2")
    if not is_secret_name(key) or value.strip("\"'") == MASK:
        return match.group(0)
    quote_char = value[0] if value[:1] in ("'", '"') else ""
    return f"{key}{sep}{quote_char}{MASK}{quote_char}"
