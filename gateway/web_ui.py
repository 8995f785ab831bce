"""The web UI (ui/, a Vite-built React app) served by the gateway at /.

ui/dist is built by `make install` (`make ui`); nothing built is committed. Hashed files
under /assets never change (cached a year, immutable); index.html answers every UI path (the
app routes on the client, so /memories/<id> works on reload) and is never cached, so a new
build is picked up at once. Without ui/dist the gateway still proxies the API and / says how
to build the UI.
"""

from __future__ import annotations

from pathlib import Path

from fastapi.responses import FileResponse, HTMLResponse, Response

from gateway.routes import PAGES

DEFAULT_DIST = Path(__file__).resolve().parent.parent / "ui" / "dist"

# No inline scripts or styles and nothing from other origins: Vite's build has none, and the
# API key in sessionStorage is then readable only by the app's own code.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
       "form-action 'self'")
PAGE_HEADERS = {"Content-Security-Policy": CSP, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}
ASSET_HEADERS = {"Cache-Control": "public, max-age=31536000, immutable", "X-Content-Type-Options": "nosniff"}

NOT_BUILT = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>recallstack: web UI not built</title></head>
<body><h1>The web UI is not built</h1>
<p>The gateway serves the web UI from <code>{dist}</code>, which does not exist. Run <code>make install</code>
(or <code>make ui</code>) in the repository to build it, then reload. The REST API under <code>/v1/</code> works without it.</p>
</body></html>"""



class WebUi:
    def __init__(self, dist: Path = DEFAULT_DIST):
        self.dist = dist.resolve()

    @property
    def built(self) -> bool:
        return (self.dist / "index.html").is_file()

    @staticmethod
    def is_page(path: str) -> bool:
        """A GET of `path` (without its leading slash) is a UI page: index.html answers it."""
        return path == "" or path.split("/", 1)[0] in PAGES

    def page(self) -> Response:
        if not self.built:
            return HTMLResponse(NOT_BUILT.format(dist=self.dist), status_code=503,
                                headers={"Cache-Control": "no-store", "Retry-After": "60"})
        return FileResponse(self.dist / "index.html", media_type="text/html", headers=PAGE_HEADERS)

    def asset(self, name: str) -> Response | None:
        """A file of dist/assets, or None (a 404) for anything else, `..` included."""
        root = (self.dist / "assets").resolve()
        path = (root / name).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            return None
        return FileResponse(path, headers=ASSET_HEADERS)
