"""Configuration: the embedded default, env overrides, and clear errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ENV_OVERRIDES, load_settings
from gateway.errors import ConfigError
from tests.support import REPO


def test_embedded_default_is_sqlite_under_var() -> None:
    settings = load_settings(env={})
    assert settings.database_url == "sqlite+aiosqlite:///var/gateway.db"
    assert settings.public_url == "http://127.0.0.1:8080"


def test_environment_overrides_single_settings() -> None:
    settings = load_settings(
        env={
            "GATEWAY_DATABASE_URL": "postgresql+asyncpg://u@db/gw",
            "GATEWAY_PORT": "9090",
            "GATEWAY_HOST": "0.0.0.0",
            "GATEWAY_ENCRYPTION_KEYS": "k2:" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=",
        }
    )
    assert settings.database_url == "postgresql+asyncpg://u@db/gw"
    assert settings.port == 9090 and settings.host == "0.0.0.0"
    assert settings.encryption_keys.startswith("k2:")


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("server:\n  prot: 80\n", "unknown key server.prot"),
        ("sever: {}\n", "unknown key sever"),
        ("server:\n  port: eighty\n", "server.port"),
        ("database:\n  url: mysql://x\n", "database.url"),
        ("dispatch:\n  max_attempts: 0\n", "dispatch.max_attempts"),
        ("server: [\n", "not valid YAML"),
        ("- a\n- b\n", "top level must be a mapping"),
    ],
)
def test_invalid_config_stops_with_the_key_named(tmp_path: Path, yaml_text: str, message: str) -> None:
    path = tmp_path / "gw.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=message):
        load_settings(path, env={})


def test_env_override_with_wrong_type_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="GATEWAY_PORT must be int"):
        load_settings(env={"GATEWAY_PORT": "http"})


def test_every_env_override_is_documented() -> None:
    doc = (REPO / "docs" / "configuration.md").read_text()
    for var, (dotted, _) in ENV_OVERRIDES.items():
        assert f"`{var}`" in doc, var
        assert f"`{dotted}`" in doc, dotted
