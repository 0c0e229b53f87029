"""Inputs: `Split`, file loaders, validation and layout / prediction-kind detection."""

from whylow.inputs.detect import infer_layout, predictions_to_probs, softmax, to_nhwc
from whylow.inputs.loaders import load_class_names, load_image_folder, load_npz, load_prediction_table, load_split
from whylow.inputs.prepare import SPLIT_NAMES, SplitData, as_split, prepare_splits
from whylow.inputs.split import Split

__all__ = [
    "SPLIT_NAMES",
    "Split",
    "SplitData",
    "as_split",
    "infer_layout",
    "load_class_names",
    "load_image_folder",
    "load_npz",
    "load_prediction_table",
    "load_split",
    "predictions_to_probs",
    "prepare_splits",
    "softmax",
    "to_nhwc",
]
