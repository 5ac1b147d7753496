"""Keyframe generation and flow-guided refinement with the user's own MODEL / VAE through ComfyUI's sampler.

The sampling is ComfyUI's `comfy.sample.sample` (the same call KSampler makes), handed to the core as callables;
what is ours is how latents, noise and masks are laid out so that anchors stay fixed (motion/anchors.py).
"""
from __future__ import annotations

import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview
import torch
from comfy_api.latest import io

from ..common.frames import check_frames
from ..common.keyframes import KeyframePositions
from ..motion import anchors

CATEGORY = "RewardLoop/Keyframes"


# ---- sampling helpers (ComfyUI-facing) ----------------------------------------------------------------
def _is_video_vae(vae) -> bool:
    return getattr(vae, "latent_dim", 2) == 3


def _temporal_stride(vae) -> int:
    return vae.temporal_compression_decode() or 1 if _is_video_vae(vae) else 1


def _encode_images(vae, images: torch.Tensor) -> torch.Tensor:
    """One latent per image. A video VAE treats a 4-D IMAGE batch as a single clip, so stills are encoded one
    at a time there ([K, C, 1, h, w]); image VAEs take the whole batch ([K, C, h, w])."""
    if not _is_video_vae(vae):
        return vae.encode(images[..., :3])
    return torch.cat([vae.encode(images[i:i + 1, ..., :3]) for i in range(images.shape[0])], dim=0)


def _decode(vae, latent: torch.Tensor) -> torch.Tensor:
    images = vae.decode(latent)
    if images.ndim == 5:  # [B, T, H, W, C] from video VAEs
        images = images.reshape(-1, *images.shape[-3:])
    return images.float().clamp(0.0, 1.0)


def _empty_latent(model, vae, batch: int, width: int, height: int) -> torch.Tensor:
    fmt = model.get_model_object("latent_format")
    down = vae.spacial_compression_encode()
    if width % down or height % down:
        raise ValueError(f"width and height must be multiples of {down} for this VAE (got {width}x{height})")
    shape = (batch, fmt.latent_channels, height // down, width // down)
    if _is_video_vae(vae):
        shape = (batch, fmt.latent_channels, 1, height // down, width // down)
    return torch.zeros(shape)


def _sample(model, latent: torch.Tensor, positive, negative, seed: int, steps: int, cfg: float, sampler_name: str,
            scheduler: str, denoise: float, noise_mask: torch.Tensor | None = None, shared_noise: bool = False):
    latent = comfy.sample.fix_empty_latent_channels(model, latent)
    # Same noise for every batch item = temporally coherent refinement of a frame batch (image models).
    noise_inds = [0] * latent.shape[0] if shared_noise else None
    noise = comfy.sample.prepare_noise(latent, seed, noise_inds)
    callback = latent_preview.prepare_callback(model, steps)
    return comfy.sample.sample(model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent,
                               denoise=denoise, noise_mask=noise_mask, callback=callback,
                               disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)


def _sampler_inputs(cfg_default: float, denoise_name: str, denoise_default: float, denoise_tip: str):
    return [
        io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                     tooltip="Noise seed: the same seed and settings give the same result."),
        io.Int.Input("steps", default=20, min=1, max=10000, tooltip="Sampling steps, as in KSampler."),
        io.Float.Input("cfg", default=cfg_default, min=0.0, max=100.0, step=0.1, round=0.01,
                       tooltip="Guidance scale: how strongly the prompt is followed, as in KSampler."),
        io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS, default="euler",
                       tooltip="Sampling algorithm, as in KSampler."),
        io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS, default="simple",
                       tooltip="Noise schedule, as in KSampler."),
        io.Float.Input(denoise_name, default=denoise_default, min=0.0, max=1.0, step=0.01, tooltip=denoise_tip),
    ]


