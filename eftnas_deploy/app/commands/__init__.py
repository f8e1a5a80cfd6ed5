"""Subcommands of the `eftnas-deploy` CLI."""
