"""The LSM engine: memtables (memtable), sorted tables with LZ4 blocks and bloom filters
(sstable, sstable_builder, lz4block), leveled compaction (table_merge, merge), the manifest
(manifest) and the tree over them (tree), behind the Engine contract (engine). Formats:
docs/format/sstable.md, docs/format/manifest.md."""
