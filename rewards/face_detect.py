"""MTCNN face detection: facenet-pytorch's networks and stages, with the candidate crops of stages 2 and 3 cut and
resized for all boxes in one batched step.

Why by hand: facenet-pytorch's `detect_face` cuts and area-resizes every candidate box in a Python loop (hundreds to
thousands per batch on textured frames), which made MTCNN Identity Lock's largest cost on a GPU. Here all crops come
from one summed-area table per batch, which is exactly the area resize (`F.interpolate(mode="area")`, i.e. adaptive
average pooling) the library applies to each crop. The pyramid, the three networks, thresholds, NMS and box
regression are the library's own functions, called in the library's order.

One difference on purpose: a candidate box lying wholly outside the frame is dropped with its crop; the library
skips only the crop, which would pair the remaining network outputs with the wrong boxes.
"""
from __future__ import annotations

import numpy as np
import torch


def area_crops(summed: torch.Tensor, image_index: torch.Tensor, y0: torch.Tensor, y1: torch.Tensor,
               x0: torch.Tensor, x1: torch.Tensor, size: int) -> torch.Tensor:
    """Crops image[i, y0:y1, x0:x1] resized to size x size by area averaging, for every box at once: [K,C,size,size]
    float32. `summed`: the images' summed-area table from `summed_area`. The bins are adaptive average pooling's:
    output row r averages input rows floor(r*h/size) .. ceil((r+1)*h/size) - 1 of the crop."""
    N, H1, W1, C = summed.shape
    k = torch.arange(size, device=summed.device)
    h, w = (y1 - y0)[:, None], (x1 - x0)[:, None]
    r0, r1 = y0[:, None] + k * h // size, y0[:, None] + ((k + 1) * h + size - 1) // size  # [K,size]
    c0, c1 = x0[:, None] + k * w // size, x0[:, None] + ((k + 1) * w + size - 1) // size
    rows = summed.reshape(-1, C)  # channels last: one index fetches a pixel's C sums
    base = image_index[:, None] * H1

    def corner(r, c):  # S[i, r, c, :] for every (box, output row, output column): [K,size,size,C]
        return rows[((base + r) * W1)[:, :, None] + c[:, None, :]]

    total = corner(r1, c1) - corner(r0, c1) - corner(r1, c0) + corner(r0, c0)
    count = (r1 - r0)[:, :, None] * (c1 - c0)[:, None, :]
    return (total.to(torch.float64) / count[..., None]).to(torch.float32).permute(0, 3, 1, 2)


def summed_area(images: torch.Tensor) -> torch.Tensor:
    """[N,C,H,W] images with whole-number values (8-bit pixels) -> [N,H+1,W+1,C] int64 summed-area table (exact)."""
    N, C, H, W = images.shape
    out = torch.zeros(N, H + 1, W + 1, C, dtype=torch.int64, device=images.device)
    out[:, 1:, 1:] = images.permute(0, 2, 3, 1).to(torch.int64).cumsum(1).cumsum(2)
    return out


def _crops(images, summed, boxes, image_inds, size):
    """Stage-2/3 network inputs for `boxes` (the library's pad(): corners clamped into the frame), with the boxes whose
    crop would be empty dropped."""
    from facenet_pytorch.models.utils.detect_face import pad

    H, W = images.shape[2:]
    y, ey, x, ex = (torch.from_numpy(np.ascontiguousarray(v)).to(images.device, torch.int64)
                    for v in pad(boxes, W, H))
    keep = (ey > y - 1) & (ex > x - 1)
    if not bool(keep.all()):
        boxes, image_inds, y, ey, x, ex = boxes[keep], image_inds[keep], y[keep], ey[keep], x[keep], ex[keep]
    data = area_crops(summed, image_inds, y - 1, ey, x - 1, ex, size).to(images.dtype)
    return (data - 127.5) * 0.0078125, boxes, image_inds


