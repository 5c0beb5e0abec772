"""Old spellings kept for one release: each use warns and names the new one."""

from __future__ import annotations

import warnings
from typing import Any


def renamed(owner: str, old: str, old_value: Any, new: str, new_value: Any) -> Any:
    """``new_value``, or ``old_value`` (with a DeprecationWarning) when the caller used the old name."""
    if old_value is None:
        return new_value
    warnings.warn(f"{owner}({old}=...) is deprecated; use {new}=... (the old name goes in the next release)",
                  DeprecationWarning, stacklevel=3)
    return old_value


def renamed_keys(mapping: dict[str, Any], renames: dict[str, str], owner: str) -> dict[str, Any]:
    """``mapping`` with its keys under their new names (a DeprecationWarning for each old one used); a mapping
    that uses both names of one setting is a ValueError."""
    if not any(old in mapping for old in renames):
        return mapping
    out = dict(mapping)
    for old, new in renames.items():
        if old not in out:
            continue
        if new in out:
            raise ValueError(f"{owner} sets both {old} and {new}; {old} is the old name of {new}: keep {new}")
        warnings.warn(f"{owner}.{old} is deprecated; use {owner}.{new} (the old name goes in the next release)",
                      DeprecationWarning, stacklevel=4)
        out[new] = out.pop(old)
    return out
