"""User-style PyTorch modules whose forward() is not readable from a state dict, for ``verify --module``.

Both hold the same keys (``gru.*``, ``fc.*``), so a state dict of one loads into the other; only
``GruSigmoidHead`` applies ``torch.sigmoid`` in forward(), which the state dict cannot show.
"""

from __future__ import annotations

import torch
from torch import nn


class GruHead(nn.Module):
    """GRU -> Linear, batch first."""

    def __init__(self, input_size: int = 6, hidden_size: int = 8, output_size: int = 3):
        super().__init__()
        self.gru = nn.GRU(input_size, hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.gru(x)
        return self.fc(y)


class GruSigmoidHead(GruHead):
    """GRU -> Linear -> sigmoid applied in forward()."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(super().forward(x))
