"""Blocks every architecture builds on: stream FIFO, memory placement, event counter bank, test
harnesses."""

import contextlib


@contextlib.contextmanager
def validating(component):
    """Wrap a component constructor's parameter checks.

    Amaranth warns about every elaboratable that is created and never elaborated; one whose
    constructor rejected its parameters never will be, so it is marked used before the error
    propagates.
    """
    try:
        yield
    except Exception:
        component._MustUse__used = True
        raise
