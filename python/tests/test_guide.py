"""docs/GUIDE.md shows one program three times, in C, C++ and Python ("Step through a puzzle"):
each must run as printed and print the same thing, so the guide cannot drift from the APIs.

The C and C++ programs are compiled against the library under test ($TRM_LIBRARY) when a
compiler is at hand (cc, c++); the Python one runs with this tree's package.
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

SECTION = ("## Step through a puzzle", "## Choose the unit")


def guide_programs():
    text = (REPO / "docs" / "GUIDE.md").read_text()
    start, end = text.index(SECTION[0]), text.index(SECTION[1])
    blocks = re.findall(r"```(\w+)\n(.*?)```", text[start:end], re.S)
    return {lang: code for lang, code in blocks}


def library():
    path = os.environ.get("TRM_LIBRARY")
    if not path:
        pytest.skip("TRM_LIBRARY not set: the C programs need the library's path")
    return Path(path).resolve()


def run(cmd, **kw):
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO, **kw)
    assert done.returncode == 0, f"{cmd[0]}: exit {done.returncode}: {done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def python_output():
    programs = guide_programs()
    assert set(programs) == {"c", "cpp", "py"}, f"the section shows {sorted(programs)}"
    env = dict(os.environ, PYTHONPATH=str(REPO / "python"))
    out = run([sys.executable, "-c", programs["py"]], env=env)
    steps = out.splitlines()
    assert steps and steps[0].startswith("step 1 q_halt "), out
    return out


@pytest.mark.parametrize("lang,compiler,flags", [("c", "cc", ["-std=c11"]), ("cpp", "c++", ["-std=c++17"])])
def test_guide_programs_print_the_same(python_output, tmp_path, lang, compiler, flags):
    if shutil.which(compiler) is None:
        pytest.skip(f"no {compiler}")
    lib = library()
    source = tmp_path / f"guide.{lang}"
    source.write_text(guide_programs()[lang])
    program = tmp_path / f"guide_{lang}"
    run([compiler, *flags, "-Wall", "-Wextra", "-Werror", f"-I{REPO / 'include'}", str(source), "-o", str(program),
         str(lib), f"-Wl,-rpath,{lib.parent}"])
    assert run([str(program)]) == python_output
