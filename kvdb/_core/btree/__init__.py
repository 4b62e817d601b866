"""The B+Tree engine: a copy-on-write B+Tree in one checksummed page file, behind the Engine contract.

The tree (tree) over the page file with its buffer pool (pager), and the contract's
implementation (engine: BTreeEngine). Format: docs/format/pages.md."""
