"""Text embeddings computed once per prompt set and cached in one file (the text encoder is never loaded
during training: UMT5-XXL alone is ~11 GB).

Cache format (`rewardloop-text-embeddings-v1`): a .safetensors file with one tensor per prompt,
`emb.<i>` of shape [tokens, dim] (tokens = the prompt's real tokens, padding removed; any float dtype), and
metadata `prompts` (JSON list of the prompt strings, index i -> emb.<i>), `format`, `encoder`.
At training time each embedding is zero-padded to `model.text_len` (512 for Wan), which is what ComfyUI's
Wan text encoder and diffusers' Wan pipeline feed the transformer.

Ways to build one: `python -m <pack>.trainers embed --prompts prompts.txt --encoder <umt5 folder> --out x`
(transformers UMT5EncoderModel + tokenizer from local folders), the ComfyUI node "RewardLoop Text Embedding
Cache" (uses the loaded CLIP/text encoder of the graph), or `save_text_embeddings` from Python.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

FORMAT = "rewardloop-text-embeddings-v1"


def save_text_embeddings(path: str | Path, prompts: list[str], embeddings: list[torch.Tensor], encoder: str = "") -> Path:
    from safetensors.torch import save_file

    if len(prompts) != len(embeddings):
        raise ValueError(f"{len(prompts)} prompts but {len(embeddings)} embeddings.")
    if len(set(prompts)) != len(prompts):
        raise ValueError("Duplicate prompts in the embedding cache.")
    tensors = {}
    for i, e in enumerate(embeddings):
        if e.dim() == 3 and e.shape[0] == 1:
            e = e[0]
        if e.dim() != 2:
            raise ValueError(f"Embedding {i} has shape {tuple(e.shape)}; expected [tokens, dim].")
        tensors[f"emb.{i}"] = e.detach().to("cpu").contiguous()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"format": FORMAT, "prompts": json.dumps(prompts), "encoder": encoder})
    return path


class TextEmbeddings:
    def __init__(self, prompts: list[str], tensors: dict[str, torch.Tensor], source: str = ""):
        self.prompts = prompts
        self._index = {p: i for i, p in enumerate(prompts)}
        self._tensors = tensors
        self.source = source
        dims = {t.shape[-1] for t in tensors.values()}
        if len(dims) > 1:
            raise ValueError(f"{source}: embeddings have different widths {sorted(dims)}.")
        self.dim = dims.pop() if dims else 0

    @classmethod
    def load(cls, path: str | Path) -> "TextEmbeddings":
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise ValueError(f"Text embedding cache {path} does not exist. Build it once per prompt set: "
                             "`python -m <pack>.trainers embed --prompts prompts.txt --encoder <umt5 folder> "
                             f"--out {path.name}` or the 'RewardLoop Text Embedding Cache' node.")
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise ValueError(f"{path} is not a {FORMAT} file (metadata format={meta.get('format')!r}).")
            prompts = json.loads(meta["prompts"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        if len(tensors) != len(prompts):
            raise ValueError(f"{path}: {len(prompts)} prompts listed but {len(tensors)} tensors stored.")
        return cls(prompts, tensors, str(path))

    def __contains__(self, prompt: str) -> bool:
        return prompt in self._index

    def get(self, prompt: str) -> torch.Tensor:
        if prompt not in self._index:
            raise ValueError(f"Prompt {prompt[:80]!r} is not in the text embedding cache {self.source}: rebuild the "
                             "cache with every prompt of the dataset / prompt list.")
        return self._tensors[f"emb.{self._index[prompt]}"]

    def require(self, prompts, what: str) -> None:
        missing = [p for p in dict.fromkeys(prompts) if p not in self._index]
        if missing:
            raise ValueError(f"{len(missing)} prompt(s) of the {what} are missing from the text embedding cache "
                             f"{self.source} (first: {missing[0][:80]!r}); rebuild it with all prompts.")


def pad_batch(embeddings: list[torch.Tensor], text_len: int, model_dim: int) -> torch.Tensor:
    """Zero-pad [tokens, dim] embeddings to [B, text_len, dim], as Wan's encoders hand them over."""
    out = torch.zeros(len(embeddings), text_len, model_dim, dtype=torch.float32)
    for i, e in enumerate(embeddings):
        if e.shape[-1] != model_dim:
            raise ValueError(f"Text embedding width {e.shape[-1]} differs from the model's text_dim {model_dim}: "
                             "the cache was built with another text encoder.")
        if e.shape[0] > text_len:
            raise ValueError(f"A prompt has {e.shape[0]} tokens, more than model.text_len={text_len}.")
        out[i, : e.shape[0]] = e.float()
    return out


def read_prompt_list(path: str | Path) -> list[str]:
    """Plain text (one prompt a line, blank lines and '#' comments skipped), a JSON list, or JSONL rows
    with a "prompt" field."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Prompt list {path} does not exist.")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        data = json.loads(text)
        prompts = [d["prompt"] if isinstance(d, dict) else d for d in data]
    elif path.suffix == ".jsonl":
        prompts = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    prompts.append(json.loads(line)["prompt"])
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    raise ValueError(f"{path}:{n}: expected a JSON object with a 'prompt' field ({exc}).") from exc
    else:
        prompts = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not prompts or not all(isinstance(p, str) and p for p in prompts):
        raise ValueError(f"{path} holds no prompts (or a non-string prompt).")
    return prompts


@torch.no_grad()
def encode_with_umt5(prompts: list[str], encoder_dir: str, tokenizer_dir: str | None = None,
                     device: str = "cpu", max_length: int = 512) -> list[torch.Tensor]:
    """UMT5 encoder outputs with padding removed (diffusers' Wan pipeline does the same before re-padding
    with zeros). Loads only local files."""
    from transformers import AutoTokenizer, UMT5EncoderModel

    tok = AutoTokenizer.from_pretrained(tokenizer_dir or encoder_dir, local_files_only=True)
    dtype = torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    enc = UMT5EncoderModel.from_pretrained(encoder_dir, local_files_only=True, torch_dtype=dtype).to(device).eval()
    out = []
    for p in prompts:
        t = tok([p], padding="max_length", max_length=max_length, truncation=True, add_special_tokens=True,
                return_attention_mask=True, return_tensors="pt")
        mask = t.attention_mask.to(device)
        hidden = enc(t.input_ids.to(device), mask).last_hidden_state
        out.append(hidden[0, : int(mask.sum())].float().cpu())
    return out
