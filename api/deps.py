"""Typed dependencies, in one place, for thin routes."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from bot.config import Settings
from bot.service import Hamroh


def get_hamroh(request: Request) -> Hamroh:
    """The service built at start-up."""
    return cast(Hamroh, request.app.state.hamroh)


def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    return cast(Settings, request.app.state.settings)


HamrohDep = Annotated[Hamroh, Depends(get_hamroh)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
