"""pllm: a personal language-model assistant for the terminal that keeps everything on your machine."""

__version__ = "0.1.0"
