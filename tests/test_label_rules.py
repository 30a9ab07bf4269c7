"""The 'yin' and 'fedleak' label rules, on hand-made classifier gradients and on the real
gradients of a small conv+BN+ReLU model. Also home of the small victim the GradInversion and
FedLeak tests share."""

from __future__ import annotations

import copy

import torch
from torch import nn

from evalgrid.catalogue import LABEL_RULES
from evalgrid.fl.local_training import client_bn_statistics, local_update, shared_pseudo_gradient
from evalgrid.fl.threat_model import LocalTraining
from evalgrid.fl.threat_model import ClientData, Normalization, ServerView, SharedUpdate

NORMALIZATION_1 = Normalization((0.5,), (0.25,))


class SmallNet(nn.Module):
    """conv+BN+ReLU, strided conv+BN+ReLU, linear: non-negative features enter the classifier."""

    def __init__(self, channels: int = 1, num_classes: int = 10, width: int = 4, side: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        )
        self.classifier = nn.Linear(width * (side // 2) ** 2, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


def victim(seed: int, labels: list[int], *, channels: int = 1, num_classes: int = 10, side: int = 16,
           model: nn.Module | None = None, training: LocalTraining | None = None, share_bn: bool = True,
           known_labels: bool = False, images: torch.Tensor | None = None) -> tuple[ServerView, ClientData]:
    """A seeded small model, random pixels with the given labels, the client's update (FedSGD,
    or ``training``), and the attacker's view of it, built by hand as a grid cell would."""
    torch.manual_seed(seed)
    model = model if model is not None else SmallNet(channels, num_classes, side=side)
    normalization = Normalization((0.5,) * channels, (0.25,) * channels)
    if images is None:
        images = torch.rand(len(labels), channels, side, side)
    client = ClientData(images, torch.tensor(labels))
    inputs = normalization.normalize(images)
    statistics = client_bn_statistics(model, inputs) if share_bn else None
    summed = local_update(model, inputs, client.labels, training)
    gradients = shared_pseudo_gradient(model, summed, training) if training is not None else summed
    update = SharedUpdate(tuple(g.detach() for g in gradients), len(labels), statistics)
    view = ServerView(model=copy.deepcopy(model), update=update, data_shape=(channels, side, side),
                      num_classes=num_classes, normalization=normalization,
                      known_labels=client.labels.clone() if known_labels else None, local_training=training)
    return view, client


def view_of(*gradients: torch.Tensor, batch_size: int, num_classes: int) -> ServerView:
    """A view whose update is the given gradients (the rules do not consult the model)."""
    return ServerView(model=nn.Linear(3, num_classes), update=SharedUpdate(tuple(gradients), batch_size),
                      data_shape=(1, 2, 2), num_classes=num_classes, normalization=NORMALIZATION_1,
                      known_labels=None)


def rows(*rows_: list[float]) -> torch.Tensor:
    return torch.tensor(rows_)


# --- yin: smallest row minimum, non-repeating labels ---------------------------------------------

def test_yin_returns_the_classes_of_the_smallest_row_minima_most_negative_first():
    gradient = rows([0.1, 0.0, 0.2], [0.3, -0.5, 0.1], [0.0, 0.1, 0.1], [-0.2, 0.4, 0.9], [0.2, 0.2, -0.1])
    view = view_of(gradient, torch.zeros(5), batch_size=3, num_classes=5)
    assert LABEL_RULES["yin"].build(view).tolist() == [1, 3, 4]


def test_yin_reads_the_minimum_not_the_sum_of_a_row():
    # class 0 sums to the most negative value but its minimum is larger than class 2's
    gradient = rows([-0.3, -0.3, -0.3], [0.5, 0.5, 0.5], [-0.6, 0.5, 0.5], [0.1, 0.1, 0.1])
    view = view_of(gradient, torch.zeros(4), batch_size=1, num_classes=4)
    assert LABEL_RULES["yin"].build(view).tolist() == [2]
    assert LABEL_RULES["idlg"].build(view).tolist() == [0]


def test_idlg_beyond_one_image_counts_repeated_labels_by_the_row_sums():
    # Row sums s = (-4, -4, 8), B = 4 > K = 3: FedLeak's counts n_k = ⌊B·m_k/Σm⌋ with
    # m_k = max(-s_k, 0) = (4, 4, 0) give two samples each of classes 0 and 1 (iDLG's paper has
    # B = 1 only; repeating the most negative class would give 0, 1, 0, 0).
    gradient = rows([-4.0, 0.0], [-2.0, -2.0], [4.0, 4.0])
    view = view_of(gradient, torch.zeros(3), batch_size=4, num_classes=3)
    assert LABEL_RULES["idlg"].build(view).tolist() == [0, 0, 1, 1]
    two = view_of(gradient, torch.zeros(3), batch_size=2, num_classes=3)
    assert LABEL_RULES["idlg"].build(two).tolist() == [0, 1]  # B ≤ K: the B most negative sums


def test_yin_repeats_all_classes_cyclically_when_the_batch_exceeds_the_classes():
    gradient = rows([0.0, -0.1], [-0.5, 0.2], [0.3, 0.1])
    view = view_of(gradient, torch.zeros(3), batch_size=7, num_classes=3)
    assert LABEL_RULES["yin"].build(view).tolist() == [1, 0, 2, 1, 0, 2, 1]


def test_yin_recovers_non_repeating_labels_from_real_gradients():
    generator = torch.Generator().manual_seed(0)
    for seed in range(10):
        labels = torch.randperm(10, generator=generator)[:4].tolist()
        view, client = victim(seed, labels)
        recovered = LABEL_RULES["yin"].build(view)
        assert sorted(recovered.tolist()) == sorted(labels), f"seed {seed}"
        assert recovered.dtype == torch.int64


# --- fedleak: most negative row sums; counts by magnitude when B > K ------------------------------

def test_fedleak_returns_the_most_negative_row_sums_when_the_batch_fits_the_classes():
    gradient = rows([0.3, 0.3], [-0.1, -0.1], [-0.4, 0.1], [0.2, -0.9])
    view = view_of(gradient, torch.zeros(4), batch_size=3, num_classes=4)
    assert LABEL_RULES["fedleak"].build(view).tolist() == [3, 2, 1]  # sums 0.6, -0.2, -0.3, -0.7


def test_fedleak_counts_classes_by_negative_magnitude_and_fills_from_the_lowest_sum():
    # sums -0.3, -0.2, +0.5: counts ⌊6·0.3/0.5⌋ = 3 and ⌊6·0.2/0.5⌋ = 2, the sixth goes to class 0
    gradient = rows([-0.1, -0.2], [-0.2, 0.0], [0.25, 0.25])
    view = view_of(gradient, torch.zeros(3), batch_size=6, num_classes=3)
    labels = LABEL_RULES["fedleak"].build(view)
    assert labels.tolist() == [0, 0, 0, 0, 1, 1]
    assert labels.dtype == torch.int64


def test_fedleak_recovers_exact_counts_from_constructed_gradients():
    # a classifier gradient whose negative row sums are proportional to the counts
    counts = torch.tensor([4, 0, 3, 1, 0])
    sums = torch.where(counts > 0, -counts.float(), torch.tensor(2.0))
    view = view_of(sums.unsqueeze(1).repeat(1, 2) / 2, torch.zeros(5), batch_size=8, num_classes=5)
    assert torch.bincount(LABEL_RULES["fedleak"].build(view), minlength=5).tolist() == counts.tolist()


def test_fedleak_gives_every_sample_the_argmin_class_when_no_row_sum_is_negative():
    gradient = rows([0.4, 0.0], [0.1, 0.0], [0.3, 0.0])
    view = view_of(gradient, torch.zeros(3), batch_size=5, num_classes=3)
    assert LABEL_RULES["fedleak"].build(view).tolist() == [1] * 5


def test_fedleak_recovers_a_single_class_batch_larger_than_the_classes_from_real_gradients():
    for seed in range(5):
        view, _ = victim(seed, [seed % 3] * 6, num_classes=3)
        assert LABEL_RULES["fedleak"].build(view).tolist() == [seed % 3] * 6, f"seed {seed}"


def test_fedleak_recovers_distinct_labels_from_real_gradients():
    generator = torch.Generator().manual_seed(1)
    for seed in range(10):
        labels = torch.randperm(10, generator=generator)[:4].tolist()
        view, _ = victim(seed, labels)
        assert sorted(LABEL_RULES["fedleak"].build(view).tolist()) == sorted(labels), f"seed {seed}"
