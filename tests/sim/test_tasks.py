"""Task generators and scorers."""

from __future__ import annotations

import random
import re
import time

import pytest

from rlm_router.rlm_core.tokens import count_tokens
from rlm_router.sim import tasks
from rlm_router.sim.tasks import FAMILIES, LABELS, classify_instance, generate, render_request
from rlm_router.sim.tasks.records import RECORD_RE, instance_pool


def test_exported_names() -> None:
    assert set(tasks.__all__) == {
        "FAMILIES", "Filler", "LABELS", "OOLONG_KINDS", "Task", "classify_instance", "generate",
        "parse_pairs", "render_request",
    }  # fmt: skip
    assert FAMILIES == ("chat", "qa", "niah", "oolong", "oolong_pairs", "multihop")


@pytest.mark.parametrize("family", FAMILIES)
def test_same_arguments_same_task(family: str) -> None:
    a = generate(family, n_tokens=6000, seed=11)
    b = generate(family, n_tokens=6000, seed=11)
    c = generate(family, n_tokens=6000, seed=12)
    assert a == b
    assert (a.context, a.question, a.answer) != (c.context, c.question, c.answer)
    assert a.score(a.answer) == 1.0


@pytest.mark.parametrize("family", ["niah", "oolong", "oolong_pairs", "qa"])
@pytest.mark.parametrize("n_tokens", [1000, 16_000, 100_000])
def test_declared_size_is_the_real_size(family: str, n_tokens: int) -> None:
    task = generate(family, n_tokens=n_tokens, seed=3, kind="reading" if family == "qa" else None)
    exact = count_tokens(task.context)
    assert abs(task.n_tokens - exact) <= max(40, 0.02 * exact)
    assert abs(exact - n_tokens) <= max(300, 0.03 * n_tokens)


def test_every_instance_classifies_to_its_label() -> None:
    pool = instance_pool()
    assert set(pool.labels) == set(LABELS)
    assert all(classify_instance(t) == lab for t, lab in zip(pool.texts, pool.labels, strict=True))


def test_oolong_answers_match_the_records() -> None:
    for kind in ("count", "most_common", "compare"):
        task = generate("oolong", n_tokens=20_000, seed=4, kind=kind)
        records = [
            (m.group(2), classify_instance(m.group(3))) for m in RECORD_RE.finditer(task.context)
        ]
        label = task.metadata["label"]
        if kind == "count":
            user = task.metadata["users"][0]
            assert task.answer == str(sum(1 for u, lab in records if u == user and lab == label))
        elif kind == "compare":
            counts = {
                u: sum(1 for v, lab in records if v == u and lab == label) for u in task.options
            }
            assert task.answer == max(counts, key=lambda u: counts[u])
            assert sorted(counts.values()) == [2, 3, 4, 6]


def test_pairs_answer_is_every_pair_of_qualifying_users() -> None:
    task = generate("oolong_pairs", n_tokens=30_000, seed=8)
    label = task.metadata["label"]
    users = {
        m.group(2)
        for m in RECORD_RE.finditer(task.context)
        if classify_instance(m.group(3)) == label
    }
    assert users == set(task.metadata["users"])
    n = len(users)
    assert len(tasks.parse_pairs(task.answer)) == n * (n - 1) // 2


def test_long_tasks_render_one_user_message_question_last() -> None:
    task = generate("niah", n_tokens=3000, seed=1)
    (message,) = task.messages()
    assert message["role"] == "user"
    assert message["content"].endswith("\n\n" + task.question)
    body = render_request(task, "sim-mini", stream=True, temperature=0)
    assert body == {
        "model": "sim-mini",
        "messages": task.messages(),
        "stream": True,
        "temperature": 0,
    }
    chat = generate("chat", seed=1)
    assert [m["role"] for m in chat.messages()] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]


def test_scorers() -> None:
    count = generate("oolong", n_tokens=2000, seed=1, kind="count")
    want = int(count.answer)
    assert count.score(str(want)) == 1.0
    assert count.score(f"The answer is {want + 2}.") == pytest.approx(0.75**2)
    assert count.score("no idea") == 0.0
    label = generate("oolong", n_tokens=2000, seed=1, kind="most_common")
    assert label.score(f"Answer: {label.answer.upper()}.") == 1.0
    assert label.score(f"The most common label is '{label.answer}'") == 1.0
    wrong = next(lab for lab in LABELS if lab != label.answer)
    assert label.score(wrong) == 0.0
    assert label.score(f"{label.answer} or {wrong}") == 0.0
    pairs = generate("oolong_pairs", n_tokens=2000, seed=1)
    gold = sorted(tasks.parse_pairs(pairs.answer))
    assert pairs.score(pairs.answer) == 1.0
    half = "\n".join(f"({b}, {a})" for a, b in gold[: len(gold) // 2])  # order inside ignored
    recall = (len(gold) // 2) / len(gold)
    assert pairs.score(half) == pytest.approx(2 * recall / (1 + recall))
    assert pairs.score(None) == 0.0
    niah = generate("niah", n_tokens=2000, seed=1)
    assert niah.score(f"It is {niah.answer}.") == 1.0
    assert niah.score("1234567") == 0.0 or niah.answer == "1234567"


def test_unknown_family_and_kind() -> None:
    with pytest.raises(ValueError, match="unknown task family"):
        generate("trivia")
    with pytest.raises(ValueError, match="unknown oolong kind"):
        generate("oolong", kind="median")


@pytest.mark.slow
@pytest.mark.parametrize("family", ["niah", "oolong", "oolong_pairs"])
def test_ten_million_tokens_in_seconds(family: str) -> None:
    started = time.perf_counter()
    task = generate(family, n_tokens=10_000_000, seed=0)
    elapsed = time.perf_counter() - started
    assert elapsed < 10.0
    assert 9_500_000 <= task.n_tokens <= 10_500_000
    assert len(task.context) > 30_000_000


def test_multihop_answer_is_the_city_of_the_named_directors_organisation() -> None:
    for seed in range(5):
        task = generate("multihop", n_tokens=20_000, seed=seed)
        person, org = task.metadata["person"], task.metadata["organisation"]
        assert person in task.question and org not in task.question
        assert f"The director of {org} is {person}." in task.context
        based = re.findall(r"(?:the|The) ([\w ]+?) is based in (\w+)\.", task.context)
        assert len(based) == 5  # the organisation and four distractors
        assert dict(based)[org.removeprefix("the ")] == task.answer
        # Only the right chain gives the answer: no distractor shares the city.
        assert sum(city == task.answer for _, city in based) == 1
        assert task.score(f"It is based in {task.answer}.") == 1.0
        assert task.score(next(c for _, c in based if c != task.answer)) == 0.0


def test_filler_plants_the_facts_in_given_text_and_only_for_lookup_families() -> None:
    lines = [f"Line {i} of a real document.\n\n" for i in range(400)]

    def filler(rng: random.Random, n_tokens: int) -> tuple[list[str], int]:
        return list(lines), 3_000

    for family in ("niah", "multihop"):
        task = generate(family, n_tokens=3_000, seed=2, filler=filler)
        assert "Line 399 of a real document." in task.context
        assert "The committee" not in task.context  # none of the essay filler
        assert task.score(task.answer) == 1.0
    with pytest.raises(ValueError, match="takes no filler"):
        generate("oolong", n_tokens=3_000, seed=2, filler=filler)
