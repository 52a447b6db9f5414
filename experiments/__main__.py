"""``python -m experiments NAME [options]``: the same as ``grokscope experiment NAME [options]``
(with no arguments: ``grokscope experiments``, the list)."""

import sys

from experiments.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    main(["experiment", *args] if args else ["experiments"])
