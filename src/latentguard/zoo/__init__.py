"""The bundled model zoo: small models honestly trained here on real images (see the cards).

This package holds the weights (``weights/``) and cards (``cards/``) as package data, the
``latentguard zoo`` command (:mod:`latentguard.zoo.cli`) and the training recipes (:mod:`latentguard.zoo.train`).
The ``zoo:NAME`` registry the loaders use is :mod:`latentguard.models.registry`.
"""
