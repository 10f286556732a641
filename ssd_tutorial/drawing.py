"""Images in and out of inference: read any image file as 8-bit RGB, draw detections readably at any size.

``python -m ssd_tutorial detect`` uses both. Plain PIL: no matplotlib, no figure, nothing shown.

Introduced in: 07_evaluation_and_inference.ipynb
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageDraw
import PIL.ImageFont
import torch
from torch import Tensor, nn

__all__ = ["check_image", "read_image", "to_rgb8", "draw_detections", "detect_to_files", "class_color", "PALETTE",
           "MIN_DRAW_SIZE"]

# 20 distinct colours (Sasha Trubetskoy's list); class c >= 1 gets PALETTE[(c - 1) % 20].
PALETTE = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
           (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255), (170, 110, 40),
           (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128),
           (128, 128, 128), (255, 225, 25))  # fmt: skip
MIN_DRAW_SIZE = 512  # smaller images are upscaled (by a whole factor) before drawing, so labels stay legible
_HIGH_DEPTH = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")  # 16/32-bit integer and float grey images


def class_color(label: int) -> tuple[int, int, int]:
    """The RGB colour of class ``label`` (1 … C-1) in drawings.

    Introduced in: 07_evaluation_and_inference.ipynb
    """
    return PALETTE[(int(label) - 1) % len(PALETTE)]


def _open(path: str | os.PathLike) -> PIL.Image.Image:
    """``PIL.Image.open`` with its failures as one ValueError naming the file."""
    try:
        return PIL.Image.open(path)
    except PIL.Image.DecompressionBombError:
        limit = 2 * (PIL.Image.MAX_IMAGE_PIXELS or 0)
        raise ValueError(f"cannot read image {path}: it has more than {limit} pixels, PIL's limit against "
                         "decompression bombs; shrink it first") from None  # fmt: skip
    except (FileNotFoundError, IsADirectoryError):
        raise
    except (OSError, SyntaxError) as err:  # unidentified, truncated or corrupt file
        raise ValueError(f"cannot read image {path}: {err}") from None


def check_image(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) from the file's header: a cheap check that ``path`` is an image PIL can open.

    Introduced in: 07_evaluation_and_inference.ipynb
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image file not found: {path}")
    with _open(path) as pil:
        return pil.size


def read_image(path: str | os.PathLike) -> Tensor:
    """Tensor[3, H, W] uint8 RGB of an image file, 16-bit and float images scaled to 8 bits (not saturated).

    Introduced in: 07_evaluation_and_inference.ipynb
    """
    check_image(path)
    with _open(path) as pil:
        try:
            return to_rgb8(pil)
        except (OSError, SyntaxError) as err:  # a truncated file fails when its pixels are decoded
            raise ValueError(f"cannot read image {path}: {err}") from None


def to_rgb8(pil: PIL.Image.Image) -> Tensor:
    """Tensor[3, H, W] uint8 of a PIL image. ``convert("RGB")`` clips 16-bit values at 255, so those are scaled:
    16-bit by 255/65535, float images in [0, 1] by 255 (other float ranges by their maximum).

    Introduced in: 07_evaluation_and_inference.ipynb
    """
    if pil.mode not in _HIGH_DEPTH:
        return torch.from_numpy(np.array(pil.convert("RGB"))).permute(2, 0, 1).contiguous()  # [3, H, W]
    values = np.nan_to_num(np.asarray(pil, dtype=np.float64))  # [H, W]
    top = 65535.0
    if pil.mode == "F":
        top = 1.0 if values.max(initial=0.0) <= 1.0 else float(values.max())
    elif pil.mode == "I":  # PIL opens 16-bit PNGs as "I" too; wider values are scaled by their maximum
        top = max(65535.0, float(values.max(initial=0.0)))
    grey = np.round(np.clip(values / top, 0.0, 1.0) * 255.0).astype(np.uint8)
    return torch.from_numpy(grey)[None].expand(3, -1, -1).contiguous()  # [3, H, W]


def _font(size: int) -> PIL.ImageFont.ImageFont | PIL.ImageFont.FreeTypeFont:
    try:
        return PIL.ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # an old PIL or one without FreeType: the fixed bitmap font
        return PIL.ImageFont.load_default()


def _text_color(fill: tuple[int, int, int]) -> tuple[int, int, int]:
    luma = 0.299 * fill[0] + 0.587 * fill[1] + 0.114 * fill[2]  # ITU-R BT.601
    return (0, 0, 0) if luma > 140 else (255, 255, 255)


def draw_detections(image: Tensor, boxes_xyxy: Tensor, labels: Tensor, scores: Tensor,
                    class_names: Sequence[str], *, min_size: int = MIN_DRAW_SIZE) -> PIL.Image.Image:  # fmt: skip
    """A PIL image of ``image`` with one box per detection, one colour per class and a "name score" label on a
    filled box of that colour (black or white text, whichever contrasts).

    Args:
        image: Tensor[3, H, W] uint8 RGB.
        boxes_xyxy: Tensor[N, 4] in the pixels of ``image``; labels Tensor[N] (1 … C-1); scores Tensor[N].
        class_names: name of every class id, background first.
        min_size: an image whose longer side is below this is upscaled by a whole factor first (nearest
            neighbour), and line width and font grow with the drawing, so a 128 px image stays readable.

    Introduced in: 07_evaluation_and_inference.ipynb
    """
    if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be a uint8 Tensor[3, H, W], got {image.dtype} {list(image.shape)}")
    height, width = image.shape[-2:]
    scale = max(1, math.ceil(min_size / max(height, width)))
    pil = PIL.Image.fromarray(image.permute(1, 2, 0).cpu().numpy())  # [H, W, 3]
    if scale > 1:
        pil = pil.resize((width * scale, height * scale), PIL.Image.Resampling.NEAREST)
    longer = max(pil.size)
    line = max(2, round(longer / 256))
    font = _font(max(12, round(longer / 40)))
    pad = max(2, line)
    draw = PIL.ImageDraw.Draw(pil)
    for box, label, score in zip(boxes_xyxy.tolist(), labels.tolist(), scores.tolist()):
        x1, y1, x2, y2 = (v * scale for v in box)
        color = class_color(label)
        draw.rectangle((x1, y1, x2, y2), outline=color, width=line)
        name = class_names[label] if 0 <= label < len(class_names) else str(label)
        text = f"{name} {score:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        box_w, box_h = right - left + 2 * pad, bottom - top + 2 * pad
        tx = min(max(x1, 0), max(pil.width - box_w, 0))
        ty = y1 - box_h if y1 - box_h >= 0 else y1  # above the box, or inside it at the top edge of the image
        draw.rectangle((tx, ty, tx + box_w, ty + box_h), fill=color)
        draw.text((tx + pad - left, ty + pad - top), text, fill=_text_color(color), font=font)
    return pil


def detect_to_files(model: nn.Module, paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
                    score_threshold: float = 0.5, device: str | torch.device = "cpu") -> Iterator[dict]:  # fmt: skip
    """Run ``model`` (eval mode) on image files: ``out_dir/<stem>.png`` with the detections drawn, and
    ``out_dir/detections.json`` listing this call's images only (written atomically at the end; an earlier list
    is removed first, so a failure never leaves one that does not match the PNGs). Yields one report dict per
    image as it is done: image, output, width, height, detections (label, class_name, score, box_xyxy in the
    image's pixels).

    Introduced in: 07_evaluation_and_inference.ipynb
    """
    from torchvision.transforms.v2 import functional as F

    from .train_support import write_json_atomic

    S, names = model.cfg.image_size, model.cfg.class_names
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "detections.json").unlink(missing_ok=True)
    report, used = [], set()
    for path in map(Path, paths):
        image = read_image(path)  # [3, H, W] uint8
        H, W = image.shape[-2:]
        resized = F.resize(image, [S, S], antialias=True).float().div(255)  # [3, S, S] in [0, 1]
        with torch.inference_mode():
            det = model(resized[None].to(device))[0]
        keep = det["scores"] >= score_threshold
        boxes = det["boxes"][keep].cpu() * torch.tensor([W / S, H / S, W / S, H / S])  # back to input pixels
        scores, labels = det["scores"][keep].cpu(), det["labels"][keep].cpu()
        stem = path.stem
        while stem in used:
            stem += "_"
        used.add(stem)
        png = out / f"{stem}.png"
        draw_detections(image, boxes, labels, scores, names).save(png)
        report.append({"image": str(path), "output": str(png), "width": int(W), "height": int(H), "detections": [
            {"label": int(c), "class_name": names[int(c)], "score": round(float(s), 5),
             "box_xyxy": [round(float(v), 2) for v in b]} for b, s, c in zip(boxes, scores, labels)]})  # fmt: skip
        yield report[-1]
    write_json_atomic(out / "detections.json", report)
