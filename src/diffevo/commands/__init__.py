"""Subcommands of the ``diffevo`` command line, one module each.

Every module has ``add_parser(subparsers)``, which registers the subcommand and
sets ``func`` (called with the parsed ``argparse.Namespace``, returns an exit code).
"""
