"""Streaming shards: any data set packed into litdata chunks, streamed by ``fit`` without loading it.

* :mod:`.layout` — what a packed folder holds (``train/`` and ``test/``, each a litdata
  dataset with its ``index.json``, and ``pointdwc_shards.json``: class names, counts, point counts).
* :mod:`.requirement` — the optional ``litdata`` import (the ``stream`` extra), one line when missing.
* :mod:`.pack` — ``pointdwc data pack``: a :class:`~datamodules.dataset.PointCloudSet` into shards
  with ``litdata.optimize``, resumable, never over existing output unless asked.
* :mod:`.shard_check` — validation of a packed folder (missing or truncated chunk, missing index).
* :mod:`.shard_set` — :class:`ShardSet`, a packed folder (or an ``s3://`` URL) as a data set.
* :mod:`.cloud_stream` — the streaming data set and loader ``fit`` iterates (litdata shuffling,
  each sample once per epoch over all ranks, exact mid-epoch resume).

May import: the modules at the top of :mod:`datamodules` (never the DataModules, which import it).
"""
