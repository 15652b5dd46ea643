"""Outcome classes, per-interface tallies and the JSON + markdown report.

Every input tried ends in exactly one outcome. `lost` (an input without any answer) and `silent_safe`
(an input read as Safe, or let through, that the guard did not decide Safe) are counted besides it.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any


class Outcome(StrEnum):
    CLEAR_ERROR = "clear_error"  # a 4xx in OpenAI's envelope, GuardInputError, exit status 2 with a message
    VERDICT = "verdict"  # a decided verdict (or a 2xx carrying one)
    POLICY = "policy_verdict"  # the documented failure outcome: 503 guard_unavailable, fail_open/closed, GuardError
    UPSTREAM_ERROR = "upstream_error"  # the chat proxy's documented 502 / error event when the main LLM fails
    UNEXPECTED_5XX = "unexpected_5xx"  # any other 5xx
    CRASH = "crash"  # an uncaught exception, a traceback, a dropped connection from the gateway
    HANG = "hang"  # no answer within the deadline


#: Outcomes that break the suite's invariants.
BAD = (Outcome.UNEXPECTED_5XX, Outcome.CRASH, Outcome.HANG)


@dataclass
class Tally:
    """What one interface was given and what came back."""

    inputs: int = 0
    faults: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    lost: int = 0
    silent_safe: int = 0
    schema_violations: int = 0
    examples: list[str] = field(default_factory=list)  # the first few bad outcomes, for the report

    def add(self, outcome: Outcome, detail: str = "") -> None:
        self.inputs += 1
        self.outcomes[outcome.value] = self.outcomes.get(outcome.value, 0) + 1
        if outcome in BAD and len(self.examples) < 5:
            self.examples.append(f"{outcome.value}: {detail[:300]}")

    def note(self, problem: str) -> None:
        if len(self.examples) < 5:
            self.examples.append(problem[:300])

    def merge(self, other: Tally) -> None:
        self.inputs += other.inputs
        self.faults += other.faults
        for name, count in other.outcomes.items():
            self.outcomes[name] = self.outcomes.get(name, 0) + count
        self.lost += other.lost
        self.silent_safe += other.silent_safe
        self.schema_violations += other.schema_violations
        self.examples += other.examples[: max(0, 5 - len(self.examples))]


@dataclass
class Scenario:
    """One injected fault and what it ended in."""

    name: str
    interface: str
    fault: str
    expected: str
    observed: str = ""
    items: int = 0
    lost: int = 0
    silent_safe: int = 0
    orphans: int = 0
    recovered: bool = False
    ok: bool = False
    seconds: float = 0.0


@dataclass
class Check:
    """A security or overload property and whether it held."""

    name: str
    ok: bool
    detail: str


@dataclass
class Report:
    mode: str
    interfaces: dict[str, Tally] = field(default_factory=dict)
    scenarios: list[Scenario] = field(default_factory=list)
    overload: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    #: Indirect injection (reliability/injection.py): one row per surface and position.
    injection: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def tally(self, interface: str) -> Tally:
        return self.interfaces.setdefault(interface, Tally())

    def totals(self) -> dict[str, int]:
        outcomes: Counter[str] = Counter()
        for tally in self.interfaces.values():
            outcomes.update(tally.outcomes)
        return {
            "inputs": sum(t.inputs for t in self.interfaces.values()),
            "faults": sum(t.faults for t in self.interfaces.values()),
            "lost": sum(t.lost for t in self.interfaces.values()) + sum(s.lost for s in self.scenarios),
            "silent_safe": sum(t.silent_safe for t in self.interfaces.values())
            + sum(s.silent_safe for s in self.scenarios),
            "unexpected_5xx": outcomes[Outcome.UNEXPECTED_5XX],
            "crashes": outcomes[Outcome.CRASH],
            "hangs": outcomes[Outcome.HANG],
            "schema_violations": sum(t.schema_violations for t in self.interfaces.values()),
            "orphans": sum(s.orphans for s in self.scenarios),
            "scenarios": len(self.scenarios),
            "scenarios_failed": sum(not s.ok for s in self.scenarios),
            "checks_failed": sum(not c.ok for c in self.checks),
            "injection_failed": sum(not row["ok"] for row in self.injection),
        }

    def passed(self) -> bool:
        totals = self.totals()
        zero = ("lost", "silent_safe", "unexpected_5xx", "crashes", "hangs", "schema_violations", "orphans")
        return (
            all(totals[name] == 0 for name in zero)
            and totals["scenarios_failed"] == 0
            and totals["checks_failed"] == 0
            and totals["injection_failed"] == 0
            and bool(self.overload.get("ok", False))
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "passed": self.passed(),
            "seconds": round(self.seconds, 1),
            "totals": self.totals(),
            "interfaces": {name: asdict(tally) for name, tally in self.interfaces.items()},
            "scenarios": [asdict(s) for s in self.scenarios],
            "overload": self.overload,
            "checks": [asdict(c) for c in self.checks],
            "injection": self.injection,
        }

    def write(self, out: Path) -> tuple[Path, Path]:
        out.mkdir(parents=True, exist_ok=True)
        data = self.to_json()
        json_path, md_path = out / "reliability.json", out / "reliability.md"
        json_path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        md_path.write_text(markdown(data))
        return json_path, md_path


def markdown(data: dict[str, Any]) -> str:
    t = data["totals"]
    lines = [
        f"# Reliability report ({data['mode']} run, {data['seconds']} s): {'PASSED' if data['passed'] else 'FAILED'}",
        "",
        f"{t['inputs']} inputs tried, {t['faults']} faults injected in {t['scenarios']} scenarios. "
        f"Lost: {t['lost']}. Silent Safe: {t['silent_safe']}. Unexpected 5xx: {t['unexpected_5xx']}. "
        f"Crashes: {t['crashes']}. Hangs: {t['hangs']}. Schema violations: {t['schema_violations']}. "
        f"Orphan processes: {t['orphans']}.",
        "",
        "## Per interface",
        "",
        "| interface | inputs | faults | clear error | verdict | failure-policy verdict | upstream error "
        "| unexpected 5xx | crash | hang | lost | silent Safe | schema violations |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, tally in data["interfaces"].items():
        o = tally["outcomes"]
        cells = [o.get(outcome.value, 0) for outcome in Outcome]
        lines.append(
            f"| {name} | {tally['inputs']} | {tally['faults']} | "
            + " | ".join(str(c) for c in cells)
            + f" | {tally['lost']} | {tally['silent_safe']} | {tally['schema_violations']} |"
        )
    lines += [
        "",
        "## Fault scenarios",
        "",
        "| scenario | interface | fault | expected | observed | items | lost | silent Safe | orphans "
        "| recovered | ok |",
        "|---|---|---|---|---|--:|--:|--:|--:|---|---|",
    ]
    for s in data["scenarios"]:
        lines.append(
            f"| {s['name']} | {s['interface']} | {s['fault']} | {s['expected']} | {s['observed']} | {s['items']} "
            f"| {s['lost']} | {s['silent_safe']} | {s['orphans']} | {'yes' if s['recovered'] else 'no'} "
            f"| {'yes' if s['ok'] else '**NO**'} |"
        )
    if data["overload"]:
        lines += ["", "## Overload", ""]
        lines += [f"- {key}: {value}" for key, value in data["overload"].items() if key != "phases"]
        phases = data["overload"].get("phases", [])
        if phases:
            lines += [
                "",
                "| phase | offered/s | seconds | sent | 200 | 429 | 503 | other | late | answered/s | p95 ms |",
                "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
            ]
            for p in phases:
                lines.append(
                    f"| {p['name']} | {p['rate']} | {p['seconds']} | {p['sent']} | {p['ok']} | {p['overloaded']} "
                    f"| {p['unavailable']} | {p['other']} | {p['late']} | {p['answered_per_s']} | {p['p95_ms']} |"
                )
    if data.get("injection"):
        lines += _injection_table(data["injection"])
    lines += ["", "## Security and overload checks", "", "| check | ok | detail |", "|---|---|---|"]
    for c in data["checks"]:
        lines.append(f"| {c['name']} | {'yes' if c['ok'] else '**NO**'} | {c['detail']} |")
    examples = [(name, e) for name, tally in data["interfaces"].items() for e in tally["examples"]]
    if examples:
        lines += ["", "## First bad outcomes", ""]
        lines += [f"- {name}: `{e}`" for name, e in examples]
    return "\n".join(lines) + "\n"


def _injection_table(rows: list[dict[str, Any]]) -> list[str]:
    """Positions down, surfaces across; each cell: the marked conversation's outcome / its clean twin's."""
    surfaces = list(dict.fromkeys(row["surface"] for row in rows))
    cells = {(row["position"], row["surface"]): row for row in rows}
    lines = [
        "",
        "## Indirect injection",
        "",
        "A scripted guard flags one marker wherever the guard's template shows it. Each cell: the conversation with "
        "the marker / the same conversation without it (must read blocked / passed).",
        "",
        "| marker in | " + " | ".join(surfaces) + " |",
        "|---|" + "---|" * len(surfaces),
    ]
    for position in dict.fromkeys(row["position"] for row in rows):
        row_cells = []
        for surface in surfaces:
            row = cells[(position, surface)]
            text = f"{row['marked']} / {row['clean']}"
            row_cells.append(text if row["ok"] else f"**{text}**")
        lines.append(f"| {position} | " + " | ".join(row_cells) + " |")
    return lines
