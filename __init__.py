"""ComfyUI-RewardLoop: keyframes, flow-guided inbetweening, reward scorers, reward-gated retry loops and
video fine-tuning (DPO / GRPO / length curriculum) as ComfyUI nodes.

ComfyUI imports this folder as a package and calls `comfy_entrypoint()`. Nothing ComfyUI-specific is
imported at module level, so the pure core packages (motion, rewards, gating, modelfiles, trainers) can be
imported and tested without a ComfyUI install. Do not add the legacy (V1) class-mapping dicts here:
ComfyUI would then silently ignore comfy_entrypoint.
"""

WEB_DIRECTORY = "./web"

__version__ = "0.1.0"


async def comfy_entrypoint():
    from .nodes import RewardLoopExtension, register_model_folders, runtime
    from .nodes.routes import register_with_server

    register_model_folders()
    runtime.get()  # the one object that holds the pack's models, caches and workers
    register_with_server()  # the sidebar's /rewardloop/jobs routes
    return RewardLoopExtension()
