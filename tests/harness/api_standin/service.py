"""A local stand-in for the Comfy API (`--comfy-api-base`) that answers ComfyUI 0.3.75's own first/last-frame video
nodes: LumaImageToVideoNode, RunwayFirstLastFrameNode, Veo3FirstLastFrameNode and ViduStartEndToVideoNode.

It speaks the protocol those nodes use (comfy_api_nodes/util: client.py, upload_helpers.py, download_helpers.py and
the node files): the API key arrives as `X-API-KEY` (or a `Bearer` token); images are uploaded through
`POST /customers/storage` (which hands out an upload URL and a download URL) and a PUT to the upload URL (Veo sends
them inline as base64 instead); a generation is created with a POST and polled until done; the video is downloaded
from the URL the last poll names (Veo returns it inline). Each generation is rendered from the uploaded first/last
frames by render.py, good with probability `pass_rate`, otherwise with one of four known defects. The draw depends
on the seed the node sent (Runway, Veo, Vidu), so a retry with a new seed draws anew and the same seed draws the
same; Luma's API takes no seed (the node's seed only makes ComfyUI re-run it; real results are nondeterministic),
so Luma draws from the stand-in's own seed and a per-provider request counter.

It binds 127.0.0.1 only, never fetches a URL (image references must be its own download URLs) and stores
everything in memory. Control and inspection (no key needed): GET /_standin/log (every request: what was asked,
what was answered, timing), GET /_standin/generations (every generation: seed, images, defect, expected pass),
POST /_standin/config (change settings at run time), POST /_standin/reset (clear logs and counters).
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

from . import render

HOST = "127.0.0.1"
PROVIDERS = ("luma", "runway", "veo", "vidu")
FAIL_MODES = ("task", "http")


@dataclasses.dataclass
class Settings:
    pass_rate: float = 0.4         # probability that a generation is good (no defect)
    seed: int = 0                  # the stand-in's own seed (Luma's draws; textures)
    latency: float = 0.0           # seconds a create request takes before the provider answers
    polls: int = 0                 # status polls that answer "in progress" before the generation is done
    fail_on: list = dataclasses.field(default_factory=list)  # 1-based generation numbers (per provider) that fail
    fail_rate: float = 0.0         # probability that any other generation fails
    fail_mode: str = "task"        # task: the job fails later (provider's failed state); http: create answers 400
    api_key: str = "rl-standin-key"
    frames: int = 13
    fps: float = 24.0
    max_side: int = 512

    def update(self, changes: dict) -> None:
        fields = {f.name: f for f in dataclasses.fields(self)}
        for key, value in changes.items():
            if key not in fields:
                raise ValueError(f"unknown setting {key!r}; settings: {', '.join(fields)}")
            setattr(self, key, value)
        self.check()

    def check(self) -> None:
        if not 0.0 <= float(self.pass_rate) <= 1.0 or not 0.0 <= float(self.fail_rate) <= 1.0:
            raise ValueError("pass_rate and fail_rate must be in [0, 1]")
        if self.fail_mode not in FAIL_MODES:
            raise ValueError(f"fail_mode must be one of {FAIL_MODES}")
        if self.latency < 0 or self.polls < 0 or self.frames < 2 or self.fps <= 0 or self.max_side < 16:
            raise ValueError("latency and polls must be >= 0, frames >= 2, fps > 0, max_side >= 16")
        self.fail_on = [int(k) for k in self.fail_on]


@dataclasses.dataclass
class Generation:
    id: str
    provider: str
    number: int                    # 1-based, per provider since the last reset
    seed: int | None
    draw_key: str
    defect: str | None
    fail: bool
    images: list
    request: dict
    created: float
    polls_left: int
    video_token: str | None = None
    error: str | None = None
    done_at: float | None = None
    polls: int = 0

    def summary(self) -> dict:
        return {"id": self.id, "provider": self.provider, "number": self.number, "seed": self.seed,
                "draw_key": self.draw_key, "defect": self.defect, "expected_pass": self.defect is None and not self.fail,
                "failed": self.fail, "error": self.error, "images": self.images, "polls": self.polls,
                "created": self.created, "done_at": self.done_at, "video": self.video_token}


class ProviderError(Exception):
    def __init__(self, status: int, body: dict):
        super().__init__(json.dumps(body))
        self.status, self.body = status, body


class StandIn:
    """State shared by the request handlers: settings, uploaded files, generations, the request log."""

    def __init__(self, settings: Settings | None = None, log_path: str | None = None):
        self.settings = settings or Settings()
        self.settings.check()
        self.lock = threading.Lock()
        self.log_path = log_path
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.files: dict[str, dict] = {}         # token -> {"data": bytes | None, "content_type": str}
            self.generations: dict[str, Generation] = {}
            self.counters = {p: 0 for p in PROVIDERS}
            self.log: list[dict] = []

    # ---- files ------------------------------------------------------------------------------------
    def new_upload(self, base: str, name: str, content_type: str | None) -> dict:
        token = uuid.uuid4().hex
        with self.lock:
            self.files[token] = {"data": None, "content_type": content_type or "application/octet-stream",
                                 "name": name}
        return {"upload_url": f"{base}/_standin/upload/{token}", "download_url": f"{base}/_standin/files/{token}"}

    def store(self, data: bytes, content_type: str) -> str:
        token = uuid.uuid4().hex
        with self.lock:
            self.files[token] = {"data": data, "content_type": content_type, "name": token}
        return token

    def image_from_url(self, url: str) -> tuple[bytes, str]:
        """Bytes of an image the node uploaded here; any other URL is refused (the stand-in never fetches)."""
        m = re.fullmatch(r"https?://[^/]+/_standin/files/([0-9a-f]{32})", str(url))
        entry = self.files.get(m.group(1)) if m else None
        if entry is None or entry["data"] is None:
            raise ProviderError(400, {"error": {"message": f"image URL {str(url)[:200]!r} was not uploaded here",
                                                "type": "invalid_request"}})
        return entry["data"], m.group(1)

    # ---- generations ------------------------------------------------------------------------------
    def create(self, provider: str, seed: int | None, images: list[bytes], refs: list[str], request: dict) -> Generation:
        s = self.settings
        with self.lock:
            self.counters[provider] += 1
            number = self.counters[provider]
        draw_key = f"seed:{seed}" if seed is not None else f"request:{s.seed}:{number}"
        fail = number in s.fail_on or render.unit(s.seed, provider, number, "fail") < s.fail_rate
        defect = render.draw_defect(s.pass_rate, provider, draw_key)
        infos = []
        for data, ref in zip(images, refs):
            infos.append({"ref": ref, "sha1": hashlib.sha1(data).hexdigest()[:12], "bytes": len(data)})
        gen = Generation(id=str(uuid.uuid4()), provider=provider, number=number, seed=seed, draw_key=draw_key,
                         defect=defect, fail=fail, images=infos, request=request, created=time.time(),
                         polls_left=s.polls)
        if s.latency > 0:
            time.sleep(s.latency)
        if fail and s.fail_mode == "http":
            gen.error = "the provider rejected the request (stand-in error mode)"
            gen.done_at = time.time()
            with self.lock:
                self.generations[gen.id] = gen
            raise ProviderError(400, http_error_body(provider, gen.error))
        if not fail:
            first, last = (render.decode_image(images[0]), render.decode_image(images[-1]))
            for info, img in zip(infos, (first, last)):
                info.update(width=int(img.shape[1]), height=int(img.shape[0]))
            frames = render.render_clip(first, last, defect, f"{provider}:{draw_key}", s.frames, s.max_side)
            gen.video_token = self.store(render.encode_mp4(frames, s.fps), "video/mp4")
        else:
            gen.error = "generation failed on the provider's side (stand-in error mode)"
        with self.lock:
            self.generations[gen.id] = gen
        return gen

    def poll(self, gen_id: str) -> Generation:
        gen = self.generations.get(gen_id)
        if gen is None:
            raise ProviderError(404, {"error": {"message": f"no generation {gen_id[:80]!r}", "type": "not_found"}})
        with self.lock:
            gen.polls += 1
            if gen.polls_left > 0:
                gen.polls_left -= 1
            elif gen.done_at is None:
                gen.done_at = time.time()
        return gen

    def record(self, entry: dict) -> None:
        with self.lock:
            self.log.append(entry)
        if self.log_path:
            with open(self.log_path, "a") as f:
                f.write(json.dumps(entry) + "\n")


def http_error_body(provider: str, message: str) -> dict:
    """Each provider's own error shape for a rejected request."""
    if provider == "luma":
        return {"detail": message}
    if provider == "runway":
        return {"error": message}
    if provider == "veo":
        return {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}
    return {"code": 400, "reason": "BadRequest", "message": message}


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat().replace("+00:00", "Z")


