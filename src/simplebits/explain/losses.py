"""The losses of post-hoc simplification (paper §5, Alg. 1/2, S5; REFERENCE.md §4).

*Forgetting*: the trained classifier ``f`` is copied with every parameter multiplied by one
scale ``s ~ U(0.8, 0.95)`` drawn per step (``f_s``). The simplified input should carry what the
network needs to *relearn* the original prediction:

- ``L_grad``: for each example, the gradients with respect to the scaling gates (one gate per
  parameter entry, all at ``s``; the gradient on a gate is the parameter times the gradient on
  the scaled parameter) of ``KL(f(x) || f_s(x))`` on the original and of
  ``KL(f(x) || f_s(x_sim))`` on the simplified input. Per layer (parameter tensor), the cosine
  distance ``1 - cos`` between the two, restricted to the entries where the original's gradient
  is negative, averaged over layers and examples. Per-example gradients come from
  ``torch.func.vmap(torch.func.grad(...))``; the loss is differentiated through them (a
  second-order term), with no extra dependency.
- ``L_pred = KL(f(x) || f(x_sim)) + KL(f_s(x) || f_s(x_sim))``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

__all__ = ["kl", "gate_gradients", "grad_distance", "ForgettingLoss"]


def kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """Per-example ``KL(softmax(p) || softmax(q))``."""
    logp = F.log_softmax(p_logits, dim=-1)
    return (logp.exp() * (logp - F.log_softmax(q_logits, dim=-1))).sum(-1)


def gate_gradients(
    model: nn.Module,
    params: dict[str, torch.Tensor],
    buffers: dict[str, torch.Tensor],
    scale: float,
    x: torch.Tensor,
    target_logits: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Per-example gradients of ``KL(softmax(target) || f_s(x_i))`` w.r.t. the gates (all at
    ``scale``): ``{name: (B, *param.shape)}``. Differentiable w.r.t. ``x``."""
    names = list(params)
    gates = {n: torch.full_like(params[n], scale) for n in names}
    target = F.softmax(target_logits, dim=-1).detach()

    def one(g: dict[str, torch.Tensor], xi: torch.Tensor, ti: torch.Tensor) -> torch.Tensor:
        scaled = {n: params[n] * g[n] for n in names}
        out = functional_call(model, (scaled, buffers), (xi.unsqueeze(0),))[0]
        return (ti * (ti.clamp_min(1e-12).log() - F.log_softmax(out, dim=-1))).sum()

    return vmap(grad(one), in_dims=(None, 0, 0))(gates, x, target)


def grad_distance(g_orig: dict[str, torch.Tensor], g_sim: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean over layers and examples of ``1 - cos(g_orig[m], g_sim[m])``, ``m = g_orig < 0``."""
    dists = []
    for name, a in g_orig.items():
        a = a.detach().flatten(1)
        b = g_sim[name].flatten(1)
        m = (a < 0).to(b.dtype)
        am, bm = a * m, b * m
        cos = (am * bm).sum(1) / (am.norm(dim=1) * bm.norm(dim=1) + 1e-12)
        has = m.sum(1) > 0  # a layer with no negative entry for an example says nothing
        dists.append(torch.where(has, 1.0 - cos, torch.zeros_like(cos)))
    return torch.stack(dists).mean()


def _loop_gate_gradients(scaled: nn.Module, orig: list[torch.Tensor], names: list[str], x: torch.Tensor,
                         target_logits: torch.Tensor, *, create_graph: bool) -> dict[str, torch.Tensor]:
    """Per-example gate gradients by a loop over examples, for modules ``torch.func`` cannot
    call (TorchScript). ``scaled`` holds the scaled parameters; gate gradient = parameter x
    gradient on the scaled parameter."""
    target = F.softmax(target_logits, dim=-1).detach()
    params = list(scaled.parameters())
    out: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    for i in range(x.shape[0]):
        logq = F.log_softmax(scaled(x[i : i + 1])[0], dim=-1)
        loss = (target[i] * (target[i].clamp_min(1e-12).log() - logq)).sum()
        grads = torch.autograd.grad(loss, params, create_graph=create_graph)
        for n, g, o in zip(names, grads, orig):
            out[n].append(g * o)
    return {n: torch.stack(v) for n, v in out.items()}


class ForgettingLoss:
    """``L_grad + L_pred`` for a frozen classifier; call with the originals, their logits
    (computed once) and the candidate inputs, and a scale ``s`` drawn by the caller.

    Eager modules use ``torch.func`` (batched per-example gradients). TorchScript modules, which
    ``torch.func`` cannot call, use a scaled copy and a loop over examples (same values, slower).
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model.eval()
        self.params = {k: v.detach() for k, v in model.named_parameters()}
        self.buffers = {k: v.detach() for k, v in model.named_buffers()}
        for p in model.parameters():
            p.requires_grad_(False)
        self.scripted = isinstance(model, torch.jit.ScriptModule)
        if self.scripted:
            import copy

            self.scaled = copy.deepcopy(model).eval()
            for p in self.scaled.parameters():
                p.requires_grad_(True)

    def _set_scale(self, scale: float) -> None:
        with torch.no_grad():
            for p, o in zip(self.scaled.parameters(), self.params.values()):
                p.copy_(o * scale)
                p.grad = None

    def scaled_logits(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        if self.scripted:
            self._set_scale(scale)
            return self.scaled(x)
        scaled = {n: p * scale for n, p in self.params.items()}
        return functional_call(self.model, (scaled, self.buffers), (x,))

    def _gates(self, scale: float, x: torch.Tensor, h: torch.Tensor, *, create_graph: bool) -> dict[str, torch.Tensor]:
        if self.scripted:
            return _loop_gate_gradients(self.scaled, list(self.params.values()), list(self.params), x, h,
                                        create_graph=create_graph)
        return gate_gradients(self.model, self.params, self.buffers, scale, x, h)

    def __call__(self, x: torch.Tensor, h: torch.Tensor, x_new: torch.Tensor, scale: float) -> dict[str, torch.Tensor]:
        if self.scripted:
            self._set_scale(scale)  # once per call: the graph below holds the scaled copy's weights
            scaled_fn = self.scaled
        else:
            scaled_fn = lambda inp: self.scaled_logits(inp, scale)  # noqa: E731
        with torch.no_grad():
            h_s = scaled_fn(x)
        g_orig = {k: v.detach() for k, v in self._gates(scale, x, h, create_graph=False).items()}
        g_new = self._gates(scale, x_new, h, create_graph=True)
        l_grad = grad_distance(g_orig, g_new)
        l_pred = (kl(h, self.model(x_new)) + kl(h_s, scaled_fn(x_new))).mean()
        return {"grad": l_grad, "pred": l_pred}
