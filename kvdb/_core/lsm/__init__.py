"""The LSM engine: memtables, leveled SSTables and a manifest, behind the Engine contract.

Memtables (memtable), sorted tables with LZ4 blocks and bloom filters (sstable,
sstable_builder, lz4block), merging (merge, table_merge), the manifest (manifest), the tree over
them with flushes and leveled compaction (tree: LsmTree), and the contract's implementation
(engine: LsmEngine). Formats: docs/format/sstable.md, docs/format/manifest.md."""
