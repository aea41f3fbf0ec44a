"""`make sdk` builds a wheel that stands on its own: importable outside this repository,
typed for its users (py.typed), its version the package's own."""

import subprocess
import sys
import zipfile
from pathlib import Path

import creditdesk

ROOT = Path(__file__).resolve().parents[2]
USER_CODE = """
from creditdesk import CreditDesk, InsufficientCredits

cd = CreditDesk("cd_key", base_url="http://127.0.0.1:9")
def charge() -> str:
    try:
        return cd.consume(account="acme", feature="api_call", quantity=1)["balance_after"]
    except InsufficientCredits as refused:
        return str(refused.details["available"])
"""


def test_make_sdk_builds_a_typed_wheel_that_works_outside_the_repository(tmp_path):
    subprocess.run(["make", "--no-print-directory", "sdk"], cwd=ROOT, check=True,
                   capture_output=True)  # fmt: skip
    wheel = ROOT / "clients/python/dist" / f"creditdesk-{creditdesk.__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "site")
    assert {"creditdesk/py.typed", "creditdesk/client.py", "creditdesk/django.py"} <= names
    assert not any(name.startswith(("tests/", "apps/")) for name in names)
    imported = subprocess.run(
        [sys.executable, "-I", "-c", "import sys; sys.path.insert(0, 'site'); import creditdesk; "
         "print(creditdesk.__file__, creditdesk.__version__)"],
        cwd=tmp_path, check=True, capture_output=True, text=True,
    )  # fmt: skip
    assert (
        imported.stdout.startswith(str(tmp_path / "site"))
        and creditdesk.__version__ in imported.stdout
    )
    (tmp_path / "user.py").write_text(USER_CODE)
    typed = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "user.py"],
        cwd=tmp_path, env={"MYPYPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True,
    )  # fmt: skip
    assert typed.returncode == 0, typed.stdout
    (tmp_path / "wrong.py").write_text(
        USER_CODE + "\ncount: int = cd.check(account='a', feature='f')\n"
    )
    wrong = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "wrong.py"],
        cwd=tmp_path, env={"MYPYPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True,
    )  # fmt: skip
    assert (
        wrong.returncode == 1
        and 'Incompatible types in assignment (expression has type "Check"' in wrong.stdout
    )
