"""Where the paper's metric models get their weights and AudioSet label names.

Every model takes a local file (`--passt-weights`, ...) or, by default, the URL its own package
publishes (fetched once into torch's hub cache, `~/.cache/torch/hub/checkpoints`). Files, downloaded
or not, are read with `torch.load(weights_only=True)`: tensors only, never arbitrary pickled code.

AudioSet's label names come from its `class_labels_indices.csv` (columns `index,mid,display_name`),
the order PaSST's 527 outputs follow.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import torch

__all__ = ["AUDIOSET_LABELS_URL", "load_audioset_labels", "load_state_dict"]

AUDIOSET_LABELS_URL = "http://storage.googleapis.com/us_audioset/youtube_corpus/v1/csv/class_labels_indices.csv"
AUDIOSET_NUM_CLASSES = 527


def _download(url: str, folder: str, what: str, flag: str) -> Path:
    """The file at `url`, fetched once into `folder` of torch's hub cache (written atomically by torch)."""
    path = Path(torch.hub.get_dir()) / folder / url.rsplit("/", 1)[-1]
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(url, str(path), progress=False)
        except Exception as err:  # urllib, HTTP and socket errors all end here
            raise ValueError(
                f"cannot download {what} from {url} ({type(err).__name__}: {err}); "
                f"download the file on a machine with internet access and pass it with {flag} PATH"
            ) from err
    return path


def load_state_dict(
    source: str | os.PathLike | dict | None, default_url: str, what: str, flag: str
) -> dict[str, torch.Tensor]:
    """A checkpoint's tensors from a dict, a local file, or (`source=None`) the package's URL.

    Args:
        source: a state dict already in memory, the path of a `.pt`/`.pth` file, or None.
        default_url: where the model's package publishes the weights.
        what: the model's name, for messages.
        flag: the command-line flag that passes a local file, for messages.

    Raises:
        FileNotFoundError: `source` names a file that does not exist.
        ValueError: the file holds no tensors, or the download failed.
    """
    if isinstance(source, dict):
        return source
    if source is None:
        source = _download(default_url, "checkpoints", f"the {what} weights", flag)
    path = Path(os.path.expanduser(str(source)))
    if not path.is_file():
        raise FileNotFoundError(f"{what} weights {str(path)!r} not found: pass the checkpoint file with {flag} PATH")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated file, a pickle holding code, not a torch file at all
        raise ValueError(
            f"{path} is not a {what} checkpoint that loads with torch.load(weights_only=True) "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); pass the file its package publishes"
        ) from err
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold a state dict of tensors; pass the {what} checkpoint itself")
    return state


def load_audioset_labels(source: str | os.PathLike | None = None) -> list[str]:
    """The 527 AudioSet display names in class-index order.

    Args:
        source: the path of AudioSet's `class_labels_indices.csv`, or None to download it from
            `AUDIOSET_LABELS_URL` (cached in torch's hub folder).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not that CSV (wrong columns, indices not 0..526), or the download failed.
    """
    if source is None:
        source = _download(AUDIOSET_LABELS_URL, "audioset", "the AudioSet label names", "--audioset-labels")
    path = Path(os.path.expanduser(str(source)))
    if not path.is_file():
        raise FileNotFoundError(f"AudioSet label file {str(path)!r} not found: pass class_labels_indices.csv")
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    if not rows or not {"index", "display_name"} <= set(rows[0]):
        raise ValueError(f"{path} lacks the columns index,mid,display_name of AudioSet's class_labels_indices.csv")
    try:
        by_index = {int(row["index"]): row["display_name"].strip() for row in rows}
    except ValueError as err:
        raise ValueError(f"{path}: the index column must hold integers ({err})") from err
    if sorted(by_index) != list(range(AUDIOSET_NUM_CLASSES)):
        raise ValueError(
            f"{path} lists {len(by_index)} classes, not AudioSet's {AUDIOSET_NUM_CLASSES} with indices 0..526"
        )
    return [by_index[k] for k in range(AUDIOSET_NUM_CLASSES)]
