"""The two tasks (detection, classification) and `TASKS`, the table of them by name."""
