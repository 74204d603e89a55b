"""Threshold calibration: pick the threshold at which a target share of requests escalates.

As RouteLLM does for strong-model calls: the threshold is the (1 - rate) quantile of the
classifier's scores on a sample of requests, so that ``rate`` of them score at or above it.
Only requests the classifier decides count (a hard rule's decisions are not tunable).
"""

from __future__ import annotations

from collections.abc import Sequence

import yaml


def calibrate_threshold(scores: Sequence[float], escalation_rate: float) -> float:
    """The threshold under which ``escalation_rate`` of ``scores`` are ``>=`` it.

    With ties the achieved share can be higher; rate 0 gives a threshold above every score
    (clamped to 1.0) and rate 1 gives the lowest score.
    """
    if not 0.0 <= escalation_rate <= 1.0:
        raise ValueError(f"escalation rate must be in [0, 1], got {escalation_rate}")
    if not scores:
        raise ValueError("no scores to calibrate on")
    ordered = sorted(scores, reverse=True)
    n_escalate = round(escalation_rate * len(ordered))
    if n_escalate <= 0:
        return min(1.0, ordered[0] + 1e-9)
    # Midway between the last escalated score and the first kept one, so small score noise
    # does not flip the boundary requests.
    last_in = ordered[n_escalate - 1]
    if n_escalate >= len(ordered):
        return last_in
    first_out = ordered[n_escalate]
    return (last_in + first_out) / 2 if first_out < last_in else last_in


def set_classifier_value(text: str, key: str, value: str) -> str:
    """``text`` (policy YAML) with ``classifier.<key>`` set to ``value``, comments kept.

    The value is replaced in place using the YAML node's marks; a missing key or section is
    added.
    """
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    section = _child(root, "classifier")
    if section is None:
        return text.rstrip("\n") + f"\n\nclassifier:\n  {key}: {value}\n"
    node = _child(section, key)
    if node is not None:
        start, end = node.start_mark.index, node.end_mark.index
        return text[:start] + value + text[end:]
    if not isinstance(section, yaml.MappingNode) or not section.value:
        raise ValueError("the policy's 'classifier' section is not a mapping")
    first_key = section.value[0][0]
    indent = " " * first_key.start_mark.column
    line_start = text.rfind("\n", 0, first_key.start_mark.index) + 1
    return text[:line_start] + f"{indent}{key}: {value}\n" + text[line_start:]


def _child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return value_node
    return None
