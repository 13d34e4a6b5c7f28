"""Builders of ONNX test graphs and runners of the peers (onnxruntime, onnx.reference).

Used by test_onnx_import.py and test_onnx_export.py. A ``Case`` describes one recurrent node
with every ONNX attribute; ``recurrent_model`` turns it into a graph (with or without state
ports), ``run_ort`` / ``run_reference`` run the peers, ``step_ort`` streams a state-port model
one frame per call with the state fed back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import onnxruntime as ort

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
NACTS = {"LSTM": 3, "GRU": 2, "RNN": 1}
DEFAULT_ACTS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "RNN": ["Tanh"]}
# name -> (alpha range, beta range); None where the function takes none
ACT_PARAMS = {
    "Relu": (None, None), "Tanh": (None, None), "Sigmoid": (None, None),
    "Affine": ((0.3, 1.0), (-0.3, 0.3)), "LeakyRelu": ((0.01, 0.3), None),
    "ThresholdedRelu": ((0.0, 0.5), None), "ScaledTanh": ((0.5, 1.5), (0.5, 1.5)),
    "HardSigmoid": ((0.1, 0.3), (0.4, 0.6)), "Elu": ((0.5, 1.5), None),
    "Softsign": (None, None), "Softplus": (None, None),
}
BOUNDED = ["Sigmoid", "HardSigmoid", "Tanh", "Softsign", "ScaledTanh"]
TT = {np.float32: TensorProto.FLOAT, np.float64: TensorProto.DOUBLE}


@dataclass
class Case:
    op: str = "LSTM"
    direction: str = "forward"
    I: int = 3
    H: int = 4
    acts: list | None = None          # [(name, alpha, beta)] for all directions, or None
    clip: float | None = None
    input_forget: bool = False
    linear_before_reset: bool = False
    bias: bool = True
    peepholes: bool = False
    learned_init: bool = False
    layout: int = 0
    dtype: type = np.float32
    seed: int = 0
    arrays: dict = field(default_factory=dict)

    @property
    def D(self) -> int:
        return 2 if self.direction == "bidirectional" else 1

    @property
    def default_acts(self) -> bool:
        return self.acts is None

    def make_arrays(self) -> dict:
        rng = np.random.default_rng(self.seed)
        G, D, H, I = GATES[self.op], self.D, self.H, self.I
        s = 0.8 / np.sqrt(H)
        a = {"W": rng.uniform(-s, s, (D, G * H, I)), "R": rng.uniform(-s, s, (D, G * H, H))}
        if self.bias:
            a["B"] = rng.uniform(-0.3, 0.3, (D, 2 * G * H))
        if self.peepholes:
            a["P"] = rng.uniform(-0.3, 0.3, (D, 3 * H))
        if self.learned_init:
            a["h0"] = rng.uniform(-0.5, 0.5, (D, 1, H))
            if self.op == "LSTM":
                a["c0"] = rng.uniform(-0.5, 0.5, (D, 1, H))
        self.arrays = {k: v.astype(self.dtype) for k, v in a.items()}
        return self.arrays


def random_case(seed: int, *, streamable: bool = False) -> Case:
    """A random point of the attribute matrix (``streamable``: forward, bounded gate activations)."""
    rng = np.random.default_rng(1000 + seed)
    op = ["LSTM", "GRU", "RNN"][seed % 3]
    direction = "forward" if streamable else ["forward", "reverse", "bidirectional"][(seed // 3) % 3]
    c = Case(op=op, direction=direction, I=int(rng.integers(1, 7)), H=int(rng.integers(1, 9)),
             seed=seed)
    if rng.random() < 0.75:
        acts = []
        for _ in range(c.D):
            for k in range(NACTS[op]):
                pool = BOUNDED if (k == 0 and op != "RNN") or streamable else list(ACT_PARAMS)
                name = str(rng.choice(pool))
                pa, pb = ACT_PARAMS[name]
                al = float(rng.uniform(*pa)) if pa else None
                be = float(rng.uniform(*pb)) if pb else None
                acts.append((name, al, be))
        c.acts = acts
    c.clip = float(rng.uniform(0.5, 3.0)) if rng.random() < 0.4 else None
    c.input_forget = op == "LSTM" and rng.random() < 0.4
    c.linear_before_reset = op == "GRU" and rng.random() < 0.5
    c.bias = rng.random() < 0.8
    c.peepholes = op == "LSTM" and rng.random() < 0.5
    c.learned_init = rng.random() < 0.4
    c.make_arrays()
    return c


def _attrs(c: Case, layout: int) -> dict:
    kw = {"hidden_size": c.H, "direction": c.direction}
    if layout:
        kw["layout"] = 1
    if c.acts is not None:
        kw["activations"] = [a[0] for a in c.acts]
        al = [a[1] for a in c.acts if a[1] is not None]
        be = [a[2] for a in c.acts if a[2] is not None]
        if al:
            kw["activation_alpha"] = al
        if be:
            kw["activation_beta"] = be
    if c.clip is not None:
        kw["clip"] = c.clip
    if c.op == "LSTM" and c.input_forget:
        kw["input_forget"] = 1
    if c.op == "GRU":
        kw["linear_before_reset"] = int(c.linear_before_reset)
    return kw


def recurrent_model(c: Case, *, ports: bool = False, layout: int | None = None,
                    dtype=None, opset: int = 14) -> onnx.ModelProto:
    """One recurrent node; output Y (and Y_h/Y_c when ``ports``, with h0/c0 graph inputs)."""
    layout = c.layout if layout is None else layout
    dt = dtype or c.dtype
    tt = TT[dt]
    a = c.arrays or c.make_arrays()
    D, H = c.D, c.H
    inits = [numpy_helper.from_array(a["W"].astype(dt), "W"), numpy_helper.from_array(a["R"].astype(dt), "R")]
    ins = ["X", "W", "R", "B" if "B" in a else "", ""]
    if "B" in a:
        inits.append(numpy_helper.from_array(a["B"].astype(dt), "B"))
    xshape = ["T", 1, c.I] if layout == 0 else [1, "T", c.I]
    inputs = [helper.make_tensor_value_info("X", tt, xshape)]
    outputs = [helper.make_tensor_value_info("Y", tt, None)]
    states = ["h0"] + (["c0"] if c.op == "LSTM" else [])
    sshape = [D, 1, H] if layout == 0 else [1, D, H]
    for s in states:
        if ports:
            inputs.append(helper.make_tensor_value_info(s, tt, sshape))
            ins.append(s)
        elif s in a:
            v = a[s].astype(dt)
            inits.append(numpy_helper.from_array(v if layout == 0 else v.transpose(1, 0, 2), s))
            ins.append(s)
        else:
            ins.append("")
    if c.op == "LSTM" and "P" in a:
        ins.append("P")
        inits.append(numpy_helper.from_array(a["P"].astype(dt), "P"))
    while ins and ins[-1] == "":
        ins.pop()
    outs = ["Y"]
    if ports:
        outs += ["Y_h"] + (["Y_c"] if c.op == "LSTM" else [])
        outputs += [helper.make_tensor_value_info(o, tt, None) for o in outs[1:]]
    node = helper.make_node(c.op, ins, outs, name="rnn", **_attrs(c, layout))
    g = helper.make_graph([node], "case", inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def ort_session(model: onnx.ModelProto) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def run_ort(model: onnx.ModelProto, feeds: dict, outputs=None) -> list:
    return ort_session(model).run(outputs, feeds)


def run_reference(model: onnx.ModelProto, feeds: dict, outputs=None) -> list:
    from onnx.reference import ReferenceEvaluator
    return ReferenceEvaluator(model).run(outputs, feeds)


def y_as_frames(Y: np.ndarray, layout: int) -> np.ndarray:
    """ONNX Y ([T, D, 1, H] or [1, T, D, H]) as (T, D*H) frames, directions concatenated."""
    if layout == 1:
        Y = Y.transpose(1, 2, 0, 3)
    return Y.reshape(Y.shape[0], -1)


def step_ort(model: onnx.ModelProto, X: np.ndarray, c: Case) -> np.ndarray:
    """onnxruntime on a state-port model, one frame per call, Y_h/Y_c fed back as h0/c0."""
    sess = ort_session(model)
    D, H = c.D, c.H
    st = {"h0": np.zeros((D, 1, H), X.dtype)}
    if c.op == "LSTM":
        st["c0"] = np.zeros((D, 1, H), X.dtype)
    names = [o.name for o in sess.get_outputs()]
    ys = []
    for t in range(X.shape[0]):
        out = dict(zip(names, sess.run(None, {"X": X[t].reshape(1, 1, -1), **st})))
        st["h0"] = out["Y_h"]
        if c.op == "LSTM":
            st["c0"] = out["Y_c"]
        ys.append(out["Y"].reshape(-1))
    return np.array(ys)
