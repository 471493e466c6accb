"""Hand-made PNG bytes for validation tests: forged headers and broken pixel data."""
import struct
import zlib


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int) -> bytes:
    """A tiny greyscale PNG whose header declares ``width`` x ``height`` (a decompression bomb's header;
    its pixel data is one row)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(bytes(width + 1)))
            + png_chunk(b"IEND", b""))


def with_broken_pixel_data(png: bytes) -> bytes:
    """``png`` with bytes flipped inside its compressed data and the chunk CRC recomputed, so verify() passes."""
    data = bytearray(png)
    position = 8
    while True:
        length, kind = struct.unpack_from(">I4s", data, position)
        if kind == b"IDAT":
            start = position + 8
            for offset in (length // 3, length // 2):
                data[start + offset] ^= 0x5A
            struct.pack_into(">I", data, start + length, zlib.crc32(bytes(data[position + 4:start + length])))
            return bytes(data)
        position += 12 + length
