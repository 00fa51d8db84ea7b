"""``train`` and ``train_command``: the entry points of training (torch is imported on use)."""

from __future__ import annotations

import numbers
import time
from pathlib import Path

from accel.errors import ConfigError
from accel.nn.ir import Network
from accel.train.catalog import reference_model

# reference model name -> function in accel.train.recipes
RECIPES = {"mlp": "mlp", "mlp-sparse": "mlp_sparse", "bnn-mlp": "bnn_mlp",
           "bnn-cnv": "bnn_cnv", "bwn-cnn": "bwn_cnn"}


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _import_training():
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise ConfigError("training needs torch: pip install 'accel[train]'") from exc
    from accel.train import common, recipes

    return common, recipes


def _shipped_accuracies() -> dict[str, float]:
    from accel.nn import zoo

    accuracies = {}
    for name in zoo.shipped_models():
        try:
            accuracies[name] = float(zoo.shipped_metadata(name)["accuracy"])
        except (KeyError, ValueError):
            continue
    return accuracies


def train(name: str, seed: int = 0, out_dir=None, *,
          validation: bool = False) -> tuple[Network, dict]:
    """Train reference model ``name`` with ``seed``; return the integer network and a report.

    The network's metadata records the golden model's accuracy on the test part of the fixed
    digits split (keys ``accuracy``, ``train_seed``, ``description`` and more; all strings).
    With ``out_dir`` the network is written there as ``<name>.onnx``. ``validation=True`` trains
    on four fifths of the training part and measures on the rest (for choosing
    hyper-parameters); the metadata then says so.
    """
    model = reference_model(name)
    seed = _check_seed(seed)
    if out_dir is not None:
        out_dir = Path(out_dir)
        if not out_dir.is_dir():
            raise ConfigError(f"output directory {out_dir} does not exist; create it first")
    common, recipes = _import_training()
    import torch

    data = common.digits_data(validation)
    start = time.perf_counter()
    with common.deterministic(seed):
        result = getattr(recipes, RECIPES[name])(seed, data)
    seconds = time.perf_counter() - start

    network = result.network
    x_eval = common.as_images(data.x_eval) if len(network.input_shape) == 4 else data.x_eval
    correct = common.golden_correct(network, x_eval, data.y_eval)
    total = len(data.y_eval)
    accuracy = correct / total
    where = ("the test part of digits_split()" if data.evaluation == "test" else
             "a validation fifth of the training part of digits_split() (not the test part)")
    network.metadata = {
        "description": model.description,
        "reference_model": name,
        "train_seed": str(seed),
        "accuracy": f"{accuracy:.6f}",
        "accuracy_count": f"{correct}/{total}",
        "accuracy_measured_on": f"{where}, by the golden model (accel.nn.golden.predict)",
        "accuracy_target": model.target_text(),
        "torch_accuracy": f"{result.torch_accuracy:.6f}",
        "train_images": str(len(data.y_train)),
        **result.metadata,
        "trained_with": f"torch {torch.__version__.split('+')[0]}",
    }
    required = model.required(_shipped_accuracies())
    path = None
    if out_dir is not None:
        from accel.nn.qonnx_io import save

        path = save(network, out_dir / f"{name}.onnx")
    report = {
        "name": name,
        "seed": seed,
        "evaluation": data.evaluation,
        "accuracy": accuracy,
        "correct": correct,
        "total": total,
        "torch_accuracy": result.torch_accuracy,
        "target": model.target,
        "target_text": model.target_text(),
        "required": required,
        "meets_target": accuracy >= required,
        "seconds": seconds,
        "path": path,
        "bytes": path.stat().st_size if path is not None else None,
    }
    return network, report


def finetune_pruned(network: Network, x, y, seed: int = 0) -> Network:
    """``network`` (a float dense/ReLU chain) retrained on ``(x, y)`` with its zero weights
    held at zero (``accel.train.recipes.FINETUNE_RECIPE``), deterministic for a seed."""
    seed = _check_seed(seed)
    common, recipes = _import_training()
    chain = [layer.op for layer in network.layers]
    if chain != ["dense", "relu"] * (len(chain) // 2) + ["dense"]:
        raise ConfigError(f"fine-tuning takes a chain of dense layers with ReLU between them; "
                          f"{network.name} is {' -> '.join(chain)}")
    with common.deterministic(seed):
        return recipes.finetune_pruned(network, x, y, seed)


def retrain_parent(network: Network, x, y) -> Network | None:
    """The shipped float ``mlp`` retrained by the recipe and seed its metadata records, on
    ``(x, y)`` (deterministic), with the file's metadata; None for any other network (no
    recipe known to have made it). ``accel prune`` takes its decisions on such parents, each
    trained without the images it is validated on."""
    import json

    metadata = network.metadata
    common, recipes = _import_training()
    if metadata.get("reference_model") != "mlp" or "train_seed" not in metadata \
            or json.loads(metadata.get("recipe", "null")) != recipes.MLP_RECIPE:
        return None
    seed = _check_seed(int(metadata["train_seed"]))
    with common.deterministic(seed):
        retrained = recipes.mlp(seed, common.Data(x, y, x, y, "training")).network
    retrained.name = network.name
    retrained.metadata = dict(metadata)
    return retrained


def train_command(name: str, seed: int = 0, out_dir=None) -> str:
    """``accel train NAME [--seed S] [-o DIR]``: train, write ``DIR/NAME.onnx`` (default: the
    current directory) and return a summary, which says whether the file is byte-identical to
    the model shipped with accel."""
    from accel.nn import zoo

    out_dir = Path(out_dir) if out_dir is not None else Path.cwd()
    shipped = zoo.model_path(name) if name in zoo.shipped_models() else None
    shipped_bytes = shipped.read_bytes() if shipped is not None else None
    shipped_seed = zoo.shipped_metadata(name).get("train_seed", "?") if shipped else None
    _, report = train(name, seed, out_dir)
    lines = [
        f"{name}: test accuracy {100 * report['accuracy']:.2f}% ({report['correct']}/"
        f"{report['total']}, golden model; torch {100 * report['torch_accuracy']:.2f}%), "
        f"target {report['target_text']}: {'met' if report['meets_target'] else 'NOT met'}",
        f"trained in {report['seconds']:.1f} s with seed {seed}; wrote {report['path']} "
        f"({report['bytes']} bytes)",
    ]
    if shipped_bytes is not None:
        same = report["path"].read_bytes() == shipped_bytes
        replaced = report["path"].resolve() == shipped.resolve()
        if same:
            lines.append(f"byte-identical to the shipped {shipped.name}")
        else:
            lines.append(f"{'replaced' if replaced else 'differs from'} the shipped "
                         f"{shipped.name}, which was trained with seed {shipped_seed}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m accel.train NAME [--seed S] [-o DIR]`` (the same as ``accel train``)."""
    import argparse
    import sys

    from accel.errors import AccelError
    from accel.train.catalog import REFERENCE_MODELS

    parser = argparse.ArgumentParser(
        prog="python -m accel.train",
        description="Train a reference model on the digits split and write it as QONNX.")
    parser.add_argument("name", choices=list(REFERENCE_MODELS), metavar="NAME",
                        help=f"one of: {', '.join(REFERENCE_MODELS)}")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    parser.add_argument("-o", "--out-dir", default=None,
                        help="directory for NAME.onnx (default: the current directory)")
    args = parser.parse_args(argv)
    try:
        print(train_command(args.name, args.seed, args.out_dir))
    except AccelError as exc:
        print(f"accel: error: {exc}", file=sys.stderr)
        return 2
    return 0
