"""Entry point: ``unetgui`` opens the desktop app; ``unetgui <command> ...`` runs headless.

A first word that is neither a command, an option, nor an existing file or folder is a mistyped command:
it gets "unknown command" and exit 2, never a desktop app started with the word as a path (on a machine
without a display that would end in a Qt abort).
"""

from __future__ import annotations

import difflib
import os
import sys

def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from unetgui import cli

    if argv and (argv[0] in cli.COMMANDS or argv[0] in ("-h", "--help", "--version")):
        return cli.main(argv)
    unknown = unknown_word(argv, cli.COMMANDS)
    if unknown is not None:
        print(unknown, file=sys.stderr)
        return 2
    from unetgui import app  # Qt is imported only when the window is wanted

    return app.run(argv)


def unknown_word(argv: list[str], commands) -> str | None:
    """The message for a first word that is no command, app option or existing path (None: the app may open)."""
    if not argv:
        return None
    word = argv[0]
    if word.startswith("-") or os.path.exists(word):  # the app's options (and Qt's, such as -platform), a path
        return None
    close = difflib.get_close_matches(word, commands, n=1)
    hint = f" (did you mean {close[0]}?)" if close else f" (commands: {', '.join(commands)}; unetgui --help)"
    return f"unetgui: error: unknown command {word!r}{hint}; to open a file or folder, give its path"


if __name__ == "__main__":
    sys.exit(main())
