"""Fixtures: the chart loaded once, a validating render, and the example parent chart with its dependency built."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Iterator
from typing import Any

import helm_python as helm
import pytest
from chart_support import (
    API_KEY,
    CHART_DIR,
    EXAMPLE_DIR,
    NAMESPACE,
    RELEASE,
    Manifest,
    Render,
    manifests,
    merge,
    validate,
    values_file,
)


@pytest.fixture(scope="session")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART_DIR) as loaded:
        yield loaded


@pytest.fixture(scope="session")
def render(chart: helm.Chart) -> Render:
    """render(*values_files, **values): the chart's objects for those values files and top-level values, validated."""

    def _render(*files: str, **values: Any) -> list[Manifest]:
        merged: dict[str, Any] = copy.deepcopy(API_KEY)
        for name in files:
            merged = merge(merged, values_file(name))
        merged = merge(merged, values)
        objs = manifests(chart.render(merged, name=RELEASE, namespace=NAMESPACE))
        for obj in objs:
            validate(obj)
        return objs

    return _render


@pytest.fixture(scope="session")
def example_chart(tmp_path_factory: pytest.TempPathFactory) -> Iterator[helm.Chart]:
    """The example parent chart with its qwen3guard dependency built, as `helm dependency update` does."""
    helm_copy = tmp_path_factory.mktemp("helm") / "helm"
    shutil.copytree(CHART_DIR.parent, helm_copy, ignore=shutil.ignore_patterns("charts", "Chart.lock"))
    example = helm_copy / EXAMPLE_DIR.relative_to(CHART_DIR.parent)
    helm.dependency_update(example, skip_refresh=True)
    with helm.Chart.load(example) as loaded:
        yield loaded
