"""Bar charts of evaluation results as PNG, drawn with Pillow (already a dependency: no plotting
library to install for two pictures).

- `accuracy_chart`: accuracy per class, the paper's Fig. 2;
- `distribution_chart`: how often each AudioSet label is the top prediction, generated vs reference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from ..atomic_files import atomic_output

__all__ = ["accuracy_chart", "bar_chart", "distribution_chart"]

_COLOURS = [(52, 101, 164), (237, 125, 49), (112, 173, 71)]
_ROW, _LABEL_WIDTH, _BAR_WIDTH, _MARGIN = 18, 230, 420, 12


def bar_chart(
    path: str | Path,
    title: str,
    categories: Sequence[str],
    series: Mapping[str, Sequence[float]],
    max_value: float | None = None,
    value_format: str = "{:.2f}",
) -> Path:
    """Horizontal grouped bars, one group per category, one bar per series; written atomically.

    Args:
        path: the PNG to write.
        title: drawn above the chart.
        categories: the row labels, top to bottom.
        series: name -> one value per category (>= 0).
        max_value: the value of a full-length bar (default: the largest value).
        value_format: how each bar's value is printed after it.
    """
    if not categories:
        raise ValueError("a bar chart needs at least one category")
    if any(len(values) != len(categories) for values in series.values()):
        raise ValueError("every series needs one value per category")
    font = ImageFont.load_default()
    top = max(value for values in series.values() for value in values)
    scale = max_value if max_value is not None else (top if top > 0 else 1.0)
    group = _ROW * len(series) + 6
    height = 2 * _MARGIN + 40 + group * len(categories)
    width = _LABEL_WIDTH + _BAR_WIDTH + 80
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((_MARGIN, _MARGIN), title, fill="black", font=font)
    legend_x = _LABEL_WIDTH
    for k, name in enumerate(series):
        draw.rectangle([legend_x, _MARGIN + 18, legend_x + 10, _MARGIN + 28], fill=_COLOURS[k % len(_COLOURS)])
        draw.text((legend_x + 14, _MARGIN + 17), name, fill="black", font=font)
        legend_x += 20 + int(draw.textlength(name, font=font)) + 16
    y = _MARGIN + 40
    for row, category in enumerate(categories):
        draw.text((_MARGIN, y + (group - 6) // 2 - 6), category[:36], fill="black", font=font)
        for k, (name, values) in enumerate(series.items()):
            value = float(values[row])
            length = int(round(_BAR_WIDTH * min(max(value / scale, 0.0), 1.0)))
            box_top = y + k * _ROW
            draw.rectangle([_LABEL_WIDTH, box_top, _LABEL_WIDTH + max(length, 1), box_top + _ROW - 4],
                           fill=_COLOURS[k % len(_COLOURS)])
            draw.text((_LABEL_WIDTH + length + 4, box_top + 1), value_format.format(value), fill="black", font=font)
        y += group
    with atomic_output(Path(path)) as tmp:
        image.save(tmp, format="PNG")
    return Path(path)


def accuracy_chart(path: str | Path, per_class: Mapping[str, float], title: str) -> Path:
    """The paper's Fig. 2: accuracy per class (0..100 %), classes in the given order.

    Args:
        path: the PNG to write.
        per_class: class -> accuracy in [0, 1].
        title: drawn above the chart.
    """
    return bar_chart(path, title, list(per_class), {"accuracy (%)": [100 * v for v in per_class.values()]},
                     max_value=100.0, value_format="{:.1f}")


def distribution_chart(path: str | Path, counts: Mapping[str, Mapping[str, int]], title: str, top: int = 20) -> Path:
    """How often each label is the top prediction, per series (e.g. generated vs reference).

    Args:
        path: the PNG to write.
        counts: series name -> (label -> count).
        title: drawn above the chart.
        top: show the `top` labels with the largest total count.
    """
    totals: dict[str, int] = {}
    for series_counts in counts.values():
        for label, count in series_counts.items():
            totals[label] = totals.get(label, 0) + count
    labels = sorted(totals, key=lambda label: (-totals[label], label))[:top]
    return bar_chart(path, title, labels, {name: [c.get(label, 0) for label in labels] for name, c in counts.items()},
                     value_format="{:.0f}")
