"""The wheel installs one import package, ``visionkit``, with every subpackage."""

import subprocess
import sys
import zipfile
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def _source_packages() -> set[str]:
    """Every folder with an ``__init__.py`` under the three source roots, as dotted import names."""
    roots = {"visionkit": ROOT / "visionkit", "visionkit.tasks": ROOT / "tasks",
             "visionkit.datamodules": ROOT / "datamodules"}
    found = set()
    for prefix, folder in roots.items():
        for init in folder.rglob("__init__.py"):
            rel = init.parent.relative_to(folder).parts
            if "__pycache__" not in rel:
                found.add(".".join((prefix, *rel)))
    return found


def test_package_list_is_complete():
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(conf["tool"]["setuptools"]["packages"])
    assert listed == _source_packages()


def test_wheel_contains_only_visionkit(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w",
                        str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    wheel = next(tmp_path.glob("visionkit_lightning-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"visionkit"}
    packages = {str(Path(n).parent).replace("/", ".") for n in names if n.endswith("__init__.py")}
    assert packages == _source_packages()
    for mod in ("visionkit/cli.py", "visionkit/tasks/base.py", "visionkit/datamodules/base.py"):
        assert mod in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "visionkit = visionkit.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
