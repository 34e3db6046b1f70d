"""Entry point: ``unetgui`` opens the desktop app; ``unetgui <command> ...`` runs headless."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from unetgui import cli

    if argv and (argv[0] in cli.COMMANDS or argv[0] in ("-h", "--help", "--version")):
        return cli.main(argv)
    from unetgui import app  # Qt is imported only when the window is wanted

    return app.run(argv)


if __name__ == "__main__":
    sys.exit(main())
