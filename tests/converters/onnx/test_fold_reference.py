"""The ONNX constant folder against ``onnx.reference.ReferenceEvaluator``, op by op.

For every op the folder evaluates, seeded random small graphs (dtypes including negative
integers, broadcasting, negative axes, out-of-range slice bounds) are folded by streamlstm and
run by the reference evaluator; values, dtypes and shapes must agree exactly.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from streamlstm.converters.onnx.fold import _FOLDERS, Folder, build_graph

CASES_PER_OP = 100
FLOATS = (np.float32, np.float64, np.float16)
SIGNED = (np.int8, np.int32, np.int64)
UNSIGNED = (np.uint8,)
NUMERIC = FLOATS + SIGNED + UNSIGNED


def _array(rng, shape, dtype, nonzero: bool = False) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if dtype.kind == "f":
        x = rng.uniform(-20, 20, shape).astype(dtype)
        if nonzero:
            x[np.abs(x) < 0.5] = 1
        return x
    lo = 0 if dtype.kind == "u" else -9
    x = rng.integers(lo, 10, shape).astype(dtype)
    if nonzero:
        x[x == 0] = 7
    return x


def _shape(rng, rank: int | None = None, low: int = 1, high: int = 4) -> tuple:
    rank = int(rng.integers(0, 4)) if rank is None else rank
    return tuple(int(d) for d in rng.integers(low, high + 1, rank))


class Case:
    """One node over constant inputs: arrays become initializers, ints lists become int64 ones."""

    def __init__(self, op: str, inputs: list, n_out: int = 1, opset: int = 18, **attributes):
        self.op, self.inputs, self.n_out, self.opset, self.attributes = op, inputs, n_out, opset, attributes
        self.peer = "reference"
        self.out_type = TensorProto.UNDEFINED  # onnxruntime needs it declared

    def run_peer(self, model: onnx.ModelProto) -> list:
        if self.peer == "onnxruntime":
            ort = pytest.importorskip("onnxruntime")
            return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {})
        return ReferenceEvaluator(model).run(None, {})

    def model(self) -> onnx.ModelProto:
        inits, names = [], []
        for k, v in enumerate(self.inputs):
            if v is None:
                names.append("")
                continue
            name = f"in{k}"
            inits.append(numpy_helper.from_array(np.asarray(v), name))
            names.append(name)
        outs = [f"out{k}" for k in range(self.n_out)]
        node = helper.make_node(self.op, names, outs, **self.attributes)
        graph = helper.make_graph([node], "fold", [], [helper.make_tensor_value_info(o, self.out_type, None)
                                                       for o in outs], inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])

    def __repr__(self) -> str:
        shown = [None if v is None else (np.asarray(v).dtype.name, np.asarray(v).shape) for v in self.inputs]
        return f"{self.op}(opset {self.opset}, inputs {shown}, attributes {self.attributes})"


def _ints(v) -> np.ndarray:
    return np.asarray(v, np.int64)


# ---------------------------------------------------------------- case generators, one per op
def _identity(rng, op="Identity"):
    return Case(op, [_array(rng, _shape(rng), rng.choice(NUMERIC + (np.bool_,)))])


def _cast(rng, like=False):
    src, dst = rng.choice(NUMERIC + (np.bool_,)), rng.choice(NUMERIC + (np.bool_,))
    x = _array(rng, _shape(rng), src)
    if np.dtype(src).kind == "f" and np.dtype(dst).kind in "iu":
        x = np.abs(x) if np.dtype(dst).kind == "u" else x  # out-of-range casts are undefined
    if like:
        return Case("CastLike", [x, np.zeros(1, dst)])
    return Case("Cast", [x], to=int(helper.np_dtype_to_tensor_dtype(np.dtype(dst))))


def _concat(rng):
    rank = int(rng.integers(1, 4))
    dtype = rng.choice(NUMERIC)
    axis = int(rng.integers(-rank, rank))
    base = _shape(rng, rank)
    parts = []
    for _ in range(int(rng.integers(1, 4))):
        s = list(base)
        s[axis] = int(rng.integers(0, 4))
        parts.append(_array(rng, tuple(s), dtype))
    return Case("Concat", parts, axis=axis)


def _unsqueeze(rng):
    x = _array(rng, _shape(rng), rng.choice(NUMERIC))
    r = x.ndim + int(rng.integers(1, 3))
    axes = [int(a) - (r if rng.random() < 0.5 else 0) for a in rng.choice(r, r - x.ndim, replace=False)]
    if rng.random() < 0.5:  # the reference applies opset-11 axes one by one: give it one
        return Case("Unsqueeze", [x], opset=11, axes=[int(rng.integers(-x.ndim - 1, x.ndim + 1))])
    return Case("Unsqueeze", [x, _ints(axes)])


def _squeeze(rng):
    shape = list(_shape(rng, int(rng.integers(1, 4))))
    ones = [k for k in range(len(shape)) if rng.random() < 0.5]
    for k in ones:
        shape[k] = 1
    x = _array(rng, tuple(shape), rng.choice(NUMERIC))
    axes = [k - (len(shape) if rng.random() < 0.5 else 0) for k in ones]
    if not axes or rng.random() < 0.3:
        return Case("Squeeze", [x])
    if rng.random() < 0.5:  # the reference applies opset-11 axes one by one: give it one
        return Case("Squeeze", [x], opset=11, axes=axes[:1])
    return Case("Squeeze", [x, _ints(axes)])


def _transpose(rng):
    x = _array(rng, _shape(rng), rng.choice(NUMERIC))
    if x.ndim == 0 or rng.random() < 0.3:
        return Case("Transpose", [x])
    return Case("Transpose", [x], perm=[int(p) for p in rng.permutation(x.ndim)])


def _gather(rng):
    x = _array(rng, _shape(rng, int(rng.integers(1, 4))), rng.choice(NUMERIC))
    axis = int(rng.integers(-x.ndim, x.ndim))
    n = x.shape[axis]
    idx = rng.integers(-n, n, _shape(rng, int(rng.integers(0, 3)))).astype(rng.choice((np.int32, np.int64)))
    return Case("Gather", [x, idx], axis=axis)


def _reshape(rng):
    x = _array(rng, _shape(rng, int(rng.integers(1, 4))), rng.choice(NUMERIC))
    target = [int(d) for d in rng.permutation(x.shape)]
    if rng.random() < 0.3:
        target.insert(int(rng.integers(len(target) + 1)), 1)
    target = [0 if k < x.ndim and d == x.shape[k] and rng.random() < 0.3 else d for k, d in enumerate(target)]
    if rng.random() < 0.5:
        target[int(rng.integers(len(target)))] = -1
    return Case("Reshape", [x, _ints(target)])


def _flatten(rng):
    x = _array(rng, _shape(rng, int(rng.integers(1, 4))), rng.choice(NUMERIC))
    return Case("Flatten", [x], axis=int(rng.integers(-x.ndim, x.ndim + 1)))


def _slice(rng):
    x = _array(rng, _shape(rng, int(rng.integers(1, 4)), 1, 6), rng.choice(NUMERIC))
    axes = [int(a) for a in rng.choice(x.ndim, int(rng.integers(1, x.ndim + 1)), replace=False)]
    starts, ends, steps = [], [], []
    for a in axes:
        n = x.shape[a]
        step = int(rng.choice([1, 2, 3, -1, -2]))
        bound = [-n - 3, -1, 0, n, n + 3, 2 ** 62, -(2 ** 62)]
        starts.append(int(rng.choice(bound)) if rng.random() < 0.3 else int(rng.integers(-n, n)))
        ends.append(int(rng.choice(bound)) if rng.random() < 0.4 else int(rng.integers(-n, n + 1)))
        steps.append(step)
    axes = [a - (x.ndim if rng.random() < 0.5 else 0) for a in axes]
    if rng.random() < 0.2:
        return Case("Slice", [x], opset=9, starts=starts, ends=ends, axes=axes)
    return Case("Slice", [x, _ints(starts), _ints(ends), _ints(axes), _ints(steps)])


def _split(rng):
    x = _array(rng, _shape(rng, int(rng.integers(1, 4)), 1, 7), rng.choice(NUMERIC))
    axis = int(rng.integers(-x.ndim, x.ndim))
    n = x.shape[axis]
    if rng.random() < 0.4:
        k = int(rng.integers(1, n + 1))
        outs = k if n % k == 0 else int(-(-n // -(-n // k)))
        return Case("Split", [x], n_out=outs, axis=axis, num_outputs=k if n % k == 0 else outs)
    cuts = sorted(int(c) for c in rng.integers(0, n + 1, int(rng.integers(0, 3))))
    sizes = np.diff([0, *cuts, n]).astype(np.int64)
    return Case("Split", [x, sizes], n_out=len(sizes), axis=axis)


def _shape_op(rng):
    x = _array(rng, _shape(rng), rng.choice(NUMERIC))
    kw = {}
    if rng.random() < 0.6:
        kw["start"] = int(rng.integers(-x.ndim - 2, x.ndim + 2))
    if rng.random() < 0.6:
        kw["end"] = int(rng.integers(-x.ndim - 2, x.ndim + 2))
    case = Case("Shape", [x], **kw)
    if kw.get("end", 0) < -x.ndim:
        case.peer = "onnxruntime"  # the reference does not clamp such an end to 0, as the spec says
        case.out_type = TensorProto.INT64
    return case


def _broadcast_pair(rng):
    a = _shape(rng)
    b = list(a[int(rng.integers(0, len(a) + 1)):]) if a else []
    b = [1 if rng.random() < 0.3 else d for d in b]
    if rng.random() < 0.5:
        a, b = tuple(b), a
    return tuple(a), tuple(b)


def _binary(rng, op):
    dtype = rng.choice(NUMERIC)
    sa, sb = _broadcast_pair(rng)
    return Case(op, [_array(rng, sa, dtype), _array(rng, sb, dtype, nonzero=op == "Div")])


def _neg(rng):
    return Case("Neg", [_array(rng, _shape(rng), rng.choice(FLOATS + SIGNED))])


def _constant_of_shape(rng):
    shape = _ints(_shape(rng, low=0))
    if rng.random() < 0.3:
        return Case("ConstantOfShape", [shape])
    value = _array(rng, (1,), rng.choice(NUMERIC + (np.bool_,)))
    return Case("ConstantOfShape", [shape], value=numpy_helper.from_array(value))


def _expand(rng):
    sa, sb = _broadcast_pair(rng)
    return Case("Expand", [_array(rng, sa, rng.choice(NUMERIC)), _ints(sb)])


def _constant(rng):
    kind = rng.choice(["value", "value_float", "value_floats", "value_int", "value_ints"])
    if kind == "value":
        return Case("Constant", [], value=numpy_helper.from_array(_array(rng, _shape(rng), rng.choice(NUMERIC))))
    if kind == "value_float":
        return Case("Constant", [], value_float=float(rng.uniform(-5, 5)))
    if kind == "value_floats":
        return Case("Constant", [], value_floats=[float(v) for v in rng.uniform(-5, 5, 3)])
    if kind == "value_int":
        return Case("Constant", [], value_int=int(rng.integers(-9, 9)))
    return Case("Constant", [], value_ints=[int(v) for v in rng.integers(-9, 9, 3)])


GENERATORS = {
    "Identity": _identity, "Dropout": lambda r: _identity(r, "Dropout"),
    "Cast": _cast, "CastLike": lambda r: _cast(r, like=True),
    "Concat": _concat, "Unsqueeze": _unsqueeze, "Squeeze": _squeeze, "Transpose": _transpose,
    "Gather": _gather, "Reshape": _reshape, "Flatten": _flatten, "Slice": _slice, "Split": _split,
    "Shape": _shape_op,
    "Add": lambda r: _binary(r, "Add"), "Sub": lambda r: _binary(r, "Sub"),
    "Mul": lambda r: _binary(r, "Mul"), "Div": lambda r: _binary(r, "Div"),
    "Neg": _neg, "ConstantOfShape": _constant_of_shape, "Expand": _expand, "Constant": _constant,
}


def test_every_folded_op_is_cross_checked():
    assert set(_FOLDERS) | {"Constant"} == set(GENERATORS)


def _fold(model: onnx.ModelProto, n_out: int) -> list:
    folder = Folder(build_graph(model))
    return [folder.value(f"out{k}") for k in range(n_out)]


@pytest.mark.parametrize("op", sorted(GENERATORS))
def test_folder_matches_onnx_reference(op):
    rng = np.random.default_rng(sorted(GENERATORS).index(op) + 1517)
    for _ in range(CASES_PER_OP):
        case = GENERATORS[op](rng)
        model = case.model()
        with np.errstate(all="ignore"):
            want = case.run_peer(model)
            got = _fold(model, case.n_out)
        for k, (g, w) in enumerate(zip(got, want)):
            assert isinstance(g, np.ndarray), f"{case}: output {k} did not fold ({g!r})"
            assert g.dtype == w.dtype, f"{case}: output {k} dtype {g.dtype}, reference {w.dtype}"
            assert g.shape == w.shape, f"{case}: output {k} shape {g.shape}, reference {w.shape}"
            np.testing.assert_array_equal(g, w, err_msg=str(case))


def test_integer_division_truncates_toward_zero():
    x, y = np.array([-7, 7, -7, 7], np.int64), np.array([2, -2, -2, 2], np.int64)
    model = Case("Div", [x, y]).model()
    (got,) = _fold(model, 1)
    (want,) = ReferenceEvaluator(model).run(None, {})
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got, np.trunc(x / y).astype(np.int64))
