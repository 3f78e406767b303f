"""Graph contrastive terms with noise views: SimGCL and XSimGCL (Yu et al., SIGIR 2022; TKDE 2023).

Each layer's output of a perturbed propagation gets uniform noise of magnitude ε,
sign-aligned with the vector, so it turns the vector by a bounded angle without flipping it:

    h ← h + ε · sign(h) ⊙ normalize(U(0, 1)^d)          (every layer k ≥ 1, every node)

and the term is InfoNCE between two views of the batch's unique users U and unique
positive items I, L2-normalised, temperature τ, the other rows of the batch as negatives:

    InfoNCE(a, b) = −1/n Σ_r log( e^{â_r·b̂_r/τ} / Σ_s e^{â_r·b̂_s/τ} )
    simgcl  = λ · (InfoNCE(u', u'')[U] + InfoNCE(i', i'')[I])      two perturbed propagations
    xsimgcl = λ · (InfoNCE(u, u*)[U] + InfoNCE(i, i*)[I])         one: final vs. layer l*

Contrast makes the embeddings more uniform on the sphere, which is what helps (the SimGCL
paper's finding); the noise is a cheap stand-in for graph augmentations. XSimGCL takes both
views from one propagation (its final output and its own layer l*), so it costs one extra
propagation where SimGCL costs two. By default the ranking loss keeps the step's clean
propagation; with ``objective.cl_noisy_ranking`` the noisy propagation *is* the step's
(``step_hook``), as in XSimGCL's paper and SELFRec: the ranking loss sees the noisy vectors
and the step propagates once, over every node. The final vectors follow ``model.combine``
(SELFRec's mean leaves out layer 0: ``hops``). All noise comes from the context's
generator, drawn in layer order, so runs repeat. Defaults are XSimGCL's (λ 0.2, ε 0.2,
τ 0.15, l* 1); SimGCL's paper used λ 0.5, ε 0.1, τ 0.2 on Yelp2018.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import Config
from . import Batch, Context, Hook, register
from .unique import first_occurrence


def uniform(shape: torch.Size, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """U(0, 1) at 16-bit resolution, three numbers from each 63-bit draw.

    ``torch.rand`` on the CPU draws one Mersenne-twister number per value: 40–55 ms for a
    Gowalla table of 70k × 64, twice per step, about a third of an XSimGCL step. Bits 0–47
    of ``random_()``'s uniform 63-bit integers are three uniform 16-bit numbers, drawn in
    about a third of the time; a noise direction needs no finer grain.
    """
    count = shape.numel()
    draws = torch.empty(-(-count // 3), dtype=torch.int64, device=device).random_(generator=generator)
    lanes = draws.view(torch.int16).view(-1, 4)[:, :3].float().view(-1)[:count]  # one copy: the conversion
    return lanes.add_(32768.5).mul_(1 / 65536).view(shape)


def noise_hook(eps: float, generator: torch.Generator) -> Hook:
    """SimGCL's per-layer perturbation, for ``LightGCN.perturbed``.

    The noise is added as a constant: its only dependence on h is through sign(h), whose
    gradient is zero, so autograd need not carry it.
    """

    def perturb(_k: int, h: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            noise = uniform(h.shape, generator, h.device)
            noise.div_(noise.norm(dim=-1, keepdim=True).clamp_min_(1e-12).div_(eps)).mul_(torch.sign(h))
        return h + noise.to(h.dtype)

    return perturb


def info_nce(anchor: torch.Tensor, other: torch.Tensor, temperature: float,
             keep: torch.Tensor | None = None) -> torch.Tensor:
    """Row r of ``anchor`` against every row of ``other``, its own row the positive (cosine / τ).
    ``keep``: the rows that count, as rows and as negatives (default all): the same value as
    for ``anchor[keep]`` and ``other[keep]``."""
    with torch.autocast(device_type=anchor.device.type, enabled=False):
        a, b = F.normalize(anchor.float(), dim=-1), F.normalize(other.float(), dim=-1)
        logits = a @ b.T / temperature
        if keep is None:
            return (torch.logsumexp(logits, 1) - logits.diagonal()).mean()
        logits = logits.masked_fill(~keep.unsqueeze(0), float("-inf"))
        per_row = (torch.logsumexp(logits, 1) - logits.diagonal()).masked_fill(~keep, 0.0)
        return per_row.sum() / keep.sum()


def _views_loss(batch: Batch, first: tuple[torch.Tensor, torch.Tensor], second: tuple[torch.Tensor, torch.Tensor],
                temperature: float) -> torch.Tensor:
    users, items = batch.users, batch.pos
    return (info_nce(first[0].index_select(0, users), second[0].index_select(0, users), temperature,
                     first_occurrence(users))
            + info_nce(first[1].index_select(0, items), second[1].index_select(0, items), temperature,
                       first_occurrence(items)))


class SimGcl:
    name = "simgcl"

    def __init__(self, weight: float, eps: float, temperature: float) -> None:
        self.weight, self.eps, self.temperature = weight, eps, temperature

    def __call__(self, batch: Batch, ctx: Context) -> torch.Tensor:
        perturb = noise_hook(self.eps, ctx.generator)
        first = ctx.model.perturbed(ctx.adj, perturb)
        second = ctx.model.perturbed(ctx.adj, perturb)
        return self.weight * _views_loss(batch, first, second, self.temperature)


class XSimGcl:
    name = "xsimgcl"

    def __init__(self, weight: float, eps: float, temperature: float, layer: int, noisy_ranking: bool) -> None:
        self.weight, self.eps, self.temperature, self.layer = weight, eps, temperature, layer
        self.step_hook = self._hook if noisy_ranking else None

    def _hook(self, ctx: Context) -> tuple[Hook, list[torch.Tensor]]:
        """The noise of every layer, keeping layer l* for the contrast."""
        noisy, kept = noise_hook(self.eps, ctx.generator), []

        def perturb(k: int, h: torch.Tensor) -> torch.Tensor:
            h = noisy(k, h)
            if k == self.layer:
                kept.append(h)
            return h

        return perturb, kept

    def __call__(self, batch: Batch, ctx: Context) -> torch.Tensor:
        if batch.views is not None:
            v = batch.views
            return self.weight * (info_nce(v.out.index_select(0, v.user_rows), v.layer.index_select(0, v.user_rows),
                                           self.temperature, v.user_first)
                                  + info_nce(v.out.index_select(0, v.item_rows), v.layer.index_select(0, v.item_rows),
                                             self.temperature, v.item_first))
        model = ctx.model
        perturb, kept = self._hook(ctx)
        final = model.perturbed(ctx.adj, perturb)
        (layer,) = kept
        if model.position is not None:  # table order -> node order, as ``LightGCN.perturbed``
            layer = layer.index_select(0, model.position)
        return self.weight * _views_loss(batch, final, (layer[: model.n_users], layer[model.n_users :]),
                                         self.temperature)


def _make_simgcl(cfg: Config) -> SimGcl:
    o = cfg.objective
    return SimGcl(o.cl_weight, o.cl_eps, o.cl_temperature)


def _make_xsimgcl(cfg: Config) -> XSimGcl:
    o = cfg.objective
    return XSimGcl(o.cl_weight, o.cl_eps, o.cl_temperature, o.cl_layer, o.cl_noisy_ranking)


register("simgcl", _make_simgcl)
register("xsimgcl", _make_xsimgcl)
