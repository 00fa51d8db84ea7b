"""The ``accel`` command line: thin; it parses, calls the library and prints.

Every ``AccelError`` becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys

from accel import __version__
from accel.errors import AccelError


def _doctor(args, console) -> int:
    from accel.doctor import doctor

    doctor(console)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="accel", description="Compressed and binarized neural networks to RTL, "
                                  "cycle-accurate simulation and energy.")
    parser.add_argument("--version", action="version", version=f"accel {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    doctor = commands.add_parser("doctor", help="check the toolchain end to end")
    doctor.set_defaults(handler=_doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    console = Console()
    try:
        return args.handler(args, console)
    except AccelError as exc:
        print(f"accel: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("accel: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
