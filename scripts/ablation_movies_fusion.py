"""Ablation: why does MULTI trail CF on MovieLens held-out users? (docs/evaluation.md)

Scores, on the validation users of the tuning folds 0-1 (the protocol of ``talkrec evaluate``,
ALS at the parameters the evaluation chose), raw CF, PCA-200 of CF+text, and MULTI with the
evaluation's chosen fusion settings plus any variants given on the command line, each
aggregated with the plain mean of the modality encoders (the paper), CF-weighted means, and
the CF encoder alone.

    python scripts/ablation_movies_fusion.py                       # the chosen settings only
    python scripts/ablation_movies_fusion.py temperature=0.2 dropout=0.0

Prints one line per system: mean nDCG@200 over the validation users.
"""
from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import torch

from talkrec.config import resolve_path
from talkrec.data.datasets import load_movielens
from talkrec.descriptions import TemplateDescriber
from talkrec.evaluation import baselines as B
from talkrec.evaluation.common import fit_fusion, val_mean
from talkrec.evaluation.embed import embed_texts
from talkrec.evaluation.runner import load_config
from talkrec.evaluation.splits import positives_by_user, query_target_halves, split_val_test, train_interactions, \
    user_folds
from talkrec.evaluation.tasks import UserQueries, concat_results, user_recommendation
from talkrec.fusion.model import combine


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("variants", nargs="*", help="fusion parameter overrides, e.g. temperature=0.2")
    ap.add_argument("--config", default="configs/eval-minilm.yaml")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    cfg = load_config(args.config)
    mc, seed, k = cfg["movies"], int(cfg["seed"]), int(cfg["k"])
    cat = load_movielens(resolve_path(cfg["data_root"], cfg) / "movielens-ml-latest-small")
    inter, ids = cat.interactions, cat.item_ids
    idx = {x: i for i, x in enumerate(ids.tolist())}
    desc = TemplateDescriber(header="movie", only_listed=True, **mc["template"]).describe(cat)
    T = embed_texts([desc[i] for i in ids], cfg["fusion_text_model"], kind="passage",
                    cache_dir=resolve_path(cfg["cache_dir"], cfg))
    users = sorted(inter["user_id"].unique(), key=str)
    folds = user_folds(users, n_folds=int(mc["n_folds"]), random_state=seed)
    usplit = split_val_test(users, val_fraction=float(mc["val_fraction"]), random_state=seed)
    halves = query_target_halves(positives_by_user(inter, threshold=float(mc["threshold"])), query_fraction=0.5,
                                 min_positives=2, random_state=seed)
    # what the full evaluation chose (docs/evaluation.md): ALS 128 factors, reg 1, alpha 2; symmetric loss, lr 1e-3
    als_p = B.ALSParams(factors=128, regularization=1.0, alpha=2.0, iterations=int(mc["als"]["iterations"]))
    chosen = {"learning_rate": 1e-3, "symmetric": True, "standardize": True}
    variants = {"chosen": chosen}
    for v in args.variants:
        key, val = v.split("=", 1)
        variants[v] = {**chosen, key: type(cfg["fusion"]["base"].get(key, 1.0))(val)}
    parts = []
    for f in range(int(mc["tune_folds"])):
        us = [u for u in users if folds[u] == f and u in halves]
        uq = UserQueries(us, [[idx[i] for i in halves[u][0]] for u in us], [{idx[i] for i in halves[u][1]} for u in us],
                         [usplit[u] for u in us])
        C = B.ALSModel(train_interactions(inter, uq.users), ids, als_p, random_state=seed).item_factors
        emb = {"CF (cosine)": C, "CF (item-factor mean, dot)": C,
               "PCA-200 CF+TEXT": B.reduce_concat({"cf": C, "text": T}, method="pca", random_state=seed)}
        for name, params in variants.items():
            t0 = time.perf_counter()
            fu = fit_fusion({"text": T, "cf": C}, cfg["fusion"]["base"], {"name": name, **params}, seed)
            outs = fu.modality_outputs({"text": T, "cf": C})
            for w in (1, 2, 4):
                emb[f"MULTI {name}, mean w_cf={w}"] = combine(outs, {"cf": w, "text": 1})
            emb[f"MULTI {name}, CF encoder only"] = combine(outs, {"cf": 1, "text": 0})
            logging.warning("fold %d %s: %d epochs, %.0fs", f, name, len(fu.history_), time.perf_counter() - t0)
        parts.append(user_recommendation(uq, emb, k=k, dot=["CF (item-factor mean, dot)"]))
    res = concat_results(parts)
    for name in res.scores:
        print(f"{name:45s} val nDCG@200 {val_mean(res, name):.4f}")


if __name__ == "__main__":
    main()
