"""Training recipes of the bundled zoo: above the capabilities, off the runtime import path."""
