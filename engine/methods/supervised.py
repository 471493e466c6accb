"""`supervised`: the labelled subset only, the baseline every table is read against."""
from __future__ import annotations

from engine.methods.base import Method, supervised_loss
from engine.methods.registry import register_method
from engine.options import Option


@register_method(
    "supervised",
    family="baseline",
    paper="Supervised training on the labelled subset (the lower bound in every SSL paper)",
    options=(Option("aux_weight", "float", 0.4, "Weight of the auxiliary head's loss (PSPNet, DDRNet).",
                    min=0, max=10),),
)
class Supervised(Method):
    def __init__(self, model_factory, num_classes: int, *, aux_weight: float):
        super().__init__(model_factory, num_classes)
        self.aux_weight = aux_weight

    def training_step(self, labeled, unlabeled, step, total_steps):
        loss = supervised_loss(self.model.forward_train(labeled["image"]), labeled["mask"], self.aux_weight)
        return {"loss": loss}
