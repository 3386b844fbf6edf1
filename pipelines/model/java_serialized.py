"""Read the vocabulary a saved Spark NLP model keeps, without running Java deserialization.

Spark NLP writes a map-valued model field (``BertEmbeddings.vocabulary``) with Spark's
``saveAsObjectFile``: a Hadoop SequenceFile whose values are Java-serialized arrays of up to ten
``scala.Tuple2(String, java.lang.Integer)``. Java serialization is to the JVM what pickle is to Python:
deserializing it runs code chosen by the file. So this module *parses* the two formats instead, and
accepts exactly the four classes such a vocabulary is made of; any other class, a custom
``writeObject`` or a compressed file is refused with an error that says what was found.

Formats: Hadoop ``SequenceFile`` version 6 (``org.apache.hadoop.io.SequenceFile``, uncompressed) and
the Java Object Serialization Stream Protocol (the JDK's "Object Serialization Specification", ch. 6).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path


class SerializedDataError(ValueError):
    """The bytes are not the simple structure this reader accepts; the message says what was found."""


# --- Hadoop SequenceFile -------------------------------------------------------------------------
_SYNC_ESCAPE = -1
_SEQUENCE_VERSION = 6


def _read_vlong(data: bytes, pos: int) -> tuple[int, int]:
    """Hadoop ``WritableUtils.readVLong``: a sign-and-length byte, then big-endian bytes."""
    first = struct.unpack_from(">b", data, pos)[0]
    pos += 1
    if first >= -112:
        return first, pos
    negative = first < -120
    length = -(first + 120) if negative else -(first + 112)
    value = int.from_bytes(data[pos:pos + length], "big")
    return (~value if negative else value), pos + length


def _read_text(data: bytes, pos: int) -> tuple[str, int]:
    length, pos = _read_vlong(data, pos)
    return data[pos:pos + length].decode("utf-8"), pos + length


def sequence_file_values(path: Path) -> Iterator[bytes]:
    """The payloads of a SequenceFile of ``NullWritable`` keys and ``BytesWritable`` values."""
    data = path.read_bytes()
    if data[:3] != b"SEQ" or len(data) < 4:
        raise SerializedDataError(f"{path} is not a Hadoop SequenceFile")
    if data[3] != _SEQUENCE_VERSION:
        raise SerializedDataError(f"{path} is a SequenceFile of version {data[3]}, not {_SEQUENCE_VERSION}")
    key_class, pos = _read_text(data, 4)
    value_class, pos = _read_text(data, pos)
    if (key_class, value_class) != ("org.apache.hadoop.io.NullWritable", "org.apache.hadoop.io.BytesWritable"):
        raise SerializedDataError(f"{path} holds {key_class} -> {value_class} records, not what Spark's "
                                  "saveAsObjectFile writes (NullWritable -> BytesWritable)")
    compressed, block_compressed = data[pos], data[pos + 1]
    pos += 2
    if compressed or block_compressed:
        raise SerializedDataError(f"{path} is a compressed SequenceFile (Hadoop was set to compress output "
                                  "when the model was saved): save the model again without output compression")
    (metadata_pairs,) = struct.unpack_from(">i", data, pos)
    pos += 4
    for _ in range(2 * metadata_pairs):
        _, pos = _read_text(data, pos)
    pos += 16  # sync marker
    while pos < len(data):
        (record_length,) = struct.unpack_from(">i", data, pos)
        pos += 4
        if record_length == _SYNC_ESCAPE:
            pos += 16
            continue
        (key_length,) = struct.unpack_from(">i", data, pos)
        value = data[pos + 4 + key_length:pos + 4 + record_length]
        pos += 4 + record_length
        (payload_length,) = struct.unpack_from(">i", value, 0)  # BytesWritable: its length, then its bytes
        yield value[4:4 + payload_length]


# --- Java serialization (a strict subset) -------------------------------------------------------
_MAGIC = b"\xac\xed\x00\x05"
TC_NULL, TC_REFERENCE, TC_CLASSDESC, TC_OBJECT, TC_STRING, TC_ARRAY = 0x70, 0x71, 0x72, 0x73, 0x74, 0x75
TC_ENDBLOCKDATA, TC_LONGSTRING = 0x78, 0x7C
_BASE_HANDLE = 0x7E0000
_SC_SERIALIZABLE = 0x02
_PRIMITIVES = {"B": ">b", "C": ">H", "D": ">d", "F": ">f", "I": ">i", "J": ">q", "S": ">h", "Z": ">?"}

# The only classes a Spark NLP vocabulary chunk is made of.
VOCABULARY_CLASSES = frozenset({"[Lscala.Tuple2;", "scala.Tuple2", "java.lang.Integer", "java.lang.Number"})


def _java_utf(raw: bytes) -> str:
    """Java's "modified UTF-8": NUL as C0 80, characters beyond the BMP as two 3-byte surrogates."""
    text = raw.replace(b"\xc0\x80", b"\x00").decode("utf-8", "surrogatepass")
    return text.encode("utf-16", "surrogatepass").decode("utf-16")


