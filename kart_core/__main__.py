"""``python -m kart_core ...``: the ``kart`` command, with the same exit codes."""

from kart_core.cli import main

if __name__ == "__main__":
    main()
