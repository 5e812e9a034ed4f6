"""The counsellor side, without web code: case lifecycle, queues, transcripts, safe hours, alerts and the
console's event feed.

May import bot.store, bot.outbox, bot.store.crypto and the pure conversation modules; must never import api/
or a web framework.
"""
