"""The configuration is validated loudly: unknown variables warned of, bad values one line each."""

import os

import pytest
from pydantic import SecretStr

from pixyproxy.entrypoints.configuration import MASK, effective_configuration, validated_settings
from pixyproxy.settings import ConfigurationError, Settings, load_settings, unknown_variables


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env of the working directory
    for name in list(os.environ):
        if name.startswith(("PIXYPROXY_", "DB_")):
            monkeypatch.delenv(name)


def test_an_unknown_variable_is_warned_of_with_the_closest_known_one(tmp_path):
    (tmp_path / ".env").write_text("PIXYPROXY_GENRATOR=openai\n")
    environ = {"PIXYPROXY_RATE_LIMT_PER_MINUTE": "5", "PIXYPROXY_PORT": "8001", "PIXYPROXY_URL": "x"}
    assert unknown_variables(environ) == [
        "PIXYPROXY_GENRATOR is not a PixyProxy setting and is ignored; did you mean PIXYPROXY_GENERATOR?",
        "PIXYPROXY_RATE_LIMT_PER_MINUTE is not a PixyProxy setting and is ignored; "
        "did you mean PIXYPROXY_RATE_LIMIT_PER_MINUTE?",
    ]
    assert unknown_variables({"PIXYPROXY_TEST_REDIS_URL": "x", "HOME": "/"}, env_file=None) == []


@pytest.mark.parametrize(
    ("setting", "url", "variable"),
    [
        ("database_url", "postgres://pixy:hunter2@db:5432/pixy", "PIXYPROXY_DATABASE_URL"),
        ("storage_url", "gs://bucket:hunter2/images", "PIXYPROXY_STORAGE_URL"),
        ("database_url", "no-scheme-hunter2", "PIXYPROXY_DATABASE_URL"),
    ],
)
def test_an_unsupported_scheme_is_one_line_naming_the_variable_not_the_url(setting, url, variable):
    with pytest.raises(ConfigurationError) as caught:
        load_settings(**{setting: url})
    (problem,) = caught.value.problems
    assert problem.startswith(f"{variable}: unsupported scheme") and "hunter2" not in problem


def test_every_invalid_value_is_a_line_of_its_own(monkeypatch):
    monkeypatch.setenv("PIXYPROXY_PORT", "99999")
    monkeypatch.setenv("PIXYPROXY_WORKERS", "none")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert [p.split(":")[0] for p in caught.value.problems] == ["PIXYPROXY_PORT", "PIXYPROXY_WORKERS"]


def test_a_key_with_an_unknown_role_stops_the_start_naming_its_position_not_its_text(monkeypatch):
    monkeypatch.setenv("PIXYPROXY_API_KEYS", "reports:admin:k1,ducky:superuser:abc-secret")
    with pytest.raises(ConfigurationError) as caught:
        validated_settings()
    assert caught.value.problems == ["PIXYPROXY_API_KEYS entry 2: a key's role is one of admin, user"]


def test_a_bad_keys_file_line_is_named_by_number(monkeypatch, tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_text("# keys\nducky:user:" + "a" * 64 + "\nops:superuser:" + "b" * 64 + "\n")
    monkeypatch.setenv("PIXYPROXY_API_KEYS_FILE", str(keys))
    with pytest.raises(ConfigurationError) as caught:
        validated_settings()
    (problem,) = caught.value.problems
    assert problem.startswith(f"{keys}:3: ") and "b" * 64 not in problem


def test_the_effective_configuration_masks_every_secret():
    settings = Settings(
        _env_file=None,
        database_url="mysql://pixy:hunter2@db:3306/pixy",
        redis_url="redis://:hunter3@redis:6379/0",
        api_keys=SecretStr("ducky:user:hunter4"),
        webhook_secret=SecretStr("whsec_" + "A" * 24),
    )
    shown = {item.variable: item for item in effective_configuration(settings)}
    text = repr(shown)
    assert not any(secret in text for secret in ("hunter2", "hunter3", "hunter4", "A" * 24))
    assert shown["PIXYPROXY_DATABASE_URL"].value == f"mysql://pixy:{MASK}@db:3306/pixy"
    assert shown["PIXYPROXY_API_KEYS"].value == MASK and not shown["PIXYPROXY_API_KEYS"].default
    assert shown["PIXYPROXY_PORT"].value == "8001" and shown["PIXYPROXY_PORT"].default
