"""A PEP 517 / PEP 660 build backend for the trm package, in the standard library only.

The package is pure Python, so a wheel is a zip of trm/*.py and its metadata. Building it here
means `pip install ./python` needs nothing beyond pip itself: no setuptools or wheel to fetch,
so it works offline, with or without build isolation. Metadata comes from pyproject.toml's
[project] table.
"""
import base64
import hashlib
import io
import os
import re
import tarfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE = "trm"
# zip and tar entries get this time, so that a build is reproducible (SOURCE_DATE_EPOCH wins)
EPOCH = int(os.environ.get("SOURCE_DATE_EPOCH", 315532800))  # 1980-01-01, the zip format's first day


def _project():
    """The [project] table of pyproject.toml (tomllib on Python >= 3.11; else the simple
    `key = "string"` and `key = ["a", "b"]` lines this file uses)."""
    text = (HERE / "pyproject.toml").read_text()
    try:
        import tomllib
    except ModuleNotFoundError:
        tomllib = None
    if tomllib:
        return tomllib.loads(text)["project"]
    table = re.search(r"^\[project\]\n(.*?)(?=^\[|\Z)", text, re.S | re.M).group(1)
    project = {}
    for key, value in re.findall(r"^([\w-]+)\s*=\s*(.+?)\s*$", table, re.M):
        if value.startswith('"'):
            project[key] = value.strip('"')
        elif value.startswith("["):
            project[key] = re.findall(r'"([^"]*)"', value)
    return project


def _metadata():
    p = _project()
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {p['name']}",
        f"Version: {p['version']}",
        f"Summary: {p.get('description', '')}",
        "License: MIT",
    ]
    if "requires-python" in p:
        lines.append(f"Requires-Python: {p['requires-python']}")
    lines += [f"Requires-Dist: {d}" for d in p.get("dependencies", [])]
    lines += [f"Classifier: {c}" for c in p.get("classifiers", [])]
    readme = HERE / "README.md"
    if readme.exists():
        lines.append("Description-Content-Type: text/markdown")
        return "\n".join(lines) + "\n\n" + readme.read_text()
    return "\n".join(lines) + "\n"


def _names():
    p = _project()
    dist = re.sub(r"[-_.]+", "_", p["name"]).lower()
    return dist, p["version"]


def _package_files():
    return sorted(f for f in (HERE / PACKAGE).rglob("*.py") if "__pycache__" not in f.parts)


def _zip_info(name):
    import time

    info = zipfile.ZipInfo(name, time.gmtime(max(EPOCH, 315532800))[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def _write_wheel(wheel_directory, files):
    """files: [(archive name, bytes)]; adds the dist-info and returns the wheel's file name."""
    dist, version = _names()
    info_dir = f"{dist}-{version}.dist-info"
    files = list(files) + [
        (f"{info_dir}/METADATA", _metadata().encode()),
        (f"{info_dir}/WHEEL", b"Wheel-Version: 1.0\nGenerator: _trm_build\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
        (f"{info_dir}/top_level.txt", f"{PACKAGE}\n".encode()),
    ]
    record = []
    for name, data in files:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{info_dir}/RECORD,,")
    files.append((f"{info_dir}/RECORD", ("\n".join(record) + "\n").encode()))
    wheel_name = f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(Path(wheel_directory) / wheel_name, "w") as zf:
        for name, data in files:
            zf.writestr(_zip_info(name), data)
    return wheel_name


# ---- the PEP 517 hooks ----


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    files = [(f.relative_to(HERE).as_posix(), f.read_bytes()) for f in _package_files()]
    return _write_wheel(wheel_directory, files)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    # PEP 660: a .pth file that puts this source directory on sys.path
    dist, _ = _names()
    return _write_wheel(wheel_directory, [(f"_{dist}_editable.pth", (str(HERE) + "\n").encode())])


def build_sdist(sdist_directory, config_settings=None):
    dist, version = _names()
    root = f"{dist}-{version}"
    sdist_name = f"{root}.tar.gz"
    members = [HERE / "pyproject.toml", HERE / "_trm_build.py", HERE / "README.md"] + _package_files()
    with tarfile.open(Path(sdist_directory) / sdist_name, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        entries = [(f"{root}/{m.relative_to(HERE).as_posix()}", m.read_bytes()) for m in members if m.exists()]
        entries.append((f"{root}/PKG-INFO", _metadata().encode()))
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), EPOCH, 0o644
            tar.addfile(info, io.BytesIO(data))
    return sdist_name
