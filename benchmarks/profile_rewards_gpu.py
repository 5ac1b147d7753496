"""Where the GPU reward suite's remaining time goes (identity's MTCNN, BLIP generation): quick timings of the
pieces at several settings, to choose defaults, and a check that the CUDA-graph greedy BLIP decoder
(rewards/blip_decode.py) returns generate()'s tokens on a full-size BLIP. `mtcnn_batched`: facenet-pytorch's own
detect() against the pack's batched-crop detection (rewards/face_detect.py) on the same frames (Identity Lock's
probe frames of one 64-frame clip, and of 8 such clips in one call), with the largest box difference.
    python benchmarks/profile_rewards_gpu.py [--device cuda] [--parts mtcnn,blip,mtcnn_batched]"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def timed(fn, dev, n=3):
    fn()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    best = float("inf")
    for _ in range(n):
        t = time.perf_counter()
        fn()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--parts", default="mtcnn,blip")
    args = ap.parse_args()
    dev = torch.device(args.device)
    parts = args.parts.split(",")
    if "mtcnn" in parts:
        profile_mtcnn(dev)
    if "blip" in parts:
        profile_blip(dev)
    if "mtcnn_batched" in parts:
        profile_mtcnn_batched(dev)


def profile_mtcnn_batched(dev, size: int = 512, frames: int = 64, clips: int = 8):
    """Library detect() vs rewards.face_detect.detect() on Identity Lock's input: probe frames (every STRIDE-th and
    the last) of scene clips with a real face, scaled to the detection size, as 8-bit images."""
    from _pack import import_pack

    import_pack()
    from bench_rewards import with_face
    from facenet_pytorch import MTCNN
    from rewardloop.motion.scene import render_scene
    from rewardloop.rewards import face_detect, identity
    from rewardloop.rewards.context import resize

    mtcnn = MTCNN(image_size=160, margin=0, min_face_size=identity.MIN_FACE, thresholds=[0.6, 0.7, 0.7],
                  select_largest=True, device=dev).eval()
    probes = identity.probe_indices(frames, identity.STRIDE, [])
    side = round(size * identity.detection_scale(size, size))
    batch = []
    for seed in range(clips):
        clip = with_face(render_scene(torch.linspace(0, 0.5, frames)[probes], size, size, seed=seed, motion="pan_dolly"))
        batch.append((resize(clip, (side, side)).clamp(0, 1) * 255).round().to(torch.uint8))
    for label, x in ((f"1 clip, {len(probes)} probe frames", batch[0]),
                     (f"{clips} clips, {clips * len(probes)} probe frames", torch.cat(batch))):
        theirs, _ = mtcnn.detect(x.numpy())
        ours, _ = face_detect.detect(mtcnn, x)
        diff = max((float(np.abs(np.asarray(a, np.float32) - b).max()) for a, b in zip(theirs, ours)
                    if a is not None and b is not None and np.asarray(a).shape == b.shape), default=float("nan"))
        same = all((a is None) == (b is None) and (a is None or np.asarray(a).shape == b.shape)
                   for a, b in zip(theirs, ours))
        lib = timed(lambda: mtcnn.detect(x.numpy()), dev)
        pack = timed(lambda: face_detect.detect(mtcnn, x), dev)
        print(f"[profile] MTCNN {label} at {side}x{side} on {dev.type}: facenet-pytorch detect() {lib * 1000:.1f} ms, "
              f"batched crops {pack * 1000:.1f} ms ({lib / pack:.2f}x); same faces found: {same}, largest box "
              f"difference {diff:.2e} px", flush=True)


def profile_mtcnn(dev):
    from facenet_pytorch import MTCNN

    frames = (torch.rand(11, 512, 512, 3) * 255).to(torch.uint8).numpy()
    for min_face in (20, 40):
        mtcnn = MTCNN(image_size=160, margin=0, min_face_size=min_face, thresholds=[0.6, 0.7, 0.7], post_process=True,
                      select_largest=True, device=dev).eval()
        for size in (512, 256):
            x = frames if size == 512 else np.ascontiguousarray(frames[:, ::2, ::2])
            for n in (9, 11):
                s = timed(lambda: mtcnn.detect(x[:n]), dev)
                print(f"[profile] mtcnn min_face {min_face} size {size} batch {n}: {s * 1000:.1f} ms", flush=True)
            s = timed(lambda: (mtcnn.detect(x[:9]), mtcnn.detect(x[9:])), dev)
            print(f"[profile] mtcnn min_face {min_face} size {size} 9 + 2 in two calls: {s * 1000:.1f} ms", flush=True)


def profile_blip(dev):
    from _pack import import_pack

    import_pack()
    from rewardloop.rewards.blip_decode import greedy_caption_ids
    from transformers import BlipConfig, BlipForConditionalGeneration

    model = BlipForConditionalGeneration(BlipConfig()).eval().to(dev, torch.bfloat16)
    px = torch.rand(4, 3, 384, 384, device=dev, dtype=torch.bfloat16)
    with torch.no_grad():
        s = timed(lambda: model.vision_model(pixel_values=px), dev)
        print(f"[profile] blip vision 4x384 bf16: {s * 1000:.1f} ms", flush=True)
        for tokens in (5, 10, 20):
            s = timed(lambda: model.generate(pixel_values=px, max_new_tokens=tokens, min_new_tokens=tokens, num_beams=1,
                                             do_sample=False), dev)
            print(f"[profile] blip generate 4 frames, {tokens} tokens, bf16: {s * 1000:.1f} ms", flush=True)
        decoders = {}  # what a RewardRuntime keeps in blip_decoders
        for tokens in (10, 20):
            ref = model.generate(pixel_values=px, max_new_tokens=tokens, num_beams=1, do_sample=False)
            ours = greedy_caption_ids(model, px, tokens, decoders)
            same = ref.shape == ours.shape and bool((ref == ours).all())
            s = timed(lambda: greedy_caption_ids(model, px, tokens, decoders), dev)
            print(f"[profile] blip static greedy decoder 4 frames, {tokens} tokens, bf16 (incl. vision): "
                  f"{s * 1000:.1f} ms; tokens equal to generate(): {same} (shape {tuple(ours.shape)}; "
                  f"positions that differ {int((ref != ours).sum()) if ref.shape == ours.shape else 'n/a'}); "
                  f"CUDA graph in use: {any(d.graph is not None for d in decoders.values())}", flush=True)
    import gc

    decoders.clear()  # what RewardRuntime.clear() does
    gc.collect()
    torch.cuda.synchronize()
    print("[profile] decoders freed (an allocator warning above this line would come from freeing them)", flush=True)


if __name__ == "__main__":
    main()
