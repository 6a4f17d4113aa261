"""Installed beside the Missy assistant, the wheel does it no harm: it installs no top-level
``missy`` module and no ``missy`` command (those are Missy's), but ``missy_providers``, the
``missy-providers`` script and ``python -m missy_providers``. Checked on the real wheel, in a
fresh venv, in both install orders, against a stand-in ``missy`` distribution built here."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE_FILES = ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in")
FAKE_MISSY = "the missy assistant (stand-in)"


def run(*argv: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=300,
                          cwd=cwd)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Our wheel, built from a copy of the source (the checkout gets no build/ folder)."""
    src = tmp_path_factory.mktemp("src")
    for name in SOURCE_FILES:
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "missy_providers", src / "missy_providers",
                    ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out, src)
    assert built.returncode == 0, built.stderr
    (found,) = out.glob("missy_providers-*.whl")
    return found


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


@pytest.fixture(scope="module")
def fake_missy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of a stand-in ``missy`` distribution shaped like the assistant's: a ``missy``
    package (no ``__main__``) and a ``missy`` console script."""
    files = {
        "missy/__init__.py": b'version = "0.1.0"\n',
        "missy/cli.py": f"def cli():\n    print({FAKE_MISSY!r})\n".encode(),
        "missy-0.1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: missy\nVersion: 0.1.0\n",
        "missy-0.1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\n"
                                       b"Root-Is-Purelib: true\nTag: py3-none-any\n",
        "missy-0.1.0.dist-info/entry_points.txt": b"[console_scripts]\nmissy = missy.cli:cli\n",
        "missy-0.1.0.dist-info/top_level.txt": b"missy\n",
    }
    record = [_record_line(name, data) for name, data in files.items()]
    record.append("missy-0.1.0.dist-info/RECORD,,")
    path = tmp_path_factory.mktemp("fake") / "missy-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as whl:
        for name, data in files.items():
            whl.writestr(name, data)
        whl.writestr("missy-0.1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return path


def test_the_wheel_holds_no_missy_module_or_command(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as whl:
        names = whl.namelist()
        entry_points = next(whl.read(n).decode() for n in names
                            if n.endswith(".dist-info/entry_points.txt"))
        top_level = next(whl.read(n).decode() for n in names
                         if n.endswith(".dist-info/top_level.txt"))
    assert {n.split("/")[0] for n in names if not n.startswith("missy_providers-")} == {
        "missy_providers"}
    assert "missy_providers/__main__.py" in names and "missy_providers/cli.py" in names
    assert top_level.split() == ["missy_providers"]
    assert entry_points.split() == ["[console_scripts]", "missy-providers",
                                    "=", "missy_providers.cli:main"]


def _check_both_work(venv: Path) -> None:
    # Run in the venv's folder: from the checkout, its own missy.py would be found first.
    python, bin_dir = venv / "bin" / "python", venv / "bin"
    assistant = run(python, "-c", "import missy, missy.cli; print(missy.__file__)", cwd=venv)
    assert assistant.returncode == 0 and f"{venv}" in assistant.stdout, assistant.stderr
    assert run(bin_dir / "missy", cwd=venv).stdout.strip() == FAKE_MISSY
    for argv, name in (([bin_dir / "missy-providers", "--version"], "missy-providers"),
                       ([python, "-m", "missy_providers", "--version"],
                        "python -m missy_providers")):
        ours = run(*argv, cwd=venv)  # named as it was started, as its hints are
        assert ours.returncode == 0 and ours.stdout.strip() == f"{name} 0.1.0", ours.stderr


def test_installed_beside_missy_in_either_order(wheel: Path, fake_missy: Path,
                                                tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    made = run(sys.executable, "-m", "venv", venv)
    assert made.returncode == 0, made.stderr
    pip = [venv / "bin" / "python", "-m", "pip", "--disable-pip-version-check", "-q"]
    for order in ((wheel, fake_missy), (fake_missy, wheel)):
        for whl in order:
            installed = run(*pip, "install", "--no-deps", "--no-index", whl)
            assert installed.returncode == 0, installed.stderr
        _check_both_work(venv)
        removed = run(*pip, "uninstall", "-y", "missy-providers")
        assert removed.returncode == 0, removed.stderr
        assert run(venv / "bin" / "missy", cwd=venv).stdout.strip() == FAKE_MISSY
        assert run(*pip, "uninstall", "-y", "missy").returncode == 0
