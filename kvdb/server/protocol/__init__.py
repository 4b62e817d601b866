"""The server's wire path in Cython: RESP parsing and encoding, and the fast lane.

Bytes from a socket to commands and replies back to bytes. resp parses requests and encodes
replies (RESP2 and RESP3; grammar in docs/format/resp.md), fastreply encodes a batch of replies
in one C buffer, and fastlane runs the hottest commands from the parsed request to the encoded
reply without Python frames. Nothing here is imported on package import: each module is
imported by its own name."""
