"""The pure conversation: the engine, flows, text handling and crisis triage.

Everything here is a function of its arguments: it must never import a database, a network library or the
web framework, so that it can be tested with plain values and run anywhere. For now only triage lives here;
the engine, flows and text move in as they are next changed.
"""