# ---- nodes ------------------------------------------------------------------------------------------
class RewardLoopKeyframeGenerator(io.ComfyNode):
    MODES = anchors.CONSISTENCY_MODES

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RewardLoopKeyframeGenerator",
            display_name="Keyframe Generator",
            category=CATEGORY,
            description="Generates the keyframes of a clip with your model at high CFG, one every keyframe_every "
                        "frames. Optional start and end images are used as the first and last keyframes, "
                        "unchanged.",
            inputs=[
                io.Model.Input("model", tooltip="Your diffusion model: an image model or a video model (e.g. Wan 2.1)."),
                io.Conditioning.Input("positive", tooltip="Encoded prompt: what the frames should show."),
                io.Conditioning.Input("negative", tooltip="Encoded negative prompt: what to avoid."),
                io.Vae.Input("vae", tooltip="The VAE that belongs to the model."),
                io.Int.Input("width", default=512, min=16, max=8192, step=16,
                             tooltip="Keyframe width in pixels (a multiple of the VAE's scale, e.g. 8 or 16)."),
                io.Int.Input("height", default=512, min=16, max=8192, step=16,
                             tooltip="Keyframe height in pixels (a multiple of the VAE's scale, e.g. 8 or 16)."),
                io.Int.Input("length", default=65, min=1, max=100000, tooltip="Frames of the final clip."),
                io.Int.Input("keyframe_every", default=8, min=0, max=100000,
                             tooltip="A keyframe every this many frames (first and last always); 0 = first and "
                                     "last only."),
                io.Combo.Input("consistency", options=cls.MODES, default="img2img_chain",
                               tooltip="How the keyframes stay alike. img2img_chain: each keyframe starts from the "
                                       "previous one; seed_per_keyframe: all sampled at once from one seed; "
                                       "anchor_blend: each starts from a blend of start_image and end_image (needs "
                                       "both)."),
                *_sampler_inputs(7.0, "chain_denoise", 0.6,
                                 "How far each keyframe may move from its starting point (img2img strength) in "
                                 "img2img_chain and anchor_blend, and from the start image in seed_per_keyframe."),
                io.Image.Input("start_image", optional=True, tooltip="Fixed first keyframe (never altered)."),
                io.Image.Input("end_image", optional=True, tooltip="Fixed last keyframe (never altered)."),
            ],
            outputs=[
                io.Image.Output("keyframes", display_name="keyframes", tooltip="The keyframes, in order."),
                io.String.Output("keyframe_positions", display_name="keyframe positions",
                                 tooltip="JSON list of the keyframes' frame indices in the final clip."),
                io.Int.Output("clip_length", display_name="clip length", tooltip="Frames of the final clip."),
            ],
        )

    @classmethod
    def validate_inputs(cls, consistency=None):  # no **kwargs: ComfyUI would flag every input with the message
        if consistency is not None and consistency not in cls.MODES:
            return f"consistency must be one of {cls.MODES}"
        return True

    @classmethod
    def execute(cls, model, positive, negative, vae, width, height, length, keyframe_every, consistency, seed, steps,
                cfg, sampler_name, scheduler, chain_denoise, start_image=None, end_image=None) -> io.NodeOutput:
        start = check_frames(start_image[:1], "start_image") if start_image is not None else None
        end = check_frames(end_image[-1:], "end_image") if end_image is not None else None
        for name, img in (("start_image", start), ("end_image", end)):
            if img is not None and tuple(img.shape[1:3]) != (height, width):
                raise ValueError(f"{name} is {img.shape[2]}x{img.shape[1]} but width x height is {width}x{height}: "
                                 "set them to the anchor's size or resize the anchor (ImageScale) first")
        positions = KeyframePositions.every(length, keyframe_every)
        count = len(positions)
        pbar = comfy.utils.ProgressBar(count)

        def sample(latent, seed_, denoise, shared_noise):
            return _sample(model, latent, positive, negative, seed_, steps, cfg, sampler_name, scheduler, denoise,
                           shared_noise=shared_noise)

        def progress(n):
            comfy.model_management.throw_exception_if_processing_interrupted()
            pbar.update(n)

        latents = anchors.keyframe_latents(consistency, count, seed, chain_denoise, sample=sample,
                                           encode=lambda images: _encode_images(vae, images),
                                           empty=lambda n: _empty_latent(model, vae, n, width, height),
                                           start=start, end=end, progress=progress)
        keyframes = _decode(vae, latents)
        fixed = [(img, at) for img, at in ((start, 0), (end, count - 1)) if img is not None]
        if fixed:
            keyframes = anchors.paste_anchors(keyframes, torch.cat([img for img, _ in fixed]), [at for _, at in fixed])
        return io.NodeOutput(keyframes, positions.to_json(), length)


