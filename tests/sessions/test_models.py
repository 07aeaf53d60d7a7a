"""Masking, attention direction, weight tying, init, freezing, persistence, learning, and
the shared estimator contract for both families."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from contract import FitContract, RandomStateContract, SaveLoadContract

from talkrec.errors import InputError
from talkrec.estimator import clone
from talkrec.sessions.evaluate import evaluate_scores, last_item_task
from talkrec.sessions.models import MASK, PAD, MaskedSessionModel, NextItemSessionModel, SessionNet, mask_tokens
from talkrec.sessions.sessionize import SessionSet

N = 12
ITEMS = [f"i{j}" for j in range(N)]
SMALL = dict(d_model=16, n_layers=1, n_heads=2, dropout=0.0, max_length=8, batch_size=32, device="cpu")


def cyclic(n_sessions=160, seed=0):
    """Sessions that walk i -> i+1 (mod N): the next item is fully determined."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_sessions):
        a, L = int(rng.integers(0, N)), int(rng.integers(3, 8))
        out.append([ITEMS[(a + t) % N] for t in range(L)])
    return out


def test_mask_tokens_masks_only_real_positions_and_at_least_one_per_row():
    g = torch.Generator().manual_seed(0)
    tok = torch.tensor([[5, 6, 7, PAD, PAD], [8, PAD, PAD, PAD, PAD], [PAD] * 5, [2, 3, 4, 5, 6]])
    for _ in range(50):
        out, where = mask_tokens(tok, 0.01, g)
        assert not where[tok == PAD].any()
        assert where[[0, 1, 3]].any(dim=1).all() and not where[2].any()
        assert (out[where] == MASK).all() and torch.equal(out[~where], tok[~where])


def test_mask_fraction_is_close_to_p():
    g = torch.Generator().manual_seed(1)
    tok = torch.randint(2, 50, (200, 50))
    _, where = mask_tokens(tok, 0.2, g)
    assert 0.17 < where.float().mean().item() < 0.23


@pytest.mark.parametrize("causal", [True, False])
def test_causal_attention_ignores_the_future_and_bidirectional_does_not(causal):
    torch.manual_seed(0)
    net = SessionNet(20, 16, 16, 2, 2, 32, 0.0, 10, causal).eval()
    a = torch.tensor([[2, 3, 4, 5, 6]])
    b = torch.tensor([[2, 3, 4, 9, 11]])
    with torch.no_grad():
        ha, hb = net(a), net(b)
    same_prefix = torch.allclose(ha[0, :3], hb[0, :3], atol=1e-5)
    assert same_prefix == causal


def test_padding_does_not_change_real_positions():
    torch.manual_seed(0)
    net = SessionNet(20, 16, 16, 1, 2, 32, 0.0, 10, False).eval()
    with torch.no_grad():
        h1 = net(torch.tensor([[2, 3, 4]]))
        h2 = net(torch.tensor([[2, 3, 4, PAD, PAD]]))
    assert torch.allclose(h1[0], h2[0, :3], atol=1e-5)


def test_weight_tying_scores_use_the_input_table():
    torch.manual_seed(0)
    net = SessionNet(20, 24, 16, 1, 2, 32, 0.0, 10, False)       # d_emb != d_model: projections
    assert isinstance(net.proj_in, torch.nn.Sequential) and isinstance(net.proj_out, torch.nn.Linear)
    h = torch.randn(3, 24)
    assert torch.allclose(net.scores(h), h @ net.items.weight.T + net.bias)
    assert not any(p is net.items.weight for n, p in net.named_parameters() if n.startswith("proj_out"))


def test_init_rows_are_used_and_missing_rows_are_random():
    ids = ["i0", "i1", "zzz"]
    X = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0], [9, 9, 9, 9]], np.float32)
    m = MaskedSessionModel(**SMALL, max_epochs=1, freeze_embeddings=True, standardize_init=False).fit(
        cyclic(20), item_ids=ITEMS, init=(ids, X))
    E = m.net_.items.weight.detach().numpy()
    assert E.shape == (N, 4) and m.embedding_dim_ == 4
    np.testing.assert_allclose(E[0], X[0]) and np.testing.assert_allclose(E[1], X[1])
    assert m.init_coverage_ == pytest.approx(2 / N)


def test_frozen_table_does_not_move_but_trainable_does():
    X = np.random.default_rng(0).standard_normal((N, 16)).astype(np.float32)
    for frozen in (True, False):
        m = NextItemSessionModel(**SMALL, max_epochs=1, freeze_embeddings=frozen, n_negatives=5).fit(
            cyclic(40), item_ids=ITEMS, init=(ITEMS, X))
        moved = not np.allclose(m.net_.items.weight.detach().numpy(), m.net_.items.weight.detach().numpy() * 0
                                + _initial(m, X))
        assert moved != frozen


def _initial(m, X):
    from talkrec.sessions.init import init_table
    return init_table(ITEMS, X, ITEMS, standardize=m.standardize_init, random_state=m.random_state)[0]


