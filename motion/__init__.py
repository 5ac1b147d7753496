"""Motion core: procedural ground-truth scene, optical flow, warping, occlusion, inbetweening, windows.

Pure torch / numpy / OpenCV; no ComfyUI import. Frames at every public boundary are float32
`[T,H,W,C]` in 0..1 (ComfyUI IMAGE layout); flows are float32 `[N,H,W,2]` pixel displacements (dx, dy).
"""
