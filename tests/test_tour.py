"""docs/tour.md quotes what each tour stop's run gives (examples/tour/tour.py writes it): a
change to the model that changes a stop's numbers fails here until the tour is rewritten."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tour() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tour", ROOT / "examples" / "tour" / "tour.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


TOUR = _tour()


@pytest.mark.parametrize("name", list(TOUR.STOPS))
def test_the_tour_quotes_its_runs(name: str) -> None:
    doc = (ROOT / "docs" / "tour.md").read_text()
    assert TOUR.quoted(doc, name) == TOUR.block(name), (
        f"docs/tour.md's {name} block is not what the run gives: python examples/tour/tour.py "
        "--write")


def test_every_stop_scenario_is_in_the_tour() -> None:
    """Each scenario in examples/tour/ is a stop, and each stop has its block."""
    doc = (ROOT / "docs" / "tour.md").read_text()
    files = {p.relative_to(ROOT).as_posix() for p in (ROOT / "examples" / "tour").glob("*.toml")}
    used = {path for path, _ in TOUR.STOPS.values()}
    assert files <= used
    for name in TOUR.STOPS:
        assert TOUR.quoted(doc, name).strip()
