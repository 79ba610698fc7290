"""``python -m alphahat.cli``: the command line (see :mod:`alphahat.cli`)."""

from alphahat.cli import main

if __name__ == "__main__":  # pragma: no cover
    main()