@torch.no_grad()
def detect(mtcnn, images: torch.Tensor) -> tuple[list[np.ndarray | None], list[np.ndarray | None]]:
    """What `mtcnn.detect(images)` returns for [N,H,W,3] images with 8-bit values (uint8, or float holding whole
    numbers 0..255), as lists: per image the boxes [k,4] (x0, y0, x1, y1) largest first when the MTCNN has
    select_largest, else most probable first, and their probabilities [k]; None where no face was found."""
    from facenet_pytorch.models.utils.detect_face import (batched_nms_numpy, bbreg, fixed_batch_process,
                                                          generateBoundingBox, imresample, rerec)
    from torchvision.ops.boxes import batched_nms

    pnet, rnet, onet = mtcnn.pnet, mtcnn.rnet, mtcnn.onet
    threshold, device = mtcnn.thresholds, mtcnn.device
    imgs = images.to(device).permute(0, 3, 1, 2).to(next(pnet.parameters()).dtype)
    N, _, h, w = imgs.shape
    m = 12.0 / mtcnn.min_face_size
    scales, scale, minl = [], m, min(h, w) * m
    while minl >= 12:  # the library's image pyramid, the same float operations
        scales.append(scale)
        scale, minl = scale * mtcnn.factor, minl * mtcnn.factor

    # Stage 1 (the library's, already batched): PNet on every scale, NMS per scale and image, then per image.
    boxes, image_inds, picks, offset = [], [], [], 0
    for scale in scales:
        data = (imresample(imgs, (int(h * scale + 1), int(w * scale + 1))) - 127.5) * 0.0078125
        reg, probs = pnet(data)
        b, inds = generateBoundingBox(reg, probs[:, 1], scale, threshold[0])
        boxes.append(b)
        image_inds.append(inds)
        picks.append(batched_nms(b[:, :4], b[:, 4], inds, 0.5) + offset)
        offset += b.shape[0]
    boxes, image_inds = torch.cat(boxes), torch.cat(image_inds)
    pick = torch.cat(picks)
    boxes, image_inds = boxes[pick], image_inds[pick]
    pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
    boxes, image_inds = boxes[pick], image_inds[pick]
    regw, regh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    boxes = torch.stack([boxes[:, 0] + boxes[:, 5] * regw, boxes[:, 1] + boxes[:, 6] * regh,
                         boxes[:, 2] + boxes[:, 7] * regw, boxes[:, 3] + boxes[:, 8] * regh, boxes[:, 4]], dim=1)
    boxes = rerec(boxes)

    summed = summed_area(imgs) if len(boxes) else None
    # Stage 2: RNet on 24x24 crops of every candidate.
    if len(boxes):
        data, boxes, image_inds = _crops(imgs, summed, boxes, image_inds, 24)
        reg, prob = fixed_batch_process(data, rnet)
        score = prob[:, 1]
        ipass = score > threshold[1]
        boxes = torch.cat([boxes[ipass, :4], score[ipass, None]], dim=1)
        image_inds, reg = image_inds[ipass], reg[ipass]
        pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
        boxes = rerec(bbreg(boxes[pick], reg[pick]))
        image_inds = image_inds[pick]
    # Stage 3: ONet on 48x48 crops, box regression, NMS by the smaller area ("Min").
    if len(boxes):
        data, boxes, image_inds = _crops(imgs, summed, boxes, image_inds, 48)
        reg, _, prob = fixed_batch_process(data, onet)
        score = prob[:, 1]
        ipass = score > threshold[2]
        boxes = torch.cat([boxes[ipass, :4], score[ipass, None]], dim=1)
        image_inds, reg = image_inds[ipass], reg[ipass]
        boxes = bbreg(boxes, reg)
        pick = batched_nms_numpy(boxes[:, :4], boxes[:, 4], image_inds, 0.7, "Min")
        boxes, image_inds = boxes[pick], image_inds[pick]

    boxes, image_inds = boxes.cpu().numpy(), image_inds.cpu().numpy()
    out_boxes: list[np.ndarray | None] = []
    out_probs: list[np.ndarray | None] = []
    for i in range(N):  # MTCNN.detect's ordering
        box = boxes[image_inds == i]
        if len(box) == 0:
            out_boxes.append(None)
            out_probs.append(None)
            continue
        if mtcnn.select_largest:
            box = box[np.argsort((box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1]))[::-1]]
        out_boxes.append(box[:, :4])
        out_probs.append(box[:, 4])
    return out_boxes, out_probs
