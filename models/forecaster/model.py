"""The forecaster: a LayerNorm-LSTM (Ba, Kiros & Hinton 2016) or LayerNorm-GRU with direct multi-horizon quantiles.

Reads top to bottom: norms and cells, masked statistics, the config, then the model and the in-graph ensemble.
The recurrence is a Python loop over the fixed lookback, so the ONNX export is unrolled (no Loop/Scan).

The graph works in the ES-RNN space of features.py: z_t = log(x_t / (s_t L)). Inside it, the window is scaled
once more by d, the mean |z_t - z_{t-1}| of its real steps (the series' relative volatility), and the output is
anchor + d * residual: the network predicts quantiles of the departure from the Theta forecast.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from models.layers import make_norm, masked_statistics

N_STEP = 5  # per time step: z, z / d, (z_t - z_{t-1}) / d, log season, mask


class LNLSTMLayer(nn.Module):
    """gates = N_ih(W_ih x) + N_hh(W_hh h); c' = σ(f)c + σ(i)tanh(g); h' = σ(o)tanh(N_c(c')).

    The raw cell c' is carried to the next step (Ba et al.); only the output tanh sees the normalised cell.
    Padding steps (mask = 0) leave the state unchanged, so a left-padded series starts from the zero state.
    """

    n_gates = 4
    names = ("gates_ih_pre", "gates_ih_post", "gates_hh_pre", "gates_hh_post", "cell_norm", "hidden")

    def __init__(self, n_in: int, hidden: int, norm_type: str, eps: float) -> None:
        super().__init__()
        self.hidden = hidden
        self.w_ih = nn.Linear(n_in, self.n_gates * hidden, bias=False)
        self.w_hh = nn.Linear(hidden, self.n_gates * hidden, bias=False)
        self.norm_ih = make_norm(norm_type, self.n_gates * hidden, eps, bias=True)
        self.norm_hh = make_norm(norm_type, self.n_gates * hidden, eps, bias=True)
        self.norm_c = make_norm(norm_type, hidden, eps, bias=True)
        with torch.no_grad():  # forget-gate bias 1 (Jozefowicz et al. 2015)
            self.norm_ih.bias[hidden : 2 * hidden].fill_(1.0)

    def step(self, gi: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, ...]:
        gh_pre = self.w_hh(h)  # [B, 4H]
        gh_post = self.norm_hh(gh_pre)  # [B, 4H]
        i, f, o, g = (gi + gh_post).split(self.hidden, dim=-1)  # 4 x [B, H]
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)  # [B, H]
        c_norm = self.norm_c(c_new)  # [B, H]
        h_new = torch.sigmoid(o) * torch.tanh(c_norm)  # [B, H]
        return h_new, c_new, gh_pre, gh_post, c_norm

    def forward(self, x: torch.Tensor, mask: torch.Tensor, record: bool) -> tuple[torch.Tensor, dict]:
        B = x.shape[0]
        gi_pre = self.w_ih(
            x
        )  # [B, T, 4H]: the input side needs no recurrence, so it runs for all steps at once
        gi_post = self.norm_ih(gi_pre)  # [B, T, 4H]
        h = x.new_zeros(B, self.hidden)  # [B, H]
        c = x.new_zeros(B, self.hidden)  # [B, H]
        out, rec = [], {"gates_hh_pre": [], "gates_hh_post": [], "cell_norm": []}
        # unbind exports as one Split, where indexing per step would add a Slice and its constants per step
        for gi, m in zip(gi_post.unbind(1), mask.unsqueeze(-1).unbind(1), strict=True):  # [B, 4H], [B, 1]
            h_new, c_new, gh_pre, gh_post, c_norm = self.step(gi, h, c)
            h = h + m * (h_new - h)  # padding (m = 0) keeps the state
            c = c + m * (c_new - c)
            out.append(h_new)
            if record:
                rec["gates_hh_pre"].append(gh_pre)
                rec["gates_hh_post"].append(gh_post)
                rec["cell_norm"].append(c_norm)
        hs = torch.stack(out, dim=1)  # [B, T, H]
        acts = {}
        if record:
            acts = {"gates_ih_pre": gi_pre, "gates_ih_post": gi_post} | {
                k: torch.stack(v, 1) for k, v in rec.items()
            }
            acts["hidden"] = hs
        return hs, acts | {"last": h}


class LNGRULayer(LNLSTMLayer):
    """r, z = σ(N_ih(W_ih x) + N_hh(W_hh h)); n = tanh(gi_n + r ⊙ gh_n); h' = (1 - z) n + z h."""

    n_gates = 3
    names = ("gates_ih_pre", "gates_ih_post", "gates_hh_pre", "gates_hh_post", "hidden")

    def __init__(self, n_in: int, hidden: int, norm_type: str, eps: float) -> None:
        nn.Module.__init__(self)
        self.hidden = hidden
        self.w_ih = nn.Linear(n_in, 3 * hidden, bias=False)
        self.w_hh = nn.Linear(hidden, 3 * hidden, bias=False)
        self.norm_ih = make_norm(norm_type, 3 * hidden, eps, bias=True)
        self.norm_hh = make_norm(norm_type, 3 * hidden, eps, bias=True)

    def step(self, gi: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, ...]:
        gh_pre = self.w_hh(h)  # [B, 3H]
        gh_post = self.norm_hh(gh_pre)  # [B, 3H]
        ri, zi, ni = gi.split(self.hidden, dim=-1)  # 3 x [B, H]
        rh, zh, nh = gh_post.split(self.hidden, dim=-1)  # 3 x [B, H]
        r, z = torch.sigmoid(ri + rh), torch.sigmoid(zi + zh)  # [B, H]
        h_new = (1 - z) * torch.tanh(ni + r * nh) + z * h  # [B, H]
        return h_new, c, gh_pre, gh_post, h_new


@dataclass
class ForecasterConfig:
    context_length: int = 48  # steps the features provide (the longest member lookback)
    lookback: int = 48  # steps this network reads (the last `lookback` of the context)
    max_horizon: int = 24
    quantiles: list[float] = field(default_factory=lambda: [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95])
    n_static: int = 10
    cell: str = "lstm"  # lstm | gru
    n_layer: int = 2
    hidden: int = 64
    norm_type: str = "layernorm"  # layernorm | rmsnorm
    norm_eps: float = 1e-5
    feature_clip: float = 20.0  # inputs in units of d are clipped so one outlier cannot saturate every gate
    min_diff: float = 1e-3  # floor of d (log units: 0.1% per step; a constant series has d = 0)
    anchored: bool = (
        True  # predict around the Theta forecast; False: around the level (plain ES-RNN), Theta unseen
    )

    @property
    def norm_placement(self) -> str:
        return f"ln-{self.cell}"

    def to_dict(self) -> dict:
        return asdict(self) | {"norm_placement": self.norm_placement, "residual_scale": 1.0}


class Forecaster(nn.Module):
    def __init__(self, config: ForecasterConfig) -> None:
        super().__init__()
        self.config = config
        layer = {"lstm": LNLSTMLayer, "gru": LNGRULayer}[config.cell]
        n_in = [N_STEP + config.n_static + 1] + [config.hidden] * (config.n_layer - 1)
        self.layers = nn.ModuleList(layer(k, config.hidden, config.norm_type, config.norm_eps) for k in n_in)
        self.n_q = len(config.quantiles)
        self.mid = config.quantiles.index(0.5)
        n_head = config.n_layer * config.hidden + config.n_static + 1 + config.max_horizon
        self.head = nn.Sequential(
            nn.Linear(n_head, config.hidden),
            nn.GELU(),
            nn.Linear(config.hidden, config.max_horizon * self.n_q),
        )
        nn.init.normal_(self.head[-1].weight, std=0.01 / math.sqrt(config.hidden))
        nn.init.zeros_(self.head[-1].bias)

    @property
    def layer_names(self) -> list[str]:
        return [
            f"{self.config.cell}{i}.{name}" for i, layer in enumerate(self.layers) for name in layer.names
        ]

    def scale(self, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """d [B, 1]: mean |z_t - z_{t-1}| over the real steps of the context (floored)."""
        pair = mask[:, 1:] * mask[:, :-1]  # [B, T - 1]: both steps real
        d = ((context[:, 1:] - context[:, :-1]).abs() * pair).sum(1, keepdim=True)  # [B, 1]
        return (d / pair.sum(1, keepdim=True).clamp_min(1.0)).clamp_min(self.config.min_diff)

    def inputs(
        self,
        context: torch.Tensor,
        mask: torch.Tensor,
        seasonal: torch.Tensor,
        static: torch.Tensor,
        d: torch.Tensor,
    ) -> torch.Tensor:
        """[B, lookback, n_in]: the step features of the last `lookback` steps, statics and log d repeated."""
        L, clip = self.config.lookback, self.config.feature_clip
        z, w, s = context[:, -L:], mask[:, -L:], seasonal[:, -L:]  # [B, L]
        prev = F.pad(z[:, :-1], (1, 0))  # [B, L]
        prev_w = F.pad(w[:, :-1], (1, 0))  # [B, L]
        diff = ((z - prev) * prev_w / d).clamp(-clip, clip)  # [B, L]: 0 at the first real step
        level = (z / d).clamp(-clip, clip)  # [B, L]
        per_step = torch.stack([z.clamp(-clip, clip) * w, level * w, diff * w, s, w], dim=-1)  # [B, L, 5]
        const = torch.cat([static, d.log()], dim=-1)  # [B, S + 1]
        return torch.cat([per_step, const.unsqueeze(1).expand(-1, L, -1)], dim=-1)  # [B, L, 5 + S + 1]

    def forward(
        self,
        context: torch.Tensor,  # [B, T]
        mask: torch.Tensor,  # [B, T]
        seasonal: torch.Tensor,  # [B, T]
        anchor: torch.Tensor,  # [B, max_horizon]
        static: torch.Tensor,  # [B, n_static]
        return_activations: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        d = self.scale(context, mask)  # [B, 1]
        anchor = anchor if self.config.anchored else torch.zeros_like(anchor)  # [B, Hz]
        x = self.inputs(context, mask, seasonal, static, d)  # [B, L, n_in]
        w = mask[:, -self.config.lookback :]  # [B, L]
        lasts, stats = [], []
        for layer in self.layers:
            x, acts = layer(x, w, return_activations)  # [B, L, H]
            lasts.append(acts.pop("last"))
            stats += [masked_statistics(acts[name], w) for name in layer.names] if return_activations else []
        clip = self.config.feature_clip
        head_in = torch.cat([*lasts, static, d.log(), (anchor / d).clamp(-clip, clip)], dim=-1)  # [B, n_head]
        raw = self.head(head_in).view(-1, self.config.max_horizon, self.n_q)  # [B, Hz, Q]
        mid = raw[..., self.mid : self.mid + 1]  # [B, Hz, 1]
        up = mid + F.softplus(raw[..., self.mid + 1 :]).cumsum(-1)  # [B, Hz, Q - mid - 1]
        gaps = F.softplus(raw[..., : self.mid])  # [B, Hz, mid]
        down = mid - (gaps.sum(-1, keepdim=True) - gaps.cumsum(-1) + gaps)  # [B, Hz, mid]: reversed cumsum
        resid = torch.cat([down, mid, up], dim=-1)  # [B, Hz, Q], monotone by construction
        quantiles = anchor.unsqueeze(-1) + d.unsqueeze(-1) * resid  # [B, Hz, Q] in log space
        activations = torch.stack(stats, dim=1) if return_activations else None  # [B, n_layers, 5]
        return quantiles, activations


class ForecasterEnsemble(nn.Module):
    """Members (seeds, lookbacks) whose quantiles are averaged in the graph (a mean of sorted vectors stays
    sorted); the activations of every member are reported, member by member.

    Combination with the classical component: the whole band is moved by w * (anchor - median), w chosen on
    validation per season-length class (static columns 0..3: m = 1, 4, 12, other); w = 0 is the plain ensemble,
    w = 1 puts the median on the Theta forecast."""

    def __init__(self, members: list[Forecaster], theta_weights: list[float] | None = None) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.config = members[0].config
        assert len({m.config.context_length for m in members}) == 1, "members share the feature context"
        self.register_buffer("theta_weights", torch.tensor(theta_weights or [0.0] * 4))  # [4]

    @property
    def layer_names(self) -> list[str]:
        if len(self.members) == 1:
            return self.members[0].layer_names
        return [f"member{k}.{name}" for k, m in enumerate(self.members) for name in m.layer_names]

    def forward(
        self, *inputs: torch.Tensor, return_activations: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`inputs`: what `Forecaster.forward` takes, in `features.INPUT_NAMES` order (context, mask, seasonal,
        anchor, static)."""
        anchor, static = inputs[3], inputs[4]  # [B, max_horizon], [B, n_static]
        outs = [m(*inputs, return_activations=return_activations) for m in self.members]
        quantiles = torch.stack([q for q, _ in outs]).mean(0)  # [B, Hz, Q]
        mid = self.config.quantiles.index(0.5)
        w = (static[:, :4] * self.theta_weights).sum(-1)[:, None, None]  # [B, 1, 1]
        quantiles = quantiles + w * (anchor.unsqueeze(-1) - quantiles[..., mid : mid + 1])  # [B, Hz, Q]
        activations = torch.cat([a for _, a in outs], dim=1) if return_activations else None  # [B, K * L, 5]
        return quantiles, activations
