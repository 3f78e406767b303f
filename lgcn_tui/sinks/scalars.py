"""The numbers an outside logger charts, named once so TensorBoard and W&B show the same tags.

Each event becomes ``{tag: value}`` at the event's global step: the loss and each of its
terms (``loss``, ``loss/bpr``, ...), gradient norms and learning rates per group
(``grad/user``, ``lr/item``), the residual mix ``alpha`` while there is one, evaluation
metrics as ``SPLIT/METRIC`` (``valid/recall@20``) with the baselines under ``popularity/``
and ``text/`` so they never share a chart line with the model, and item retention
(``retention/mean``, ``retention/p10``) when items started from pretrained vectors.
Other events chart nothing.
"""

from __future__ import annotations

from ..contract import events as ev


def scalars(event: ev.Event) -> dict[str, float]:
    if isinstance(event, ev.StepMetrics):
        out = {"loss": event.loss, **{f"loss/{name}": value for name, value in event.terms.items()},
               "grad/user": event.grad_user, "grad/item": event.grad_item,
               "lr/user": event.lr_user, "lr/item": event.lr_item}
        if event.alpha is not None:
            out["alpha"] = event.alpha
        return out
    if isinstance(event, ev.EvalResult):
        prefix = event.split if event.model == "lightgcn" else f"{event.model}/{event.split}"
        return {f"{prefix}/{metric}": value for metric, value in event.metrics.items()}
    if isinstance(event, ev.Diagnostics):
        kept = {"retention/mean": event.retention, "retention/p10": event.retention_p10}
        return {tag: value for tag, value in kept.items() if value is not None}
    return {}