def test_dimension_mismatch_is_an_input_error():
    with pytest.raises(InputError):
        MaskedSessionModel(**SMALL, embedding_dim=8, max_epochs=1).fit(
            cyclic(10), item_ids=ITEMS, init=(ITEMS, np.zeros((N, 4), np.float32)))
    with pytest.raises(InputError):
        MaskedSessionModel(**SMALL, max_epochs=0).fit(cyclic(10))


@pytest.mark.parametrize("klass", [MaskedSessionModel, NextItemSessionModel])
def test_both_families_learn_a_deterministic_sequence(klass):
    train, test = cyclic(400, seed=1), cyclic(60, seed=2)
    task = last_item_task(SessionSet(np.arange(60), np.array(["u"] * 60), test), ITEMS)
    m = klass(**{**SMALL, "learning_rate": 1e-2}, max_epochs=8, patience=8, random_state=0).fit(
        train, item_ids=ITEMS, validation=task)
    hist = [h["val_ndcg@20"] for h in m.history_]
    score = float(np.mean(evaluate_scores(m.score_indices, task, ks=(1,))["recall@1"]))
    assert score > 0.5, (score, hist)          # chance is 1/12
    assert max(hist) == pytest.approx(hist[m.best_epoch_])   # best checkpoint kept


def test_save_load_roundtrip_gives_identical_scores(tmp_path):
    m = MaskedSessionModel(**SMALL, max_epochs=1).fit(cyclic(30), item_ids=ITEMS)
    m.save(tmp_path / "m")
    m2 = MaskedSessionModel.load(tmp_path / "m")
    ctx = [["i1", "i2"], ["i5"]]
    np.testing.assert_allclose(m.score(ctx), m2.score(ctx), rtol=1e-5, atol=1e-6)
    assert m2.get_params()["mask_probability"] == m.mask_probability
    assert not list(tmp_path.glob("**/*.pkl"))
    with pytest.raises(InputError):
        NextItemSessionModel.load(tmp_path / "m")


def test_params_are_stored_unchanged():
    m = MaskedSessionModel(d_model=32, mask_probability=0.3)
    p = m.get_params()
    assert p["d_model"] == 32 and p["mask_probability"] == 0.3 and "n_negatives" not in p
    assert "n_negatives" in NextItemSessionModel().get_params()


def test_initial_bias_is_log_popularity_plus_the_negative_sampling_offset():
    sess = [["i0", "i1"], ["i0", "i2"], ["i0", "i1"]]
    m = NextItemSessionModel(**SMALL, max_epochs=1, n_negatives=20, learning_rate=1e-9).fit(sess, item_ids=ITEMS)
    b = m.net_.bias.detach().numpy()
    cnt = np.array([3, 2, 1] + [0] * (N - 3))
    expect = np.log1p(cnt) - np.log1p(cnt).mean() - np.log(20)
    np.testing.assert_allclose(b, expect, atol=1e-4)
    assert MaskedSessionModel()._bias_offset() == 0.0


# ------------------------------------------------------------------ the shared contract
#: every context is two consecutive items; the next one is the item after them
CONTEXTS = [[ITEMS[k], ITEMS[(k + 1) % N]] for k in range(N)]


class _SessionContract(FitContract, RandomStateContract, SaveLoadContract):
    params = {**SMALL, "learning_rate": 1e-2, "max_epochs": 10}
    atol = 1e-5

    @pytest.fixture
    def data(self):
        return cyclic(400, seed=1)

    def fit(self, est, data):
        return est.fit(data, item_ids=ITEMS)

    def outputs(self, est, data):
        return est.score(CONTEXTS)

    def check_known_answer(self, est, data):
        S = est.score(CONTEXTS)
        assert S.shape == (N, N) and list(est.vocabulary()) == ITEMS
        top1 = np.mean([S[k].argmax() == (k + 2) % N for k in range(N)])
        assert top1 > 0.5, top1                    # chance is 1/12

    def bad_inputs(self, est, data):
        zeros = np.zeros((N, 4), np.float32)
        return [("sessions", lambda: clone(est).fit([])),
                ("sessions", lambda: clone(est).fit([["i1"], ["nope", "i2"]], item_ids=ITEMS)),
                ("item_ids", lambda: clone(est).fit(data, item_ids=ITEMS + ["i0"])),
                ("embedding_dim", lambda: clone(est).set_params(embedding_dim=8).fit(data, init=(ITEMS, zeros))),
                ("n_heads", lambda: clone(est).set_params(d_model=15, n_heads=2).fit(data)),
                ("item_ids", lambda: est.score([["nope"]]))]


class TestMaskedSessionModel(_SessionContract):
    estimator = MaskedSessionModel
    bad_params = {"n_layers": 0, "dropout": 1.0, "max_length": 1, "windows": "some", "mask_probability": 1.0}


class TestNextItemSessionModel(_SessionContract):
    estimator = NextItemSessionModel
    params = {**_SessionContract.params, "n_negatives": 5}
    bad_params = {"n_negatives": 0, "learning_rate": 0.0, "patience": -1, "freeze_embeddings": "no",
                  "embedding_dim": 0}
