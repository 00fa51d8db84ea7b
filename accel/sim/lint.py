"""The lint gate: ``verilator --lint-only -Wall`` on generated Verilog.

Every warning fails the gate except the classes in ``WAIVED_WARNINGS``, which Amaranth's own
Verilog output triggers for any non-trivial design. This is the one list; extend it only with a
class that Amaranth emits by construction, and say which construct triggers it.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import tempfile
from pathlib import Path

from accel.errors import LintError
from accel.toolchain import child_env, find_verilator

WAIVED_WARNINGS: dict[str, str] = {
    # Amaranth declares every register with its reset value (`reg [2:0] x = 3'h0;`) and also
    # assigns it in its clocked process.
    "PROCASSINIT": "registers are initialized at declaration and assigned in a process",
    # Amaranth emits alias wires for every named signal (`assign rp = r__addr;`) that nothing
    # reads, and keeps the full-width result of arithmetic even when only low bits are used.
    "UNUSEDSIGNAL": "alias wires for named signals and unused high bits of arithmetic results",
    # Amaranth's arithmetic is width-extending (a + b is one bit wider) and truncates on
    # assignment; the widths in its output are exact by the language's rules, not by Verilog's.
    "WIDTHEXPAND": "operand widths extended by Amaranth's width rules",
    "WIDTHTRUNC": "results truncated on assignment by Amaranth's width rules",
    # An assignment to a variable part-select (``word_select`` with a signal index) becomes a
    # `casez` over the index without a default: out-of-range indices leave the target as is.
    "CASEINCOMPLETE": "variable part-select assignments emitted as a case without default",
    # All submodules of a design are emitted into one file.
    "DECLFILENAME": "several modules in one file",
}


def waiver_args() -> list[str]:
    """Verilator options that silence the waived classes (builds apply them too)."""
    return [f"-Wno-{name}" for name in WAIVED_WARNINGS]


_MESSAGE = re.compile(r"^%(Warning|Error)(?:-([A-Z0-9_]+))?:\s*(.*)$")


def lint_findings(verilog: str | Path, top: str) -> list[str]:
    """The warnings and errors not covered by ``WAIVED_WARNINGS``, one line each."""
    with tempfile.TemporaryDirectory(prefix="accel-lint-") as tmp:
        if isinstance(verilog, Path):
            source = verilog
        else:
            source = Path(tmp) / f"{top}.v"
            source.write_text(verilog)
        cmd = [str(find_verilator().executable), "--lint-only", "-Wall", "--top-module", top]
        cmd += waiver_args()
        cmd.append(str(source))
        result = subprocess.run(cmd, capture_output=True, text=True, env=child_env(), cwd=tmp)
    findings = []
    for line in result.stderr.splitlines():
        match = _MESSAGE.match(line)
        if match and not match.group(3).startswith("Exiting due to"):
            findings.append(line.strip())
    if result.returncode != 0 and not findings:
        findings.append(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else
                        f"verilator exited with code {result.returncode}")
    return findings


def _clean_marker(text: str, top: str) -> Path:
    """Where a clean verdict on this exact text (top, waivers, Verilator version) is kept:
    linting a large generated design takes tens of seconds and its result cannot change."""
    from accel.sim.runner import cache_root  # runner imports this module

    description = json.dumps({"top": top, "waived": sorted(WAIVED_WARNINGS),
                              "verilator": find_verilator().version})
    key = hashlib.sha256(description.encode() + b"\0" + text.encode()).hexdigest()[:24]
    return cache_root() / "lint" / f"{key}.clean"


def check_lint(verilog: str | Path, top: str) -> None:
    """Raise ``LintError`` naming the first finding (and how many there are) unless clean.
    Clean verdicts are cached by content (failures are never cached)."""
    marker = _clean_marker(verilog.read_text() if isinstance(verilog, Path) else verilog, top)
    if marker.is_file():
        return
    findings = lint_findings(verilog, top)
    if findings:
        more = f" (and {len(findings) - 1} more)" if len(findings) > 1 else ""
        raise LintError(f"lint of {top}: {findings[0]}{more}")
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