# ---- provider protocols ---------------------------------------------------------------------------------
def luma_create(svc: StandIn, base: str, body: dict) -> tuple[int, dict, dict]:
    frames = (body.get("keyframes") or {})
    urls = [(frames.get(k) or {}).get("url") for k in ("frame0", "frame1")]
    urls = [u for u in urls if u]
    if not urls:
        raise ProviderError(400, {"detail": "keyframes.frame0 or frame1 is required for image to video"})
    images = [svc.image_from_url(u) for u in urls]
    gen = svc.create("luma", None, [d for d, _ in images], [t for _, t in images], body)
    return 201, luma_generation(gen, base), {"generation": gen.id}


def luma_generation(gen: Generation, base: str) -> dict:
    done = gen.done_at is not None
    state = ("failed" if gen.error else "completed") if done else "dreaming"
    out = {"id": gen.id, "generation_type": "video", "state": state, "created_at": _iso(gen.created),
           "model": gen.request.get("model", "ray-2"), "request": gen.request, "assets": None}
    if state == "failed":
        out["failure_reason"] = gen.error
    if state == "completed":
        out["assets"] = {"video": f"{base}/_standin/files/{gen.video_token}"}
    return out


def runway_create(svc: StandIn, base: str, body: dict) -> tuple[int, dict, dict]:
    prompt_images = body.get("promptImage")
    prompt_images = prompt_images if isinstance(prompt_images, list) else [{"uri": prompt_images, "position": "first"}]
    ordered = sorted(prompt_images, key=lambda p: 0 if p.get("position") == "first" else 1)
    images = [svc.image_from_url(p.get("uri")) for p in ordered]
    gen = svc.create("runway", body.get("seed"), [d for d, _ in images], [t for _, t in images], body)
    return 200, {"id": gen.id}, {"generation": gen.id}


