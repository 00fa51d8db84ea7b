"""EIE's leading-nonzero detector as a pipelined tree (Han et al., ISCA 2016: a 4-ary tree of
LNZD units), built iteratively so that any width elaborates.

Structure (``width`` nonzero flags, fan-in F, a pipeline register every ``stage_levels``
levels):
- level 1: groups of F flags; each finds its first flag that is set and not yet sent;
- levels 2..L: F-ary priority selects, each passing on the item of its first child that still
  has items (L = ceil(log_F(width)), at least 1);
- after every ``stage_levels`` levels (and after level L) a stage register per node: a skid
  buffer (main and skid register, ``ready`` = skid empty, so no ready path runs through the
  tree), holding (column bits so far, last);
- a final stage reads the winner's activation (``lookup_column`` out, ``lookup_value`` in:
  the activation banks, read combinationally) into the output register.

Every item carries ``last`` (no set flag after it in its subtree); each node knows which of
its children's subtrees hold any set flag (a registered OR, as old as the items), so it skips
empty children and moves on to the next child in the cycle after taking a child's last item.
Every stage therefore passes on one item per cycle whenever its consumer takes one, from the
cycle its first item arrives: after a reset, item t is on ``o`` from cycle ``latency + t`` at
the latest (``latency`` = stages + 1) and stays there until taken; items come in column order.
``done`` is high from the cycle after the last item is taken, or from cycle ``latency`` when no
flag is set.

Ports
-----
flags : In(width)
    The nonzero flags; must be stable from the cycle after the reset that starts a run.
o : Out(stream.Signature(column, value, last))
    The next nonzero column, its activation and whether it is the last.
lookup_column : Out(range(width))
    The column whose activation is read in this cycle.
lookup_value : In(value_bits)
    Its activation (a combinational read of ``lookup_column``).
done : Out(1)
    Every nonzero column has been taken.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from amaranth import Cat, Const, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from accel.errors import ConfigError
from accel.hw.eie.model import (LNZD_FANIN as DEFAULT_FANIN,
                                LNZD_STAGE_LEVELS as DEFAULT_STAGE_LEVELS,
                                check_lnzd_parameters as check_parameters, lnzd_latency as latency,
                                lnzd_stages as tree_stages, lnzd_tree_levels as tree_levels)

__all__ = ["DEFAULT_FANIN", "DEFAULT_STAGE_LEVELS", "LeadingNonzeroDetector",
           "check_parameters", "latency", "tree_levels", "tree_stages"]

@dataclass
class _Candidate:
    """A subtree's offer in one cycle: ``pending`` (it still has items), ``valid`` (its item
    is there now), ``index`` (the item's column bits below this subtree), ``last``, and for
    each of the stage's inputs the condition under which this offer is that input's item."""

    pending: object
    valid: object
    index: object
    last: object
    selects: list = field(default_factory=list)  # (input number, condition)


def _combine(children: list[_Candidate], digit_bits: int) -> _Candidate:
    """One F-ary priority select: the first child that still has items."""
    pending = Const(0, 1)
    valid = Const(0, 1)
    last = Const(0, 1)
    index = Const(0, len(Cat(children[0].index)) + digit_bits)
    selects = []
    for i, child in enumerate(children):
        earlier = [c.pending for c in children[:i]]
        later = [c.pending for c in children[i + 1:]]
        first = child.pending & ~Cat(*earlier).any() if earlier else child.pending
        rest_empty = ~Cat(*later).any() if later else Const(1, 1)
        valid = valid | (first & child.valid)
        last = last | (first & child.last & rest_empty)
        index = index | (Cat(child.index, Const(i, digit_bits)) & first.replicate(len(index)))
        pending = pending | child.pending
        selects += [(n, condition & first) for n, condition in child.selects]
    return _Candidate(pending, valid, index, last, selects)


class LeadingNonzeroDetector(wiring.Component):
    def __init__(self, width: int, value_bits: int, fanin: int = DEFAULT_FANIN,
                 stage_levels: int = DEFAULT_STAGE_LEVELS):
        check_parameters(fanin, stage_levels)
        if width < 1:
            raise ConfigError(f"leading-nonzero detector over {width} flags")
        self.width = width
        self.fanin = fanin
        self.stage_levels = stage_levels
        self.latency = latency(width, fanin, stage_levels)
        column = range(max(width, 2))
        self.item = data.StructLayout({"column": column, "value": value_bits, "last": 1})
        super().__init__({
            "flags": In(width),
            "o": Out(stream.Signature(self.item)),
            "lookup_column": Out(column),
            "lookup_value": In(value_bits),
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        fanin, digit_bits = self.fanin, self.fanin.bit_length() - 1
        levels = tree_levels(self.width, fanin)
        sent = Signal(self.width)
        pending = self.flags & ~sent
        # a stage's inputs: the flags for the first, then the previous stage's registers;
        # ``static``: whether an input has any item at all in this run
        inputs = [_Candidate(pending[j], pending[j], Const(0, 0), Const(1, 1))
                  for j in range(self.width)]
        static = [self.flags[j] for j in range(self.width)]

        def take_flag(j):
            def take(strobe):
                with m.If(strobe):
                    m.d.sync += sent[j].eq(1)
            return take

        takers = [take_flag(j) for j in range(self.width)]
        skids = []
        known = Const(1, 1)  # the current stage's inputs are valid (their age)
        level = stage = 0
        while level < levels:  # one pipeline stage per iteration
            span = min(self.stage_levels, levels - level)
            group = fanin ** span
            nodes, nonempties = [], []
            for first in range(0, len(inputs), group):
                members = range(first, min(first + group, len(inputs)))
                candidates = [_Candidate(inputs[n].pending, inputs[n].valid, inputs[n].index,
                                         inputs[n].last, [(n, Const(1, 1))]) for n in members]
                for _ in range(span):  # the stage's levels of priority selects
                    candidates = [_combine(candidates[i:i + fanin], digit_bits)
                                  for i in range(0, len(candidates), fanin)]
                (offer,) = candidates
                name = f"lnzd_s{stage}_n{len(nodes)}"
                node = _Skid(name, len(offer.index))
                push = offer.valid & node.ready
                node.feed(push, offer.index, offer.last)
                for n, condition in offer.selects:
                    takers[n](push & condition)
                nonempty = Signal(name=f"{name}_nonempty")
                m.d.sync += nonempty.eq(Cat(*(static[n] for n in members)).any())
                nodes.append(node)
                nonempties.append(nonempty)
            stage_known = Signal(name=f"lnzd_s{stage}_known")
            m.d.sync += stage_known.eq(known)
            known = stage_known
            skids += nodes
            # the next stage's inputs: these registers, skipped once their last item is taken
            inputs = [_Candidate(nonempty & ~node.finished, node.valid, node.index, node.last)
                      for node, nonempty in zip(nodes, nonempties)]
            static = nonempties
            takers = [node.take for node in nodes]
            level += span
            stage += 1

        # the final stage: read the root's activation into the output register
        (root,) = skids[-1:]
        (root_nonempty,) = static
        column_bits = len(self.o.payload.column)
        out = _Skid("lnzd_out", column_bits + len(self.lookup_value))
        skids.append(out)
        out_nonempty = Signal()
        out_known = Signal()
        m.d.sync += [out_nonempty.eq(root_nonempty), out_known.eq(known)]
        push = root.valid & out.ready
        root.take(push)
        m.d.comb += self.lookup_column.eq(root.index[:column_bits])
        out.feed(push, Cat(root.index[:column_bits], self.lookup_value), root.last)
        taken = self.o.valid & self.o.ready
        out.take(taken)
        m.d.comb += [
            self.o.valid.eq(out.valid),
            self.o.payload.eq(Cat(out.index, out.last)),
            self.done.eq(out.finished | (out_known & ~out_nonempty)),
        ]
        for skid in skids:
            skid.elaborate(m)
        return m


class _Skid:
    """A stage register: main (the head) and skid; ``ready`` is the skid being empty, so a
    full stage does not take an item in the cycle its head is taken. ``finished``: its last
    item was taken."""

    def __init__(self, name: str, bits: int):
        self.valid = Signal(name=f"{name}_valid")
        self.index = Signal(bits, name=f"{name}_index")
        self.last = Signal(name=f"{name}_last")
        self.skid_valid = Signal(name=f"{name}_skid_valid")
        self.skid_index = Signal(bits, name=f"{name}_skid_index")
        self.skid_last = Signal(name=f"{name}_skid_last")
        self.finished = Signal(name=f"{name}_finished")
        self.ready = ~self.skid_valid
        self._strobes = []

    def feed(self, enable, index, last):
        """The item pushed when ``enable`` (which implies ``ready``)."""
        self._feed = (enable, index, last)

    def take(self, strobe):
        """A consumer takes the head when ``strobe``; at most one consumer's is high."""
        self._strobes.append(strobe)

    def elaborate(self, m):
        enable, index, last = self._feed
        taken = Cat(*self._strobes).any() if self._strobes else Const(0, 1)
        with m.If(taken & self.last):
            m.d.sync += self.finished.eq(1)
        with m.If(taken):
            with m.If(self.skid_valid):
                m.d.sync += [self.index.eq(self.skid_index), self.last.eq(self.skid_last),
                             self.skid_valid.eq(0)]
            with m.Elif(enable):
                m.d.sync += [self.index.eq(index), self.last.eq(last)]
            with m.Else():
                m.d.sync += self.valid.eq(0)
        with m.Elif(enable):
            with m.If(self.valid):
                m.d.sync += [self.skid_valid.eq(1), self.skid_index.eq(index),
                             self.skid_last.eq(last)]
            with m.Else():
                m.d.sync += [self.valid.eq(1), self.index.eq(index), self.last.eq(last)]
