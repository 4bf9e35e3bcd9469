"""The admin dashboard's files (SPEC §10): `/` of the admin port and `/dashboard/*`.

The page is plain HTML, CSS and ES modules shipped as package data
(`smsgate/servers/dashboard/`, pyproject's package-data): no build step, nothing
fetched from the internet. It holds no data: it asks the admin API with the token the
operator types in, so these files are served without one.

The files are read once, when the admin API starts, into a table of name -> body: a
request names an entry of that table or gets a 404, so no path from a request ever
reaches the file system. Every answer carries a Content-Security-Policy that allows
only this origin's scripts, styles and API (no inline script, no eval, no other host):
message fields are the customers' text, and the page puts them in the DOM as text only
(servers/dashboard/dom.js); the policy is the second lock.
"""

from importlib import resources

from aiohttp import web

FOLDER = "dashboard"  # beside this module
TYPES = {".html": "text/html", ".css": "text/css", ".js": "text/javascript",
         ".svg": "image/svg+xml"}
POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
          "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": POLICY, "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
           "Cache-Control": "no-cache"}


def dashboard_files() -> dict[str, tuple[bytes, str]]:
    """name -> (body, content type) of every file of the dashboard."""
    files = {}
    for entry in resources.files(__package__).joinpath(FOLDER).iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in TYPES:
            files[entry.name] = (entry.read_bytes(), TYPES[suffix])
    return files


def add_dashboard(app: web.Application) -> None:
    """Route `/` to the page and `/dashboard/NAME` to its other files."""
    files = dashboard_files()

    def answer(name: str) -> web.Response:
        if name not in files:
            raise web.HTTPNotFound()
        body, content_type = files[name]
        return web.Response(body=body, content_type=content_type, charset="utf-8",
                            headers=HEADERS)

    async def page(request: web.Request) -> web.Response:
        return answer("index.html")

    async def asset(request: web.Request) -> web.Response:
        return answer(request.match_info["name"])

    app.router.add_get("/", page)
    app.router.add_get("/dashboard/{name}", asset)
