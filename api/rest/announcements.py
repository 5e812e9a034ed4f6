"""The JSON API for announcements (coordinators and admins)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
