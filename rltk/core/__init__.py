"""The base floor: errors, configs, the registry, rows and their readers, templates, seeds.

Imports nothing of rltk's above it (nor ``rewards`` / ``evals``): every other floor builds on it.
"""
