"""Network -> an equivalent PyTorch module built from nn.LSTM/GRU/RNN, nn.Linear, nn.Embedding,
causal convolutions over time and activations.

Used to run a network in PyTorch (the benchmark's PyTorch peer, ``streamlstm verify`` for
PyTorch files). Consecutive recurrent layers of one kind and width become one multi-layer
module, as a PyTorch user would write them. The module works on sequence-first input
(T, 1, I) and carries its state explicitly: ``y, state = module(x, state)`` with ``state``
from ``module.initial_state()`` (learned initial states included).

Only what PyTorch can express converts: LSTM with the default activations, no clip,
peepholes or input_forget (projection is fine); GRU with ``linear_before_reset``; RNN with
Tanh or Relu; Embedding (the input frame holds the token id), TimeConv1d (nn.Conv1d over
time; its past inputs are state, so chunks continue a stream), LayerNorm and Elementwise
mul/add (a folded BatchNorm's scale and shift). Only chains convert (no ``sources``).
Anything else raises ConversionError naming the layer. ``BUILDERS`` maps each layer kind to the function that appends its modules: a new
kind is one entry there.
"""

from __future__ import annotations

import numpy as np

from streamlstm.errors import ConversionError
from streamlstm.network import GRU, LSTM, Network

from ..deps import require

torch = require("torch", "rebuilding a network as PyTorch modules (to_torch)")
nn = torch.nn

# IR gate blocks in PyTorch's order: LSTM i,f,g,o from IR i,o,f,c; GRU r,z,n from IR z,r,h.
_TORCH_ORDER = {"LSTM": (0, 2, 3, 1), "GRU": (1, 0, 2), "RNN": (0,)}


def _reorder(a: np.ndarray, kind: str) -> np.ndarray:
    blocks = np.split(a, len(_TORCH_ORDER[kind]), axis=0)
    return np.concatenate([blocks[i] for i in _TORCH_ORDER[kind]], axis=0)


def _check(layer, k: int) -> None:
    where = f"layer {k} ({layer.label})"
    names = [a.name for a in layer.activations[:layer.n_acts]]
    if any([a.name for a in layer.activations[d * layer.n_acts:(d + 1) * layer.n_acts]] != names
           for d in range(layer.num_directions)):
        raise ConversionError(f"{where}: directions with different activations have no PyTorch form")
    if layer.clip is not None:
        raise ConversionError(f"{where}: clip has no PyTorch form")
    if isinstance(layer, LSTM):
        if names != ["Sigmoid", "Tanh", "Tanh"]:
            raise ConversionError(f"{where}: activations {names} have no PyTorch form")
        if layer.P is not None or layer.input_forget:
            raise ConversionError(f"{where}: peepholes / input_forget have no PyTorch form")
    elif isinstance(layer, GRU):
        if names != ["Sigmoid", "Tanh"]:
            raise ConversionError(f"{where}: activations {names} have no PyTorch form")
        if not layer.linear_before_reset:
            raise ConversionError(f"{where}: PyTorch's GRU is linear_before_reset=1; this layer has 0")
    elif names[0] not in ("Tanh", "Relu"):
        raise ConversionError(f"{where}: RNN activation {names[0]} has no PyTorch form (Tanh or Relu)")


def _signature(layer) -> tuple:
    proj = None if not isinstance(layer, LSTM) or layer.proj is None else layer.proj.shape[1]
    return (layer.kind, layer.hidden_size, proj, layer.direction, layer.merge,
            tuple(a.name for a in layer.activations))


def _recurrent_module(group: list, dtype: torch.dtype) -> nn.Module:
    first = group[0]
    D = first.num_directions
    # built in the target dtype: weights copied into float32 parameters first would be rounded
    kw = dict(input_size=first.input_size, hidden_size=first.hidden_size, num_layers=len(group),
              bias=True, bidirectional=D == 2, dtype=dtype)
    if isinstance(first, LSTM):
        m = nn.LSTM(proj_size=first.unit_output_size if first.proj is not None else 0, **kw)
    elif isinstance(first, GRU):
        m = nn.GRU(**kw)
    else:
        m = nn.RNN(nonlinearity=first.activations[0].name.lower(), **kw)
    G = first.W.shape[1]
    with torch.no_grad():
        for n, layer in enumerate(group):
            for d in range(D):
                sfx = f"_l{n}" + ("_reverse" if d else "")
                Wb = layer.Wb[d] if layer.Wb is not None else np.zeros(G)
                Rb = layer.Rb[d] if layer.Rb is not None else np.zeros(G)
                vals = {"weight_ih": _reorder(layer.W[d], layer.kind), "weight_hh": _reorder(layer.R[d], layer.kind),
                        "bias_ih": _reorder(Wb, layer.kind), "bias_hh": _reorder(Rb, layer.kind)}
                if isinstance(layer, LSTM) and layer.proj is not None:
                    vals["weight_hr"] = layer.proj[d]
                for name, v in vals.items():
                    getattr(m, name + sfx).copy_(torch.from_numpy(np.array(v)))
    return m


