"""The command-line interface (thin: parse, call the public API, print, exit)."""
