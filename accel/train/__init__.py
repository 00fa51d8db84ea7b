"""Training of accel's reference models with torch (``pip install accel[train]``).

``train(name, seed)`` trains one reference model on the fixed digits split, converts it to the
integer IR, measures its test accuracy with the golden model and records it in the network's
metadata; ``REFERENCE_MODELS`` lists the models and their targets. Importing this package does
not import torch; training does.
"""

from accel.train.catalog import REFERENCE_MODELS, ReferenceModel, reference_model
from accel.train.api import finetune_pruned, main, retrain_parent, train, train_command

__all__ = ["REFERENCE_MODELS", "ReferenceModel", "finetune_pruned", "main", "reference_model",
           "retrain_parent", "train", "train_command"]
