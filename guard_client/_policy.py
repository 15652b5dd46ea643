"""The safety policy behind Qwen3Guard-Gen's labels, as data.

The guard writes labels only (severity, categories, refusal), never reasons. What a person reading
a verdict needs is what those labels mean, and the only true source for that is the policy the
model was trained on: the definitions published in the model card and the technical report. They
are quoted here word for word, keyed by the label enums of `_labels` (which keep the spelling).

What each severity and the refusal line mean *for the mode checked* is what the guard prompt itself
tells the model; that text has its one source in `_template` and is read out of it here.
"""

from __future__ import annotations

import re
from types import MappingProxyType

from guard_client._labels import Category, GuardMode, Safety, Strictness
from guard_client._template import HEADS

#: Where the quoted definitions come from.
POLICY_SOURCE = "the Qwen3Guard model card and technical report (arXiv 2510.14276)"

#: Severity levels, as the published policy defines them.
SEVERITY_DEFINITIONS: MappingProxyType[Safety, str] = MappingProxyType(
    {
        Safety.UNSAFE: "Content generally considered harmful across most scenarios.",
        Safety.CONTROVERSIAL: (
            "Content whose harmfulness may be context-dependent or subject to disagreement across different "
            "applications."
        ),
        Safety.SAFE: "Content generally considered safe across most scenarios.",
    }
)

#: The policy's name of a category, where it differs from the label the model writes.
CATEGORY_POLICY_NAMES: MappingProxyType[Category, str] = MappingProxyType(
    {Category.PII: "Personally Identifiable Information"}
)

#: Categories, as the published policy defines them.
CATEGORY_DEFINITIONS: MappingProxyType[Category, str] = MappingProxyType(
    {
        Category.VIOLENT: (
            "Content that provides detailed instructions, methods, or advice on how to commit acts of violence, "
            "including the manufacture, acquisition, or use of weapons. Also includes depictions of violence."
        ),
        Category.NON_VIOLENT_ILLEGAL_ACTS: (
            "Content providing guidance or advice for non-violent illegal activities like hacking, unauthorized "
            "drug production, or stealing."
        ),
        Category.SEXUAL_CONTENT: (
            "Content offering any sexual imagery, references, or descriptions featuring individuals. Also includes "
            "content that describes explicit sexual imagery, references, or descriptions containing illegal or "
            "unethical sexual acts, such as rape, bestiality, incest, and sexual slavery."
        ),
        Category.PII: (
            "Content offering unauthorized sharing or disclosure of sensitive personal identifying information, "
            "such as name, ID number, address, phone number, medical records, financial details, and account "
            "passwords, etc."
        ),
        Category.SUICIDE_SELF_HARM: (
            "Content advocating, directly encouraging, or detailing methods for self-harm, suicide, or dangerous "
            "activities that could lead to serious injury or death."
        ),
        Category.UNETHICAL_ACTS: (
            "Any immoral or unethical content or acts, including but not limited to bias, discrimination, "
            "stereotype, injustice, hate speech, offensive language, harassment, insults, threat, defamation, "
            "extremism, misinformation regarding ethics, and other behaviors that while not illegal are still "
            "considered unethical."
        ),
        Category.POLITICALLY_SENSITIVE: (
            "The deliberate creation or spread of false information about government actions, historical events, "
            "or public figures that is demonstrably untrue and poses risk of public deception or social harm."
        ),
        Category.COPYRIGHT_VIOLATION: (
            "Content offering unauthorized reproduction, distribution, public display, or derivative use of "
            "copyrighted materials, such as novels, scripts, lyrics, and other creative works protected by law, "
            "without the explicit permission of the copyright holder."
        ),
        Category.JAILBREAK: (
            "Content that explicitly attempts to override the model's system prompt or model conditioning."
        ),
    }
)

#: How Controversial is read: post-processing of the three-way label, not a different prompt.
STRICTNESS_MEANING: MappingProxyType[Strictness, str] = MappingProxyType(
    {
        Strictness.STRICT: "strict reading: Controversial counts as unsafe (the default)",
        Strictness.LOOSE: "loose reading: Controversial counts as safe",
    }
)


def policy_name(category: Category) -> str:
    """The category's name in the published policy (`PII` is "Personally Identifiable Information")."""
    return CATEGORY_POLICY_NAMES.get(category, category.value)


def _template_lines(head: str, key: str) -> dict[str, str]:
    """The `**Key: Value**: meaning` lines of a guard prompt head, by value."""
    pattern = re.compile(rf"^\*\*{key}: (\w+)\*\*: (.+)$", re.MULTILINE)
    return {match.group(1): match.group(2) for match in pattern.finditer(head)}


#: What each severity means for the mode checked, as the guard prompt states it to the model.
SEVERITY_IN_MODE: MappingProxyType[GuardMode, MappingProxyType[Safety, str]] = MappingProxyType(
    {
        mode: MappingProxyType({Safety(word): text for word, text in _template_lines(HEADS[mode], "Safety").items()})
        for mode in GuardMode
    }
)

#: What the refusal line means (response moderation only), from the guard prompt's refusal policy.
REFUSAL_MEANING: MappingProxyType[bool, str] = MappingProxyType(
    {word == "Yes": text for word, text in _template_lines(HEADS[GuardMode.RESPONSE], "Refusal").items()}
)
