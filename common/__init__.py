"""The pack's shared vocabulary, with one home per concept and no ComfyUI import: frame batches (`frames`),
keyframe positions (`keyframes`), image measures such as luma and SSIM (`image`) and JSON-safe values (`jsonsafe`).
Every other package (motion, rewards, gating, trainers, nodes) calls these instead of keeping its own copy."""
