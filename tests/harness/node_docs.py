"""Per-node help pages (web/docs/<NodeId>.md, which ComfyUI's node help panel fetches from
/extensions/<pack folder>/docs/<NodeId>.md): each page is written by hand, and ends with an inputs/outputs
reference generated from the node's schema so tooltips stay the one place those texts live.

    eval "$(bash tests/harness/setup_env.sh)"; $REWARDLOOP_PYTHON -P tests/harness/node_docs.py   # rewrite the blocks
"""
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from pack_info import PACK_ROOT, node_infos  # noqa: E402

DOCS_DIR = PACK_ROOT / "web" / "docs"
BEGIN = ("<!-- Inputs and outputs: generated from the node's schema by tests/harness/node_docs.py. Edit the tooltips "
         "in nodes/, then rerun it. -->")
END = "<!-- end of the generated reference -->"


def _cell(text) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _default(kind: str, opts: dict) -> str:
    if "default" not in opts or kind not in ("INT", "FLOAT", "BOOLEAN", "COMBO", "STRING"):
        return ""
    value = opts["default"]
    if kind == "BOOLEAN":
        return "true" if value else "false"
    if kind == "STRING" and "\n" in str(value):
        return "(several lines)"
    return f"`{value}`" if str(value) != "" else "(empty)"


def reference(info: dict) -> str:
    """The generated part of a node's page, from its /object_info entry (combo choices are not listed: some are
    the files in the user's model folders)."""
    lines = [BEGIN, "", f"Node id `{info['name']}`, category `{info['category']}`.", "", "## Inputs", ""]
    rows = []
    for group in ("required", "optional"):
        for name, spec in info["input"].get(group, {}).items():
            kind = spec[0] if isinstance(spec[0], str) else "COMBO"
            opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            shown = "choice" if kind == "COMBO" else kind
            if group == "optional":
                shown += ", optional"
            rows.append(f"| `{name}` | {shown} | {_default(kind, opts)} | {_cell(opts.get('tooltip', ''))} |")
    if rows:
        lines += ["| input | type | default | what it does |", "|---|---|---|---|", *rows]
    else:
        lines.append("None.")
    lines += ["", "## Outputs", ""]
    outputs = list(zip(info["output_name"], info["output"], info.get("output_tooltips") or [None] * len(info["output"])))
    if outputs:
        lines += ["| output | type | what it is |", "|---|---|---|"]
        lines += [f"| {_cell(name)} | {kind} | {_cell(tip or '')} |" for name, kind, tip in outputs]
    else:
        lines.append("None.")
    return "\n".join(lines + ["", END, ""])


def page_with_reference(text: str, info: dict) -> str:
    """A page's hand-written part followed by a fresh generated reference."""
    body = text.split(BEGIN)[0].rstrip()
    return body + "\n\n" + reference(info)


def main() -> None:
    infos = node_infos()
    missing = [node_id for node_id in infos if not (DOCS_DIR / f"{node_id}.md").exists()]
    if missing:
        raise SystemExit(f"write a help page first (web/docs/<id>.md: a title and what the node is for): {missing}")
    for node_id, info in infos.items():
        path = DOCS_DIR / f"{node_id}.md"
        path.write_text(page_with_reference(path.read_text(), info))
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
