"""Energy-aware pruning (Yang, Chen and Sze, CVPR 2017) on accel's own estimate, and the
magnitude pruning it is compared with, at the same accuracy budget (``accel prune``).

Two kinds of network, two kinds of pruning (``_WeightFlow``, ``_NeuronFlow``):
  weights  a float chain of dense layers with ReLU between them (the shipped ``mlp``), pruned
           weight by weight for an engine of sparse, shared weights (EIE);
  neurons  the binarized bnn-mlp, pruned neuron by neuron for an engine of binary weights
           (FINN): a hidden neuron out shrinks its layer's MH and the next layer's MW, so the
           weight memories and the cycles. Its latent float weights and batch-norm statistics
           come from retraining its recipe (``accel.train.structured.parent``) on the fit part.
Every decision is cross-validated (``FOLDS`` stratified folds of the training images, never
the test images): each fold has its own parent, trained without the fold's images (the file's
recipe retrained; a float file accel has no recipe for is every fold's parent), and the search
carries one network per fold, each scored on its own fold's images, pooled. The decisions are
then replayed on the final network, whose parent is the file (float) or the recipe retrained
on all the training images (binarized). The procedure, for either criterion:

1. **Reference.** The parents' cross-validated accuracy, and the final parent's on the test
   split (reported only). The energy per layer of the unpruned final network as the hardware
   runs it (EIE: ``hardware_network``, 16-bit fixed-point activations, 16-entry codebooks, as
   mlp-sparse), from ``accel.hw.evaluate.estimate``: the architecture's counted events priced
   by the technology table, never a weight or MAC count.
2. **Order.** ``energy`` visits the layers by that energy, highest first (the paper);
   ``magnitude`` by weight count, largest first (Deep Compression prunes where the weights are).
3. **Per layer**, the largest sparsity on a grid (1 % of the weights, or ``NEURON_STEP``
   neurons; by bisection) at which the fold networks, with this layer pruned on top of the
   layers already decided, keep their cross-validated accuracy within the budget of the
   reference; each network is pruned on its own fit images:
     energy     magnitude pruning to that sparsity; then *restoring*: the pruned weights
                (neurons) whose removal damages the layer's output map (the next layer's
                accumulators) most swap places with the kept ones that damage it least, up to
                ``RESTORE_SHARE`` of the kept count; then a closed-form least-squares refit:
                weights: every row's kept weights and bias on the layer's original output (the
                unpruned parent's pre-activations), zero pattern fixed; neurons: the next
                layer's batch-norm mean by the removed neurons' mean contribution (binary
                weights cannot move; the bias is the one free parameter);
     magnitude  magnitude pruning to that sparsity, nothing else (neurons: the latent
                incoming weights' L1 norm, Li et al. 2017).
4. **Global fine-tuning** with torch (``accel.train``), pruning pattern fixed, on each
   network's fit images; then the hardware network (EIE: k-means sharing of the kept weights,
   entry 0 = the pruned weight; FINN: the thresholds folded from batch-norm). Fine-tuning is
   kept unless it lowers the cross-validated accuracy. If the folds' final networks miss the
   budget, steps 3-4 run again with a decision budget ``RETRY_STEP_POINTS`` tighter.
5. **Result**: energy per layer and test accuracy of the final hardware network, with the
   folds' cross-validated accuracy.
Both criteria share steps 1, 3's search, 4 and 5, so their difference is the energy order,
the restore and the refit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from accel.compress.prune import magnitude_mask
from accel.errors import ConfigError
from accel.nn import golden
from accel.nn.ir import Dense, Network

CRITERIA = ("energy", "magnitude")
FINE_STEP = 0.01
MAX_SPARSITY = 0.99
# How many of the kept weights the restore step may swap. The paper's own restore rule was not
# read (field notes, energy-aware pruning); a quarter was set by hand, not tuned.
RESTORE_SHARE = 0.25
RIDGE = 1e-6  # relative to the Gram matrix's mean diagonal: keeps the refit well posed
HARDWARE_WEIGHT_BITS = 4  # 16-entry codebooks: what EIE's 4-bit weight indices address
HARDWARE_ACTIVATION_BITS = 16
# Decisions are cross-validated over this many folds of the training images: 287 held-out
# images (one fifth of the digits' training split) resolve an accuracy drop only to about a
# point, the size of the budget itself; five folds validate on all 1438.
FOLDS = 5
# After a search whose final network misses the budget, the next searches with a decision
# budget this much tighter (percentage points).
RETRY_STEP_POINTS = 0.25


@dataclass
class LayerChoice:
    name: str
    visited: int  # 0 = first; -1 = not pruned itself (a binarized net's output layer)
    weights: int
    kept: int
    sparsity: float
    validation_accuracy: float | None  # cross-validated at the chosen sparsity (None: not visited)
    next_sparsity: float | None  # the first grid step that broke the budget
    next_accuracy: float | None
    energy_before_uj: float
    energy_after_uj: float


@dataclass
class PruneReport:
    criterion: str
    arch: str
    options: dict
    budget_points: float
    order: list[str]
    layers: list[LayerChoice]
    reference_validation_accuracy: float  # the parents', cross-validated
    reference_test_accuracy: float | None  # None: no test images (the user's --data)
    validation_accuracy: float  # the folds' final hardware networks, cross-validated
    test_accuracy: float | None
    energy_before_uj: float
    energy_after_uj: float
    decision_budget_points: float  # the search's own budget (tighter after a retry)
    budget_met: bool  # the folds' final networks hold the budget in cross-validation
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def test_drop_points(self) -> float | None:
        if self.test_accuracy is None:
            return None
        return 100.0 * (self.reference_test_accuracy - self.test_accuracy)

    @property
    def validation_drop_points(self) -> float:
        return 100.0 * (self.reference_validation_accuracy - self.validation_accuracy)

    def to_json(self) -> dict:
        data = asdict(self)
        data["test_drop_points"] = self.test_drop_points
        data["validation_drop_points"] = self.validation_drop_points
        return data


@dataclass
class Fold:
    """One fold of the cross-validation: the images its parent is trained and refitted on,
    and the images it is validated on (which it has never seen)."""

    x_fit: np.ndarray
    y_fit: np.ndarray
    x_validation: np.ndarray
    y_validation: np.ndarray


@dataclass
class PruneData:
    """The images of one pruning run: the training images (every decision is taken on folds
    of them, by cross-validation; the final network is fitted on all of them) and the test
    images (reported only). ``training_split``: these are the images the shipped models were
    trained on (the digits training split), so a shipped model is no fair judge of them and
    each fold retrains its own parent."""

    x_train: np.ndarray
    y_train: np.ndarray
    folds: list[Fold]
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    source: str
    training_split: bool

    @property
    def validation_images(self) -> int:
        return sum(len(fold.y_validation) for fold in self.folds)

    @classmethod
    def digits(cls, folds: int = FOLDS) -> PruneData:
        from accel.nn.data import digits_split

        split = digits_split()
        return cls(split.x_train, split.y_train, _folds(split.x_train, split.y_train, folds,
                                                        "the digits training split"),
                   split.x_test, split.y_test, "the digits split", True)

    @classmethod
    def from_arrays(cls, x: np.ndarray, y: np.ndarray, source: str,
                    folds: int = FOLDS) -> PruneData:
        """A user's labelled images, all for decisions (by cross-validation) and fitting; no
        test figures (there is no image left that no decision has seen)."""
        x, y = np.asarray(x), np.asarray(y)
        return cls(x, y, _folds(x, y, folds, source), None, None, source, False)


def _folds(x: np.ndarray, y: np.ndarray, folds: int, source: str) -> list[Fold]:
    """``folds`` stratified folds (``accel.nn.data.stratified_folds``); one "fold" is the
    single held-out fifth (``VALIDATION_FRACTION``), a quicker and noisier decision."""
    from accel.nn.data import (VALIDATION_FRACTION, VALIDATION_SEED, stratified_folds,
                               stratified_split_indices)

    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 1:
        raise ConfigError(f"--folds must be a positive integer, got {folds!r}")
    try:
        if folds == 1:
            fit, held = stratified_split_indices(y, VALIDATION_FRACTION, VALIDATION_SEED)
            parts = [(fit, held)]
        else:
            every = np.arange(len(y))
            parts = [(np.setdiff1d(every, held), held)
                     for held in stratified_folds(y, folds, VALIDATION_SEED)]
    except ConfigError as error:
        raise ConfigError(f"{source}: too few images for {folds} validation fold"
                          f"{'s' * (folds != 1)} ({error})") from None
    return [Fold(x[fit], y[fit], x[held], y[held]) for fit, held in parts]


def check_prunable(network: Network) -> list[Dense]:
    """The dense layers of a network ``accel prune`` takes: a float chain of dense layers with
    ReLU between them (pruned weight by weight), or the shipped binarized bnn-mlp (pruned
    neuron by neuron); anything else is a one-line error."""
    chain = [layer.op for layer in network.layers]
    dense = [layer for layer in network.layers if isinstance(layer, Dense)]
    if chain == ["dense", "relu"] * (len(chain) // 2) + ["dense"] and all(
            layer.weight_type.is_float for layer in dense):
        return dense
    binary = ["quant"] + ["dense", "multithreshold"] * (len(dense) - 1) + ["dense"]
    if chain == binary and all(layer.weight_type.bipolar for layer in dense):
        if network.metadata.get("reference_model") != "bnn-mlp":
            raise ConfigError(f"{network.name}: structured pruning of a binarized network "
                              "needs its latent float weights, which a QONNX file does not "
                              "carry; accel retrains the shipped bnn-mlp by its recipe to get "
                              "them (other binarized files are not supported yet)")
        return dense
    raise ConfigError(f"accel prune takes a float chain of dense layers with ReLU between them "
                      f"(like the shipped mlp) or the binarized bnn-mlp; {network.name} is "
                      f"{' -> '.join(chain)}")


def hardware_network(network: Network, calibration: np.ndarray, seed: int) -> Network:
    """``network`` as EIE runs it: its zero weights stay pruned, the rest share a 16-entry
    codebook of 16-bit values; activations are 16-bit fixed point (``compress_network``)."""
    from accel.compress.network import compress_network

    masks = {layer.name: np.asarray(layer.weights) != 0
             for layer in network.layers if isinstance(layer, Dense)}
    return compress_network(network, calibration, weight_bits=HARDWARE_WEIGHT_BITS,
                            activation_bits=HARDWARE_ACTIVATION_BITS, seed=seed, masks=masks)


class Target:
    """The architecture configuration a network is pruned for: energy per layer of a hardware
    network by the cycle model."""

    def __init__(self, arch_name: str, options, *, clock_mhz: float, tech="45nm"):
        """``options``: the architecture's options dataclass, or a dict of it."""
        import dataclasses

        from accel.hw.architecture import options_from_mapping
        from accel.hw.registry import architecture

        self.arch = architecture(arch_name)
        self.arch_name = arch_name
        self.parsed = (options if isinstance(options, self.arch.Options) else
                       options_from_mapping(self.arch.Options, options))
        self.options = dataclasses.asdict(self.parsed)
        self.clock_mhz = clock_mhz
        self.tech = tech

    def configure(self, network: Network):
        return self.arch.configure(network, self._options_for(network), clock_mhz=self.clock_mhz)

    def _options_for(self, network: Network):
        """A FINN folding given per layer follows the network as neurons are pruned: each
        layer keeps the largest PE and SIMD not above the given ones that divide its new MH
        and MW (a frame-rate target needs nothing: the auto-folder sees the pruned widths)."""
        folding = getattr(self.parsed, "folding", None)
        if self.arch_name != "finn" or folding is None:
            return self.parsed
        import dataclasses

        from accel.hw.finn.mapping import load_folding

        shapes = {layer.name: layer.weights.shape for layer in network.layers
                  if isinstance(layer, Dense)}
        fitted = {}
        for name, fold in load_folding(folding).items():
            rows, cols = shapes.get(name, (None, None))
            fitted[name] = dict(fold)
            if rows is not None:
                fitted[name]["pe"] = _largest_divisor(rows, fold.get("pe", 1))
                fitted[name]["simd"] = _largest_divisor(cols, fold.get("simd", 1))
        return dataclasses.replace(self.parsed, folding=fitted)

    def run(self, network: Network, x: np.ndarray, y: np.ndarray, *, simulate: bool = False):
        """(SimResult, energy per layer name in uJ) of ``network`` on ``x``."""
        from accel.hw import evaluate
        from accel.nn.evaluate import network_inputs

        mapping = self.configure(network)
        run = evaluate.simulate if simulate else evaluate.estimate
        result = run(self.arch, mapping, network, network_inputs(network, x, "pruning data"),
                     y, model=network.name, clock_mhz=self.clock_mhz, tech=self.tech)
        return result, energy_by_layer(mapping, result)


