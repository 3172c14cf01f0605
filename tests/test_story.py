"""metrics.story: the facts taken from transitions and rows, and the sentences built on them."""

from __future__ import annotations

import pandas as pd

from vmemsim.metrics import story


def _tr(*pairs: tuple[float, str]) -> list[dict]:
    out, state = [], "high"
    for t, to in pairs:
        out.append({"time_s": t, "from": state, "to": to, "free_pct": 0.0})
        state = to
    return out


def test_host_facts_longest_stretch_and_return_to_high() -> None:
    tr = _tr((10, "soft"), (12, "hard"), (13, "soft"), (20, "hard"), (45, "soft"), (50, "high"))
    f = story.host_facts(tr, 100.0)
    assert f["first_entered_s"] == {"soft": 10, "hard": 12, "high": 50}
    assert f["longest_stretch_s"] == {"soft": [13, 20], "hard": [20, 45]}
    assert f["high_again_from_s"] == 50 and f["final_state"] == "high"
    text = story.host_story(f, {"high": 60, "soft": 14, "hard": 26})
    assert text == ("The host went from high into soft (ballooning) at 10 s and into hard "
                    "(compression and swapping) at 12 s; it spent 14 s in soft and 26 s in hard "
                    "(at most 25 s at once in hard, from 20 s to 45 s), and was back in high "
                    "from 50 s.")


def test_host_that_ends_under_pressure_or_never_leaves_high() -> None:
    f = story.host_facts(_tr((10, "soft"), (30, "hard")), 60.0)
    assert f["high_again_from_s"] is None and f["longest_stretch_s"]["hard"] == [30, 60]
    assert story.host_story(f, {"high": 10, "soft": 20, "hard": 30}).endswith("ended in hard.")
    assert story.host_story(story.host_facts([], 60.0), {"high": 60}).startswith(
        "The host stayed in high")


def test_vm_facts_from_rows() -> None:
    rows = pd.DataFrame({"time_s": [1.0, 2, 3, 4, 5, 6],
                         "mctlsz_mb": [0, 0, 5, 9, 9, 0],
                         "swout_pages": [0, 0, 0, 3, 0, 0],
                         "zip_pages": [0, 0, 0, 0, 2, 0]})
    # high until 3.5, hard from 3.5, high again at 5.2: the second (5, 6] is high only.
    f = story.vm_facts(rows, _tr((3.5, "hard"), (5.2, "high")))
    assert f == {"balloon_from_s": 2.0, "host_reclaim_from_s": 3.0, "host_reclaim_to_s": 5.0,
                 "host_reclaim_states": ["hard"]}
    none = story.vm_facts(rows.assign(mctlsz_mb=0, swout_pages=0, zip_pages=0), [])
    assert none == {"balloon_from_s": None, "host_reclaim_from_s": None,
                    "host_reclaim_to_s": None, "host_reclaim_states": []}


def test_vm_sentences() -> None:
    v = {"name": "batch", "slowdown": 3.104, "reservation_mb": 0.0, "balloon_driver": True,
         "max_balloon_mb": 600.2, "balloon_from_s": 70.0, "host_reclaim_from_s": 95.0,
         "host_reclaim_to_s": 140.0, "host_reclaim_states": ["hard"],
         "max_compressed_mb": 150.0, "max_swapped_mb": 0.0}
    assert story.vm_story(v) == ("batch was ballooned up to 600 MB from 70 s, and compressed "
                                 "up to 150 MB from 95 s to 140 s (in hard); it ran 3.10x "
                                 "slower than with ample memory.")
    db = {"name": "db", "slowdown": 1.004, "reservation_mb": 1024.0, "balloon_from_s": None,
          "host_reclaim_from_s": None}
    assert story.vm_story(db) == ("db kept its 1024 MB reservation, was never reclaimed from "
                                  "and ran with no measurable slowdown.")
    legacy = {**v, "name": "legacy", "balloon_driver": False, "balloon_from_s": None,
              "max_swapped_mb": 80.0, "host_reclaim_states": ["soft", "hard"]}
    assert story.vm_story(legacy) == (
        "legacy, which has no balloon driver, was compressed up to 150 MB and swapped up to "
        "80 MB from 95 s to 140 s (in soft and hard); it ran 3.10x slower than with ample "
        "memory.")
    assert "slowdown unknown" in story.vm_story({**db, "slowdown": float("nan")})
