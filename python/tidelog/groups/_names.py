"""Where groups live in a log folder, and what a group may be called."""
from __future__ import annotations

import os
import re
from typing import Any

from ..errors import InvalidGroupIdError

_GROUP_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")


def validate_group_name(name: Any) -> str:
    """The topic-name rule (1-249 of [A-Za-z0-9._-], not '.' or '..'): a
    group is a folder. Kafka allows any string; these names cover its usual ones."""
    if not isinstance(name, str) or not _GROUP_NAME.fullmatch(name) or name in (".", ".."):
        raise InvalidGroupIdError(
            f"invalid consumer group name {name!r}: use 1-249 characters of [A-Za-z0-9._-], not '.' or '..'")
    return name


def groups_root(log) -> str:
    return os.path.join(log.path, "groups")


def group_folder(log, name: str) -> str:
    return os.path.join(groups_root(log), name)
