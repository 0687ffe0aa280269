"""Secret values are masked anywhere in what the executor writes."""

from __future__ import annotations

from services.executor.masking import masker
from shared.secrets import SecretsKeyError, cipher, derive_key, new_key
from shared.settings import Settings


def test_values_are_masked_in_nested_json_longest_first() -> None:
    mask = masker({"A": "hunter2", "B": "hunter2-extra", "C": "ab"})
    value = {"hunter2": ["x hunter2-extra y", 3, {"k": "hunter2"}], "short": "ab"}
    assert mask(value) == {"***": ["x *** y", 3, {"k": "***"}], "short": "ab"}


def test_no_secrets_means_no_change() -> None:
    value = {"a": ["b"]}
    assert masker({})(value) is value


def test_a_missing_or_bad_key_is_a_clear_error_and_a_derived_key_is_stable() -> None:
    for key, text in (("", "is not set"), ("nope", "32 url-safe")):
        try:
            cipher(Settings(secrets_key=key))
        except SecretsKeyError as exc:
            assert "FLOWCRON_SECRETS_KEY" in str(exc) and text in str(exc)
        else:
            raise AssertionError("no error")
    assert derive_key("dev") == derive_key("dev") != derive_key("other")
    old, new = new_key(), new_key()
    token = cipher(Settings(secrets_key=old)).encrypt(b"v")
    assert cipher(Settings(secrets_key=f"{new},{old}")).decrypt(token) == b"v"
