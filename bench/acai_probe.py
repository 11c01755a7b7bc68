"""Probe R-DC's phase 1 (ACAI pretraining, core/acai.py): k-means on the codes of variants that
each change one item of ours towards the ACAI paper / authors' code (issue #19 item 3; findings
in docs/wip/rdc-phase1.md). Appends one JSON line per run to bench/results/acai_probe.jsonl.

    python bench/acai_probe.py --variant ours --epochs 20 --seed 0

The loop below is core/acai.py's as of 3a460f3, before the training engine (same losses via
acai_losses, same random draws in the same order), so that variants share batches and
augmentations and differ only in their item.
"""
from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime

import numpy as np
import torch

from bench.common import RESULTS, data_path
from core.acai import ACAIParams, acai_losses, critic_network
from core.autoencoder import AutoencoderParams, MLPAutoencoder
from core.clustering_head import kmeans_centers
from core.images import image_shape, random_shift_rotate
from core.metrics import evaluate
from core.provenance import library_versions, peak_memory_mb
from core.training import as_vectors, make_optimizer, seed_everything

# each variant: one change to ours (alpha_max: alpha = alpha_max - |u - alpha_max| folds U(0,1)
# into [0, alpha_max] as the authors' code does for 0.5; gamma None: DynAE's per-batch draw)
VARIANTS = {
    "ours": {},
    "alpha_half": {"alpha_max": 0.5},                       # paper Sec. 3 / acai.py l.62-63
    "paper": {"alpha_max": 0.5, "gamma": 0.2},              # ... and reg = 0.2 (acai.py l.69, 153)
    "no_critic": {"acai_lambda": 0.0},                      # our loop, reconstruction only
    "ours_lr1e-3": {"lr": 1e-3},                            # ae_kmeans' learning rate
    "paper_lr1e-3": {"alpha_max": 0.5, "gamma": 0.2, "lr": 1e-3},
    "paper_pm1": {"alpha_max": 0.5, "gamma": 0.2, "pm1": True},  # ... and inputs in [-1, 1]
    "frozen_critic": {"critic_steps": False},  # DynAE's Keras: critic frozen before disc compiles
    "ae_kmeans": {"plain": True},                           # core/autoencoder.py defaults
}


