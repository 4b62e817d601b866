"""The B+Tree engine: a copy-on-write B+Tree (tree) in one checksummed page file with a buffer
pool (pager), behind the Engine contract (engine). Format: docs/format/pages.md."""
