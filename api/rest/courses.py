"""The JSON API for courses (coordinators and admins)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
