"""Helpers every layer may use: safe file reading and atomic writing (``fileio``), the machine and its
devices (``machine``), the recorded form of hardware strings (``hardware``), figures (``plots``). They import
nothing of zoo but its errors."""
