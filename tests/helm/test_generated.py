"""The chart's generated parts and pins are in step with their sources of truth."""

from __future__ import annotations

import json

import yaml
from chart_support import CHART_DIR, EXAMPLE_DIR

from deploy.profiles import available_profiles
from tests.conftest import pinned_version
from tools import helm_render

SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text())


def pinned_vllm() -> str:
    return pinned_version("vllm")


def test_profiles_template_is_generated_from_the_profiles() -> None:
    assert helm_render.PROFILES_TPL.read_text() == helm_render.render_profiles_tpl(), (
        "run `python -m tools.helm_render`"
    )


def test_readme_values_table_is_generated_from_the_schema() -> None:
    readme = helm_render.README.read_text()
    assert readme == helm_render.readme_with_table(readme), "run `python -m tools.helm_render`"


def test_check_mode_reports_in_step() -> None:
    assert helm_render.main(["--check"]) == 0


def test_schema_offers_exactly_the_profiles_that_exist() -> None:
    assert SCHEMA["properties"]["profile"]["enum"] == available_profiles()
    assert SCHEMA["properties"]["sidecar"]["properties"]["profile"]["enum"] == available_profiles()


def test_every_default_value_is_in_the_schema() -> None:
    """additionalProperties: false catches typos in users' values only if the defaults are all declared."""

    def undeclared(values: dict, schema: dict, prefix: str) -> list[str]:
        missing = []
        for key, value in values.items():
            prop = schema.get("properties", {}).get(key)
            if prop is None:
                missing.append(prefix + key)
            elif isinstance(value, dict) and "properties" in prop and "description" not in prop:
                missing += undeclared(value, prop, f"{prefix}{key}.")
        return missing

    assert undeclared(yaml.safe_load((CHART_DIR / "values.yaml").read_text()), SCHEMA, "") == []


def test_images_are_pinned_to_the_vllm_release_of_the_profiles() -> None:
    tag = f"v{pinned_vllm()}"
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert chart["appVersion"] == pinned_vllm()
    assert yaml.safe_load((CHART_DIR / "values.yaml").read_text())["image"]["tag"] == tag
    assert yaml.safe_load((CHART_DIR / "values-cpu.yaml").read_text())["image"]["tag"] == tag
    sidecar = yaml.safe_load((CHART_DIR / "values-sidecar.yaml").read_text())
    assert sidecar["sidecar"]["mainContainer"]["image"].endswith(f":{tag}")
    assert yaml.safe_load((EXAMPLE_DIR / "values.yaml").read_text())["llm"]["image"].endswith(f":{tag}")


def test_gateway_image_is_the_projects_version() -> None:
    """The gateway image is built from this project (deploy/Dockerfile.gateway), so it carries its version."""
    import tomllib

    version = tomllib.loads((CHART_DIR.parents[1] / "pyproject.toml").read_text())["project"]["version"]
    assert yaml.safe_load((CHART_DIR / "values.yaml").read_text())["gateway"]["image"]["tag"] == version
