"""Subsets carved from a data set: the seeded stratified validation split and few-shot folds.

May import: the modules at the top of :mod:`datamodules`.
"""
