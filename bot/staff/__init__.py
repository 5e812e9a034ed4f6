"""Staff: accounts, passwords, API tokens, login sessions, login throttling and the audit log.

Owns everything that says who a member of staff is and what they did. Reads and writes the staff tables of
bot/store. Must never import the web framework or api/: the console, the coordinators' pages and the JSON
API reach it through api/deps.py.
"""
