"""`vmemsim plan`: the planner's questions answered by runs of the scenario.

- the smallest host memory at which every VM stays within a slowdown: a search over host
  memory (bisection, or a k-section when the workers outnumber the seeds), each candidate
  run with several seeds; a candidate fits when every VM's slowdown (the upper end of its
  95% interval over the seeds) is within the limit;
- the same with another host's VMs added (N+1: that host failed, its VMs restart here);
- the most copies of one VM that fit on the scenario's host.

The search assumes that more memory never hurts; it checks that the candidates it ran agree
(every candidate that fits is larger than every one that does not) and says so when they do
not, answering with the smallest fitting candidate above the largest one that does not.
Each candidate's runs are kept as sweep points (sweeps.save_point) in the output folder, so
that the same question asked again runs nothing it already ran.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmemsim.config.loader import scenario_from_dict
from vmemsim.config.schema import Scenario
from vmemsim.metrics.stats import mean_ci
from vmemsim.sweeps import STATES, Point, load_point, save_point

MIB = 1 << 20
MAX_ROUNDS = 16
MAX_COPIES = 256


class PlanError(ValueError):
    """A question that cannot be asked of this scenario: one line."""


@dataclass
class VMOutcome:
    name: str
    slowdown: float  # mean over seeds
    low: float
    high: float  # the 95% interval's upper end (the value itself for one seed)


@dataclass
class Candidate:
    """One host size (or number of copies) run with every seed."""

    x: float  # host memory in MiB, or copies
    vms: list[VMOutcome]
    worst_state: str  # the lowest memory state any seed's run reached
    time_in_state_s: dict[str, float]  # mean over seeds
    admitted: bool = True  # False: a VM could not power on (counts as not fitting)

    def fits(self, limit: float) -> bool:
        return self.admitted and all(v.high <= limit for v in self.vms)

    @property
    def worst(self) -> VMOutcome | None:
        return max(self.vms, key=lambda v: v.high, default=None)


@dataclass
class Search:
    """One question's candidates and its answer (None: nothing in range fits)."""

    question: str  # "memory", "memory+add", "copies"
    label: str
    limit: float
    candidates: list[Candidate] = field(default_factory=list)
    answer: float | None = None
    monotonic: bool = True
    lo: float = 0.0
    hi: float = 0.0

    def sorted(self) -> list[Candidate]:
        return sorted(self.candidates, key=lambda c: c.x)


