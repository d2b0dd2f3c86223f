"""The `ponder` command line; :mod:`ponder.cli.main` builds the typer app."""