class _ClassDesc:
    def __init__(self, name: str, fields: list[tuple[str, str]], parent: _ClassDesc | None):
        self.name, self.fields, self.parent = name, fields, parent

    def chain(self) -> list[_ClassDesc]:
        """Superclass first: the order the stream writes the field values in."""
        return ([*self.parent.chain()] if self.parent else []) + [self]


class _Reader:
    def __init__(self, data: bytes, allowed: frozenset[str]):
        self.data, self.pos, self.allowed, self.handles = data, 0, allowed, []

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise SerializedDataError("the serialized object ends early")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def utf(self) -> str:
        return _java_utf(self.take(self.unpack(">H")))

    def content(self):
        tag = self.unpack(">B")
        if tag == TC_NULL:
            return None
        if tag == TC_REFERENCE:
            return self.handles[self.unpack(">i") - _BASE_HANDLE]
        if tag in (TC_STRING, TC_LONGSTRING):
            text = self.utf() if tag == TC_STRING else _java_utf(self.take(self.unpack(">q")))
            self.handles.append(text)
            return text
        if tag == TC_CLASSDESC:
            return self.class_desc_body()
        if tag == TC_OBJECT:
            return self.new_object()
        if tag == TC_ARRAY:
            return self.new_array()
        raise SerializedDataError(f"unsupported serialization element 0x{tag:02x} at byte {self.pos - 1}")

    def class_desc(self) -> _ClassDesc | None:
        desc = self.content()
        if desc is not None and not isinstance(desc, _ClassDesc):
            raise SerializedDataError("a class description was expected")
        return desc

    def class_desc_body(self) -> _ClassDesc:
        name = self.utf()
        if name not in self.allowed:
            raise SerializedDataError(f"the data holds an object of class {name}, which a vocabulary never "
                                      f"holds (accepted: {', '.join(sorted(self.allowed))})")
        self.take(8)  # serialVersionUID
        desc = _ClassDesc(name, [], None)
        self.handles.append(desc)
        flags = self.unpack(">B")
        if flags != _SC_SERIALIZABLE:
            raise SerializedDataError(f"class {name} is written with flags 0x{flags:02x} (custom writeObject or "
                                      "Externalizable), which this reader does not accept")
        for _ in range(self.unpack(">H")):
            code, field_name = chr(self.unpack(">B")), self.utf()
            if code in "L[":
                self.content()  # the field's type name
            elif code not in _PRIMITIVES:
                raise SerializedDataError(f"field {field_name} of {name} has an unknown type code {code!r}")
            desc.fields.append((code, field_name))
        if self.unpack(">B") != TC_ENDBLOCKDATA:
            raise SerializedDataError(f"class {name} carries annotations, which this reader does not accept")
        desc.parent = self.class_desc()
        return desc

    def new_object(self):
        desc = self.class_desc()
        slot = len(self.handles)
        self.handles.append(None)
        values = {}
        for cls in desc.chain():
            for code, name in cls.fields:
                values[name] = self.unpack(_PRIMITIVES[code]) if code in _PRIMITIVES else self.content()
        value = (values["_1"], values["_2"]) if desc.name == "scala.Tuple2" else values.get("value")
        self.handles[slot] = value
        return value

    def new_array(self):
        desc = self.class_desc()
        if not desc.name.startswith("[L"):
            raise SerializedDataError(f"array of {desc.name} is not accepted")
        slot = len(self.handles)
        self.handles.append(None)
        items = [self.content() for _ in range(self.unpack(">i"))]
        self.handles[slot] = items
        return items


def read_java_object(data: bytes, allowed: frozenset[str] = VOCABULARY_CLASSES):
    """One serialized object made only of ``allowed`` classes, as Python values (tuples, ints, strings)."""
    if data[:4] != _MAGIC:
        raise SerializedDataError("not a Java serialization stream")
    reader = _Reader(data, allowed)
    reader.pos = 4
    value = reader.content()
    if reader.pos != len(data):
        raise SerializedDataError(f"{len(data) - reader.pos} bytes follow the object")
    return value


def read_vocabulary(folder: Path) -> dict[str, int]:
    """The token -> id map Spark NLP saved in ``folder`` (``fields/vocabulary``)."""
    vocabulary: dict[str, int] = {}
    parts = sorted(folder.glob("part-*"))
    if not parts:
        raise SerializedDataError(f"{folder} has no part-* file")
    for part in parts:
        for payload in sequence_file_values(part):
            for entry in read_java_object(payload):
                if not (isinstance(entry, tuple) and isinstance(entry[0], str) and isinstance(entry[1], int)):
                    raise SerializedDataError(f"{part} holds {entry!r} where a (token, id) pair belongs")
                vocabulary[entry[0]] = entry[1]
    return vocabulary
