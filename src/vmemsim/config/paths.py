"""Dotted paths into a scenario's dict: `host.memory`, `hypervisor.idle_tax`,
`vm.batch.process.benchmark.rate` (items of the lists vm, process and phases named by their
name, or index). Sweeps (an axis's key) and events (a `set` key) both use it."""

from __future__ import annotations

from typing import Any


class PathError(ValueError):
    """A dotted path that names nothing in the scenario: one line, what is wrong."""


def set_path(data: dict[str, Any], path: str, value: Any) -> None:  # noqa: ANN401
    """Put `value` at the dotted `path` of a scenario's dict; items of the lists vm, process
    and phases are named by their name (or index)."""
    node: Any = data
    parts = path.split(".")
    walked: list[str] = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            names = [str(item.get("name")) for item in node if isinstance(item, dict)]
            if part in names:
                idx = names.index(part)
            elif part.isdigit() and int(part) < len(node):
                idx = int(part)
            else:
                what = ".".join(walked)
                have = ", ".join(names) or "none"
                raise PathError(f"no {what} named {part!r} (the scenario's: {have})")
            if last:
                raise PathError(f"{path} names a whole {walked[-1]}: give one of its keys")
            node = node[idx]
        elif isinstance(node, dict):
            if part not in node:
                raise PathError(f"unknown key {'.'.join([*walked, part])!r}")
            if last:
                node[part] = value
                return
            if node[part] is None:
                node[part] = {}  # an optional table not set in the base: made for the path
            node = node[part]
        else:
            raise PathError(f"{'.'.join(walked)} is a value, not a table")
        walked.append(part)
