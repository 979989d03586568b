"""`GET /inspector`: the activation inspector, a static page inside the package that calls the JSON API.

Open without an API key like the health routes: the page holds no data; it asks for the key when the API answers
401 and sends it as a bearer token. Nothing is fetched from elsewhere, so it works air-gapped.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles

PAGE = Path(__file__).resolve().parent.parent / "inspector"

router = APIRouter(tags=["inspector"])
assets = StaticFiles(directory=PAGE / "static")


@router.get("/inspector", name="inspector", include_in_schema=False, response_class=FileResponse)
async def inspector() -> FileResponse:
    return FileResponse(PAGE / "index.html", media_type="text/html; charset=utf-8")
