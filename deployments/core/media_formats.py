"""What a media file is, told from its first bytes before any decoder sees it.

Pillow and FFmpeg each read dozens of formats, every one a parser a hostile upload can reach.
The replicas open only the formats of an allow-list (the config's image_formats and
audio_formats): images through Pillow's `formats=`, audio through the one FFmpeg demuxer
named here for the container these bytes start with. These tables also name common formats
outside the list, so a refusal can say what was sent.
"""

from __future__ import annotations

# What OpenAI's API takes: PNG, JPEG, WebP and (non-animated) GIF images; flac, mp3 (mpeg,
# mpga), mp4 (m4a), ogg, wav and webm audio.
DEFAULT_IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")
DEFAULT_AUDIO_FORMATS = ("wav", "flac", "mp3", "ogg", "mp4", "webm")
# The FFmpeg demuxer that opens each allowed container (PyAV's `av.open(format=...)`).
AUDIO_DEMUXERS = {"wav": "wav", "flac": "flac", "mp3": "mp3", "ogg": "ogg", "mp4": "mp4",
                  "webm": "webm"}
# Audio codecs the decoder may run, whatever the container says it holds.
AUDIO_CODECS = frozenset({"flac", "mp3", "mp3float", "vorbis", "opus", "aac", "alac"})
AUDIO_CODEC_PREFIXES = ("pcm_",)
ID3_HEADER_BYTES = 10

_IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"), (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
    (b"8BPS", "PSD"), (b"\x00\x00\x01\x00", "ICO"), (b"\x00\x00\x02\x00", "CUR"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG2000"), (b"\xff\x4f\xff\x51", "JPEG2000"),
    (b"qoif", "QOI"), (b"DDS ", "DDS"), (b"icns", "ICNS"), (b"\x76\x2f\x31\x01", "OpenEXR"),
    (b"%PDF", "PDF"), (b"%!PS", "EPS"), (b"\xc5\xd0\xd3\xc6", "EPS"), (b"gimp xcf", "XCF"),
    (b"SIMPLE  =", "FITS"), (b"#?RADIANCE", "HDR"),
)
_NETPBM = {b"P1", b"P2", b"P3", b"P4", b"P5", b"P6", b"P7", b"PF", b"Pf"}
_FTYP_IMAGES = {b"avif": "AVIF", b"avis": "AVIF", b"heic": "HEIC", b"heix": "HEIC",
                b"mif1": "HEIF", b"msf1": "HEIF"}
_AUDIO_MAGIC = (
    (b"fLaC", "flac"), (b"OggS", "ogg"), (b".snd", "au"), (b"#!AMR", "amr"), (b"caff", "caf"),
    (b"MThd", "midi"), (b"wvpk", "wavpack"), (b"MAC ", "ape"), (b"RF64", "rf64"),
    (b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "wma"), (b"\x2e\x52\x4d\x46", "realaudio"),
)
_RIFF_KINDS = {b"WAVE": "wav", b"AVI ": "avi", b"WEBP": "webp"}
_FORM_KINDS = {b"AIFF": "aiff", b"AIFC": "aiff"}
EBML = b"\x1a\x45\xdf\xa3"


def sniff_image(data: bytes) -> str | None:
    """The image format `data` starts with, by Pillow's name for it ("PNG", "JPEG", ...), or
    None when it is none this table knows."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:8] == b"ftyp":
        return _FTYP_IMAGES.get(data[8:12])
    for magic, name in _IMAGE_MAGIC:
        if data.startswith(magic):
            return name
    if data[:2] in _NETPBM and data[2:3].isspace():
        return "PPM"
    return None


def sniff_audio(data: bytes) -> str | None:
    """The container `data` starts with ("wav", "mp3", "ogg", "mp4", "webm", ...), past an
    ID3v2 tag if there is one, or None when it is none this table knows."""
    tag = _id3_length(data)
    if tag:
        return sniff_audio(data[tag:]) if tag < len(data) else None
    if data[:4] == b"RIFF":
        return _RIFF_KINDS.get(data[8:12])
    if data[:4] == b"FORM":
        return _FORM_KINDS.get(data[8:12])
    if data[4:8] == b"ftyp":
        return _ftyp_audio(data[8:12])
    if data.startswith(EBML):
        return "webm" if b"webm" in data[:64] else "matroska"
    for magic, name in _AUDIO_MAGIC:
        if data.startswith(magic):
            return name
    return _mpeg_audio(data)


def audio_codec_allowed(codec: str) -> bool:
    """Whether FFmpeg's decoder `codec` (a stream's codec name) may decode an upload."""
    return codec in AUDIO_CODECS or codec.startswith(AUDIO_CODEC_PREFIXES)


def _id3_length(data: bytes) -> int:
    """The bytes of the ID3v2 tag `data` starts with (header, body, footer); 0 when none."""
    if len(data) < ID3_HEADER_BYTES or data[:3] != b"ID3":
        return 0
    size = data[6:10]
    if any(byte & 0x80 for byte in size):  # a syncsafe integer has no high bits
        return 0
    body = (size[0] << 21) | (size[1] << 14) | (size[2] << 7) | size[3]
    footer = ID3_HEADER_BYTES if data[5] & 0x10 else 0
    return ID3_HEADER_BYTES + body + footer


def _ftyp_audio(brand: bytes) -> str:
    if brand in _FTYP_IMAGES:
        return _FTYP_IMAGES[brand].lower()
    if brand == b"qt  ":
        return "mov"
    if brand.startswith(b"3g"):
        return "3gp"
    return "mp4"


def _mpeg_audio(data: bytes) -> str | None:
    """An MPEG audio frame's sync word: Layer III is mp3, Layers I and II mp2, and the ADTS
    header of raw AAC (layer bits 00) aac."""
    if len(data) < 2 or data[0] != 0xFF or data[1] & 0xE0 != 0xE0:
        return None
    layer = (data[1] >> 1) & 0b11
    if layer == 0b00:
        return "aac" if data[1] & 0xF0 == 0xF0 else None
    return "mp3" if layer == 0b01 else "mp2"
