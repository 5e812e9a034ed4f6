"""Her Telegram photos and voice notes, fetched from the Bot API when a counsellor opens one.

Hamroh keeps only the file's id, sealed in her transcript. The file itself is asked of Telegram on demand,
held in memory for the answer and never written anywhere; each opening is audited. Nothing of it goes
through the database transaction: SQLite must not wait on Telegram's network.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response
from telegram.error import TelegramError
from telegram.request import HTTPXRequest

from api.console.common import Handler
from api.deps import HamrohDep, SettingsDep
from bot.cases import transcript
from bot.channels.telegram import make_bot
from bot.staff import audit
from bot.store import CaseMessage
from bot.store.db import transaction

router = APIRouter(prefix="/console")

MAX_BYTES = 20 * 1024 * 1024  # what the Bot API lets a bot download
# Shown in the browser only when the type is one a browser plays or shows safely; anything else downloads.
INLINE = {
    "photo": "image/jpeg",
    "voice": "audio/ogg",
    "audio": "audio/mpeg",
    "video": "video/mp4",
    "video_note": "video/mp4",
    "sticker": "image/webp",
}
HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; media-src 'self'; sandbox",
    "Referrer-Policy": "no-referrer",
}


@router.get("/cases/{case_id}/media/{line_id}")
async def media(
    case_id: int, line_id: int, staff: Handler, hamroh: HamrohDep, settings: SettingsDep
) -> Response:
    """The photo, voice note or file of one line of her transcript, straight from Telegram."""
    async with transaction(hamroh.engine) as db:
        message = await db.get(CaseMessage, line_id)
        if message is None or message.case_id != case_id:
            raise HTTPException(404, "no such line in this case")
        reference: dict[str, Any] = transcript.opened(hamroh.vault, message).media or {}
        kind, file_id = str(reference.get("kind", "")), reference.get("file_id")
        if not isinstance(file_id, str) or not file_id:
            raise HTTPException(404, "this line has no file")
        await audit.record(db, staff=staff, action="media", case_id=case_id, detail=kind, now=hamroh.clock())
    if settings.telegram_token is None:
        raise HTTPException(503, "Telegram is not configured: the file cannot be fetched")
    request = HTTPXRequest(connection_pool_size=1, connect_timeout=5.0, read_timeout=30.0)
    bot = make_bot(settings.telegram_token.get_secret_value(), settings.telegram_api_url, request)
    try:
        found = await bot.get_file(file_id)
        if found.file_size is not None and found.file_size > MAX_BYTES:
            raise HTTPException(413, "the file is larger than Telegram lets a bot download")
        content = bytes(await found.download_as_bytearray())
    except TelegramError as exc:
        # Telegram forgets files after a while, and may be away: say so, without the reason's details.
        raise HTTPException(502, "Telegram did not give the file (it may be too old)") from exc
    finally:
        await request.shutdown()
    inline = INLINE.get(kind)
    headers = {
        **HEADERS,
        "Content-Disposition": "inline" if inline else f'attachment; filename="case-{case_id}-{line_id}"',
    }
    return Response(content, media_type=inline or "application/octet-stream", headers=headers)
