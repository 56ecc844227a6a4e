"""The README as a new user follows it: every block marked ``<!-- runnable -->`` runs as written, in order,
in one fresh folder, through the installed ``ecgae`` command (training shortened to one epoch, the only
change), and the guide stays a guide: short, every command in its table, every link to a file that exists.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from ecgae.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MARK = "<!-- runnable -->"
MAX_LINES = 210


def runnable_blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of each fenced block right after a runnable mark."""
    return re.findall(re.escape(MARK) + r"\n```(\w+)\n(.*?)\n```", text, flags=re.S)


def test_the_readme_is_a_guide_not_a_notebook():
    text = README.read_text()
    assert len(text.splitlines()) <= MAX_LINES
    table = text.split("## Commands", 1)[1].split("\n## ", 1)[0]
    missing = [name for name in COMMANDS if f"`{name}`" not in table]
    assert not missing, f"commands missing from the README's table: {missing}"
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target


def test_runnable_blocks_are_found():
    kinds = [lang for lang, _ in runnable_blocks(README.read_text())]
    assert kinds.count("python") == 1 and kinds.count("sh") >= 5


def expected_output(text: str) -> list[str]:
    """The quickstart's expected output lines, ``...`` standing for figures that depend on training."""
    return re.search(r"<!-- expected output -->\n```text\n(.*?)\n```", text, flags=re.S).group(1).splitlines()


def test_every_runnable_block_runs_as_written(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("pyarrow")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    outputs = []
    for lang, code in runnable_blocks(README.read_text()):
        code = re.sub(r"--epochs \d+", "--epochs 1", code)
        if lang == "sh":
            cmd = ["bash", "-e", "-o", "pipefail", "-c", code.replace("python -c", f"{sys.executable} -c")]
        else:
            cmd = [sys.executable, "-c", code]
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{lang} block failed:\n{code}\n{proc.stdout}\n{proc.stderr}"
        outputs.append(proc.stdout)
    printed = outputs[0].splitlines()
    for line in expected_output(README.read_text()):
        pattern = ".*".join(re.escape(part) for part in line.split("..."))
        assert any(re.fullmatch(pattern, p) for p in printed), f"expected {line!r} in the quickstart's output"
    assert (tmp_path / "scores.csv").read_text().startswith("index,score,flag,usable\n")
    assert (tmp_path / "beats.jsonl").read_text().count("\n") > 100
    assert (tmp_path / "mlii.ecgz").is_file() and (tmp_path / "scores" / "summary.parquet").is_file()
