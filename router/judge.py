"""The judge: a model that grades a sampled share of answers, as quality labels for training.

Most apps send no feedback, so the learning loop needs a source of quality that does not
depend on them. With the policy's ``judge`` section on (``policies.JudgeSettings``; off by
default), ``Judge.submit`` is called with each served answer: a ``sample_rate`` share of them
is graded in the background by the judge model (through litellm, as every model call), and
the grade is recorded exactly as an app's report would be (``Telemetry.record_feedback``,
source ``judge``), where ``rlm-router train`` joins it by decision id.

The judge never touches the user's request: it runs after the answer was returned, its
errors and timeouts are counted and logged, never raised. Its own cost is capped: before each
call the worst case (the prompt's tokens and ``max_tokens`` at the model's prices) is
reserved against ``max_cost_usd``, and a call that could overrun the cap is not made, so the
spend reported by ``Judge.report()`` (and counted on ``rlm_router.judge.cost`` /
``rlm_router.judge.gradings{outcome}``) never exceeds it.

The prompt (``judge_messages``) shows the conversation and the answer and asks for one number
in [0, 1]; the simulated provider recognises it and answers with the task family's own
scorer, so the whole loop runs offline (``sim.judge``).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import rlm_router.rlm_core.litellm_api as litellm_api
from rlm_router.rlm_core.tokens import estimate_tokens

if TYPE_CHECKING:
    from rlm_router.policies.schema import JudgeSettings
    from rlm_router.rlm_core.litellm_api import Completion
    from rlm_router.telemetry import Telemetry

__all__ = [
    "FEEDBACK_SOURCE",
    "JUDGE_INSTRUCTIONS",
    "Judge",
    "JudgeReport",
    "judge_messages",
    "parse_grade",
]

log = logging.getLogger(__name__)

FEEDBACK_SOURCE = "judge"
JUDGE_INSTRUCTIONS = (
    "You are grading an assistant's answer. Read the conversation and the answer, then reply "
    "with one number between 0 and 1: how correct the answer is (1 = fully correct, 0 = wrong "
    "or missing). Reply with the number only."
)
# Each message of the graded conversation, and the answer, between these markers.
MESSAGE_OPEN = "<<<rlm-router:{role}>>>"
MESSAGE_CLOSE = "<<<rlm-router:end>>>"
ANSWER_ROLE = "answer-to-grade"
_NUMBER = re.compile(r"(?<![\w.])(?:0(?:\.\d+)?|1(?:\.0+)?|\.\d+)(?![\w.])")


def judge_messages(messages: Sequence[Mapping[str, object]], answer: str) -> list[dict[str, str]]:
    """The judge's prompt for ``answer`` to the conversation ``messages``."""
    parts = [JUDGE_INSTRUCTIONS, ""]
    for message in messages:
        role = str(message.get("role", "user"))
        content = message.get("content")
        text = content if isinstance(content, str) else str(content or "")
        parts += [MESSAGE_OPEN.format(role=role), text, MESSAGE_CLOSE]
    parts += [MESSAGE_OPEN.format(role=ANSWER_ROLE), answer, MESSAGE_CLOSE]
    return [{"role": "user", "content": "\n".join(parts)}]


def parse_grade(text: str) -> float | None:
    """The grade in the judge's reply (the first number in [0, 1]), or None."""
    match = _NUMBER.search(text.strip())
    return float(match.group(0)) if match else None


@dataclass
class JudgeReport:
    """What the judge did and spent in this process (for logs, the demo and ``/health``)."""

    sampled: int = 0
    graded: int = 0
    failed: int = 0  # errors, timeouts and replies without a grade
    skipped_over_cap: int = 0
    spent_usd: float = 0.0
    max_cost_usd: float = 0.0
    mean_grade: float | None = None
    _grades: list[float] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sampled": self.sampled,
            "graded": self.graded,
            "failed": self.failed,
            "skipped_over_cap": self.skipped_over_cap,
            "spent_usd": self.spent_usd,
            "max_cost_usd": self.max_cost_usd,
            "mean_grade": self.mean_grade,
        }


