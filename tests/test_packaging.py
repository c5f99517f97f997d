"""The package as it is published and installed: built, checked by twine, installed from the wheel."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """``python -m build``: the sdist and the wheel, as a release makes them."""
    if importlib.util.find_spec("build") is None:
        pytest.skip("build is not installed (pip install -e '.[test]')")
    out = tmp_path_factory.mktemp("dist")
    offline = ["--no-isolation"] if importlib.util.find_spec("hatchling") else []  # the backend at hand
    done = subprocess.run(
        [sys.executable, "-m", "build", *offline, "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return out


def test_twine_check_strict_passes(dist):
    if importlib.util.find_spec("twine") is None:
        pytest.skip("twine is not installed (pip install -e '.[test]')")
    files = sorted(str(p) for p in dist.iterdir())
    done = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *files], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(files) == 2


def test_the_wheel_holds_the_license_templates_catalogs_and_both_commands(dist):
    wheel = next(dist.glob("*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert any(name.endswith("licenses/LICENSE") for name in names)
    assert "digest/templates/digest.mjml.j2" in names
    assert "digest/locale/zh_CN/LC_MESSAGES/messages.po" in names
    assert any(name.endswith(".data/scripts/digest") for name in names)
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "Project-URL: Source, https://github.com/digest-newsletter/digest" in metadata
    assert "Operating System :: POSIX" in metadata and "Windows" not in metadata


def test_a_fresh_install_from_the_wheel_starts_a_newsletter(dist, tmp_path):
    """The wheel alone (no clone): `digest init` and `digest run` work in an empty folder."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    # the dependencies come from this environment; digest itself only from the wheel
    (purelib / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheel = next(dist.glob("*.whl"))
    install = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-deps"]
    done = subprocess.run([*install, str(wheel)], capture_output=True, text=True)
    if "no such option: --python" in done.stderr:
        pytest.skip("pip is older than 22.3")
    assert done.returncode == 0, done.stderr
    site = tmp_path / "newsletter"
    site.mkdir()
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "XDG_CACHE_HOME": str(tmp_path / "c"),
    }
    for command in (["init"], ["run"]):
        done = subprocess.run(
            [str(venv / "bin" / "digest"), *command], cwd=site, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import digest; print(digest.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=site,
    )
    assert str(venv) in where.stdout  # the wheel's copy, not the clone's
    assert (site / "feeds" / "atom.xml").is_file()


def test_the_readme_installs_what_exists_and_shows_pictures_from_anywhere():
    assert not re.search(r"pip install (-U )?digest-newsletter\b", README)  # never published on PyPI
    for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)|<img [^>]*src=\"([^\"]+)\"", README):
        url = next(t for t in target if t)
        assert url.startswith("https://"), f"{url}: a relative picture is broken on a package index page"