def _largest_divisor(value: int, limit: int) -> int:
    return max(d for d in range(1, min(value, limit) + 1) if value % d == 0)


def energy_by_layer(mapping, result) -> dict[str, float]:
    """The result's energy per compute layer, by the network's layer names (the architectures
    label layer ``i`` of their mapping ``l<i>``); anything else (FIFOs between layers, the
    clock energy of registers all layers share) under ``other``."""
    labels = {f"l{index}": layer.name for index, layer in enumerate(mapping.layers)}
    energy: dict[str, float] = {}
    for label, value in result.to_json()["energy_by_layer_uj"].items():
        name = labels.get(label, "other")
        energy[name] = energy.get(name, 0.0) + float(value)
    return energy


def _accuracy(network: Network, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(golden.predict(network, x) == y))


def _replace(network: Network, name: str, weights: np.ndarray, bias) -> Network:
    layers = [Dense(layer.name, weights=weights, weight_type=layer.weight_type, bias=bias)
              if layer.name == name else layer for layer in network.layers]
    pruned = Network(network.name, network.input_shape, layers, network.input_type)
    pruned.metadata = dict(network.metadata)
    return pruned


def _restore(mask: np.ndarray, damage: np.ndarray, share: float) -> np.ndarray:
    """Swap up to ``share`` of the kept count: the pruned weights of the largest output damage
    in, the kept ones of the smallest out, while the swap lowers the damage."""
    flat_mask, flat_damage = mask.ravel().copy(), damage.ravel()
    kept = np.flatnonzero(flat_mask)
    pruned = np.flatnonzero(~flat_mask)
    swaps = min(round(share * len(kept)), len(kept), len(pruned))
    if swaps == 0:
        return mask
    worst_pruned = pruned[np.argsort(-flat_damage[pruned], kind="stable")[:swaps]]
    least_kept = kept[np.argsort(flat_damage[kept], kind="stable")[:swaps]]
    useful = flat_damage[worst_pruned] > flat_damage[least_kept]
    flat_mask[worst_pruned[useful]] = True
    flat_mask[least_kept[useful]] = False
    return flat_mask.reshape(mask.shape)


