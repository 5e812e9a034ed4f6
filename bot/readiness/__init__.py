"""Readiness for production: `hamroh check --deploy`, and the facts the deploying organisation confirmed.

Owns the list of what must hold before real women write in (keys, secrets, channels, confirmed facts) and
the confirmations file. Reads settings and the loaded content; never imports the store, a channel or the web.
"""
