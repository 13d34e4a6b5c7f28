"""ONNX graph -> Network: follow the data path from the input tensor to the output tensor.

Nodes are visited in graph order. A node that reads a tensor computed from the input is
interpreted symbolically (see stream): recurrent nodes become pending IR layers, plumbing
moves axes around, heads and activations append IR layers. Everything else a node needs must
fold to a constant. ``initial_h``/``initial_c`` reached from graph inputs are state ports (the
session owns that state); constant ones are learned initial states.
"""

from __future__ import annotations

import numpy as np

from streamlstm.errors import ConversionError, NetworkError
from streamlstm.network import DIRECTIONS, GRU, LSTM, RNN, RNN_ACTIVATIONS, Concat, Network, act

from ..normalise import normalise
from .fold import Folder, Graph, Zeros, attrs, where
from .load import to_array
from .ops import SHAPE_OPS, STREAM_OPS, stream_op, supported_ops
from .plumbing import reshape_stream
from .unroll import reroll
from .stream import Ax, Block, Pending, ShapeVal, Stream, feature_size, finish, fold_unit_d, n_axis
from .walk import HINT, Broken, Walker

RECURRENT = {"LSTM": (LSTM, 4, 3), "GRU": (GRU, 3, 2), "RNN": (RNN, 1, 1)}
STATE_PLUMBING = {"Identity", "Squeeze", "Unsqueeze", "Reshape", "Transpose", "Cast", "Concat",
                  "Slice", "Gather", "Split", "Flatten", "Expand"}
RANK_KEEPING = {"Identity", "Cast", "Dropout", "Transpose", "Reshape", "Relu", "Tanh", "Sigmoid"}
# onnxruntime consumes activation_alpha/beta only for the activations that take them, in order.
NEEDS_ALPHA = {"LeakyRelu", "ThresholdedRelu", "Elu", "Affine", "ScaledTanh", "HardSigmoid"}
NEEDS_BETA = {"Affine", "ScaledTanh", "HardSigmoid"}


