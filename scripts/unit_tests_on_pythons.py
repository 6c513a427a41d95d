"""Run tests/unit on every other Python the classifiers claim, where it is installed.

``python scripts/unit_tests_on_pythons.py``

The whole suite runs on the dev environment's Python; this adds the unit tests on the
other versions ``pyproject.toml`` claims (its ``Programming Language :: Python :: 3.x``
classifiers), the oldest and the newest among them, each in an environment of its own
(``.venv-py3.x``, made once and kept up to date with the pyproject files). It prints
which versions ran and which were skipped (not installed here), and exits non-zero if
a run fails: the classifiers claim only what this runs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DISTRIBUTIONS = ("packages/prism-import-log", "packages/prism-sandbox")
_CLASSIFIER = re.compile(r'"Programming Language :: Python :: (3\.\d+)"')


def claimed_versions() -> list[str]:
    # Read as text: tomllib is not in Python 3.10's standard library.
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    found = _CLASSIFIER.findall(text)
    return sorted(set(found), key=lambda version: tuple(map(int, version.split("."))))


def interpreter(version: str) -> str | None:
    """A ``python3.x`` on PATH, or one pyenv installed; ``None`` if there is none."""
    candidates = [shutil.which(f"python{version}")]
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates += sorted(
        map(str, Path(pyenv_root).glob(f"versions/{version}.*/bin/python{version}"))
    )
    for candidate in candidates:
        if candidate and _runs(candidate):
            return candidate
    return None


def _runs(python: str) -> bool:
    # A pyenv shim answers for a version it does not have by failing.
    result = subprocess.run([python, "--version"], capture_output=True, check=False)
    return result.returncode == 0


def environment(version: str, python: str) -> Path:
    """``.venv-py3.x`` with the tap, the distributions and the unit group installed."""
    venv = ROOT / f".venv-py{version}"
    marker = venv / ".installed"
    stamp = "".join(
        (ROOT / name / "pyproject.toml").read_text(encoding="utf-8")
        for name in (".", *DISTRIBUTIONS)
    )
    if marker.exists() and marker.read_text(encoding="utf-8") == stamp:
        return venv
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "--upgrade", "pip>=25.1"], check=True)
    subprocess.run([*pip, "install", "-e", str(ROOT), "--group", "unit"], check=True, cwd=ROOT)
    editable = [arg for name in DISTRIBUTIONS for arg in ("-e", str(ROOT / name))]
    subprocess.run([*pip, "install", "--no-deps", *editable], check=True)
    marker.write_text(stamp, encoding="utf-8")
    return venv


def main() -> int:
    current = f"{sys.version_info.major}.{sys.version_info.minor}"
    ran: list[str] = []
    skipped: list[str] = []
    failed: list[str] = []
    for version in claimed_versions():
        if version == current:
            ran.append(f"{version} (the whole suite's Python)")
            continue
        python = interpreter(version)
        if python is None:
            skipped.append(f"{version} (not installed)")
            continue
        venv = environment(version, python)
        print(f"unit tests on Python {version} ({python})", flush=True)
        result = subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "tests/unit",
            ],
            cwd=ROOT,
            check=False,
        )
        (ran if result.returncode == 0 else failed).append(version)
    print(
        f"unit tests ran on Python {', '.join(ran) or 'none'}; "
        f"skipped: {', '.join(skipped) or 'none'}; failed: {', '.join(failed) or 'none'}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
