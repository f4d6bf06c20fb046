"""``glyphs``: a synthetic Omniglot-like set of characters rendered from the DejaVu fonts matplotlib ships.

The few-shot stand-in of last resort (``specs/datasets.md`` §3.10, option 3): every registry-only
alternative has 10-20 classes, too few for disjoint meta-train / validation / test class splits.
Classes are characters of the Latin, Greek, Cyrillic, Armenian and Hebrew alphabets and the digits;
characters that render (almost) identically to an earlier one (Latin ``A`` / Greek ``Α`` / Cyrillic
``А``, ``o`` / ``о``, ...) are dropped, by the pixel distance of their canonical renders. Each class
has ``drawings`` images: the character in one of the DejaVu faces (sans, serif, mono; regular, bold,
oblique) under a random affine map (rotation, scale, shear, shift) drawn from a fixed seed, like the
20 drawers of Omniglot. Images are ``side × side`` uint8 with ink = 255 on 0.

Deterministic for a given matplotlib (FreeType) version; the loaded arrays' checksum is recorded in
the provenance of every result, so a different rendering is visible.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
import torch.nn.functional as F

ALPHABETS = {
    "latin": "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    "digits": "0123456789",
    "greek": "ΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩαβγδεζηθικλμνξοπρστυφχψω",
    "cyrillic": "АБВГДЕЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯабвгдежзийклмнопрстуфхцчшщъыьэюя",
    "armenian": "ԱԲԳԴԵԶԷԸԹԺԻԼԽԾԿՀՁՂՃՄՅՆՇՈՉՊՋՌՍՎՏՐՑՒՓՔՕՖ",
    "hebrew": "אבגדהוזחטיכלמנסעפצקרשת",
}
FACES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSerif.ttf",
         "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf")
CANVAS = 64  # render canvas (pixels) before the affine map and the resize


def _fonts():
    import matplotlib
    from matplotlib.ft2font import FT2Font

    folder = os.path.join(matplotlib.get_data_path(), "fonts", "ttf")
    return [FT2Font(os.path.join(folder, face)) for face in FACES]


def _render(font, char: str, size: int = 40) -> np.ndarray | None:
    """The character centred on a CANVAS² float canvas in [0, 1], or None when the face lacks it."""
    if font.get_char_index(ord(char)) == 0:
        return None
    font.set_size(size, 72)
    font.set_text(char)
    font.draw_glyphs_to_bitmap(antialiased=True)
    bitmap = np.asarray(font.get_image(), dtype=np.float32) / 255.0
    h, w = bitmap.shape
    if h == 0 or w == 0 or h > CANVAS or w > CANVAS:
        return None
    canvas = np.zeros((CANVAS, CANVAS), dtype=np.float32)
    top, left = (CANVAS - h) // 2, (CANVAS - w) // 2
    canvas[top:top + h, left:left + w] = bitmap
    return canvas


def _distinct(canonical: dict[str, np.ndarray], min_distance: float) -> list[str]:
    """Characters whose canonical render differs from every earlier kept one (RMS distance of 4×4-pooled pixels)."""
    kept: list[str] = []
    coarse = CANVAS // 4  # compared at 16 x 16: insensitive to the one-pixel offsets of twin glyphs
    stack = np.zeros((len(canonical), coarse * coarse), dtype=np.float32)
    for char, image in canonical.items():
        flat = image.reshape(coarse, 4, coarse, 4).mean(axis=(1, 3)).reshape(-1)
        if not kept or np.sqrt(np.mean((stack[:len(kept)] - flat) ** 2, axis=1)).min() >= min_distance:
            stack[len(kept)] = flat
            kept.append(char)
    return kept


def render_glyphs(side: int = 28, drawings: int = 20, seed: int = 0, min_distance: float = 0.08):
    """``({"all": {"x": (N, 1, side, side) uint8, "y": (N,) int64}}, meta)``, N = classes × drawings."""
    fonts = _fonts()
    canonical = {}
    for chars in ALPHABETS.values():
        for char in chars:
            if all(f.get_char_index(ord(char)) != 0 for f in fonts):
                canonical[char] = _render(fonts[0], char)
    canonical = {c: im for c, im in canonical.items() if im is not None}
    characters = _distinct(canonical, min_distance)
    gen = torch.Generator().manual_seed(seed)
    images, labels = [], []
    for label, char in enumerate(characters):
        faces = torch.randint(len(fonts), (drawings,), generator=gen).tolist()
        rendered = {i: _render(fonts[i], char) for i in sorted(set(faces))}
        base = torch.from_numpy(np.stack([rendered[i] for i in faces]))[:, None]
        angle = (torch.rand(drawings, generator=gen) - 0.5) * math.radians(30)
        scale = 0.8 + 0.3 * torch.rand(drawings, generator=gen)
        shear = (torch.rand(drawings, generator=gen) - 0.5) * 0.4
        shift = (torch.rand(drawings, 2, generator=gen) - 0.5) * 0.15
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin + shear, shift[:, 0]], 1),
                             torch.stack([sin, cos, shift[:, 1]], 1)], 1)
        grid = F.affine_grid(theta, (drawings, 1, CANVAS, CANVAS), align_corners=False)
        warped = F.grid_sample(base, grid, align_corners=False, padding_mode="zeros")
        small = F.interpolate(warped, size=(side, side), mode="area")
        images.append((small.clamp(0, 1) * 255).round().to(torch.uint8).numpy())
        labels.append(np.full(drawings, label, dtype=np.int64))
    meta = {"characters": characters, "faces": list(FACES), "seed": seed, "side": side, "drawings": drawings}
    return {"all": {"x": np.concatenate(images), "y": np.concatenate(labels)}}, meta
