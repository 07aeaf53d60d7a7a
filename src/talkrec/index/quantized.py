"""Exact top-k of ``X @ q`` that reads a quarter of the bytes: int8 pre-scores with a
certified error bound, then float32 scores for the rows the bound cannot rule out.

Scoring a catalog is memory-bound: a float32 product reads the whole matrix (27 MB for the
Last.fm text-model matrix, 17,632 x 384) for every query, 2 ms with a cold cache. An int8
copy of the rows (symmetric, one scale per row) is scored by ONNX Runtime's
``MatMulInteger`` (0.4 ms cold) and every row gets an interval that surely holds its exact
score:

* row ``x = s (xq + d)`` with ``xq`` int8 and the rounding residual ``d`` (``|d_j| <= 1/2``,
  its norm kept per row);
* the query in two int8 passes ``q = t1 qq1 + t2 qq2 + r`` (``r`` tiny);
* ``approx = s (t1 xq.qq1 + t2 xq.qq2)`` and
  ``|x.q - approx| <= ||x|| ||r|| + s ||d|| (||q|| + ||r||)`` (Cauchy-Schwarz), widened by
  the float32 rounding of the exact scores.

With ``tau`` the k-th largest lower end among eligible rows, a row whose upper end is below
``tau`` cannot be in the top k; the others (about ``k`` plus the rows within the interval's
width of the cut) are scored in float32 and ranked with :func:`~talkrec.ranking.top_k`'s
ties. The result is the top k of the float32 product itself, not an approximation
(``tests/core/test_quantized.py`` checks it against ``X @ q`` on catalogs with ties).
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..ranking import top_k, top_k_among

log = logging.getLogger(__name__)

__all__ = ["Int8TopK", "MAX_ROWS", "MIN_ROWS"]

#: below this many rows a float32 product is as fast (ONNX Runtime's call costs ~30 us)
MIN_ROWS = 4096
#: above this many a serving process makes no copies: they cost ``n x d`` bytes twice (the
#: rows and ONNX Runtime's packed rows), and a catalog this large has its fused kNN on HNSW
MAX_ROWS = 250_000
_EPS32 = float(np.finfo(np.float32).eps)


def _session(Bq: np.ndarray, scale: np.ndarray, rn: np.ndarray) -> tuple[Any, Any]:
    """An ONNX Runtime session of the pre-scores and their error bounds in one call:
    ``approx = (T @ MatMulInteger(A, Bq, 128)) * scale`` and ``err = V @ rn.T`` (``A`` uint8
    ``(2, d)``: the query's two int8 passes; ``T`` ``(1, 2)``: their scales; ``V`` ``(1, 2)``:
    the weights of each row's residual norm and norm; ``Bq`` int8 ``(d, n)``, prepacked once),
    and the OrtValue of ``Bq`` it reads (keep it alive): ``Bq`` is handed over as an external
    initializer, not copied into a model. The arithmetic after the integer product runs in the
    same call, not in numpy (~50 us less a call on the Last.fm space, most of it Python's)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    d, n = Bq.shape
    B = TensorProto(name="B", data_type=TensorProto.INT8, dims=[d, n], data_location=TensorProto.EXTERNAL)
    for key, value in (("location", "B.bin"), ("offset", "0"), ("length", str(d * n))):
        entry = B.external_data.add()
        entry.key, entry.value = key, value
    f32 = TensorProto.FLOAT
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "B", "zero"], ["Y"]),
         helper.make_node("Cast", ["Y"], ["Yf"], to=f32),           # integers below 2**24: exact
         helper.make_node("MatMul", ["T", "Yf"], ["approx0"]),
         helper.make_node("Mul", ["approx0", "scale"], ["approx"]),
         helper.make_node("MatMul", ["V", "rnT"], ["err"])], "int8_bounds",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [2, d]),
         helper.make_tensor_value_info("T", f32, [1, 2]), helper.make_tensor_value_info("V", f32, [1, 2])],
        [helper.make_tensor_value_info("approx", f32, [1, n]), helper.make_tensor_value_info("err", f32, [1, n])],
        initializer=[B, numpy_helper.from_array(np.array(128, np.uint8), "zero"),
                     numpy_helper.from_array(np.asarray(scale, np.float32).reshape(1, n), "scale"),
                     numpy_helper.from_array(np.ascontiguousarray(np.asarray(rn, np.float32).T), "rnT")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.enable_cpu_mem_arena = False          # outputs of a few rows: no arena to keep
    so.log_severity_level = 3
    value = ort.OrtValue.ortvalue_from_numpy(Bq)
    so.add_external_initializers(["B"], [value])
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"]), value


def _quantize(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows ``X`` as int8 with one scale each: ``(scale, s ||d||, ||x||, Xq)`` in float64
    (``Xq`` integers in [-127, 127])."""
    X64 = np.asarray(X, dtype=np.float64)
    amax = np.abs(X64).max(axis=1) if X64.shape[1] else np.zeros(len(X64))
    scale = np.where(amax > 0, amax / 127.0, 1.0)
    Z = X64 / scale[:, None]
    Xq = np.clip(np.rint(Z), -127, 127)
    return scale, scale * np.linalg.norm(Z - Xq, axis=1), np.linalg.norm(X64, axis=1), Xq


class Int8TopK:
    """Exact top-k rows of ``X @ q`` for a fixed float32 matrix ``X`` (finite), through an
    int8 copy of it. Safe to call from several threads."""

    def __init__(self, X: np.ndarray, *, _saved: dict[str, np.ndarray] | None = None) -> None:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or not np.isfinite(X).all():
            raise ValueError("Int8TopK needs a finite 2-D matrix")
        self.X = X
        n, d = X.shape
        self._moments: tuple[np.ndarray, np.ndarray] | None = None
        if _saved is not None:                         # :meth:`load`: checked there
            Bq, self.scale, self.resid, self.norm = _saved["q"], _saved["scale"], _saved["resid"], _saved["norm"]
            if "c" in _saved:
                self._moments = (_saved["c"], _saved["G"])
        else:
            self.scale = np.empty(n, np.float32)
            self.resid = np.empty(n, np.float32)       # s ||d||: the rounding residual's norm
            self.norm = np.empty(n, np.float32)
            Bq = np.empty((d, n), np.int8)             # the int8 rows, transposed for MatMulInteger
            for a in range(0, n, 1024):                # in blocks: float64 copies of a block only
                scale, resid, norm, Xq = _quantize(X[a:a + 1024])
                self.scale[a:a + 1024], self.resid[a:a + 1024], self.norm[a:a + 1024] = scale, resid, norm
                Bq[:, a:a + 1024] = Xq.T
        self.dim = d
        self._Bq = Bq
        self._sess, self._B = _session(Bq, self.scale, np.stack([self.resid, self.norm], axis=1))
        self._lock = threading.Lock()

    def save(self, path: str | Path) -> None:
        """This copy as ``path`` (``.npz``, no pickles; with the moments when made): what
        :meth:`load` reads back instead of quantizing the matrix again (a process taking on a
        compacted generation: 0.11 s of the Last.fm space's load)."""
        arrays = {"q": self._Bq, "scale": self.scale, "resid": self.resid, "norm": self.norm}
        if self._moments is not None:
            arrays.update(c=self._moments[0], G=self._moments[1])
        with open(path, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, X: np.ndarray, path: str | Path) -> "Int8TopK":
        """The copy of ``X`` that :meth:`save` wrote at ``path``; ``ValueError`` when it is not
        ``X``'s: the shapes, and 32 of its rows (seeded) quantized again, must agree."""
        X = np.asarray(X, dtype=np.float32)
        with np.load(path, allow_pickle=False) as z:
            saved = {k: z[k] for k in z.files}
        n, d = X.shape if X.ndim == 2 else (-1, -1)
        shapes = {"q": (d, n), "scale": (n,), "resid": (n,), "norm": (n,), "c": (d,), "G": (d, d)}
        if not {"q", "scale", "resid", "norm"} <= saved.keys() or saved["q"].dtype != np.int8 or any(
                v.shape != shapes.get(k) for k, v in saved.items()):
            raise ValueError(f"{path}: not an int8 copy of a {n} x {d} matrix")
        rows = np.random.default_rng(0).choice(n, size=min(n, 32), replace=False) if n > 0 else np.zeros(0, int)
        scale, resid, norm, Xq = _quantize(X[rows])
        if not (np.array_equal(Xq.T, saved["q"][:, rows])
                and np.array_equal(scale.astype(np.float32), saved["scale"][rows])
                and np.array_equal(resid.astype(np.float32), saved["resid"][rows])
                and np.array_equal(norm.astype(np.float32), saved["norm"][rows])):
            raise ValueError(f"{path}: its rows are not the int8 rows of this matrix")
        return cls(X, _saved=saved)

    @classmethod
    def saved_or_new(cls, X: np.ndarray, path: str | Path | None) -> "Int8TopK":
        """:meth:`load` of ``path`` where it is a file holding ``X``'s copy, else a new copy."""
        if path is not None and Path(path).is_file():
            try:
                return cls.load(X, path)
            except (OSError, ValueError) as e:       # not this matrix's: make it
                log.warning("%s; making the int8 copy again", e)
        return cls(X)

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """``(X.sum(axis=0), X.T @ X)`` in float64, made once: with them the sum and the sum
        of squares of ``X @ q`` over every row cost a ``d x d`` product, not a pass over ``X``."""
        if self._moments is None:
            with self._lock:
                if self._moments is None:
                    n, d = self.X.shape
                    c, G = np.zeros(d), np.zeros((d, d))
                    for a in range(0, n, 4096):                # float64 copies of a block only
                        B = self.X[a:a + 4096].astype(np.float64)
                        c += B.sum(axis=0)
                        G += B.T @ B
                    self._moments = (c, G)
        return self._moments

    def bounds(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(approx, err)`` per row: ``|x_i . q - approx_i| <= err_i``, for the float32
        scores too."""
        approx, err, floor = self._bounds(np.asarray(q, dtype=np.float32))
        return approx, err + np.float32(floor)

    def _bounds(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """``approx``, ``err`` without its absolute ``floor``, and the floor."""
        q64 = np.asarray(q, dtype=np.float64)
        d = len(q64)
        t1 = (float(np.abs(q64).max()) / 127.0 if d else 0.0) or 1.0
        qq1 = np.rint(q64 / t1)                                       # in [-127, 127]: |q| <= 127 t1
        r1 = q64 - t1 * qq1
        t2 = (float(np.abs(r1).max()) / 127.0 if d else 0.0) or 1.0
        qq2 = np.rint(r1 / t2)
        r = r1 - t2 * qq2
        A = np.empty((2, d), np.uint8)
        A[0], A[1] = qq1 + 128, qq2 + 128
        qn, rn = float(np.sqrt(q64 @ q64)), float(np.sqrt(r @ r))
        # + the float32 rounding of a d-term dot product (both sides of a comparison) and of
        # the approximation's own arithmetic (|approx| <= ||x|| ||q|| + err: relative 1e-6)
        f32 = (4.0 * (d + 8) + 16.0) * _EPS32
        approx, err = self._sess.run(None, {"A": A, "T": np.array([[t1, t2]], np.float32),
                                            "V": np.array([[qn + rn, rn + f32 * qn]], np.float32)})
        return approx[0], err[0], 1e-7

    def top(self, q: np.ndarray, k: int, eligible: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` eligible rows with the largest float32 ``X @ q``, best first (ties: the
        lower row), and those scores (float32)."""
        n = len(self.X)
        q32 = np.asarray(q, dtype=np.float32)
        elig = np.ones(n, dtype=bool) if eligible is None else np.asarray(eligible, dtype=bool)
        n_elig = int(elig.sum())
        k = min(int(k), n_elig)
        if k <= 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        approx, err, floor = self._bounds(q32)
        low = approx - err
        if n_elig < n:
            low[~elig] = -np.inf
        low.partition(n - k)
        tau = low[n - k] - 2 * floor                                   # the k-th largest lower end
        approx += err                                                  # the upper ends
        cand = approx >= tau
        cand = np.flatnonzero(cand & elig if n_elig < n else cand)
        if len(cand) > n // 3:                                         # a flat score distribution
            s = np.where(elig, self.X @ q32, -np.inf)
            top = top_k(s, k)
            return top, s[top].astype(np.float32)
        s = self.X[cand] @ q32                                          # about k rows, in row order
        order = top_k_among(s, np.arange(len(s)), k) if np.isfinite(s).all() else top_k(s, k)
        return cand[order], s[order]
