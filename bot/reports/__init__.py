"""Reach reports: aggregates over the anonymised request log, case events, announcements and enrolments,
with small cells suppressed so that no cell, nor any total, points to a few women.

Reads bot/store only. Must never import api/, the channels or a web framework.
"""
