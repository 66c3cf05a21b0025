"""The one secret rule: which names hold credentials, and which parts of a text are secret values."""

from __future__ import annotations

import pytest

from connector.secrets import MASK, Redactor, is_secret_name, mask_settings


@pytest.mark.parametrize(
    "name",
    [
        "client_secret",
        "sasl_password",
        "ssl_key_password",
        "sasl.password",
        "sasl.oauthbearer.config",
        "sasl.oauthbearer.client.secret",
        "ssl.key.pem",
        "ssl.keystore.password",
        "access_token",
        "refresh_token",
        "oauth_token",
        "token",
        "password",
        "Authorization",
        "api_key",
        "apiKey",
        "clientSecret",
        "accessToken",
        "private-key",
        "sasl.jaas.config",
    ],
)
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "client_secret_file",
        "sasl_password_file",
        "token_type",
        "token_expiry",
        "expires_in",
        "sasl.username",
        "sasl.oauthbearer.token.endpoint.url",
        "ssl.key.location",
        "ssl.certificate.pem",
        "bootstrap.servers",
        "tokens_issued",
        "keyboard",
        "monkey",
    ],
)
def test_ordinary_names(name: str) -> None:
    assert not is_secret_name(name)


def test_mask_settings_masks_secret_values_only() -> None:
    shown = mask_settings({"sasl.oauthbearer.config": "principal=x", "linger.ms": 5, "sasl.username": "u"})
    assert shown == {"sasl.oauthbearer.config": MASK, "linger.ms": 5, "sasl.username": "u"}


@pytest.mark.parametrize(
    "text",
    [
        "oauth_token: attempt 1/6 failed",
        "oauth_token: token rejected (401), retrying once with a fresh token",
        "access_token: missing from the response",
        "password: required with SASL_SSL",
        "Basic configuration loaded; authorization failed for user 42; token_expiry in 5m",
        "authorization: attempt 2 failed",
        "the bearer token expired",
        '{"token_type":"bearer","expires_in":86399}',
        "token_type=bearer expires_in=86399",
        "client_secret_file=/var/run/secrets/genesys/client-secret",
        "kafka.sasl_password: required (or set kafka.sasl_password_file)",
    ],
)
def test_prose_after_a_secret_name_is_left_alone(text: str) -> None:
    assert Redactor().redact(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("client_secret=abc123&grant_type=x", f"client_secret={MASK}&grant_type=x"),
        ("oauth_token=abc", f"oauth_token={MASK}"),
        ("sasl.password = 'hunter2'", f"sasl.password = '{MASK}'"),
        ('{"access_token": "opaque-xyz", "expires_in": 5}', f'{{"access_token": "{MASK}", "expires_in": 5}}'),
        ("{'password': 'pw', 'user': 'u'}", f"{{'password': '{MASK}', 'user': 'u'}}"),
        ('sasl.oauthbearer.config: "principal=admin"', f'sasl.oauthbearer.config: "{MASK}"'),
        ("retrying with Bearer tok-abc.def_ghi now", f"retrying with Bearer {MASK} now"),
        ("Authorization: Basic Y2xpZW50OnNlY3JldA==", f"Authorization: {MASK}"),
        ("Authorization: Bearer abc", f"Authorization: {MASK}"),
        ("'Authorization': 'Basic Y2xp'", f"'Authorization': '{MASK}'"),
    ],
)
def test_secret_values_are_masked(text: str, expected: str) -> None:
    redactor = Redactor()
    assert redactor.redact(text) == expected
    assert redactor.redact(expected) == expected  # idempotent


def test_registered_secrets_are_masked_bare_and_encoded() -> None:
    token = "Zx9_bare-token-without-any-key"
    redactor = Redactor()
    redactor.add(token)
    redactor.add(None)
    redactor.add("")
    redactor.add("p@ss word")
    assert redactor.redact(f"unexpected: {token} in text") == f"unexpected: {MASK} in text"
    assert redactor.redact("form p%40ss+word and p%40ss%20word") == f"form {MASK} and {MASK}"


def test_redact_value_masks_secret_keys_and_recurses() -> None:
    redactor = Redactor(["s3cr3t"])
    value = {"password": "x", "detail": ["pw s3cr3t"], "token_type": "bearer", "count": 3}
    assert redactor.redact_value(value) == {
        "password": MASK,
        "detail": [f"pw {MASK}"],
        "token_type": "bearer",
        "count": 3,
    }


def test_a_short_secret_is_masked_where_it_stands_alone_not_inside_words() -> None:
    """A one-letter test password must not garble every word that contains the letter."""
    redactor = Redactor(["y"])
    text = "'client.id': 'genesys-connector', 'security.protocol': 'PLAINTEXT' password y, pw=y"
    assert redactor.redact(text) == (
        "'client.id': 'genesys-connector', 'security.protocol': 'PLAINTEXT' password ***, pw=***"
    )


def test_a_long_secret_is_masked_even_inside_other_text() -> None:
    redactor = Redactor(["s3cr3t-Value-42"])
    assert redactor.redact("note abcs3cr3t-Value-42xyz") == "note abc***xyz"
