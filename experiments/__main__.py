"""``python -m experiments NAME [options]``: the same as ``grokscope experiment NAME [options]``
(with no arguments: ``grokscope experiments``, the list)."""

import sys

import typer

from interp.cli import app
from interp.errors import GrokscopeError

if __name__ == "__main__":
    args = sys.argv[1:]
    try:
        app(args=["experiment", *args] if args else ["experiments"], prog_name="grokscope")
    except GrokscopeError as err:  # raised outside a command body
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)
