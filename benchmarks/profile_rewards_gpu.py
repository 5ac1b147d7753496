"""Where the GPU reward suite's remaining time goes (identity's MTCNN, BLIP generation): quick timings of the
pieces at several settings, to choose defaults, and a check that the CUDA-graph greedy BLIP decoder
(rewards/blip_decode.py) returns generate()'s tokens on a full-size BLIP.
    python benchmarks/profile_rewards_gpu.py [--device cuda] [--parts mtcnn,blip]"""
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
