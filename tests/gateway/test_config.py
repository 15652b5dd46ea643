"""One YAML file, overridable by GUARD_GATEWAY_* variables and flags; errors name the field."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from guard_client import Category, FailurePolicy, Strictness
from guard_gateway.__main__ import YOUNG_GENERATION_THRESHOLD, build_parser, config_from_args, main
from guard_gateway.config import ConfigError, env_name, load_config
from guard_gateway.policy import Action

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "gateway.example.yaml"


def test_defaults() -> None:
    config = load_config(environ={})
    assert config.port == 8080 and config.guard.url == "http://localhost:8000" and config.guard.model == "qwen3guard"
    assert config.policy.strictness is Strictness.STRICT
    assert config.policy.on_guard_failure is FailurePolicy.FAIL_CLOSED
    assert config.cache.enabled and config.guard.chunk and not config.logging.log_checked_text
    assert config.auth.keys() == frozenset()


def test_the_example_file_is_the_defaults() -> None:
    assert load_config(EXAMPLE, environ={}) == load_config(environ={})


def test_yaml_then_environment_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "gw.yaml"
    path.write_text(
        "guard:\n  url: http://yaml:8000\n  timeout: 5\npolicy:\n  response:\n    categories:\n      PII: allow\n"
    )
    environ = {env_name("guard.url"): "http://env:8000", env_name("cache.ttl_seconds"): "60"}
    config = load_config(path, {"guard.url": "http://flag:8000"}, environ)
    assert config.guard.url == "http://flag:8000" and config.guard.timeout == 5 and config.cache.ttl_seconds == 60
    assert config.policy.response.categories == {Category.PII: Action.ALLOW}
    assert env_name("guard.url") == "GUARD_GATEWAY_GUARD__URL"


@pytest.mark.parametrize(
    ("yaml_text", "named"),
    [
        ("guard:\n  urll: x\n", "guard.urll"),
        ("cache:\n  max_entries: -1\n", "cache.max_entries"),
        ("policy:\n  strictness: medium\n", "policy.strictness"),
        ("policy:\n  on_guard_failure: raise\n", "policy.on_guard_failure"),
        ("policy:\n  prompt:\n    categories:\n      Weapons: block\n", "policy.prompt.categories.Weapons"),
        ("nonsense: 1\n", "nonsense"),
        ("upstream:\n  url: localhost:9000/v1\n", "upstream.url"),
        ("guard:\n  url: 'http:// spaced'\n", "guard.url"),
    ],
)
def test_a_bad_file_names_the_field(tmp_path: Path, yaml_text: str, named: str) -> None:
    path = tmp_path / "gw.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_config(path, environ={})


def test_unknown_variable_or_flag_is_an_error() -> None:
    with pytest.raises(ConfigError, match="GUARD_GATEWAY_GUARD__URLL"):
        load_config(environ={"GUARD_GATEWAY_GUARD__URLL": "x"})
    with pytest.raises(ConfigError, match=r"'cache\.size'"):
        load_config(overrides={"cache.size": "3"}, environ={})
    with pytest.raises(ConfigError, match=r"port"):
        load_config(overrides={"port": "eighty"}, environ={})


def test_keys_from_the_environment_stay_text(tmp_path: Path) -> None:
    config = load_config(environ={env_name("auth.api_keys"): "123, abc", env_name("guard.api_key"): "0042"})
    assert config.auth.keys() == {"123", "abc"}
    assert config.guard.api_key is not None and config.guard.api_key.get_secret_value() == "0042"


def test_cli_shortcuts_and_set(monkeypatch: pytest.MonkeyPatch) -> None:
    args = build_parser().parse_args(
        [
            "serve",
            "--guard-url",
            "http://g:1",
            "--upstream-url",
            "http://u:2",
            "--port",
            "9",
            "--set",
            "cache.enabled=false",
        ]
    )
    config = config_from_args(args)
    assert (config.guard.url, config.upstream.url, config.port, config.cache.enabled) == (
        "http://g:1",
        "http://u:2",
        9,
        False,
    )


def test_cli_reports_a_bad_config_in_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "gw.yaml"
    path.write_text("limits:\n  max_body_bytes: 10\n")
    assert main(["serve", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "limits.max_body_bytes" in err and "\n" not in err


def test_the_example_file_is_generated_from_the_model() -> None:
    from guard_gateway.config import example_yaml

    assert EXAMPLE.read_text() == example_yaml(), (
        "regenerate: python -m guard_gateway config > deploy/gateway.example.yaml"
    )


def test_serve_keeps_the_start_up_heap_out_of_later_collections(monkeypatch: pytest.MonkeyPatch) -> None:
    """What exists when serving starts (modules, the app) is frozen, so no collection walks it again, and the
    young generation is large enough for the objects of requests in flight to die young."""
    assert gc.get_freeze_count() == 0
    threshold = gc.get_threshold()
    seen: list[tuple[int, tuple[int, ...]]] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kwargs: seen.append((gc.get_freeze_count(), gc.get_threshold())))
    try:
        assert main(["serve", "--guard-url", "http://127.0.0.1:9", "--port", "9999"]) == 0
    finally:
        gc.unfreeze()  # the rest of the test session collects as usual
        gc.set_threshold(*threshold)
    ((frozen, serving_threshold),) = seen
    assert frozen > 10_000
    assert serving_threshold == (YOUNG_GENERATION_THRESHOLD, *threshold[1:])
    assert threshold[0] < YOUNG_GENERATION_THRESHOLD
