"""The feature cache: one owner for how features are laid out, written, read, sharded and converted.

- ``layout``: the on-disk format (index, parts directory, atomic files).
- ``writer``: ``CacheWriter``, crash-safe and resumable; extraction writes through it.
- ``reader``: ``FeatureCache``, read-only streaming access to one cache.
- ``multi``: ``CacheSet``, several caches read as one (a video in two is refused).
- ``shards``: which video each of N extraction processes owns, and their progress.
- ``info``: the summary ``avepipe cache info`` prints.
- ``ave``: import from / export to the official AVE feature files (imported as
  ``avepipe.data.cache.ave``: it reads annotations, which read the VGGSound label index,
  which is written with ``layout``'s atomic files; exporting it here would close that loop).
"""
from avepipe.data.cache.reader import FeatureCache
from avepipe.data.cache.writer import CacheWriter
from avepipe.data.cache.multi import CacheSet
from avepipe.data.cache.info import format_summary, summarise
from avepipe.data.cache.shards import Shard, parse_shard

__all__ = ["CacheSet", "CacheWriter", "FeatureCache", "Shard", "format_summary", "parse_shard", "summarise"]
