"""The classifier artifact: versioned JSON, validated, scored like scikit-learn."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from rlm_router.policies import ArtifactError, LinearClassifier
from rlm_router.policies.features import FEATURE_NAMES, RequestFeatures
from rlm_router.policies.fit import TermSpec, fit_linear
from rlm_router.router.features import extract_body_features

SHIPPED = Path(__file__).parents[2] / "policies" / "default_classifier.json"
FEATURES = frozenset(FEATURE_NAMES)


def _features(**values: float) -> RequestFeatures:
    base: dict[str, Any] = dict.fromkeys(FEATURE_NAMES, 0)
    base.update(values)
    return RequestFeatures(**base)


def test_the_shipped_prior_is_versioned_json() -> None:
    data = json.loads(SHIPPED.read_text())
    assert data["format"] == "rlm-router/linear-classifier" and data["format_version"] == 1
    classifier = LinearClassifier.load(SHIPPED, feature_names=FEATURES)
    assert classifier.version.startswith("prior-")
    assert classifier.training["kind"] == "prior"
    assert LinearClassifier.from_dict(classifier.to_dict()) == classifier


def test_scores_match_scikit_learn() -> None:
    from sklearn.linear_model import LogisticRegression

    rng = random.Random(0)
    rows = [{"log2_tokens": rng.uniform(5, 20), "agg_cues": rng.randint(0, 3)} for _ in range(300)]
    labels = [
        int(r["log2_tokens"] * (1 + min(r["agg_cues"], 1)) + rng.gauss(0, 3) > 20) for r in rows
    ]
    terms = (
        TermSpec("len", ("log2_tokens",), 0, 24),
        TermSpec("agg_x_len", ("agg_cues", "log2_tokens"), 0, 24, (1.0, None)),
    )
    classifier = fit_linear(rows, labels, terms, version="test")
    x = [[t.value(r) for t in terms] for r in rows]
    mean = [sum(col) / len(col) for col in zip(*x, strict=True)]
    std = [
        (sum((v - m) ** 2 for v in col) / len(col)) ** 0.5
        for col, m in zip(zip(*x, strict=True), mean, strict=True)
    ]
    z = [[(v - m) / s for v, m, s in zip(row, mean, std, strict=True)] for row in x]
    reference = LogisticRegression(C=1.0, max_iter=2000).fit(z, labels)
    expected = reference.predict_proba(z)[:, 1]
    for row, want in zip(rows[:20], expected[:20], strict=True):
        score, contributions = classifier.score(_features(**row))
        assert score == pytest.approx(want, abs=1e-9)
        assert [name for name, _ in contributions] == ["len", "agg_x_len"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(format="pickle"), "'format'"),
        (lambda d: d.update(format_version=9), "format_version"),
        (lambda d: d.pop("version"), "'version'"),
        (lambda d: d.update(terms=[]), "'terms'"),
        (lambda d: d["terms"][0].update(factors=["no_such_feature"]), "unknown features"),
        (lambda d: d["terms"][0].update(scale=0), "scale must be positive"),
        (lambda d: d["terms"][0].update(coef="big"), "coef must be a number"),
        (lambda d: d.update(intercept=None), "intercept"),
    ],
)
def test_malformed_artifacts_are_rejected(tmp_path: Path, mutate: Any, message: str) -> None:
    data = json.loads(SHIPPED.read_text())
    mutate(data)
    path = tmp_path / "clf.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match=message):
        LinearClassifier.load(path, feature_names=FEATURES)


def test_unreadable_artifacts(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="cannot read"):
        LinearClassifier.load(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        LinearClassifier.load(tmp_path / "bad.json")


def test_the_prior_can_be_rebuilt(tmp_path: Path) -> None:
    from rlm_router.policies import prior

    out = tmp_path / "clf.json"
    assert (
        prior.main(["--out", str(out), "--n", "40"], extract=extract_body_features, out=print) == 0
    )
    rebuilt = LinearClassifier.load(out, feature_names=FEATURES)
    assert rebuilt.training["n_rows"] == 40 * len(prior.FAMILIES)
