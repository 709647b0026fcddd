"""``python -m visionkit`` runs the command-line interface."""

from visionkit.cli import main

if __name__ == "__main__":
    main()
