"""Video fine-tuning for Wan 2.1 (flow matching): Diffusion/Flow-DPO, Flow-GRPO and a 4k+1 length
curriculum, plus a preference-pair builder and a job manager. Pure torch + diffusers + peft + accelerate:
nothing here imports ComfyUI, so the same code runs from the canvas (as a subprocess job), from a shell,
and under torchrun / accelerate launch on N GPUs.

    python -m <pack>.trainers dpo --config dpo.yaml        # when the pack is importable as a package
    python <pack>/trainers/launch.py dpo --config dpo.yaml # anywhere: imports the pack by path

Modules import their heavy dependencies lazily; `config` and `jobs` are cheap to import.
"""
