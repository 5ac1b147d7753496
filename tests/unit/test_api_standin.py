"""The API stand-in's contract, which the API-loop tests and benchmark rely on: its good clips pass the workflows'
gate and each of its defects fails it, the draws follow pass_rate, and the service answers only on loopback, only
with the key, and never fetches an image it was not sent."""
from __future__ import annotations

import base64
import io
import json
import urllib.error
import urllib.request

import pytest
import torch
from api_standin import render  # tests/harness (on the path through tests/conftest.py)
from api_standin.service import Settings, serve

from rewardloop import rewards
from rewardloop.motion import scene

THRESHOLD = 0.85


@pytest.fixture(scope="module")
def pan():
    frames = scene.render_scene(scene.frame_times(33), 128, 72, 7, "pan")
    return frames[0].numpy(), frames[-1].numpy(), torch.stack([frames[0], frames[-1]])


@pytest.mark.parametrize("defect", [None, *render.DEFECTS])
def test_good_clips_pass_the_gate_and_every_defect_fails_it(pan, defect):
    first, last, keys = pan
    for key in ("a", "b", "c"):
        data = render.encode_mp4(render.render_clip(first, last, defect, key, frames=9))
        clip = torch.from_numpy(render.decode_mp4(data)).float() / 255  # what ComfyUI decodes
        assert clip.shape == (9, 72, 128, 3)
        ssim = rewards.run("keyframe_ssim", rewards.Clip(clip, keyframes=keys)).value
        if defect is None:
            assert ssim >= 0.9, ssim
        else:
            assert ssim <= 0.8, (defect, ssim)


def test_draws_follow_the_pass_rate_and_depend_on_the_key_alone():
    draws = [render.draw_defect(0.4, "runway", f"seed:{s}") for s in range(3000)]
    good = sum(d is None for d in draws) / len(draws)
    assert abs(good - 0.4) < 3 * (0.24 / 3000) ** 0.5
    assert {d for d in draws if d} == set(render.DEFECTS)
    assert draws[:50] == [render.draw_defect(0.4, "runway", f"seed:{s}") for s in range(50)]
    assert draws[:50] != [render.draw_defect(0.4, "veo", f"seed:{s}") for s in range(50)]


@pytest.fixture(scope="module")
def service():
    httpd, svc = serve(0, Settings(pass_rate=1.0, frames=5))
    yield f"http://127.0.0.1:{httpd.server_address[1]}", svc
    httpd.shutdown()


def call(url, method="GET", body=None, key="rl-standin-key"):
    headers = {"Content-Type": "application/json", **({"X-API-KEY": key} if key else {})}
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if r.headers.get_content_type() == "application/json" else raw)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def png(img) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((img * 255).round().astype("uint8")).save(buf, format="PNG")
    return buf.getvalue()


def test_service_listens_on_loopback_only(service):
    url, _ = service
    assert url.startswith("http://127.0.0.1:")
    assert "host" not in Settings.__dataclass_fields__  # there is no option to listen elsewhere


def test_a_luma_generation_end_to_end_and_its_log(service, pan):
    url, svc = service
    svc.reset()
    refs = []
    for img in pan[:2]:
        status, slot = call(url + "/customers/storage", "POST", {"file_name": "f.png", "content_type": "image/png"})
        assert status == 200 and slot["upload_url"].startswith(url)
        assert call(slot["upload_url"], "PUT", png(img), key=None)[0] == 200  # signed URL: no key needed
        refs.append(slot["download_url"])
    body = {"prompt": "pan", "model": "ray-2", "keyframes": {"frame0": {"type": "image", "url": refs[0]},
                                                            "frame1": {"type": "image", "url": refs[1]}}}
    status, gen = call(url + "/proxy/luma/generations", "POST", body)
    assert status == 201 and gen["state"] == "dreaming"
    status, done = call(f"{url}/proxy/luma/generations/{gen['id']}")
    assert done["state"] == "completed"
    status, video = call(done["assets"]["video"], key=None)
    assert status == 200 and render.decode_mp4(video).shape == (5, 72, 128, 3)
    [create] = [e for e in svc.log if e.get("kind") == "create"]
    assert create["provider"] == "luma" and create["seed"] is None and create["expected_pass"]
    assert [i["width"] for i in create["images"]] == [128, 128] and create["auth"] == "ok"


def test_the_key_is_required_and_foreign_image_urls_are_never_fetched(service, pan):
    url, svc = service
    status, answer = call(url + "/proxy/vidu/start-end2video", "POST", {"images": ["a", "b"]}, key=None)
    assert status == 401 and "Unauthorized" in answer["error"]["message"]
    assert call(url + "/proxy/vidu/start-end2video", "POST", {"images": ["a", "b"]}, key="wrong")[0] == 401
    for foreign in ("http://169.254.169.254/latest/meta-data", "file:///etc/passwd",
                    url + "/_standin/files/" + "0" * 32):
        status, answer = call(url + "/proxy/vidu/start-end2video", "POST", {"images": [foreign, foreign]})
        assert status == 400 and "was not uploaded here" in answer["error"]["message"]
    b64 = base64.b64encode(png(pan[0])).decode()
    body = {"instances": [{"prompt": "p", "image": {"bytesBase64Encoded": b64},
                           "lastFrame": {"bytesBase64Encoded": "not base64!"}}], "parameters": {"seed": 3}}
    status, answer = call(url + "/proxy/veo/veo-3.1-generate/generate", "POST", body)
    assert status == 400 and "base64" in answer["error"]["message"]
