"""The `loadbearing` command: the composition root that wires runners, policies and the
demo together. Nothing imports from here. See docs/architecture.md.
"""
