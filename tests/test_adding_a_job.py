"""docs/adding-a-job.md, done as it says: one new module and its test, then the kind end to end.

The worker package is copied to a temporary folder and the page's two code blocks are written
into the copy; nothing in this checkout changes.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from client.local import LOCAL_CREDENTIALS, LocalStack

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "adding-a-job.md"


def doc_files() -> dict[str, str]:
    """The page's code blocks by the path its headings give them (`## N. ...: `path``)."""
    text = DOC.read_text(encoding="utf-8")
    found = {}
    for match in re.finditer(r"^## \d\. [^`\n]*`([^`]+\.py)`\n(.*?)^```python\n(.*?)^```",
                             text, re.S | re.M):
        found[match.group(1)] = match.group(3)
    return found


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    copy = tmp_path_factory.mktemp("project")
    shutil.copytree(ROOT / "worker_src", copy / "worker_src",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "tests").mkdir()
    files = doc_files()
    assert set(files) == {"worker_src/jobs/invert.py", "tests/test_job_invert.py"}
    for path, code in files.items():
        (copy / path).write_text(code, encoding="utf-8")
    return copy


def environment(project: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(project), str(ROOT)]), **extra}


def test_the_pages_own_test_passes_on_the_new_module(project):
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "tests/test_job_invert.py"], cwd=project,
                            env=environment(project), capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_the_client_lists_the_new_kind(project):
    result = subprocess.run([sys.executable, "-m", "client", "kinds"], cwd=project,
                            env=environment(project), capture_output=True, text=True, check=True)
    assert "invert IMAGE ...: Invert the colours" in result.stdout


@pytest.mark.slow
def test_the_new_kind_runs_end_to_end_on_the_local_stack(project, tmp_path):
    pixels = np.random.default_rng(3).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "photo.png")
    # -P: the worker's folder is this checkout; the copy on PYTHONPATH must come first.
    with LocalStack(workers=1, worker_env={"PYTHONPATH": str(project)},
                    worker_command=[sys.executable, "-P", "-m", "worker_src"]) as stack:
        env = environment(project, AWS_ENDPOINT_URL=stack.endpoint_url, **LOCAL_CREDENTIALS)
        result = subprocess.run(
            [sys.executable, "-m", "client", "run", "invert", str(tmp_path / "photo.png"),
             "-o", str(tmp_path / "out"), "--stack", stack.stack_name, "--timeout", "60"],
            cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    output = np.asarray(Image.open(tmp_path / "out" / "photo-invert.png"))
    assert np.array_equal(output, 255 - pixels)
