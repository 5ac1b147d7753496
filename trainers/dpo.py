"""Diffusion-DPO for flow-matching video models (Flow-DPO), reference = the same model with its LoRA off.

Per pair: one noise tensor and one sigma shared by winner and loser (drawing them separately, as VideoDPO's
code does, adds variance that swamps the preference signal), then with L = mean squared velocity error
    inside = -0.5 * beta * ((L_w - L_l) - (Lref_w - Lref_l)),   loss = -mean(logsigmoid(inside)).
Implicit accuracy is the fraction of pairs with inside > 0. beta defaults per target (config.DEFAULT_DPO_BETA):
flow/velocity 1000 (useful range ~100-2000), eps 5000 (the Diffusion-DPO SD value).
"""
from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from .config import DEFAULT_DPO_BETA, TrainerConfig, resolve_path
from .dpo_data import BadSample, LatentSource, load_pair_rows
from .flow import noisy_and_target, per_sample_mse, shift_sigma
from .trainer import Trainer
from .text_embeddings import TextEmbeddings, pad_batch

log = logging.getLogger(__name__)


def dpo_terms(err: torch.Tensor, ref_err: torch.Tensor, beta: float) -> dict[str, torch.Tensor]:
    """err / ref_err: per-sample errors of [winners..., losers...] (2N values)."""
    mw, ml = err.chunk(2)
    rw, rl = ref_err.chunk(2)
    inside = -0.5 * beta * ((mw - ml) - (rw - rl))
    return {"loss": -F.logsigmoid(inside).mean(), "inside": inside, "mw": mw, "ml": ml, "rw": rw, "rl": rl}


