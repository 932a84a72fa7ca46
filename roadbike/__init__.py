"""roadbike command line: `roadbike plan` (offline preview with the real policy pack) and `roadbike verify`."""
