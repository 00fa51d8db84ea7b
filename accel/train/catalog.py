"""The reference models: names, what each one is, and the accuracy each must reach.

No torch here: the catalog is read by tests and by the CLI without training anything.
Accuracies are fractions of the fixed digits test split (``accel.nn.data.digits_split()``),
measured by the golden model (``accel.nn.golden.predict``) on the converted integer network.
"""

from __future__ import annotations

from dataclasses import dataclass

from accel.errors import ConfigError


@dataclass(frozen=True)
class ReferenceModel:
    """``target``: the lowest acceptable test accuracy. ``relative_to``/``margin``: the model
    must also lie within ``margin`` of the named model's accuracy (mlp-sparse against mlp)."""

    name: str
    description: str
    target: float
    relative_to: str | None = None
    margin: float = 0.0

    def required(self, accuracies: dict[str, float] | None = None) -> float:
        """The accuracy this model must reach, given the other models' accuracies."""
        required = self.target
        if self.relative_to is not None and accuracies and self.relative_to in accuracies:
            required = max(required, accuracies[self.relative_to] - self.margin)
        return required

    def target_text(self) -> str:
        text = f">= {100 * self.target:.1f}%"
        if self.relative_to is not None:
            text += f" and within {100 * self.margin:.0f} point of {self.relative_to}"
        return text


REFERENCE_MODELS: dict[str, ReferenceModel] = {model.name: model for model in (
    ReferenceModel(
        "mlp", "float32 MLP 64-256-128-10 with ReLU; float input, no quantizers", 0.97),
    ReferenceModel(
        "mlp-sparse",
        "the mlp compressed for EIE (Deep Compression): >= 90% of weights pruned by iterative "
        "magnitude pruning with retraining, 16-entry shared weights per layer (4-bit indices, "
        "entry 0 = 0) stored as 16-bit fixed point, 16-bit fixed-point activations",
        0.96, relative_to="mlp", margin=0.01),
    ReferenceModel(
        "bnn-mlp",
        "FINN-style binarized MLP 64-128-128-10: 8-bit input, bipolar weights, batch-norm + "
        "sign folded into one threshold per neuron, raw integer output",
        0.95),
    ReferenceModel(
        "bnn-cnv",
        "FINN-style binarized CNN on 1x8x8: 8-bit input, conv3x3 (valid) 32 and 32 channels, each "
        "with batch-norm + sign folded into thresholds, max-pool 2, dense 128 + threshold, dense "
        "10 (raw integer output); bipolar weights throughout",
        0.95),
    ReferenceModel(
        "bwn-cnn",
        "YodaNN-style binary-weight CNN: bipolar weights (power-of-two layer scales), signed "
        "12-bit fixed-point activations; conv3x3 (padding 1) 32, 32 (+ max-pool 2), 64 "
        "(+ max-pool 2) channels, each with bias, ReLU and 12-bit requantization; dense 10 with "
        "bias",
        0.96),
)}


def reference_model(name: str) -> ReferenceModel:
    try:
        return REFERENCE_MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown reference model {name!r}; choose one of "
                          f"{', '.join(REFERENCE_MODELS)}") from None
