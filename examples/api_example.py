"""Run a scenario from Python and look at it with pandas: the three-line notebook.

    .venv/bin/python examples/api_example.py
"""

import vmemsim

result = vmemsim.simulate("default", duration="3min")

# One row per VM per simulated second, with esxtop's counters (docs/outputs.md).
vms = result.vms
print(vms.groupby("vm")[["consumed_mb", "mctlsz_mb", "swcur_mb", "throughput"]].mean())

# The host's memory state over time, and every transition.
print(result.host["state"].value_counts())
print(result.transitions)

# Per-VM verdicts: slowdown against the same VM on a host with ample memory.
for v in result.summary["vms"]:
    print(f"{v['name']:8s} slowdown {v['slowdown']:.2f}x  {v['verdict']}")

# A what-if: the same scenario with the idle memory tax switched off.
sc = vmemsim.load_scenario("default")
no_tax = sc.with_overrides(hypervisor={**sc.hypervisor.model_dump(), "idle_tax": 0.0},
                           duration=180.0)
other = vmemsim.simulate(no_tax)
print(other.vms.groupby("vm")["throughput"].mean() / vms.groupby("vm")["throughput"].mean())
