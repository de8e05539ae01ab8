"""The local stack: emulators and functions as processes on loopback (the embedded default)."""
