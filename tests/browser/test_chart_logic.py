"""The web extension's DOM-free modules (web/lib: axes, chart state, execution ids, training panels), run under
plain Node with its built-in test runner; no browser or server."""
from __future__ import annotations

import subprocess
from pathlib import Path


def test_chart_logic_under_node():
    script = Path(__file__).with_name("chart_logic.test.mjs")
    proc = subprocess.run(["node", "--test", str(script)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "# fail 0" in proc.stdout and "# pass 7" in proc.stdout, proc.stdout[-2000:]
