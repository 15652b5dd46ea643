"""The arms of the side-by-side benchmark (`python -m bench side-by-side`, `make bench`): the one table of what
each arm serves on, how it sends its checks and how the report labels it. The benchmark and its report both
read it; a new arm is a new entry here (and its driver in `bench.side_by_side`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from guard_client import DEFAULT_MODEL


class Arm(StrEnum):
    """One way of serving the guard, measured side by side. The values are the names in the JSON."""

    TRANSFORMERS = "transformers"
    VLLM_RECIPE = "vllm-recipe"
    TUNED = "tuned"
    TUNED_CLIENT = "tuned-client"
    VERDICT_FIRST = "verdict-first"
    DECODE_SHARE = "decode-share"
    LORA_BASE = "lora-base"
    LORA_ADAPTER = "lora-adapter"
    LORA_MIXED = "lora-mixed"
    MERGED = "merged"


class Server(StrEnum):
    """What an arm runs on."""

    NONE = "none"  # transformers in a process of its own
    RECIPE = "recipe"  # vLLM with the public recipe's flags
    TUNED = "tuned"  # vLLM with this project's serving profile
    LORA = "lora"  # the profile with two random adapters served beside the model (vLLM multi-LoRA)
    MERGED = "merged"  # the profile serving one of those adapters merged into the weights


class Driver(StrEnum):
    """How an arm's checks are sent."""

    GENERATE = "generate"  # transformers generate(), one check at a time
    FORCED_CHAT = "forced-chat"  # chat requests, output forced to the real length, over the whole sweep
    CLIENT = "client"  # the project's client
    COMPLETIONS = "completions"  # raw completions of rendered prompts, at the headline concurrency only


@dataclass(frozen=True)
class ArmSpec:
    label: str  # in the report
    server: Server
    driver: Driver
    description: str
    baseline: bool = False  # the others' checks/s are given as multiples of this one's
    whole_sweep: bool = True  # every in-flight level of the sweep, or only the headline concurrency
    models: tuple[str, ...] = ()  # the served names its checks ask for, in turn; empty: the base guard


#: The custom-policy arms' adapters: random, rank 16 on all seven projections of every layer (what a
#: `guard tune` adapter adapts), each with a two-category policy: `guard tune`'s worked example's
#: (`guard_tune.examples.ACME_POLICY`; its checks are forced-length chats, so the text only has to be a policy).
POLICY_ADAPTERS = ("policy-a", "policy-b")
POLICY_ADAPTER_RANK = 16
#: What a merged adapter must serve against the base model on a plain server (issue 20).
MERGED_TARGET = 0.95


ARM_SPECS: dict[Arm, ArmSpec] = {
    Arm.TRANSFORMERS: ArmSpec(
        "transformers `generate`, one at a time (baseline)",
        Server.NONE,
        Driver.GENERATE,
        "`generate`, one check at a time, as in the model card",
        baseline=True,
    ),
    Arm.VLLM_RECIPE: ArmSpec(
        "vLLM as the public recipe runs it",
        Server.RECIPE,
        Driver.FORCED_CHAT,
        "vLLM as the public recipe runs it: chat endpoint, plain flags, prefix caching off",
    ),
    Arm.TUNED: ArmSpec(
        "this project's serving profile",
        Server.TUNED,
        Driver.FORCED_CHAT,
        "this project's serving profile, same forced-length chat requests",
    ),
    Arm.TUNED_CLIENT: ArmSpec(
        "profile + client, constrained decoding",
        Server.TUNED,
        Driver.CLIENT,
        "the project's client as shipped for a stand-in (`constrain=True`; length not forced)",
        whole_sweep=False,
    ),
    Arm.VERDICT_FIRST: ArmSpec(
        "profile + client, verdict-first",
        Server.TUNED,
        Driver.CLIENT,
        "the client's verdict-first path (`verdict_only=True`): one decode step per check, plus its follow-up "
        "category request, charged to the items the dataset labels harmful",
    ),
    Arm.DECODE_SHARE: ArmSpec(
        "raw completions: whole answer against the verdict token",
        Server.TUNED,
        Driver.COMPLETIONS,
        "raw completions on the tuned server: the whole answer against the verdict token alone, on fresh "
        "prompts and on prompts already cached; the most any verdict-first client can gain on this machine, "
        "and what repeat traffic gains",
        whole_sweep=False,
    ),
    Arm.LORA_BASE: ArmSpec(
        "LoRA server: the base model",
        Server.LORA,
        Driver.FORCED_CHAT,
        "the base model on a server started with two adapters (`--enable-lora`): what enabling LoRA costs "
        "every request (on the CPU backend it turns graph compilation off)",
        whole_sweep=False,
    ),
    Arm.LORA_ADAPTER: ArmSpec(
        "LoRA server: one adapter",
        Server.LORA,
        Driver.FORCED_CHAT,
        f"every check through one rank-{POLICY_ADAPTER_RANK} adapter on all projections",
        whole_sweep=False,
        models=POLICY_ADAPTERS[:1],
    ),
    Arm.LORA_MIXED: ArmSpec(
        "LoRA server: base + two adapters mixed",
        Server.LORA,
        Driver.FORCED_CHAT,
        "the base model and both adapters in turn, in one stream (three models in every batch)",
        whole_sweep=False,
        models=(DEFAULT_MODEL, *POLICY_ADAPTERS),
    ),
    Arm.MERGED: ArmSpec(
        "merged adapter on a plain server",
        Server.MERGED,
        Driver.FORCED_CHAT,
        "one of those adapters merged into the weights (PEFT's merge_and_unload), served as an ordinary model",
        whole_sweep=False,
    ),
}
#: The custom-policy arms, compared with the tuned arm (the base model on a plain server).
POLICY_ARMS = (Arm.LORA_BASE, Arm.LORA_ADAPTER, Arm.LORA_MIXED, Arm.MERGED)
ARMS: tuple[Arm, ...] = tuple(Arm)
BASELINE = next(arm for arm, spec in ARM_SPECS.items() if spec.baseline)


def arm_label(name: str) -> str:
    """The report's label for an arm name from a result (an unknown name from an old report stays as is)."""
    return ARM_SPECS[Arm(name)].label if name in ARMS else name
