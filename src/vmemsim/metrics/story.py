"""The run told in sentences: what the host went through, and each VM.

Facts first (numbers that go into summary.json beside the sentences: the tests read a sentence
back against them), then the sentences, built only from those facts, so that the README's
and report.html's story is the run's and not a text written once by hand.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from vmemsim.hypervisor.states import STATES
from vmemsim.metrics.slowdown import is_slower, phrase

# Words for the host's states in a sentence: what the reader should picture.
STATE_WORDS = {"soft": "soft (ballooning)", "hard": "hard (compression and swapping)",
               "low": "low (blocking too)", "clear": "clear"}


def host_facts(transitions: list[dict[str, Any]], end: float) -> dict[str, Any]:
    """When each state was first entered, its longest stretch [from, to], and since when the
    host has been in high at the end (None if it ended elsewhere)."""
    first: dict[str, float] = {}
    longest: dict[str, list[float]] = {}
    state, since = "high", 0.0
    for t in [*transitions, {"time_s": end, "to": None}]:
        now = float(t["time_s"])
        if state != "high" and (state not in longest
                                or now - since > longest[state][1] - longest[state][0]):
            longest[state] = [round(since, 6), round(now, 6)]
        if t["to"] is None:
            break
        state, since = str(t["to"]), now
        first.setdefault(state, round(now, 6))
    return {"first_entered_s": first, "longest_stretch_s": longest, "final_state": state,
            "high_again_from_s": (round(since, 6) if state == "high" and transitions
                                  else None)}


def host_story(facts: dict[str, Any], time_in_state: dict[str, float]) -> str:
    """`The host went from high into soft (ballooning) at 92 s and into hard (...) at 96 s; it
    spent 64 s in soft and 26 s in hard (at most 20 s at once, from 113 s to 133 s), and was
    back in high from 403 s.`"""
    first = facts["first_entered_s"]
    worse = [s for s in STATES[1:] if s in first]
    if not worse:
        return "The host stayed in high: no memory was reclaimed."
    went = " and ".join(f"into {STATE_WORDS[s]} at {first[s]:.0f} s" for s in worse)
    spent = " and ".join(f"{time_in_state.get(s, 0.0):.0f} s in {s}" for s in worse)
    deep = worse[-1]
    a, b = facts["longest_stretch_s"][deep]
    text = (f"The host went from high {went}; it spent {spent} (at most {b - a:.0f} s at once "
            f"in {deep}, from {a:.0f} s to {b:.0f} s)")
    again = facts["high_again_from_s"]
    tail = (f", and was back in high from {again:.0f} s." if again is not None
            else f", and ended in {facts['final_state']}.")
    return text + tail


def states_between(transitions: list[dict[str, Any]], t0: float, t1: float) -> set[str]:
    """The states the host was in at some moment of (t0, t1]."""
    state = "high"
    for t in transitions:
        if t["time_s"] > t0:
            break
        state = str(t["to"])
    out = {state}
    out.update(str(t["to"]) for t in transitions if t0 < t["time_s"] <= t1)
    return out


def vm_facts(rows: pd.DataFrame, transitions: list[dict[str, Any]]) -> dict[str, Any]:
    """From a VM's per-second rows: when its balloon first held memory, and the first and last
    second in which the host compressed or swapped its pages, and the states the host was in
    during those seconds. Times are the seconds' starts (`from`) and ends (`to`); None when it
    never happened."""
    ballooned = rows["time_s"][rows["mctlsz_mb"] > 0]
    took = rows["time_s"][(rows["swout_pages"] + rows["zip_pages"]) > 0].to_numpy(float)
    states: set[str] = set()
    for t in took:
        states |= states_between(transitions, t - 1, t)
    # A second that ends in high after a reclaiming state: the pages went before it ended.
    # (In high the host takes memory only from a VM above its limit: then high stays.)
    if len(states) > 1:
        states.discard("high")
    return {
        "balloon_from_s": float(ballooned.iloc[0]) - 1 if len(ballooned) else None,
        "host_reclaim_from_s": float(took[0]) - 1 if len(took) else None,
        "host_reclaim_to_s": float(took[-1]) if len(took) else None,
        "host_reclaim_states": [s for s in STATES if s in states],
    }


def vm_story(v: dict[str, Any]) -> str:
    """One sentence from a VM's summary entry (its facts, maxima and slowdown), e.g. `batch was
    ballooned up to 1032 MB from 93 s, and compressed up to 196 MB and swapped up to 197 MB
    from 95 s to 129 s (in soft and hard); it ran 6.18x slower than with ample memory.`"""
    name = v["name"]
    speed = (f"ran {phrase(v['slowdown'])} than with ample memory" if is_slower(v["slowdown"])
             else f"ran with {phrase(v['slowdown'])}")
    res = v.get("reservation_mb", 0.0)
    kept = f" kept its {res:.0f} MB reservation," if res > 0 else ""
    driver = "" if v.get("balloon_driver", True) else ", which has no balloon driver,"
    parts = []
    if v.get("balloon_from_s") is not None:
        parts.append(f"ballooned up to {v['max_balloon_mb']:.0f} MB from "
                     f"{v['balloon_from_s']:.0f} s")
    if v.get("host_reclaim_from_s") is not None:
        took = " and ".join(
            f"{verb} up to {v[key]:.0f} MB" for verb, key in
            (("compressed", "max_compressed_mb"), ("swapped", "max_swapped_mb")) if v[key] > 0)
        where = " and ".join(v["host_reclaim_states"])
        parts.append(f"{took or 'reclaimed by the host'} from {v['host_reclaim_from_s']:.0f} s"
                     f" to {v['host_reclaim_to_s']:.0f} s" + (f" (in {where})" if where else ""))
    if not parts:
        return f"{name}{kept}{driver} was never reclaimed from and {speed}."
    return f"{name}{kept}{driver} was {', and '.join(parts)}; it {speed}."


def markdown(summary: dict[str, Any]) -> str:
    """The story as the README quotes it: the host's sentence, then a bullet per VM."""
    lines = [str(summary["host"]["story"]), ""]
    lines += [f"- {v['story']}" for v in summary["vms"]]
    return "\n".join(lines)


if __name__ == "__main__":  # python -m vmemsim.metrics.story results/<run>/summary.json
    import json
    import sys

    with open(sys.argv[1], encoding="utf-8") as f:
        print(markdown(json.load(f)))
