"""Load and validate scenario files; every problem becomes one line naming file, key and cause."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from vmemsim.config.schema import Scenario

BUILTIN_PACKAGE = "vmemsim.config.scenarios"


class ScenarioError(ValueError):
    """A scenario that cannot be run. str() is one line: where, what, and what to do."""


def builtin_names() -> list[str]:
    files = resources.files(BUILTIN_PACKAGE).iterdir()
    return sorted(f.name[:-5] for f in files if f.name.endswith(".toml"))


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before") or "[" in str(part):
            continue  # pydantic's validator wrappers, not keys the user wrote
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _message(err: dict[str, Any]) -> str:
    msg = str(err.get("msg", "invalid value"))
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    if err.get("type") == "extra_forbidden":
        return "unknown key (check its spelling against docs/scenarios.md)"
    if err.get("type") == "missing":
        return "required key is missing"
    if "input" in err and err.get("type") not in ("value_error",) and not isinstance(
            err["input"], dict | list):
        msg += f" (got {err['input']!r})"
    return msg


def scenario_from_dict(data: dict[str, Any], source: str = "scenario") -> Scenario:
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        more = len(exc.errors()) - 1
        extra = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        where = _loc(tuple(err["loc"]))
        raise ScenarioError(f"{source}: {where}: {_message(err)}{extra}") from None


def load_scenario(spec: str | Path | None = None) -> Scenario:
    """A scenario from a TOML file path, or a built-in by name; None gives the default."""
    if spec is None:
        spec = "default"
    path = Path(spec)
    if not path.exists() and str(spec) in builtin_names():
        text = resources.files(BUILTIN_PACKAGE).joinpath(f"{spec}.toml").read_text("utf-8")
        source = f"{spec} (built-in)"
    else:
        if not path.exists():
            names = ", ".join(builtin_names())
            raise ScenarioError(f"{spec}: no such file, and not a built-in scenario ({names})")
        if path.is_dir():
            raise ScenarioError(f"{spec}: is a folder, expected a .toml scenario file")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ScenarioError(f"{spec}: cannot read: {exc}") from None
        source = str(spec)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{source}: invalid TOML: {exc}") from None
    return scenario_from_dict(data, source)