def train(X: torch.Tensor, shape, epochs: int, v: dict, generator: torch.Generator, on_epoch):
    """ACAI as core/acai.py trains it, with the variant's alpha range, gamma, lambda and lr.
    `plain`: reconstruction only, Adam 1e-3, no augmentation (ae_kmeans' pretraining)."""
    p = ACAIParams(pretrain_epochs=epochs)
    model = MLPAutoencoder(X.shape[1], p.hidden_dims, p.embedding_dim)
    if v.get("plain"):
        a = AutoencoderParams(pretrain_epochs=epochs)
        opt = make_optimizer(a.pretrain_optimizer, model.parameters(), a.pretrain_lr)
        for epoch in range(1, epochs + 1):
            order = torch.randperm(len(X), generator=generator)  # as before the engine
            for start in range(0, len(X), a.batch_size):
                idx = order[start:start + a.batch_size]
                loss = torch.nn.functional.mse_loss(model(X[idx])[1], X[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            on_epoch(epoch, model, None, {"reconstruction": loss.item()})
        return model
    lr, lam = v.get("lr", p.pretrain_lr), v.get("acai_lambda", p.acai_lambda)
    alpha_max = v.get("alpha_max", 1.0)
    critic = critic_network(X.shape[1], p)
    ae_opt = torch.optim.Adam(model.parameters(), lr=lr)
    critic_opt = torch.optim.Adam(critic.parameters(), lr=lr)
    for epoch in range(1, epochs + 1):
        sums, steps = {}, 0
        order = torch.randperm(len(X), generator=generator)
        for start in range(0, len(X), p.batch_size):
            x = X[order[start:start + p.batch_size]]
            if len(x) < 2:
                continue
            x = random_shift_rotate(x, shape, generator=generator)
            u = torch.rand(len(x), generator=generator)
            alpha = u if alpha_max == 1.0 else alpha_max - (u - alpha_max).abs()
            gamma = 0.5 - abs(torch.rand(1, generator=generator).item() - 0.5)
            gamma = v.get("gamma", gamma)
            if lam == 0:  # the same draws, no critic: plain reconstruction in our loop
                loss = (model(x)[1] - x).pow(2).mean()
                ae_opt.zero_grad(set_to_none=True)
                loss.backward()
                ae_opt.step()
                terms = {"reconstruction": loss.item()}
            else:
                losses = acai_losses(model, critic, x, alpha, gamma, lam)
                ae_loss, critic_loss = losses["total"], losses["critic"]
                terms = {k: losses[k].item() for k in ("reconstruction", "adversarial", "critic")}
                ae_opt.zero_grad(set_to_none=True)
                ae_loss.backward(inputs=list(model.parameters()))
                ae_opt.step()
                if v.get("critic_steps", True):
                    critic_opt.zero_grad(set_to_none=True)
                    critic_loss.backward(inputs=list(critic.parameters()))
                    critic_opt.step()
            for k, val in terms.items():
                sums[k] = sums.get(k, 0.0) + val
            steps += 1
        on_epoch(epoch, model, critic if lam else None, {k: s / steps for k, s in sums.items()})
    return model


def whitened(z: np.ndarray) -> np.ndarray:
    """Centre, rotate onto the singular vectors and divide by the singular values, as the
    authors' cluster.py does (use_svd=1) before k-means."""
    z = z - z.mean(0)
    _, s, vt = np.linalg.svd(z, full_matrices=False)
    return z @ vt.T / (s + 1e-5)


@torch.no_grad()
def critic_probe(model, critic, X: torch.Tensor, generator: torch.Generator) -> dict:
    """How the trained critic reads interpolations: its mean score in alpha bins over [0, 1]
    (ours trains it on the whole range, the paper on [0, 0.5]) and on reconstructions."""
    x = X[torch.randperm(len(X), generator=generator)[:2048]]
    z, x_hat = model(x)
    alpha = torch.rand(len(x), generator=generator)
    score = critic(model.decoder(alpha[:, None] * z + (1 - alpha[:, None]) * z.flip(0))).mean(1)
    bins = {}
    for lo in np.arange(0, 1, 0.2):
        inside = (alpha >= lo) & (alpha < lo + 0.2)
        bins[f"{lo:.1f}-{lo + 0.2:.1f}"] = round(score[inside].mean().item(), 3)
    reconstruction = round(critic(x_hat).mean(1).mean().item(), 3)
    return {"score_by_alpha": bins, "score_reconstruction": reconstruction}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", choices=sorted(VARIANTS), required=True)
    parser.add_argument("--dataset", default="usps")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--every", type=int, default=5,
                        help="k-means on the codes every this many epochs")
    parser.add_argument("--results", default=str(RESULTS / "acai_probe.jsonl"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = np.load(data_path(args.dataset))
    y, shape = data["y"], image_shape(data["X"].shape)
    k = len(np.unique(y))
    t0 = time.perf_counter()
    generator = seed_everything(args.seed)
    X = torch.from_numpy(as_vectors(data["X"], "minmax"))
    if VARIANTS[args.variant].get("pm1"):  # the authors' [-1, 1]: reconstruction error x4
        X = 2 * X - 1
    trajectory: list[dict] = []
    critic_view: dict = {}

    def scores(model) -> tuple[dict, dict]:
        z = model.encode(X).numpy()
        raw = evaluate(y, kmeans_centers(z, k, args.seed, 20)[1])
        white = evaluate(y, kmeans_centers(whitened(z), k, args.seed, 20)[1])
        return raw, white

    def on_epoch(epoch, model, critic, losses):
        if epoch % args.every == 0 or epoch == args.epochs:
            raw, white = scores(model)
            trajectory.append({"epoch": epoch, "acc": round(raw["acc"], 4),
                               "acc_whitened": round(white["acc"], 4),
                               "losses": {n: round(v, 5) for n, v in losses.items()}})
            print(json.dumps(trajectory[-1]), flush=True)
        if critic is not None and epoch == args.epochs:
            critic_view.update(critic_probe(model, critic, X, torch.Generator().manual_seed(1)))

    variant = VARIANTS[args.variant]
    model = train(X, shape, args.epochs, variant, generator, on_epoch)
    raw, white = scores(model)
    z = model.encode(X).numpy()
    s = np.linalg.svd(z - z.mean(0), compute_uv=False)
    record = {
        "method": f"acai_probe:{args.variant}", "dataset": args.dataset, "seed": args.seed,
        "n": len(y), **{m: raw[m] for m in ("acc", "nmi", "ari")},
        "whitened": {m: white[m] for m in ("acc", "nmi", "ari")},
        "wall_s": round(time.perf_counter() - t0, 1), "peak_mb": peak_memory_mb("cpu"),
        "device": "cpu", "versions": library_versions(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "params": {"epochs": args.epochs, "batch_size": 256, "augment": not variant.get("plain"),
                   **variant},
        "trajectory": trajectory, "critic": critic_view,
        "code_spectrum": [round(float(v), 2) for v in s / s.sum()],
        "code_rms": round(float(np.sqrt((z ** 2).mean())), 3),
    }
    with open(args.results, "a") as f:
        f.write(json.dumps(record) + "\n")
    print(json.dumps({k: record[k] for k in ("method", "acc", "nmi", "whitened", "wall_s")}))


if __name__ == "__main__":
    main()
