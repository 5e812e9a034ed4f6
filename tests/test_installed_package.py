"""The image's own steps, without Docker: what the Dockerfile copies is built into a wheel and installed (not
editable) into a fresh virtual environment, the catalogues are compiled, and then, in production on
PostgreSQL and from a folder outside the source tree, `hamroh db upgrade` and `hamroh serve` run until
/healthz answers.

Nothing is downloaded: the wheel is built with the build backend already installed, and the fresh
environment borrows its dependencies from the one running the tests (a path, so that the editable install
of the source tree is not borrowed with them).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from bot.config import ROOT
from tests.conftest import POSTGRES_URL, TEST_ENCRYPTION_KEY, TEST_HASH_KEY

pytestmark = pytest.mark.postgres

SERVING = re.compile(r"serving on (http://\S+)")
BUILD = "/build"  # where the Dockerfile copies the source it installs
APP = "/app"  # where it copies the content


def dockerfile_copies() -> list[tuple[Path, str]]:
    """Each `COPY source... destination` of the Dockerfile as (source in the repository, destination)."""
    copies = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            *sources, destination = line.split()[1:]
            for source in sources:
                target = destination + Path(source).name if destination.endswith("/") else destination
                copies.append((ROOT / source, target))
    return copies


def lay_out(into: Path) -> tuple[Path, Path]:
    """Copy what the Dockerfile copies, under `into`; the folders it builds from and keeps content in."""
    for source, destination in dockerfile_copies():
        target = into / destination.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.mo"))
        else:
            shutil.copyfile(source, target)
    return into / BUILD.lstrip("/"), into / APP.lstrip("/")


def run(command: list[str | Path], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run a command to the end; its output, or the test fails with it."""
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def fresh_environment(folder: Path, wheel: Path) -> Path:
    """A new virtual environment with the wheel installed and the running one's packages on its path."""
    run([sys.executable, "-m", "venv", "--without-pip", folder], cwd=folder.parent)
    python = folder / "bin" / "python"
    site = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], folder).strip()
    borrowed = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site) / "borrowed-dependencies.pth").write_text("\n".join(sorted(borrowed)) + "\n")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--python", python]
    run([*pip, "install", "--quiet", "--no-deps", "--no-index", "--no-compile", wheel], cwd=folder)
    return folder / "bin"


def files_under(folder: Path) -> set[str]:
    return {
        str(path.relative_to(folder))
        for path in folder.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


@pytest.fixture
def database() -> Iterator[str]:
    """A PostgreSQL database of this test's own, empty, dropped afterwards."""
    if not POSTGRES_URL:
        pytest.skip("HAMROH_TEST_POSTGRES_URL is not set")
    name = f"hamroh_installed_{uuid.uuid4().hex[:12]}"
    admin(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def admin(sql: str) -> None:
    async def execute() -> None:
        connection = await asyncpg.connect(POSTGRES_URL)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(execute())


def test_the_installed_package_migrates_and_serves_from_outside_the_source(
    tmp_path: Path, database: str
) -> None:
    build, app = lay_out(tmp_path / "image")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    offline = ["--quiet", "--no-deps", "--no-index", "--no-build-isolation"]
    run([*pip, "wheel", *offline, "--wheel-dir", tmp_path / "dist", build], cwd=tmp_path)
    [wheel] = (tmp_path / "dist").glob("hamroh-*.whl")
    shutil.rmtree(build)  # as the image does: nothing may be read from the source it was built from
    bin_dir = fresh_environment(tmp_path / "venv", wheel)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    # Installed, the program is whole: every file of its packages, migrations, templates and static files
    # included, and it is the installed copy that runs, not the source tree.
    where = run([bin_dir / "python", "-c", "import api, bot, migrations; print(bot.__file__)"], elsewhere)
    site = Path(where.strip()).parent.parent
    assert site.is_relative_to(tmp_path / "venv")
    for package in ("bot", "api", "migrations"):
        missing = files_under(ROOT / package) - files_under(site / package)
        assert not missing, f"not in the wheel: {sorted(missing)}"

    # The Dockerfile's `pybabel compile --domain messages --directory /app/locales`
    babel = [bin_dir / "python", "-m", "babel.messages.frontend"]
    run([*babel, "compile", "--domain", "messages", "--directory", app / "locales"], app)
    for po in (app / "locales").glob("*/LC_MESSAGES/messages.po"):
        assert po.with_suffix(".mo").is_file()

    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(("HAMROH_", "PYTHON"))
    }
    environment |= {
        "PATH": f"{bin_dir}{os.pathsep}{environment.get('PATH', '')}",
        "HAMROH_ENV": "production",
        "HAMROH_DATABASE_URL": database,
        "HAMROH_ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
        "HAMROH_HASH_KEY": TEST_HASH_KEY,
        "HAMROH_FLOWS_DIR": str(app / "flows"),
        "HAMROH_LOCALES_DIR": str(app / "locales"),
        "HAMROH_VAR_DIR": str(app / "var"),
        "HAMROH_SIMULATOR": "false",
        "HAMROH_ALLOW_UNCONFIRMED": "true",  # the facts are not confirmed here; a pilot starts anyway
        "HAMROH_HOST": "127.0.0.1",
    }
    run([bin_dir / "hamroh", "db", "upgrade"], elsewhere, environment)

    seen: list[str] = []
    with subprocess.Popen(
        [bin_dir / "hamroh", "serve", "--port", "0"],
        cwd=elsewhere,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as serve:
        reader = threading.Thread(target=read_lines, args=(serve, seen), daemon=True)
        reader.start()
        try:
            url = until_serving(serve, seen)
            assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
            login = httpx.get(f"{url}/login", timeout=5)  # a page from the installed templates
            assert login.status_code == 200
            assert "/static/staff.css" in login.text
            assert httpx.get(f"{url}/static/staff.css", timeout=5).status_code == 200
        finally:
            serve.terminate()
            serve.wait(timeout=20)
            reader.join(timeout=20)
    assert "Traceback" not in "".join(seen)


def read_lines(process: subprocess.Popen[str], into: list[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        into.append(line)


def until_serving(serve: subprocess.Popen[str], seen: list[str]) -> str:
    """The URL `hamroh serve` says it listens on, once it says it."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if match := SERVING.search("".join(seen)):
            return match.group(1)
        assert serve.poll() is None, "serve stopped:\n" + "".join(seen)
        time.sleep(0.05)
    raise AssertionError("serve never said where it listens:\n" + "".join(seen))
