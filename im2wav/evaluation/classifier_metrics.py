"""Metrics on an audio classifier's AudioSet predictions: paired KL divergence and IMAGEHEAR accuracy.

The paper passes reference and generated audio through PaSST (527 AudioSet classes) and reports

- KL: the divergence between the class distribution of each original clip and that of the clip
  generated from its video, averaged over the pairs;
- accuracy: for IMAGEHEAR, which has no reference audio, the share of generated clips whose top
  predicted AudioSet class is one of the labels of the image's class. General classes ("Music",
  "Animal", ...) are left out of the arg-max, as in the benchmark's definition.

Both functions take class probabilities (`[N, K]`), whatever classifier produced them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

__all__ = [
    "AccuracyResult",
    "check_tagger_labels",
    "imagehear_accuracy",
    "kl_divergence",
    "paired_kl_divergence",
    "top_labels",
]

# Probabilities are clamped away from 0 and 1 so that log(0) never appears: a classifier that
# puts exactly zero mass on a class the reference predicts would otherwise give an infinite KL.
_PROBABILITY_FLOOR = 1e-12


def _check_probabilities(probs: torch.Tensor, name: str, multi_label: bool) -> torch.Tensor:
    probs = torch.as_tensor(probs).detach().to("cpu", torch.float64)
    if probs.ndim != 2:
        raise ValueError(f"{name} must be [N, K] class probabilities, one row per clip; got shape {tuple(probs.shape)}")
    if not torch.isfinite(probs).all() or probs.min() < 0 or probs.max() > 1:
        raise ValueError(f"{name} must hold probabilities in [0, 1]; apply softmax/sigmoid to the logits first")
    if not multi_label:
        sums = probs.sum(dim=-1)
        if not torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
            raise ValueError(
                f"the rows of {name} do not sum to 1 (e.g. {sums[0].item():.4f}): for independent per-class "
                "(sigmoid) probabilities pass multi_label=True"
            )
    return probs


def kl_divergence(
    reference_probs: torch.Tensor, generated_probs: torch.Tensor, multi_label: bool = False
) -> torch.Tensor:
    """Per-pair KL divergence KL(reference || generated) between class distributions.

    Row i of both inputs must describe the same item (the original clip and the clip generated
    from its video), as the paper pairs them.

    Args:
        reference_probs: `[N, K]` class probabilities of the reference audio.
        generated_probs: `[N, K]` class probabilities of the generated audio.
        multi_label: False: each row is one categorical distribution (softmax outputs, summing to 1).
            True: each entry is an independent Bernoulli probability (sigmoid outputs of a
            multi-label AudioSet tagger); the KL is then the sum over classes of the Bernoulli KLs.

    Returns:
        `[N]` float64 divergences, each >= 0 and 0 where a pair's distributions are identical.
    """
    p = _check_probabilities(reference_probs, "reference_probs", multi_label)
    q = _check_probabilities(generated_probs, "generated_probs", multi_label)
    if p.shape != q.shape:
        raise ValueError(
            f"reference_probs {tuple(p.shape)} and generated_probs {tuple(q.shape)} must have the same shape: "
            "one row per (reference, generated) pair, scored by the same classifier"
        )
    p_c = p.clamp(_PROBABILITY_FLOOR, 1.0)
    q_c = q.clamp(_PROBABILITY_FLOOR, 1.0)
    # p * log(p / q) with the convention 0 * log 0 = 0
    per_class = torch.where(p > 0, p * (p_c.log() - q_c.log()), torch.zeros_like(p))
    if multi_label:
        p_not, q_not = 1.0 - p, 1.0 - q
        per_class = per_class + torch.where(
            p_not > 0,
            p_not * (p_not.clamp(_PROBABILITY_FLOOR, 1.0).log() - q_not.clamp(_PROBABILITY_FLOOR, 1.0).log()),
            torch.zeros_like(p),
        )
    # Each term sums to a non-negative value exactly; clamp the round-off of identical rows.
    return per_class.sum(dim=-1).clamp_min(0.0)


def paired_kl_divergence(
    reference_probs: torch.Tensor, generated_probs: torch.Tensor, multi_label: bool = False
) -> float:
    """Mean of `kl_divergence` over the pairs: the paper's KL metric (lower is better).

    Args:
        reference_probs: `[N, K]` class probabilities of the reference audio.
        generated_probs: `[N, K]` class probabilities of the generated audio, row i generated for item i.
        multi_label: see `kl_divergence`.
    """
    return float(kl_divergence(reference_probs, generated_probs, multi_label).mean())


@dataclass
class AccuracyResult:
    """IMAGEHEAR accuracy of one evaluation.

    Attributes:
        accuracy: share of all clips classified correctly.
        mean_class_accuracy: the per-class accuracies averaged with equal weight per class (classes
            have different numbers of images, so this differs from `accuracy`).
        per_class: class name -> share of its clips classified correctly.
        predictions: the top predicted (non-ignored) label of every clip, in input order.
        correct: whether each clip counts as correct, in input order.
    """

    accuracy: float
    mean_class_accuracy: float
    per_class: dict[str, float]
    predictions: list[str] = field(default_factory=list)
    correct: list[bool] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "accuracy": self.accuracy,
            "mean_class_accuracy": self.mean_class_accuracy,
            "per_class": dict(self.per_class),
        }


def check_tagger_labels(
    label_names: Sequence[str], class_to_labels: Mapping[str, Iterable[str]], ignored_labels: Iterable[str] = ()
) -> None:
    """Check that every label the benchmark names is one of the classifier's labels.

    Call it before generating anything: a tagger with other label names would only fail at the end.

    Args:
        label_names: the classifier's label names.
        class_to_labels: benchmark class -> labels counted as correct.
        ignored_labels: labels excluded from the arg-max.

    Raises:
        ValueError: some labels are unknown to the classifier (it is not an AudioSet tagger, or its
            label names are spelled differently).
    """
    named = set(ignored_labels).union(*(set(labels) for labels in class_to_labels.values()))
    unknown = sorted(named - set(label_names))
    if unknown:
        raise ValueError(
            f"labels {unknown[:5]}{' ...' if len(unknown) > 5 else ''} are not among the classifier's "
            f"{len(label_names)} labels: use an AudioSet tagger whose config.id2label holds the AudioSet "
            "display names (e.g. an AudioSet-finetuned AST)"
        )


def top_labels(probs: torch.Tensor, label_names: Sequence[str], ignored_labels: Iterable[str] = ()) -> list[str]:
    """The top predicted label of every row of `probs` `[N, K]`, never one of `ignored_labels`.

    Raises:
        ValueError: every label is ignored.
    """
    ignored = set(ignored_labels)
    mask = torch.tensor([name in ignored for name in label_names], dtype=torch.bool)  # [K]
    if bool(mask.all()):
        raise ValueError("every label is ignored: nothing can be predicted")
    return [label_names[k] for k in probs.masked_fill(mask, float("-inf")).argmax(dim=-1).tolist()]


def imagehear_accuracy(
    probs: torch.Tensor,
    item_classes: Sequence[str],
    label_names: Sequence[str],
    class_to_labels: Mapping[str, Iterable[str]],
    ignored_labels: Iterable[str] = (),
) -> AccuracyResult:
    """Accuracy of generated clips: the top predicted label, ignoring `ignored_labels`, must be one
    of the labels of the clip's class.

    Args:
        probs: `[N, K]` class probabilities (or logits: only their order matters) of the generated clips.
        item_classes: the benchmark class of each clip (length N), e.g. "Dog".
        label_names: the classifier's K label names, index-aligned with `probs`' columns (AudioSet
            display names such as "Bass guitar" for an AudioSet tagger).
        class_to_labels: benchmark class -> the classifier labels that count as correct
            (IMAGEHEAR's `to_audioset`).
        ignored_labels: labels never taken as the prediction (IMAGEHEAR's
            `audioset_general_classes_ignored_for_acc`).

    Raises:
        ValueError: shapes disagree, a clip's class is unknown, or a label named in
            `class_to_labels`/`ignored_labels` is not one of the classifier's labels (the tagger is
            not an AudioSet model, or its label names are spelled differently).
    """
    probs = torch.as_tensor(probs).detach().to("cpu", torch.float64)
    label_names = list(label_names)
    if probs.ndim != 2 or probs.shape[1] != len(label_names):
        raise ValueError(
            f"probs must be [N, K] with K = len(label_names) = {len(label_names)}, got shape {tuple(probs.shape)}"
        )
    if probs.shape[0] != len(item_classes):
        raise ValueError(f"got {probs.shape[0]} rows of probabilities but {len(item_classes)} item classes")
    if probs.shape[0] == 0:
        raise ValueError("no clips to score")
    check_tagger_labels(label_names, class_to_labels, ignored_labels)
    wanted = {c: set(labels) for c, labels in class_to_labels.items()}
    missing = sorted(set(item_classes) - wanted.keys())
    if missing:
        raise ValueError(f"classes {missing} have no entry in class_to_labels")

    predictions = top_labels(probs, label_names, ignored_labels)
    correct = [pred in wanted[c] for pred, c in zip(predictions, item_classes)]

    per_class: dict[str, float] = {}
    for name in dict.fromkeys(item_classes):  # first-seen order
        hits = [ok for ok, c in zip(correct, item_classes) if c == name]
        per_class[name] = sum(hits) / len(hits)
    return AccuracyResult(
        accuracy=sum(correct) / len(correct),
        mean_class_accuracy=sum(per_class.values()) / len(per_class),
        per_class=per_class,
        predictions=predictions,
        correct=correct,
    )