class DPOTrainer(Trainer):
    method = "dpo"

    def setup(self) -> None:
        cfg, d = self.cfg, self.cfg.dpo
        if cfg.model.prediction != "flow":
            raise ValueError("Only flow-matching (velocity) models are implemented for DPO so far (Wan 2.1); "
                             "model.prediction: eps is reserved for SD-family motion models.")
        self.beta = d.beta or DEFAULT_DPO_BETA[cfg.model.prediction]
        rows, bad = load_pair_rows(cfg)
        self.bad_rows = len(bad)
        self.embeddings = TextEmbeddings.load(resolve_path(cfg, d.text_embeddings))
        self.embeddings.require([r.prompt for r in rows], "preference pairs")
        n_eval = min(d.eval_pairs, max(0, len(rows) - 1))
        self.eval_rows = rows[len(rows) - n_eval:] if n_eval else []
        self.rows = rows[: len(rows) - n_eval]
        self.latents = LatentSource(cfg, self.device, self.run_dir / "latent_cache")
        self.model = self.build_model()
        tcfg = self.transformer.config
        self.text_dim, self.text_len = tcfg.text_dim, cfg.model.text_len
        self.generators = {"noise": self.rt.generator(0)}
        self.epoch, self.cursor = 0, 0
        self.bad_loaded: set[int] = set()  # row indices whose clips failed to load (skipped from then on)
        self._order = None
        self._eval_batch = None

    # ------------------------------------------------------------------ data order
    def data_state(self) -> dict:
        return {"epoch": self.epoch, "cursor": self.cursor, "bad": sorted(self.bad_loaded)}

    def load_data_state(self, state: dict) -> None:
        self.epoch, self.cursor = state.get("epoch", 0), state.get("cursor", 0)
        self.bad_loaded = set(state.get("bad", []))
        self._order = None

    def _epoch_order(self) -> list[int]:
        """Same permutation on every rank (seeded by epoch), each rank takes its stride."""
        if self._order is None or self._order[0] != self.epoch:
            g = torch.Generator().manual_seed(self.cfg.run.seed * 7_777 + self.epoch)
            perm = torch.randperm(len(self.rows), generator=g).tolist()
            self._order = (self.epoch, perm[self.rt.rank:: self.rt.world] or perm)
        return self._order[1]

    def _next_pairs(self, n: int):
        out, tries = [], 0
        limit = len(self.rows) * 2 + n
        while len(out) < n:
            order = self._epoch_order()
            if self.cursor >= len(order):
                self.epoch, self.cursor = self.epoch + 1, 0
                continue
            index = order[self.cursor]
            self.cursor += 1
            tries += 1
            if tries > limit:
                raise ValueError(f"Every preference pair failed to load ({len(self.bad_loaded)} bad rows).")
            if index in self.bad_loaded:
                continue
            try:
                out.append(self._load_pair(self.rows[index]))
            except BadSample as exc:
                if self.cfg.dpo.on_bad_sample == "error":
                    raise
                log.warning("skipping preference pair: %s", exc)
                self.bad_loaded.add(index)
        return out

    def _load_pair(self, row):
        return (self.embeddings.get(row.prompt), self.latents.latent(row.chosen, row.where),
                self.latents.latent(row.rejected, row.where))

    def _batch(self, pairs):
        shapes = {tuple(w.shape) for _, w, _ in pairs} | {tuple(l.shape) for _, _, l in pairs}
        if len(shapes) > 1:
            raise ValueError(f"Pairs in one step have different latent shapes {sorted(shapes)}: use dpo.pairs_per_step: 1 "
                             "or clips of one size (set dpo.height/width to resize).")
        ctx = pad_batch([e for e, _, _ in pairs], self.text_len, self.text_dim).to(self.device)
        xw = torch.stack([w for _, w, _ in pairs]).to(self.device)
        xl = torch.stack([l for _, _, l in pairs]).to(self.device)
        return ctx, xw, xl

    # ------------------------------------------------------------------ loss
    def _draw(self, shape, n: int, gen: torch.Generator):
        noise = torch.randn(shape, generator=gen, device=self.device)
        u = torch.rand(n, generator=gen, device=self.device)
        # Keep sigma off the exact ends: at 0 and 1 one side of the interpolation vanishes.
        sigma = shift_sigma(u.clamp(1e-3, 1 - 1e-3), self.cfg.model.flow_shift)
        return noise, sigma

    def _pair_errors(self, ctx, xw, xl, noise, sigma, with_grad: bool):
        xt_w, tgt_w = noisy_and_target(xw, noise, sigma)
        xt_l, tgt_l = noisy_and_target(xl, noise, sigma)
        x_in = torch.cat([xt_w, xt_l])
        s_in, c_in, tgt = torch.cat([sigma, sigma]), torch.cat([ctx, ctx]), torch.cat([tgt_w, tgt_l])
        with torch.no_grad(), self.reference():
            ref_err = per_sample_mse(self.forward(x_in, s_in, c_in), tgt)
        self.rt.check_cancel()
        with torch.set_grad_enabled(with_grad):
            err = per_sample_mse(self.forward(x_in, s_in, c_in), tgt)
        return err, ref_err

    def train_step(self, step: int) -> dict:
        pairs = self._next_pairs(self.cfg.dpo.pairs_per_step)
        ctx, xw, xl = self._batch(pairs)
        self.rt.check_cancel()
        noise, sigma = self._draw(xw.shape, xw.shape[0], self.generators["noise"])
        err, ref_err = self._pair_errors(ctx, xw, xl, noise, sigma, with_grad=True)
        t = dpo_terms(err, ref_err, self.beta)
        self.rt.check_cancel()
        self.rt.accelerator.backward(t["loss"])
        grad_norm = self.optimizer_step()
        t = {k: v.detach() for k, v in t.items()}
        return {
            "loss": float(t["loss"]), "implicit_acc": float((t["inside"] > 0).float().mean()),
            "inside": float(t["inside"].mean()), "model_err_w": float(t["mw"].mean()),
            "model_err_l": float(t["ml"].mean()), "ref_err_w": float(t["rw"].mean()),
            "ref_err_l": float(t["rl"].mean()), "sigma": float(sigma.mean()), "grad_norm": grad_norm,
            "skipped_pairs": float(len(self.bad_loaded) + self.bad_rows), "epoch": float(self.epoch),
        }

    # ------------------------------------------------------------------ evaluation
    def eval_due(self, step: int) -> bool:
        d = self.cfg.dpo
        return bool(self.eval_rows) and d.eval_every > 0 and step % d.eval_every == 0

    @torch.no_grad()
    def evaluate(self, step: int) -> dict:
        """Held-out pairs with fixed noise/sigma: the same draws at every evaluation, so changes are the model's."""
        if self._eval_batch is None:
            g = torch.Generator(device=self.device).manual_seed(self.cfg.run.seed + 99_991)
            batch = []
            for row in self.eval_rows:
                ctx, xw, xl = self._batch([self._load_pair(row)])
                batch.append((ctx, xw, xl, *self._draw(xw.shape, 1, g)))
            self._eval_batch = batch
        losses, accs = [], []
        for ctx, xw, xl, noise, sigma in self._eval_batch:
            err, ref_err = self._pair_errors(ctx, xw, xl, noise, sigma, with_grad=False)
            t = dpo_terms(err, ref_err, self.beta)
            losses.append(float(t["loss"]))
            accs.append(float((t["inside"] > 0).float().mean()))
        return {"eval_loss": sum(losses) / len(losses), "eval_implicit_acc": sum(accs) / len(accs)}


def run_dpo(cfg: TrainerConfig, rt, run_dir=None, stage: str = "") -> dict:
    return DPOTrainer(cfg, rt, run_dir, stage).run()
