"""The command-line tools: `detect-tricks <command>` once installed, `python tools/<name>.py`
from a clone. Each module has a `main()` that parses its arguments and turns user errors
into one `error:` line."""
