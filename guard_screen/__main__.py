"""`python -m guard_screen ...`: the same command as `guard screen ...`."""

import sys

from guard_screen import screen_command

if __name__ == "__main__":
    sys.exit(screen_command(sys.argv[1:]))
