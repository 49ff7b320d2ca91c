"""API keys have names and roles: `name:role:sha256hex` lines, bare digests (users named by the digest's
first 8 hex digits), and PIXYPROXY_API_KEYS entries `key` or `name:role:key`."""

import hashlib

import pytest

from pixyproxy.domain.models import Caller
from pixyproxy.entrypoints.middleware.api_keys import ApiKeyCheck, load_key_digests, load_keys


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def test_named_lines_bare_digests_and_env_keys_each_name_a_caller(tmp_path):
    keys_file = tmp_path / "keys"
    keys_file.write_text(
        f"# who may call\nducky:user:{digest('ducky-key')}\nops:admin:{digest('ops-key')}  # on call\n"
        f"{digest('old-key')}\n\n"
    )
    keys = load_keys("env-key, reports:admin:reports-key", keys_file)
    check = ApiKeyCheck(keys=keys)
    assert check.caller_for("ducky-key") == Caller("ducky", "user")
    assert check.caller_for("ops-key") == Caller("ops", "admin")
    assert check.caller_for("old-key") == Caller(digest("old-key")[:8], "user")
    assert check.caller_for("env-key") == Caller(digest("env-key")[:8], "user")
    assert check.caller_for("reports-key") == Caller("reports", "admin")
    assert check.caller_for("reports:admin:reports-key") is None  # the key is the part after role
    assert check.caller_for("wrong") is None and check.caller_for(None) is None
    assert check.identify("ducky-key") == "key:ducky"
    assert load_key_digests(None, keys_file) == [
        bytes.fromhex(digest(k)) for k in ("ducky-key", "ops-key", "old-key")
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("ducky:owner:{d}", "role is one of admin, user"),
        ("bad name:user:{d}", "name is 1-64 letters"),
        ("only:{d}", "not a SHA-256 hex digest"),
        ("a:b:c:{d}", "name is 1-64 letters"),
        ("ducky:user:secret-key-pasted", "not a SHA-256 hex digest"),
    ],
)
def test_a_wrong_line_stops_the_start_naming_the_line_not_its_text(tmp_path, line, message):
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"ok:user:{digest('x')}\n" + line.format(d=digest("y")) + "\n")
    with pytest.raises(ValueError, match=message) as raised:
        load_keys(None, keys_file)
    assert ":2:" in str(raised.value)
    assert "secret-key-pasted" not in str(raised.value) and digest("y") not in str(raised.value)


def test_two_keys_with_one_name_stop_the_start(tmp_path):
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"ducky:user:{digest('a')}\nducky:admin:{digest('b')}\n")
    with pytest.raises(ValueError, match="two keys named 'ducky'"):
        load_keys(None, keys_file)
    with pytest.raises(ValueError, match="the same key twice"):
        load_keys("same,same", None)
