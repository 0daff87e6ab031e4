"""Offsets that are gone for good and acknowledged: a ``tidelog verify --repair``
records the gaps it leaves in the partition's ``lost-offsets.json`` (FORMAT.md
§8.2), so that later checks list them instead of reporting them again."""
from __future__ import annotations

import json
import os

ACK_FILE = "lost-offsets.json"


def read_acknowledged(directory: str) -> list[dict]:
    """The gaps a ``verify --repair`` acknowledged in this partition (``lost-offsets.json``)."""
    try:
        with open(os.path.join(directory, ACK_FILE), "rb") as f:
            data = json.loads(f.read())
        ranges = data["ranges"]
        return [r for r in ranges if isinstance(r.get("start_offset"), int) and isinstance(r.get("end_offset"), int)]
    except FileNotFoundError:
        return []
    except (ValueError, KeyError, TypeError, AttributeError):
        return []


def covered(ranges: list[dict], start: int, end: int) -> bool:
    """[start, end) lies within the union of ``ranges``."""
    at = start
    for r in sorted(ranges, key=lambda r: r["start_offset"]):
        if r["start_offset"] <= at < r["end_offset"]:
            at = r["end_offset"]
        if at >= end:
            return True
    return at >= end


