"""Subcommands of the ``rlm-router`` CLI, one module each (see ``router.cli``)."""
