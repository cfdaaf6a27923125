"""The tests' own layout: shared helpers live in conftest.py or helpers.py (or a helper
module such as tiny_vl.py), so no test module imports another test module (which would
run that module's import-time skips and collect nothing, or tie one module's fixtures to
another's)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _is_test_module(name: str) -> bool:
    """Whether the dotted module `name` (relative or absolute) names a test module."""
    return name.rpartition(".")[2].startswith("test_")


def imported_test_modules(source: str) -> list[str]:
    """The test modules (`test_*`) that Python `source` imports, however it spells it."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if _is_test_module(a.name)]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if _is_test_module(module):
                found.append("." * node.level + module)
            elif module in ("", "tests"):  # from . import test_x; from tests import test_x
                found += [a.name for a in node.names if _is_test_module(a.name)]
    return found


def test_the_check_finds_every_spelling():
    assert imported_test_modules("from .test_serve import call") == [".test_serve"]
    assert imported_test_modules("def f():\n    from .test_hf import make\n") == [".test_hf"]
    assert imported_test_modules("from . import test_page, helpers") == ["test_page"]
    assert imported_test_modules("from tests.test_serve import call") == ["tests.test_serve"]
    assert imported_test_modules("from tests import test_serve") == ["test_serve"]
    assert imported_test_modules("import tests.test_serve as t") == ["tests.test_serve"]
    assert imported_test_modules("from .conftest import video\nfrom .helpers import call") == []
    assert imported_test_modules("from vidclass.testing import x\nimport pytest") == []


def test_no_test_module_imports_another():
    files = sorted(TESTS.rglob("*.py"))
    assert len(files) > 20 and TESTS / "conftest.py" in files
    offending = {
        str(f.relative_to(TESTS)): found
        for f in files
        if (found := imported_test_modules(f.read_text(encoding="utf-8")))
    }
    assert offending == {}, "move what they share to tests/conftest.py or tests/helpers.py"


def test_helpers_hold_no_fixtures():
    """Fixtures are found by pytest in conftest.py only; one in helpers.py would be
    found only where a module happens to import it."""
    tree = ast.parse((TESTS / "helpers.py").read_text(encoding="utf-8"))
    decorators = [
        ast.unparse(d)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef)
        for d in node.decorator_list
    ]
    assert not [d for d in decorators if "fixture" in d]
