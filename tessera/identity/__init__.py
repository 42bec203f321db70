"""Identity: users, passwords, server-side login sessions, and the login and logout pages.

``services.users`` (``UserService``), ``services.sessions`` (``SessionService``), and ``router(services)`` in
``tessera.identity.web`` for ``/login`` and ``/logout``. See README.md in this folder.
"""

from pathlib import Path

TEMPLATES = Path(__file__).parent / "templates"
