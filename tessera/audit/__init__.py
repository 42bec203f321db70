"""The audit log of security events: what happened, to whom, from where.

It is written by every capability (login, tokens, consent, revocation) and read by the risk engine and by
admins, so each event is a flat, indexed row: type, time, user, client, session, IP, user agent, details.
"""

from tessera.audit.log import AuditEvent, AuditLog, EventType

__all__ = ["AuditEvent", "AuditLog", "EventType"]
