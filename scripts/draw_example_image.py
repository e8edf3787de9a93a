"""Draw backend/assets/example.png: our own cartoon mushroom on a transparent background.

The README's main job (image -> 3D with the built-in ``inflate`` model) uses it. Drawn with
Pillow at 4x and filtered down so the outline is anti-aliased. Run from the repository root:
``.venv/backend/bin/python scripts/draw_example_image.py``.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

SIZE = 512
SCALE = 4


def draw() -> Image.Image:
    s = SIZE * SCALE
    image = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    pen = ImageDraw.Draw(image)

    def box(x0: float, y0: float, x1: float, y1: float) -> tuple[int, int, int, int]:
        return (int(x0 * s), int(y0 * s), int(x1 * s), int(y1 * s))

    outline = (70, 30, 30, 255)
    width = int(0.018 * s)
    # Stem: a rounded cream block with a soft shadow band under the cap.
    pen.rounded_rectangle(
        box(0.33, 0.42, 0.67, 0.9),
        radius=int(0.1 * s),
        fill=(246, 226, 190, 255),
        outline=outline,
        width=width,
    )
    pen.rectangle(box(0.345, 0.45, 0.655, 0.5), fill=(222, 190, 150, 255))
    # Cap: a red dome with white spots.
    pen.pieslice(
        box(0.1, 0.1, 0.9, 0.9), 180, 360, fill=(226, 52, 48, 255), outline=outline, width=width
    )
    pen.rounded_rectangle(
        box(0.1, 0.44, 0.9, 0.52),
        radius=int(0.04 * s),
        fill=(200, 38, 40, 255),
        outline=outline,
        width=width,
    )
    for cx, cy, r in (
        (0.3, 0.3, 0.07),
        (0.52, 0.2, 0.06),
        (0.7, 0.33, 0.075),
        (0.47, 0.38, 0.04),
        (0.19, 0.42, 0.035),
        (0.82, 0.44, 0.03),
    ):
        pen.ellipse(box(cx - r, cy - r, cx + r, cy + r), fill=(255, 250, 240, 255))
    # Face.
    for cx in (0.43, 0.57):
        pen.ellipse(box(cx - 0.03, 0.6, cx + 0.03, 0.68), fill=(40, 25, 25, 255))
        pen.ellipse(box(cx - 0.012, 0.615, cx + 0.008, 0.635), fill=(255, 255, 255, 255))
    pen.arc(box(0.45, 0.66, 0.55, 0.74), 20, 160, fill=(40, 25, 25, 255), width=width)
    for cx in (0.39, 0.61):
        pen.ellipse(box(cx - 0.03, 0.69, cx + 0.03, 0.72), fill=(245, 150, 150, 255))
    image = image.filter(ImageFilter.GaussianBlur(SCALE * 0.3))
    return image.resize((SIZE, SIZE), Image.Resampling.LANCZOS)


def main() -> None:
    path = Path(__file__).resolve().parents[1] / "backend" / "assets" / "example.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    draw().save(path, optimize=True)
    print(f"{path}: {path.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
