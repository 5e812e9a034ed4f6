"""Alembic's scripts for Hamroh's tables, shipped inside the package so that `hamroh db upgrade` finds them
wherever Hamroh is installed. Each file in versions/ is one step; Alembic loads them by path."""
