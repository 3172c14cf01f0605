"""Builds examples/rvtools_example.xlsx: a small RVTools-like export (two hosts of a
cluster, a few VMs each, one powered off, one template), with the tabs and column names
RVTools 4.x writes. The sizes are small so that `vmemsim plan` on it runs in a minute or two.

    python examples/make_rvtools_example.py      # rewrites the workbook beside this file
    vmemsim import rvtools examples/rvtools_example.xlsx --host esx01 --out esx01.toml
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import openpyxl

VINFO = ["VM", "Powerstate", "Template", "DNS Name", "CPUs", "Memory", "NICs",
         "Provisioned MiB", "In Use MiB", "OS according to the configuration file",
         "Datacenter", "Cluster", "Host"]
VMEMORY = ["VM", "Powerstate", "Template", "Size MiB", "Memory Reservation Locked To Max",
           "Overhead", "Max", "Consumed", "Consumed Overhead", "Private", "Shared", "Swapped",
           "Ballooned", "Active", "Entitlement", "DRS Entitlement", "Level", "Shares",
           "Reservation", "Limit", "Hot Add", "Datacenter", "Cluster", "Host"]
VHOST = ["Host", "Datacenter", "Cluster", "# CPU", "# Cores", "CPU usage %", "# Memory",
         "Memory usage %", "ESX Version"]
VTOOLS = ["VM", "Powerstate", "Template", "VM Version", "Tools", "Tools Version"]

# name, power, template, cpus, memory MiB, os, host, consumed, active, level, shares,
# reservation, limit, tools
VMS = [
    ("web01", "poweredOn", False, 2, 1024, "Ubuntu Linux (64-bit)", "esx01", 720, 260,
     "normal", 10240, 0, -1, "toolsOk"),
    ("db01", "poweredOn", False, 2, 1536, "Red Hat Enterprise Linux 8 (64-bit)", "esx01",
     1300, 700, "high", 30720, 512, -1, "toolsOk"),
    ("app01", "poweredOn", False, 1, 768, "Microsoft Windows Server 2019 (64-bit)", "esx01",
     560, 180, "normal", 7680, 0, -1, "toolsOld"),
    ("legacy01", "poweredOn", False, 1, 512, "Microsoft Windows Server 2008 R2 (64-bit)",
     "esx01", 512, 60, "low", 2560, 0, -1, "toolsNotInstalled"),
    ("old-test", "poweredOff", False, 1, 2048, "Ubuntu Linux (64-bit)", "esx01", 0, 0,
     "normal", 20480, 0, -1, "toolsNotRunning"),
    ("tmpl-ubuntu", "poweredOff", True, 1, 1024, "Ubuntu Linux (64-bit)", "esx01", 0, 0,
     "normal", 10240, 0, -1, "toolsNotRunning"),
    ("web02", "poweredOn", False, 2, 1024, "Ubuntu Linux (64-bit)", "esx02", 650, 240,
     "normal", 10240, 0, -1, "toolsOk"),
    ("cache02", "poweredOn", False, 1, 1024, "Debian GNU/Linux 12 (64-bit)", "esx02", 900,
     600, "normal", 10240, 0, 768, "toolsOk"),
]
HOSTS = [("esx01", "dc1", "prod", 2, 16, 12, 4096, 78, "8.0.2"),
         ("esx02", "dc1", "prod", 2, 16, 9, 3072, 61, "8.0.2")]


def build(path: Path) -> None:
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    info, mem, host, tools = (wb.create_sheet(n) for n in ("vInfo", "vMemory", "vHost",
                                                            "vTools"))
    info.append(VINFO)
    mem.append(VMEMORY)
    host.append(VHOST)
    tools.append(VTOOLS)
    for (name, power, tmpl, cpus, memory, os, h, consumed, active, level, shares, resv,
         limit, tstat) in VMS:
        info.append([name, power, tmpl, f"{name}.example.com", cpus, memory, 1, memory + 8192,
                     4096, os, "dc1", "prod", h])
        mem.append([name, power, tmpl, memory, False, 40, memory + 40, consumed, 30,
                    consumed, 0, 0, 0, active, memory, memory, level, shares, resv, limit,
                    False, "dc1", "prod", h])
        tools.append([name, power, tmpl, "vmx-19", tstat, "12352"])
    for row in HOSTS:
        host.append(list(row))
    wb.properties.created = wb.properties.modified = datetime(2026, 1, 1)  # same bytes
    wb.save(path)


if __name__ == "__main__":
    build(Path(__file__).with_name("rvtools_example.xlsx"))
