"""Keys and values on the command line and on screen.

Input: an argument is taken as text (encoded UTF-8), or as hex when it starts
with 0x (`0x00ff` is the two bytes 00 ff). A text key that itself starts with
"0x" must be given in hex.

Output: printable ASCII (0x20-0x7e) is shown as is, except backslash, shown
as `\\\\`; tab, newline and carriage return as `\\t`, `\\n`, `\\r`; every other
byte as `\\xNN` -- like Python's bytes repr without the b'' quotes. With
--hex the bytes are shown as plain lowercase hex instead.
"""
import binascii

from .errors import CLIError

_SHOW = {i: chr(i) for i in range(0x20, 0x7F)}
_SHOW.update({0x5C: "\\\\", 0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"})
_TABLE = [_SHOW.get(i, f"\\x{i:02x}") for i in range(256)]


def parse(text, what="key"):
    if text[:2] in ("0x", "0X"):
        digits = text[2:]
        try:
            return binascii.unhexlify(digits)
        except (binascii.Error, ValueError):
            raise CLIError(f"{what} {text!r} starts with 0x but is not an even number of hex digits") from None
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise CLIError(f"{what} {text!r} cannot be encoded as UTF-8") from None


def show(data, hex_=False):
    if hex_:
        return data.hex()
    return "".join([_TABLE[b] for b in data])
