"""Accuracy in the words the seed users read: "138 (69 successful + 69 unsuccessful) out of
143 tests are correct (accuracy 0.96)"."""

from __future__ import annotations

from collections.abc import Sequence


def seed_line(truth: Sequence[bool], predicted: Sequence[bool | None], noun: str = "tests") -> str:
    """The seed's summary line; a missing verdict (None) counts as wrong."""
    succ = sum(1 for t, p in zip(truth, predicted, strict=True) if t and p is True)
    fail = sum(1 for t, p in zip(truth, predicted, strict=True) if not t and p is False)
    n = len(truth)
    accuracy = (succ + fail) / n if n else 0.0
    return (f"{succ + fail} ({succ} successful + {fail} unsuccessful) out of {n} {noun} are "
            f"correct (accuracy {accuracy:.2f})")


def accuracy(truth: Sequence[bool], predicted: Sequence[bool | None]) -> float:
    n = len(truth)
    return sum(1 for t, p in zip(truth, predicted, strict=True) if p is t) / n if n else 0.0
