"""The pure conversation: the engine (with its actions, answers to questions, the turn being built in
state, and the first messages before a language in unchosen) and its values (model), the flows (spec,
loading, checking), screens and the screens filled from the database (listings), dates, text and letters,
catalogues (i18n), crisis triage and hours of the day.

Everything here is a function of its arguments: it must never import a database, a network library or the
web framework, so that it can be tested with plain values and run anywhere. (Loading reads files; nothing
here writes anything.)
"""
