"""The ``tessera`` command line (Typer). Each capability contributes a sub-command group."""
