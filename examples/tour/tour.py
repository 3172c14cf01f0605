"""The numbers docs/tour.md quotes, from the tour's own runs.

    python examples/tour/tour.py            # print each stop's block
    python examples/tour/tour.py --write    # put them into docs/tour.md
    python examples/tour/tour.py --check    # exit 1 if docs/tour.md says otherwise

Each stop runs its scenario (as `vmemsim run` does, one process) and writes a few sentences
from the results; docs/tour.md holds them between `<!-- tour:NAME:begin -->` and
`<!-- tour:NAME:end -->`. tests/test_tour.py fails when they differ, so the tour cannot drift
from what the simulator does.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd

import vmemsim
from vmemsim.config.loader import load_scenario
from vmemsim.metrics.result import Result
from vmemsim.metrics.story import markdown

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "tour.md"


def _vm(r: Result, name: str) -> dict:
    return next(v for v in r.summary["vms"] if v["name"] == name)


def _rows(r: Result, name: str) -> pd.DataFrame:
    return r.vms[r.vms["vm"].astype(str) == name].set_index("time_s")


def two_translations(r: Result) -> str:
    v = _vm(r, "app")
    rows = _rows(r, "app")
    return (
        f"`app` made {v['refs'] / 1e6:.1f} M references in 30 s. Each page's first touch was a "
        f"guest fault ({v['guest_faults']:,} in all: the guest maps the GVPN to a free GPPN) "
        f"and then a hypervisor fault ({v['hv_first_touch']:,} first touches, the guest "
        f"kernel's pages among them: the host backs the GPPN with a machine page, the pmap's "
        f"entry). Consumed memory grew from "
        f"{rows['consumed_mb'].loc[1.0]:.0f} MB after 1 s to {rows['consumed_mb'].iloc[-1]:.0f} "
        f"MB, with the process's zipf working set: what the guest touched, no more. "
        f"{100 * v['tlb_misses'] / v['refs']:.0f}% of the references missed the TLB; their "
        f"nested walks took {v['walk_s']:.2f} vCPU-seconds.")


def balloon_or_swap(r: Result) -> str:
    t, n = _vm(r, "web-tools"), _vm(r, "web-notools")
    return markdown(r.summary) + (
        f"\n\nThe guest of `web-tools` paged out {t['guest_swap_out']:,} pages of its own "
        f"choosing; {t['double_paging']:,} of them the host had already swapped or "
        f"compressed (double paging: read back only to be written out again). `web-notools` "
        f"paged out {n['guest_swap_out']:,}: the host took {n['swout_pages']:,} pages from it "
        f"at random instead.")


def idle_tax(r: Result) -> str:
    out = []
    for name in ("idle", "busy"):
        rows = _rows(r, name)
        before = rows.loc[240.0:300.0]
        after = rows.loc[540.0:600.0]
        out.append(
            f"- `{name}`: target {before['sztgt_mb'].mean():.0f} MB before the tax, "
            f"{after['sztgt_mb'].mean():.0f} MB after; active memory estimated at "
            f"{after['active_est_mb'].mean():.0f} MB; {before['throughput'].mean():,.0f} -> "
            f"{after['throughput'].mean():,.0f} references/s (means of the last minute "
            f"before 5 min and before 10 min).")
    return "\n".join(out)


def page_sharing(r: Result) -> str:
    host = r.host.set_index("time_s")
    end = r.vms["time_s"].max()
    last = r.vms[r.vms["time_s"] == end]
    v = last[last["vm"] == "desk1"].iloc[0]
    saving = ", ".join(f"{host['pshare_saving_mb'].loc[float(t)]:,.0f} MB at {t} s"
                       for t in (60, 120, 300))
    return (
        f"Each desktop ends with {v['shrd_mb']:.0f} MB of its 1,024 MB shared (SHRD), "
        f"{v['zero_mb']:.0f} MB of them zero pages (ZERO), and consumes "
        f"{v['consumed_mb']:.0f} MB. The host saves {saving} (PSHARE's saving: the scanner "
        f"visits each VM once per `share_scan_time`); another {v['cowh_mb']:.0f} MB of each VM's "
        f"pages were hashed but matched nothing (COWH: hints).")


def shadow_vs_nested(r: Result) -> str:
    rows = []
    for w in ("pt", "db", "lp"):
        n, s = _vm(r, f"{w}-nested"), _vm(r, f"{w}-shadow")
        rows.append(
            f"| `{w}` | {n['throughput']:,.0f} | {s['throughput']:,.0f} | "
            f"{n['throughput'] / s['throughput']:.2f} | {n['walk_s']:.2f} / {s['walk_s']:.2f} "
            f"| {s['mmu_traps']:,} | {s['mmu_s']:.2f} |")
    head = ("| VMs | refs/s nested | refs/s shadow | nested / shadow | walk vCPU-s "
            "nested / shadow | shadow's traps | their vCPU-s |\n|---|--:|--:|--:|--:|--:|--:|")
    return head + "\n" + "\n".join(rows)


STOPS: dict[str, tuple[str, Callable[[Result], str]]] = {
    "two-translations": ("examples/tour/1_two_translations.toml", two_translations),
    "balloon-or-swap": ("examples/no_tools.toml", balloon_or_swap),
    "idle-tax": ("examples/tour/3_idle_tax.toml", idle_tax),
    "page-sharing": ("examples/tour/4_page_sharing.toml", page_sharing),
    "shadow-vs-nested": ("examples/tour/5_shadow_vs_nested.toml", shadow_vs_nested),
}


def block(name: str) -> str:
    """A stop's text, from a run of its scenario."""
    path, facts = STOPS[name]
    sc = load_scenario(str(ROOT / path))
    return facts(vmemsim.simulate(sc, parallel=False, cache=False))


def quoted(doc: str, name: str) -> str:
    m = re.search(rf"<!-- tour:{name}:begin -->\n(.*?)<!-- tour:{name}:end -->", doc, re.S)
    if m is None:
        raise KeyError(f"docs/tour.md has no block for {name}")
    return m.group(1).removesuffix("\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    doc = DOC.read_text() if DOC.exists() else ""
    bad = []
    for name in STOPS:
        text = block(name)
        if args.write:
            quoted(doc, name)
            doc = re.sub(rf"(<!-- tour:{name}:begin -->\n).*?(<!-- tour:{name}:end -->)",
                         lambda m, t=text: m.group(1) + t + "\n" + m.group(2), doc,
                         flags=re.S)
        elif args.check:
            if quoted(doc, name) != text:
                bad.append(name)
        else:
            print(f"## {name}\n{text}\n")
    if args.write:
        DOC.write_text(doc)
    if bad:
        print(f"docs/tour.md differs from the runs for: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