def _refit(mask: np.ndarray, x: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per output row, the kept weights and the bias minimizing the squared error to
    ``target`` (n, rows) from inputs ``x`` (n, cols); pruned weights stay zero. One small
    normal-equation solve per row, on that row's kept columns and the bias."""
    augmented = np.hstack([x, np.ones((len(x), 1))])
    gram = augmented.T @ augmented
    ridge = RIDGE * float(np.mean(np.diag(gram)))
    moments = augmented.T @ target
    rows, cols = mask.shape
    weights = np.zeros((rows, cols))
    bias = np.zeros(rows)
    for row in range(rows):
        columns = np.append(np.flatnonzero(mask[row]), cols)  # the bias column is always fit
        system = gram[np.ix_(columns, columns)] + ridge * np.eye(len(columns))
        solution = np.linalg.solve(system, moments[columns, row])
        weights[row, columns[:-1]] = solution[:-1]
        bias[row] = solution[-1]
    return weights, bias


def _layer_input(network: Network, name: str, x: np.ndarray) -> np.ndarray:
    """What dense layer ``name`` receives from ``network`` on ``x`` (float64)."""
    index = next(i for i, layer in enumerate(network.layers) if layer.name == name)
    if index == 0:
        return np.asarray(x, dtype=np.float64)
    return np.asarray(golden.run(network, x, return_all=True)[index - 1], dtype=np.float64)


def _layer_output(network: Network, name: str, x: np.ndarray) -> np.ndarray:
    index = next(i for i, layer in enumerate(network.layers) if layer.name == name)
    return np.asarray(golden.run(network, x, return_all=True)[index], dtype=np.float64)


class _LayerPruner:
    """Candidate sparsities of one layer's weights, on top of the layers already pruned (a
    state is the float network); ``original`` is the unpruned parent whose output the refit
    follows, ``x_fit`` the images the refit is fitted on."""

    def __init__(self, criterion: str, current: Network, original: Network, name: str,
                 x_fit: np.ndarray):
        self.grid = SPARSITY_GRID
        self.criterion, self.current, self.name = criterion, current, name
        self.layer = next(layer for layer in current.layers if layer.name == name)
        if criterion == "energy":
            self.inputs = _layer_input(current, name, x_fit)
            self.target = _layer_output(original, name, x_fit)
            self.energy_per_input = (self.inputs ** 2).sum(axis=0)

    def candidate(self, sparsity: float) -> Network:
        weights = np.asarray(self.layer.weights, dtype=np.float64)
        mask = magnitude_mask(weights, sparsity)
        if self.criterion == "magnitude":
            return _replace(self.current, self.name, np.where(mask, weights, 0.0),
                            self.layer.bias)
        damage = weights ** 2 * self.energy_per_input[None, :]
        mask = _restore(mask, damage, RESTORE_SHARE)
        refit, bias = _refit(mask, self.inputs, self.target)
        return _replace(self.current, self.name, refit, bias)

    @staticmethod
    def network_of(state: Network) -> Network:
        return state


class _NeuronPruner:
    """Candidate sparsities of one hidden layer's neurons of a binarized MLP, in steps of
    ``NEURON_STEP`` neurons, on top of the layers already pruned (a state is the torch model
    and its network). Magnitude keeps the neurons of the largest latent incoming L1 norm;
    energy-aware then restores the removed neurons that damage the next layer's accumulators
    most (``fan_out * sum_n (a_nj - mean_j)**2``: what no bias can absorb) for kept ones that
    damage them least, and refits the next layer's batch-norm mean to the removed neurons'
    mean contribution (both measured on ``x_fit``)."""

    def __init__(self, criterion: str, current, layer_index: int, name: str, x_fit: np.ndarray,
                 metadata: dict):
        from accel.train import structured

        self.structured = structured
        self.criterion, self.current, self.name = criterion, current, name
        self.index, self.metadata = layer_index, metadata
        model = current[0]
        self.width = model.sizes[layer_index + 1]
        self.grid = [round(1.0 - kept / self.width, 6)
                     for kept in range(self.width - NEURON_STEP, NEURON_STEP - 1, -NEURON_STEP)]
        self.magnitude = structured.incoming_l1(model, layer_index)
        outputs = structured.hidden_outputs(model, x_fit)[layer_index]
        self.mean = outputs.mean(axis=0)
        fan_out = model.sizes[layer_index + 2]
        self.damage = fan_out * ((outputs - self.mean) ** 2).sum(axis=0)

    def candidate(self, sparsity: float):
        kept = self.width - round(sparsity * self.width)
        order = np.argsort(-self.magnitude, kind="stable")
        mask = np.zeros(self.width, dtype=bool)
        mask[order[:kept]] = True
        model = self.current[0]
        if self.criterion == "energy":
            mask = _restore(mask, self.damage, RESTORE_SHARE)
            pruned = self.structured.without_neurons(model, self.index, np.flatnonzero(mask),
                                                     self.mean)
        else:
            pruned = self.structured.without_neurons(model, self.index, np.flatnonzero(mask))
        return pruned, self.structured.to_network(pruned, self.current[1].name, self.metadata)

    @staticmethod
    def network_of(state) -> Network:
        return state[1]


SPARSITY_GRID = [round(FINE_STEP * k, 6) for k in range(1, round(MAX_SPARSITY / FINE_STEP) + 1)]
NEURON_STEP = 8  # neurons removed together: keeps MH and MW multiples of 8 for the folding


def _pooled_accuracy(networks: list[Network], folds: list[Fold]) -> float:
    """The cross-validated accuracy: each fold's network on that fold's validation images,
    pooled (correct over all validated images)."""
    correct = sum(int(np.sum(golden.predict(network, fold.x_validation) == fold.y_validation))
                  for network, fold in zip(networks, folds, strict=True))
    return correct / sum(len(fold.y_validation) for fold in folds)


def _search(pruners: list, floor: float, folds: list[Fold]):
    """Bisection on the pruners' grid of sparsities (one pruner per fold, the same grid) for
    the largest whose cross-validated accuracy holds ``floor`` (sparsity 0, the layer as it
    is, holds by construction); assumes accuracy falls as sparsity rises, as it does for one
    layer's pruning. (the folds' chosen states, sparsity, its accuracy, the grid step above
    it that broke the budget, that step's accuracy)."""
    grid = pruners[0].grid
    chosen, chosen_accuracy = [pruner.current for pruner in pruners], None
    low, high = -1, len(grid)  # grid[low] holds, grid[high] breaks
    failed_accuracy = None
    while high - low > 1:
        middle = (low + high) // 2
        states = [pruner.candidate(grid[middle]) for pruner in pruners]
        accuracy = _pooled_accuracy([pruner.network_of(state)
                                     for pruner, state in zip(pruners, states)], folds)
        if accuracy >= floor:
            low, chosen, chosen_accuracy = middle, states, accuracy
        else:
            high, failed_accuracy = middle, accuracy
    if chosen_accuracy is None:
        chosen_accuracy = _pooled_accuracy([pruner.network_of(state)
                                            for pruner, state in zip(pruners, chosen)], folds)
    sparsity = grid[low] if low >= 0 else 0.0
    failed = grid[high] if high < len(grid) else None
    return chosen, sparsity, chosen_accuracy, failed, failed_accuracy


@dataclass
class _Member:
    """One network the search carries: a fold's (its parent trained without the fold's
    validation images, scored on them) or the final one (``fold`` None: its parent and every
    refit on all the training images; it only replays the folds' decisions)."""

    start: object  # the flow's state of the unpruned parent
    parent: Network  # that parent as it is scored (float, or binarized)
    x_fit: np.ndarray
    y_fit: np.ndarray
    fold: Fold | None


# Parents already trained in this process, by (network, seed, images): a run with --compare,
# and the tests, train the same parents more than once otherwise (training is deterministic).
_TRAINED_PARENTS: dict[tuple, object] = {}


def _trained(kind: str, network: Network, x: np.ndarray, y: np.ndarray, make):
    import hashlib

    digest = hashlib.sha256(np.ascontiguousarray(x).tobytes())
    digest.update(np.ascontiguousarray(y).tobytes())
    key = (kind, network.name, tuple(sorted(network.metadata.items())), digest.hexdigest())
    if key not in _TRAINED_PARENTS:
        _TRAINED_PARENTS[key] = make()
    return _TRAINED_PARENTS[key]


class _WeightFlow:
    """Unstructured pruning of a float dense chain, for engines of sparse shared weights
    (EIE). A state is the float network. The final network's parent is the file; each fold's
    is the file's recipe retrained without the fold (the shipped mlp, on its own training
    split), or else the file itself."""

    kind = "weights"

    def __init__(self, network: Network, data: PruneData, seed: int):
        from accel.train import retrain_parent

        self.seed = seed
        self.prunable = [layer.name for layer in check_prunable(network)]
        self.final = _Member(network, network, data.x_train, data.y_train, None)
        parents = [None] * len(data.folds)
        if data.training_split:
            parents = [_trained("weights", network, fold.x_fit, fold.y_fit,
                                lambda fold=fold: retrain_parent(network, fold.x_fit,
                                                                 fold.y_fit))
                       for fold in data.folds]
        if all(parent is not None for parent in parents):
            self.note = (f"the file; each of the {len(parents)} folds' decisions on the file's "
                         f"recipe and seed retrained without that fold's images")
        else:
            parents = [network] * len(data.folds)
            self.note = ("the file, for every fold" + (
                ": accel has no recipe to retrain it without each fold's images, so if it "
                "was trained on them its validation figures are optimistic"
                if data.training_split else ""))
        self.folds = [_Member(parent, parent, fold.x_fit, fold.y_fit, fold)
                      for parent, fold in zip(parents, data.folds)]

    def reference(self, member: _Member) -> Network:
        return hardware_network(member.parent, member.x_fit, self.seed)

    def pruner(self, criterion: str, state, name: str, member: _Member):
        return _LayerPruner(criterion, state, member.parent, name, member.x_fit)

    def finetune(self, state, member: _Member):
        from accel.train import finetune_pruned

        return finetune_pruned(state, member.x_fit, member.y_fit, self.seed)

    def hardware(self, state, member: _Member) -> Network:
        return hardware_network(state, member.x_fit, self.seed)


class _NeuronFlow:
    """Structured pruning of a binarized MLP's hidden neurons, for engines of binary weights
    (FINN). A state is (torch model, its network); every parent is the file's recipe
    retrained (``structured.parent``): the final one on all the training images, each fold's
    without the fold's."""

    kind = "neurons"

    def __init__(self, network: Network, data: PruneData, seed: int):
        from accel.train import structured

        self.structured, self.seed = structured, seed
        dense = [layer.name for layer in network.layers if isinstance(layer, Dense)]
        self.prunable = dense[:-1]  # the output layer's neurons are the classes

        def member(x, y, fold):
            model, parent, note = _trained("neurons", network, x, y,
                                           lambda: structured.parent(network, x, y))
            return _Member((model, parent), parent, x, y, fold), note

        self.final, note = member(data.x_train, data.y_train, None)
        self.folds = [member(fold.x_fit, fold.y_fit, fold)[0] for fold in data.folds]
        self.note = (f"{note}; each of the {len(self.folds)} folds' decisions on the recipe "
                     "retrained without that fold's images")

    def reference(self, member: _Member) -> Network:
        return member.parent

    def pruner(self, criterion: str, state, name: str, member: _Member):
        return _NeuronPruner(criterion, state, self.prunable.index(name), name, member.x_fit,
                             member.parent.metadata)

    def finetune(self, state, member: _Member):
        import copy

        # fine-tuning trains in place: an unpruned state is the (shared) parent model itself
        model = self.structured.finetune(copy.deepcopy(state[0]), member.x_fit, member.y_fit,
                                         self.seed)
        return model, self.structured.to_network(model, member.parent.name,
                                                 member.parent.metadata)

    def hardware(self, state, member: _Member) -> Network:
        return state[1]


def _binarized(network: Network) -> bool:
    dense = [layer for layer in network.layers if isinstance(layer, Dense)]
    return bool(dense) and all(layer.weight_type.bipolar for layer in dense)


def _prune_layers(criterion: str, flow, order: list[str], floor: float, finetune: bool, say):
    """Steps 3 and 4: every decision on the folds (each layer's sparsity, whether fine-tuning
    is kept), replayed on the final member. (the final hardware network, the folds' final
    cross-validated accuracy, per layer name: visited, sparsity, cross-validated accuracy,
    first failing sparsity, its accuracy)."""
    from threadpoolctl import threadpool_limits

    folds = [member.fold for member in flow.folds]
    states, final_state, choices = [member.start for member in flow.folds], flow.final.start, {}
    for visited, name in enumerate(order):
        pruners = [flow.pruner(criterion, state, name, member)
                   for state, member in zip(states, flow.folds)]
        with threadpool_limits(1, user_api="blas"):  # see pyproject.toml: small solves
            states, sparsity, accuracy, failed, failed_accuracy = _search(pruners, floor, folds)
            if sparsity > 0:
                final_state = flow.pruner(criterion, final_state, name,
                                          flow.final).candidate(sparsity)
        choices[name] = (visited, sparsity, accuracy, failed, failed_accuracy)
        say(f"{criterion}: {name} pruned to {100 * sparsity:.0f} % (cross-validated "
            f"{100 * accuracy:.2f} %)")
    fold_networks = [flow.hardware(state, member) for state, member in zip(states, flow.folds)]
    final = flow.hardware(final_state, flow.final)
    if finetune:
        # fine-tuning is there to win accuracy back; where it loses some in cross-validation
        # (a binarized net's batch-norm re-estimated on few images can), it is not kept
        tuned = [flow.hardware(flow.finetune(state, member), member)
                 for state, member in zip(states, flow.folds)]
        kept = _pooled_accuracy(tuned, folds) >= _pooled_accuracy(fold_networks, folds)
        if kept:
            fold_networks = tuned
            final = flow.hardware(flow.finetune(final_state, flow.final), flow.final)
        say(f"{criterion}: fine-tuned" + ("" if kept else
                                          " (not kept: it lost cross-validated accuracy)"))
    return final, _pooled_accuracy(fold_networks, folds), choices


def prune(network: Network, target: Target, *, criterion: str = "energy",
          max_accuracy_drop: float = 1.0, data: PruneData | None = None, seed: int = 0,
          finetune: bool = True, progress=None) -> tuple[Network, PruneReport]:
    """The procedure of the module documentation: (the pruned hardware network, its report).
    ``max_accuracy_drop`` is in percentage points; ``progress(text)`` hears each step."""
    import copy
    import time

    start = time.perf_counter()
    if criterion not in CRITERIA:
        raise ConfigError(f"unknown criterion {criterion!r}: {' or '.join(CRITERIA)}")
    if isinstance(max_accuracy_drop, bool) or not isinstance(max_accuracy_drop, (int, float)) \
            or not 0 <= max_accuracy_drop < 100:
        raise ConfigError(f"the accuracy budget must be from 0 to 100 percentage points, got "
                          f"{max_accuracy_drop!r}")
    dense = check_prunable(network)
    data = data or PruneData.digits()
    say = progress or (lambda text: None)
    # a configuration the target cannot take fails before any parent is trained
    target.configure(network if _binarized(network) else
                     hardware_network(network, data.x_train, seed))

    say(f"{criterion}: training the parents of {len(data.folds)} folds")
    flow = (_NeuronFlow if _binarized(network) else _WeightFlow)(network, data, seed)
    folds = [member.fold for member in flow.folds]
    reference = flow.reference(flow.final)
    reference_val = _pooled_accuracy([member.parent for member in flow.folds], folds)
    reference_test = (_accuracy(flow.final.parent, data.x_test, data.y_test)
                      if data.x_test is not None else None)
    report_x, report_y = ((data.x_test, data.y_test) if data.x_test is not None else
                          (data.x_train, data.y_train))
    _, energy_before = target.run(reference, report_x, report_y)
    prunable = [layer for layer in dense if layer.name in flow.prunable]
    if criterion == "energy":
        _, order_energy = target.run(reference, data.x_train, data.y_train)
        order = sorted((layer.name for layer in prunable), key=lambda n: -order_energy[n])
    else:
        order = [layer.name for layer in sorted(prunable, key=lambda layer: -layer.weights.size)]
    say(f"{criterion}: layers in the order {', '.join(order)}")

    # The budget holds for the folds' final hardware networks in cross-validation: when
    # fine-tuning and sharing lose what the float search kept, the search runs again with a
    # tighter decision budget.
    budget = max_accuracy_drop / 100.0
    decision_budget = budget
    attempts = []
    while True:
        final, final_val, choices = _prune_layers(criterion, flow, order,
                                                  reference_val - decision_budget - 1e-12,
                                                  finetune, say)
        attempts.append({"decision_budget_points": 100 * decision_budget,
                         "validation_accuracy": final_val})
        if final_val >= reference_val - budget - 1e-12 or decision_budget <= 0:
            break
        decision_budget = max(decision_budget - RETRY_STEP_POINTS / 100.0, 0.0)
        say(f"{criterion}: the final networks lost {100 * (reference_val - final_val):.2f} "
            f"points in cross-validation; searching again with a {100 * decision_budget:.2f}-"
            "point budget")
    final = copy.copy(final)  # unpruned, it is a parent the process keeps (_TRAINED_PARENTS)
    final.metadata = {**final.metadata, "pruned_by": f"accel prune --criterion {criterion}",
                      "pruned_for": f"{target.arch_name} {target.options}"}
    _, energy_after = target.run(final, report_x, report_y)
    final_test = (_accuracy(final, data.x_test, data.y_test)
                  if data.x_test is not None else None)
    layers = []
    for layer in dense:
        visited, sparsity, accuracy, failed, failed_accuracy = choices.get(
            layer.name, (-1, 0.0, None, None, None))  # -1: not pruned itself (output neurons)
        weights = next(item.weights for item in final.layers if item.name == layer.name)
        layers.append(LayerChoice(layer.name, visited, int(layer.weights.size),
                                  int(np.count_nonzero(weights)), sparsity, accuracy, failed,
                                  failed_accuracy, energy_before[layer.name],
                                  energy_after[layer.name]))
    report = PruneReport(criterion, target.arch_name, target.options, float(max_accuracy_drop),
                         order, layers, reference_val, reference_test, final_val, final_test,
                         sum(energy_before.values()), sum(energy_after.values()),
                         100 * decision_budget, final_val >= reference_val - budget - 1e-12,
                         time.perf_counter() - start,
                         {"energy_measured_on": "the test split" if data.x_test is not None
                          else "the training images", "data": data.source,
                          "folds": len(data.folds),
                          "validation_images": data.validation_images,
                          "clock_mhz": target.clock_mhz, "finetuned": finetune,
                          "pruned": flow.kind, "parent": flow.note,
                          "widths": {item.name: list(item.weights.shape)
                                     for item in final.layers if isinstance(item, Dense)},
                          "other_energy_before_uj": energy_before.get("other", 0.0),
                          "other_energy_after_uj": energy_after.get("other", 0.0),
                          "searches": attempts})
    return final, report


def _visited_text(choice: LayerChoice) -> str:
    return "-" if choice.visited < 0 else f"{choice.visited + 1}"


def _stop_text(choice: LayerChoice, floor_points: float) -> str:
    if choice.visited < 0:
        return "not pruned (its neurons are the outputs)"
    if choice.next_sparsity is None:
        return f"held the budget up to {100 * MAX_SPARSITY:.0f} %"
    return (f"{100 * choice.next_sparsity:.0f} % gave {100 * choice.next_accuracy:.2f} % "
            f"< {floor_points:.2f} %")


def report_tables(reports: list[PruneReport]):
    """rich Tables: one per report (per layer: order, weights kept, energy before and after),
    and with two reports a comparison (which layers the criteria pruned differently, and
    where each stopped)."""
    from rich.table import Table

    tables = []
    for report in reports:
        table = Table(title=f"accel prune --criterion {report.criterion} on {report.arch} "
                            f"{_options_text(report.options)} (energy per inference on "
                            f"{report.extra['energy_measured_on']})")
        for column in ("layer", "order", "weights kept", "sparsity", "nJ before", "nJ after",
                       "x less"):
            table.add_column(column, justify="left" if column == "layer" else "right",
                             no_wrap=True)
        for choice in sorted(report.layers, key=lambda c: (c.visited < 0, c.visited)):
            table.add_row(choice.name, _visited_text(choice),
                          f"{choice.kept}/{choice.weights}",
                          f"{100 * (1 - choice.kept / max(choice.weights, 1)):.1f} %",
                          f"{1e3 * choice.energy_before_uj:.2f}",
                          f"{1e3 * choice.energy_after_uj:.2f}",
                          _ratio(choice.energy_before_uj, choice.energy_after_uj))
        other_before = report.extra.get("other_energy_before_uj", 0.0)
        if other_before:
            table.add_row("shared", "", "", "", f"{1e3 * other_before:.2f}",
                          f"{1e3 * report.extra.get('other_energy_after_uj', 0.0):.2f}", "")
        table.add_row("total", "", f"{sum(c.kept for c in report.layers)}/"
                                   f"{sum(c.weights for c in report.layers)}", "",
                      f"{1e3 * report.energy_before_uj:.2f}",
                      f"{1e3 * report.energy_after_uj:.2f}",
                      _ratio(report.energy_before_uj, report.energy_after_uj))
        table.caption = (
            f"accuracy: cross-validated on {report.extra['validation_images']} images "
            f"({report.extra['folds']} fold{'s' * (report.extra['folds'] != 1)}) "
            f"{100 * report.validation_accuracy:.2f} % (reference "
            f"{100 * report.reference_validation_accuracy:.2f} %, budget "
            f"{report.budget_points:g} points, searched with "
            f"{report.decision_budget_points:.2f})"
            + ("" if report.test_accuracy is None else
               f"; test {100 * report.test_accuracy:.2f} % (reference "
               f"{100 * report.reference_test_accuracy:.2f} %, {report.test_drop_points:.2f} "
               "points lost)"))
        tables.append(table)
    if len(reports) == 2:
        tables.append(_comparison(*reports))
    return tables


def _comparison(first: PruneReport, second: PruneReport):
    from rich.table import Table

    table = Table(title=f"{first.criterion} vs {second.criterion}: where they differ")
    for column in ("layer", "energy share", f"{first.criterion}: visited, sparsity",
                   f"{second.criterion}: visited, sparsity",
                   f"{first.criterion} stopped: next step",
                   f"{second.criterion} stopped: next step"):
        table.add_column(column, justify="left" if column == "layer" else "right")
    by_name = {choice.name: choice for choice in second.layers}
    floors = [100 * report.reference_validation_accuracy - report.decision_budget_points
              for report in (first, second)]
    for choice in sorted(first.layers, key=lambda c: -c.energy_before_uj):
        other = by_name[choice.name]
        share = choice.energy_before_uj / first.energy_before_uj
        table.add_row(choice.name, f"{100 * share:.1f} %",
                      f"{_visited_text(choice)}, {100 * choice.sparsity:.0f} %",
                      f"{_visited_text(other)}, {100 * other.sparsity:.0f} %",
                      _stop_text(choice, floors[0]), _stop_text(other, floors[1]))
    table.caption = (f"energy per inference: {first.criterion} "
                     f"{1e3 * first.energy_after_uj:.2f} nJ, {second.criterion} "
                     f"{1e3 * second.energy_after_uj:.2f} nJ "
                     f"({_ratio(second.energy_after_uj, first.energy_after_uj)} less with "
                     f"{first.criterion}); sparsities are the search's on the float network, "
                     "stops in cross-validation")
    return table


def _ratio(before: float, after: float) -> str:
    return f"{before / after:.2f}x" if after > 0 else "-"


def _options_text(options: dict) -> str:
    def text(key, value):
        if key == "folding" and isinstance(value, dict):
            return "folding " + ", ".join(f"{name} {fold.get('pe', 1)}x{fold.get('simd', 1)}"
                                          for name, fold in value.items())
        return f"{key}={value}"
    return " ".join(text(key, value) for key, value in sorted(options.items())
                    if value is not None)


__all__ = ["CRITERIA", "LayerChoice", "PruneData", "PruneReport", "Target", "check_prunable",
           "energy_by_layer", "hardware_network", "prune"]