def _initial(group: list, which: str, width: int) -> torch.Tensor:
    rows = []
    for layer in group:
        init = getattr(layer, which)
        for d in range(layer.num_directions):
            rows.append(init[d] if init is not None else np.zeros(width))
    return torch.from_numpy(np.stack(rows)[:, None, :])


def _activation(a) -> callable:
    n, al, be = a.name, a.alpha, a.beta
    F = torch.nn.functional
    table = {
        "Identity": lambda x: x, "Relu": torch.relu, "Tanh": torch.tanh, "Sigmoid": torch.sigmoid,
        "Softsign": F.softsign, "Softplus": F.softplus, "Softmax": lambda x: torch.softmax(x, -1),
        "LeakyRelu": lambda x: F.leaky_relu(x, al), "Elu": lambda x: F.elu(x, al),
        "HardSigmoid": lambda x: torch.clamp(al * x + be, 0.0, 1.0),
        "Affine": lambda x: al * x + be, "ScaledTanh": lambda x: al * torch.tanh(be * x),
        "ThresholdedRelu": lambda x: x * (x > al),
    }
    return table[n]


def _add_recurrent(net: "TorchNetwork", layers: list, k: int, dtype: torch.dtype) -> int:
    """Layers k, k+1, ... of one kind, width and options as one multi-layer module."""
    layer = layers[k]
    _check(layer, k)
    group = [layer]
    while (k + len(group) < len(layers) and layers[k + len(group)].kind in _TORCH_ORDER
           and _signature(layers[k + len(group)]) == _signature(layer)):
        _check(layers[k + len(group)], k + len(group))
        group.append(layers[k + len(group)])
    m = _recurrent_module(group, dtype)
    net.modules_.append(m)
    init = [_initial(group, "initial_h", layer.unit_output_size).to(dtype)]
    if isinstance(layer, LSTM):
        init.append(_initial(group, "initial_c", layer.hidden_size).to(dtype))
    net._init.append(tuple(init))
    merge = layer.merge if layer.num_directions == 2 else "concat"
    net.steps.append(("rnn" if merge == "concat" else f"rnn_{merge}", m, len(net._init) - 1))
    return len(group)


def _loaded(module: "nn.Module", weight: np.ndarray, bias: np.ndarray | None, dtype: torch.dtype) -> "nn.Module":
    """``module`` with its weight (and bias, when there is one) set from the layer's arrays."""
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(weight.copy()))
        if bias is not None:
            module.bias.copy_(torch.from_numpy(bias.copy()))
    return module.to(dtype)


def _add_dense(net: "TorchNetwork", layers: list, k: int, dtype: torch.dtype) -> int:
    layer = layers[k]
    lin = _loaded(nn.Linear(layer.input_size, layer.output_size, bias=layer.b is not None, dtype=dtype),
                  layer.W, layer.b, dtype)
    net.modules_.append(lin)
    net.steps.append(("fn", lin, -1))
    return _add_activation(net, layers, k, dtype)


def _add_activation(net: "TorchNetwork", layers: list, k: int, dtype: torch.dtype) -> int:
    if layers[k].activation.name != "Identity":
        net.steps.append(("fn", _activation(layers[k].activation), -1))
    return 1


def _add_embedding(net: "TorchNetwork", layers: list, k: int, dtype: torch.dtype) -> int:
    table = layers[k].table
    emb = _loaded(nn.Embedding(*table.shape, dtype=dtype), table, None, dtype)
    net.modules_.append(emb)
    net.steps.append(("fn", lambda x: emb(x[..., 0].round().long()), -1))
    return 1