def runway_task(gen: Generation, base: str) -> dict:
    done = gen.done_at is not None
    out = {"id": gen.id, "createdAt": _iso(gen.created),
           "status": ("FAILED" if gen.error else "SUCCEEDED") if done else "RUNNING",
           "progress": 1.0 if done else 0.5}
    if done and gen.error:
        out.update(failure=gen.error, failureCode="INTERNAL.BAD_OUTPUT.CODE01")
    elif done:
        out["output"] = [f"{base}/_standin/files/{gen.video_token}"]
    return out


def veo_create(svc: StandIn, base: str, body: dict) -> tuple[int, dict, dict]:
    inst = (body.get("instances") or [{}])[0]
    encoded = [(inst.get(k) or {}).get("bytesBase64Encoded") for k in ("image", "lastFrame")]
    if not all(encoded):
        raise ProviderError(400, http_error_body("veo", "instances[0].image and lastFrame are required"))
    images = []
    for e in encoded:
        try:
            images.append(base64.b64decode(e, validate=True))
        except ValueError:
            raise ProviderError(400, http_error_body("veo", "image is not valid base64")) from None
    seed = (body.get("parameters") or {}).get("seed")
    summary = dict(body, instances=[{"prompt": inst.get("prompt"), "image": "<inline png>", "lastFrame": "<inline png>"}])
    gen = svc.create("veo", seed, images, ["inline:image", "inline:lastFrame"], summary)
    return 200, {"name": f"operations/{gen.id}"}, {"generation": gen.id}


def veo_poll(gen: Generation, svc: StandIn) -> dict:
    if gen.done_at is None:
        return {"name": f"operations/{gen.id}", "done": False}
    if gen.error:
        return {"name": f"operations/{gen.id}", "done": True, "error": {"code": 13, "message": gen.error}}
    video = base64.b64encode(svc.files[gen.video_token]["data"]).decode()
    return {"name": f"operations/{gen.id}", "done": True,
            "response": {"raiMediaFilteredCount": 0, "videos": [{"bytesBase64Encoded": video, "mimeType": "video/mp4"}]}}


