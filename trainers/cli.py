"""Command line: `python -m <pack>.trainers <method> --config cfg.yaml [--set section.key=value ...]`
(or `python <pack>/trainers/launch.py ...`, which imports the pack by path; under torchrun too).

Methods: dpo, grpo, curriculum, pairs (train / build data from a config), embed (build a text-embedding
cache). The config is validated before torch is imported, so mistakes fail in a second. The outcome is
written to <run.output_dir>/result.json; exit codes: 0 finished, 1 failed, 2 bad config, 3 cancelled,
4 curriculum gate failed.
"""
from __future__ import annotations

import argparse
import logging
import sys
import traceback
from pathlib import Path

EXIT = {"finished": 0, "failed": 1, "config": 2, "cancelled": 3, "gate_failed": 4}


def _parse(argv):
    p = argparse.ArgumentParser(prog="rewardloop.trainers", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    for m in ("dpo", "grpo", "curriculum", "pairs"):
        sp = sub.add_parser(m, help=f"run {m} from a config file")
        sp.add_argument("--config", required=True, help="JSON or YAML config")
        sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting, e.g. --set run.max_steps=10 (value parsed as YAML)")
    e = sub.add_parser("embed", help="build a text-embedding cache with a local UMT5 encoder")
    e.add_argument("--prompts", required=True, help="prompt list (txt one per line, JSON list or JSONL)")
    e.add_argument("--encoder", help="folder of a transformers UMT5EncoderModel (e.g. Wan's umt5-xxl)")
    e.add_argument("--tokenizer", help="tokenizer folder (default: the encoder folder)")
    e.add_argument("--random-dim", type=int, default=0, help="tests/benchmarks: random embeddings of this width")
    e.add_argument("--tokens", type=int, default=16, help="with --random-dim: tokens per prompt")
    e.add_argument("--device", default="cpu")
    e.add_argument("--out", required=True)
    return p.parse_args(argv)


def _apply_overrides(data: dict, sets: list[str]) -> dict:
    from ..trust import parse_settings

    for item in sets:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: expected section.key=value.")
        key, raw = item.split("=", 1)
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {key}: {part} is not a section.")
        node[parts[-1]] = parse_settings(raw, f"--set {key}")
    return data


def _embed(args) -> int:
    import torch

    from .text_embeddings import encode_with_umt5, read_prompt_list, save_text_embeddings

    prompts = read_prompt_list(args.prompts)
    if args.random_dim:
        g = torch.Generator().manual_seed(0)
        embs = [torch.randn(args.tokens, args.random_dim, generator=g) for _ in prompts]
        encoder = f"random-{args.random_dim}"
    else:
        if not args.encoder:
            raise ValueError("embed needs --encoder (a local UMT5 encoder folder) or --random-dim for tests.")
        embs = encode_with_umt5(prompts, args.encoder, args.tokenizer, args.device)
        encoder = Path(args.encoder).name
    save_text_embeddings(args.out, prompts, embs, encoder)
    print(f"wrote {len(prompts)} embeddings to {args.out}")
    return 0


def run_method(cfg, rt) -> dict:
    if cfg.method == "dpo":
        from .dpo import run_dpo
        return run_dpo(cfg, rt)
    if cfg.method == "grpo":
        from .grpo import run_grpo
        return run_grpo(cfg, rt)
    if cfg.method == "curriculum":
        from .curriculum import run_curriculum
        return run_curriculum(cfg, rt)
    from .pairs import build_pairs
    return build_pairs(cfg, rt)


def main(argv=None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "embed":
        try:
            return _embed(args)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT["config"]

    from .config import config_from_dict, read_config_file, resolve_path
    from .reporting import write_result

    run_dir = None
    try:
        path = Path(args.config).resolve()
        data = _apply_overrides(read_config_file(path), args.set)
        out = (data.get("run") or {}).get("output_dir")
        if out:
            run_dir = Path(out) if Path(out).is_absolute() else path.parent / out
        cfg = config_from_dict(data, method=args.command, source=str(path))
    except ValueError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        if run_dir is not None:
            write_result(run_dir, "failed", error=f"config error: {exc}", error_type="ValueError", step=0)
        return EXIT["config"]

    run_dir = resolve_path(cfg, cfg.run.output_dir) if cfg.run.output_dir else resolve_path(cfg, cfg.pairs.out).parent
    rt = None
    try:
        from .reporting import RESULT_FILE
        from .runtime import Runtime

        run_dir.mkdir(parents=True, exist_ok=True)
        rt = Runtime(cfg.run, run_dir)
        if rt.is_main:
            (run_dir / RESULT_FILE).unlink(missing_ok=True)
            from .config import save_config
            save_config(cfg, run_dir / "config.json")
        result = run_method(cfg, rt)
        status = result.pop("status")
        if rt.is_main:
            write_result(run_dir, status, **result)
        logging.getLogger(__name__).info("%s: %s %s", cfg.method, status, result.get("lora_path", ""))
        # Every rank leaves together: a rank tearing its process group down while rank 0 still writes the
        # result sometimes aborted at exit ("terminate called without an active exception").
        rt.accelerator.wait_for_everyone()
        return EXIT.get(status, 1)
    except Exception as exc:  # the job manager shows this message on the node
        tb = traceback.format_exc()
        print(tb, file=sys.stderr)
        if rt is None or rt.is_main:
            write_result(run_dir, "failed", error=f"{type(exc).__name__}: {exc}", error_type=type(exc).__name__,
                         traceback=tb[-4000:])
        return EXIT["failed"]
    finally:
        if rt is not None:
            rt.close()
