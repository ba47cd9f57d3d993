"""Quiet by default: the libraries' own notices (load reports, deprecation and dtype warnings, weight-loading bars)
are hidden unless the user asks with ``latentguard -v``; latentguard's own warnings and progress stay.

:func:`configure` is called once per command by the entry point; :func:`quiet_libraries` again by the models
layer right after it imports transformers or diffusers (their verbosity and progress bars are module state that
exists only once they are imported). No torch here.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

LIBRARIES = ("transformers", "diffusers", "huggingface_hub", "accelerate", "torch", "httpx", "urllib3", "PIL")
_ENV_DEFAULTS = {"TRANSFORMERS_VERBOSITY": "error", "DIFFUSERS_VERBOSITY": "error", "HF_HUB_VERBOSITY": "error",
                 "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}
_VERBOSE_ENV = "LATENTGUARD_VERBOSE"


def verbose() -> bool:
    """Whether the user asked for the libraries' output (``latentguard -v`` sets ``LATENTGUARD_VERBOSE=1``)."""
    return os.environ.get(_VERBOSE_ENV, "0") == "1"


def configure(is_verbose: bool) -> None:
    """Set the process up for one command: debug logs and every warning with ``-v``, the libraries quiet without."""
    os.environ[_VERBOSE_ENV] = "1" if is_verbose else "0"
    if is_verbose:
        return
    for k, v in _ENV_DEFAULTS.items():  # read by the libraries when they are imported (later, by the command)
        os.environ.setdefault(k, v)
    warnings.filterwarnings("ignore")  # libraries' warnings (deprecations, dtype notices) ...
    warnings.filterwarnings("default", module=r"latentguard(\.|$)")  # ... but not ours
    quiet_libraries()


def quiet_libraries() -> None:
    """Hide the already-imported libraries' notices and weight-loading bars when a command runs without ``-v``.

    Python callers (no command: ``LATENTGUARD_VERBOSE`` unset) keep the libraries' settings as they are.
    """
    if os.environ.get(_VERBOSE_ENV) != "0":
        return
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(logging.ERROR)
    if "transformers" in sys.modules:
        try:
            from transformers.utils import logging as tf_logging

            tf_logging.set_verbosity_error()
            tf_logging.disable_progress_bar()
        except Exception:  # noqa: BLE001 - an unexpected transformers version: its notices stay visible
            pass
    if "diffusers" in sys.modules:
        try:
            from diffusers.utils import logging as df_logging

            df_logging.set_verbosity_error()
        except Exception:  # noqa: BLE001
            pass
