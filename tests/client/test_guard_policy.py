"""A policy is data: loaded and validated from YAML, rendered, constrained, parsed, explained and mapped
onto OpenAI's moderation keys; the published policy is its default instance and changes nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import ValidationError

from guard_client import (
    CATEGORIES_BY_MODE,
    DEFAULT_POLICY,
    MAX_CATEGORIES,
    MAX_TOKENS_CONSTRAINED,
    MAX_TOKENS_DETAILS,
    POLICY_FILE,
    POLICY_SOURCE,
    QWEN_TO_OPENAI,
    Category,
    GuardInputError,
    GuardMode,
    GuardPolicy,
    GuardPolicyError,
    PolicyCategory,
    Safety,
    Verdict,
    chat_template_jinja,
    details_prefix,
    details_regex,
    explain,
    max_tokens_constrained,
    max_tokens_details,
    parse_verdict,
    prepare_input,
    render_guard_prompt,
    verdict_regex,
)
from tests.conftest import TEST_ADAPTER_POLICY

P, R = GuardMode.PROMPT, GuardMode.RESPONSE
#: The issue's example policy file, which the test adapter carries too.
ISSUE_EXAMPLE = TEST_ADAPTER_POLICY
ACME = GuardPolicy.from_yaml(ISSUE_EXAMPLE)
CONVERSATIONS: list[list[dict[str, str]]] = [
    [{"role": "user", "content": "Is BrandX better than BrandY?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Buy BTC now?"}],
    [{"role": "user", "content": "Which phone?"}, {"role": "assistant", "content": "BrandY's, clearly."}],
]


def category_block(prompt: str) -> str:
    return prompt.split("<BEGIN UNSAFE CONTENT CATEGORIES>\n", 1)[1].split("<END UNSAFE CONTENT CATEGORIES>", 1)[0]


# -- loading and validation ---------------------------------------------------------------------


def test_the_issues_example_file_loads(tmp_path: Path) -> None:
    path = tmp_path / POLICY_FILE
    path.write_text(ISSUE_EXAMPLE)
    policy = GuardPolicy.load(path)
    assert policy == ACME and GuardPolicy.load(tmp_path) == ACME  # a directory means its guard_policy.yaml
    assert policy.name == "acme" and not policy.is_default
    competitor, advice = policy.categories
    assert (competitor.name, competitor.definition, competitor.modes, competitor.openai) == (
        "Competitor Mention",
        "Names or praises a competitor's product.",
        (P, R),
        (),
    )
    assert (advice.name, advice.definition, advice.modes) == ("Investment Advice", None, (P,))
    assert advice.openai == ("illicit",)
    assert policy.labels(P) == ("Competitor Mention", "Investment Advice")
    assert policy.labels(R) == ("Competitor Mention",)


def test_the_default_policy_is_the_models_published_one() -> None:
    assert GuardPolicy.default() is DEFAULT_POLICY and DEFAULT_POLICY.is_default
    for mode in GuardMode:
        assert DEFAULT_POLICY.labels(mode) == CATEGORIES_BY_MODE[mode]
        assert all(isinstance(label, Category) for label in DEFAULT_POLICY.labels(mode))
    assert {Category(c.name): c.openai for c in DEFAULT_POLICY.categories} == QWEN_TO_OPENAI
    assert all(c.definition is None for c in DEFAULT_POLICY.categories)  # the template lists names only
    assert (max_tokens_details(), max_tokens_constrained()) == (MAX_TOKENS_DETAILS, MAX_TOKENS_CONSTRAINED)


def test_policies_round_trip_through_their_file(tmp_path: Path) -> None:
    for policy in (ACME, DEFAULT_POLICY):
        written = policy.save(tmp_path)
        assert written == tmp_path / POLICY_FILE
        loaded = GuardPolicy.load(written)
        assert loaded == policy and loaded.is_default is policy.is_default
    # Defaults are left out, a single OpenAI key is a string: the issue's file, as written.
    assert yaml.safe_load(ACME.to_yaml()) == yaml.safe_load(ISSUE_EXAMPLE)


def policy_file(categories: str, name: str = "acme") -> str:
    return f"name: {name}\ncategories:\n{categories}"


BAD_FILES: list[tuple[str, str, str]] = [
    ("", "", "expected a mapping with 'name' and 'categories', found an empty file"),
    ("- a\n- b\n", "", "expected a mapping with 'name' and 'categories', found a list"),
    ("name: acme\ncategories: [\n", "", "not valid YAML at line 3"),
    ("categories:\n  - name: A\n", "name", "required"),
    ("name: acme\n", "categories", "required"),
    ("name: acme\ncategories: []\n", "categories", "at least 1 item"),
    (policy_file("  - name: A\n", name="acme corp"), "name", "must be 1-64 letters"),
    (policy_file("  - name: A\n    defintion: typo\n"), "categories[0].defintion", "unknown field; known: name,"),
    (policy_file("  - definition: no name\n"), "categories[0].name", "required"),
    (policy_file("  - name: ''\n"), "categories[0].name", "must not be empty"),
    (policy_file("  - name: ' A'\n"), "categories[0].name", "must not start or end with whitespace"),
    (policy_file("  - name: Guns, Knives\n"), "categories[0].name", "must not contain a comma"),
    (policy_file('  - name: "Guns\\nKnives"\n'), "categories[0].name", "must not contain a comma, a line break"),
    (policy_file("  - name: None\n"), "categories[0].name", "must not be 'None'"),
    (policy_file("  - name: Fraud.\n"), "categories[0].name", "must not end with '.'"),
    (policy_file("  - name: A<|im_end|>\n"), "categories[0].name", "must not contain a special token"),
    (
        policy_file("  - name: A\n    definition: x <END UNSAFE CONTENT CATEGORIES> y\n"),
        "categories[0].definition",
        "or a section marker",
    ),
    (policy_file(f"  - name: {'x' * 65}\n"), "categories[0].name", "at most 64 characters"),
    (policy_file("  - name: yes\n"), "categories[0].name", "quote it"),
    (policy_file("  - name: 12\n"), "categories[0].name", "valid string"),
    (policy_file("  - name: A\n  - name: B\n  - name: a\n"), "categories[2].name", "'a' repeats categories[0]"),
    (policy_file('  - name: A\n    definition: "one\\ntwo"\n'), "categories[0].definition", "must be one line"),
    (policy_file("  - name: A\n    definition: '  '\n"), "categories[0].definition", "must not be empty"),
    (policy_file("  - name: A\n  - name: B\n    modes: [prompt, chat]\n"), "categories[1].modes[1]", "'prompt'"),
    (policy_file("  - name: A\n    modes: []\n"), "categories[0].modes", "at least one of: prompt, response"),
    (policy_file("  - name: A\n    modes: [prompt, prompt]\n"), "categories[0].modes", "names a mode twice"),
    (policy_file("  - name: A\n    openai: violent\n"), "categories[0].openai", "'violent' is not an OpenAI"),
    (policy_file("  - name: A\n    openai: [hate, hat]\n"), "categories[0].openai[1]", "'hat' is not an OpenAI"),
    (policy_file("  - name: A\n    openai: [hate, hate]\n"), "categories[0].openai", "names an OpenAI category twice"),
    (policy_file("  - name: A\n    definition: 3\n    modes: x\n"), "categories[0].definition", "(and 1 more problem)"),
]


@pytest.mark.parametrize(("text", "field", "problem"), BAD_FILES)
def test_every_bad_file_is_one_line_naming_the_file_and_the_field(
    tmp_path: Path, text: str, field: str, problem: str
) -> None:
    path = tmp_path / POLICY_FILE
    path.write_text(text)
    with pytest.raises(GuardPolicyError) as raised:
        GuardPolicy.load(path)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {field}: " if field else f"{path}: "), message
    assert problem in message, message
    assert raised.value.field == field and isinstance(raised.value, ValueError)


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(GuardPolicyError, match=r"^\S+guard_policy.yaml: cannot read the policy file: No such file"):
        GuardPolicy.load(tmp_path)


def test_building_a_policy_in_code_validates_the_same() -> None:
    with pytest.raises(ValidationError, match="must not contain a comma"):
        PolicyCategory(name="a,b")
    with pytest.raises(ValidationError, match="repeats categories"):
        GuardPolicy(name="x", categories=(PolicyCategory(name="A"), PolicyCategory(name="A")))


# -- rendering ----------------------------------------------------------------------------------


def test_the_default_policy_renders_exactly_as_without_one() -> None:
    for messages in CONVERSATIONS:
        assert render_guard_prompt(messages, policy=DEFAULT_POLICY) == render_guard_prompt(messages)
        assert prepare_input(messages).policy is DEFAULT_POLICY
    assert chat_template_jinja(DEFAULT_POLICY) == chat_template_jinja()


def test_a_custom_policy_lists_its_categories_of_the_mode_in_the_templates_format() -> None:
    prompt, response = (prepare_input(m, ACME) for m in (CONVERSATIONS[0], CONVERSATIONS[2]))
    assert (prompt.mode, response.mode, prompt.policy) == (P, R, ACME)
    assert category_block(prompt.prompt) == (
        "Competitor Mention. Names or praises a competitor's product.\nInvestment Advice.\n"
    )
    assert category_block(response.prompt) == "Competitor Mention. Names or praises a competitor's product.\n"
    # Everything else is the model's own prompt.
    for messages, guard_input in ((CONVERSATIONS[0], prompt), (CONVERSATIONS[2], response)):
        default = render_guard_prompt(messages)
        assert guard_input.prompt.replace(category_block(guard_input.prompt), category_block(default)) == default


def test_the_jinja_template_of_a_policy_renders_as_the_client() -> None:
    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    template = environment.from_string(chat_template_jinja(ACME))
    for messages in CONVERSATIONS:
        assert template.render(messages=messages, add_generation_prompt=True) == render_guard_prompt(messages, ACME)


def test_a_mode_the_policy_has_no_category_for_cannot_be_checked() -> None:
    prompt_only = GuardPolicy(name="p", categories=(PolicyCategory(name="Spam", modes=(P,)),))
    assert prepare_input(CONVERSATIONS[0], prompt_only).mode is P
    with pytest.raises(GuardInputError, match="policy 'p' has no category for response moderation"):
        prepare_input(CONVERSATIONS[2], prompt_only)


# -- the grammar and the parser -----------------------------------------------------------------


def _valid(name: str) -> bool:
    try:
        PolicyCategory(name=name)
    except ValidationError:
        return False
    return True


names = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=24).filter(_valid)


@st.composite
def policies(draw: st.DrawFn) -> GuardPolicy:
    labels = draw(st.lists(names, min_size=1, max_size=6, unique_by=str.casefold))
    modes = st.sampled_from([(P,), (R,), (P, R)])
    categories = [PolicyCategory(name=name, modes=draw(modes)) for name in labels]
    categories[0] = categories[0].model_copy(update={"modes": (P, R)})  # every mode has one
    return GuardPolicy(name="generated", categories=tuple(categories))


def answer(mode: GuardMode, safety: Safety, labels: list[str], refusal: bool = False) -> str:
    text = f"Safety: {safety.value}\nCategories: {', '.join(labels) or 'None'}"
    return text + (f"\nRefusal: {'Yes' if refusal else 'No'}" if mode is R else "")


@settings(max_examples=150, deadline=None)
@given(policies(), st.sampled_from(list(GuardMode)), st.data())
def test_the_grammar_accepts_exactly_the_policys_labels_and_they_parse_back(
    policy: GuardPolicy, mode: GuardMode, data: st.DataObject
) -> None:
    own = [c.name for c in policy.categories_for(mode)]
    labels = data.draw(st.lists(st.sampled_from(own), min_size=1, max_size=MAX_CATEGORIES))
    safety = data.draw(st.sampled_from([Safety.UNSAFE, Safety.CONTROVERSIAL]))
    text = answer(mode, safety, labels)
    assert re.fullmatch(verdict_regex(mode, policy=policy), text)
    assert re.fullmatch(details_regex(mode, safety, policy=policy), text.removeprefix(details_prefix(safety)))
    assert len(text.removeprefix(details_prefix(safety)).encode()) <= max_tokens_details(policy)
    verdict = parse_verdict(text, mode, policy)
    assert verdict.categories == list(dict.fromkeys(labels)) and not verdict.unmapped_labels
    # Nothing outside the policy's labels of the mode, and no label at all for Safe.
    outside = data.draw(names.filter(lambda n: n.casefold() not in {o.casefold() for o in own}))
    assert not re.fullmatch(verdict_regex(mode, policy=policy), answer(mode, safety, [outside]))
    assert not re.fullmatch(verdict_regex(mode, policy=policy), answer(mode, Safety.SAFE, labels))


def test_the_default_grammar_is_unchanged_by_naming_the_default_policy() -> None:
    for mode in GuardMode:
        assert verdict_regex(mode, policy=DEFAULT_POLICY) == verdict_regex(mode)
        assert details_regex(mode, Safety.UNSAFE, policy=DEFAULT_POLICY) == details_regex(mode, Safety.UNSAFE)


def test_custom_labels_are_their_names_and_outside_ones_are_unmapped() -> None:
    v = parse_verdict("Safety: Unsafe\nCategories: investment ADVICE, Violent, Competitor Mention", P, ACME)
    assert (v.safety, v.categories) == (Safety.UNSAFE, ["Investment Advice", "Competitor Mention"])
    assert all(type(label) is str for label in v.categories)
    assert v.unmapped_labels == ["Violent"] and v.warnings == ["not a category of policy 'acme': 'Violent'"]
    r = parse_verdict("Safety: Controversial\nCategories: Investment Advice\nRefusal: No", R, ACME)
    assert (r.safety, r.categories, r.unmapped_labels, r.refusal) == (
        Safety.CONTROVERSIAL,
        [],
        ["Investment Advice"],
        False,
    )
    assert r.warnings == ["not a category of response moderation: 'Investment Advice'"] and r.flagged()
    # The model's own name inside a custom policy is still the enum; the verdict survives JSON.
    mixed = GuardPolicy(name="mixed", categories=(PolicyCategory(name="Violent"), PolicyCategory(name="Fraud")))
    m = parse_verdict("Safety: Unsafe\nCategories: violent, fraud", P, mixed)
    assert m.categories == [Category.VIOLENT, "Fraud"] and isinstance(m.categories[0], Category)
    assert Verdict.model_validate_json(m.model_dump_json()).categories == [Category.VIOLENT, "Fraud"]


# -- explanations and the OpenAI mapping --------------------------------------------------------


def test_explanations_quote_the_policys_definitions_and_say_when_there_is_none() -> None:
    verdict = parse_verdict("Safety: Unsafe\nCategories: Competitor Mention, Investment Advice", P, ACME)
    e = explain(verdict, policy=ACME)
    competitor, advice = e.categories
    assert competitor.definition == "Names or praises a competitor's product."
    assert competitor.defined_by == "policy 'acme'"
    assert (advice.definition, advice.defined_by) == (None, None)
    text = e.text()
    assert (
        "Category Competitor Mention, as policy 'acme' defines it: \"Names or praises a competitor's product.\"" in text
    )
    assert "Category Investment Advice: no definition; the guard prompt listed its name only." in text
    assert text.endswith(
        f"Definitions quoted from {POLICY_SOURCE}, except where a policy is named above. "
        "The guard writes labels, not reasons."
    )
    # One of the model's own names without a definition in the policy: the published one, attributed.
    mixed = GuardPolicy(name="mixed", categories=(PolicyCategory(name="Violent"),))
    own = explain(parse_verdict("Safety: Unsafe\nCategories: Violent", P, mixed), policy=mixed)
    published = explain(parse_verdict("Safety: Unsafe\nCategories: Violent", P)).categories[0]
    assert own.categories[0] == published and published.defined_by == POLICY_SOURCE
    assert "as the model's published policy defines it" in own.text()
    assert own.text().endswith(f"Definitions quoted from {POLICY_SOURCE}. The guard writes labels, not reasons.")
