"""Classification heads on the 1,024-dim LDE embedding, as the authors' code builds them.

The paper says only that pre-training ends in a softmax layer which fine-tuning replaces by
sigmoid outputs; the layers are the authors' (nii-yamagishilab/predominant-instrument-
recognition):
  - "pretrain": Linear(1024, 512) -> BatchNorm1d(512) -> LeakyReLU -> Linear(512, classes)
    (src/models/instr_emd_sinc_model.py fc0, bn0; src/models/mie/heads.py LinearClsHead
    with hidden_dim=512 from model_configs/irnet.py). LinearClsHead initialises its
    Linear's weights from N(1, 0.01) and its bias at 0, and so does this head.
  - "finetune": ReLU -> BatchNorm1d(1024) -> Dropout(0.15) -> Linear(1024, classes), which
    replaces the whole pre-training head (src/lms/irmas_mie.py, csf="mlp").
  - "finetune-leaky": the same with LeakyReLU, as the authors' from-scratch IRMAS training
    builds it (src/lms/no_pre_irmas_mie.py).
  - "linear": one Linear(1024, classes) in both stages (instrec's first reading).
The parameter counts the paper prints are those of the fine-tuned model (see zoo.py).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from instrec.errors import InstrecError

HEADS = ("pretrain", "finetune", "finetune-leaky", "linear")
PRETRAIN_HIDDEN = 512  # model_configs/irnet.py: head1.hidden_dim
FINETUNE_DROPOUT = 0.15  # src/lms/irmas_mie.py


def build_head(kind: str, in_features: int, num_classes: int) -> nn.Module:
    """(batch, in_features) -> (batch, num_classes) logits; `kind` is one of HEADS."""
    if kind == "pretrain":
        return _pretrain_head(in_features, num_classes)
    if kind in ("finetune", "finetune-leaky"):
        activation = nn.ReLU() if kind == "finetune" else nn.LeakyReLU()
        return nn.Sequential(
            OrderedDict(
                act=activation,
                norm=nn.BatchNorm1d(in_features),
                drop=nn.Dropout(FINETUNE_DROPOUT),
                out=nn.Linear(in_features, num_classes),
            )
        )
    if kind == "linear":
        return nn.Linear(in_features, num_classes)
    raise InstrecError(f"unknown head {kind!r} (choose from {', '.join(HEADS)})")


def _pretrain_head(in_features: int, num_classes: int) -> nn.Sequential:
    out = nn.Linear(PRETRAIN_HIDDEN, num_classes)
    nn.init.normal_(out.weight, mean=1.0, std=0.01)  # LinearClsHead.init_weights
    nn.init.zeros_(out.bias)
    return nn.Sequential(
        OrderedDict(
            hidden=nn.Linear(in_features, PRETRAIN_HIDDEN),
            norm=nn.BatchNorm1d(PRETRAIN_HIDDEN),
            act=nn.LeakyReLU(),
            out=out,
        )
    )
