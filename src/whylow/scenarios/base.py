"""Building blocks of scenarios: digits images, splits, small torch models and their training.

Images are scikit-learn's bundled handwritten digits (1,797 real 8×8 images),
upsampled to 16×16 and stored as uint8 0–255 so they look like ordinary
image data.
"""

from __future__ import annotations

import numpy as np

from whylow.errors import require
from whylow.inputs import Split
from whylow.scenarios import Scenario, scenario

__all__ = [
    "digits_images",
    "colourise",
    "split_indices",
    "make_cnn",
    "make_mlp",
    "train_torch",
    "train_epoch",
    "torch_probs",
    "healthy_digits",
    "digits_splits",
]


def digits_images(size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as uint8 images.

    Returns
    -------
    x : ndarray of uint8, shape (1797, size, size)
    y : ndarray of int64, shape (1797,)
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    raw = np.clip(d.images * 16.0, 0, 255).astype(np.uint8)
    if size == 8:
        return raw, d.target.astype(np.int64)
    x = np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR)) for im in raw])
    return x, d.target.astype(np.int64)


def colourise(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """Turn grayscale images (N×H×W) into RGB (N×H×W×3) with a random tint per image, so channels differ."""
    rng = np.random.default_rng(seed)
    tint = rng.uniform(0.4, 1.0, size=(len(x), 1, 1, 3))
    tint[..., 0] = 1.0  # red channel carries the full stroke, so channel order matters
    return np.clip(x[..., None].astype(np.float64) * tint, 0, 255).astype(np.uint8)


def split_indices(y: np.ndarray, fractions=(0.6, 0.2, 0.2), seed: int = 0) -> list[np.ndarray]:
    """Stratified random split of ``range(len(y))`` into parts of the given fractions."""
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in fractions]
    bounds = np.cumsum(fractions) / np.sum(fractions)
    for k in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == k))
        cuts = np.round(bounds * len(idx)).astype(int)
        start = 0
        for p, end in enumerate(cuts):
            parts[p].extend(idx[start:end].tolist())
            start = end
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def make_cnn(in_channels: int = 1, n_classes: int = 10, width: int = 16, seed: int = 0, dense_head: int | None = None):
    """A small CNN for N×C×H×W float input: two conv blocks and a linear head.

    The head pools the feature map to 2×2 by default; ``dense_head=size``
    (the input's side length) instead connects every position of the
    (size/2)×(size/2) map: many more parameters, easy to memorise with.
    """
    torch = require("torch", "torch")
    nn = torch.nn
    torch.manual_seed(seed)
    features = [
        nn.Conv2d(in_channels, width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.ReLU(),
    ]
    if dense_head is None:
        head = [nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(8 * width, n_classes)]
    else:
        head = [nn.Flatten(), nn.Linear(2 * width * (dense_head // 2) ** 2, n_classes)]
    return nn.Sequential(*features, *head)


def make_mlp(n_features: int, hidden=(64,), n_outputs: int = 2, seed: int = 0):
    """A multilayer perceptron for N×D input."""
    torch = require("torch", "torch")
    nn = torch.nn
    torch.manual_seed(seed)
    layers, d = [], n_features
    for h in hidden:
        layers += [nn.Linear(d, h), nn.ReLU()]
        d = h
    layers.append(nn.Linear(d, n_outputs))
    return nn.Sequential(*layers)


def train_torch(
    model,
    x: np.ndarray,
    y: np.ndarray,
    *,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    epochs: int = 15,
    lr: float = 3e-3,
    batch_size: int = 64,
    weight_decay: float = 0.0,
    label_smoothing: float = 0.0,
    class_weights: np.ndarray | None = None,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Train ``model`` with Adam and cross-entropy; return a Keras-style history.

    Returns
    -------
    dict
        ``loss``, ``accuracy`` (and ``val_loss``, ``val_accuracy`` when a
        validation set is given), one value per epoch, plus ``lr``.
    """
    torch = require("torch", "torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models train several times faster on one thread than on two busy ones
    try:
        return _train(torch, model, x, y, x_val, y_val, epochs, lr, batch_size, weight_decay, label_smoothing, class_weights, seed)
    finally:
        torch.set_num_threads(threads)


def _train(torch, model, x, y, x_val, y_val, epochs, lr, batch_size, weight_decay, label_smoothing, class_weights, seed):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64))
    weight = None if class_weights is None else torch.as_tensor(np.asarray(class_weights, dtype=np.float32))
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    history: dict[str, list[float]] = {"loss": [], "accuracy": [], "lr": []}
    if x_val is not None:
        history.update(val_loss=[], val_accuracy=[])
    for _ in range(epochs):
        loss_sum, correct = train_epoch(torch, model, xt, yt, loss_fn, opt, batch_size, gen)
        history["loss"].append(loss_sum / len(xt))
        history["accuracy"].append(correct / len(xt))
        history["lr"].append(lr)
        if x_val is not None:
            probs = torch_probs(model, x_val)
            p_true = np.clip(probs[np.arange(len(y_val)), y_val], 1e-12, 1)
            history["val_loss"].append(float(-np.log(p_true).mean()))
            history["val_accuracy"].append(float((probs.argmax(1) == y_val).mean()))
    model.eval()
    return history


def train_epoch(torch, model, xt, yt, loss_fn, opt, batch_size: int, gen) -> tuple[float, int]:
    """One epoch of minibatch training in a random order; returns (summed loss, correct predictions)."""
    model.train()
    perm = torch.randperm(len(xt), generator=gen)
    total, correct = 0.0, 0
    for start in range(0, len(xt), batch_size):
        idx = perm[start : start + batch_size]
        out = model(xt[idx])
        loss = loss_fn(out, yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += float(loss.detach()) * len(idx)
        correct += int((out.argmax(1) == yt[idx]).sum())
    return total, correct


def torch_probs(model, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Softmax outputs of a torch classifier on ``x`` (float64, N×K)."""
    torch = require("torch", "torch")
    model.eval()
    outs = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            xb = torch.as_tensor(np.asarray(x[start : start + batch_size], dtype=np.float32))
            outs.append(torch.softmax(model(xb), dim=1).double().numpy())
    return np.concatenate(outs)


def digits_splits(seed: int = 0, size: int = 16, rgb: bool = False):
    """Digits images split 60/20/20 into train/val/test, as float32 N×C×H×W in [0, 1] and labels."""
    x, y = digits_images(size)
    if rgb:
        x = colourise(x, seed)
        x = np.moveaxis(x, -1, 1)
    else:
        x = x[:, None]
    x = x.astype(np.float32) / 255.0
    tr, va, te = split_indices(y, seed=seed)
    return (x[tr], y[tr]), (x[va], y[va]), (x[te], y[te])


@scenario("none", None, "Healthy: a small CNN trained well on clean digits; nothing should be flagged.")
def healthy_digits(seed: int = 0, width: int = 16, epochs: int = 15, rgb: bool = False) -> Scenario:
    """A healthy CNN on clean, identically distributed splits."""
    (xtr, ytr), (xva, yva), (xte, yte) = digits_splits(seed, rgb=rgb)
    model = make_cnn(xtr.shape[1], 10, width=width, seed=seed)
    history = train_torch(model, xtr, ytr, x_val=xva, y_val=yva, epochs=epochs, seed=seed)
    return Scenario(
        name="none",
        expected=None,
        train=Split(x=xtr, y=ytr),
        val=Split(x=xva, y=yva),
        test=Split(x=xte, y=yte),
        model=model,
        history=history,
        class_names=[str(k) for k in range(10)],
        notes={"fault": "none", "architecture": f"cnn width {width}", "seed": seed},
    )