def _s(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def import_graph(graph: Graph, inputs: list[str] | None, outputs: list[str] | None,
                 name: str = "") -> Network:
    return _Importer(reroll(graph), inputs, outputs, name).run()


class _Importer(Walker):
    """One import: the driver, recurrent nodes and state ports (op handlers live in ``ops``'s tables)."""

    def __init__(self, g: Graph, inputs, outputs, name: str = ""):
        super().__init__(g)
        self.name = name
        self.want_inputs = None if inputs is None else [str(n) for n in inputs]
        self.want_outputs = None if outputs is None else [str(n) for n in outputs]
        self.weights_f64: dict = {}   # constant tensor name -> its float64 array (see _weight)

    # ------------------------------------------------------------------ driver
    def run(self) -> Network:
        g = self.g
        known = set(g.producer) | set(g.input_names) | set(g.initializers)
        if self.want_inputs is not None:
            for n in self.want_inputs:
                if n not in known:
                    raise ConversionError(f"inputs: the graph has no tensor named {n!r}; graph inputs are "
                                          f"{self._plain_inputs()}")
            cut = set(self.want_inputs)
        else:
            cut = {n for n in g.input_names if n not in g.initializers}
        for n in self.want_outputs or []:
            if n not in known:
                raise ConversionError(f"outputs: the graph has no tensor named {n!r}; graph outputs are "
                                      f"{g.outputs}")
        self.port_sources: dict = {}
        state_inputs, seq_inputs = self._state_prepass(cut | set(g.input_names))
        pool = self.want_inputs if self.want_inputs is not None else \
            [n for n in g.input_names if n in cut and n in g.consumers]
        data = [n for n in pool if n not in state_inputs and n not in seq_inputs]
        if len(data) != 1:
            raise ConversionError(
                f"cannot tell the data input: candidates {data} (state inputs: {sorted(state_inputs)}); "
                "name it with inputs=['tensor_name']")
        overrides = {n: (to_array(g.initializers[n]) if n in g.initializers else Zeros())
                     for n in state_inputs}
        self.state_folder = Folder(g, overrides)
        name = data[0]
        shape = g.shape(name)
        if shape is None:
            shape = self._shape_from_consumer(name)
        if shape is None or len(shape) == 0:
            raise ConversionError(f"input {name!r}: its shape is unknown; the importer needs its rank "
                                  "(declare the shape or pick another tensor with inputs=[...])")
        self.input_name = name
        self.float_type = g.elem_type(name)
        self.env[name] = Stream(tuple(Ax("?", d, id=k) for k, d in enumerate(shape)))
        want = set(self.want_outputs or [])
        for i, node in enumerate(g.nodes):
            if want and want <= set(self.env):
                break
            if any(o in cut for o in node.output):
                continue
            ins = [self.env.get(x) if x else None for x in node.input]
            if not any(isinstance(v, (Stream, ShapeVal, Broken)) for v in ins):
                continue
            broken = next((v for v in ins if isinstance(v, Broken)), None)
            if broken is not None:
                outs = [broken] * len(node.output)
            else:
                try:
                    outs = self._node(node, i, ins)
                except ConversionError as e:
                    outs = [Broken(e)] * len(node.output)
            for o, v in zip(node.output, outs):
                if o and v is not None:
                    self.env[o] = v
        if self.want_outputs is not None and len(self.want_outputs) > 1:
            return self._several_outputs()
        return self._network(self._pick_output())

    def _several_outputs(self) -> Network:
        """One Network computing every wanted output: the chains share their common start, and
        a Concat joins their ends (``Network.outputs`` splits them again)."""
        chains = []
        for name in self.want_outputs:
            v = self.env.get(name)
            if isinstance(v, Broken):
                raise v.error
            if not isinstance(v, Stream):
                raise ConversionError(f"outputs: tensor {name!r} is not computed from the input {self.input_name!r}")
            chains.append(self._finished(name, v).chain)
        layers, sources, ends = [], [], []
        built: dict = {}
        for chain in chains:
            prev = -1
            for k, layer in enumerate(chain):
                key = (id(chain[k - 1]) if k else None, id(layer))
                if key not in built:
                    layers.append(layer)
                    sources.append([prev])
                    built[key] = len(layers) - 1
                prev = built[key]
            ends.append(prev)
        widths = Network(layers, input_size=self.input_size, sources=sources).layer_sizes()
        layers.append(Concat(name="outputs"))
        sources.append(ends)
        net = normalise(layers, source=f"outputs {self.want_outputs}", input_size=self.input_size,
                        name=self.name, sources=sources)
        return Network(net.layers, input_size=net.input_size, name=net.name, sources=net.sources,
                       outputs=[widths[e][1] for e in ends])
    def _shape_from_consumer(self, name: str) -> list | None:
        """Shape of an input without a declared one, from the recurrent node its data reaches
        through rank-keeping ops (a Reshape to a shape built from its own Shape keeps it, as in
        the legacy ``x.view(T, B, -1)`` export): that node's X is rank 3 with W's input width
        last (unknown if a Transpose moved the axes)."""
        g, t, moved = self.g, name, False
        for _ in range(len(g.nodes)):
            users = [g.nodes[k] for k in g.consumers.get(t, ())]
            users = [n for n in users if n.op_type != "Shape"]
            if len(users) != 1 or not users[0].input or users[0].input[0] != t:
                return None
            n = users[0]
            if n.op_type in RECURRENT:
                W = self.folder.value(n.input[1]) if len(n.input) > 1 else None
                width = int(W.shape[2]) if isinstance(W, np.ndarray) and W.ndim == 3 else None
                return [None, None, None if moved else width]
            if n.op_type not in RANK_KEEPING or not n.output:
                return None
            if n.op_type == "Reshape" and not self._shape_of_own_dims(n.input[1], t):
                return None
            moved = moved or n.op_type == "Transpose"
            t = n.output[0]
        return None

    def _shape_of_own_dims(self, shape: str, t: str) -> bool:
        """Whether a Reshape target is built only from constants and the dims of ``t`` itself
        (Shape -> Gather/Slice -> Unsqueeze -> Concat), so the reshape keeps ``t``'s rank."""
        g, stack, seen = self.g, [shape], set()
        while stack:
            x = stack.pop()
            if not x or x in seen or x in g.initializers:
                continue
            seen.add(x)
            if x not in g.producer:
                return False
            n = g.nodes[g.producer[x]]
            if n.op_type == "Shape":
                if n.input[0] != t:
                    return False
            elif n.op_type in ("Gather", "Slice", "Unsqueeze", "Squeeze", "Concat", "Cast",
                               "Identity", "Constant"):
                stack.extend(n.input)
            else:
                return False
        return True

    def _plain_inputs(self) -> list[str]:
        return [n for n in self.g.input_names if n not in self.g.initializers]

    def _state_prepass(self, sources: set) -> tuple[set, set]:
        state, seq = set(), set()
        for i, n in enumerate(self.g.nodes):
            if n.op_type not in RECURRENT:
                continue
            for k in ((5, 6) if n.op_type == "LSTM" else (5,)):
                if len(n.input) > k and n.input[k]:
                    srcs = self._trace(n.input[k], sources)
                    self.port_sources[(i, k)] = srcs
                    state |= srcs
            if len(n.input) > 4 and n.input[4]:
                seq |= self._trace(n.input[4], sources)
        return state, seq

    def _trace(self, name: str, sources: set) -> set:
        out, stack, seen = set(), [name], set()
        while stack:
            t = stack.pop()
            if not t or t in seen:
                continue
            seen.add(t)
            if t in sources:
                out.add(t)
            elif t in self.g.producer:
                n = self.g.nodes[self.g.producer[t]]
                if n.op_type == "Concat":
                    stack.extend(n.input)
                elif n.op_type in STATE_PLUMBING:
                    stack.append(n.input[0])
        return out

    def _pick_output(self) -> tuple[str, Stream]:
        names = self.want_outputs if self.want_outputs is not None else self.g.outputs
        cands = []
        for n in names:
            v = self.env.get(n)
            if isinstance(v, Broken):
                raise v.error
            if isinstance(v, Stream):
                cands.append((n, v))
            elif self.want_outputs is not None and n not in self.env:
                raise ConversionError(f"outputs: tensor {n!r} is not computed from the input "
                                      f"{self.input_name!r}")
        data = [c for c in cands if not c[1].state]
        if not data:
            data = [c for c in cands if c[1].state == "h"] or [c for c in cands if c[1].state == "c"]
        if len(data) != 1:
            raise ConversionError(
                f"cannot tell the data output: candidates {[c[0] for c in data]} among outputs {names}; "
                "name it with outputs=['tensor_name']")
        return data[0]

    def _network(self, out: tuple[str, Stream]) -> Network:
        name, s = out
        s = self._finished(name, s)
        return normalise(s.chain, source=f"output {name!r}", input_size=self.input_size, name=self.name)

    def _finished(self, name: str, s: Stream) -> Stream:
        """The stream of output ``name`` with its pending layers settled into its chain."""
        where_ = f"output {name!r}"
        s = self.settle(s, where_)
        s = fold_unit_d(s, where_)
        if any(ax.kind == "D" for ax in s.axes):
            feat = [ax for ax in s.axes if ax.kind in ("D", "F")]
            P = int(np.prod([feature_size(ax) for ax in feat]))
            s = reshape_stream(self, s, ["infer", P], where_)
        s = finish(s, where_, self.cache)
        if not s.chain:
            raise ConversionError(f"{where_}: no supported layer between input {self.input_name!r} and it")
        return s

    # ------------------------------------------------------------------ helpers
    def _node(self, node, i, ins) -> list:
        try:
            return self._dispatch(node, i, ins)
        except (KeyError, IndexError, TypeError, AttributeError) as e:
            # a missing attribute or input, or an operand of an unexpected rank
            raise ConversionError(f"{where(node, i)}: malformed node ({type(e).__name__}: {e})") from None

    def _dispatch(self, node, i, ins) -> list:
        w = where(node, i)
        if node.domain not in ("", "ai.onnx"):
            raise self._unsupported(node, w)
        if not any(isinstance(v, Stream) for v in ins):
            h = SHAPE_OPS.get(node.op_type)
            return h(self, node, ins, attrs(node), w) if h else [None] * len(node.output)
        h = STREAM_OPS.get(node.op_type)
        if h is None:
            raise self._unsupported(node, w)
        return h(self, node, i, ins, attrs(node), w)

    def _unsupported(self, node, w) -> ConversionError:
        return ConversionError(
            f"{w}: op {node.op_type}{' (domain ' + node.domain + ')' if node.domain else ''} is not "
            f"supported on the data path (inputs {list(node.input)}, outputs {list(node.output)}). "
            f"Supported ops: {', '.join(supported_ops())}" + HINT)

    # ------------------------------------------------------------------ recurrent nodes
    def _recurrent(self, node, i, ins, a, w):
        op = node.op_type
        cls, G, nacts = RECURRENT[op]
        x = ins[0]
        if not isinstance(x, Stream) or any(isinstance(v, Stream) for v in ins[1:4]):
            raise ConversionError(f"{w}: only X may come from the data; W, R, B must be constant")
        W = self._weight(node, 1, "W", w)
        R = self._weight(node, 2, "R", w)
        Bv = self.const(node, 3, "B", w, required=False)
        direction = _s(a.get("direction", "forward"))
        if direction not in DIRECTIONS:
            raise ConversionError(f"{w}: direction {direction!r} is not one of {DIRECTIONS}")
        D = 2 if direction == "bidirectional" else 1
        if W.ndim != 3 or W.shape[0] != D or W.shape[1] % G:
            raise ConversionError(f"{w}: W has shape {W.shape}, expected ({D}, {G}*hidden, input)")
        H = int(a.get("hidden_size", W.shape[1] // G))
        if W.shape[1] != G * H or R.shape != (D, G * H, H):
            raise ConversionError(f"{w}: W {W.shape} / R {R.shape} do not match hidden_size={H}")
        layout = int(a.get("layout", 0))
        if x.rank != 3:
            raise ConversionError(f"{w}: X has rank {x.rank}; expected 3")
        tpos, bpos = (0, 1) if layout == 0 else (1, 0)
        x = self.feature(x, 2, W.shape[2], w)
        x = finish(x, w, self.cache)
        tax, bax = x.axes[tpos], x.axes[bpos]
        if bax.size not in (None, 1):
            raise ConversionError(f"{w}: batch size {bax.size}; streamlstm runs one stream per session "
                                  "(batch 1)")
        name = node.name or f"{op}_{i}"
        kw = dict(W=W, R=R, direction=direction, activations=self._acts(a, op, nacts, D, w),
                  clip=a.get("clip"), name=name)
        if Bv is not None:
            Bv = np.asarray(Bv, np.float64)
            if Bv.shape != (D, 2 * G * H):
                raise ConversionError(f"{w}: B has shape {Bv.shape}, expected ({D}, {2 * G * H})")
            kw["Wb"], kw["Rb"] = Bv[:, :G * H], Bv[:, G * H:]
        if op == "LSTM":
            P = self.const(node, 7, "P", w, required=False)
            if P is not None:
                P = np.asarray(P, np.float64)
                if P.shape != (D, 3 * H):
                    raise ConversionError(f"{w}: P has shape {P.shape}, expected ({D}, {3 * H})")
                kw["P"] = P
            kw["input_forget"] = bool(a.get("input_forget", 0))
        if op == "GRU":
            kw["linear_before_reset"] = bool(a.get("linear_before_reset", 0))
        if len(node.input) > 4 and node.input[4]:
            sl = self.folder.value(node.input[4])
            if isinstance(sl, np.ndarray) and (tax.size is None or np.any(sl != tax.size)):
                raise ConversionError(
                    f"{w}: sequence_lens is the constant {sl.tolist()}, which does not cover the "
                    f"whole sequence (length {tax.size or 'dynamic'}); only full-length sequences "
                    "are supported")
        kw["initial_h"] = self._initial(node, i, 5, D, H, w)
        if op == "LSTM":
            kw["initial_c"] = self._initial(node, i, 6, D, H, w)
        try:
            layer = cls(**kw)
            layer.validate()
        except (NetworkError, TypeError, ValueError) as e:
            raise ConversionError(f"{w}: {e}") from None
        rev = {1} if D == 2 else ({0} if direction == "reverse" else set())
        p = Pending(x.chain, layer, f"{op} {name!r}", frozenset(rev))
        T = n_axis(tax.size, "T", tax.id)
        Bx = n_axis(bax.size, "B", bax.id)
        F = Ax("F", H)

        def dax(what):
            return Ax("D", D, blocks=tuple(Block(p, d, what) for d in range(D)))

        Y = Stream((T, dax("Y"), Bx, F) if layout == 0 else (Bx, T, dax("Y"), F))
        outs = [Y]
        for what, st in (("Y_h", "h"), ("Y_c", "c"))[:len(node.output) - 1]:
            axes = (dax(what), Bx, F) if layout == 0 else (Bx, dax(what), F)
            outs.append(Stream(axes, state=st))
        return outs

    def _weight(self, node, k: int, what: str, w: str) -> np.ndarray:
        """Constant input ``k`` as a read-only float64 array, converted once per tensor: recurrent
        nodes that share an initializer (tied weights) are given the same array."""
        name = node.input[k] if len(node.input) > k else ""
        shared = self.weights_f64.get(name)
        if shared is None:
            shared = np.array(self.const(node, k, what, w), np.float64)
            shared.flags.writeable = False
            self.weights_f64[name] = shared
        return shared

    def _acts(self, a, op, n, D, w):
        names = [_s(v) for v in a.get("activations", [])]
        if not names:
            return None
        canon = {k.lower(): k for k in RNN_ACTIVATIONS}
        out_names = []
        for nm in names:
            if nm.lower() not in canon:
                raise ConversionError(f"{w}: unknown activation {nm!r}")
            out_names.append(canon[nm.lower()])
        if len(out_names) == n and D == 2:
            out_names = out_names * 2
        if len(out_names) != n * D:
            raise ConversionError(f"{w}: {len(out_names)} activations given, expected {n * D}")
        alphas = [float(v) for v in a.get("activation_alpha", [])]
        betas = [float(v) for v in a.get("activation_beta", [])]
        acts = []
        for nm in out_names:
            al = alphas.pop(0) if nm in NEEDS_ALPHA and alphas else None
            be = betas.pop(0) if nm in NEEDS_BETA and betas else None
            acts.append(act(nm, al, be))
        return acts

    def _initial(self, node, i, k, D, H, w):
        """Learned initial state (D, H) of a port's default value or a constant; None for zeros."""
        if len(node.input) <= k or not node.input[k]:
            return None
        name = node.input[k]
        what = "initial_h" if k == 5 else "initial_c"
        port = bool(self.port_sources.get((i, k)))
        if isinstance(self.env.get(name), Stream):
            raise ConversionError(f"{w}: {what} ({name!r}) is computed from the data input; "
                                  "only graph inputs (state ports) or constants are supported")
        v = (self.state_folder if port else self.folder).value(name)
        if v is None and not port:
            raise ConversionError(f"{w}: {what} ({name!r}) is neither constant nor a graph input")
        if v is None or isinstance(v, Zeros):
            return None
        v = np.asarray(v, np.float64)
        if v.size != D * H:
            raise ConversionError(f"{w}: {what} has shape {list(v.shape)}; expected "
                                  f"{D} direction(s) x batch 1 x {H}")
        v = v.reshape(D, H)
        return v if np.any(v) else None


# The recurrent handler needs the import's state ports, so it is the importer's own method.
stream_op(*RECURRENT)(_Importer._recurrent)
