import pytest
from videodb_retry.adapters import api_key
from videodb_retry.adapters.api_key import ApiKeyProvider, parse_secret_value
from videodb_retry.errors import ConfigurationError, TransientError
from videodb_retry.settings import Settings, url_origin


def test_defaults_match_the_template_defaults():
    settings = Settings.from_env({})
    assert settings.api_base_url == "https://api.videodb.io"
    assert settings.max_retry_attempts == 3
    assert settings.api_origin == ("https", "api.videodb.io", 443)


def test_env_overrides_and_trailing_slash():
    settings = Settings.from_env(
        {
            "VIDEODB_API_BASE_URL": "http://127.0.0.1:8080/",
            "POLL_FIRST_WAIT_SECONDS": "7",
            "MAX_RETRY_ATTEMPTS": "5",
        }
    )
    assert settings.api_base_url == "http://127.0.0.1:8080"
    assert settings.poll_first_wait_seconds == 7 and settings.max_retry_attempts == 5


@pytest.mark.parametrize(
    "env",
    [
        {"VIDEODB_API_BASE_URL": "ftp://x"},
        {"MAX_RETRY_ATTEMPTS": "0"},
        {"MAX_RETRY_ATTEMPTS": "three"},
        {"POLL_DEADLINE_SECONDS": "-1"},
    ],
)
def test_bad_settings_fail_at_start(env):
    with pytest.raises(ValueError):
        Settings.from_env(env)


def test_origin_compares_scheme_host_and_port():
    assert url_origin("https://API.videodb.io/x") == url_origin("https://api.videodb.io:443/y")
    assert url_origin("http://api.videodb.io") != url_origin("https://api.videodb.io")
    assert url_origin("https://api.videodb.io:8443") != url_origin("https://api.videodb.io")


@pytest.mark.parametrize(
    "raw, key",
    [
        ("sk-plain", "sk-plain"),
        ("  sk-plain\n", "sk-plain"),
        ('{"api_key": "sk-json"}', "sk-json"),
        (b"sk-bytes", "sk-bytes"),
    ],
)
def test_secret_value_shapes(raw, key):
    assert parse_secret_value(raw) == key


@pytest.mark.parametrize(
    "raw", ["", '{"api_key": ""}', "{not json", '{"key": "x"}', '{"api_key": 5}', "sk a", 7]
)
def test_unusable_secret_values(raw):
    with pytest.raises(ConfigurationError) as caught:
        parse_secret_value(raw)
    assert "sk" not in str(caught.value).replace("secret", "")


def test_provider_caches_with_ttl_and_refreshes(monkeypatch):
    calls = []

    def fake_get_secret(name, max_age, force_fetch):
        calls.append((name, max_age, force_fetch))
        return '{"api_key": "sk-x"}'

    monkeypatch.setattr(api_key.parameters, "get_secret", fake_get_secret)
    provider = ApiKeyProvider(Settings(api_key_secret_id="arn:secret", secret_cache_ttl_seconds=123))
    assert provider() == "sk-x"
    assert provider.refresh() == "sk-x"
    assert calls == [("arn:secret", 123, False), ("arn:secret", 123, True)]


def test_secrets_manager_failure_is_transient(monkeypatch):
    def failing(*args, **kwargs):
        raise api_key.parameters.exceptions.GetParameterError("ThrottlingException")

    monkeypatch.setattr(api_key.parameters, "get_secret", failing)
    with pytest.raises(TransientError, match="could not read the API key secret"):
        ApiKeyProvider(Settings(api_key_secret_id="arn:secret"))()


def test_missing_secret_id_is_a_configuration_error():
    with pytest.raises(ConfigurationError):
        ApiKeyProvider(Settings(api_key_secret_id=""))()
