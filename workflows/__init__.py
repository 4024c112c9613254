"""sacmap workflows: FireWorks/custodian orchestration, the results database and the ``sacmap`` CLI.

This package orchestrates the others (``structures``, ``analysis``, ``detection``); nothing imports it back.
"""
