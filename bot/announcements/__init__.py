"""Announcements and training: subscriptions, audiences, scheduling, enqueueing, courses and enrolment.

Owns what coordinators send and what women enrol in. Reads and writes bot/store, uses bot/conversation for
letters and segments, and leaves every message in the outbox. Must never import api/ or a web framework.
"""
