"""filmcolor: give colour back to black-and-white films, frame for frame, with their own sound."""

__version__ = "0.1.0"
