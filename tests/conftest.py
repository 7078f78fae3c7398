import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def embedding_cache(tmp_path_factory):
    """One embedding cache for the whole session: each text is embedded once."""
    path = tmp_path_factory.mktemp("embedding-cache")
    os.environ["EALIGN_CACHE"] = str(path)
    return path


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh EALIGN_HOME."""
    h = tmp_path / "home"
    monkeypatch.setenv("EALIGN_HOME", str(h))
    return h


@pytest.fixture
def paths(home, embedding_cache):
    """The Home of a fresh test home, sharing the session's embedding cache."""
    from ealign_dagster.core.paths import Home

    return Home.at(home, embedding_cache)


@pytest.fixture
def assets_copy(tmp_path, monkeypatch):
    """A private copy of assets/ that a test may edit."""
    dst = tmp_path / "assets"
    shutil.copytree(ROOT / "assets", dst)
    monkeypatch.setenv("EALIGN_ASSETS", str(dst))
    return dst


@pytest.fixture(scope="session")
def tiny_template(tmp_path_factory, embedding_cache):
    """One `ealign run --profile tiny` per session, as a user runs it (shipped assets, own process);
    tests that need a finished home work on a copy (tiny_home). Returns (home, stdout)."""
    home = tmp_path_factory.mktemp("tiny-template") / "h"
    env = {k: v for k, v in os.environ.items() if k != "EALIGN_ASSETS"}
    p = subprocess.run([str(Path(sys.executable).parent / "ealign"), "run", "--profile", "tiny", "--home", str(home)],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=1800)  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    return home, p.stdout


@pytest.fixture
def tiny_home(tiny_template, tmp_path):
    """A private copy of the finished tiny home (homes can move: tables hold home-relative paths)."""
    home, out = tiny_template
    dst = tmp_path / "h"
    shutil.copytree(home, dst, symlinks=True)
    return dst, out
