"""Your own classifier: datasets, cached backbone features, a trained head, evaluation."""

from .calibrate import CalibrateResult, calibrate
from .dataset import Dataset, Sample, load_dataset, split_dataset
from .evaluate import evaluate
from .features import FeatureCache, extract_features
from .train import TrainResult, train

__all__ = [
    "CalibrateResult",
    "Dataset",
    "FeatureCache",
    "Sample",
    "TrainResult",
    "calibrate",
    "evaluate",
    "extract_features",
    "load_dataset",
    "split_dataset",
    "train",
]
