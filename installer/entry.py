"""PyInstaller entry point of the bundle: the same ``main()`` as the ``unetgui`` console script."""

import multiprocessing
import sys

from unetgui.__main__ import main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # a frozen child process (DataLoader workers on Windows/macOS) must not rerun main()
    sys.exit(main())
