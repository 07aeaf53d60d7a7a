"""The torch-free projector gives the estimator's outputs; the faster training steps give the
straightforward ones exactly (same loss and gradients, so a random_state trains as before)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from talkrec.errors import InputError, NotFittedError
from talkrec.fusion import ContrastiveFusion, FusionProjector
from talkrec.fusion.encoders import build_encoders
from talkrec.fusion.training import FusionData, TrainSettings, batch_loss


def _data(n: int = 400, seed: int = 0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 6))
    X = {"text": z @ rng.normal(size=(6, 12)), "cf": z @ rng.normal(size=(6, 8)), "audio": z @ rng.normal(size=(6, 5))}
    X = {k: (v + 0.05 * rng.normal(size=v.shape)).astype(np.float32) for k, v in X.items()}
    X["audio"][: n // 2] = np.nan
    X["cf"][n - 40:] = np.nan
    gen = X["text"] + 0.1 * rng.normal(size=X["text"].shape).astype(np.float32)
    gen[::3] = np.nan
    return X, gen


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    X, gen = _data()
    inputs = {**X, "text": [X["text"], gen]}
    m = ContrastiveFusion(max_epochs=4, batch_size=64, hidden_dim=16, out_dim=8, random_state=2).fit(inputs)
    path = tmp_path_factory.mktemp("fusion") / "f"
    m.save(path)
    return m, FusionProjector.load(path), inputs


def test_projector_matches_the_estimator(fitted):
    m, p, inputs = fitted
    assert p.modalities_ == m.modalities_ and p.input_dims_ == m.input_dims_ and p.out_dim == 8
    for mod in ("cf", "audio"):
        a, b = m.project(mod, inputs[mod]), p.project(mod, inputs[mod])
        assert np.array_equal(np.isnan(a), np.isnan(b)) and np.nanmax(np.abs(a - b)) < 1e-5
    assert np.nanmax(np.abs(m.project_views("text", inputs["text"]) - p.project_views("text", inputs["text"]))) < 1e-5
    for w in (None, {"text": 2.0, "cf": 1.0}):
        a, b = m.transform(inputs, weights=w), p.transform(inputs, weights=w)
        assert np.array_equal(np.isnan(a), np.isnan(b)) and np.nanmax(np.abs(a - b)) < 1e-5
    one = inputs["cf"][0]
    assert p.project("cf", one).shape == (8,) and np.allclose(p.project("cf", one), m.project("cf", one), atol=1e-5)
    outs = p.modality_outputs({"cf": inputs["cf"]})
    assert set(outs) == {"cf"}
    assert p.config() == m.config()


def test_projector_checks_like_the_estimator(fitted):
    _, p, _ = fitted
    with pytest.raises(InputError):
        p.project("cf", np.ones((2, 3)))
    with pytest.raises(KeyError):
        p.project("image", np.ones((2, 3)))
    with pytest.raises(KeyError):
        p.transform({"image": np.ones((2, 3))})
    with pytest.raises(NotFittedError):
        FusionProjector({"out_dim": 8}).project("cf", np.ones((1, 8)))


def _reference_loss(encoders, data, rows, settings, sample):
    """The training step before the speed work: stack every view, mask every pair."""
    z, where, ok = {}, {}, {}
    for m, views in data.views.items():
        p = data.present[m][rows]
        if p.shape[1] == 1 or not sample:
            choice = torch.argmax(p.to(torch.int8), dim=1)
        else:
            choice = torch.multinomial(p.float() + 1e-9, 1, generator=None).squeeze(1)
        x = torch.stack([d[rows] for d in views], dim=1)[torch.arange(len(rows)), choice]
        ok[m] = p.any(dim=1)
        where[m] = torch.cumsum(ok[m].to(torch.long), 0) - 1
        z[m] = encoders[m](x[ok[m]])
    total = None
    for a, b in data.pairs:
        both = ok[a] & ok[b]
        if int(both.sum()) < 2:
            continue
        za, zb = F.normalize(z[a][where[a][both]], dim=1), F.normalize(z[b][where[b][both]], dim=1)
        logits = za @ torch.cat([za, zb]).T / settings.temperature
        mask = torch.zeros_like(logits, dtype=torch.bool)
        idx = torch.arange(len(za))
        mask[idx, idx] = True
        loss = F.cross_entropy(logits.masked_fill(mask, float("-inf")), idx + len(za))
        total = loss if total is None else total + loss
    return total


@pytest.mark.parametrize("sample", [True, False])
def test_batch_loss_equals_the_straightforward_step(sample):
    X, gen = _data()
    views = {"text": [X["text"], gen], "cf": [X["cf"]], "audio": [X["audio"]]}
    present = {m: np.stack([~np.isnan(v).any(axis=1) for v in vs], axis=1) for m, vs in views.items()}
    zeros = {m: np.zeros(vs[0].shape[1], np.float32) for m, vs in views.items()}
    ones = {m: np.ones(vs[0].shape[1], np.float32) for m, vs in views.items()}
    pairs = [("text", "cf"), ("text", "audio"), ("cf", "audio")]
    data = FusionData.build(views, present, zeros, ones, pairs, "cpu")
    settings = TrainSettings(batch_size=64, temperature=0.1, symmetric=False, learning_rate=1e-3, max_epochs=1,
                             patience=1, verbose=False)
    torch.manual_seed(0)
    enc = build_encoders({m: vs[0].shape[1] for m, vs in views.items()}, 16, 8, 0.3)
    for rows in (torch.arange(0, 64), torch.arange(150, 214), torch.arange(330, 400), torch.arange(0, 400, 7)):
        got_grads, want_grads = [], []
        for fn, grads in ((batch_loss, got_grads), (_reference_loss, want_grads)):
            enc.zero_grad()
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(5)
                loss = fn(enc, data, rows, settings, sample)
            loss.backward()
            grads.append(float(loss.detach()))
            grads += [None if p.grad is None else p.grad.clone() for p in enc.parameters()]
        assert got_grads[0] == want_grads[0]
        assert all((a is None and b is None) or torch.equal(a, b) for a, b in zip(got_grads[1:], want_grads[1:]))
        assert any(g is not None for g in got_grads[1:])
