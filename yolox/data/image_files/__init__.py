"""Image files as the model sees them: kind by content (magic bytes), truncation tests, stored size, and
decoding to BGR uint8 with one intensity rule shared with whole-image detection."""
from .facts import ImageFacts, header_size, inspect_bytes
from .intensity import STRETCH_PERCENTILES, IntensityScale, stretch_to_uint8
from .kind import KIND_LABELS, KINDS, kind_of_content, kind_of_name, misnaming
from .read import DECODE_FLAGS, ImageRead, read_image, read_image_file, to_bgr_uint8