def _add_time_conv(net: "TorchNetwork", layers: list, k: int, dtype: torch.dtype) -> int:
    layer = layers[k]
    conv = _loaded(nn.Conv1d(layer.in_channels, layer.out_channels, layer.taps, dilation=layer.dilation,
                             groups=layer.groups, bias=layer.b is not None, dtype=dtype), layer.W, layer.b, dtype)
    net.modules_.append(conv)
    left, right = layer.padding
    net._init.append((torch.zeros(left, 1, layer.in_channels, dtype=dtype),))
    net.steps.append(("conv", (conv, right), len(net._init) - 1))
    return _add_activation(net, layers, k, dtype)


def _add_layer_norm(net: "TorchNetwork", layers: list, k: int, dtype: torch.dtype) -> int:
    layer = layers[k]
    n = layer.gamma.size
    ln = _loaded(nn.LayerNorm(n, eps=layer.eps, dtype=dtype), layer.gamma,
                 layer.beta if layer.beta is not None else np.zeros(n), dtype)
    net.modules_.append(ln)
    net.steps.append(("fn", lambda x: ln(x.reshape(*x.shape[:-1], -1, n)).reshape(x.shape), -1))
    return 1


def _add_elementwise(net: "TorchNetwork", layers: list, k: int, dtype: torch.dtype) -> int:
    layer = layers[k]
    if layer.op not in ("mul", "add"):
        raise ConversionError(f"layer {k} ({layer.label}): Elementwise {layer.op} has no PyTorch form here")
    c = torch.from_numpy(layer.c.copy()).to(dtype)
    net.steps.append(("fn", (lambda x: x * c) if layer.op == "mul" else (lambda x: x + c), -1))
    return 1


# Layer kind -> builder(TorchNetwork, layers, index, dtype) -> how many layers it consumed.
BUILDERS = {"LSTM": _add_recurrent, "GRU": _add_recurrent, "RNN": _add_recurrent, "Dense": _add_dense,
            "Activation": _add_activation, "Embedding": _add_embedding, "TimeConv1d": _add_time_conv,
            "LayerNorm": _add_layer_norm, "Elementwise": _add_elementwise}


class TorchNetwork(nn.Module):
    """The network as PyTorch modules; ``forward(x (T, 1, I), state) -> (y (T, 1, O), state)``."""

    def __init__(self, network: Network, dtype: torch.dtype = torch.float32):
        super().__init__()
        network.validate()
        if not network.is_chain:
            raise ConversionError("a network whose layers branch (sources) has no PyTorch form here")
        self.steps: list[tuple[str, object, int]] = []   # (kind, module or fn, state slot)
        self.modules_ = nn.ModuleList()
        self._init: list[tuple] = []
        layers = list(network.layers)
        k = 0
        while k < len(layers):
            builder = BUILDERS.get(layers[k].kind)
            if builder is None:
                raise ConversionError(f"layer {k} ({layers[k].label}): {layers[k].kind} has no PyTorch form")
            k += builder(self, layers, k, dtype)

    def initial_state(self) -> list:
        """The state a fresh stream starts from (learned initial states included), as fresh tensors."""
        return [tuple(t.clone() for t in s) for s in self._init]

    def forward(self, x: torch.Tensor, state: list) -> tuple[torch.Tensor, list]:
        new = list(state)
        for kind, m, slot in self.steps:
            if kind == "fn":
                x = m(x)
                continue
            if kind == "conv":  # x (T, 1, C): the past inputs in front, zeros for the future behind
                conv, right = m
                past = state[slot][0]
                seq = torch.cat([past, x, x.new_zeros(right, *x.shape[1:])])
                new[slot] = (seq[seq.shape[0] - right - past.shape[0]:seq.shape[0] - right],)
                x = conv(seq.permute(1, 2, 0)).permute(2, 0, 1)
                continue
            s = state[slot]
            x, s = m(x, s if len(s) == 2 else s[0])
            new[slot] = s if isinstance(s, tuple) else (s,)
            if kind != "rnn":
                fwd, bwd = x.chunk(2, dim=-1)
                x = fwd + bwd if kind == "rnn_sum" else fwd * bwd if kind == "rnn_mul" else (fwd + bwd) * 0.5
        return x, new


def to_torch(network: Network, dtype: str = "float32") -> TorchNetwork:
    """Build a :class:`TorchNetwork` equivalent to ``network`` (ConversionError if it has no PyTorch form)."""
    return TorchNetwork(network, torch.float32 if dtype == "float32" else torch.float64).eval()