class Evaluator:
    """Runs candidates: every seed of each on the runner's workers (or here, one by one),
    each point kept in `out/points` and read back instead of run again."""

    def __init__(self, out: Path, seeds: int, workers: int | None = None,
                 cache: bool = True, parallel: bool | None = None,
                 progress: Callable[[str], None] | None = None) -> None:
        from vmemsim import _fork

        self.out, self.seeds, self.cache = out, seeds, cache
        self.progress = progress or (lambda _msg: None)
        self.workers = max(1, workers or _fork.cores())
        use = _fork.can_fork() and self.workers > 1 if parallel is None else parallel
        self.runner: Any = None
        if use:
            from vmemsim.runner import Runner

            self.runner = Runner(workers=self.workers, method="fork")
        self.index = 0

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()
            self.runner = None

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def per_round(self) -> int:
        """Candidates run side by side: the workers the seeds leave free."""
        return max(1, self.workers // self.seeds) if self.runner is not None else 1

    def run(self, scenarios: Sequence[tuple[float, Scenario]], axis: str) -> list[Candidate]:
        from vmemsim.build import AdmissionError
        from vmemsim.engine import Simulation
        from vmemsim.jobs import SimJob, run_simulation

        points: list[Point] = []
        refused: set[float] = set()
        for x, sc in scenarios:
            try:
                Simulation(sc)  # a VM that cannot power on: the candidate does not fit
            except AdmissionError:
                refused.add(x)
                continue
            for k in range(self.seeds):
                s = (sc.seed + k) % 2**63
                points.append(Point(self.index, {axis: x}, s, sc.with_overrides(seed=s)))
                self.index += 1
        results: dict[int, Any] = {}
        todo = []
        for p in points:
            r = load_point(self.out, p)
            if r is None:
                todo.append(p)
            else:
                results[p.index] = r
        if todo:
            self.progress(f"{axis} = {', '.join(_x_text(axis, x) for x, _ in scenarios)}: "
                          f"{len(todo)} runs")
            jobs = [SimJob.of(p.scenario, cache=self.cache) for p in todo]
            if self.runner is not None and len(jobs) > 1:
                pairs = self.runner.map(run_simulation, jobs)
            else:
                pairs = ((i, run_simulation(j)) for i, j in enumerate(jobs))
            for i, res in pairs:
                save_point(self.out, todo[i], res)
                results[todo[i].index] = res
        out = []
        for x, _sc in scenarios:
            if x in refused:
                out.append(Candidate(x, [], "low", {}, admitted=False))
                continue
            mine = [results[p.index] for p in points if p.values[axis] == x]
            out.append(_candidate(x, mine))
        return out


def _candidate(x: float, results: list[Any]) -> Candidate:
    names = [v["name"] for v in results[0].summary["vms"]]
    vms = []
    for k, name in enumerate(names):
        vals = [r.summary["vms"][k]["slowdown"] for r in results]
        vals = [math.inf if v is None or v != v else float(v) for v in vals]
        m, lo, hi = mean_ci(vals) if all(math.isfinite(v) for v in vals) else (
            math.inf, math.inf, math.inf)
        vms.append(VMOutcome(name, m, lo, hi))
    seen = {s for r in results for s in r.summary["host"]["states_seen"]}
    worst = max(seen, key=STATES.index) if seen else "high"
    tis = {s: sum(float(r.summary["host"]["time_in_state_s"].get(s, 0.0)) for r in results)
           / len(results) for s in STATES}
    return Candidate(x, vms, worst, tis)


def _x_text(axis: str, x: float) -> str:
    return f"{x:g}" if axis == "copies" else _mem_text(x)


def _mem_text(mb: float) -> str:
    return f"{mb / 1024:.2f} GiB" if mb >= 1024 else f"{mb:.0f} MiB"


def with_host_memory(sc: Scenario, mb: float) -> Scenario:
    data = sc.model_dump(mode="json")
    data["host"]["memory"] = f"{int(round(mb))}MiB"
    data["baseline"] = True  # slowdown needs it
    return scenario_from_dict(data, sc.name)


def memory_range(sc: Scenario) -> tuple[float, float]:
    """The search's default range (MiB): from what admission control needs (the vmkernel,
    every VM's overhead and reservation) to a host on which nothing is overcommitted and
    free memory stays above every threshold (everything configured, plus a quarter)."""
    from vmemsim.build import overhead_bytes

    vmk = sc.host.vmkernel / MIB
    need = sum((overhead_bytes(v) + v.reservation) / MIB for v in sc.vm)
    full = sum((overhead_bytes(v) + v.memory) / MIB for v in sc.vm)
    return math.ceil(vmk + need + 16), math.ceil(vmk + 1.25 * full + 64)


def _check_order(s: Search, fits_high: bool = True) -> None:
    """The fitting candidates must all lie on one side of the failing ones (above them for
    host memory, below them for copies); the answer is the fitting candidate nearest the
    failing ones on the right side of all of them (None if there is none)."""
    fits = [c.x for c in s.candidates if c.fits(s.limit)]
    fails = [c.x for c in s.candidates if not c.fits(s.limit)]
    if fits_high:
        edge = max(fails, default=-math.inf)
        s.monotonic = not fails or not fits or min(fits) > edge
        side = [x for x in fits if x > edge]
        s.answer = min(side) if side else None
    else:
        edge = min(fails, default=math.inf)
        s.monotonic = not fails or not fits or max(fits) < edge
        side = [x for x in fits if x < edge]
        s.answer = max(side) if side else None


def search(evaluate: Callable[[list[float]], list[Candidate]], lo: float, hi: float,
           step: float, limit: float, per_round: int, question: str, label: str,
           integer: bool = False, fits_high: bool = True) -> Search:
    """The fitting x in [lo, hi] nearest the failing ones, to within `step`: the smallest for
    host memory (fits_high), the largest for copies. Both ends first, then per_round points
    spread inside the interval left between the nearest failing and fitting ones, each
    round (a bisection for one point a round)."""
    s = Search(question, label, limit, lo=lo, hi=hi)
    s.candidates += evaluate([lo, hi] if hi > lo else [lo])
    for _ in range(MAX_ROUNDS):
        _check_order(s, fits_high)
        fails = [c.x for c in s.candidates if not c.fits(limit)]
        if s.answer is None or not fails:
            break  # nothing in range fits, or everything does: the answer is an end
        f = max(fails) if fits_high else min(fails)
        a, b = sorted((f, s.answer))
        if b - a <= step:
            break
        xs = {float(round(a + (b - a) * (k + 1) / (per_round + 1))) if integer else
              a + (b - a) * (k + 1) / (per_round + 1) for k in range(per_round)}
        xs = sorted(x for x in xs if a < x < b and x not in {c.x for c in s.candidates})
        if not xs:
            break
        s.candidates += evaluate(xs)
    _check_order(s, fits_high)
    return s


def combine(sc: Scenario, other: Scenario) -> Scenario:
    """The scenario with another host's VMs added (N+1: that host failed and HA restarted
    its VMs here). A name the scenario has already gets the other scenario's name after @."""
    data = sc.model_dump(mode="json")
    names = {v["name"] for v in data["vm"]}
    for v in other.model_dump(mode="json")["vm"]:
        if v["name"] in names:
            v["name"] = f"{v['name']}@{other.name}"
        names.add(v["name"])
        data["vm"].append(v)
    data["name"] = f"{sc.name}+{other.name}"
    return scenario_from_dict(data, data["name"])


def with_copies(sc: Scenario, vm_name: str, n: int) -> Scenario:
    data = sc.model_dump(mode="json")
    base = next(v for v in data["vm"] if v["name"] == vm_name)
    names = {v["name"] for v in data["vm"]}
    k = 2
    for _ in range(n):
        while f"{vm_name}#{k}" in names:
            k += 1
        copy = dict(base, name=f"{vm_name}#{k}")
        names.add(copy["name"])
        data["vm"].append(copy)
    data["baseline"] = True
    return scenario_from_dict(data, sc.name)


@dataclass
class PlanResult:
    scenario: Scenario
    limit: float
    searches: list[Search]
    sentences: list[str]


def plan(sc: Scenario, *, limit: float = 1.1, seeds: int = 3, duration: float | None = None,
         memory: Sequence[float] | tuple[float, float] | None = None, step_mb: float = 64.0,
         add: Scenario | None = None, fit: str | None = None, out: Path,
         workers: int | None = None, cache: bool = True, parallel: bool | None = None,
         progress: Callable[[str], None] | None = None) -> PlanResult:
    """Answer the questions; `memory` is a (lo, hi) range in MiB (searched) or a list of
    host sizes (each run). Writes nothing but the kept points; see write_outputs."""
    if limit <= 1.0:
        raise PlanError(f"--slowdown: more than 1.0 (1.0 is a VM no slower than alone), "
                        f"got {limit:g}")
    if fit is not None and fit not in {v.name for v in sc.vm}:
        raise PlanError(f"--fit: no VM {fit!r} in the scenario (its VMs: "
                        f"{', '.join(v.name for v in sc.vm)})")
    if duration is not None:
        sc = sc.with_overrides(duration=duration)
    sc = sc.with_overrides(baseline=True)
    searches = []
    with Evaluator(out, seeds, workers, cache, parallel, progress) as ev:
        questions = [("memory", sc.name, sc)]
        if add is not None:
            both = combine(sc, add if duration is None else add.with_overrides(
                duration=duration))
            both = both.with_overrides(duration=sc.duration, seed=sc.seed)
            questions.append(("memory+add", f"with {add.name}'s {len(add.vm)} VMs added", both))
        for q, label, base in questions:
            def evaluate(xs: list[float], base: Scenario = base) -> list[Candidate]:
                return ev.run([(x, with_host_memory(base, x)) for x in xs], "host.memory")

            if memory is not None and not isinstance(memory, tuple):
                s = Search(q, label, limit, lo=min(memory), hi=max(memory))
                s.candidates = evaluate(sorted(set(memory)))
                _check_order(s)
            else:
                lo, hi = memory if memory is not None else memory_range(base)
                s = search(evaluate, float(round(lo)), float(round(hi)), step_mb, limit,
                           ev.per_round, q, label, integer=True)  # whole MiB
            searches.append(s)
        if fit is not None:
            host_mb = sc.host.memory / MIB

            def evaluate_n(xs: list[float]) -> list[Candidate]:
                return ev.run([(x, with_host_memory(with_copies(sc, fit, int(x)), host_mb))
                               for x in xs], "copies")

            # Doubling until one does not fit, then the search between.
            lo, hi = 0, 1
            while hi <= MAX_COPIES:
                (c,) = evaluate_n([float(hi)])
                if not c.fits(limit):
                    break
                lo, hi = hi, hi * 2
            hi = min(hi, MAX_COPIES)
            s = search(evaluate_n, float(lo), float(hi), 1.0, limit, ev.per_round, "copies",
                       f"copies of {fit} on {_mem_text(host_mb)}", integer=True,
                       fits_high=False)
            # the doubling's candidates were run (kept) already: read back by search
            searches.append(s)
    sentences = [sentence(s, sc, fit) for s in searches]
    return PlanResult(sc, limit, searches, sentences)


def sentence(s: Search, sc: Scenario, fit: str | None = None) -> str:
    lim = f"{s.limit:g}x"
    note = "" if s.monotonic else (" (the runs were not monotonic in host memory: a larger "
                                   "host did worse than a smaller one; run more seeds)")
    if s.question == "copies":
        host = _mem_text(sc.host.memory / MIB)
        if s.answer is None:
            return (f"Not even the scenario as it is keeps every VM within {lim} on "
                    f"{host}{note}.")
        n = int(s.answer)
        if n == 0:
            return (f"Not one more copy of {fit!r} fits on the {host} host with every VM "
                    f"within {lim}{note}.")
        more = "" if n < MAX_COPIES else " or more"
        return (f"At most {n}{more} more cop{'y' if n == 1 else 'ies'} of {fit!r} fit on the "
                f"{host} host with every VM within {lim}{note}.")
    what = "These VMs" if s.question == "memory" else f"These VMs, {s.label},"
    if s.answer is None:
        best = s.sorted()[-1] if s.candidates else None
        w = best.worst if best else None
        why = f" ({w.name} {w.high:.2f}x at {_mem_text(best.x)})" if best and w else ""
        return f"No host size tried ({_mem_text(s.lo)} to {_mem_text(s.hi)}) keeps every VM " \
               f"within {lim}{why}{note}."
    c = next(c for c in s.candidates if c.x == s.answer)
    w = c.worst
    worst = f"; the most slowed, {w.name}, {w.slowdown:.2f}x" if w else ""
    return (f"{what} need a host of {_mem_text(s.answer)} for every VM to stay "
            f"within {lim} (worst state {c.worst_state}{worst}){note}.")
