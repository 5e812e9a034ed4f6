"""The JSON API for reports (coordinators and admins)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
