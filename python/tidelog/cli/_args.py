"""Argument types shared by the verbs (argparse ``type=``): each raises
``argparse.ArgumentTypeError``, which the parser prints as one line."""
from __future__ import annotations

import argparse


def whole_number(text: str, low: int = 1) -> int:
    """An int of at least ``low`` (underscores allowed: 10_000_000)."""
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"{text} is below {low}")
    return value


def positive(text: str) -> int:
    return whole_number(text, 1)


def count(text: str) -> int:
    """A whole number, 0 allowed."""
    return whole_number(text, 0)


def seconds(text: str, high: float = 3600.0) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value <= high:
        raise argparse.ArgumentTypeError(f"{text} is not within 0 to {high:g} seconds")
    return value
