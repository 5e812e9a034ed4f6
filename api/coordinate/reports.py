"""The coordinators' reports pages."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/coordinate/reports")
