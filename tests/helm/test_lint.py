"""`helm lint` (Helm's own linter, strict) on each values set, and yamllint on the chart's files and its output."""

from __future__ import annotations

from pathlib import Path

import helm_python as helm
import pytest
from chart_support import API_KEY, CHART_DIR, EXAMPLE_DIR, KUBE_VERSION, merge, values_file
from yamllint import linter
from yamllint.config import YamlLintConfig

YAMLLINT = YamlLintConfig(file=str(CHART_DIR.parent / ".yamllint"))
# Everything optional switched on, so the lint sees every template render.
EVERYTHING_ON = {
    "autoscaling": {"enabled": True},
    "serviceMonitor": {"enabled": True},
    "networkPolicy": {"enabled": True, "clients": [{"podSelector": {"matchLabels": {"app": "chat"}}}]},
    "modelCache": {"type": "persistentVolumeClaim"},
    "hfToken": {"value": "hf_test"},
    "router": {"enabled": True},
}
VALUE_SETS = {
    "default": API_KEY,
    "cpu": merge(API_KEY, values_file("values-cpu.yaml")),
    "sidecar": merge(API_KEY, values_file("values-sidecar.yaml")),
    "everything-on": merge(API_KEY, EVERYTHING_ON),
    "sidecar-everything-on": merge(merge(API_KEY, values_file("values-sidecar.yaml")), EVERYTHING_ON),
    "hpa": merge(API_KEY, {"autoscaling": {"enabled": True, "engine": "hpa"}}),
    # The gateway beside the guard (standalone), with its keys in a Secret the chart creates.
    "gateway-everything-on": merge(
        merge(API_KEY, EVERYTHING_ON), {"gateway": {"enabled": True, "apiKeys": {"existingSecret": "", "value": "k"}}}
    ),
}
INFO = 1  # helm lint severities: 1 info, 2 warning, 3 error


@pytest.mark.parametrize("name", VALUE_SETS)
def test_helm_lint_strict_finds_nothing(name: str) -> None:
    report = helm.lint(CHART_DIR, VALUE_SETS[name], strict=True, kube_version=f"v{KUBE_VERSION}")
    problems = [m for m in report["messages"] if m["severity"] > INFO]
    assert problems == [] and report["errors"] == []


def test_helm_lint_reports_refused_values() -> None:
    report = helm.lint(CHART_DIR, merge(API_KEY, {"gpu": {"count": -1}}), strict=True)
    assert any("/gpu/count" in error for error in report["errors"])


@pytest.mark.parametrize(
    "path",
    [*sorted(CHART_DIR.glob("*.yaml")), *sorted(EXAMPLE_DIR.glob("*.yaml"))],
    ids=lambda p: str(p.relative_to(CHART_DIR.parent)),
)
def test_yamllint_chart_files(path: Path) -> None:
    assert list(linter.run(path.read_text(), YAMLLINT, str(path))) == []


@pytest.mark.parametrize("name", VALUE_SETS)
def test_yamllint_rendered_manifests(chart: helm.Chart, name: str) -> None:
    for template, text in chart.render(VALUE_SETS[name], name="guard").items():
        if template.endswith("NOTES.txt") or not text.strip():
            continue
        # A leading newline comes from a template's control-flow lines, not from the object.
        problems = list(linter.run(text.lstrip("\n"), YAMLLINT))
        assert problems == [], f"{template}: {problems}"
