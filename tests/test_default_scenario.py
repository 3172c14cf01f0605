"""The default scenario is the seed's case study: high, soft, tens of seconds of hard, high
again; and the report's sentences say it with the run's own numbers."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import vmemsim
from vmemsim.baseline import baseline_run
from vmemsim.metrics import story
from vmemsim.metrics.slowdown import is_slower


@pytest.fixture(scope="module")
def case() -> tuple[vmemsim.Scenario, vmemsim.Result]:
    sc = vmemsim.load_scenario("default")
    return sc, vmemsim.simulate(sc)


def test_case_study_tells_the_seeds_story(case) -> None:  # noqa: ANN001
    sc, r = case
    s = r.summary
    host = s["host"]
    # high -> soft -> hard, ..., and high again at the end, with hard lasting tens of seconds.
    seq = ["high"] + [t["to"] for t in s["transitions"]]
    assert seq[:3] == ["high", "soft", "hard"]
    assert seq[-1] == "high" and host["high_again_from_s"] < sc.duration - 60
    assert "low" not in seq  # the story is hard, not blocking
    assert host["time_in_state_s"]["hard"] >= 20
    a, b = host["longest_stretch_s"]["hard"]
    assert b - a >= 10  # one stretch, not twenty 1 s visits
    by = {v["name"]: v for v in s["vms"]}
    assert by["batch"]["max_balloon_mb"] > 100  # the balloon acted...
    assert by["batch"]["swout_pages"] > 0 and by["batch"]["zip_pages"] > 0  # ...then the host
    assert "hard" in by["batch"]["host_reclaim_states"]
    assert by["legacy"]["max_balloon_mb"] == 0  # no VMware Tools: never ballooned
    assert by["db"]["max_balloon_mb"] == 0 and by["db"]["swout_pages"] == 0
    hard = [p for p in s["phases"] if p["state"] == "hard"]
    assert hard and all(p["vms"]["batch"]["vs_baseline"] < 1.0 for p in hard)
    assert by["batch"]["slowdown"] > 1.2


def test_web_baseline_is_computed_not_assumed(case) -> None:  # noqa: ANN001
    """web is now ballooned too: its baseline is run on an ample host, and it is slower."""
    sc, r = case
    by = {v["name"]: v for v in r.summary["vms"]}
    assert "web" not in r.summary["baseline_from_run"]
    web = [v.name for v in sc.vm].index("web")
    base = baseline_run(sc, sc.duration, (web,)).vms
    np.testing.assert_allclose(base["refs"].sum() / by["web"]["refs"], by["web"]["slowdown"])
    assert by["web"]["slowdown"] > 1.01


def _numbers(text: str) -> list[float]:
    return [float(x.replace(",", "")) for x in re.findall(r"\d[\d,]*(?:\.\d+)?", text)]


def test_sentences_say_the_summarys_numbers(case) -> None:  # noqa: ANN001
    _, r = case
    s = r.summary
    host = s["host"]
    h = host["story"]
    for state in ("soft", "hard"):
        assert f"{host['time_in_state_s'][state]:.0f} s in {state}" in h
        assert f"at {host['first_entered_s'][state]:.0f} s" in h
    a, b = host["longest_stretch_s"]["hard"]
    assert f"from {a:.0f} s to {b:.0f} s" in h
    assert f"back in high from {host['high_again_from_s']:.0f} s" in h
    for v in s["vms"]:
        text = v["story"]
        assert text.startswith(v["name"]) and text == story.vm_story(v)
        slower = is_slower(v["slowdown"])  # else "no measurable slowdown": no number
        want = [v["slowdown"]] if slower else []
        if v["reservation_mb"]:
            want.append(v["reservation_mb"])
        if v["balloon_from_s"] is not None:
            want += [v["max_balloon_mb"], v["balloon_from_s"]]
        if v["host_reclaim_from_s"] is not None:
            want += [v["host_reclaim_from_s"], v["host_reclaim_to_s"]]
            want += [v[k] for k in ("max_compressed_mb", "max_swapped_mb") if v[k] > 0]
        got = _numbers(text)
        assert len(got) == len(want), text
        # The slowdown as the tables show it (two decimals), MB and seconds as whole numbers.
        for x, tol in zip(want, [0.005] * slower + [0.5] * (len(want) - slower), strict=True):
            assert any(abs(g - x) <= tol + 1e-9 for g in got), (x, text)
    by = {v["name"]: v for v in s["vms"]}
    assert "kept its 1024 MB reservation" in by["db"]["story"]
    assert "no balloon driver" in by["legacy"]["story"]
    assert "(in soft and hard)" in by["batch"]["story"]


def test_readme_quotes_the_runs_story(case) -> None:  # noqa: ANN001
    """The README's case study is the run's own text (python -m vmemsim.metrics.story)."""
    _, r = case
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    quoted = readme.split("<!-- story:begin -->\n", 1)[1].split("\n<!-- story:end -->", 1)[0]
    assert quoted == story.markdown(r.summary)
