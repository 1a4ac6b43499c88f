"""Printing a command's whole output to stdout when its reader may stop early (`python configs.py | head`)."""

import os
import sys


def print_all(text: str) -> None:
    """Prints `text` and flushes; if the reader has closed the pipe (BrokenPipeError), exits quietly with status 0 as
    a `head`-ed Unix tool does, instead of a traceback. stdout is pointed at /dev/null first, because Python flushes
    it again at exit and would raise on the closed pipe a second time."""
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(0)
