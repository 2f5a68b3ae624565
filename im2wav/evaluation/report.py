"""An evaluation's outputs: `results.json` (everything), `results.md` (the tables a reader compares,
with every setting that the numbers depend on) and the PNG charts, all next to each other."""

from __future__ import annotations

import json
from pathlib import Path

from ..atomic_files import atomic_write_text
from .charts import accuracy_chart, distribution_chart

__all__ = ["markdown_report", "write_report"]


def _fmt(value, percent: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.2f}%" if percent else f"{value:.4g}"


def _accuracy_cell(result: dict | None) -> str:
    if not result:
        return "- (no video of an IMAGEHEAR class)"
    return f"{_fmt(result['accuracy'], True)} ({result['num_clips']} clips)"


def _settings_rows(settings: dict, prefix: str = "") -> list[str]:
    rows = []
    for key, value in settings.items():
        if isinstance(value, dict):
            rows.extend(_settings_rows(value, f"{prefix}{key}."))
        else:
            rows.append(f"| {prefix}{key} | {str(value).replace('|', '/')} |")  # a bare | would split the cell
    return rows


def markdown_report(kind: str, results: dict, settings: dict) -> str:
    """The Markdown tables of an `imagehear` or `vggsound` evaluation."""
    lines = [f"# im2wav evaluation: {kind}", ""]
    if results.get("plumbing_check"):
        lines += ["**Metric models with random weights: a plumbing check, these numbers mean nothing.**", ""]
    if kind == "imagehear":
        lines += ["| clips | CS ↑ | ACC ↑ | mean class ACC ↑ |", "|---|---|---|---|",
                  f"| {results['num_clips']} | {_fmt(results['clip_score'])} | {_fmt(results['accuracy'], True)} | "
                  f"{_fmt(results['mean_class_accuracy'], True)} |", "",
                  "## Per class", "", "| class | clips | ACC | CS |", "|---|---|---|---|"]
        lines += [f"| {name} | {row['clips']} | {_fmt(row['accuracy'], True)} | {_fmt(row['clip_score'])} |"
                  for name, row in results["per_class"].items()]
    else:
        ref = results["reference"]
        lines += ["| audio | clips | FAD ↓ | KL ↓ | CS ↑ | ACC ↑ (IMAGEHEAR classes) |", "|---|---|---|---|---|---|",
                  f"| generated | {results['num_clips']} | {_fmt(results['fad'])} | {_fmt(results['kl'])} | "
                  f"{_fmt(results['clip_score'])} | {_accuracy_cell(results['accuracy'])} |",
                  f"| reference | {results['num_clips']} | - | - | {_fmt(ref['clip_score'])} | "
                  f"{_accuracy_cell(ref['accuracy'])} |"]
        if results.get("missing_videos"):
            lines += ["", f"{results['missing_videos']} test videos listed in the CSV were not in the folder."]
    lines += ["", "## Settings", "", "| setting | value |", "|---|---|"] + _settings_rows(settings)
    return "\n".join(lines) + "\n"


def write_report(out: str | Path, kind: str, results: dict, settings: dict) -> dict[str, Path]:
    """Write `results.json`, `results.md` and the charts into `out`; returns the paths written.

    Args:
        out: the evaluation's folder.
        kind: `imagehear` or `vggsound`.
        results: from `score_imagehear` / `score_vggsound` (plus any run facts).
        settings: every setting of the run (models, rates, windowing, generation).
    """
    out = Path(out)
    paths = {"json": out / "results.json", "markdown": out / "results.md"}
    atomic_write_text(paths["json"], json.dumps({"kind": kind, "settings": settings, **results}, indent=2))
    atomic_write_text(paths["markdown"], markdown_report(kind, results, settings))
    if kind == "imagehear":
        paths["accuracy_chart"] = accuracy_chart(
            out / "accuracy_per_class.png", {k: v["accuracy"] for k, v in results["per_class"].items()},
            "IMAGEHEAR: accuracy per class (generated audio)")
    else:
        if results["accuracy"] is not None:
            paths["accuracy_chart"] = accuracy_chart(
                out / "accuracy_per_class.png", results["accuracy"]["per_class"],
                "VGGSound test (IMAGEHEAR classes): accuracy per class")
        paths["distribution_chart"] = distribution_chart(
            out / "class_distribution.png", results["class_distribution"],
            "VGGSound test: top AudioSet label, generated vs reference")
    return paths
