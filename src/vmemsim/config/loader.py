"""Load and validate scenario files; every problem becomes one line naming file, key and cause."""

from __future__ import annotations

import difflib
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from vmemsim.config import events
from vmemsim.config.schema import Scenario

BUILTIN_PACKAGE = "vmemsim.config.scenarios"


class ScenarioError(ValueError):
    """A scenario that cannot be run. str() is one line per problem, `source: where: what`,
    unknown keys first; the first line alone is a complete message. `problems` lists them."""

    @property
    def problems(self) -> list[str]:
        return str(self).splitlines()


def builtin_names() -> list[str]:
    files = resources.files(BUILTIN_PACKAGE).iterdir()
    return sorted(f.name[:-5] for f in files if f.name.endswith(".toml"))


def _keys(loc: tuple[Any, ...], data: Any) -> tuple[Any, ...]:
    """The keys and indices the user wrote in a pydantic location, without pydantic's own
    steps: validator wrappers ('function-after[...]') and union members ('int' in
    vm[0].shares.int), recognised as names that follow a value which is not a table."""
    out = []
    node = data
    for part in loc:
        if isinstance(part, str) and (part.startswith("function-") or "[" in part):
            continue
        if isinstance(part, str) and not isinstance(node, dict):
            continue
        out.append(part)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list | tuple) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            node = None
    return tuple(out)


def _loc(keys: tuple[Any, ...]) -> str:
    out = ""
    for part in keys:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds: itself, or inside tuple[X, ...], X | None, Annotated[X, ...]."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        model = _model_in(arg)
        if model is not None:
            return model
    return None


def _known_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys the table at `loc` may have (for spelling suggestions)."""
    model: type[BaseModel] | None = Scenario
    for part in loc:
        if isinstance(part, int):
            continue  # an index into a list of tables: same model
        field = model.model_fields.get(part) if model is not None else None
        model = _model_in(field.annotation) if field is not None else None
        if model is None:
            return []
    return list(model.model_fields) if model is not None else []


def _unknown_key(loc: tuple[Any, ...]) -> str:
    key = str(loc[-1]) if loc else ""
    close = difflib.get_close_matches(key, _known_keys(loc[:-1]), n=1)
    if close:
        return f"unknown key {key!r} (did you mean {close[0]!r}?)"
    return f"unknown key {key!r} (check its spelling against docs/scenarios.md)"


def _message(err: dict[str, Any], keys: tuple[Any, ...]) -> tuple[str, str]:
    """(what is wrong, ' (got ...)' or '') for one pydantic error at `keys`."""
    msg = str(err.get("msg", "invalid value"))
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    if err.get("type") == "extra_forbidden":
        return _unknown_key(keys), ""
    if err.get("type") == "missing":
        return "required key is missing", ""
    if "input" in err and err.get("type") not in ("value_error",) and not isinstance(
            err["input"], dict | list):
        return msg, f" (got {err['input']!r})"
    return msg, ""


def _position(data: Any, keys: tuple[Any, ...]) -> tuple[int, ...]:
    """Where `keys` is in the document (key and item order), so that lines follow the file;
    a key that is missing sorts after its table's keys."""
    pos: list[int] = []
    node = data
    for part in keys:
        if isinstance(node, dict) and part in node:
            pos.append(list(node).index(part))
            node = node[part]
        elif isinstance(node, list | tuple) and isinstance(part, int) and part < len(node):
            pos.append(part)
            node = node[part]
        else:
            pos.append(len(node) if isinstance(node, dict | list | tuple) else 0)
            break
    return tuple(pos)


def _problems(errors: list[dict[str, Any]], data: Any) -> list[str]:
    """One line per problem: unknown keys first, then the rest, each in document order."""
    keyed = [(_keys(tuple(e["loc"]), data), e) for e in errors]
    # A list whose item failed is then also "too short" (pydantic drops the item): noise.
    keyed = [(k, e) for k, e in keyed if not (
        e.get("type") == "too_short"
        and any(len(o) > len(k) and o[:len(k)] == k for o, _ in keyed))]
    # Errors at one key (the members of a union such as shares = "high" | 20) make one line.
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for k, e in keyed:
        groups.setdefault(k, []).append(e)
    lines = []
    for k, errs in groups.items():
        parts = [_message(e, k) for e in errs]
        got = parts[0][1] if all(g == parts[0][1] for _, g in parts) else ""
        msgs = [m + ("" if got else g) for m, g in parts]
        lead = "Input should be "  # said once: "Input should be 'high' ..., or a valid integer"
        if all(m.startswith(lead) for m in msgs):
            msgs = msgs[:1] + [m[len(lead):] for m in msgs[1:]]
        what = ", or ".join(msgs) + got
        unknown = any(e.get("type") == "extra_forbidden" for e in errs)
        lines.append(((not unknown, _position(data, k)), f"{_loc(k)}: {what}"))
    return [text for _, text in sorted(lines, key=lambda x: x[0])]


def scenario_from_dict(data: dict[str, Any], source: str = "scenario") -> Scenario:
    try:
        sc = Scenario.model_validate(data)
    except ValidationError as exc:
        lines = _problems(exc.errors(), data)
        raise ScenarioError("\n".join(f"{source}: {line}" for line in lines)) from None
    check_events(sc, source)
    return sc


def check_events(sc: Scenario, source: str = "scenario") -> None:
    """The events checked against the whole scenario (config.events): one line naming the
    first event that cannot run."""
    try:
        events.check(sc)
    except events.EventError as exc:
        raise ScenarioError(f"{source}: {exc}") from None


def _size_text(nbytes: int) -> str:
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if nbytes >= 1 << shift:
            return f"{nbytes / (1 << shift):.1f}".removesuffix(".0") + f" {unit}"
    return f"{nbytes} B"


def scenario_notes(sc: Scenario) -> list[str]:
    """Things worth knowing that are not errors: a VM configured larger than the whole host
    (allowed: overcommitting memory is what ESX's reclamation is for), with the overcommit
    ratio of the whole scenario. Each note is one line starting 'note: '."""
    host = sc.host.memory
    notes = [f"note: vm {v.name!r} ({_size_text(v.memory)}) is larger than the host's "
             f"{_size_text(host)}" for v in sc.vm if v.memory > host]
    if notes:
        total = sum(v.memory for v in sc.vm)
        notes.append(f"note: {_size_text(total)} configured in all on a host of "
                     f"{_size_text(host)}: overcommit ratio {total / host:.2f}")
    return notes


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
