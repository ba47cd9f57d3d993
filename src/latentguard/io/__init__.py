"""Safe image I/O, run manifests and result streams."""

from latentguard.io.images import (
    ALLOWED_FORMATS,
    ImageLoadError,
    LossyFormatWarning,
    collect_inputs,
    iter_images,
    load_image,
    read_provenance,
    save_image,
)
from latentguard.io.manifest import JsonlWriter, atomic_write_text, package_versions, write_manifest

__all__ = [
    "ALLOWED_FORMATS", "ImageLoadError", "LossyFormatWarning", "collect_inputs", "iter_images", "load_image",
    "read_provenance", "save_image", "JsonlWriter", "atomic_write_text", "package_versions", "write_manifest",
]