class RewardLoopFlowRefine(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="RewardLoopFlowRefine",
            display_name="Flow-guided Refine",
            category=CATEGORY,
            description="Cleans up interpolated frames with your model at low strength and low CFG, starting from "
                        "the frames themselves. The keyframes stay exactly as they are.",
            inputs=[
                io.Model.Input("model", tooltip="Your diffusion model: an image model or a video model (e.g. Wan 2.1)."),
                io.Conditioning.Input("positive", tooltip="Encoded prompt: what the frames should show."),
                io.Conditioning.Input("negative", tooltip="Encoded negative prompt: what to avoid."),
                io.Vae.Input("vae", tooltip="The VAE that belongs to the model."),
                io.Image.Input("frames", tooltip="The interpolated clip (e.g. from Inbetween (flow))."),
                io.String.Input("keyframe_positions", default="[]", multiline=False,
                                tooltip="JSON list of frame indices to keep fixed, e.g. from the Keyframe Generator."),
                *_sampler_inputs(3.0, "strength", 0.35,
                                 "Denoise strength: how much the model may change the interpolated frames."),
            ],
            outputs=[io.Image.Output("refined", display_name="frames",
                                     tooltip="The refined clip; the keyframes are identical to the input's.")],
        )

    @classmethod
    def execute(cls, model, positive, negative, vae, frames, keyframe_positions, seed, steps, cfg, sampler_name,
                scheduler, strength) -> io.NodeOutput:
        frames = check_frames(frames)
        count = frames.shape[0]
        positions = KeyframePositions.parse(keyframe_positions) or KeyframePositions()
        positions = positions.check(count).to_list()
        if strength <= 0.0:
            return io.NodeOutput(frames)
        if _is_video_vae(vae):
            stride = _temporal_stride(vae)
            latent = vae.encode(frames)  # the clip as one video latent [1, C, T', h, w]
            mask = anchors.video_noise_mask(positions, count, stride, tuple(latent.shape[-2:]))
            refined = _sample(model, latent, positive, negative, seed, steps, cfg, sampler_name, scheduler, strength,
                              noise_mask=mask)
            out = _decode(vae, refined)[:count]
        else:
            latent = vae.encode(frames)
            mask = anchors.image_noise_mask(positions, count, tuple(latent.shape[-2:]))
            refined = _sample(model, latent, positive, negative, seed, steps, cfg, sampler_name, scheduler, strength,
                              noise_mask=mask, shared_noise=True)
            out = _decode(vae, refined)
        if out.shape[0] != count or out.shape[1:] != frames.shape[1:]:
            # Video VAEs need 4k+1 frames and sizes divisible by their stride; tell the user which.
            raise ValueError(f"the VAE round trip turned {count} frames of {frames.shape[2]}x{frames.shape[1]} into "
                             f"{out.shape[0]} of {out.shape[2]}x{out.shape[1]}: use a length of the form "
                             f"{_temporal_stride(vae)}k+1 and sizes divisible by {vae.spacial_compression_encode() * 2}")
        if positions:
            out = anchors.paste_anchors(out, frames[positions], positions)
        return io.NodeOutput(out)


NODES = [RewardLoopKeyframeGenerator, RewardLoopFlowRefine]
