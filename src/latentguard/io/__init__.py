"""Safe image I/O, run manifests and result streams."""

from latentguard.io.images import (
    ALLOWED_FORMATS,
    ImageLoadError,
    LoadedImage,
    LossyFormatWarning,
    collect_inputs,
    iter_images,
    iter_read,
    load_image,
    read_image,
    read_provenance,
    save_image,
)
from latentguard.io.manifest import JsonlWriter, package_versions, write_manifest
from latentguard.io.outputs import atomic_write, atomic_write_text, prepare_out_dir

__all__ = [
    "ALLOWED_FORMATS", "ImageLoadError", "LoadedImage", "LossyFormatWarning", "collect_inputs", "iter_images",
    "iter_read", "load_image", "read_image",
    "read_provenance", "save_image", "JsonlWriter", "atomic_write", "atomic_write_text", "package_versions",
    "prepare_out_dir", "write_manifest",
]