def vidu_create(svc: StandIn, base: str, body: dict) -> tuple[int, dict, dict]:
    urls = body.get("images") or []
    if len(urls) != 2:
        raise ProviderError(400, http_error_body("vidu", "images must hold the start and the end frame"))
    images = [svc.image_from_url(u) for u in urls]
    gen = svc.create("vidu", body.get("seed"), [d for d, _ in images], [t for _, t in images], body)
    return 200, {"task_id": gen.id, "state": "created", "created_at": _iso(gen.created)}, {"generation": gen.id}


def vidu_task(gen: Generation, base: str) -> dict:
    if gen.done_at is None:
        return {"state": "processing", "err_code": None, "creations": []}
    if gen.error:
        return {"state": "failed", "err_code": "CreationFailed", "creations": []}
    url = f"{base}/_standin/files/{gen.video_token}"
    return {"state": "success", "err_code": None, "creations": [{"id": gen.id, "url": url, "cover_url": url}]}


# ---- HTTP -------------------------------------------------------------------------------------------------
def make_handler(svc: StandIn):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "RewardLoopAPIStandIn/1"

        def log_message(self, fmt, *args):  # the request log replaces the default stderr lines
            pass

        @property
        def base(self) -> str:
            return f"http://{HOST}:{self.server.server_address[1]}"

        def _body(self) -> bytes:
            return self._raw

        def _json_body(self) -> dict:
            raw = self._body()
            try:
                value = json.loads(raw) if raw else {}
            except json.JSONDecodeError:
                raise ProviderError(400, {"error": {"message": "body is not JSON", "type": "invalid_request"}}) from None
            if not isinstance(value, dict):
                raise ProviderError(400, {"error": {"message": "body must be a JSON object", "type": "invalid_request"}})
            return value

        def _auth(self) -> str:
            key = self.headers.get("X-API-KEY")
            bearer = self.headers.get("Authorization", "")
            given = key or (bearer[7:] if bearer.startswith("Bearer ") else None)
            if given is None:
                return "missing"
            return "ok" if given == svc.settings.api_key else "wrong"

        def _send(self, status: int, payload, content_type: str = "application/json") -> int:
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return len(data)

        def _handle(self, method: str) -> None:
            t0 = time.time()
            n = int(self.headers.get("Content-Length") or 0)
            self._raw = self.rfile.read(n) if n else b""  # read before answering, even a refusal (keep-alive)
            path = urlparse(self.path).path
            entry = {"t": round(t0, 3), "method": method, "path": path}
            try:
                status, payload, ctype, info = self._route(method, path, entry)
            except ProviderError as e:
                status, payload, ctype, info = e.status, e.body, "application/json", {"error": e.body}
            except Exception as e:  # a bug in the stand-in must answer, not hang the node
                status, payload, ctype = 500, {"error": {"message": f"stand-in error: {e}", "type": "internal"}}, "application/json"
                info = {"error": str(e)}
            entry.update(info)
            entry["status"] = status
            size = self._send(status, payload, ctype)
            entry.update(bytes=size, seconds=round(time.time() - t0, 4))
            if not path.startswith("/_standin/log") and not path.startswith("/_standin/generations"):
                svc.record(entry)

        def _route(self, method, path, entry):
            # control and inspection
            if path == "/_standin/log" and method == "GET":
                return 200, svc.log, "application/json", {}
            if path == "/_standin/generations" and method == "GET":
                return 200, [g.summary() for g in svc.generations.values()], "application/json", {}
            if path == "/_standin/config" and method == "POST":
                changes = self._json_body()
                try:
                    svc.settings.update(changes)
                except (ValueError, TypeError) as e:
                    raise ProviderError(400, {"error": {"message": str(e), "type": "invalid_request"}}) from None
                return 200, dataclasses.asdict(svc.settings), "application/json", {"kind": "config", "changes": changes}
            if path == "/_standin/reset" and method == "POST":
                svc.reset()
                return 200, {"reset": True}, "application/json", {}
            m = re.fullmatch(r"/_standin/upload/([0-9a-f]{32})", path)
            if m and method == "PUT":
                data = self._body()
                entry.update(kind="upload")
                with svc.lock:
                    slot = svc.files.get(m.group(1))
                    if slot is None:
                        raise ProviderError(404, {"error": {"message": "unknown upload URL", "type": "not_found"}})
                    slot["data"] = data
                return 200, b"", "text/plain", {"file": m.group(1), "uploaded_bytes": len(data)}
            m = re.fullmatch(r"/_standin/files/([0-9a-f]{32})", path)
            if m and method == "GET":
                entry.update(kind="download")
                f = svc.files.get(m.group(1))
                if f is None or f["data"] is None:
                    raise ProviderError(404, {"error": {"message": "no such file", "type": "not_found"}})
                return 200, f["data"], f["content_type"], {"file": m.group(1)}

            # the Comfy API: every other route needs the key, as the real one does
            auth = self._auth()
            entry["auth"] = auth
            if auth != "ok":
                raise ProviderError(401, {"error": {"message": "Unauthorized: missing or wrong API key",
                                                    "type": "unauthorized"}})
            if path == "/customers" and method in ("POST", "GET"):
                # the frontend checks a stored API key by creating (or reading) the customer it belongs to
                return 200, {"id": "rl-standin-customer", "name": "API stand-in"}, "application/json", {
                    "kind": "customer"}
            if path == "/customers/balance" and method == "GET":
                return 200, {"amount_micros": 0, "currency": "usd"}, "application/json", {"kind": "customer"}
            if path == "/customers/storage" and method == "POST":
                body = self._json_body()
                urls = svc.new_upload(self.base, str(body.get("file_name", ""))[:200], body.get("content_type"))
                return 200, urls, "application/json", {"kind": "storage", "file_name": body.get("file_name")}
            for provider, pattern, verb, create in (
                    ("luma", r"/proxy/luma/generations", "POST", luma_create),
                    ("runway", r"/proxy/runway/image_to_video", "POST", runway_create),
                    ("veo", r"/proxy/veo/[\w.-]+/generate", "POST", veo_create),
                    ("vidu", r"/proxy/vidu/start-end2video", "POST", vidu_create)):
                if re.fullmatch(pattern, path) and method == verb:
                    body = self._json_body()
                    entry.update(kind="create", provider=provider)
                    try:
                        status, payload, info = create(svc, self.base, body)
                    except ProviderError:
                        gens = [g for g in svc.generations.values() if g.provider == provider]
                        if gens and gens[-1].error and gens[-1].number == svc.counters[provider]:
                            entry.update(generation=gens[-1].id, seed=gens[-1].seed, failed=True)
                        raise
                    gen = svc.generations[info["generation"]]
                    info.update(seed=gen.seed, number=gen.number, defect=gen.defect,
                                expected_pass=gen.defect is None and not gen.fail, failed=gen.fail,
                                images=gen.images, prompt=str(body.get("prompt") or body.get("promptText") or "")[:200])
                    return status, payload, "application/json", info
            polls = (("luma", r"/proxy/luma/generations/([\w-]+)", "GET", luma_generation),
                     ("runway", r"/proxy/runway/tasks/([\w-]+)", "GET", runway_task),
                     ("vidu", r"/proxy/vidu/tasks/([\w-]+)/creations", "GET", vidu_task))
            for provider, pattern, verb, view in polls:
                m = re.fullmatch(pattern, path)
                if m and method == verb:
                    gen = svc.poll(m.group(1))
                    return 200, view(gen, self.base), "application/json", {
                        "kind": "poll", "provider": provider, "generation": gen.id, "done": gen.done_at is not None}
            if re.fullmatch(r"/proxy/veo/[\w.-]+/poll", path) and method == "POST":
                name = str(self._json_body().get("operationName", ""))
                gen = svc.poll(name.rsplit("/", 1)[-1])
                return 200, veo_poll(gen, svc), "application/json", {
                    "kind": "poll", "provider": "veo", "generation": gen.id, "done": gen.done_at is not None}
            raise ProviderError(404, {"error": {"message": f"{method} {path} is not served by this stand-in",
                                                "type": "not_found"}})

        def do_GET(self):
            self._handle("GET")

        def do_POST(self):
            self._handle("POST")

        def do_PUT(self):
            self._handle("PUT")

    return Handler


def serve(port: int, settings: Settings | None = None, log_path: str | None = None) -> tuple[ThreadingHTTPServer, StandIn]:
    """A started server on 127.0.0.1:port (0 = any free port) answering from a background thread."""
    svc = StandIn(settings, log_path)
    httpd = ThreadingHTTPServer((HOST, port), make_handler(svc))
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True, name="api-standin").start()
    return httpd, svc