class Judge:
    """Grades a sampled share of answers in the background; see the module docstring.

    ``completion`` reaches the judge model (``litellm.acompletion`` by default; the proxy
    passes its router's). Grades go to ``telemetry.record_feedback``.
    """

    def __init__(
        self,
        settings: JudgeSettings,
        telemetry: Telemetry,
        *,
        completion: Completion | None = None,
    ) -> None:
        if settings.model is None:
            raise ValueError("a judge needs a model (policy judge.model)")
        self.settings = settings
        self._model = settings.model
        self._telemetry = telemetry
        self._completion = completion or litellm_api.acompletion
        self._rng = random.Random(settings.seed)
        self._reserved = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._report = JudgeReport(max_cost_usd=settings.max_cost_usd)

    def submit(
        self, decision_id: str, messages: Sequence[Mapping[str, object]], answer: str
    ) -> asyncio.Task[None] | None:
        """Grade this answer in the background if it is sampled (returns the task, or None)."""
        if self._rng.random() >= self.settings.sample_rate:
            return None
        self._report.sampled += 1
        prompt = judge_messages(messages, answer)
        worst = self._worst_case_usd(prompt)
        if self._report.spent_usd + self._reserved + worst > self.settings.max_cost_usd:
            self._report.skipped_over_cap += 1
            self._count("over_cap")
            return None
        self._reserved += worst
        # In a fresh context: the grading is no part of the request's trace, and LiteLLM's
        # own callbacks must not find the request's current span to write its call onto.
        task = asyncio.get_running_loop().create_task(
            self._grade(decision_id, prompt, worst), context=contextvars.Context()
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def drain(self, timeout_s: float | None = None) -> None:
        """Wait for the gradings in flight (bounded by each call's own timeout)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)

    def report(self) -> JudgeReport:
        report = self._report
        grades = report._grades
        report.mean_grade = sum(grades) / len(grades) if grades else None
        return report

    def _endpoint(self) -> dict[str, str]:
        """``api_base`` / ``api_key`` when the policy gives them (else litellm's defaults)."""
        given = {"api_base": self._model.api_base, "api_key": self._model.api_key()}
        return {k: v for k, v in given.items() if v is not None}

    def _worst_case_usd(self, prompt: list[dict[str, str]]) -> float:
        tokens = sum(estimate_tokens(m["content"]) for m in prompt) + 16
        return litellm_api.token_cost(self._model.model, tokens, self.settings.max_tokens)

    async def _grade(self, decision_id: str, prompt: list[dict[str, str]], worst: float) -> None:
        cost = 0.0
        outcome = "failed"
        try:
            response = await asyncio.wait_for(
                self._completion(
                    model=self._model.model,
                    **self._endpoint(),
                    messages=prompt,
                    max_tokens=self.settings.max_tokens,
                    temperature=0,
                    num_retries=0,
                    metadata={"rlm_router_judge": True, "tags": ["rlm-router:judge"]},
                ),
                timeout=self.settings.timeout_s,
            )
            cost = litellm_api.response_cost(response) or worst
            text = response.choices[0].message.content or ""
            grade = parse_grade(text)
            if grade is None:
                raise ValueError(f"the judge's reply has no grade in [0, 1]: {text[:80]!r}")
            self._telemetry.record_feedback(decision_id, grade, source=FEEDBACK_SOURCE)
            self._report.graded += 1
            self._report._grades.append(grade)
            outcome = "graded"
        except Exception as exc:  # the judge never fails anything: count and log it
            if isinstance(exc, TimeoutError):
                cost = worst  # a call given up on may still be billed: count the worst case
            self._report.failed += 1
            log.warning("rlm-router judge: grading %s failed: %s", decision_id, exc)
        except asyncio.CancelledError:
            self._report.failed += 1
            raise
        finally:
            self._reserved -= worst
            self._report.spent_usd += cost
            self._count(outcome, cost)

    def _count(self, outcome: str, cost_usd: float = 0.0) -> None:
        """``rlm_router.judge.gradings{outcome}`` and ``rlm_router.judge.cost``; never raises."""
        try:
            self._telemetry.metrics.judge(outcome=outcome, cost_usd=cost_usd)
        except Exception:
            log.debug("rlm-router judge: metrics failed", exc_info=True)
