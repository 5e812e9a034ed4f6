"""The way out, in parts: claiming outbox rows, recording what became of each send, recovering rows in doubt.

`bot.dispatcher` runs them: it holds the sender locks, paces the sends and hands rows to the channels. These
modules read and write bot/store (and an announcement's recipients, with their outbox rows); they never
import a channel, the service, api/ or a web framework.
"""
