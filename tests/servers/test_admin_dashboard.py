"""The dashboard's side of the admin port over TCP: its files (served from package data,
each with the Content-Security-Policy, nothing else of the disk reachable) and the
throughput series its chart draws, fed by real traffic through the node's heartbeat.
The page itself is driven in a real browser by tests/e2e/test_dashboard.py."""

import re
import tomllib
from fnmatch import fnmatch
from importlib import resources
from pathlib import Path

import aiohttp
import pytest
from http_harness import LEBANON, ids_of
from smpp_harness import eventually
from test_admin_api import admin_api

from smsgate.servers.admin_api import PREFIX
from smsgate.servers.admin_dashboard import FOLDER, POLICY, dashboard_files

ROOT = Path(__file__).resolve().parents[2]
# Ways for a string to become markup or code in a page
MARKUP_SINKS = re.compile(r"\.(innerHTML|outerHTML)\b|insertAdjacentHTML|document\.write|"
                          r"\beval\(|new Function|setAttribute\(\s*[\"']on")


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/smsgate.db"


async def fetch(admin, path: str) -> tuple[int, dict, bytes]:
    async with aiohttp.ClientSession() as http, http.get(admin.base + path) as response:
        # no token: the files need none
        return response.status, dict(response.headers), await response.read()


async def test_the_page_and_its_files_are_served_with_the_policy(sqlite_url):
    async with admin_api(sqlite_url) as admin:
        status, headers, body = await fetch(admin, "/")
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        assert headers["Content-Security-Policy"] == POLICY
        assert headers["X-Content-Type-Options"] == "nosniff"
        page = body.decode()
        linked = re.findall(r'(?:src|href)="(/dashboard/[^"]+)"', page)
        assert {"/dashboard/main.js", "/dashboard/dashboard.css"} <= set(linked)
        for name, (content, _type) in dashboard_files().items():
            status, headers, body = await fetch(admin, f"/dashboard/{name}")
            assert status == 200 and body == content, name
            assert headers["Content-Security-Policy"] == POLICY
            expected = {"js": "text/javascript", "css": "text/css", "html": "text/html",
                        "svg": "image/svg+xml"}[name.rpartition(".")[2]]
            assert headers["Content-Type"].startswith(expected), (name, headers)
        for path in linked:
            assert (await fetch(admin, path))[0] == 200, path


async def test_nothing_else_of_the_disk_is_reachable(sqlite_url):
    async with admin_api(sqlite_url) as admin:
        for path in ("/dashboard/nothing.js", "/dashboard/..%2Fadmin_api.py",
                     "/dashboard/%2e%2e%2fadmin_dashboard.py", "/dashboard/",
                     "/dashboard/..%2F..%2F__init__.py", "/admin_api.py"):
            status, headers, _ = await fetch(admin, path)
            assert status == 404, path
            assert headers["Content-Type"].startswith("application/json"), path
        # the API behind the page still needs its token
        assert (await fetch(admin, PREFIX + "/throughput"))[0] == 401


def test_the_page_runs_no_inline_script_and_writes_no_markup():
    """What the policy would block is not used (so nothing breaks under it), and data
    never reaches the DOM as HTML: the files themselves are checked."""
    files = {name: body.decode() for name, (body, _) in dashboard_files().items()}
    page = files["index.html"]
    assert re.findall(r"<script\b[^>]*>", page) == [
        '<script type="module" src="/dashboard/main.js">']
    assert not re.search(r"\son[a-z]+\s*=", page) and "style=" not in page
    for name, text in files.items():
        if name.endswith(".js"):
            assert not MARKUP_SINKS.search(text), (name, MARKUP_SINKS.search(text))
            for module in re.findall(r'from "\./([^"]+)"', text):
                assert module in files, (name, module)


def test_a_non_editable_install_ships_every_file():
    """pyproject's package-data globs cover each file of the dashboard's folder."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["smsgate.servers"]
    folder = resources.files("smsgate.servers").joinpath(FOLDER)
    names = [entry.name for entry in folder.iterdir() if entry.is_file()]
    assert "index.html" in names
    for name in names:
        assert any(fnmatch(f"{FOLDER}/{name}", g) for g in globs), name
    assert sorted(dashboard_files()) == sorted(names)


async def test_throughput_follows_the_traffic(sqlite_url):
    """Messages submitted over HTTP show in the series as accepted and then delivered
    per second (heartbeat -> nodes table -> sampler), on this node and in /nodes."""
    async with admin_api(sqlite_url) as admin:
        await admin.harness.seed_account()
        first = await admin.ok("GET", "/throughput", params={"seconds": "60"})
        assert first["interval"] == 1.0 and len(first["points"]) == 1  # sampled at once
        assert first["points"][0]["nodes"] == 1
        ids = []
        for n in range(20):
            ids += ids_of(await admin.harness.submit(mno=f"{LEBANON[:-2]}{n:02d}"))

        async def peaks() -> dict | None:
            points = (await admin.ok("GET", "/throughput"))["points"]
            top = {k: max(p[k] for p in points) for k in ("accepted", "delivered")}
            return top if all(top.values()) else None
        top = await eventually(peaks, timeout=10, what="accepted and delivered > 0")
        assert top["accepted"] <= len(ids) * 2  # a rate over ~1 s, not a total
        later = (await admin.ok("GET", "/throughput"))["points"]
        assert [p["at"] for p in later] == sorted(p["at"] for p in later)
        assert len(later) >= 2 and all(p["failed"] == 0 for p in later)
        few = (await admin.ok("GET", "/throughput", params={"seconds": "1"}))["points"]
        assert 1 <= len(few) <= 2
        [node] = await admin.ok("GET", "/nodes")
        assert {"delivered_per_second", "failed_per_second"} <= set(node)
