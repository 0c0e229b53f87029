"""Small PNG thumbnails of flagged examples, embedded in the HTML report."""

from __future__ import annotations

import base64
import io

import numpy as np

__all__ = ["thumbnail_png", "collect_thumbnails"]


def thumbnail_png(image: np.ndarray, lo: float, hi: float, size: int = 64) -> str:
    """Encode one H×W×C (or H×W) image as a base64 PNG scaled to ``size`` pixels.

    Values are mapped from [lo, hi] to 0–255 with one range for the whole
    split, so brightness differences between images stay visible.
    """
    from PIL import Image

    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim == 3 and img.shape[-1] not in (3, 4):
        img = img.mean(axis=-1)
    scale = 255.0 / (hi - lo) if hi > lo else 1.0
    img = np.nan_to_num((img - lo) * scale, nan=0.0, posinf=255.0, neginf=0.0)
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    factor = max(1, size // max(pil.size))
    pil = pil.resize((pil.size[0] * factor, pil.size[1] * factor), Image.NEAREST)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def collect_thumbnails(ctx, max_per_list: int = 12) -> dict[str, list[dict]]:
    """Turn the checks' ``examples:<name>`` artifacts into thumbnail lists.

    A check that flags examples stores ``ctx.add_artifact(check, "examples:<name>",
    [{"split": "test", "index": 12, "caption": "given 3, likely 8"}, ...])``, and
    optionally how many it flagged in all as ``"examples_total:<name>"``. Each
    thumbnail is labelled with its split and row (``test #12``) and captioned
    with the check's words; the first thumbnail of a list carries ``"total"``,
    the number of examples flagged in all (for "12 of 88 shown").
    """
    out: dict[str, list[dict]] = {}
    for check, items in ctx.artifacts.items():
        for key, examples in items.items():
            if not key.startswith("examples:") or not isinstance(examples, list):
                continue
            thumbs = []
            for ex in examples[:max_per_list]:
                split = ctx.split(ex.get("split", "test"))
                index = ex.get("index")
                if split is None or not split.is_image or index is None or not 0 <= int(index) < split.n:
                    continue
                images = split.images_nhwc()
                lo, hi = ctx.cached(f"thumb-range:{split.name}", lambda s=split: _value_range(s))
                given = ctx.class_names[int(split.y[int(index)])] if split.y is not None else ""
                thumbs.append(
                    {
                        "png_base64": thumbnail_png(images[int(index)], lo, hi),
                        "label": f"{split.name} #{int(index)}",
                        "caption": str(ex.get("caption", f"given {given}" if given else "")),
                    }
                )
            total = items.get("examples_total:" + key[len("examples:"):])
            if thumbs:
                thumbs[0]["total"] = int(total) if isinstance(total, (int, np.integer)) else len(examples)
                out[f"{check}: {key[len('examples:'):]}"] = thumbs
    return out


def _value_range(split) -> tuple[float, float]:
    x = split.x
    if x.dtype == np.uint8:
        return 0.0, 255.0
    sample = np.asarray(x[: min(len(x), 2048)], dtype=np.float64)
    finite = sample[np.isfinite(sample)]
    return (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
