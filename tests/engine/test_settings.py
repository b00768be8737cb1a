import pytest
from pydantic import ValidationError

from engine.settings import Settings, mask_url


def test_embedded_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = Settings()
    assert s.embedded
    assert s.db_url == f"sqlite:///{tmp_path / 'dataengine-data' / 'dataengine.db'}"
    assert str(s.media_path) == "dataengine-data/media"
    assert s.model_profile == "tiny"


def test_environment_overrides_nested_values(monkeypatch):
    monkeypatch.setenv("DATAENGINE_BROKER_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("DATAENGINE_BATCH_SIZES__MINE", "128")
    monkeypatch.setenv("DATAENGINE_DEDUP__PHASH_DISTANCE", "3")
    s = Settings()
    assert not s.embedded
    assert s.batch_sizes.mine == 128 and s.dedup.phash_distance == 3


def test_toml_file_is_below_environment(tmp_path, monkeypatch):
    path = tmp_path / "de.toml"
    path.write_text('media_root = "/srv/media"\n[batch_sizes]\nmine = 7\n[fetch]\nretries = 0\n')
    monkeypatch.setenv("DATAENGINE_CONFIG_FILE", str(path))
    monkeypatch.setenv("DATAENGINE_BATCH_SIZES__MINE", "9")
    s = Settings()
    assert str(s.media_path) == "/srv/media"
    assert s.fetch.retries == 0
    assert s.batch_sizes.mine == 9


def test_missing_config_file_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv("DATAENGINE_CONFIG_FILE", str(tmp_path / "nope.toml"))
    with pytest.raises(FileNotFoundError, match="nope.toml"):
        Settings()


@pytest.mark.parametrize("env", [("DATAENGINE_DEDUP__PHASH_DISTANCE", "12"),
                                 ("DATAENGINE_BATCH_SIZES__MINE", "0"),
                                 ("DATAENGINE_MODEL_PROFILE", "huge")])
def test_invalid_values_are_refused(monkeypatch, env):
    monkeypatch.setenv(*env)
    with pytest.raises(ValidationError):
        Settings()


def test_masked_hides_passwords():
    s = Settings(database_url="postgresql+psycopg://de:s3cret@db:5432/de",
                 broker_url="amqp://guest:pw@mq:5672//")
    data = s.masked()
    assert data["database_url"] == "postgresql+psycopg://de:***@db:5432/de"
    assert data["broker_url"] == "amqp://guest:***@mq:5672//"
    assert "s3cret" not in str(data) and "pw@" not in str(data)
    assert mask_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
