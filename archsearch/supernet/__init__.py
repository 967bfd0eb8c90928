"""One-shot search: a weight-sharing supernet compiled from a search space, trained once, whose
members are scored with the weights they inherit (SPOS, AutoFormer, OFA; CvT-13-NAS used DA-NAS).

Sharing rules live with the kinds (:class:`archsearch.kinds.Share`); a member is the ordinary
``build(plan)`` model with its learned tensors cut from the supernet's slots.
"""

from ._choices import ExtremeSuggest, covering_overrides, direction, refusals
from ._members import inherited_accuracy, recalibrate, save_member, validation_accuracy
from ._net import Supernet, SupernetError
from ._slots import Use, member_uses, take
from ._train import SupernetRun, load_supernet_weights, sample_path, shrink, train_supernet

__all__ = [
    "ExtremeSuggest",
    "Supernet",
    "SupernetError",
    "SupernetRun",
    "Use",
    "covering_overrides",
    "direction",
    "inherited_accuracy",
    "load_supernet_weights",
    "member_uses",
    "recalibrate",
    "refusals",
    "sample_path",
    "save_member",
    "shrink",
    "take",
    "train_supernet",
    "validation_accuracy",
]
