"""`python -m rnnlab ...` is the same as the `rnnlab` command (whose entry point is run() below): a Ctrl-C while
the libraries are still loading ends with exit code 130 and one line, not a traceback."""
import sys


def run() -> int:
    try:
        from .cli import main
        return main()
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(run())
