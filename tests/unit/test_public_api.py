"""The public line: what ``golemsync`` exports, and what importing its parts loads."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import pytest

import golemsync
from golemsync import errors

CLIENT_DEPENDENCIES = ("requests", "tenacity", "dataclasses_json", "urllib3")


def loaded_after(statement: str) -> list[str]:
    """The modules a fresh interpreter has loaded after running ``statement``."""
    code = f"import sys, json\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    return list(json.loads(out))


def test_every_exported_name_resolves_and_is_sorted() -> None:
    names = [n for n in golemsync.__all__ if not n.startswith("__")]
    assert names == sorted(names)
    for name in golemsync.__all__:
        assert getattr(golemsync, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        _ = golemsync.nothing_here  # type: ignore[attr-defined]


def test_the_whole_error_tree_is_exported() -> None:
    tree = {name for name, value in vars(errors).items()
            if inspect.isclass(value) and issubclass(value, errors.GolemError)}
    assert tree <= set(golemsync.__all__)
    assert all(getattr(golemsync, name) is getattr(errors, name) for name in tree)


def test_importing_the_devnet_loads_no_client_module() -> None:
    modules = loaded_after("import golemsync.devnet\nfrom golemsync.devnet import Devnet")
    client = [m for m in modules if m.startswith("golemsync.")
              and not m.startswith("golemsync.devnet")
              and m not in ("golemsync.timestamps", "golemsync.money")]
    assert client == []
    assert [m for m in modules if m.split(".")[0] in CLIENT_DEPENDENCIES] == []


def test_importing_golemsync_alone_is_cheap() -> None:
    modules = loaded_after("import golemsync")
    assert [m for m in modules if m.split(".")[0] in CLIENT_DEPENDENCIES] == []
    assert "requests" in loaded_after("from golemsync import Golem")
