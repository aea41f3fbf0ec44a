"""The import contracts (.importlinter) hold for the code as it is, and break, failing
`make test`, when an app imports a layer above it or two modules of a package import each
other. Checked by running `lint-imports` on a copy of the code with one import added."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


@pytest.fixture
def code_copy(tmp_path):
    for package in ("apps", "devtools"):
        shutil.copytree(settings.BASE_DIR / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    shutil.copy(settings.BASE_DIR / ".importlinter", tmp_path)
    return tmp_path


def lint_imports(root):
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=120
    )


def add_import(module, line):
    module.write_text(f"{line}\n{module.read_text()}")


def test_the_code_keeps_every_contract(code_copy):
    result = lint_imports(code_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_import_up_a_layer_breaks_the_layers_contract(code_copy):
    add_import(code_copy / "apps" / "wallets" / "selectors.py",
               "from apps.billing.gateway import from_minor_units  # noqa")  # fmt: skip
    result = lint_imports(code_copy)
    assert result.returncode == 1
    assert "apps.wallets is not allowed to import apps.billing" in result.stdout


def test_a_function_level_import_up_a_layer_breaks_it_too(code_copy):
    module = code_copy / "apps" / "catalog" / "services.py"
    module.write_text(module.read_text() + "\n\ndef f():\n    from apps.accounts import models\n")
    result = lint_imports(code_copy)
    assert result.returncode == 1
    assert "apps.catalog is not allowed to import apps.accounts" in result.stdout


def test_a_circular_import_inside_a_package_breaks_the_acyclic_contract(code_copy):
    add_import(code_copy / "apps" / "billing" / "gateway.py",
               "from apps.billing.checkout import stripe_customer  # noqa")  # fmt: skip
    result = lint_imports(code_copy)
    assert result.returncode == 1
    assert "No cycles are allowed in apps.billing" in result.stdout
