"""timm's classifier protocol for zoo's model classes.

Every family names its final ``nn.Linear`` (``classifier_path``) and splits its forward pass into
``forward_features`` (the body) and ``forward_head`` (pooling/flattening, the hidden head layers, then
the final Linear; ``pre_logits=True`` stops before it). ``forward`` itself is left as each family
writes it, so scripting, exports and recorded accuracies are untouched.
"""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["ClassifierMixin"]


class ClassifierMixin:
    """``get_classifier``, ``reset_classifier`` and ``num_features`` from ``classifier_path``.

    Each family sets ``self.classifier_path`` (the dotted name of its final nn.Linear, e.g. ``"linear"`` or
    ``"classifier.6"``) in ``__init__``. TorchScript leaves these helpers alone: ``forward`` never uses them.
    """

    __jit_unused_properties__ = ["num_features", "num_classes"]  # properties TorchScript must not compile

    def get_classifier(self) -> nn.Module:
        return self.get_submodule(self.classifier_path)  # type: ignore[attr-defined]

    @property
    def num_features(self) -> int:
        """Width of the input of the final Linear (what ``forward_head(x, pre_logits=True)`` returns)."""
        head = self.get_classifier()
        return head.in_features if isinstance(head, nn.Linear) else self._num_features

    @property
    def num_classes(self) -> int:
        head = self.get_classifier()
        return head.out_features if isinstance(head, nn.Linear) else 0

    def reset_classifier(self, num_classes: int) -> None:
        """A new final Linear with ``num_classes`` outputs (PyTorch's default initialisation, on the old
        one's device and dtype); 0 makes it an identity, so the model returns pre-logit features."""
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        old = self.get_classifier()
        width = self.num_features
        param = next(old.parameters(), None)
        new: nn.Module = nn.Identity() if num_classes == 0 else nn.Linear(
            width, num_classes, bias=not isinstance(old, nn.Linear) or old.bias is not None,
            device=param.device if param is not None else None, dtype=param.dtype if param is not None else None)
        self._num_features = width
        parent, _, child = self.classifier_path.rpartition(".")
        setattr(self.get_submodule(parent) if parent else self, child, new)  # type: ignore[attr-defined]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        raise NotImplementedError


def run_head(classifier: nn.Sequential, x: torch.Tensor, pre_logits: bool) -> torch.Tensor:
    """A Sequential head whose last module is the final Linear: all of it, or all but that."""
    layers = list(classifier)
    for layer in layers[:-1]:
        x = layer(x)
    return x if pre_logits else layers[-1](x)
