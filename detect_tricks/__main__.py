"""`python -m detect_tricks <command> [arguments]`: the same as `detect-tricks`."""

from detect_tricks.commands.main import main

main()
