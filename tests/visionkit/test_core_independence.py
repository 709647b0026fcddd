"""The core (``visionkit/``) knows no family: it imports only the base classes of tasks and datamodules."""

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "visionkit"
ALLOWED = {"visionkit.tasks.base", "visionkit.datamodules.base"}
#: the built-in families are loaded as whole packages by the plugin loader, like any entry point
PACKAGE_LOADERS = {"plugins.py": {"visionkit.tasks", "visionkit.datamodules"}}


def _imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.update({node.module} | {f"{node.module}.{a.name}" for a in node.names})
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            found.add(str(node.args[0].value))
    return found


def test_core_imports_no_family_module():
    offenders = []
    for path in sorted(CORE.rglob("*.py")):
        allowed = ALLOWED | PACKAGE_LOADERS.get(path.name, set())
        for mod in _imported_modules(path):
            if mod.startswith(("visionkit.tasks", "visionkit.datamodules")) and not any(
                    mod == a or mod.startswith(a + ".") for a in ALLOWED) and mod not in allowed:
                offenders.append(f"{path.relative_to(CORE.parent)}: {mod}")
    assert not offenders, offenders


def test_the_check_sees_family_imports(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from visionkit.tasks.obb.callbacks import OBBVisualizer\nimport visionkit.datamodules.motion\n")
    assert {"visionkit.tasks.obb.callbacks", "visionkit.datamodules.motion"} <= _imported_modules(bad)
