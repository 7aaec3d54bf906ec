"""``python -m zoo`` is the ``zoo`` command."""

from .cli import main

if __name__ == "__main__":
    main()
