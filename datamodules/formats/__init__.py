"""One module per on-disk layout: the release data sets and users' own folders.

ModelNet40 (HDF5 and resampled), ScanObjectNN, ShapeNet55, ShapeNetPart, the released few-shot
folds (pickles), a folder of labelled meshes and a folder of own point files and meshes; the packed,
memory-mapped storage several of them share (:mod:`.packed`, :mod:`.part_split`,
:mod:`.resampled_clouds`). Each reader validates its files at the boundary and raises one
:class:`~datamodules.errors.DataError` naming the file and the field.

May import: the modules at the top of :mod:`datamodules`, :mod:`datamodules.splits`.
"""
