"""Signals derived from one login event: geography, network, user agent, client hints, sliding windows."""
