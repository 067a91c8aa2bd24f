"""The optional hierarchical loss (``model.hierarchy_loss_weight``): no extra heads.

At every rank above the target that the classes span (``taxonomy``: rank -> the group of
each class, :func:`src.data.taxonomy.class_taxonomy`), an image's probability of a
group is the sum of the softmax probabilities of the classes inside it; the loss adds
``weight`` times the mean over those ranks of the cross-entropy of the true group. Mistakes
inside the right phylum then cost less than mistakes across phyla.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from src.errors import ConfigError


class HierarchyLoss(nn.Module):
    def __init__(
        self,
        taxonomy: Mapping[str, Sequence[str]] | None,
        class_names: Sequence[str],
        weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.weight = float(weight)
        if self.weight < 0:
            raise ConfigError(
                f"model.hierarchy_loss_weight={weight} must be 0 (off) or positive (0.5 is a "
                "common start)."
            )
        self.ranks: list[str] = []
        if not self.weight:
            return
        if not taxonomy:
            raise ConfigError(
                f"model.hierarchy_loss_weight={weight} needs ranks above the target at which "
                "the classes differ, and this index has none; set model.hierarchy_loss_weight=0 "
                "or a lower data.target."
            )
        for rank, groups in taxonomy.items():
            if len(groups) != len(class_names):
                raise ValueError(
                    f"taxonomy[{rank!r}] has {len(groups)} groups for {len(class_names)} classes"
                )
            names = sorted(set(groups))
            index = torch.tensor([names.index(g) for g in groups], dtype=torch.long)
            # not in the state dict: checkpoints stay loadable with or without this loss
            self.register_buffer(f"group_{len(self.ranks)}", index, persistent=False)
            self.ranks.append(rank)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``weight`` x the mean over ranks of -log p(true group)."""
        log_p = logits.log_softmax(1)
        losses = []
        for i in range(len(self.ranks)):
            group = getattr(self, f"group_{i}")
            in_true_group = group[None, :] == group[labels][:, None]
            losses.append(-torch.logsumexp(log_p.masked_fill(~in_true_group, -torch.inf), 1).mean())
        return self.weight * torch.stack(losses).mean()
